//! What the fuzz targets (`fuzz/`, `cargo fuzz`) feed their bytes to:
//! every decoder of what arrives from the network, followed by the checks
//! that run on what it decodes. Each function must return (never panic,
//! never allocate without bound) whatever the bytes. The corpus replay
//! test (`tests/fuzz_corpus.rs`) runs them over `fuzz/corpus` in every
//! test run, so a crash the fuzzer found stays fixed.

use futures::executor::block_on;
use wire::jobs::{
    ConsumerFrame, JobInput, JobOutput, JobTerms, OutputAssembler, ProviderFrame, Receipt,
};
use wire::models::{check_package, ModelReply, ModelRequest};
use wire::registry::{Heartbeat, ModelOffer, Registration, Task};
use wire::{MilliSats, NodeId, SignedEnvelope, UnixMillis};

use crate::framing;

/// A target: its name (its corpus folder) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("job_frames", job_frames),
    ("provider_frames", provider_frames),
    ("model_frames", model_frames),
    ("ads", ads),
    ("signed_envelopes", signed_envelopes),
    ("registrations", registrations),
    ("job_inputs", job_inputs),
];

/// Frames in a row, as a stream carries them, each at most `max` bytes.
fn frames<T: serde::de::DeserializeOwned>(mut data: &[u8], max: u64, mut each: impl FnMut(T)) {
    // At most as many frames as there are bytes (each takes one at least).
    for _ in 0..data.len() {
        match block_on(framing::read::<T, _>(&mut data, max)) {
            Ok(Some(frame)) => each(frame),
            Ok(None) | Err(_) => return,
        }
    }
}

/// A consumer's job stream as a provider reads it: the request checked as
/// the node checks it (input limits, terms, a price for it).
pub fn job_frames(data: &[u8]) {
    frames::<ConsumerFrame>(data, wire::MAX_JOB_REQUEST_BYTES, |frame| {
        if let ConsumerFrame::Request { request } = frame {
            if request.input.validate().is_ok() {
                let offer = offer(request.input.task());
                let _ = offer.worst_case_price(&request.input);
                let _ = request.input.digest();
            }
            let _ = JobTerms::of(&request, some_node());
        }
    });
}

/// A provider's answer as a consumer reads it: the output parts put
/// together within the limit, then the receipt checked against the terms.
pub fn provider_frames(data: &[u8]) {
    let mut parts = OutputAssembler::new(1 << 16);
    let mut done = None;
    frames::<ProviderFrame>(data, wire::MAX_JOB_FRAME_BYTES, |frame| match frame {
        ProviderFrame::Output { part } => {
            let _ = parts.push(part);
        }
        ProviderFrame::Done { receipt } => done = Some(receipt),
        ProviderFrame::Accepted { .. } | ProviderFrame::Refused { .. } => {}
    });
    let (Ok(output), Some(receipt)) = (parts.finish(), done) else {
        return;
    };
    let request = wire::jobs::JobRequest {
        job_id: wire::JobId::from_random([7; 16]),
        model_hash: wire::ModelHash::of(b"fuzz"),
        input: JobInput::Embedding {
            texts: vec!["fuzz".into()],
        },
        max_price_msat: MilliSats(1_000),
        deadline: UnixMillis(u64::MAX),
        bid_msat: MilliSats(0),
    };
    let _ = wire::jobs::verify_receipt(&receipt, &JobTerms::of(&request, some_node()), &output);
}

/// The model-transfer protocol, both ways.
pub fn model_frames(data: &[u8]) {
    frames::<ModelRequest>(data, 64 * 1024, |_| {});
    frames::<ModelReply>(data, 64 * 1024, |reply| {
        if let ModelReply::Package { files } = reply {
            let _ = check_package(&wire::ModelHash::of(b"fuzz"), &files);
        }
    });
}

/// A gossiped ad: its bytes decoded, verified and kept (or not) by a book.
pub fn ads(data: &[u8]) {
    let Ok(envelope) = wire::ads::decode_ad(data) else {
        return;
    };
    let mut book = wire::ads::AdBook::with_capacity(4);
    let now = UnixMillis(1_800_000_000_000);
    if let Ok(held) = book.accept(envelope, None, now) {
        let _ = held.ad.is_open(now);
        let _ = held.ad.offer("fuzz");
    }
    let _ = book.expire(now);
}

/// A signed envelope as JSON, opened as each kind of message it may claim
/// to be.
pub fn signed_envelopes(data: &[u8]) {
    let Ok(envelope) = serde_json::from_slice::<SignedEnvelope>(data) else {
        return;
    };
    let _ = envelope.public_key();
    let _ = envelope.open::<Registration>();
    let _ = envelope.open::<Heartbeat>();
    let _ = envelope.open::<Receipt>();
    let _ = envelope.open::<wire::accounts::Enrolment>();
    let _ = envelope.open::<wire::verify::Ban>();
}

/// A registration's payload: its addresses and payout address parsed as
/// the registry parses them.
pub fn registrations(data: &[u8]) {
    let Ok(r) = serde_json::from_slice::<Registration>(data) else {
        return;
    };
    for a in r.multiaddrs.iter().take(64) {
        let _ = a.parse::<crate::Multiaddr>();
    }
    if let Some(address) = &r.payout_address {
        let _ = wire::billing::check_lightning_address(address);
    }
}

/// A job's input as the APIs take it, checked and priced.
pub fn job_inputs(data: &[u8]) {
    let Ok(input) = serde_json::from_slice::<JobInput>(data) else {
        return;
    };
    if input.validate().is_ok() {
        let _ = offer(input.task()).worst_case_price(&input);
        let _ = input.digest();
    }
    let _ = serde_json::from_slice::<JobOutput>(data);
}

fn offer(task: Task) -> ModelOffer {
    ModelOffer {
        name: "fuzz".into(),
        task,
        hash: wire::ModelHash::of(b"fuzz"),
        price_msat: MilliSats(10),
        token_price: wire::pricing::TokenPrice {
            input_msat: MilliSats(1),
            output_msat: MilliSats(2),
        },
        device: "cpu".into(),
        description: None,
        embedding_dim: Some(384),
        context_tokens: Some(128),
    }
}

/// The same node every time (a fixed key), so that runs repeat.
fn some_node() -> NodeId {
    let key = libp2p::identity::Keypair::ed25519_from_bytes([7; 32])
        .map(|k| k.public().to_peer_id())
        .unwrap_or_else(|_| crate::PeerId::random());
    NodeId::from(key)
}

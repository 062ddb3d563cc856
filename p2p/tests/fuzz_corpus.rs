//! The fuzz corpus (`fuzz/corpus/<target>/`, grown by `cargo fuzz run`)
//! replayed through each target's function in every test run: whatever
//! the fuzzer once found stays fixed, without nightly Rust or libFuzzer.
//! `write_seeds` (ignored) wrote the first, valid, inputs of each target.

use std::path::{Path, PathBuf};

use p2p::framing;
use p2p::fuzzing::TARGETS;
use testkit::fixtures::{ad, keypair, NOW};
use wire::jobs::{
    ConsumerFrame, GenerationParams, JobInput, JobOutput, JobRequest, NamedTensor, OutputPart,
    Prompt, ProviderFrame, Receipt, TensorData, Usage,
};
use wire::models::{ModelReply, ModelRequest, PackageFile};
use wire::{JobId, MilliSats, ModelHash, SignedEnvelope, UnixMillis};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

#[test]
fn the_fuzz_corpus_replays_clean() {
    let mut total = 0;
    for (name, target) in TARGETS {
        let dir = corpus().join(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect::<Vec<_>>();
        assert!(!entries.is_empty(), "no corpus for {name}");
        for path in &entries {
            target(&std::fs::read(path).unwrap());
        }
        total += entries.len();
    }
    eprintln!("{total} corpus inputs replayed");
}

fn input() -> JobInput {
    JobInput::Embedding {
        texts: vec!["fuzz".into()],
    }
}

fn frame<T: serde::Serialize>(value: &T) -> Vec<u8> {
    framing::encode(value, 1 << 20).unwrap()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus().join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

/// Writes valid examples of what each target decodes: where the fuzzer
/// starts. `cargo test -p p2p --test fuzz_corpus -- --ignored`.
#[test]
#[ignore]
fn write_seeds() {
    let request = |input: JobInput| JobRequest {
        job_id: JobId::from_random([7; 16]),
        model_hash: ModelHash::of(b"fuzz"),
        input,
        max_price_msat: MilliSats(1_000),
        deadline: UnixMillis(u64::MAX),
        bid_msat: MilliSats(0),
    };
    let tensor = JobInput::Tensor {
        inputs: vec![NamedTensor {
            name: "x".into(),
            shape: vec![1, 4],
            data: TensorData::F32(vec![1.0, 2.0, 3.0, 4.0]),
        }],
    };
    let generation = JobInput::TextGeneration {
        prompt: Prompt::Text("Once".into()),
        params: GenerationParams::default(),
    };
    for (name, input) in [
        ("embedding", input()),
        ("tensor", tensor.clone()),
        ("generation", generation.clone()),
    ] {
        let mut bytes = frame(&ConsumerFrame::Request {
            request: request(input.clone()),
        });
        bytes.extend(frame(&ConsumerFrame::Cancel));
        write("job_frames", name, &bytes);
        write("job_inputs", name, &serde_json::to_vec(&input).unwrap());
    }

    // A whole answer whose receipt checks out against the target's terms.
    let key = keypair(7);
    let output = JobOutput::Embedding {
        dim: 2,
        vectors: vec![vec![0.6, 0.8]],
    };
    let receipt = Receipt {
        job_id: JobId::from_random([7; 16]),
        node_id: key.public().to_peer_id().into(),
        model_hash: ModelHash::of(b"fuzz"),
        input_hash: input().digest(),
        output_hash: output.digest(),
        price_msat: MilliSats(10),
        received_at: NOW,
        finished_at: NOW,
        queue_ms: 0,
        compute_ms: 1,
        device: "cpu".into(),
        usage: Usage::default(),
        priority_msat: MilliSats(0),
    };
    let signed = SignedEnvelope::seal(&key, &receipt).unwrap();
    let mut answer = frame(&ProviderFrame::Accepted { queue_position: 0 });
    answer.extend(frame(&ProviderFrame::Output {
        part: OutputPart::Embedding {
            dim: 2,
            first: 0,
            vectors: vec![vec![0.6, 0.8]],
        },
    }));
    answer.extend(frame(&ProviderFrame::Done {
        receipt: signed.clone(),
    }));
    write("provider_frames", "embedding", &answer);
    write(
        "signed_envelopes",
        "receipt",
        &serde_json::to_vec(&signed).unwrap(),
    );

    let mut models = frame(&ModelRequest::Describe {
        model: ModelHash::of(b"fuzz"),
    });
    models.extend(frame(&ModelRequest::Read {
        model: ModelHash::of(b"fuzz"),
        file: "model.pt".into(),
        offset: 0,
    }));
    write("model_frames", "requests", &models);
    let package = frame(&ModelReply::Package {
        files: vec![PackageFile {
            name: "model.pt".into(),
            size: 4,
            sha256: wire::Sha256Digest::of(b"fuzz"),
        }],
    });
    write("model_frames", "package", &package);

    let the_ad = ad(&key, 1, NOW, 30_000);
    let sealed = SignedEnvelope::seal(&key, &the_ad).unwrap();
    write("ads", "ad", &wire::ads::encode_ad(&sealed));

    let registration = wire::registry::Registration {
        node_id: key.public().to_peer_id().into(),
        timestamp: NOW,
        multiaddrs: the_ad.multiaddrs.clone(),
        hardware: the_ad.hardware.clone(),
        models: the_ad.models.clone(),
        version: "0".into(),
        heartbeat_interval_ms: 10_000,
        payout_address: Some("node@example.com".into()),
    };
    write(
        "registrations",
        "registration",
        &serde_json::to_vec(&registration).unwrap(),
    );
    let sealed = SignedEnvelope::seal(&key, &registration).unwrap();
    write(
        "signed_envelopes",
        "registration",
        &serde_json::to_vec(&sealed).unwrap(),
    );
}

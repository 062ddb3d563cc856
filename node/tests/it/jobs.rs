//! Answering jobs with the real all-MiniLM-L6-v2: checks, vectors, signed
//! receipts, and refusals with reasons.

use std::sync::{Arc, OnceLock};

use node::admission::Gate;
use node::engine::{DeviceChoice, Engine, EngineConfig};
use node::jobs::JobServer;
use p2p::JobResponse;
use wire::jobs::{verify_receipt, JobInput, JobOutput, JobRequest, JobTerms, RefusalCode};
use wire::{JobId, MilliSats, NodeId, Sha256Digest, UnixMillis};

/// The real all-MiniLM-L6-v2, loaded once for this module's tests.
fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let dir = crate::store_of("jobs", &["all-minilm-l6-v2"]);
            let config = EngineConfig {
                device: DeviceChoice::Cpu,
                queue_depth: 8,
                ..Default::default()
            };
            Arc::new(Engine::load(&dir, config).unwrap())
        })
        .clone()
}

fn server() -> JobServer {
    let keypair = p2p::Keypair::generate_ed25519();
    JobServer {
        engine: engine(),
        node_id: NodeId::from(keypair.public().to_peer_id()),
        keypair,
        active: node::admission::ActiveJobs::default(),
        admission: Gate::default(),
        hours: node::schedule::Hours::always(),
        bids: Default::default(),
    }
}

fn request(server: &JobServer, texts: &[&str]) -> JobRequest {
    let offer = server
        .engine
        .offers()
        .into_iter()
        .find(|o| o.task == wire::registry::Task::Embedding)
        .unwrap();
    JobRequest {
        job_id: JobId::from_random([3; 16]),
        model_hash: offer.hash,
        input: JobInput::Embedding {
            texts: texts.iter().map(|t| t.to_string()).collect(),
        },
        max_price_msat: offer.price_msat,
        deadline: UnixMillis(UnixMillis::now().0 + 60_000),
        bid_msat: wire::MilliSats(0),
    }
}

#[tokio::test]
async fn finished_job_carries_unit_vectors_and_a_receipt_that_verifies() {
    let server = server();
    let req = request(
        &server,
        &[
            "a cat sits on the mat",
            "a cat sits on the mat",
            "stock markets fell",
        ],
    );
    let JobResponse::Done { output, receipt } = server.answer(req.clone(), None).await else {
        panic!("job was refused");
    };
    let JobOutput::Embedding { dim, vectors } = &output else {
        panic!("{output:?}");
    };
    assert_eq!(*dim, 384);
    for v in vectors {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    // Identical texts, identical vectors; a different text differs.
    assert_eq!(vectors[0], vectors[1]);
    assert_ne!(vectors[0], vectors[2]);
    let r = verify_receipt(&receipt, &JobTerms::of(&req, server.node_id), &output).unwrap();
    assert_eq!(r.device, "cpu");
}

#[tokio::test]
async fn batching_does_not_change_a_text_s_embedding() {
    let server = server();
    let JobResponse::Done { output: alone, .. } = server
        .answer(request(&server, &["hello world"]), None)
        .await
    else {
        panic!("refused");
    };
    let JobResponse::Done {
        output: batched, ..
    } = server
        .answer(
            request(
                &server,
                &[
                    "hello world",
                    "a much longer sentence that forces padding of the first",
                ],
            ),
            None,
        )
        .await
    else {
        panic!("refused");
    };
    let (JobOutput::Embedding { vectors: a, .. }, JobOutput::Embedding { vectors: b, .. }) =
        (alone, batched)
    else {
        panic!("not embeddings");
    };
    let dot: f32 = a[0].iter().zip(&b[0]).map(|(x, y)| x * y).sum();
    assert!(dot > 0.9999, "padding changed the embedding: cosine {dot}");
}

#[tokio::test]
async fn jobs_the_node_cannot_honour_are_refused_with_a_reason() {
    let server = server();
    let mut unknown = request(&server, &["x"]);
    unknown.model_hash = Sha256Digest::of(b"no such model");
    let mut cheap = request(&server, &["x"]);
    cheap.max_price_msat = MilliSats(cheap.max_price_msat.0 - 1);
    let mut late = request(&server, &["x"]);
    late.deadline = UnixMillis(UnixMillis::now().0 - 1);
    let mut empty = request(&server, &["x"]);
    empty.input = JobInput::Embedding { texts: vec![] };
    for (req, want) in [
        (unknown, RefusalCode::UnknownModel),
        (cheap, RefusalCode::PriceTooLow),
        (late, RefusalCode::DeadlineExceeded),
        (empty, RefusalCode::BadInput),
    ] {
        match server.answer(req, None).await {
            JobResponse::Refused { code, message } => {
                assert_eq!(code, want);
                assert!(!message.is_empty());
            }
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }
}

//! Serving jobs that arrive over libp2p: check them, run them on the engine,
//! sign a receipt, answer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use p2p::InboundJob;
use tokio::sync::mpsc;
use tracing::Instrument;
use wire::jobs::{JobRequest, JobResponse, Receipt, RefusalCode};
use wire::{NodeId, SignedEnvelope, UnixMillis};

use crate::engine::{Engine, EngineError};

/// What answering jobs needs.
pub struct JobServer {
    pub engine: Arc<Engine>,
    pub keypair: p2p::Keypair,
    pub node_id: NodeId,
    pub active: Arc<AtomicU32>,
}

impl JobServer {
    /// Answers every inbound job, each on its own task, until the swarm stops.
    pub async fn run(self: Arc<Self>, mut inbound: mpsc::Receiver<InboundJob>) {
        while let Some(job) = inbound.recv().await {
            let span =
                tracing::info_span!("job", job_id = %job.request.job_id, peer_id = %job.from);
            let server = self.clone();
            tokio::spawn(
                async move {
                    let InboundJob {
                        request,
                        mut responder,
                        ..
                    } = job;
                    let ahead = server.active.fetch_add(1, Ordering::Relaxed);
                    let mut cancel = responder.cancel_signal();
                    let response = match responder.accepted(ahead).await {
                        Ok(()) => tokio::select! {
                            response = server.answer(request) => response,
                            () = cancel.cancelled() => {
                                tracing::info!("job cancelled by the consumer");
                                JobResponse::Refused {
                                    code: RefusalCode::Cancelled,
                                    message: "cancelled".into(),
                                }
                            }
                        },
                        Err(e) => {
                            tracing::info!(error = %e, "consumer gone before the job started");
                            server.active.fetch_sub(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    server.active.fetch_sub(1, Ordering::Relaxed);
                    if cancel.is_cancelled() {
                        return;
                    }
                    if let Err(e) = responder.send(response).await {
                        tracing::warn!(error = %e, "could not send the answer");
                    }
                }
                .instrument(span),
            );
        }
    }

    pub async fn answer(&self, request: JobRequest) -> JobResponse {
        let received = UnixMillis::now();
        let refuse = |code: RefusalCode, message: String| {
            tracing::info!(?code, %message, "job refused");
            JobResponse::Refused { code, message }
        };
        let Some(model) = self.engine.model(&request.model_hash) else {
            return refuse(
                RefusalCode::UnknownModel,
                format!("this node has no model with hash {}", request.model_hash),
            );
        };
        if model.offer.price_msat > request.max_price_msat {
            return refuse(
                RefusalCode::PriceTooLow,
                format!(
                    "{} costs {} here; the job offers at most {}",
                    model.offer.name, model.offer.price_msat, request.max_price_msat
                ),
            );
        }
        if request.input.task() != model.offer.task {
            return refuse(
                RefusalCode::BadInput,
                format!(
                    "{} runs {} jobs",
                    model.offer.name,
                    model.offer.task.as_str()
                ),
            );
        }
        if let Err(e) = request.input.validate() {
            return refuse(RefusalCode::BadInput, e.to_string());
        }
        let Some(left) = request
            .deadline
            .0
            .checked_sub(received.0)
            .filter(|l| *l > 0)
        else {
            return refuse(
                RefusalCode::DeadlineExceeded,
                "the deadline has passed".into(),
            );
        };
        tracing::info!(model = %model.offer.name, "running job");
        let run = tokio::time::timeout(
            Duration::from_millis(left),
            model.run(request.input.clone()),
        )
        .await;
        let (output, timing) = match run {
            Err(_) => {
                return refuse(
                    RefusalCode::DeadlineExceeded,
                    "the deadline passed while running".into(),
                )
            }
            Ok(Err(EngineError::Overloaded)) => {
                return refuse(RefusalCode::Overloaded, "the model's queue is full".into())
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "engine failed");
                return refuse(RefusalCode::EngineFailed, e.to_string());
            }
            Ok(Ok(done)) => done,
        };
        let receipt = Receipt {
            job_id: request.job_id,
            node_id: self.node_id,
            model_hash: model.offer.hash,
            input_hash: request.input.digest(),
            output_hash: output.digest(),
            price_msat: model.offer.price_msat,
            received_at: received,
            finished_at: UnixMillis::now(),
            queue_ms: timing.queue_ms,
            compute_ms: timing.compute_ms,
            device: model.offer.device.clone(),
        };
        match SignedEnvelope::seal(&self.keypair, &receipt) {
            Ok(envelope) => {
                tracing::info!(compute_ms = timing.compute_ms, "job done");
                JobResponse::Done {
                    output,
                    receipt: envelope,
                }
            }
            Err(e) => refuse(
                RefusalCode::EngineFailed,
                format!("could not sign the receipt: {e}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, OnceLock};

    use wire::jobs::{verify_receipt, JobInput, JobOutput};
    use wire::{JobId, MilliSats, Sha256Digest};

    use super::*;
    use crate::engine::DeviceChoice;

    /// The real all-MiniLM-L6-v2, loaded once for this module's tests.
    fn engine() -> Arc<Engine> {
        static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
        ENGINE
            .get_or_init(|| {
                let dir = std::env::var_os("INFERNET_MODELS_DIR").expect(
                    "INFERNET_MODELS_DIR is not set: run scripts/setup.sh, source scripts/env.sh",
                );
                Arc::new(Engine::load(std::path::Path::new(&dir), DeviceChoice::Cpu, 8).unwrap())
            })
            .clone()
    }

    fn server() -> JobServer {
        let keypair = p2p::Keypair::generate_ed25519();
        JobServer {
            engine: engine(),
            node_id: NodeId::from(keypair.public().to_peer_id()),
            keypair,
            active: Arc::new(AtomicU32::new(0)),
        }
    }

    fn request(server: &JobServer, texts: &[&str]) -> JobRequest {
        let offer = server.engine.offers().into_iter().next().unwrap();
        JobRequest {
            job_id: JobId::from_random([3; 16]),
            model_hash: offer.hash,
            input: JobInput::Embedding {
                texts: texts.iter().map(|t| t.to_string()).collect(),
            },
            max_price_msat: offer.price_msat,
            deadline: UnixMillis(UnixMillis::now().0 + 60_000),
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
        let JobResponse::Done { output, receipt } = server.answer(req.clone()).await else {
            panic!("job was refused");
        };
        let JobOutput::Embedding { dim, vectors } = &output;
        assert_eq!(*dim, 384);
        for v in vectors {
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        }
        // Identical texts, identical vectors; a different text differs.
        assert_eq!(vectors[0], vectors[1]);
        assert_ne!(vectors[0], vectors[2]);
        let r = verify_receipt(
            &receipt,
            &req.job_id,
            server.node_id,
            req.model_hash,
            &req.input,
            &output,
        )
        .unwrap();
        assert_eq!(r.device, "cpu");
    }

    #[tokio::test]
    async fn batching_does_not_change_a_text_s_embedding() {
        let server = server();
        let JobResponse::Done { output: alone, .. } =
            server.answer(request(&server, &["hello world"])).await
        else {
            panic!("refused");
        };
        let JobResponse::Done {
            output: batched, ..
        } = server
            .answer(request(
                &server,
                &[
                    "hello world",
                    "a much longer sentence that forces padding of the first",
                ],
            ))
            .await
        else {
            panic!("refused");
        };
        let (JobOutput::Embedding { vectors: a, .. }, JobOutput::Embedding { vectors: b, .. }) =
            (alone, batched);
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
            match server.answer(req).await {
                JobResponse::Refused { code, message } => {
                    assert_eq!(code, want);
                    assert!(!message.is_empty());
                }
                other => panic!("expected {want:?}, got {other:?}"),
            }
        }
    }
}

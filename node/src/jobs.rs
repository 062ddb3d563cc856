//! Serving jobs that arrive over libp2p: check them, run them on the engine,
//! sign a receipt, answer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
                    if let Err(e) = responder.accepted(ahead).await {
                        tracing::info!(error = %e, "consumer gone before the job started");
                        server.active.fetch_sub(1, Ordering::Relaxed);
                        return;
                    }
                    // Generated text streams to the consumer as it is decoded.
                    let (deltas, mut streamed) = mpsc::unbounded_channel();
                    let answer = server.answer(request, Some(deltas));
                    tokio::pin!(answer);
                    let cancelled = JobResponse::Refused {
                        code: RefusalCode::Cancelled,
                        message: "cancelled".into(),
                    };
                    let response = loop {
                        tokio::select! {
                            response = &mut answer => break response,
                            Some(delta) = streamed.recv() => {
                                if responder.stream_text(delta).await.is_err() {
                                    break cancelled;
                                }
                            }
                            () = cancel.cancelled() => break cancelled,
                        }
                    };
                    server.active.fetch_sub(1, Ordering::Relaxed);
                    if cancel.is_cancelled() {
                        tracing::info!("job cancelled by the consumer");
                        return;
                    }
                    while let Ok(delta) = streamed.try_recv() {
                        if responder.stream_text(delta).await.is_err() {
                            return;
                        }
                    }
                    if let Err(e) = responder.send(response).await {
                        tracing::warn!(error = %e, "could not send the answer");
                    }
                }
                .instrument(span),
            );
        }
    }

    /// Checks a job, runs it and signs its receipt. Generated text also
    /// goes to `deltas` piece by piece while it is decoded.
    pub async fn answer(
        &self,
        request: JobRequest,
        deltas: Option<mpsc::UnboundedSender<String>>,
    ) -> JobResponse {
        let received = UnixMillis::now();
        let refuse = |code: RefusalCode, message: String| {
            tracing::info!(?code, %message, "job refused");
            JobResponse::Refused { code, message }
        };
        let Some(offer) = self.engine.offer(&request.model_hash).cloned() else {
            return refuse(
                RefusalCode::UnknownModel,
                format!("this node has no model with hash {}", request.model_hash),
            );
        };
        if offer.price_msat > request.max_price_msat {
            return refuse(
                RefusalCode::PriceTooLow,
                format!(
                    "{} costs {} a job here; the job offers at most {}",
                    offer.name, offer.price_msat, request.max_price_msat
                ),
            );
        }
        if request.input.task() != offer.task {
            return refuse(
                RefusalCode::BadInput,
                format!("{} runs {} jobs", offer.name, offer.task.as_str()),
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
        let left = Duration::from_millis(left);
        let model = match tokio::time::timeout(left, self.engine.get(&offer.hash)).await {
            Ok(Ok(model)) => model,
            Ok(Err(e)) => return refuse(RefusalCode::Overloaded, e.to_string()),
            Err(_) => {
                return refuse(
                    RefusalCode::DeadlineExceeded,
                    "the deadline passed while the model loaded".into(),
                )
            }
        };
        tracing::info!(model = %offer.name, "running job");
        let run = model.run(
            request.input.clone(),
            request.max_price_msat,
            Instant::now() + left,
            deltas,
        );
        let done = match tokio::time::timeout(left, run).await {
            Err(_) | Ok(Err(EngineError::DeadlineExceeded)) => {
                return refuse(
                    RefusalCode::DeadlineExceeded,
                    "the deadline passed while running".into(),
                )
            }
            Ok(Err(e @ EngineError::Overloaded)) => {
                return refuse(RefusalCode::Overloaded, e.to_string())
            }
            Ok(Err(e @ EngineError::BadInput(_))) => {
                return refuse(RefusalCode::BadInput, e.to_string())
            }
            Ok(Err(e @ EngineError::OverBudget(_))) => {
                return refuse(RefusalCode::PriceTooLow, e.to_string())
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
            model_hash: offer.hash,
            input_hash: request.input.digest(),
            output_hash: done.output.digest(),
            price_msat: offer.price_for(done.usage.input_tokens, done.usage.output_tokens),
            received_at: received,
            finished_at: UnixMillis::now(),
            queue_ms: done.queue_ms,
            compute_ms: done.compute_ms,
            device: offer.device.clone(),
            usage: done.usage,
        };
        match SignedEnvelope::seal(&self.keypair, &receipt) {
            Ok(envelope) => {
                tracing::info!(
                    compute_ms = done.compute_ms,
                    input_tokens = done.usage.input_tokens,
                    output_tokens = done.usage.output_tokens,
                    price = %receipt.price_msat,
                    "job done"
                );
                JobResponse::Done {
                    output: done.output,
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
    use crate::engine::{DeviceChoice, EngineConfig};

    /// The real all-MiniLM-L6-v2, loaded once for this module's tests.
    fn engine() -> Arc<Engine> {
        static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
        ENGINE
            .get_or_init(|| {
                let dir = std::env::var_os("INFERNET_MODELS_DIR").expect(
                    "INFERNET_MODELS_DIR is not set: run scripts/setup.sh, source scripts/env.sh",
                );
                let config = EngineConfig {
                    device: DeviceChoice::Cpu,
                    queue_depth: 8,
                    ..Default::default()
                };
                Arc::new(Engine::load(std::path::Path::new(&dir), config).unwrap())
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
}

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
                    server.active.fetch_add(1, Ordering::Relaxed);
                    let response = server.answer(job.request).await;
                    server.active.fetch_sub(1, Ordering::Relaxed);
                    if let Err(e) = job.responder.send(response).await {
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

//! Serving jobs that arrive over libp2p: check them, run them on the engine,
//! sign a receipt, answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2p::{InboundJob, JobResponse};
use tokio::sync::mpsc;
use tracing::Instrument;
use wire::jobs::{JobRequest, Receipt, RefusalCode};
use wire::{JobId, MilliSats, NodeId, SignedEnvelope, UnixMillis};

use crate::admission::{ActiveJobs, Admission, Gate};
use crate::engine::{Engine, EngineError, DELTA_BUFFER};

/// What answering jobs needs.
pub struct JobServer {
    pub engine: Arc<Engine>,
    pub keypair: p2p::Keypair,
    pub node_id: NodeId,
    pub active: ActiveJobs,
    /// Jobs are refused unless it is open.
    pub admission: Gate,
    /// And unless the schedule has it open.
    pub hours: crate::schedule::Hours,
    /// The bids of the jobs the node holds now (its ads show the highest).
    pub bids: Bids,
}

/// The bids of the jobs a node is running or queueing; cheap to clone.
#[derive(Clone, Default)]
pub struct Bids(Arc<std::sync::Mutex<Vec<(JobId, MilliSats)>>>);

impl Bids {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(JobId, MilliSats)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds `bid` for `job` until the guard is dropped.
    fn hold(&self, job: JobId, bid: MilliSats) -> BidHeld {
        if !bid.is_zero() {
            self.lock().push((job.clone(), bid));
        }
        BidHeld {
            bids: self.clone(),
            job,
        }
    }

    /// The highest bid held now, if any job bids.
    pub fn top(&self) -> Option<MilliSats> {
        self.lock().iter().map(|(_, b)| *b).max()
    }
}

struct BidHeld {
    bids: Bids,
    job: JobId,
}

impl Drop for BidHeld {
    fn drop(&mut self) {
        self.bids.lock().retain(|(j, _)| j != &self.job);
    }
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
                    // A paused node says so at once, not after `Accepted`.
                    if let Some(refusal) = server.not_admitted() {
                        if let Err(e) = responder.send(refusal).await {
                            tracing::info!(error = %e, "could not send the refusal");
                        }
                        return;
                    }
                    let ahead = server.active.start();
                    let mut cancel = responder.cancel_signal();
                    let mut stop = responder.stop_signal();
                    let stop_flag = Arc::new(AtomicBool::new(false));
                    if let Err(e) = responder.accepted(ahead).await {
                        tracing::info!(error = %e, "consumer gone before the job started");
                        server.active.finish();
                        return;
                    }
                    // Generated text streams to the consumer as it is decoded;
                    // while the consumer is slow the engine holds it back.
                    let (deltas, mut streamed) = mpsc::channel(DELTA_BUFFER);
                    let answer =
                        server.answer_stoppable(request, Some(deltas), Some(stop_flag.clone()));
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
                            // The consumer's reader went away: end with
                            // what was generated, and a receipt for it.
                            () = stop.stopped(), if !stop_flag.load(Ordering::Relaxed) => {
                                tracing::info!("the consumer asked the job to stop");
                                stop_flag.store(true, Ordering::Relaxed);
                            }
                        }
                    };
                    server.active.finish();
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

    /// The refusal of a node that is not open to new jobs.
    fn not_admitted(&self) -> Option<JobResponse> {
        let message = match self.admission.get() {
            Admission::Open => {
                let now = UnixMillis::now();
                let status = self.hours.status(now)?;
                if status.open {
                    return None;
                }
                match status.opens_at {
                    Some(at) => format!(
                        "this node is outside its schedule; it opens again at {}",
                        wire::schedule::utc_text(at)
                    ),
                    None => {
                        "this node is outside its schedule and not open in the coming week".into()
                    }
                }
            }
            Admission::Paused => "this node is paused by its operator".into(),
            Admission::Draining => {
                "this node is draining: it finishes its jobs and takes no new ones".into()
            }
        };
        tracing::info!(%message, "job refused");
        Some(JobResponse::Refused {
            code: RefusalCode::NotAccepting,
            message,
        })
    }

    /// Checks a job, runs it and signs its receipt. Generated text also
    /// goes to `deltas` piece by piece while it is decoded.
    pub async fn answer(
        &self,
        request: JobRequest,
        deltas: Option<mpsc::Sender<String>>,
    ) -> JobResponse {
        self.answer_stoppable(request, deltas, None).await
    }

    /// [`JobServer::answer`], which setting `stop` ends early: a
    /// generation answers with what it has generated, and its receipt
    /// charges just that.
    pub async fn answer_stoppable(
        &self,
        request: JobRequest,
        deltas: Option<mpsc::Sender<String>>,
        stop: Option<Arc<AtomicBool>>,
    ) -> JobResponse {
        let received = UnixMillis::now();
        let refuse = |code: RefusalCode, message: String| {
            tracing::info!(?code, %message, "job refused");
            JobResponse::Refused { code, message }
        };
        if let Some(refusal) = self.not_admitted() {
            return refusal;
        }
        let Some(offer) = self.engine.offer(&request.model_hash) else {
            return refuse(
                RefusalCode::UnknownModel,
                format!("this node has no model with hash {}", request.model_hash),
            );
        };
        // The bid comes out of the budget: what is left pays for the job.
        let Some(budget) = request.max_price_msat.0.checked_sub(request.bid_msat.0) else {
            return refuse(
                RefusalCode::PriceTooLow,
                format!(
                    "the job bids {} but offers at most {} in all",
                    request.bid_msat, request.max_price_msat
                ),
            );
        };
        let budget = MilliSats(budget);
        if offer.price_msat > budget {
            return refuse(
                RefusalCode::PriceTooLow,
                format!(
                    "{} costs {} a job here; the job offers at most {} besides its bid",
                    offer.name, offer.price_msat, budget
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
        tracing::info!(model = %offer.name, bid = %request.bid_msat, "running job");
        let _bid = self.bids.hold(request.job_id.clone(), request.bid_msat);
        let run = model.run_bidding(
            request.input.clone(),
            budget,
            request.bid_msat,
            Instant::now() + left,
            deltas,
            stop,
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
        // The bid buys a place ahead of jobs that bid less: it is charged
        // only if the job took one.
        let priority = if done.overtook > 0 {
            request.bid_msat
        } else {
            MilliSats(0)
        };
        // Never above the budget: a price raised while a generation ran (on
        // a model loaded at the old one) is charged at most what was agreed.
        let price = MilliSats(
            offer
                .price_for(done.usage.input_tokens, done.usage.output_tokens)
                .0
                .min(budget.0),
        );
        let receipt = Receipt {
            job_id: request.job_id,
            node_id: self.node_id,
            model_hash: offer.hash,
            input_hash: request.input.digest(),
            output_hash: done.output.digest(),
            price_msat: MilliSats(price.0.saturating_add(priority.0)),
            priority_msat: priority,
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
    use super::*;
    use crate::engine::{DeviceChoice, EngineConfig};
    use wire::jobs::JobInput;
    use wire::{JobId, MilliSats, Sha256Digest};

    /// A job server with no models: admission is decided before any model.
    fn server(admission: Gate) -> JobServer {
        let dir = std::env::temp_dir().join(format!("infernet-no-models-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = EngineConfig {
            device: DeviceChoice::Cpu,
            ..Default::default()
        };
        let keypair = p2p::Keypair::generate_ed25519();
        JobServer {
            engine: Arc::new(Engine::load(&dir, config).unwrap()),
            node_id: NodeId::from(keypair.public().to_peer_id()),
            keypair,
            active: ActiveJobs::default(),
            admission,
            hours: crate::schedule::Hours::always(),
            bids: Bids::default(),
        }
    }

    fn request() -> JobRequest {
        JobRequest {
            job_id: JobId::from_random([1; 16]),
            model_hash: Sha256Digest::of(b"m"),
            input: JobInput::Embedding {
                texts: vec!["x".into()],
            },
            max_price_msat: MilliSats(1000),
            deadline: UnixMillis(UnixMillis::now().0 + 60_000),
            bid_msat: wire::MilliSats(0),
        }
    }

    #[tokio::test]
    async fn a_paused_or_draining_node_refuses_new_jobs_as_not_accepting() {
        let gate = Gate::default();
        let server = server(gate.clone());
        for state in [Admission::Paused, Admission::Draining] {
            gate.set(state);
            match server.answer(request(), None).await {
                JobResponse::Refused { code, message } => {
                    assert_eq!(code, RefusalCode::NotAccepting, "{state:?}");
                    assert!(message.contains(if state == Admission::Paused {
                        "paused"
                    } else {
                        "draining"
                    }));
                }
                other => panic!("{state:?}: {other:?}"),
            }
        }
        gate.set(Admission::Open);
        match server.answer(request(), None).await {
            JobResponse::Refused { code, .. } => assert_eq!(code, RefusalCode::UnknownModel),
            other => panic!("{other:?}"),
        }
    }
}

//! Running a recorded job on its node: the request over libp2p, the text
//! forwarded while it streams, the receipt checked against the job's terms,
//! and the end written with its event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};
use wire::jobs::{
    verify_receipt, JobAttempt, JobEvent, JobOutput, JobRecord, JobRequest, JobStatus, JobTerms,
    OutputPart, Receipt, RefusalCode,
};
use wire::{AccountId, SignedEnvelope, UnixMillis};

use super::{JobError, Jobs, Prepared, FINAL_WRITE_TRIES};
use crate::ledger::{Movement, Payee};
use crate::reputation::Outcome;

/// Where a job's streamed text goes: to its reader as fast as the reader
/// takes it, never holding up the node. Text the reader has no room for
/// waits here and goes joined with the next piece.
struct TextOut {
    tx: Option<mpsc::Sender<String>>,
    held: String,
    /// Someone reads the text as it streams (else the text is not wanted
    /// and its channel closes at once).
    streaming: Arc<AtomicBool>,
    /// Some output came from a node: the job has started there, and does
    /// not move to another node any more.
    started: bool,
}

impl TextOut {
    fn push(&mut self, delta: String) {
        let Some(tx) = &self.tx else { return };
        self.held.push_str(&delta);
        match tx.try_send(std::mem::take(&mut self.held)) {
            Ok(()) => {}
            Err(TrySendError::Full(text)) => self.held = text,
            Err(TrySendError::Closed(_)) => self.tx = None,
        }
    }

    /// A reader that was reading the stream went away (a closed HTTP
    /// connection): the job should stop and settle what was delivered.
    fn reader_left(&self) -> bool {
        self.tx.is_none() && self.streaming.load(Ordering::Relaxed)
    }

    /// Sends what is held, waiting for the reader: called once the job's
    /// end is recorded, so a slow reader delays nobody but itself.
    async fn flush(self) {
        if let (Some(tx), false) = (self.tx, self.held.is_empty()) {
            let _ = tx.send(self.held).await;
        }
    }
}

impl Jobs {
    /// Runs a job already recorded as dispatched and records how it ended.
    /// Generated text goes to `text` while it streams in.
    ///
    /// A job that fails on its node before any output (refused, the node
    /// unreachable, silent past the first-output timeout, a bad receipt)
    /// moves to the next candidate, under the same id and budget; the
    /// record keeps each failed try. Only the node that runs it is paid.
    pub(super) async fn run(
        &self,
        prepared: Prepared,
        text: mpsc::Sender<String>,
        streaming: Arc<AtomicBool>,
    ) -> Result<JobRecord, JobError> {
        let Prepared {
            mut record,
            candidates,
            mut request,
            owner,
            ..
        } = prepared;
        tracing::info!(model = %record.model, candidates = candidates.len(), "job dispatched");
        let mut text = TextOut {
            tx: Some(text),
            held: String::new(),
            streaming,
            started: false,
        };
        let mut candidates = candidates.into_iter().peekable();
        let mut tried_since = record.created_at;
        let outcome = loop {
            let Some(candidate) = candidates.next() else {
                break Err(JobError::Internal("a job with no node to run on".into()));
            };
            // The last candidate is waited for as long as the job may
            // take: there is nowhere else to go.
            let patience = if candidates.peek().is_some() {
                self.first_output
            } else {
                self.timeout
            };
            let outcome = self
                .dispatch(
                    &record,
                    candidate.addrs,
                    request.clone(),
                    &mut text,
                    patience,
                )
                .await;
            // Evidence of whether the node can be reached, for the
            // registry (and the next job's choice).
            match &outcome {
                Err(JobError::NodeUnreachable(e)) => {
                    self.registry
                        .job_reached(record.node_id, Err(e.clone()))
                        .await;
                }
                Ok(_) => self.registry.job_reached(record.node_id, Ok(())).await,
                Err(_) => {}
            }
            // And of what the node is worth (its reputation).
            let now = UnixMillis::now();
            let ms = now.0.saturating_sub(tried_since.0);
            let ran_on = outcome
                .as_ref()
                .map(|(_, _, receipt)| gpu_of(&receipt.device));
            if let Some(evidence) = evidence_of(ran_on, record.model_hash, ms) {
                self.registry
                    .reputations()
                    .job(record.node_id, evidence, now);
            }
            let error = match outcome {
                Err(error) if !text.started && moves_on(&error) => error,
                outcome => break outcome,
            };
            let Some(next) = candidates.peek() else {
                break Err(error);
            };
            let now = UnixMillis::now();
            tracing::warn!(%error, from = %record.node_id, to = %next.node, "the job moves to the next node");
            record.attempts.push(JobAttempt {
                node_id: record.node_id,
                started_at: tried_since,
                ended_at: now,
                error: crate::error::job_error_body(&error),
            });
            let event = JobEvent {
                status: JobStatus::Dispatched,
                at: now,
                message: Some(format!(
                    "{} failed ({error}); sent to {}",
                    record.node_id, next.node
                )),
            };
            record.node_id = next.node;
            let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
            request.deadline = UnixMillis(now.0.saturating_add(timeout_ms));
            match self.store.move_to(&record, request.deadline, &event).await {
                Ok(true) => {}
                // Given up on meanwhile (the reconciler): it stays so.
                Ok(false) => break Err(error),
                // The job's end writes where it ran, whatever happens here.
                Err(e) => tracing::warn!(error = %e, "could not record the job's move"),
            }
            record.events.push(event);
            tried_since = now;
        };
        let finished = UnixMillis::now();
        record.finished_at = Some(finished);
        let ended = match outcome {
            Ok((output, envelope, receipt)) => {
                record.status = JobStatus::Succeeded;
                record.output = Some(output);
                record.receipt = Some(envelope);
                record.price_msat = receipt.price_msat;
                let event = JobEvent {
                    status: JobStatus::Succeeded,
                    at: finished,
                    message: Some(format!("{} ms compute", receipt.compute_ms)),
                };
                let settle = self.charge(&record, &owner, finished).await;
                self.record_end(&record, &event, &settle).await;
                record.events.push(event);
                if let Some(verifier) = &self.verifier {
                    verifier.after_job(&record);
                }
                tracing::info!(compute_ms = receipt.compute_ms, "job succeeded");
                Ok(record)
            }
            Err(error) => {
                record.status = JobStatus::Failed;
                record.error = Some(crate::error::job_error_body(&error));
                let event = JobEvent {
                    status: JobStatus::Failed,
                    at: finished,
                    message: Some(error.to_string()),
                };
                let release =
                    Movement::release(&record.id, &owner, record.max_price_msat, finished);
                self.record_end(&record, &event, &release).await;
                tracing::warn!(%error, "job failed");
                Err(JobError::Failed {
                    job_id: record.id,
                    cause: Box::new(error),
                })
            }
        };
        text.flush().await;
        ended
    }

    /// How a succeeded job pays: its price from its hold to the node's
    /// operator (or, for a node nobody has enrolled, to its pending
    /// earnings), less the platform's fee; the rest back to the owner.
    async fn charge(&self, record: &JobRecord, owner: &AccountId, at: UnixMillis) -> Movement {
        let payee = match self.enrolments.operator_of(record.node_id).await {
            Ok(Some(operator)) => Payee::Operator(operator),
            Ok(None) => Payee::Node(record.node_id),
            Err(e) => {
                // Nothing is lost: a node's pending earnings move to its
                // operator at the next sweep.
                tracing::warn!(error = %e, "could not read the node's operator; paying its pending earnings");
                Payee::Node(record.node_id)
            }
        };
        Movement::charge(
            &record.id,
            owner,
            record.max_price_msat,
            record.price_msat,
            &payee,
            self.ledger.fee_bps(),
            at,
        )
        // The receipt was checked against the budget: a price above it
        // cannot get here. Should it, the consumer pays nothing.
        .unwrap_or_else(|_| Movement::release(&record.id, owner, record.max_price_msat, at))
    }

    /// Writes a job's end and settles its hold, trying a few times. If the
    /// database stays away, the caller still gets the job's outcome, and
    /// the record stays dispatched until the reconciler fails it as lost
    /// (releasing the hold).
    async fn record_end(&self, record: &JobRecord, event: &JobEvent, settle: &Movement) {
        for tries in 1..=FINAL_WRITE_TRIES {
            let locked = self.ledger.lock(&[settle]).await;
            let finished = self.store.finish(record, event, settle).await;
            drop(locked);
            match finished {
                Ok(true) => return,
                Ok(false) => {
                    // Only a job far past its deadline is given up on.
                    tracing::warn!("the job ended after it was recorded as lost; the record stays");
                    return;
                }
                Err(e) if tries < FINAL_WRITE_TRIES => {
                    tracing::warn!(error = %e, tries, "could not record the job's end; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not record the job's end; the reconciler will fail it as lost");
                }
            }
        }
    }

    /// Runs the job on `record.node_id`. The node has `patience` to
    /// answer (the dial included): to say it took the job, or with its
    /// first output; then the job's timeout.
    async fn dispatch(
        &self,
        record: &JobRecord,
        addrs: Vec<p2p::Multiaddr>,
        request: JobRequest,
        text: &mut TextOut,
        patience: Duration,
    ) -> Result<(JobOutput, SignedEnvelope, Receipt), JobError> {
        let peer = record.node_id;
        let network_err = |e| match e {
            p2p::NetworkError::Timeout => JobError::NodeTimeout(self.timeout.as_secs()),
            p2p::NetworkError::ConnectionClosed => JobError::NodeDisconnected,
            e @ (p2p::NetworkError::Protocol(_) | p2p::NetworkError::BadOutput(_)) => {
                JobError::NodeProtocol(e.to_string())
            }
            e => JobError::NodeUnreachable(e.to_string()),
        };
        let first_output = tokio::time::Instant::now() + patience;
        let silent = || JobError::NodeTimeout(patience.as_secs());
        let mut answered = false;
        let call = async {
            let mut call = tokio::time::timeout_at(
                first_output,
                self.network
                    .call_job(peer.peer_id(), addrs, request.clone()),
            )
            .await
            .map_err(|_| silent())?
            .map_err(network_err)?;
            let mut stopping = false;
            loop {
                let update = if answered {
                    call.next().await
                } else {
                    tokio::time::timeout_at(first_output, call.next())
                        .await
                        .map_err(|_| silent())?
                };
                answered = true;
                match update.map_err(network_err)? {
                    Some(p2p::JobUpdate::Output(OutputPart::Text { delta, .. })) => {
                        text.started = true;
                        text.push(delta);
                        if !stopping && text.reader_left() {
                            // The consumer went away: the node stops and
                            // signs a receipt for what it generated.
                            tracing::info!("the reader left: asking the node to stop");
                            stopping = true;
                            call.stop().await.map_err(network_err)?;
                        }
                    }
                    Some(p2p::JobUpdate::Finished(response)) => return Ok(response),
                    Some(p2p::JobUpdate::Output(_)) => text.started = true,
                    Some(p2p::JobUpdate::Accepted { .. }) => {}
                    None => return Err(JobError::NodeDisconnected),
                }
            }
        };
        let response = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| JobError::NodeTimeout(self.timeout.as_secs()))??;
        match response {
            p2p::JobResponse::Refused { code, message } => {
                Err(JobError::NodeRefused { code, message })
            }
            p2p::JobResponse::Done { output, receipt } => {
                let checked = verify_receipt(&receipt, &JobTerms::of(&request, peer), &output)?;
                Ok((output, receipt, checked))
            }
        }
    }
}

/// Whether a job that failed this way, before any output, goes to the
/// next node: yes when the node was the trouble, not when the job was
/// (its input) or its consumer (a cancel).
/// The GPU a receipt's device names (`cuda:N`); none for the CPU.
fn gpu_of(device: &str) -> Option<u8> {
    device.strip_prefix("cuda:")?.parse().ok()
}

/// What a try's outcome says of its node: it ran the job in `ms` (on the
/// GPU its receipt names); it failed it; it turned it down; or nothing
/// (the job itself was at fault).
fn evidence_of(
    outcome: Result<Option<u8>, &JobError>,
    model: wire::ModelHash,
    ms: u64,
) -> Option<Outcome> {
    match outcome {
        Ok(gpu) => Some(Outcome::Succeeded { model, ms, gpu }),
        Err(JobError::NodeRefused { code, .. }) => match code {
            RefusalCode::BadInput | RefusalCode::Cancelled => None,
            RefusalCode::Overloaded | RefusalCode::NotAccepting => Some(Outcome::Refused),
            // A model or price it advertises, an engine that fails, a
            // deadline it could not keep: the node's failure.
            RefusalCode::UnknownModel
            | RefusalCode::PriceTooLow
            | RefusalCode::EngineFailed
            | RefusalCode::DeadlineExceeded => Some(Outcome::Failed),
        },
        Err(
            JobError::NodeUnreachable(_)
            | JobError::NodeDisconnected
            | JobError::NodeTimeout(_)
            | JobError::NodeProtocol(_)
            | JobError::BadReceipt(_),
        ) => Some(Outcome::Failed),
        Err(_) => None,
    }
}

fn moves_on(error: &JobError) -> bool {
    match error {
        JobError::NodeRefused { code, .. } => {
            !matches!(code, RefusalCode::BadInput | RefusalCode::Cancelled)
        }
        JobError::NodeUnreachable(_)
        | JobError::NodeDisconnected
        | JobError::NodeTimeout(_)
        | JobError::NodeProtocol(_)
        | JobError::BadReceipt(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_moves_on_when_its_node_failed_it_not_when_the_job_itself_did() {
        let refused = |code| JobError::NodeRefused {
            code,
            message: String::new(),
        };
        for yes in [
            refused(RefusalCode::Overloaded),
            refused(RefusalCode::NotAccepting),
            refused(RefusalCode::UnknownModel),
            refused(RefusalCode::PriceTooLow),
            JobError::NodeUnreachable("no route".into()),
            JobError::NodeDisconnected,
            JobError::NodeTimeout(20),
        ] {
            assert!(moves_on(&yes), "{yes}");
        }
        for no in [
            refused(RefusalCode::BadInput),
            refused(RefusalCode::Cancelled),
            JobError::Internal("x".into()),
        ] {
            assert!(!moves_on(&no), "{no}");
        }
    }

    #[test]
    fn a_node_s_record_counts_what_it_did_not_what_the_job_did() {
        let model = wire::ModelHash::of(b"m");
        let refused = |code| -> Result<Option<u8>, JobError> {
            Err(JobError::NodeRefused {
                code,
                message: String::new(),
            })
        };
        assert_eq!(
            evidence_of(Ok(gpu_of("cuda:2")), model, 42),
            Some(Outcome::Succeeded {
                model,
                ms: 42,
                gpu: Some(2)
            })
        );
        assert_eq!(gpu_of("cpu"), None);
        for failed in [
            refused(RefusalCode::UnknownModel),
            refused(RefusalCode::EngineFailed),
            Err(JobError::NodeTimeout(20)),
            Err(JobError::NodeDisconnected),
            Err(JobError::NodeUnreachable("refused".into())),
        ] {
            assert_eq!(
                evidence_of(failed.as_ref().copied(), model, 1),
                Some(Outcome::Failed)
            );
        }
        for busy in [
            refused(RefusalCode::Overloaded),
            refused(RefusalCode::NotAccepting),
        ] {
            assert_eq!(
                evidence_of(busy.as_ref().copied(), model, 1),
                Some(Outcome::Refused)
            );
        }
        for not_its_fault in [
            refused(RefusalCode::BadInput),
            refused(RefusalCode::Cancelled),
            Err(JobError::ModelName),
        ] {
            assert_eq!(evidence_of(not_its_fault.as_ref().copied(), model, 1), None);
        }
    }

    #[tokio::test]
    async fn a_slow_reader_gets_the_held_text_joined_up_and_never_stalls_the_job() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut out = TextOut {
            tx: Some(tx),
            held: String::new(),
            streaming: Arc::new(AtomicBool::new(true)),
            started: false,
        };
        for piece in ["one ", "two ", "three"] {
            out.push(piece.into());
        }
        assert_eq!(rx.try_recv().unwrap(), "one ");
        out.push("!".into());
        assert_eq!(rx.try_recv().unwrap(), "two three!");
        out.push("x".into());
        out.push(" more".into());
        // The reader is full again: the flush waits for it.
        let flushed = tokio::spawn(out.flush());
        assert_eq!(rx.recv().await.unwrap(), "x");
        assert_eq!(rx.recv().await.unwrap(), " more");
        flushed.await.unwrap();
        assert!(
            rx.recv().await.is_none(),
            "the sender is gone after the flush"
        );
    }

    #[tokio::test]
    async fn a_reader_that_went_away_is_forgotten() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut out = TextOut {
            tx: Some(tx),
            held: String::new(),
            streaming: Arc::new(AtomicBool::new(true)),
            started: false,
        };
        out.push("lost".into());
        assert!(out.tx.is_none());
        out.flush().await;
    }
}

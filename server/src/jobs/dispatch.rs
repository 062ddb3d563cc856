//! Running a recorded job on its node: the request over libp2p, the text
//! forwarded while it streams, the receipt checked against the job's terms,
//! and the end written with its event.

use std::time::Duration;

use tokio::sync::mpsc;
use wire::jobs::{
    verify_receipt, JobEvent, JobOutput, JobRecord, JobRequest, JobStatus, JobTerms, OutputPart,
    Receipt,
};
use wire::{SignedEnvelope, UnixMillis};

use super::{JobError, Jobs, Prepared, FINAL_WRITE_TRIES};

impl Jobs {
    /// Runs a job already recorded as dispatched and records how it ended.
    /// Generated text goes to `text` as it streams in, as fast as its
    /// reader takes it (a dropped reader is not waited for).
    pub(super) async fn run(
        &self,
        prepared: Prepared,
        text: mpsc::Sender<String>,
    ) -> Result<JobRecord, JobError> {
        let Prepared {
            mut record,
            addrs,
            request,
        } = prepared;
        tracing::info!(model = %record.model, "job dispatched");
        let outcome = self.dispatch(&record, addrs, request, text).await;
        let finished = UnixMillis::now();
        record.finished_at = Some(finished);
        match outcome {
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
                self.record_end(&record, &event).await?;
                record.events.push(event);
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
                self.record_end(&record, &event).await?;
                tracing::warn!(%error, "job failed");
                Err(JobError::Failed {
                    job_id: record.id,
                    cause: Box::new(error),
                })
            }
        }
    }

    /// Writes a job's end, trying a few times; if the database stays away,
    /// the job stays dispatched and the reconciler fails it later.
    async fn record_end(&self, record: &JobRecord, event: &JobEvent) -> Result<(), JobError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.store.finish(record, event).await {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    // Only a job far past its deadline is given up on.
                    tracing::warn!("the job ended after it was recorded as lost; the record stays");
                    return Ok(());
                }
                Err(e) if tries < FINAL_WRITE_TRIES => {
                    tracing::warn!(error = %e, tries, "could not record the job's end; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not record the job's end; the reconciler will");
                    return Err(e.into());
                }
            }
        }
    }

    async fn dispatch(
        &self,
        record: &JobRecord,
        addrs: Vec<p2p::Multiaddr>,
        request: JobRequest,
        text: mpsc::Sender<String>,
    ) -> Result<(JobOutput, SignedEnvelope, Receipt), JobError> {
        let peer = record.node_id;
        let network_err = |e| match e {
            p2p::NetworkError::Timeout => JobError::NodeTimeout(self.timeout.as_secs()),
            p2p::NetworkError::ConnectionClosed => JobError::NodeDisconnected,
            e => JobError::NodeUnreachable(e.to_string()),
        };
        let call = async {
            let mut call = self
                .network
                .call_job(peer.peer_id(), addrs, request.clone())
                .await
                .map_err(network_err)?;
            let mut text = Some(text);
            loop {
                match call.next().await.map_err(network_err)? {
                    Some(p2p::JobUpdate::Output(OutputPart::Text { delta, .. })) => {
                        // Waiting here holds the node's stream back: text
                        // goes no faster than its reader takes it.
                        if let Some(tx) = &text {
                            if tx.send(delta).await.is_err() {
                                text = None;
                            }
                        }
                    }
                    Some(p2p::JobUpdate::Finished(response)) => return Ok(response),
                    Some(_) => {}
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

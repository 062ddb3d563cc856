//! One check job: a request to one node over the job protocol, its receipt
//! checked against the terms, and the node paid from the `checks` book as
//! for any job (the node cannot tell a check from a consumer's job).

use std::time::Duration;

use wire::jobs::{verify_receipt, JobInput, JobOutput, JobRequest, JobTerms, Receipt};
use wire::registry::NodeInfo;
use wire::{JobId, MilliSats, ModelHash, NodeId, SignedEnvelope, UnixMillis};

use super::Verifier;
use crate::ledger::{Movement, Payee};

/// A node's answer to a check, as its receipt vouches for it.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub(super) job_id: JobId,
    pub(super) node: NodeId,
    pub(super) output: JobOutput,
    pub(super) receipt: SignedEnvelope,
}

/// Why a check got no answer to compare.
#[derive(Debug, thiserror::Error)]
pub(super) enum CallError {
    #[error("{0}")]
    Network(#[from] p2p::NetworkError),
    #[error("refused: {0}")]
    Refused(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the stream ended without an answer")]
    Ended,
    #[error("bad receipt: {0}")]
    Receipt(#[from] wire::jobs::ReceiptError),
}

impl Verifier {
    /// Sends `input` for `model` to `node` as a job of its own, within
    /// `budget`, and pays it once its receipt checks out.
    pub(super) async fn call(
        &self,
        node: &NodeInfo,
        model: ModelHash,
        input: &JobInput,
        budget: MilliSats,
    ) -> Result<Answer, CallError> {
        let timeout = self.0.timeout;
        let now = UnixMillis::now();
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let request = JobRequest {
            job_id: JobId::from_random(uuid::Uuid::new_v4().into_bytes()),
            model_hash: model,
            input: input.clone(),
            max_price_msat: budget,
            deadline: UnixMillis(now.0.saturating_add(timeout_ms)),
            bid_msat: MilliSats(0),
        };
        let addrs = node
            .multiaddrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let peer = node.peer_id;
        let network = self.0.network.clone();
        let sent = request.clone();
        let answer = async move {
            let mut call = network.call_job(peer.peer_id(), addrs, sent).await?;
            loop {
                match call.next().await? {
                    Some(p2p::JobUpdate::Finished(response)) => return Ok(response),
                    Some(_) => {}
                    None => return Err(CallError::Ended),
                }
            }
        };
        let response = tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| CallError::Timeout(timeout))??;
        let (output, receipt) = match response {
            p2p::JobResponse::Refused { code, message } => {
                return Err(CallError::Refused(format!("{}: {message}", code.as_str())))
            }
            p2p::JobResponse::Done { output, receipt } => (output, receipt),
        };
        let checked: Receipt = verify_receipt(&receipt, &JobTerms::of(&request, peer), &output)?;
        self.pay(&request.job_id, peer, checked.price_msat).await;
        Ok(Answer {
            job_id: request.job_id,
            node: peer,
            output,
            receipt,
        })
    }

    /// Pays a check's price to the node's operator (or its pending
    /// earnings), less the platform's fee, as a consumer's job would.
    async fn pay(&self, job: &JobId, node: NodeId, price: MilliSats) {
        let payee = match self.0.enrolments.operator_of(node).await {
            Ok(Some(operator)) => Payee::Operator(operator),
            _ => Payee::Node(node),
        };
        let movement = Movement::check(
            job,
            &payee,
            price,
            self.0.ledger.fee_bps(),
            UnixMillis::now(),
        );
        if let Err(e) = self.0.ledger.apply(&movement).await {
            tracing::warn!(job_id = %job, error = %e, "could not pay a check job");
        }
    }
}

//! The receipt a node signs for a finished job, and the one check every
//! party (server, consumer library, browser) runs on it.

use serde::{Deserialize, Serialize};

use super::{JobInput, JobOutput, JobRequest};
use crate::signing::{Signable, SignedEnvelope, SigningError};
use crate::{JobId, MilliSats, ModelHash, NodeId, Sha256Digest, UnixMillis};

/// What a job used, as metered by the node. The price is computed from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// This job's share of the device time of the batches it ran in.
    pub device_ms: u64,
}

/// What the node signs about a finished job. Anyone holding the job's input
/// and output can check every hash in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    pub job_id: JobId,
    pub node_id: NodeId,
    pub model_hash: ModelHash,
    pub input_hash: Sha256Digest,
    pub output_hash: Sha256Digest,
    pub price_msat: MilliSats,
    pub received_at: UnixMillis,
    pub finished_at: UnixMillis,
    /// Time spent waiting for the engine.
    pub queue_ms: u64,
    /// Time spent computing, tokenisation included.
    pub compute_ms: u64,
    pub device: String,
    /// What the job used; `price_msat` is computed from it.
    #[serde(default)]
    pub usage: Usage,
    /// The job's bid, charged (and part of `price_msat`) because it went
    /// ahead of jobs that bid less.
    #[serde(default, skip_serializing_if = "MilliSats::is_zero")]
    pub priority_msat: MilliSats,
}

impl Signable for Receipt {
    const DOMAIN: &'static str = "infernet/receipt/v1";
    fn signer(&self) -> NodeId {
        self.node_id
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt signature: {0}")]
    Signature(#[from] SigningError),
    #[error("receipt is signed by {actual}, but the job ran on {expected}")]
    WrongNode { expected: String, actual: String },
    #[error("receipt names job {actual}, not {expected}")]
    WrongJob { expected: String, actual: String },
    #[error("receipt's {what} hash does not match the job's")]
    HashMismatch { what: &'static str },
    #[error("receipt charges {charged}, above the agreed maximum {max}")]
    Overcharged { charged: MilliSats, max: MilliSats },
}

/// What the consumer and the node agreed on for one job: a receipt must be
/// about exactly this job, and charge no more than its maximum.
#[derive(Debug, Clone, Copy)]
pub struct JobTerms<'a> {
    pub job_id: &'a JobId,
    pub node: NodeId,
    pub model_hash: ModelHash,
    pub input: &'a JobInput,
    /// The most the consumer agreed to pay (the request's `max_price_msat`).
    pub max_price: MilliSats,
}

impl<'a> JobTerms<'a> {
    /// The terms of `request`, sent to `node`.
    pub fn of(request: &'a JobRequest, node: NodeId) -> Self {
        JobTerms {
            job_id: &request.job_id,
            node,
            model_hash: request.model_hash,
            input: &request.input,
            max_price: request.max_price_msat,
        }
    }
}

/// Checks a receipt against the job it claims to be for: signature, node,
/// job id, the model, input and output hashes, and that its price is within
/// the agreed maximum.
pub fn verify_receipt(
    envelope: &SignedEnvelope,
    terms: &JobTerms<'_>,
    output: &JobOutput,
) -> Result<Receipt, ReceiptError> {
    let receipt: Receipt = envelope.open()?;
    if receipt.node_id != terms.node {
        return Err(ReceiptError::WrongNode {
            expected: terms.node.to_string(),
            actual: receipt.node_id.to_string(),
        });
    }
    if &receipt.job_id != terms.job_id {
        return Err(ReceiptError::WrongJob {
            expected: terms.job_id.to_string(),
            actual: receipt.job_id.to_string(),
        });
    }
    if receipt.model_hash != terms.model_hash {
        return Err(ReceiptError::HashMismatch { what: "model" });
    }
    if receipt.input_hash != terms.input.digest() {
        return Err(ReceiptError::HashMismatch { what: "input" });
    }
    if receipt.output_hash != output.digest() {
        return Err(ReceiptError::HashMismatch { what: "output" });
    }
    if receipt.price_msat > terms.max_price {
        return Err(ReceiptError::Overcharged {
            charged: receipt.price_msat,
            max: terms.max_price,
        });
    }
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p_identity::Keypair;

    struct Done {
        job_id: JobId,
        input: JobInput,
        output: JobOutput,
        receipt: Receipt,
    }

    fn done_job(key: &Keypair) -> Done {
        let job_id = JobId::from_random([7; 16]);
        let input = JobInput::Embedding {
            texts: vec!["a cat".into()],
        };
        let output = JobOutput::Embedding {
            dim: 2,
            vectors: vec![vec![0.6, 0.8]],
        };
        let receipt = Receipt {
            job_id: job_id.clone(),
            node_id: key.public().to_peer_id().into(),
            model_hash: Sha256Digest::of(b"model"),
            input_hash: input.digest(),
            output_hash: output.digest(),
            price_msat: MilliSats(1000),
            received_at: UnixMillis(1),
            finished_at: UnixMillis(2),
            queue_ms: 0,
            compute_ms: 1,
            device: "cpu".into(),
            usage: Usage::default(),
            priority_msat: MilliSats(0),
        };
        Done {
            job_id,
            input,
            output,
            receipt,
        }
    }

    impl Done {
        fn terms(&self, max_price: MilliSats) -> JobTerms<'_> {
            JobTerms {
                job_id: &self.job_id,
                node: self.receipt.node_id,
                model_hash: self.receipt.model_hash,
                input: &self.input,
                max_price,
            }
        }
    }

    #[test]
    fn receipt_verifies_against_its_job() {
        let key = Keypair::generate_ed25519();
        let done = done_job(&key);
        let env = SignedEnvelope::seal(&key, &done.receipt).unwrap();
        let got = verify_receipt(&env, &done.terms(MilliSats(1000)), &done.output).unwrap();
        assert_eq!(got, done.receipt);
    }

    #[test]
    fn receipt_for_a_different_output_is_rejected() {
        let key = Keypair::generate_ed25519();
        let done = done_job(&key);
        let env = SignedEnvelope::seal(&key, &done.receipt).unwrap();
        let other = JobOutput::Embedding {
            dim: 2,
            vectors: vec![vec![0.8, 0.6]],
        };
        assert_eq!(
            verify_receipt(&env, &done.terms(MilliSats(1000)), &other),
            Err(ReceiptError::HashMismatch { what: "output" })
        );
    }

    #[test]
    fn receipt_from_another_node_is_rejected() {
        let key = Keypair::generate_ed25519();
        let done = done_job(&key);
        let env = SignedEnvelope::seal(&key, &done.receipt).unwrap();
        let mut terms = done.terms(MilliSats(1000));
        terms.node = NodeId::from(Keypair::generate_ed25519().public().to_peer_id());
        assert!(matches!(
            verify_receipt(&env, &terms, &done.output),
            Err(ReceiptError::WrongNode { .. })
        ));
    }

    #[test]
    fn receipt_charging_more_than_the_agreed_maximum_is_rejected() {
        let key = Keypair::generate_ed25519();
        let done = done_job(&key);
        let env = SignedEnvelope::seal(&key, &done.receipt).unwrap();
        assert_eq!(
            verify_receipt(&env, &done.terms(MilliSats(999)), &done.output),
            Err(ReceiptError::Overcharged {
                charged: MilliSats(1000),
                max: MilliSats(999)
            })
        );
    }
}

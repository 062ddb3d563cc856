//! Jobs as the server's HTTP API takes and keeps them: the submission, the
//! record with its status history, and the list entries.

use serde::{Deserialize, Serialize};

use super::{JobInput, JobOutput, JobTerms};
use crate::api::ErrorBody;
use crate::registry::Task;
use crate::{JobId, MilliSats, ModelHash, NodeId, SignedEnvelope, UnixMillis};

/// `POST /api/v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(example = json!({
        "model": "all-minilm-l6-v2",
        "input": {"texts": ["a cat sat on the mat"]},
        "max_price_msat": 20000
    }))
)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// A model name or content hash.
    pub model: String,
    /// Task-specific; for embeddings `{"texts": [...]}`.
    pub input: serde_json::Value,
    /// Run on this node only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    /// Run on a node of this public pool only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_msat: Option<MilliSats>,
    /// Offered on top of the price to jump a busy node's queue (held with
    /// the budget; charged only if the job went ahead of another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid_msat: Option<MilliSats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Sent to a node; waiting for its answer.
    Dispatched,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Dispatched => "dispatched",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobEvent {
    pub status: JobStatus,
    pub at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A job as the server keeps it and `GET /api/v1/jobs/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobRecord {
    pub id: JobId,
    pub model: String,
    pub model_hash: ModelHash,
    pub task: Task,
    pub node_id: NodeId,
    pub status: JobStatus,
    pub input: JobInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<JobOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<SignedEnvelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// What the job cost: the receipt's price once it succeeded, else 0.
    pub price_msat: MilliSats,
    /// The most the consumer agreed to pay: the node may not charge more.
    #[serde(default)]
    pub max_price_msat: MilliSats,
    pub created_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
    #[serde(default)]
    pub events: Vec<JobEvent>,
    /// Tries on other nodes that failed before `node_id` took the job
    /// (refused, unreachable, or silent past the first-output timeout), in
    /// order. Only the node that ran the job is paid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<JobAttempt>,
}

/// A try of a job on a node that did not run it: the job moved on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobAttempt {
    pub node_id: NodeId,
    pub started_at: UnixMillis,
    pub ended_at: UnixMillis,
    /// Why it failed, as the job's own error would say it.
    pub error: ErrorBody,
}

impl JobRecord {
    /// What the job's receipt must match.
    pub fn terms(&self) -> JobTerms<'_> {
        JobTerms {
            job_id: &self.id,
            node: self.node_id,
            model_hash: self.model_hash,
            input: &self.input,
            max_price: self.max_price_msat,
        }
    }
}

/// A page of `GET /api/v1/jobs`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobPage {
    pub jobs: Vec<JobSummary>,
    /// Pass as `cursor` to get the next (older) page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Where a page of one's jobs starts: after the job created at `created_at`
/// with id `id` (newest first, ties broken by id). Written
/// `<created_at>.<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCursor {
    pub created_at: UnixMillis,
    pub id: JobId,
}

impl JobCursor {
    pub fn after(job: &JobSummary) -> Self {
        JobCursor {
            created_at: job.created_at,
            id: job.id.clone(),
        }
    }
}

impl std::fmt::Display for JobCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.created_at.0, self.id)
    }
}

impl std::str::FromStr for JobCursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "not a job list cursor: {:?}",
                s.chars().take(80).collect::<String>()
            )
        };
        let (at, id) = s.split_once('.').ok_or_else(bad)?;
        Ok(JobCursor {
            created_at: UnixMillis(at.parse().map_err(|_| bad())?),
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// One line of `GET /api/v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSummary {
    pub id: JobId,
    pub model: String,
    pub node_id: NodeId,
    pub status: JobStatus,
    pub price_msat: MilliSats,
    pub created_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_cursors_round_trip_and_refuse_garbage() {
        let cursor = JobCursor {
            created_at: UnixMillis(1_764_000_000_123),
            id: JobId::from_random([7; 16]),
        };
        let text = cursor.to_string();
        assert_eq!(text, format!("1764000000123.{}", "07".repeat(16)));
        assert_eq!(text.parse::<JobCursor>(), Ok(cursor));
        for bad in [
            "",
            "12",
            "x.0707",
            "12.nothex",
            &format!("-1.{}", "07".repeat(16)),
        ] {
            assert!(bad.parse::<JobCursor>().is_err(), "{bad:?} parsed");
        }
    }
}

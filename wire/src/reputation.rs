//! A node's public reputation: what the servers saw it do, summed up.
//!
//! Every figure comes from evidence a server holds: the heartbeats and ads
//! it received (uptime), the jobs it sent the node and how they ended
//! (completion, latency), the canary jobs whose answers it knew, and the
//! disputes the node lost. How the score is made of them is written down
//! in the README ("Reputation") and in `server::reputation`.

use serde::{Deserialize, Serialize};

use crate::{ModelHash, UnixMillis};

/// How many days of evidence the reputation covers.
pub const REPUTATION_DAYS: u32 = 30;

/// A node's reputation over the last [`REPUTATION_DAYS`] days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reputation {
    /// 0 to 100: completion × uptime × canary pass rate, halved for every
    /// dispute lost (each with a prior, so a newcomer starts near 81).
    pub score: u8,
    /// Share of the five-minute slots since the node was first seen in
    /// which it was heard from (heartbeat or ad), in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_pct: Option<f64>,
    /// Jobs the node took that ended (succeeded or failed by the node).
    pub jobs: u64,
    /// Of those, the ones the node failed: unreachable, silent, broken
    /// off, refused a model it advertises, a bad receipt.
    pub failed: u64,
    /// `jobs - failed` over `jobs`, in percent; none before any job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_pct: Option<f64>,
    /// Failed or refused tries in the last fifteen minutes (routing
    /// weighs them; they are not part of the score).
    #[serde(default)]
    pub recent_failures: u32,
    /// Latency of its succeeded jobs per model, from the server sending
    /// the job to its signed receipt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency: Vec<ModelLatency>,
    #[serde(default)]
    pub canaries_passed: u64,
    #[serde(default)]
    pub canaries_failed: u64,
    #[serde(default)]
    pub disputes_lost: u64,
    /// The GPUs (by index, `cuda:N`) that ran jobs whose signed receipts
    /// checked out. GPUs a node lists and no job has used are claims only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus_backed: Vec<u32>,
}

impl Reputation {
    /// Whether the node's GPU `index` has served a verified job.
    pub fn gpu_backed(&self, index: usize) -> bool {
        self.gpus_backed.iter().any(|g| *g as usize == index)
    }
}

/// The latency of one model's succeeded jobs on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelLatency {
    pub model: ModelHash,
    pub jobs: u64,
    pub p50_ms: u64,
    pub p95_ms: u64,
}

/// One UTC day of a node's record (`GET /nodes/{id}/reputation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReputationDay {
    /// The day's first instant.
    pub day: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_pct: Option<f64>,
    pub jobs: u64,
    pub failed: u64,
}

/// A node's reputation and the days it is made of, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReputationReport {
    pub reputation: Reputation,
    pub days: Vec<ReputationDay>,
}

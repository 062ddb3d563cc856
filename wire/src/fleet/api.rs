//! The fleet API's views (`/api/v1/fleet`): commands and their audit log,
//! the live fleet, its events, and each node's record and earnings.

use serde::{Deserialize, Serialize};

use super::{Action, AlertView, CommandId, Telemetry};
use crate::ids::UnixMillis;

/// Where a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Waiting for the node to connect.
    Queued,
    /// Written to the node's link.
    Sent,
    /// The node has it and is running it.
    Acked,
    Succeeded,
    Failed,
    /// Never reached the node before it expired.
    Expired,
    /// The caller may not command this node (kept for the node's operator).
    Refused,
}

impl CommandStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CommandStatus::Succeeded
                | CommandStatus::Failed
                | CommandStatus::Expired
                | CommandStatus::Refused
        )
    }
}

/// `POST /api/v1/fleet/commands`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewCommand {
    /// The nodes to command (each gets a command of its own).
    #[serde(default)]
    pub nodes: Vec<crate::NodeId>,
    /// And every node of the fleet that carries this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub action: Action,
    /// How long a command may wait for an offline node [default: 3600].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

/// Most nodes one request may command.
pub const MAX_COMMAND_NODES: usize = 1000;
/// The longest a command may wait for its node.
pub const MAX_COMMAND_WAIT_SECS: u64 = 7 * 24 * 3600;
/// How long a command waits for its node unless told.
pub const DEFAULT_COMMAND_WAIT_SECS: u64 = 3600;

/// One command, as the audit log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandView {
    pub id: CommandId,
    pub node_id: crate::NodeId,
    pub action: Action,
    pub status: CommandStatus,
    /// Who sent it: "session" or "key <prefix>", and the account.
    pub issued_by: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
    /// The node's words on the result, or why it failed or was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One of the operator's nodes, live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetNode {
    pub node_id: crate::NodeId,
    pub enrolled_at: UnixMillis,
    /// Whether its fleet link is open now.
    pub online: bool,
    /// When the link opened (online) or closed (offline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<UnixMillis>,
    /// The server's clock when the last telemetry arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Telemetry>,
    /// What the registry knows (hardware, models, prices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<crate::registry::NodeInfo>,
    /// The operator's private labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// What `GET /api/v1/fleet/events` pushes (server-sent events, one JSON
/// object per event, `event:` naming its type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FleetEvent {
    Telemetry {
        node_id: crate::NodeId,
        at: UnixMillis,
        telemetry: Box<Telemetry>,
    },
    Online {
        node_id: crate::NodeId,
        at: UnixMillis,
    },
    Offline {
        node_id: crate::NodeId,
        at: UnixMillis,
        reason: String,
    },
    Command(Box<CommandView>),
    Alert(Box<AlertView>),
}

impl FleetEvent {
    pub fn node_id(&self) -> crate::NodeId {
        match self {
            FleetEvent::Telemetry { node_id, .. }
            | FleetEvent::Online { node_id, .. }
            | FleetEvent::Offline { node_id, .. } => *node_id,
            FleetEvent::Command(c) => c.node_id,
            FleetEvent::Alert(a) => a.node_id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            FleetEvent::Telemetry { .. } => "telemetry",
            FleetEvent::Online { .. } => "online",
            FleetEvent::Offline { .. } => "offline",
            FleetEvent::Command(_) => "command",
            FleetEvent::Alert(_) => "alert",
        }
    }
}

/// One node's record over a window, as its operator sees it: the evidence
/// its reputation is built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeStats {
    pub node_id: crate::NodeId,
    /// Share of the window's five-minute slots in which the node reported
    /// telemetry, percent.
    pub uptime_pct: f32,
    /// The same, per UTC day of the window, oldest first.
    pub uptime_by_day: Vec<DayUptime>,
    pub jobs_succeeded: u64,
    pub jobs_failed: u64,
    /// Succeeded of all ended jobs, percent; `None` without any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_pct: Option<f32>,
    /// Median time from dispatch to answer of its succeeded jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_latency_ms: Option<u64>,
    /// What its jobs earned its operator in the window.
    pub earned_msat: crate::MilliSats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayUptime {
    /// The day's start (UTC midnight).
    pub day: UnixMillis,
    pub uptime_pct: f32,
}

/// `GET /api/v1/fleet/stats?days=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetStats {
    pub since: UnixMillis,
    pub until: UnixMillis,
    pub nodes: Vec<NodeStats>,
}

/// A node's jobs in one bucket of time (its charts: jobs per hour,
/// failure rate, latency, earnings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityBucket {
    /// When the bucket begins.
    pub at: UnixMillis,
    pub succeeded: u32,
    pub failed: u32,
    /// Median time from dispatch to answer of its succeeded jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_latency_ms: Option<u64>,
    /// What its jobs earned the operator (the ledger's postings).
    pub earned_msat: crate::MilliSats,
}

/// `GET /api/v1/fleet/nodes/{id}/activity?since=&until=`: the node's jobs
/// in buckets of `bucket_ms`, oldest first, empty buckets included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeActivity {
    pub since: UnixMillis,
    pub until: UnixMillis,
    pub bucket_ms: u64,
    pub buckets: Vec<ActivityBucket>,
}

/// One line of the earnings breakdown: what one model earned on one
/// device of one node on one UTC day. The lines add up to the ledger's
/// earnings postings of the same jobs, to the millisatoshi.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EarningsLine {
    pub day: UnixMillis,
    pub node_id: crate::NodeId,
    /// "cpu" or "cuda:N", from the job's receipt.
    pub device: String,
    pub model: String,
    pub jobs: u64,
    pub earned_msat: crate::MilliSats,
}

/// `GET /api/v1/fleet/earnings?since=&until=&format=json|csv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Earnings {
    pub since: UnixMillis,
    pub until: UnixMillis,
    pub lines: Vec<EarningsLine>,
    pub total_msat: crate::MilliSats,
}

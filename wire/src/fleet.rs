//! The fleet link: one long-lived stream that an enrolled node opens to the
//! server it is pinned to ([`FLEET_PROTOCOL`]), on the connection it already
//! keeps, so that no inbound port is ever needed. The node writes
//! [`NodeFrame`]s (telemetry every few seconds, acknowledgements and results
//! of commands); the server writes [`ServerFrame`]s (commands from the
//! node's operator). The stream's far end is authenticated by libp2p's
//! Noise handshake: a node takes commands only on the link it opened to its
//! pinned server's peer id.
//!
//! Telemetry values are gauges, not money, so floats are fine here. GPU
//! fields are named as NVIDIA's DCGM exporter names them (in the comments),
//! and `/metrics` uses those names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{ModelHash, UnixMillis};

/// libp2p protocol id of the fleet link.
pub const FLEET_PROTOCOL: &str = "/infernet/fleet/1.0.0";
/// Largest frame either side writes on the fleet link.
pub const MAX_FLEET_FRAME_BYTES: u64 = 256 * 1024;

/// A command's id: `cmd_` and 32 hex characters, chosen by the server.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommandId(String);

impl CommandId {
    /// Wraps 16 random bytes (this crate has no RNG).
    pub fn from_random(bytes: [u8; 16]) -> Self {
        CommandId(format!("cmd_{}", hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CommandId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("cmd_") {
            Some(hex) if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(CommandId(s.to_ascii_lowercase()))
            }
            _ => Err(format!(
                "`{}` is not a command id",
                s.chars().take(48).collect::<String>()
            )),
        }
    }
}

impl TryFrom<String> for CommandId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CommandId> for String {
    fn from(id: CommandId) -> String {
        id.0
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandId({})", self.0)
    }
}

/// A new price for one model the node offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// The model, by content hash.
    pub model: ModelHash,
    /// What a job costs before tokens.
    pub price_msat: crate::MilliSats,
    /// Per metered token.
    #[serde(default)]
    pub token_price: crate::pricing::TokenPrice,
}

/// Most models one price change may name.
pub const MAX_PRICES: usize = 256;

/// What an operator asks a node to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Take no new jobs (and say so in the ads) until resumed.
    Pause,
    /// Take jobs again.
    Resume,
    /// Take no new jobs; the result comes once the running ones finished.
    Drain,
    /// Change the prices of some models (all or none; the others keep
    /// theirs); the node's ads carry them at once.
    SetPrices { prices: Vec<ModelPrice> },
}

impl Action {
    /// Its name in words, for the audit log.
    pub fn describe(&self) -> String {
        match self {
            Action::Pause => "pause".into(),
            Action::Resume => "resume".into(),
            Action::Drain => "drain".into(),
            Action::SetPrices { prices } => match prices.as_slice() {
                [one] => format!("set price of {} to {} msat", one.model, one.price_msat.0),
                many => format!("set prices of {} models", many.len()),
            },
        }
    }

    /// Checks what can be checked before the node sees it.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Action::SetPrices { prices } if prices.is_empty() || prices.len() > MAX_PRICES => {
                Err(format!("set_prices names 1 to {MAX_PRICES} models"))
            }
            _ => Ok(()),
        }
    }
}

/// A command as it travels to the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub id: CommandId,
    pub action: Action,
    /// After this the node must not run it (it waited too long).
    pub expires_at: UnixMillis,
}

/// How a command ended on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded { detail: String },
    Failed { reason: String },
}

/// Server → node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Command(Command),
}

/// Node → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeFrame {
    Telemetry(Box<Telemetry>),
    /// The node has the command and will run it.
    Ack {
        id: CommandId,
    },
    /// The command ran (a drain: once the running jobs finished).
    Result {
        id: CommandId,
        outcome: Outcome,
    },
}

/// Whether the node takes jobs, as its operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdmissionState {
    Open,
    Paused,
    Draining,
    /// Draining, and nothing is running any more.
    Drained,
}

/// How others reach the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReachabilityKind {
    /// Dialled directly at a confirmed address.
    Public,
    /// Through a relay's reservation.
    Relayed,
    /// Neither: only its own outbound connections work.
    Unreachable,
    /// Not known yet (start-up).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reachability {
    pub kind: ReachabilityKind,
    /// What to fix, when it is not public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One GPU's gauges (NVML), with the DCGM exporter's names alongside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuTelemetry {
    pub index: u32,
    pub name: String,
    /// `DCGM_FI_DEV_GPU_UTIL`, percent.
    pub util_pct: f32,
    /// `DCGM_FI_DEV_FB_USED`, MiB.
    pub mem_used_mib: u64,
    /// `DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE`, MiB.
    pub mem_total_mib: u64,
    /// `DCGM_FI_DEV_GPU_TEMP`, °C.
    pub temp_c: f32,
    /// `DCGM_FI_DEV_POWER_USAGE`, W.
    pub power_w: f32,
}

/// A model being fetched from the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Download {
    pub model: ModelHash,
    pub done_bytes: u64,
    pub total_bytes: u64,
}

/// What a node reports every few seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// The node's clock when it measured.
    pub at: UnixMillis,
    pub gpus: Vec<GpuTelemetry>,
    /// All cores together, percent.
    pub cpu_pct: f32,
    pub ram_used_mib: u64,
    pub ram_total_mib: u64,
    /// Jobs waiting for a worker.
    pub queued_jobs: u32,
    /// Jobs the node is running (queued ones included).
    pub running_jobs: u32,
    /// Models loaded in memory now, by name.
    pub loaded_models: Vec<String>,
    pub downloads: Vec<Download>,
    pub admission: AdmissionState,
    pub reachability: Reachability,
    pub version: String,
    /// How often the node sends telemetry: a link silent for three of
    /// these is taken as broken.
    pub interval_ms: u32,
}

// ---- The fleet API (`/api/v1/fleet`) ----

/// Where a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[serde(deny_unknown_fields)]
pub struct NewCommand {
    /// The nodes to command (each gets a command of its own).
    pub nodes: Vec<crate::NodeId>,
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
}

/// One GPU's gauges in a stored sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuGauges {
    pub util_pct: f32,
    pub mem_used_mib: f32,
    pub mem_total_mib: f32,
    pub temp_c: f32,
    pub power_w: f32,
}

/// What is kept of a telemetry frame for charts: the numbers only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Gauges {
    pub cpu_pct: f32,
    pub ram_used_mib: f32,
    pub ram_total_mib: f32,
    pub running_jobs: f32,
    pub queued_jobs: f32,
    #[serde(default)]
    pub gpus: Vec<GpuGauges>,
}

impl Gauges {
    pub fn of(t: &Telemetry) -> Gauges {
        Gauges {
            cpu_pct: t.cpu_pct,
            ram_used_mib: t.ram_used_mib as f32,
            ram_total_mib: t.ram_total_mib as f32,
            running_jobs: t.running_jobs as f32,
            queued_jobs: t.queued_jobs as f32,
            gpus: t
                .gpus
                .iter()
                .map(|g| GpuGauges {
                    util_pct: g.util_pct,
                    mem_used_mib: g.mem_used_mib as f32,
                    mem_total_mib: g.mem_total_mib as f32,
                    temp_c: g.temp_c,
                    power_w: g.power_w,
                })
                .collect(),
        }
    }

    /// The numbers in a flat list, for storage: CPU, RAM used, RAM in all,
    /// running, queued, then five per GPU (utilisation, memory used,
    /// memory in all, temperature, power).
    pub fn to_vec(&self) -> Vec<f32> {
        let mut v = vec![
            self.cpu_pct,
            self.ram_used_mib,
            self.ram_total_mib,
            self.running_jobs,
            self.queued_jobs,
        ];
        for g in &self.gpus {
            v.extend([
                g.util_pct,
                g.mem_used_mib,
                g.mem_total_mib,
                g.temp_c,
                g.power_w,
            ]);
        }
        v
    }

    /// [`Gauges::to_vec`] read back; missing numbers are 0.
    pub fn from_vec(v: &[f32]) -> Gauges {
        let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
        Gauges {
            cpu_pct: at(0),
            ram_used_mib: at(1),
            ram_total_mib: at(2),
            running_jobs: at(3),
            queued_jobs: at(4),
            gpus: v
                .get(5..)
                .unwrap_or_default()
                .chunks(5)
                .map(|g| {
                    let at = |i: usize| g.get(i).copied().unwrap_or(0.0);
                    GpuGauges {
                        util_pct: at(0),
                        mem_used_mib: at(1),
                        mem_total_mib: at(2),
                        temp_c: at(3),
                        power_w: at(4),
                    }
                })
                .collect(),
        }
    }

    /// The mean of `samples` (GPUs matched by position).
    pub fn mean(samples: &[Gauges]) -> Gauges {
        let n = samples.len().max(1) as f32;
        let gpus = samples.iter().map(|s| s.gpus.len()).max().unwrap_or(0);
        let avg = |f: &dyn Fn(&Gauges) -> f32| samples.iter().map(f).sum::<f32>() / n;
        Gauges {
            cpu_pct: avg(&|s| s.cpu_pct),
            ram_used_mib: avg(&|s| s.ram_used_mib),
            ram_total_mib: avg(&|s| s.ram_total_mib),
            running_jobs: avg(&|s| s.running_jobs),
            queued_jobs: avg(&|s| s.queued_jobs),
            gpus: (0..gpus)
                .map(|i| {
                    let of: Vec<GpuGauges> = samples
                        .iter()
                        .filter_map(|s| s.gpus.get(i).copied())
                        .collect();
                    let m = of.len().max(1) as f32;
                    let avg = |f: &dyn Fn(&GpuGauges) -> f32| of.iter().map(f).sum::<f32>() / m;
                    GpuGauges {
                        util_pct: avg(&|g| g.util_pct),
                        mem_used_mib: avg(&|g| g.mem_used_mib),
                        mem_total_mib: avg(&|g| g.mem_total_mib),
                        temp_c: avg(&|g| g.temp_c),
                        power_w: avg(&|g| g.power_w),
                    }
                })
                .collect(),
        }
    }
}

/// A point of a node's telemetry series: one frame at full resolution, or
/// the mean of the frames in a coarser bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryPoint {
    /// The server's clock when it arrived (a bucket: when it began).
    pub at: UnixMillis,
    pub gauges: Gauges,
}

/// `GET /api/v1/fleet/nodes/{id}/telemetry`: the series and its resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetrySeries {
    /// Milliseconds between points (0: each frame as it came).
    pub step_ms: u64,
    pub points: Vec<TelemetryPoint>,
}

/// What `GET /api/v1/fleet/events` pushes (server-sent events, one JSON
/// object per event, `event:` naming its type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_ids_parse_only_their_own_shape() {
        let id = CommandId::from_random([0xab; 16]);
        assert_eq!(id.as_str().len(), 36);
        assert_eq!(id.as_str().parse::<CommandId>().unwrap(), id);
        for bad in [
            "",
            "cmd_",
            "cmd_xyz",
            "job_abababababababababababababababab",
        ] {
            assert!(bad.parse::<CommandId>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<CommandId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<CommandId>("\"cmd_1\"").is_err());
    }

    #[test]
    fn actions_read_as_the_api_writes_them() {
        let a: Action = serde_json::from_str(r#"{"type":"pause"}"#).unwrap();
        assert_eq!(a, Action::Pause);
        let d: Action = serde_json::from_str(r#"{"type":"drain"}"#).unwrap();
        assert_eq!(a.describe(), "pause");
        assert_eq!(d.describe(), "drain");
        assert!(serde_json::from_str::<Action>(r#"{"type":"format_disk"}"#).is_err());
    }
}

#[cfg(test)]
mod gauge_tests {
    use super::*;

    #[test]
    fn the_mean_of_samples_averages_each_gauge_and_each_gpu() {
        let g = |cpu: f32, temps: &[f32]| Gauges {
            cpu_pct: cpu,
            gpus: temps
                .iter()
                .map(|t| GpuGauges {
                    temp_c: *t,
                    ..GpuGauges::default()
                })
                .collect(),
            ..Gauges::default()
        };
        let m = Gauges::mean(&[g(10.0, &[60.0, 70.0]), g(30.0, &[80.0, 90.0])]);
        assert_eq!(m.cpu_pct, 20.0);
        assert_eq!(m.gpus.len(), 2);
        assert_eq!((m.gpus[0].temp_c, m.gpus[1].temp_c), (70.0, 80.0));
        assert_eq!(Gauges::mean(&[]), Gauges::default());
        let two_gpus = g(12.5, &[61.0, 70.5]);
        assert_eq!(two_gpus.to_vec().len(), 5 + 2 * 5);
        assert_eq!(Gauges::from_vec(&two_gpus.to_vec()), two_gpus);
    }
}

/// One node's record over a window, as its operator sees it: the evidence
/// its reputation is built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct DayUptime {
    /// The day's start (UTC midnight).
    pub day: UnixMillis,
    pub uptime_pct: f32,
}

/// `GET /api/v1/fleet/stats?days=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetStats {
    pub since: UnixMillis,
    pub until: UnixMillis,
    pub nodes: Vec<NodeStats>,
}

/// One line of the earnings breakdown: what one model earned on one
/// device of one node on one UTC day. The lines add up to the ledger's
/// earnings postings of the same jobs, to the millisatoshi.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
pub struct Earnings {
    pub since: UnixMillis,
    pub until: UnixMillis,
    pub lines: Vec<EarningsLine>,
    pub total_msat: crate::MilliSats,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The node's fleet link has been down longer than allowed.
    Offline,
    /// A GPU is hotter than allowed.
    GpuHot,
    /// Too many of the node's recent jobs failed.
    FailureRate,
    /// Peers cannot reach the node (no direct address, no relay).
    Unreachable,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Offline => "offline",
            AlertKind::GpuHot => "gpu_hot",
            AlertKind::FailureRate => "failure_rate",
            AlertKind::Unreachable => "unreachable",
        }
    }
}

/// One alert: it fires once when its condition starts and resolves once
/// when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertView {
    pub id: String,
    pub node_id: crate::NodeId,
    pub kind: AlertKind,
    pub started_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<UnixMillis>,
    /// What is wrong, and what to do about it.
    pub detail: String,
}

/// `GET`/`PUT /api/v1/fleet/alert-settings`: when alerts fire, and where
/// they are sent besides the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// Alerts are POSTed here as JSON, signed with HMAC-SHA256
    /// (`X-Infernet-Signature`); none: only in the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// A node offline this long fires `offline`.
    pub offline_after_secs: u64,
    /// A GPU at or above this temperature fires `gpu_hot`.
    pub gpu_temp_c: u32,
    /// This share of the node's jobs of the last hour failing (of at least
    /// five) fires `failure_rate`.
    pub failure_rate_pct: u32,
    /// A node unreachable this long after its link opened fires
    /// `unreachable`.
    pub unreachable_after_secs: u64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            webhook_url: None,
            offline_after_secs: 300,
            gpu_temp_c: 85,
            failure_rate_pct: 20,
            unreachable_after_secs: 120,
        }
    }
}

impl AlertSettings {
    /// Checks the ranges (the URL's shape is checked where it is used).
    pub fn check(&self) -> Result<(), String> {
        if !(5..=7 * 24 * 3600).contains(&self.offline_after_secs) {
            return Err("offline_after_secs must be 5 to 604800".into());
        }
        if !(30..=120).contains(&self.gpu_temp_c) {
            return Err("gpu_temp_c must be 30 to 120".into());
        }
        if !(1..=100).contains(&self.failure_rate_pct) {
            return Err("failure_rate_pct must be 1 to 100".into());
        }
        if !(10..=24 * 3600).contains(&self.unreachable_after_secs) {
            return Err("unreachable_after_secs must be 10 to 86400".into());
        }
        if let Some(url) = &self.webhook_url {
            if url.len() > 2000 || !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err("webhook_url must be an http(s) URL".into());
            }
        }
        Ok(())
    }
}

/// The settings, with the secret that signs the account's webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSettingsView {
    pub settings: AlertSettings,
    /// Check `X-Infernet-Signature` (hex HMAC-SHA256 of
    /// `<X-Infernet-Timestamp>.<body>`) with this.
    pub webhook_secret: String,
}

/// What a webhook receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookBody {
    /// `alert.fired` or `alert.resolved`.
    #[serde(rename = "type")]
    pub kind: String,
    pub alert: AlertView,
}

/// What a team member may do in someone else's fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamRole {
    /// Sees everything the fleet pages show.
    Viewer,
    /// Also sends commands.
    Manager,
}

/// `PUT /api/v1/fleet/team/{account}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamGrant {
    pub role: TeamRole,
}

/// One membership, from either side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    /// The other account: the member (in one's team) or the owner (a fleet
    /// one belongs to).
    pub account: crate::AccountId,
    pub name: String,
    pub role: TeamRole,
    pub added_at: UnixMillis,
}

/// `GET /api/v1/fleet/team`: who is in one's team, and whose fleets one
/// is in (pass `?fleet=<owner>` to any fleet route to act there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub members: Vec<TeamMember>,
    pub fleets: Vec<TeamMember>,
}

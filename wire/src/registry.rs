//! What nodes tell the registry about themselves, and what `GET /nodes` says.

use serde::{Deserialize, Serialize};

pub use crate::pricing::TokenPrice;
use crate::signing::Signable;
use crate::{MilliSats, ModelHash, NodeId, UnixMillis};

/// The signed registration may not list more than this many models.
pub const MAX_MODELS_PER_NODE: usize = 256;
/// The signed registration may not list more than this many addresses.
pub const MAX_MULTIADDRS: usize = 32;
/// Heartbeat interval bounds a node may declare.
pub const MIN_HEARTBEAT_MS: u64 = 200;
pub const MAX_HEARTBEAT_MS: u64 = 300_000;
/// A node is offline once it has missed this many heartbeats.
pub const MISSED_HEARTBEATS_OFFLINE: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Text in, one L2-normalised vector per text out.
    Embedding,
    /// A prompt or chat in, generated text out (streamed token by token).
    TextGeneration,
    /// Named tensors in, named tensors out, for any TorchScript module.
    Tensor,
}

impl Task {
    pub const ALL: [Task; 3] = [Task::Embedding, Task::TextGeneration, Task::Tensor];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::Embedding => "embedding",
            Task::TextGeneration => "text_generation",
            Task::Tensor => "tensor",
        }
    }
}

/// A task name that is none of [`Task::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown task `{0}` (known: embedding, text_generation, tensor)")]
pub struct UnknownTask(pub String);

impl std::str::FromStr for Task {
    type Err = UnknownTask;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Task::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTask(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuInfo {
    pub name: String,
    pub vram_mb: u64,
    /// e.g. "8.9"; absent when the driver does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hardware {
    pub cpu_model: String,
    pub cpu_cores: u32,
    pub ram_mb: u64,
    #[serde(default)]
    pub gpus: Vec<GpuInfo>,
    pub os: String,
    pub arch: String,
}

impl Hardware {
    pub fn max_vram_mb(&self) -> u64 {
        self.gpus.iter().map(|g| g.vram_mb).max().unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelOffer {
    pub name: String,
    pub task: Task,
    pub hash: ModelHash,
    /// Price of one job on this model, before tokens.
    pub price_msat: MilliSats,
    /// Added per metered token; a job costs
    /// `price_msat + input × per_input + output × per_output`.
    #[serde(default, skip_serializing_if = "TokenPrice::is_zero")]
    pub token_price: TokenPrice,
    /// Where the model runs: "cpu" or "cuda:N".
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Task-specific facts, e.g. the embedding dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_dim: Option<u32>,
    /// For text generation: the most tokens (prompt and output) one job holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u32>,
}

/// A model a node is downloading from the network, and how far it has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelFetch {
    pub model: ModelHash,
    pub done_bytes: u64,
    pub total_bytes: u64,
}

/// An ad may report at most this many downloads.
pub const MAX_FETCHING: usize = 16;

/// Most pools one node may join.
pub const MAX_POOLS: usize = 16;
/// Longest pool (or tag) name.
pub const MAX_LABEL_BYTES: usize = 48;

/// Checks a pool or tag name: 1 to 48 bytes of lower-case letters, digits
/// and `-_.:/`, starting with a letter or digit (`eu-west`, `llama/3`).
pub fn check_label(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_LABEL_BYTES
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || (i > 0 && matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a name: 1 to {MAX_LABEL_BYTES} lower-case letters, digits and -_.:/",
            name.chars().take(64).collect::<String>()
        ))
    }
}

/// Checks a node's pools: at most [`MAX_POOLS`] names, each valid, none twice.
pub fn check_pools(pools: &[String]) -> Result<(), String> {
    if pools.len() > MAX_POOLS {
        return Err(format!("{} pools; at most {MAX_POOLS}", pools.len()));
    }
    for (i, p) in pools.iter().enumerate() {
        check_label(p)?;
        if pools[..i].contains(p) {
            return Err(format!("pool `{p}` is named twice"));
        }
    }
    Ok(())
}

/// Signed by the node and posted to `POST /api/v1/nodes/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Registration {
    pub node_id: NodeId,
    pub timestamp: UnixMillis,
    pub multiaddrs: Vec<String>,
    pub hardware: Hardware,
    pub models: Vec<ModelOffer>,
    pub version: String,
    pub heartbeat_interval_ms: u64,
    /// A Lightning address (LUD-16) the node's earnings are paid to while
    /// no operator has enrolled it (`node --payout-address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout_address: Option<String>,
}

impl Signable for Registration {
    const DOMAIN: &'static str = "infernet/register/v1";
    fn signer(&self) -> NodeId {
        self.node_id
    }
}

/// Signed by the node and posted to `POST /api/v1/nodes/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    pub node_id: NodeId,
    pub timestamp: UnixMillis,
    /// Jobs the node is running now.
    pub active_jobs: u32,
    /// False while the node is paused or draining (as in its ads).
    #[serde(default = "yes")]
    pub accepting_jobs: bool,
}

impl Signable for Heartbeat {
    const DOMAIN: &'static str = "infernet/heartbeat/v1";
    fn signer(&self) -> NodeId {
        self.node_id
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Online,
    Offline,
}

/// Whether the server could reach a node at its addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReachState {
    /// Not dialled yet.
    #[default]
    Unverified,
    /// Dialled (or connected), its peer id confirmed by the handshake.
    Reached,
    /// Dialling failed, or a job could not reach it: not routed to.
    Unreachable,
}

/// What the server found when it last tried to reach a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeReach {
    pub state: ReachState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<UnixMillis>,
    /// Why it could not be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One entry of the public registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeInfo {
    pub peer_id: NodeId,
    pub multiaddrs: Vec<String>,
    pub hardware: Hardware,
    pub models: Vec<ModelOffer>,
    pub status: NodeStatus,
    pub last_seen: UnixMillis,
    pub registered_at: UnixMillis,
    pub version: String,
    pub heartbeat_interval_ms: u64,
    pub active_jobs: u32,
    /// Jobs waiting behind the running ones (from its latest ad).
    #[serde(default)]
    pub queued_jobs: u32,
    /// The highest bid among the jobs it holds: a job that bids more goes
    /// ahead of them while the node is busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_bid_msat: Option<MilliSats>,
    /// False while the node's operator has paused or is draining it: it
    /// refuses new jobs, so nothing is routed to it.
    #[serde(default = "yes")]
    pub accepting_jobs: bool,
    /// Models the node is downloading now (from its latest ad).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fetching: Vec<ModelFetch>,
    /// Where the node stands with its schedule now (from its latest ad);
    /// absent for a node that is always open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<crate::schedule::ScheduleStatus>,
    /// The public pools it has joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
    /// Whether an operator has enrolled the node to their account.
    #[serde(default)]
    pub claimed: bool,
    /// The operator's public name, when they chose to show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Where the node's earnings are paid while nobody has enrolled it
    /// (a Lightning address it signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout_address: Option<String>,
    /// Whether this server could reach it. An unreachable node is listed
    /// (with the reason) but not routed to; one not dialled yet only when
    /// no reached node can take the job.
    #[serde(default)]
    pub reach: NodeReach,
    /// What the servers saw it do (see [`crate::reputation`]); absent
    /// where a server keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reputation: Option<crate::reputation::Reputation>,
    /// Caught answering wrong: never routed to, its ads ignored. The
    /// signed ban with its evidence is at `GET /nodes/{id}/ban`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned: Option<crate::verify::BanSummary>,
}

fn yes() -> bool {
    true
}

impl NodeInfo {
    /// Online, taking jobs, inside its schedule and not found unreachable:
    /// what a job can be routed to.
    pub fn is_available(&self) -> bool {
        self.status == NodeStatus::Online
            && self.accepting_jobs
            && self.on_schedule()
            && self.reach.state != ReachState::Unreachable
            && self.banned.is_none()
    }

    /// Inside its schedule's open hours (or without a schedule).
    pub fn on_schedule(&self) -> bool {
        self.schedule.is_none_or(|s| s.open)
    }

    pub fn in_pool(&self, pool: &str) -> bool {
        self.pools.iter().any(|p| p == pool)
    }

    pub fn offer(&self, model: &str) -> Option<&ModelOffer> {
        self.models
            .iter()
            .find(|m| m.name == model || m.hash.to_string() == model)
    }
}

/// A page of `GET /nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeList {
    pub nodes: Vec<NodeInfo>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The query string of `GET /nodes`. Unknown parameters are an error, so
/// that a typo does not silently widen a filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema, utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct NodeQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// A model name or content hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_vram_gb: Option<f64>,
    /// In millisatoshis per job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price: Option<u64>,
    /// Only nodes that joined this public pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Only nodes whose reputation score is at least this (0 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reputation: Option<u8>,
    /// The order of the list: by peer id (the default) or best
    /// reputation first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<NodeSort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// How `GET /nodes` orders its list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeSort {
    /// By peer id: stable pages.
    #[default]
    PeerId,
    /// Highest reputation score first (ties by peer id).
    Reputation,
}

/// The answer to an accepted heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatAck {
    /// The server's clock, so that a node can notice its own drift.
    pub server_time: UnixMillis,
}

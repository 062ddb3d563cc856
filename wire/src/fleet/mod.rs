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

mod alerts;
mod api;
mod team;
mod telemetry;

pub use alerts::*;
pub use api::*;
pub use team::*;
pub use telemetry::*;

/// libp2p protocol id of the fleet link.
pub const FLEET_PROTOCOL: &str = "/infernet/fleet/1.0.0";
/// Largest frame either side writes on the fleet link.
pub const MAX_FLEET_FRAME_BYTES: u64 = 256 * 1024;

/// A command's id: `cmd_` and 32 hex characters, chosen by the server.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Replace the node's availability schedule (kept across restarts);
    /// its ads say when it is open.
    SetSchedule { schedule: crate::schedule::Schedule },
    /// Replace the public pools the node has joined (in its ads).
    SetPools { pools: Vec<String> },
    /// Replace the node's private tags. Tags live on the server only: the
    /// command never travels to the node.
    SetTags { tags: Vec<String> },
    /// Load a model the node has into memory now (not on the first job).
    LoadModel { model: ModelHash },
    /// Free a model's memory; it stays offered and loads on its next job.
    UnloadModel { model: ModelHash },
    /// Download a model by hash from the nodes that have it, verify it and
    /// offer it; progress shows in the node's telemetry.
    FetchModel { model: ModelHash },
    /// Unload every model, look for new ones in the models directory, and
    /// load again (running jobs finish on the models they hold).
    RestartEngine,
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
            Action::SetSchedule { schedule } if schedule.is_always() => {
                "set schedule: always open".into()
            }
            Action::SetSchedule { schedule } => format!(
                "set schedule: {} weekly window(s) in {}, {} maintenance window(s)",
                schedule.weekly.len(),
                schedule.time_zone,
                schedule.maintenance.len()
            ),
            Action::SetPools { pools } if pools.is_empty() => "leave every pool".into(),
            Action::SetPools { pools } => format!("set pools: {}", pools.join(", ")),
            Action::SetTags { tags } if tags.is_empty() => "clear tags".into(),
            Action::SetTags { tags } => format!("set tags: {}", tags.join(", ")),
            Action::LoadModel { model } => format!("load model {model}"),
            Action::UnloadModel { model } => format!("unload model {model}"),
            Action::FetchModel { model } => format!("fetch model {model}"),
            Action::RestartEngine => "restart the engine".into(),
        }
    }

    /// Whether the server carries it out itself (the node never sees it).
    pub fn is_server_side(&self) -> bool {
        matches!(self, Action::SetTags { .. })
    }

    /// Checks what can be checked before the node sees it.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Action::SetPrices { prices } if prices.is_empty() || prices.len() > MAX_PRICES => {
                Err(format!("set_prices names 1 to {MAX_PRICES} models"))
            }
            Action::SetSchedule { schedule } => schedule.check(),
            Action::SetPools { pools } => crate::registry::check_pools(pools),
            Action::SetTags { tags } => check_tags(tags),
            _ => Ok(()),
        }
    }
}

/// Most tags one node may carry.
pub const MAX_TAGS: usize = 32;

/// Checks a node's tags: at most [`MAX_TAGS`], each a valid label, none twice.
pub fn check_tags(tags: &[String]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("{} tags; at most {MAX_TAGS}", tags.len()));
    }
    for (i, t) in tags.iter().enumerate() {
        crate::registry::check_label(t)?;
        if tags[..i].contains(t) {
            return Err(format!("tag `{t}` is named twice"));
        }
    }
    Ok(())
}

/// A command as it travels to the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Command {
    pub id: CommandId,
    pub action: Action,
    /// After this the node must not run it (it waited too long).
    pub expires_at: UnixMillis,
}

/// How a command ended on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded { detail: String },
    Failed { reason: String },
}

/// Server → node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Command(Command),
}

/// Node → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

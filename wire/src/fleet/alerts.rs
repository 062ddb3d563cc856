//! Alerts about nodes, their thresholds, and what a webhook receives.

use serde::{Deserialize, Serialize};

use crate::ids::UnixMillis;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertSettingsView {
    pub settings: AlertSettings,
    /// Check `X-Infernet-Signature` (hex HMAC-SHA256 of
    /// `<X-Infernet-Timestamp>.<body>`) with this.
    pub webhook_secret: String,
}

/// What a webhook receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookBody {
    /// `alert.fired` or `alert.resolved`.
    #[serde(rename = "type")]
    pub kind: String,
    pub alert: AlertView,
}

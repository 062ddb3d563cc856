//! The JSON error shape of every HTTP endpoint:
//! `{ "error": { "code": "...", "message": "..." } }`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable, snake_case.
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
    /// Set when the error ended a job that was recorded: read it back at
    /// `GET /api/v1/jobs/{job_id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<crate::JobId>,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                job_id: None,
            },
        }
    }
}

/// What `GET /api/v1/network` returns: how to reach the server's libp2p peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkInfo {
    pub peer_id: crate::NodeId,
    pub multiaddrs: Vec<String>,
    pub version: String,
    /// How this server checks nodes' answers (canaries, second opinions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::verify::Published>,
}

//! Enrolment: binding this node to its operator's account on a server.
//! With `--enroll <token>` the node signs an [`Enrolment`] (its peer id,
//! the server's peer id, the token) with its own key and posts it; the
//! server binds the node to the token's account. The node then pins that
//! server's peer id in `server.pin` next to its key, so that commands later
//! issues add are taken only from the server it enrolled with.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wire::accounts::{Enrolled, Enrolment};
use wire::{AccountId, NodeId, SignedEnvelope, UnixMillis};

use crate::announce::{AnnounceError, Announcer};

/// What the node remembers of its enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The server's HTTP address when the node enrolled.
    pub server_url: String,
    /// The server's libp2p peer id: the only server whose commands count.
    pub server: NodeId,
    pub account: AccountId,
    pub account_name: String,
    pub enrolled_at: UnixMillis,
}

#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("enrolment refused by the server: {0}")]
    Refused(AnnounceError),
    #[error("the server answered for node {got}, not this node ({want})")]
    WrongNode { got: NodeId, want: NodeId },
    #[error("could not save the server pin at {path}: {source}")]
    Pin {
        path: String,
        source: std::io::Error,
    },
}

/// `server.pin`, next to the node's key.
pub fn pin_path(key_file: &Path) -> PathBuf {
    key_file.with_file_name("server.pin")
}

/// The pin saved by an earlier enrolment, if any.
pub fn read_pin(key_file: &Path) -> Option<Pin> {
    let text = std::fs::read_to_string(pin_path(key_file)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Enrols with the server `announcer` talks to, whose peer id is `server`,
/// and pins it.
pub async fn enrol(
    announcer: &Announcer,
    keypair: &p2p::Keypair,
    node_id: NodeId,
    server: NodeId,
    token: &str,
    key_file: &Path,
) -> Result<Pin, EnrolError> {
    let enrolment = Enrolment {
        node_id,
        server,
        token: token.to_owned(),
        timestamp: UnixMillis::now(),
    };
    let envelope = SignedEnvelope::seal(keypair, &enrolment)
        .map_err(|e| EnrolError::Refused(AnnounceError::Sign(e)))?;
    let enrolled: Enrolled = announcer
        .post("/api/v1/enrolments", &envelope)
        .await
        .map_err(EnrolError::Refused)?;
    if enrolled.node_id != node_id {
        return Err(EnrolError::WrongNode {
            got: enrolled.node_id,
            want: node_id,
        });
    }
    let pin = Pin {
        server_url: announcer.server_url().to_owned(),
        server: enrolled.server,
        account: enrolled.account,
        account_name: enrolled.account_name,
        enrolled_at: UnixMillis::now(),
    };
    let path = pin_path(key_file);
    let text = serde_json::to_string_pretty(&pin).unwrap_or_default();
    std::fs::write(&path, text).map_err(|source| EnrolError::Pin {
        path: path.display().to_string(),
        source,
    })?;
    Ok(pin)
}

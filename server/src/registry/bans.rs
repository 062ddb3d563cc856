//! Bans: nodes caught answering wrong (`crate::verify` finds them), each
//! ban signed by the server that found it. A banned node stays listed, as
//! banned, with its evidence at `GET /nodes/{id}/ban`; it is never chosen
//! for a job and its ads are ignored. Bans live in the `ban` table, which
//! servers on one database share: each reads the others' and checks their
//! signatures.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use wire::verify::{Ban, BanSummary};
use wire::{NodeId, SignedEnvelope};

use super::{Registry, RegistryError};

/// The bans this server knows, by node: each ban and its signed form.
pub(super) type Bans = Arc<RwLock<HashMap<NodeId, (Ban, SignedEnvelope)>>>;

impl Registry {
    /// Bans a node for good: stores the signed ban and marks the node.
    /// Returns false if the node was banned already (the first ban
    /// stands).
    pub(crate) async fn ban(
        &self,
        ban: &Ban,
        envelope: SignedEnvelope,
    ) -> Result<bool, RegistryError> {
        if self.is_banned(ban.node_id) {
            return Ok(false);
        }
        let new = self
            .store
            .insert_ban(ban.node_id, &envelope, ban.at)
            .await?;
        if new {
            self.take_ban(ban.clone(), envelope);
        } else {
            // Another server's ban got there first: take that one.
            self.load_bans().await?;
        }
        Ok(new)
    }

    fn take_ban(&self, ban: Ban, envelope: SignedEnvelope) {
        self.index
            .ban(&ban.node_id.to_string(), BanSummary::from(&ban));
        self.bans
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ban.node_id, (ban, envelope));
        // `GET /nodes` answers kept from before are not served again: the
        // index's generation moved on.
    }

    pub(crate) fn is_banned(&self, node: NodeId) -> bool {
        self.bans
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&node)
    }

    /// A node's ban and its signed form, if it is banned.
    pub(crate) fn ban_of(&self, node: NodeId) -> Option<(Ban, SignedEnvelope)> {
        self.bans
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
            .cloned()
    }

    /// Takes the stored bans this server does not hold yet, each checked
    /// against its signer's key (a ban that does not check out is
    /// ignored). Returns how many it took. The bans it holds already are
    /// not checked again (this runs with every catch-up on a shared
    /// database).
    pub(crate) async fn load_bans(&self) -> Result<usize, RegistryError> {
        let mut taken = 0;
        // The ids first: the evidence is read only for bans not held yet
        // (this runs every few seconds against a shared database).
        let new: Vec<String> = self
            .store
            .ban_ids()
            .await?
            .into_iter()
            .filter(|node| !node.parse::<NodeId>().is_ok_and(|n| self.is_banned(n)))
            .collect();
        for envelope in self.store.bans_of(&new).await? {
            match envelope.open::<Ban>() {
                Ok(ban) if !self.is_banned(ban.node_id) => {
                    tracing::info!(node = %ban.node_id, by = %ban.server, reason = %ban.reason, "node banned");
                    self.take_ban(ban, envelope);
                    taken += 1;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "a stored ban does not check out; ignored"),
            }
        }
        Ok(taken)
    }
}

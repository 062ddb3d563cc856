//! Which operator claims which node, as the listings show it (`claimed`,
//! and the operator's public name): read from the `claim` table a page at
//! a time and kept for [`CLAIMS_KEPT`], so that neither a busy `/nodes`
//! nor a slow remote database makes every answer wait on a read. A change
//! made through this server (an enrolment, a release, an operator's
//! public name) drops what is kept at once; one made through another
//! server sharing the database shows within [`CLAIMS_KEPT`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wire::NodeId;

use super::store::NodeStore;
use crate::db::DbError;

/// How long a node's claim, as read, is shown without reading it again.
pub(super) const CLAIMS_KEPT: Duration = Duration::from_secs(2);
/// Nodes whose claims are kept at most; then they start again.
const CLAIMS_MAX: usize = 200_000;

/// The operator's public name, if they show one, by claimed node.
pub(super) type Claims = HashMap<NodeId, Option<String>>;

/// A node's claim as read: `Some(operator)` if claimed, `None` if not,
/// and when it was read.
type Read = (Option<Option<String>>, Instant);

/// Claims as read lately; cheap to clone.
#[derive(Clone, Default)]
pub(super) struct ClaimCache {
    read: Arc<Mutex<HashMap<NodeId, Read>>>,
    /// Bumped by every change: a read that a change overtook is not kept.
    changes: Arc<AtomicU64>,
}

impl ClaimCache {
    /// The claims among `nodes`: kept ones, the rest read (one read).
    pub(super) async fn of(&self, store: &NodeStore, nodes: &[NodeId]) -> Result<Claims, DbError> {
        let mut found = Claims::new();
        let mut missing = Vec::new();
        {
            let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
            for node in nodes {
                match read.get(node).filter(|(_, at)| at.elapsed() < CLAIMS_KEPT) {
                    Some((Some(operator), _)) => {
                        found.insert(*node, operator.clone());
                    }
                    Some((None, _)) => {}
                    None => missing.push(*node),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let before = self.changes.load(Ordering::SeqCst);
        let fresh = store.claims_of(&missing).await?;
        let at = Instant::now();
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if self.changes.load(Ordering::SeqCst) == before {
            if read.len() + missing.len() > CLAIMS_MAX {
                read.clear();
            }
            for node in &missing {
                read.insert(*node, (fresh.get(node).cloned(), at));
            }
        }
        found.extend(fresh);
        Ok(found)
    }

    /// A claim or an operator's name changed: nothing kept is shown again.
    pub(super) fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.read.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

//! The node registry: who offers what, from signed registrations and
//! heartbeats over HTTP and from the capability ads the network carries.
//!
//! - `query`: the rules, without storage (online status, freshness,
//!   filters, pages);
//! - `store`: the `node` table and all its SurrealQL;
//! - `index`: the nodes in memory, in step with the table, which every
//!   read uses;
//! - `http`: the routes (`GET /nodes`, registration, heartbeats);
//! - `follow`: the registry fed by the network's ads;
//! - `reach`: whether this server can reach each node (dialled before
//!   jobs count on it);
//! - `bans`: nodes caught answering wrong, with their signed evidence;
//! - `claims`: which operator claims which node, as listed.

mod bans;
#[doc(hidden)]
pub mod bench;
mod claims;
mod follow;
mod http;
mod index;
mod ingest;
mod listing;
mod query;
mod reach;
mod store;

pub(crate) use http::{api_router, public_router, MAX_SIGNED_BODY};
pub(crate) use query::check_fresh;

use std::collections::HashMap;

use wire::registry::NodeInfo;
use wire::{NodeId, SigningError, UnixMillis};

use crate::db::{Db, DbError};
use crate::reputation::Reputations;
use index::{Index, Wanted};
use store::{NodeStore, StoredAd, StoredBeat};

/// Why the registry refused or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegistryError {
    #[error("signature rejected: {0}")]
    BadSignature(#[from] SigningError),
    #[error(
        "timestamp is {skew_ms} ms away from the server's clock; at most {max_ms} ms is allowed"
    )]
    ClockSkew { skew_ms: u64, max_ms: u64 },
    #[error("this signed message is not newer than one already accepted from this node (replay)")]
    Replay,
    #[error("node {0} is not registered (register before sending heartbeats)")]
    NotRegistered(NodeId),
    #[error("{0}")]
    InvalidRegistration(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error(transparent)]
    Store(#[from] DbError),
    #[error("could not write the node list: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The registry; cheap to clone.
#[derive(Clone)]
pub(crate) struct Registry {
    store: NodeStore,
    index: Index,
    /// Nodes to dial (see `reach`), once that task runs.
    probes: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<NodeId>>>,
    /// `GET /nodes` answers, by query string (see [`Registry::list_json`]).
    answers: std::sync::Arc<std::sync::Mutex<HashMap<String, listing::Answer>>>,
    /// The queries being answered now, each behind its own lock: the same
    /// query asked meanwhile waits for that answer instead of making it
    /// again.
    answering: std::sync::Arc<std::sync::Mutex<HashMap<String, listing::Gate>>>,
    /// How many `GET /nodes` answers were made (not sent again).
    answers_made: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Nodes' claims as read lately.
    claims: claims::ClaimCache,
    /// What the nodes were seen to do.
    reputations: Reputations,
    /// Heartbeats taken in memory and not written yet, by node (the
    /// latest of each).
    beats: std::sync::Arc<std::sync::Mutex<HashMap<NodeId, StoredBeat>>>,
    /// The same for ads that changed only a node's load.
    ad_beats: std::sync::Arc<std::sync::Mutex<HashMap<NodeId, StoredAd>>>,
    /// Beats and ads logged and not folded into `live` yet.
    unfolded: std::sync::Arc<std::sync::Mutex<ingest::Unfolded>>,
    /// One log write or fold at a time.
    writing: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Whose log records this server writes.
    server: String,
    /// Nodes caught answering wrong (see `bans`).
    bans: bans::Bans,
}

/// How often heartbeats taken in memory are logged.
pub(super) const BEAT_WRITES: std::time::Duration = std::time::Duration::from_secs(1);
/// How often the log is folded into the nodes' `live` rows (in log
/// writes), besides before every sweep of silent nodes.
pub(super) const FOLD_EVERY: u32 = 30;
/// How long a beat may wait in another server's log before it is folded
/// into `live` (a fold's interval and a margin): the table forgets a node
/// only once it has been silent this much longer than the retention.
pub(super) const FOLD_LAG_MS: u64 = 40_000;

impl Registry {
    /// The registry over `db`'s `node` table, read into memory, with the
    /// nodes' evidence (this server's own written as `server`).
    pub(crate) async fn open(db: Db, server: NodeId) -> Result<Self, RegistryError> {
        let reputations = Reputations::open(db.clone(), server).await?;
        let store = NodeStore::new(db);
        let index = Index::default();
        for row in store.all().await? {
            index.put(row);
        }
        let registry = Registry {
            store,
            index,
            probes: Default::default(),
            answers: Default::default(),
            answering: Default::default(),
            answers_made: Default::default(),
            claims: Default::default(),
            reputations,
            beats: Default::default(),
            ad_beats: Default::default(),
            unfolded: Default::default(),
            writing: Default::default(),
            server: server.to_string(),
            bans: Default::default(),
        };
        // Liveness logged and not folded yet (by this server before it
        // stopped, or by others): into the index, and to be folded.
        registry.read_log(UnixMillis(0), true).await?;
        registry.load_bans().await?;
        Ok(registry)
    }

    /// The nodes' evidence: jobs add to it.
    pub(crate) fn reputations(&self) -> &Reputations {
        &self.reputations
    }

    /// A node's reputation and its days, if it is listed.
    pub(crate) fn reputation_report(
        &self,
        id: NodeId,
        now: UnixMillis,
    ) -> Option<wire::reputation::ReputationReport> {
        self.index.reach_state(&id.to_string())?;
        Some(self.reputations.report(id, now))
    }

    /// `info` with its reputation.
    fn reputed(&self, mut info: NodeInfo, now: UnixMillis) -> NodeInfo {
        info.reputation = Some(self.reputations.reputation(info.peer_id, now));
        info
    }

    pub(crate) async fn get(
        &self,
        id: NodeId,
        now: UnixMillis,
    ) -> Result<Option<NodeInfo>, RegistryError> {
        let Some(info) = self.index.get(&id.to_string(), now) else {
            return Ok(None);
        };
        let claims = self.claims.of(&self.store, &[id]).await?;
        Ok(Some(self.reputed(claimed(info, &claims), now)))
    }

    /// Nodes nobody has enrolled that name a payout address, and the
    /// address: where their pending earnings are paid.
    pub(crate) async fn payout_addresses(&self) -> Result<Vec<(NodeId, String)>, RegistryError> {
        let claims = self.store.claims().await?;
        Ok(self
            .store
            .payout_addresses()
            .await?
            .into_iter()
            .filter(|(node, _)| !claims.contains_key(node))
            .collect())
    }

    /// The nodes among `ids` that are listed, as of `now`.
    pub(crate) async fn nodes(
        &self,
        ids: &[NodeId],
        now: UnixMillis,
    ) -> Result<Vec<NodeInfo>, RegistryError> {
        let found: Vec<NodeInfo> = ids
            .iter()
            .filter_map(|id| self.index.get(&id.to_string(), now))
            .collect();
        let listed: Vec<NodeId> = found.iter().map(|n| n.peer_id).collect();
        let claims = self.claims.of(&self.store, &listed).await?;
        Ok(found
            .into_iter()
            .map(|n| self.reputed(claimed(n, &claims), now))
            .collect())
    }

    /// How many nodes are listed, and how many are online.
    pub(crate) fn counts(&self, now: UnixMillis) -> (usize, usize) {
        self.index.counts(now)
    }

    /// What the nodes that can take a job now offer, by model.
    pub(crate) fn catalog(&self, now: UnixMillis) -> Vec<wire::catalog::ModelListing> {
        let mut listings = wire::catalog::Catalog::default();
        self.index.each_available(now, |n| listings.add(n));
        listings.into_listings()
    }

    /// The nodes offering `model` (a name or hash) that can take a job
    /// now: what checks choose from.
    pub(crate) fn available_for(&self, model: &str, now: UnixMillis) -> Vec<NodeId> {
        self.index.available_ids(model, now)
    }

    /// A node as listed now, without its reputation or claim.
    pub(crate) fn listed(&self, id: NodeId, now: UnixMillis) -> Option<NodeInfo> {
        self.index.get(&id.to_string(), now)
    }

    /// The nodes a job may go to (see [`Index::for_job`]): at most `keep`
    /// that can take it, or all that offer the model, for the reasons.
    pub(crate) fn for_job(
        &self,
        model: &str,
        only: Option<NodeId>,
        pool: Option<&str>,
        max_price: Option<wire::MilliSats>,
        now: UnixMillis,
        keep: usize,
    ) -> Vec<NodeInfo> {
        let only = only.map(|id| id.to_string());
        let found = {
            let scores = self.reputations.scores();
            self.index.for_job(
                &Wanted {
                    model,
                    only: only.as_deref(),
                    pool,
                    max_price,
                },
                now,
                keep,
                &|id| scores.get(id, now),
            )
        };
        if found.len() > keep {
            // None can take the job: the choice only says why.
            return found;
        }
        found.into_iter().map(|n| self.reputed(n, now)).collect()
    }
}

/// `info`, marked claimed (with its operator's public name) if `claims`
/// holds it.
fn claimed(
    mut info: NodeInfo,
    claims: &std::collections::HashMap<NodeId, Option<String>>,
) -> NodeInfo {
    if let Some(operator) = claims.get(&info.peer_id) {
        info.claimed = true;
        info.operator = operator.clone();
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::fixtures::{ad, hardware, offer};
    use wire::registry::Task;
    use wire::registry::{Heartbeat, NodeList, NodeQuery, Registration};
    use wire::SignedEnvelope;

    async fn registry(tag: &str) -> Registry {
        Registry::open(
            crate::db::Db::temp(tag).await,
            testkit::fixtures::node_id(200),
        )
        .await
        .unwrap()
    }

    /// The node's row in `table` (`node` or `live`) as it is stored; null
    /// if there is none.
    async fn stored(registry: &Registry, table: &str, id: NodeId) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = registry
            .store
            .db()
            .rows(
                "SELECT * OMIT id FROM type::record($table, $id)",
                serde_json::json!({ "table": table, "id": id.to_string() }),
                0,
            )
            .await
            .unwrap();
        rows.first().cloned().unwrap_or_default()
    }

    fn registration(id: NodeId, now: UnixMillis) -> Registration {
        Registration {
            node_id: id,
            timestamp: now,
            multiaddrs: vec![],
            hardware: hardware(),
            models: vec![offer("m", Task::Embedding, 100)],
            version: "0".into(),
            heartbeat_interval_ms: 1000,
            payout_address: None,
        }
    }

    #[tokio::test]
    async fn an_ad_racing_a_registration_for_a_new_node_does_not_refuse_it() {
        let registry = registry("race").await;
        for round in 0..20u8 {
            let key = p2p::Keypair::generate_ed25519();
            let id = NodeId::from(key.public().to_peer_id());
            let now = UnixMillis::now();
            let registration = registration(id, now);
            let ad = ad(&key, now.0 + 5, now, 30_000);
            let (registered, ingested) = tokio::join!(
                registry.register(&registration, now),
                registry.ingest_ad(&ad, now)
            );
            assert!(registered.is_ok(), "round {round}: {registered:?}");
            assert!(ingested.unwrap(), "round {round}: the ad was stored too");
            // The replay guard still holds.
            assert!(matches!(
                registry.register(&registration, now).await,
                Err(RegistryError::Replay)
            ));
        }
    }

    #[tokio::test]
    async fn a_page_of_nodes_is_read_with_its_claims() {
        let registry = registry("claims").await;
        let now = UnixMillis::now();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let key = p2p::Keypair::generate_ed25519();
            let id = NodeId::from(key.public().to_peer_id());
            registry
                .register(&registration(id, now), now)
                .await
                .unwrap();
            ids.push(id);
        }
        registry
            .store
            .db()
            .rows::<serde_json::Value>(
                "CREATE type::record('claim', $id) CONTENT { peer_id: $id, account: 'nobody', token_id: 't', enrolled_at: 0 }",
                serde_json::json!({ "id": ids[1].to_string() }),
                0,
            )
            .await
            .unwrap();
        let list = registry.list(&NodeQuery::default(), now).await.unwrap();
        assert_eq!(list.nodes.len(), 3);
        for n in &list.nodes {
            assert_eq!(n.claimed, n.peer_id == ids[1], "{}", n.peer_id);
        }
        let some = registry.nodes(&ids[..2], now).await.unwrap();
        assert_eq!(some.iter().filter(|n| n.claimed).count(), 1);
    }

    #[tokio::test]
    async fn the_same_query_asked_at_once_is_answered_once_and_claims_are_kept_until_they_change() {
        let registry = registry("single-flight").await;
        let now = UnixMillis::now();
        let key = p2p::Keypair::generate_ed25519();
        let id = NodeId::from(key.public().to_peer_id());
        registry
            .register(&registration(id, now), now)
            .await
            .unwrap();
        let q = NodeQuery::default();
        let answers =
            futures::future::join_all((0..16).map(|_| registry.list_json("limit=5", &q, now)))
                .await;
        let tags: std::collections::BTreeSet<String> =
            answers.into_iter().map(|a| a.unwrap().0).collect();
        assert_eq!(tags.len(), 1);
        assert_eq!(
            registry
                .answers_made
                .load(std::sync::atomic::Ordering::Relaxed),
            1,
            "sixteen at once, one answer made"
        );
        // The node's claim, as read, is kept: one written behind this
        // server's back (by another server) shows once it is read again...
        assert!(!registry.get(id, now).await.unwrap().unwrap().claimed);
        registry
            .store
            .db()
            .rows::<serde_json::Value>(
                "CREATE type::record('claim', $id) CONTENT { peer_id: $id, account: 'nobody', token_id: 't', enrolled_at: 0 }",
                serde_json::json!({ "id": id.to_string() }),
                0,
            )
            .await
            .unwrap();
        assert!(!registry.get(id, now).await.unwrap().unwrap().claimed);
        // ...and one made through this server shows at once, in every
        // listing.
        registry.claims_changed();
        assert!(registry.get(id, now).await.unwrap().unwrap().claimed);
        let (_, body) = registry.list_json("limit=5", &q, now).await.unwrap();
        let list: NodeList = serde_json::from_slice(&body).unwrap();
        assert!(list.nodes[0].claimed);
    }

    #[tokio::test]
    async fn a_list_answer_is_kept_while_no_node_changes_what_it_offers() {
        let registry = registry("answers").await;
        let key = p2p::Keypair::generate_ed25519();
        let id = NodeId::from(key.public().to_peer_id());
        let now = UnixMillis::now();
        registry
            .register(&registration(id, now), now)
            .await
            .unwrap();
        let q = NodeQuery::default();
        let (tag, body) = registry.list_json("", &q, now).await.unwrap();
        // A heartbeat: the same answer (it is at most a second old).
        let beat = Heartbeat {
            node_id: id,
            timestamp: UnixMillis(now.0 + 1),
            active_jobs: 2,
            accepting_jobs: true,
        };
        let before = registry.index.generation();
        registry
            .heartbeat_signed(&SignedEnvelope::seal(&key, &beat).unwrap(), now)
            .await
            .unwrap();
        assert_eq!(registry.index.generation(), before);
        assert_eq!(registry.list_json("", &q, now).await.unwrap().0, tag);
        // Past its second, still no change: the kept answer is sent at
        // once and a fresh one made in the background, sent next.
        registry.age_answers(std::time::Duration::from_millis(1_500));
        let made = || {
            registry
                .answers_made
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let before = made();
        assert_eq!(registry.list_json("", &q, now).await.unwrap().0, tag);
        registry.answered("").await;
        assert_eq!(made(), before + 1, "one refresh");
        let (refreshed, refreshed_body) = registry.list_json("", &q, now).await.unwrap();
        assert_ne!(refreshed, tag);
        let list: NodeList = serde_json::from_slice(&refreshed_body).unwrap();
        assert_eq!(list.nodes[0].active_jobs, 2);
        assert_eq!(made(), before + 1, "the refresh is kept");
        // Too old to send: answered anew before sending.
        registry.age_answers(std::time::Duration::from_secs(10));
        assert_eq!(registry.list_json("", &q, now).await.unwrap().0, refreshed);
        assert_eq!(made(), before + 2);
        // Another query is another answer, read now: it has the new load,
        // which the kept one shows a second later at most.
        let other = registry.list_json("online=true", &q, now).await.unwrap();
        let fresh: NodeList = serde_json::from_slice(&other.1).unwrap();
        let kept: NodeList = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (kept.nodes[0].active_jobs, fresh.nodes[0].active_jobs),
            (0, 2)
        );
        // What it offers changed: answered anew, at once.
        let mut paused = ad(&key, now.0 + 2, now, 30_000);
        paused.accepting_jobs = false;
        registry.ingest_ad(&paused, now).await.unwrap();
        let (new_tag, new_body) = registry.list_json("", &q, now).await.unwrap();
        assert_ne!(new_tag, tag);
        let list: NodeList = serde_json::from_slice(&new_body).unwrap();
        assert!(!list.nodes[0].accepting_jobs);
    }

    #[tokio::test]
    async fn heartbeats_are_taken_in_memory_written_in_batches_and_replays_still_refused() {
        let registry = registry("beats").await;
        let key = p2p::Keypair::generate_ed25519();
        let id = NodeId::from(key.public().to_peer_id());
        let now = UnixMillis::now();
        registry
            .register(&registration(id, now), now)
            .await
            .unwrap();
        let stored_seen = |registry: Registry| async move { stored(&registry, "node", id).await };
        let beat = |at: u64, active: u32| {
            let beat = Heartbeat {
                node_id: id,
                timestamp: UnixMillis(now.0 + at),
                active_jobs: active,
                accepting_jobs: true,
            };
            SignedEnvelope::seal(&key, &beat).unwrap()
        };
        let later = UnixMillis(now.0 + 500);
        registry
            .heartbeat_signed(&beat(10, 3), later)
            .await
            .unwrap();
        // Listed at once, written later.
        let got = registry.get(id, later).await.unwrap().unwrap();
        assert_eq!((got.last_seen, got.active_jobs), (later, 3));
        assert_eq!(stored_seen(registry.clone()).await["last_seen"], now.0);
        // The same beat again, an older one, or an older registration: no.
        for replay in [beat(10, 3), beat(5, 1)] {
            assert!(matches!(
                registry.heartbeat_signed(&replay, later).await,
                Err(RegistryError::Replay)
            ));
        }
        let older = registration(id, UnixMillis(now.0 + 9));
        assert!(matches!(
            registry
                .register_signed(&SignedEnvelope::seal(&key, &older).unwrap(), later)
                .await,
            Err(RegistryError::Replay)
        ));
        // Written in one batch, the latest beat of each node.
        registry
            .heartbeat_signed(&beat(20, 4), later)
            .await
            .unwrap();
        assert_eq!(registry.write_beats().await.unwrap(), 1);
        assert_eq!(registry.write_beats().await.unwrap(), 0);
        // Logged: the node's row left as it was, its liveness not folded
        // yet.
        let row = stored_seen(registry.clone()).await;
        assert_eq!(
            (&row["last_seen"], &row["last_signed"]),
            (&now.0.into(), &now.0.into())
        );
        assert!(stored(&registry, "live", id).await.is_null());
        // A server that opens the table (a restart, or another server on
        // the same database) lists the node as its latest beat said, and
        // refuses the beat again, or an older one, from the log and then
        // from the folded row.
        for folded in [false, true] {
            if folded {
                assert_eq!(registry.fold_log().await.unwrap(), 1);
                let live = stored(&registry, "live", id).await;
                assert_eq!(live["last_seen"], later.0);
                assert_eq!(live["last_signed"], now.0 + 20);
                assert_eq!(live["active_jobs"], 4);
                assert_eq!(registry.fold_log().await.unwrap(), 0);
            }
            let reopened =
                Registry::open(registry.store.db().clone(), testkit::fixtures::node_id(201))
                    .await
                    .unwrap();
            let got = reopened.get(id, later).await.unwrap().unwrap();
            assert_eq!((got.last_seen, got.active_jobs), (later, 4), "{folded}");
            for replay in [beat(20, 4), beat(15, 1)] {
                assert!(matches!(
                    reopened.heartbeat_signed(&replay, later).await,
                    Err(RegistryError::Replay)
                ));
            }
        }
        // The table's own guard, once folded: an older registration.
        let older = registration(id, UnixMillis(now.0 + 19));
        assert!(matches!(
            registry.store.register(&older, later).await,
            Ok(None)
        ));
        // A beat that pauses the node is stored at once, and listed.
        let paused = Heartbeat {
            node_id: id,
            timestamp: UnixMillis(now.0 + 30),
            active_jobs: 0,
            accepting_jobs: false,
        };
        registry
            .heartbeat_signed(&SignedEnvelope::seal(&key, &paused).unwrap(), later)
            .await
            .unwrap();
        assert_eq!(
            stored_seen(registry.clone()).await["last_signed"],
            now.0 + 30
        );
        assert!(
            !registry
                .get(id, later)
                .await
                .unwrap()
                .unwrap()
                .accepting_jobs
        );
        // A node this server does not know: for the table to say.
        let stranger = p2p::Keypair::generate_ed25519();
        let unknown = Heartbeat {
            node_id: NodeId::from(stranger.public().to_peer_id()),
            timestamp: now,
            active_jobs: 0,
            accepting_jobs: true,
        };
        assert!(matches!(
            registry
                .heartbeat_signed(&SignedEnvelope::seal(&stranger, &unknown).unwrap(), now)
                .await,
            Err(RegistryError::NotRegistered(_))
        ));
    }

    #[tokio::test]
    async fn liveness_written_apart_keeps_a_node_and_reaches_servers_that_follow() {
        let db = crate::db::Db::temp("live").await;
        let here = Registry::open(db.clone(), testkit::fixtures::node_id(200))
            .await
            .unwrap();
        let there = Registry::open(db, testkit::fixtures::node_id(201))
            .await
            .unwrap();
        let key = p2p::Keypair::generate_ed25519();
        let id = NodeId::from(key.public().to_peer_id());
        let now = UnixMillis::now();
        here.register(&registration(id, now), now).await.unwrap();
        assert_eq!(there.catch_up(now).await.unwrap(), now);
        assert!(there.listed(id, now).is_none(), "not newer than `since`");
        assert_eq!(there.catch_up(UnixMillis(now.0 - 1)).await.unwrap(), now);
        assert_eq!(there.listed(id, now).unwrap().active_jobs, 0);
        // A beat to this server, written in its batch: only the node's
        // liveness changed in the table.
        let later = UnixMillis(now.0 + 5_000);
        let beat = Heartbeat {
            node_id: id,
            timestamp: UnixMillis(now.0 + 5_000),
            active_jobs: 2,
            accepting_jobs: true,
        };
        here.heartbeat_signed(&SignedEnvelope::seal(&key, &beat).unwrap(), later)
            .await
            .unwrap();
        assert_eq!(here.write_beats().await.unwrap(), 1);
        assert!(stored(&here, "live", id).await.is_null());
        // The other server follows it from the log (a server following
        // reads only the others' records).
        let (own, others) = (Some(here.server.as_str()), Some(there.server.as_str()));
        assert!(here.store.log_since(now, own).await.unwrap().is_empty());
        assert_eq!(here.store.log_since(now, others).await.unwrap().len(), 1);
        there.catch_up(now).await.unwrap();
        let seen = there.listed(id, later).unwrap();
        assert_eq!((seen.last_seen, seen.active_jobs), (later, 2));
        // Folded by the server that logged it (every half minute).
        assert_eq!(here.fold_log().await.unwrap(), 1);
        // The table keeps a node silent since its row was written but not
        // since its beat (this server's view forgets it, as its own index
        // says)...
        let lag = FOLD_LAG_MS;
        there
            .forget_silent(UnixMillis(now.0 + 1 + lag))
            .await
            .unwrap();
        assert!(!stored(&here, "live", id).await.is_null());
        assert_eq!(here.store.all().await.unwrap().len(), 1);
        // ...and forgets it, row and liveness, once silent since both.
        there
            .forget_silent(UnixMillis(later.0 + 1 + lag))
            .await
            .unwrap();
        assert!(stored(&here, "live", id).await.is_null());
        assert!(here.store.all().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_fold_keeps_the_load_heard_last_whichever_kind_came_first() {
        let registry = registry("fold-order").await;
        let key = p2p::Keypair::generate_ed25519();
        let id = NodeId::from(key.public().to_peer_id());
        let now = UnixMillis::now();
        assert!(registry
            .ingest_ad(&ad(&key, 1, now, 30_000), now)
            .await
            .unwrap());
        // A beat, then a load-only ad heard later: one fold writes both.
        let beat = Heartbeat {
            node_id: id,
            timestamp: UnixMillis(now.0 + 1),
            active_jobs: 7,
            accepting_jobs: true,
        };
        let beat_at = UnixMillis(now.0 + 1_000);
        registry
            .heartbeat_signed(&SignedEnvelope::seal(&key, &beat).unwrap(), beat_at)
            .await
            .unwrap();
        let mut busy = ad(&key, 2, now, 30_000);
        busy.load.active_jobs = 2;
        busy.load.queued_jobs = 5;
        let ad_at = UnixMillis(now.0 + 2_000);
        assert!(registry.ingest_ad(&busy, ad_at).await.unwrap());
        assert_eq!(registry.write_beats().await.unwrap(), 2);
        assert_eq!(registry.fold_log().await.unwrap(), 2);
        let live = stored(&registry, "live", id).await;
        assert_eq!(live["last_seen"], ad_at.0);
        assert_eq!(
            (live["active_jobs"].as_u64(), live["queued_jobs"].as_u64()),
            (Some(2), Some(5))
        );
        assert_eq!(live["last_signed"], now.0 + 1);
        // The other way round: the beat heard last wins the load.
        let later_beat = Heartbeat {
            node_id: id,
            timestamp: UnixMillis(now.0 + 2),
            active_jobs: 9,
            accepting_jobs: true,
        };
        let mut older_ad = ad(&key, 3, now, 30_000);
        older_ad.load.active_jobs = 1;
        assert!(registry
            .ingest_ad(&older_ad, UnixMillis(now.0 + 3_000))
            .await
            .unwrap());
        registry
            .heartbeat_signed(
                &SignedEnvelope::seal(&key, &later_beat).unwrap(),
                UnixMillis(now.0 + 4_000),
            )
            .await
            .unwrap();
        registry.write_beats().await.unwrap();
        registry.fold_log().await.unwrap();
        let live = stored(&registry, "live", id).await;
        assert_eq!(live["last_seen"], now.0 + 4_000);
        assert_eq!(live["active_jobs"], 9);
        assert_eq!(live["last_ad_seq"], 3);
    }

    #[tokio::test]
    async fn an_ad_that_changes_only_the_load_does_not_rewrite_the_row() {
        let registry = registry("ad-beats").await;
        let key = p2p::Keypair::generate_ed25519();
        let id = NodeId::from(key.public().to_peer_id());
        let now = UnixMillis::now();
        let stored_row = |registry: Registry| async move { stored(&registry, "node", id).await };
        assert!(registry
            .ingest_ad(&ad(&key, 1, now, 30_000), now)
            .await
            .unwrap());
        assert_eq!(stored_row(registry.clone()).await["last_ad_seq"], 1);
        // Busier, nothing else: listed at once, the row left alone.
        let mut busy = ad(&key, 2, now, 30_000);
        busy.load.queued_jobs = 4;
        assert!(registry.ingest_ad(&busy, now).await.unwrap());
        assert_eq!(registry.get(id, now).await.unwrap().unwrap().queued_jobs, 4);
        assert_eq!(stored_row(registry.clone()).await["last_ad_seq"], 1);
        // The same ad again: ignored.
        assert!(!registry.ingest_ad(&busy, now).await.unwrap());
        // Written with the next batch.
        assert_eq!(registry.write_beats().await.unwrap(), 1);
        assert_eq!(registry.fold_log().await.unwrap(), 1);
        let live = stored(&registry, "live", id).await;
        assert_eq!(
            (live["last_ad_seq"].as_u64(), live["queued_jobs"].as_u64()),
            (Some(2), Some(4))
        );
        assert_eq!(stored_row(registry.clone()).await["last_ad_seq"], 1);
        // The ad written is not taken again, from the table either.
        assert!(matches!(
            registry.store.ingest_ad(&busy, now).await,
            Ok(None)
        ));
        // Another model: the row is written at once.
        let mut more = ad(&key, 3, now, 30_000);
        more.models.push(offer("other", Task::Embedding, 5));
        assert!(registry.ingest_ad(&more, now).await.unwrap());
        let row = stored_row(registry.clone()).await;
        assert_eq!(row["last_ad_seq"], 3);
        assert_eq!(row["models"].as_array().unwrap().len(), 2);
        assert_eq!(registry.write_beats().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_busy_node_s_queue_and_top_bid_are_shown_from_its_ad() {
        let registry = registry("queue").await;
        let key = p2p::Keypair::generate_ed25519();
        let id = NodeId::from(key.public().to_peer_id());
        let now = UnixMillis::now();
        let mut busy = ad(&key, now.0, now, 30_000);
        busy.load.active_jobs = 1;
        busy.load.queued_jobs = 3;
        busy.load.top_bid_msat = Some(wire::MilliSats(5_000));
        registry.ingest_ad(&busy, now).await.unwrap();
        let got = registry.get(id, now).await.unwrap().unwrap();
        assert_eq!((got.active_jobs, got.queued_jobs), (1, 3));
        assert_eq!(got.top_bid_msat, Some(wire::MilliSats(5_000)));
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(json["queued_jobs"], 3);
        assert_eq!(json["top_bid_msat"], 5_000);
        // Idle again: no bid to beat.
        let idle = ad(&key, now.0 + 1, now, 30_000);
        registry.ingest_ad(&idle, now).await.unwrap();
        let got = registry.get(id, now).await.unwrap().unwrap();
        assert_eq!((got.queued_jobs, got.top_bid_msat), (0, None));
    }

    #[tokio::test]
    async fn a_paused_node_s_ad_marks_it_not_accepting_until_it_resumes() {
        let registry = registry("accepting").await;
        let key = p2p::Keypair::generate_ed25519();
        let id = NodeId::from(key.public().to_peer_id());
        let now = UnixMillis::now();
        let info = registry
            .register(&registration(id, now), now)
            .await
            .unwrap();
        assert!(info.accepting_jobs, "registered nodes start accepting");
        let mut paused = ad(&key, now.0 + 1, now, 30_000);
        paused.accepting_jobs = false;
        registry.ingest_ad(&paused, now).await.unwrap();
        let got = registry.get(id, now).await.unwrap().unwrap();
        assert!(!got.accepting_jobs);
        assert!(!got.is_available(), "online, but takes no jobs");
        // A later registration (the node restarted) does not reopen it:
        // only the node's ads and heartbeats say whether it takes jobs.
        let later = UnixMillis(now.0 + 1);
        registry
            .register(&registration(id, later), later)
            .await
            .unwrap();
        assert!(
            !registry
                .get(id, later)
                .await
                .unwrap()
                .unwrap()
                .accepting_jobs
        );
        let mut resumed = ad(&key, now.0 + 2, now, 30_000);
        resumed.accepting_jobs = true;
        registry.ingest_ad(&resumed, now).await.unwrap();
        assert!(registry.get(id, now).await.unwrap().unwrap().accepting_jobs);
        // A server that hears no gossip learns it from the heartbeats.
        let beat = Heartbeat {
            node_id: id,
            timestamp: UnixMillis(later.0 + 1),
            active_jobs: 0,
            accepting_jobs: false,
        };
        let envelope = SignedEnvelope::seal(&key, &beat).unwrap();
        registry.heartbeat_signed(&envelope, later).await.unwrap();
        assert!(
            !registry
                .get(id, later)
                .await
                .unwrap()
                .unwrap()
                .accepting_jobs
        );
    }

    #[tokio::test]
    async fn a_node_s_schedule_and_pools_come_from_its_latest_ad_and_are_replaced_whole() {
        use wire::schedule::{Availability, Span};
        let registry = registry("schedule").await;
        let key = p2p::Keypair::generate_ed25519();
        let id = NodeId::from(key.public().to_peer_id());
        let now = UnixMillis::now();
        let back = UnixMillis(now.0 + 3_600_000);
        let mut closed = ad(&key, now.0, now, 30_000);
        closed.availability = Some(Availability {
            open: vec![Span {
                from: back,
                until: UnixMillis(back.0 + 3_600_000),
            }],
            until: UnixMillis(now.0 + 7 * 86_400_000),
        });
        closed.pools = vec!["eu-west".into()];
        registry.ingest_ad(&closed, now).await.unwrap();
        let got = registry.get(id, now).await.unwrap().unwrap();
        let status = got.schedule.unwrap();
        assert_eq!((status.open, status.opens_at), (false, Some(back)));
        assert!(got.accepting_jobs && !got.is_available());
        assert_eq!(got.pools, vec!["eu-west".to_owned()]);
        // Read later, the same row says it is open (until its close).
        let later = registry.get(id, back).await.unwrap().unwrap();
        assert!(later.schedule.unwrap().open);
        // The next ad has no schedule and no pools: nothing of the old
        // one is left behind.
        let open = ad(&key, now.0 + 1, now, 30_000);
        registry.ingest_ad(&open, now).await.unwrap();
        let got = registry.get(id, now).await.unwrap().unwrap();
        assert_eq!(got.schedule, None);
        assert!(got.pools.is_empty());
        assert!(got.is_available());
    }
}

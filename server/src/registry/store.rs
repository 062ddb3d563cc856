//! The registry's tables in SurrealDB: one row per node, keyed by peer id
//! (`type::record('node', $peer_id)`), and its liveness and load apart
//! (`live`, same key), which heartbeats write without touching the row.
//! All of the registry's SurrealQL is here.

use serde::{Deserialize, Serialize};
use serde_json::json;
use wire::ads::CapabilityAd;
use wire::registry::{
    Hardware, Heartbeat, ModelFetch, ModelOffer, NodeInfo, Registration, MISSED_HEARTBEATS_OFFLINE,
};
use wire::schedule::Availability;
use wire::{MilliSats, NodeId, UnixMillis};

use crate::db::{Db, DbError};
use wire::registry::{NodeReach, NodeStatus};

/// A node as stored in the `node` table.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct NodeRow {
    peer_id: NodeId,
    multiaddrs: Vec<String>,
    hardware: Hardware,
    models: Vec<ModelOffer>,
    version: String,
    heartbeat_interval_ms: u64,
    active_jobs: u32,
    registered_at: UnixMillis,
    last_seen: UnixMillis,
    last_signed: UnixMillis,
    #[serde(default = "yes")]
    accepting_jobs: bool,
    #[serde(default)]
    fetching: Vec<ModelFetch>,
    #[serde(default)]
    queued_jobs: u32,
    #[serde(default)]
    top_bid_msat: Option<MilliSats>,
    /// The node's signed payout address; "" for none.
    #[serde(default)]
    payout_address: Option<String>,
    /// Its latest ad's open spans: one, or none without a schedule.
    #[serde(default)]
    availability: Vec<serde_json::Value>,
    #[serde(default)]
    pools: Vec<String>,
    /// Whether this server could reach it, when it last tried.
    #[serde(default)]
    reach: Option<NodeReach>,
    /// The newest ad taken for it; none for a node only heard over HTTP.
    #[serde(default)]
    last_ad_seq: Option<u64>,
    /// Its `live` row, where read with it (see [`NodeRow::settled`]).
    #[serde(default, skip_serializing)]
    live: Option<LiveRow>,
}

/// A node's `live` row: its liveness and load as its latest heartbeat or
/// load-only ad said.
#[derive(Debug, Default, Deserialize)]
struct LiveRow {
    #[serde(default)]
    last_seen: Option<UnixMillis>,
    #[serde(default)]
    last_signed: Option<UnixMillis>,
    #[serde(default)]
    active_jobs: Option<u32>,
    #[serde(default)]
    last_ad_seq: Option<u64>,
    #[serde(default)]
    queued_jobs: Option<u32>,
    #[serde(default)]
    top_bid_msat: Option<MilliSats>,
}

/// A node row read with its `live` row (to be [`NodeRow::settled`]).
const WITH_LIVE: &str = "*, type::record('live', peer_id).* AS live";

fn yes() -> bool {
    true
}

impl NodeRow {
    /// The row with its `live` row's liveness and load where those are
    /// newer: the newest signed message and ad of either, the load of
    /// whichever was heard last.
    fn settled(mut self) -> Self {
        let Some(live) = self.live.take() else {
            return self;
        };
        if let Some(signed) = live.last_signed {
            self.last_signed = self.last_signed.max(signed);
        }
        if live.last_ad_seq.is_some() {
            self.last_ad_seq = self.last_ad_seq.max(live.last_ad_seq);
        }
        if let Some(seen) = live.last_seen.filter(|seen| *seen > self.last_seen) {
            self.last_seen = seen;
            self.active_jobs = live.active_jobs.unwrap_or(self.active_jobs);
            if live.queued_jobs.is_some() {
                self.queued_jobs = live.queued_jobs.unwrap_or_default();
            }
            if live.top_bid_msat.is_some() {
                self.top_bid_msat = live.top_bid_msat;
            }
        }
        self
    }

    pub(super) fn peer_id(&self) -> NodeId {
        self.peer_id
    }

    /// The sequence number of the newest ad taken for the node.
    pub(super) fn last_ad_seq(&self) -> Option<u64> {
        self.last_ad_seq
    }

    /// When the node was last heard from (by whichever server wrote it).
    pub(super) fn last_seen(&self) -> UnixMillis {
        self.last_seen
    }

    /// The timestamp of the newest signed message taken from the node.
    pub(super) fn last_signed(&self) -> UnixMillis {
        self.last_signed
    }

    /// The node (its status and schedule not worked out: see the index)
    /// and its open spans.
    pub(super) fn into_parts(self) -> (NodeInfo, Option<Availability>) {
        let availability = self
            .availability
            .into_iter()
            .find_map(|a| serde_json::from_value::<Availability>(a).ok());
        let info = NodeInfo {
            status: NodeStatus::Offline,
            peer_id: self.peer_id,
            multiaddrs: self.multiaddrs,
            hardware: self.hardware,
            models: self.models,
            last_seen: self.last_seen,
            registered_at: self.registered_at,
            version: self.version,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            active_jobs: self.active_jobs,
            queued_jobs: self.queued_jobs,
            top_bid_msat: self.top_bid_msat.filter(|b| !b.is_zero()),
            accepting_jobs: self.accepting_jobs,
            fetching: self.fetching,
            schedule: None,
            pools: self.pools,
            claimed: false,
            operator: None,
            payout_address: self.payout_address.filter(|a| !a.is_empty()),
            reach: self.reach.unwrap_or_default(),
            // Kept apart (`crate::reputation`), joined when read.
            reputation: None,
            banned: None,
        };
        (info, availability)
    }

    /// The row a node's info would be stored as (for tests and benchmarks
    /// of the index).
    pub(super) fn of(info: &NodeInfo) -> NodeRow {
        NodeRow {
            peer_id: info.peer_id,
            multiaddrs: info.multiaddrs.clone(),
            hardware: info.hardware.clone(),
            models: info.models.clone(),
            version: info.version.clone(),
            heartbeat_interval_ms: info.heartbeat_interval_ms,
            active_jobs: info.active_jobs,
            registered_at: info.registered_at,
            last_seen: info.last_seen,
            last_signed: info.last_seen,
            accepting_jobs: info.accepting_jobs,
            fetching: info.fetching.clone(),
            queued_jobs: info.queued_jobs,
            top_bid_msat: info.top_bid_msat,
            payout_address: info.payout_address.clone(),
            availability: vec![],
            pools: info.pools.clone(),
            reach: Some(info.reach.clone()),
            last_ad_seq: None,
            live: None,
        }
    }
}

/// A heartbeat taken in memory, to be written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredBeat {
    pub(super) id: String,
    pub(super) seen: UnixMillis,
    pub(super) signed: UnixMillis,
    pub(super) active: u32,
}

/// An ad taken in memory (it changed only the node's load), to be
/// written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredAd {
    pub(super) id: String,
    pub(super) seen: UnixMillis,
    pub(super) seq: u64,
    pub(super) active: u32,
    pub(super) queued: u32,
    /// 0: none.
    pub(super) top_bid: MilliSats,
}

/// One server's beats and ads of one write, from `beat_log`.
#[derive(Debug)]
pub(super) struct Logged {
    pub(super) at: UnixMillis,
    pub(super) server: String,
    pub(super) beats: Vec<StoredBeat>,
    pub(super) ads: Vec<StoredAd>,
}

/// A log record stays at least this long after it was folded, for the
/// servers that follow the database (they read it every 2 s).
pub(super) const LOG_GRACE: u64 = 10_000;

/// Log records older than this are anyone's to delete (their server
/// stopped before folding them, and every server that started since has
/// read them).
pub(super) const LOG_KEPT: u64 = 10 * 60 * 1000;

/// How a heartbeat went.
pub(super) enum Beat {
    /// Stored: the node's row as it is now.
    Taken(Box<NodeRow>),
    /// Not newer than a message already taken from this node.
    Stale,
    UnknownNode,
}

#[derive(Clone)]
pub(super) struct NodeStore {
    db: Db,
}

impl NodeStore {
    pub(super) fn new(db: Db) -> Self {
        NodeStore { db }
    }

    #[cfg(test)]
    pub(super) fn db(&self) -> &Db {
        &self.db
    }

    async fn exists(&self, id: NodeId) -> Result<bool, DbError> {
        let rows: Vec<serde_json::Value> = self
            .db
            .rows(
                "SELECT peer_id FROM type::record('node', $id)",
                json!({ "id": id.to_string() }),
                0,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Stores a verified registration, if its timestamp is newer than every
    /// signed message taken from this node before; `None` if it is not.
    pub(super) async fn register(
        &self,
        r: &Registration,
        now: UnixMillis,
    ) -> Result<Option<NodeRow>, DbError> {
        let data = json!({
            "peer_id": r.node_id.to_string(),
            "multiaddrs": r.multiaddrs,
            "hardware": r.hardware,
            "models": r.models,
            "version": r.version,
            "heartbeat_interval_ms": r.heartbeat_interval_ms,
            "payout_address": r.payout_address.clone().unwrap_or_default(),
            "active_jobs": 0,
            "last_seen": now,
            "last_signed": r.timestamp,
        });
        self.merge_or_create(
            r.node_id,
            data,
            // The newest signed message may be a beat, in `live`.
            "last_signed < $newer AND (type::record('live', $id).last_signed ?? 0) < $newer",
            json!(r.timestamp),
            json!({}),
            now,
        )
        .await
    }

    /// Stores a verified ad unless an ad at least as new was taken for this
    /// node; returns the row as stored, or `None` if it was not.
    pub(super) async fn ingest_ad(
        &self,
        ad: &CapabilityAd,
        now: UnixMillis,
    ) -> Result<Option<NodeRow>, DbError> {
        let interval = (ad.ttl_ms / MISSED_HEARTBEATS_OFFLINE).max(1);
        let data = json!({
            "peer_id": ad.node_id.to_string(),
            "multiaddrs": ad.multiaddrs,
            "hardware": ad.hardware,
            "models": ad.models,
            "version": ad.version,
            "heartbeat_interval_ms": interval,
            "active_jobs": ad.load.active_jobs,
            "queued_jobs": ad.load.queued_jobs,
            "top_bid_msat": ad.load.top_bid_msat.unwrap_or_default(),
            "accepting_jobs": ad.accepting_jobs,
            "last_seen": now,
            "last_ad_seq": ad.seq,
            "fetching": ad.fetching,
            "payout_address": ad.payout_address.clone().unwrap_or_default(),
            "availability": ad.availability.as_slice(),
            "pools": ad.pools,
        });
        self.merge_or_create(
            ad.node_id,
            data,
            "(last_ad_seq IS NONE OR last_ad_seq < $newer) \
             AND (type::record('live', $id).last_ad_seq ?? -1) < $newer",
            json!(ad.seq),
            // No signed HTTP message yet: any later one is newer.
            json!({ "last_signed": 0 }),
            now,
        )
        .await
    }

    /// Merges `data` into the node's row if `guard` (SurrealQL over the
    /// stored row, with `$newer` bound to `newer`) holds, or creates the row
    /// (with `registered_at` and `on_create`'s fields) if there is none.
    /// `None`: the row exists and the guard refused, i.e. the message is
    /// not newer than one already taken, or it lost a race with one.
    async fn merge_or_create(
        &self,
        node: NodeId,
        data: serde_json::Value,
        guard: &str,
        newer: serde_json::Value,
        on_create: serde_json::Value,
        now: UnixMillis,
    ) -> Result<Option<NodeRow>, DbError> {
        let id = node.to_string();
        // An ad and a registration (or heartbeat) of the same node may
        // write its row at once: a write that lost that race is retried.
        let update = || async {
            let updated: Vec<NodeRow> = self
                .db
                .transact(
                    &format!(
                        "UPDATE type::record('node', $id) MERGE $data WHERE {guard} RETURN AFTER"
                    ),
                    json!({ "id": id, "data": data, "newer": newer }),
                    0,
                )
                .await?;
            Ok::<_, DbError>(updated.into_iter().next())
        };
        if let Some(row) = update().await? {
            return Ok(Some(row));
        }
        if !self.exists(node).await? {
            let mut fresh = data.clone();
            fresh["registered_at"] = json!(now);
            if let (Some(row), Some(extra)) = (fresh.as_object_mut(), on_create.as_object()) {
                row.extend(extra.clone());
            }
            let created = self
                .db
                .transact::<NodeRow>(
                    "CREATE type::record('node', $id) CONTENT $data RETURN AFTER",
                    json!({ "id": id, "data": fresh }),
                    0,
                )
                .await;
            match created {
                Ok(rows) => {
                    return rows
                        .into_iter()
                        .next()
                        .map(Some)
                        .ok_or(DbError::Missing("the created node"))
                }
                // Another message about the same node created it first.
                Err(_) if self.exists(node).await? => {}
                Err(e) => return Err(e),
            }
        }
        // The row exists, perhaps created a moment ago by a message of the
        // other kind (an ad racing a registration): the guard decides.
        update().await
    }

    pub(super) async fn heartbeat(&self, h: &Heartbeat, now: UnixMillis) -> Result<Beat, DbError> {
        let updated: Vec<NodeRow> = self
            .db
            .transact(
                "UPDATE type::record('node', $id) \
                 SET last_seen = $now, last_signed = $ts, active_jobs = $active, \
                     accepting_jobs = $accepting \
                 WHERE last_signed < $ts \
                     AND (type::record('live', $id).last_signed ?? 0) < $ts \
                 RETURN AFTER",
                json!({
                    "id": h.node_id.to_string(),
                    "now": now,
                    "ts": h.timestamp,
                    "active": h.active_jobs,
                    "accepting": h.accepting_jobs,
                }),
                0,
            )
            .await?;
        Ok(if let Some(row) = updated.into_iter().next() {
            Beat::Taken(Box::new(row))
        } else if self.exists(h.node_id).await? {
            Beat::Stale
        } else {
            Beat::UnknownNode
        })
    }

    /// Logs beats and ads taken in memory as `server`'s record at `at`:
    /// one write (a few, for very many nodes).
    pub(super) async fn append_log(
        &self,
        server: &str,
        at: UnixMillis,
        beats: &[StoredBeat],
        ads: &[StoredAd],
    ) -> Result<(), DbError> {
        const PER_RECORD: usize = 20_000;
        let mut records = Vec::new();
        for chunk in beats.chunks(PER_RECORD) {
            records.push(json!({
                "at": at, "server": server,
                "beats": serde_json::to_string(chunk)?, "ads": "[]",
            }));
        }
        for chunk in ads.chunks(PER_RECORD) {
            records.push(json!({
                "at": at, "server": server,
                "beats": "[]", "ads": serde_json::to_string(chunk)?,
            }));
        }
        self.db
            .transact::<serde_json::Value>(
                "INSERT INTO beat_log $records RETURN NONE",
                json!({ "records": records }),
                0,
            )
            .await?;
        Ok(())
    }

    /// The log records written after `since` by any server but `except`,
    /// oldest first.
    pub(super) async fn log_since(
        &self,
        since: UnixMillis,
        except: Option<&str>,
    ) -> Result<Vec<Logged>, DbError> {
        #[derive(Deserialize)]
        struct Row {
            at: UnixMillis,
            server: String,
            beats: String,
            ads: String,
        }
        let rows: Vec<Row> = self
            .db
            .rows(
                "SELECT at, server, beats, ads FROM beat_log \
                 WHERE at > $since AND server != $except ORDER BY at",
                json!({ "since": since, "except": except.unwrap_or("") }),
                0,
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Logged {
                    at: r.at,
                    server: r.server,
                    beats: serde_json::from_str(&r.beats)?,
                    ads: serde_json::from_str(&r.ads)?,
                })
            })
            .collect()
    }

    /// Deletes `server`'s log records up to `upto` (folded into `live`)
    /// that are older than [`LOG_GRACE`], and anyone's older than
    /// [`LOG_KEPT`], before `now`.
    pub(super) async fn drop_log(
        &self,
        server: &str,
        upto: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), DbError> {
        self.db
            .transact::<serde_json::Value>(
                "DELETE beat_log WHERE (server = $server AND at <= $upto) OR at < $stale RETURN NONE",
                json!({
                    "server": server,
                    "upto": upto.min(UnixMillis(now.0.saturating_sub(LOG_GRACE))),
                    "stale": now.0.saturating_sub(LOG_KEPT),
                }),
                0,
            )
            .await?;
        Ok(())
    }

    /// Folds logged heartbeats (see `Registry::fold_log`):
    /// each node's replay guard into its `live` row (not its node row),
    /// unless a newer beat was written there meanwhile, and its liveness
    /// and load unless something heard later (an ad) is there already.
    /// One statement per batch.
    pub(super) async fn fold_beats(&self, beats: &[StoredBeat]) -> Result<(), DbError> {
        for batch in beats.chunks(1000) {
            self.db
                .transact::<serde_json::Value>(
                    "FOR $b IN $beats { \
                       UPSERT type::record('live', $b.id) \
                       SET active_jobs = IF $b.seen >= (last_seen ?? 0) THEN $b.active ELSE active_jobs END, \
                           last_seen = math::max([last_seen ?? 0, $b.seen]), \
                           last_signed = $b.signed \
                       WHERE last_signed IS NONE OR last_signed < $b.signed RETURN NONE; \
                     };",
                    json!({ "beats": batch }),
                    0,
                )
                .await?;
        }
        Ok(())
    }

    /// Folds logged load-only ads (see `Registry::fold_log`): each node's
    /// newest ad into its `live` row, unless a newer ad was written there
    /// meanwhile, and its liveness and load unless something heard later (a
    /// beat) is there already. One statement per batch.
    pub(super) async fn fold_ads(&self, ads: &[StoredAd]) -> Result<(), DbError> {
        for batch in ads.chunks(1000) {
            self.db
                .transact::<serde_json::Value>(
                    "FOR $a IN $ads { \
                       UPSERT type::record('live', $a.id) \
                       SET active_jobs = IF $a.seen >= (last_seen ?? 0) THEN $a.active ELSE active_jobs END, \
                           queued_jobs = IF $a.seen >= (last_seen ?? 0) THEN $a.queued ELSE queued_jobs END, \
                           top_bid_msat = IF $a.seen >= (last_seen ?? 0) THEN $a.top_bid ELSE top_bid_msat END, \
                           last_seen = math::max([last_seen ?? 0, $a.seen]), \
                           last_ad_seq = $a.seq \
                       WHERE last_ad_seq IS NONE OR last_ad_seq < $a.seq RETURN NONE; \
                     };",
                    json!({ "ads": batch }),
                    0,
                )
                .await?;
        }
        Ok(())
    }

    /// Records what reaching a node found (nothing if it is gone).
    pub(super) async fn set_reach(&self, id: NodeId, reach: &NodeReach) -> Result<(), DbError> {
        self.db
            .transact::<serde_json::Value>(
                "UPDATE type::record('node', $id) SET reach = $reach RETURN NONE",
                json!({ "id": id.to_string(), "reach": reach }),
                0,
            )
            .await?;
        Ok(())
    }

    /// Nodes that name a payout address, and the address.
    pub(super) async fn payout_addresses(&self) -> Result<Vec<(NodeId, String)>, DbError> {
        #[derive(Deserialize)]
        struct Row {
            peer_id: NodeId,
            payout_address: String,
        }
        let rows: Vec<Row> = self
            .db
            .rows(
                "SELECT peer_id, payout_address FROM node \
                 WHERE payout_address != NONE AND payout_address != ''",
                json!({}),
                0,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.peer_id, r.payout_address))
            .collect())
    }

    /// The nodes whose rows were written after `since` (by any server
    /// sharing the database), with their liveness. (Liveness alone is
    /// followed in `beat_log`.)
    pub(super) async fn seen_since(&self, since: UnixMillis) -> Result<Vec<NodeRow>, DbError> {
        let rows: Vec<NodeRow> = self
            .db
            .rows(
                &format!("SELECT {WITH_LIVE} FROM node WHERE last_seen > $since"),
                json!({ "since": since }),
                0,
            )
            .await?;
        Ok(rows.into_iter().map(NodeRow::settled).collect())
    }

    /// Every node, sorted by peer id (read once, into the index).
    pub(super) async fn all(&self) -> Result<Vec<NodeRow>, DbError> {
        let rows: Vec<NodeRow> = self
            .db
            .rows(
                &format!("SELECT {WITH_LIVE} FROM node ORDER BY peer_id"),
                json!({}),
                0,
            )
            .await?;
        Ok(rows.into_iter().map(NodeRow::settled).collect())
    }

    /// The nodes an operator has enrolled (the `claim` table), every one,
    /// with the operator's public name if they show it.
    pub(super) async fn claims(
        &self,
    ) -> Result<std::collections::HashMap<NodeId, Option<String>>, DbError> {
        let rows: Vec<ClaimRow> = self
            .db
            .rows(
                "SELECT peer_id, type::record('account', account).public_name AS operator FROM claim",
                json!({}),
                0,
            )
            .await?;
        Ok(rows.into_iter().map(|r| (r.peer_id, r.operator)).collect())
    }

    /// The claims of `nodes` (a page, or one node), as [`Self::claims`].
    pub(super) async fn claims_of(
        &self,
        nodes: &[NodeId],
    ) -> Result<std::collections::HashMap<NodeId, Option<String>>, DbError> {
        if nodes.is_empty() {
            return Ok(Default::default());
        }
        let rows: Vec<ClaimRow> = self
            .db
            .rows(
                "SELECT peer_id, type::record('account', account).public_name AS operator \
                 FROM array::map($ids, |$id| type::record('claim', $id)) \
                 WHERE peer_id != NONE",
                json!({ "ids": nodes }),
                0,
            )
            .await?;
        Ok(rows.into_iter().map(|r| (r.peer_id, r.operator)).collect())
    }

    /// Stores a signed ban, keyed by the banned node: returns false if the
    /// node is banned already (the first ban stands).
    pub(super) async fn insert_ban(
        &self,
        node: NodeId,
        envelope: &wire::SignedEnvelope,
        at: UnixMillis,
    ) -> Result<bool, DbError> {
        let created: Vec<serde_json::Value> = self
            .db
            .rows(
                "IF record::exists(type::record('ban', $node)) { RETURN [] } ELSE { \
                     RETURN (CREATE type::record('ban', $node) \
                         CONTENT { node_id: $node, envelope: $envelope, at: $at } RETURN node_id) \
                 };",
                json!({ "node": node, "envelope": envelope, "at": at }),
                0,
            )
            .await?;
        Ok(!created.is_empty())
    }

    /// The nodes of every stored ban (this server's and others').
    pub(super) async fn ban_ids(&self) -> Result<Vec<String>, DbError> {
        self.db
            .rows("SELECT VALUE node_id FROM ban", json!({}), 0)
            .await
    }

    /// The stored bans of `nodes` (peer ids), as signed.
    pub(super) async fn bans_of(
        &self,
        nodes: &[String],
    ) -> Result<Vec<wire::SignedEnvelope>, DbError> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        self.db
            .rows(
                "SELECT VALUE envelope FROM ban WHERE node_id IN $ids",
                json!({ "ids": nodes }),
                0,
            )
            .await
    }

    /// Deletes the nodes not heard from since `cutoff`: their peer ids.
    pub(super) async fn forget_silent(&self, cutoff: UnixMillis) -> Result<Vec<String>, DbError> {
        #[derive(Deserialize)]
        struct Gone {
            peer_id: String,
        }
        // Silent by its row and by its liveness; then the liveness of
        // nodes gone (or silent) goes too.
        let gone: Vec<Gone> = self
            .db
            .transact(
                "DELETE node WHERE last_seen < $cutoff \
                   AND (type::record('live', peer_id).last_seen ?? 0) < $cutoff \
                 RETURN BEFORE",
                json!({ "cutoff": cutoff }),
                0,
            )
            .await?;
        self.db
            .transact::<serde_json::Value>(
                "DELETE live WHERE last_seen < $cutoff RETURN NONE",
                json!({ "cutoff": cutoff }),
                0,
            )
            .await?;
        Ok(gone.into_iter().map(|g| g.peer_id).collect())
    }
}

/// A node's claim as the listings show it: its operator's public name.
#[derive(Deserialize)]
struct ClaimRow {
    peer_id: NodeId,
    #[serde(default)]
    operator: Option<String>,
}

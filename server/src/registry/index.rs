//! The registry's nodes in memory, in step with the `node` table: loaded
//! from it at start-up, and every write this server makes to a node's row
//! puts the row it wrote here too (the database first, then the index, so
//! the index never shows what was not stored). Reads (`GET /nodes`, a
//! job's choice of node, the catalogue) never scan the table: pages are
//! cut from a map sorted by peer id, and a model's nodes come from a map
//! by model name and hash.
//!
//! An entry keeps the node as stored; its status (online after its last
//! beat) and schedule (open at this instant) are worked out when read.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use wire::ads::CapabilityAd;
use wire::registry::MISSED_HEARTBEATS_OFFLINE;
use wire::registry::{NodeInfo, NodeList, NodeQuery, NodeReach, NodeSort, NodeStatus, ReachState};
use wire::schedule::Availability;
use wire::verify::BanSummary;
use wire::{MilliSats, NodeId, UnixMillis};

use super::query::{self, status_at, Cursor};
use super::store::{NodeRow, StoredAd, StoredBeat};
use crate::reputation::evidence::routing_cost;

/// One node as stored, with its open spans read once.
struct Entry {
    info: NodeInfo,
    availability: Option<Availability>,
    /// The newest signed message's timestamp: the replay guard.
    last_signed: UnixMillis,
    /// The newest ad's sequence number: older ads are ignored.
    last_ad_seq: Option<u64>,
}

/// How a heartbeat or an ad met the index (see [`Index::beat`],
/// [`Index::ad`]).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Beat {
    /// Taken: the node's liveness and load are updated.
    Taken,
    /// Not newer than a signed message (an ad) already taken for the node.
    Stale,
    /// It changes what the node is (it paused or resumed), or the node is
    /// not here: for the table to decide.
    ToStore,
}

impl Entry {
    fn status(&self, now: UnixMillis) -> NodeStatus {
        status_at(self.info.last_seen, self.info.heartbeat_interval_ms, now)
    }

    /// The node as of `now`.
    fn info(&self, now: UnixMillis) -> NodeInfo {
        let mut info = self.info.clone();
        info.status = self.status(now);
        info.schedule = self.availability.as_ref().map(|a| a.status(now));
        info
    }

    /// Online, taking jobs and inside its schedule: [`NodeInfo::is_available`]
    /// without copying the node.
    fn available(&self, now: UnixMillis) -> bool {
        self.status(now) == NodeStatus::Online
            && self.info.accepting_jobs
            && self.info.reach.state != ReachState::Unreachable
            && self.info.banned.is_none()
            && self.availability.as_ref().is_none_or(|a| a.is_open(now))
    }
}

/// Whether two versions of a node differ only in when it was last heard
/// from and how busy it is.
fn same_but_load(a: &NodeInfo, b: &NodeInfo) -> bool {
    let quiet = |n: &NodeInfo| NodeInfo {
        last_seen: UnixMillis(0),
        active_jobs: 0,
        queued_jobs: 0,
        top_bid_msat: None,
        ..n.clone()
    };
    quiet(a) == quiet(b)
}

/// Whether `ad` says what the node's stored entry says, its load aside:
/// the fields an ad writes to the node's row (`NodeStore::ingest_ad`).
fn says_the_same(entry: &Entry, ad: &CapabilityAd) -> bool {
    let n = &entry.info;
    n.multiaddrs == ad.multiaddrs
        && n.hardware == ad.hardware
        && n.models == ad.models
        && n.version == ad.version
        && n.heartbeat_interval_ms == (ad.ttl_ms / MISSED_HEARTBEATS_OFFLINE).max(1)
        && n.accepting_jobs == ad.accepting_jobs
        && n.fetching == ad.fetching
        && n.payout_address.as_deref() == ad.payout_address.as_deref().filter(|a| !a.is_empty())
        && n.pools == ad.pools
        && entry.availability == ad.availability
}

/// A peer id as text, shared by the maps that name the node (one copy
/// per node, not one per map and model).
type Id = Arc<str>;

#[derive(Default)]
struct Inner {
    /// Goes up whenever what a node offers or is changes (not when it
    /// only beats again or its load changes): cached answers are good
    /// while it stays.
    generation: u64,
    /// By peer id as text: the order of `GET /nodes` pages.
    nodes: BTreeMap<Id, Arc<Entry>>,
    /// Model name or content hash (as text) → the nodes offering it.
    by_model: HashMap<String, BTreeSet<Id>>,
    /// The same, cheapest first: a job's choice reads a model's nodes in
    /// price order and stops once no dearer one could win.
    by_price: HashMap<String, BTreeSet<(MilliSats, Id)>>,
    /// Nodes caught answering wrong, by peer id as text: their entries
    /// say so whatever their rows say.
    banned: HashMap<String, BanSummary>,
}

impl Inner {
    /// Each name and hash a node's models answer to, with the price of the
    /// first model that answers to it (the one a job for it gets).
    fn model_keys(info: &NodeInfo) -> Vec<(String, MilliSats)> {
        let mut keys: Vec<(String, MilliSats)> = Vec::with_capacity(info.models.len() * 2);
        for m in &info.models {
            for key in [m.name.clone(), m.hash.to_string()] {
                if !keys.iter().any(|(k, _)| *k == key) {
                    keys.push((key, m.price_msat));
                }
            }
        }
        keys
    }

    fn unlink(&mut self, id: &str) {
        if let Some(old) = self.nodes.remove(id) {
            for (key, price) in Self::model_keys(&old.info) {
                if let Some(set) = self.by_model.get_mut(&key) {
                    set.remove(id);
                    if set.is_empty() {
                        self.by_model.remove(&key);
                    }
                }
                if let Some(set) = self.by_price.get_mut(&key) {
                    set.remove(&(price, Id::from(id)));
                    if set.is_empty() {
                        self.by_price.remove(&key);
                    }
                }
            }
        }
    }
}

/// What a job asks of its node (see [`Index::for_job`]).
#[derive(Clone, Copy)]
pub(super) struct Wanted<'a> {
    /// A model name or content hash.
    pub(super) model: &'a str,
    /// The node the caller named, by peer id.
    pub(super) only: Option<&'a str>,
    pub(super) pool: Option<&'a str>,
    pub(super) max_price: Option<MilliSats>,
}

/// Cheap to clone: every clone is the same index.
#[derive(Clone, Default)]
pub(super) struct Index(Arc<RwLock<Inner>>);

impl Index {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic while the lock was held cannot leave the maps half
        // changed (each write is one `put` or `remove`): go on.
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a row as it was stored, replacing the node's previous one.
    /// Returns whether the node is new or names other addresses (to be
    /// reached anew). What reaching it found stays, unless the row holds
    /// a later finding.
    pub(super) fn put(&self, row: NodeRow) -> bool {
        let mut last_signed = row.last_signed();
        let mut last_ad_seq = row.last_ad_seq();
        let (mut info, availability) = row.into_parts();
        let id = Id::from(info.peer_id.to_string());
        let keys = Inner::model_keys(&info);
        let mut inner = self.write();
        let (moved, changed) = match inner.nodes.get(&*id) {
            Some(old) => {
                if old.info.reach.checked_at > info.reach.checked_at {
                    info.reach = old.info.reach.clone();
                }
                // Beats taken here may not be written yet.
                if old.last_signed > last_signed {
                    last_signed = old.last_signed;
                }
                last_ad_seq = last_ad_seq.max(old.last_ad_seq);
                info.last_seen = info.last_seen.max(old.info.last_seen);
                (
                    old.info.multiaddrs != info.multiaddrs,
                    !same_but_load(&old.info, &info) || old.availability != availability,
                )
            }
            None => (info.reach.checked_at.is_none(), true),
        };
        if moved {
            info.reach = NodeReach::default();
        }
        info.banned = inner.banned.get(&*id).cloned();
        if changed {
            inner.generation += 1;
        }
        let entry = Arc::new(Entry {
            info,
            availability,
            last_signed,
            last_ad_seq,
        });
        inner.unlink(&id);
        for (key, price) in keys {
            inner
                .by_price
                .entry(key.clone())
                .or_default()
                .insert((price, id.clone()));
            inner.by_model.entry(key).or_default().insert(id.clone());
        }
        inner.nodes.insert(id, entry);
        moved
    }

    /// Takes a verified heartbeat signed at `signed`, heard at `now`, if
    /// it only says the node is alive and how busy it is.
    pub(super) fn beat(
        &self,
        id: &str,
        signed: UnixMillis,
        now: UnixMillis,
        active_jobs: u32,
        accepting_jobs: bool,
    ) -> Beat {
        let mut inner = self.write();
        let Some(entry) = inner.nodes.get_mut(id) else {
            return Beat::ToStore;
        };
        if signed <= entry.last_signed {
            return Beat::Stale;
        }
        if accepting_jobs != entry.info.accepting_jobs {
            return Beat::ToStore;
        }
        let mut info = entry.info.clone();
        info.last_seen = now;
        info.active_jobs = active_jobs;
        *entry = Arc::new(Entry {
            info,
            availability: entry.availability.clone(),
            last_signed: signed,
            last_ad_seq: entry.last_ad_seq,
        });
        Beat::Taken
    }

    /// Takes a verified ad heard at `now`, if it says only what the node's
    /// latest already said, with another load.
    pub(super) fn ad(&self, ad: &CapabilityAd, now: UnixMillis) -> Beat {
        let mut inner = self.write();
        let Some(entry) = inner.nodes.get_mut(ad.node_id.to_string().as_str()) else {
            return Beat::ToStore;
        };
        if entry.last_ad_seq.is_some_and(|seq| ad.seq <= seq) {
            return Beat::Stale;
        }
        if !says_the_same(entry, ad) {
            return Beat::ToStore;
        }
        let mut info = entry.info.clone();
        info.last_seen = now;
        info.active_jobs = ad.load.active_jobs;
        info.queued_jobs = ad.load.queued_jobs;
        info.top_bid_msat = ad.load.top_bid_msat.filter(|b| !b.is_zero());
        *entry = Arc::new(Entry {
            info,
            availability: entry.availability.clone(),
            last_signed: entry.last_signed,
            last_ad_seq: Some(ad.seq),
        });
        Beat::Taken
    }

    /// Takes liveness a server logged (this one before a restart, or
    /// another on the same database) where it is newer than what is held:
    /// the newest signed message and ad, the load of whichever was heard
    /// last. Nodes not held are left to their rows.
    pub(super) fn logged(&self, beat: Option<&StoredBeat>, ad: Option<&StoredAd>) {
        let Some(id) = beat.map(|b| b.id.as_str()).or(ad.map(|a| a.id.as_str())) else {
            return;
        };
        let mut inner = self.write();
        let Some(entry) = inner.nodes.get_mut(id) else {
            return;
        };
        let mut info = entry.info.clone();
        let mut last_signed = entry.last_signed;
        let mut last_ad_seq = entry.last_ad_seq;
        if let Some(b) = beat {
            last_signed = last_signed.max(b.signed);
            if b.seen > info.last_seen {
                info.last_seen = b.seen;
                info.active_jobs = b.active;
            }
        }
        if let Some(a) = ad {
            last_ad_seq = last_ad_seq.max(Some(a.seq));
            if a.seen > info.last_seen {
                info.last_seen = a.seen;
                info.active_jobs = a.active;
                info.queued_jobs = a.queued;
                info.top_bid_msat = Some(a.top_bid).filter(|b| !b.is_zero());
            }
        }
        *entry = Arc::new(Entry {
            info,
            availability: entry.availability.clone(),
            last_signed,
            last_ad_seq,
        });
    }

    /// The replay guard of a node: the newest signed message taken.
    pub(super) fn last_signed(&self, id: &str) -> Option<UnixMillis> {
        self.read().nodes.get(id).map(|e| e.last_signed)
    }

    /// Something answers show changed outside the index (a claim):
    /// answers made before are not sent again.
    pub(super) fn changed(&self) {
        self.write().generation += 1;
    }

    /// See `Inner::generation`.
    pub(super) fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Records what reaching a node found.
    pub(super) fn set_reach(&self, id: &str, reach: NodeReach) {
        let mut inner = self.write();
        inner.generation += 1;
        if let Some(entry) = inner.nodes.get_mut(id) {
            let mut info = entry.info.clone();
            info.reach = reach;
            *entry = Arc::new(Entry {
                info,
                availability: entry.availability.clone(),
                last_signed: entry.last_signed,
                last_ad_seq: entry.last_ad_seq,
            });
        }
    }

    /// Marks a node banned (listed as such, never chosen), now and
    /// whenever its row is put again.
    pub(super) fn ban(&self, id: &str, ban: BanSummary) {
        let mut inner = self.write();
        inner.generation += 1;
        inner.banned.insert(id.to_owned(), ban.clone());
        if let Some(entry) = inner.nodes.get_mut(id) {
            let mut info = entry.info.clone();
            info.banned = Some(ban);
            *entry = Arc::new(Entry {
                info,
                availability: entry.availability.clone(),
                last_signed: entry.last_signed,
                last_ad_seq: entry.last_ad_seq,
            });
        }
    }

    pub(super) fn is_banned(&self, id: &str) -> bool {
        self.read().banned.contains_key(id)
    }

    /// The nodes to try to reach again as of `now`: not tried yet; found
    /// unreachable more than `retry_ms` ago; reached more than
    /// `recheck_ms` ago. Online ones only (the offline are tried again
    /// when they speak again).
    pub(super) fn due(&self, now: UnixMillis, retry_ms: u64, recheck_ms: u64) -> Vec<NodeId> {
        let inner = self.read();
        inner
            .nodes
            .values()
            .filter(|e| e.status(now) == NodeStatus::Online)
            .filter(|e| {
                let age = e
                    .info
                    .reach
                    .checked_at
                    .map_or(u64::MAX, |at| now.0.saturating_sub(at.0));
                match e.info.reach.state {
                    ReachState::Unverified => true,
                    ReachState::Unreachable => age > retry_ms,
                    ReachState::Reached => age > recheck_ms,
                }
            })
            .map(|e| e.info.peer_id)
            .collect()
    }

    /// The nodes last heard from before `cutoff`.
    pub(super) fn silent_since(&self, cutoff: UnixMillis) -> Vec<String> {
        self.read()
            .nodes
            .iter()
            .filter(|(_, e)| e.info.last_seen < cutoff)
            .map(|(id, _)| id.to_string())
            .collect()
    }

    /// Forgets nodes (deleted from the table).
    pub(super) fn remove<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.write();
        inner.generation += 1;
        for id in ids {
            inner.unlink(id);
        }
    }

    /// Whether a node is listed and how reaching it last went, without
    /// copying its entry.
    pub(super) fn reach_state(&self, id: &str) -> Option<ReachState> {
        self.read().nodes.get(id).map(|e| e.info.reach.state)
    }

    pub(super) fn get(&self, id: &str, now: UnixMillis) -> Option<NodeInfo> {
        self.read().nodes.get(id).map(|e| e.info(now))
    }

    /// How many nodes there are, and how many of them are online.
    pub(super) fn counts(&self, now: UnixMillis) -> (usize, usize) {
        let inner = self.read();
        let online = inner
            .nodes
            .values()
            .filter(|e| e.status(now) == NodeStatus::Online)
            .count();
        (inner.nodes.len(), online)
    }

    /// The page of nodes that `q` selects after `after`: by peer id, read
    /// in that order (a model's nodes only, when `q` names a model) until
    /// the page is full; or best `score` first.
    pub(super) fn list(
        &self,
        q: &NodeQuery,
        after: Option<&Cursor>,
        limit: usize,
        now: UnixMillis,
        score: &dyn Fn(&NodeId) -> u8,
    ) -> NodeList {
        use std::ops::Bound::{Excluded, Unbounded};
        if q.sort == Some(NodeSort::Reputation) {
            return self.list_ranked(q, after, limit, now, score);
        }
        let inner = self.read();
        let from = match after {
            Some(Cursor::Peer(a)) => Excluded(a.as_str()),
            _ => Unbounded,
        };
        let mut page = Vec::with_capacity(limit.min(64));
        let mut more = false;
        let mut take = |entry: &Entry| {
            if !query::matches_at(q, &entry.info, entry.status(now))
                || q.min_reputation
                    .is_some_and(|min| score(&entry.info.peer_id) < min)
            {
                return true;
            }
            if page.len() == limit {
                more = true;
                return false;
            }
            page.push(entry.info(now));
            true
        };
        match q.model.as_deref() {
            Some(model) => {
                if let Some(ids) = inner.by_model.get(model) {
                    for id in ids.range::<str, _>((from, Unbounded)) {
                        if let Some(entry) = inner.nodes.get(id) {
                            if !take(entry) {
                                break;
                            }
                        }
                    }
                }
            }
            None => {
                for entry in inner
                    .nodes
                    .range::<str, _>((from, Unbounded))
                    .map(|(_, e)| e)
                {
                    if !take(entry) {
                        break;
                    }
                }
            }
        }
        let next_cursor = more
            .then(|| page.last().map(|n| query::encode_cursor(n.peer_id)))
            .flatten();
        NodeList {
            nodes: page,
            next_cursor,
        }
    }

    /// [`Index::list`] best score first (ties by peer id): every node the
    /// query selects is scored, the page is the best `limit` after the
    /// cursor's place.
    fn list_ranked(
        &self,
        q: &NodeQuery,
        after: Option<&Cursor>,
        limit: usize,
        now: UnixMillis,
        score: &dyn Fn(&NodeId) -> u8,
    ) -> NodeList {
        use std::cmp::Reverse;
        let inner = self.read();
        let after = match after {
            Some(Cursor::Ranked(s, peer)) => Some((Reverse(*s), peer.as_str())),
            _ => None,
        };
        let selected: Vec<(&Id, &Arc<Entry>)> = match q.model.as_deref() {
            Some(model) => inner
                .by_model
                .get(model)
                .into_iter()
                .flatten()
                .filter_map(|id| inner.nodes.get_key_value(id))
                .collect(),
            None => inner.nodes.iter().collect(),
        };
        let mut hits: Vec<((Reverse<u8>, &str), &Entry)> = Vec::new();
        for (id, entry) in selected {
            if !query::matches_at(q, &entry.info, entry.status(now)) {
                continue;
            }
            let s = score(&entry.info.peer_id);
            if q.min_reputation.is_some_and(|min| s < min) {
                continue;
            }
            let key = (Reverse(s), &**id);
            if after.is_none_or(|a| key > a) {
                hits.push((key, entry));
            }
        }
        if hits.len() > limit + 1 {
            hits.select_nth_unstable_by(limit, |a, b| a.0.cmp(&b.0));
            hits.truncate(limit + 1);
        }
        hits.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let more = hits.len() > limit;
        hits.truncate(limit);
        let next_cursor = more
            .then(|| {
                hits.last()
                    .map(|((s, _), e)| query::encode_ranked_cursor(s.0, e.info.peer_id))
            })
            .flatten();
        NodeList {
            nodes: hits.into_iter().map(|(_, e)| e.info(now)).collect(),
            next_cursor,
        }
    }

    /// The nodes a job for `model` may choose from, as of `now`: when some
    /// can take it (available, in `pool`, at or under `max_price`), the
    /// best `keep` of those by price weighed by `score` (a node's score and
    /// recent failures), load and freshness; else every node offering the
    /// model (at most a thousand), for the choice to say why none can.
    /// With `only`, that node alone (if it offers the model).
    pub(super) fn for_job(
        &self,
        wanted: &Wanted<'_>,
        now: UnixMillis,
        keep: usize,
        score: &dyn Fn(&NodeId) -> (u8, u32),
    ) -> Vec<NodeInfo> {
        const EXPLAIN: usize = 1000;
        let Wanted {
            model,
            only,
            pool,
            max_price,
        } = *wanted;
        let inner = self.read();
        let Some(ids) = inner.by_model.get(model) else {
            return Vec::new();
        };
        if let Some(only) = only {
            return match ids.get(only).and_then(|id| inner.nodes.get(id)) {
                Some(entry) => vec![entry.info(now)],
                // Others offer it: the choice says the named one does not.
                None => ids
                    .iter()
                    .filter_map(|id| inner.nodes.get(id))
                    .take(1)
                    .map(|e| e.info(now))
                    .collect(),
            };
        }
        // The best `keep`, by the choice's own order: reached before not
        // yet dialled, then the price weighed by reputation (see
        // `reputation::evidence`), least busy, freshest.
        type Key<'a> = (bool, u64, u32, std::cmp::Reverse<UnixMillis>, &'a Id);
        let mut best: Vec<(Key<'_>, &Entry)> = Vec::with_capacity(keep + 1);
        let by_price = inner.by_price.get(model).into_iter().flatten();
        for (price, id) in by_price {
            let price = *price;
            if max_price.is_some_and(|max| price > max) {
                break;
            }
            // A weighed price is never below the price: once the best few
            // are reached nodes that cost less than this price, no dearer
            // node can displace them.
            if best.len() == keep
                && best.iter().all(|b| !b.0 .0)
                && best.last().is_some_and(|b| b.0 .1 < price.0)
            {
                break;
            }
            let Some(entry) = inner.nodes.get(id) else {
                continue;
            };
            if !entry.available(now) || pool.is_some_and(|p| !entry.info.in_pool(p)) {
                continue;
            }
            let (score, recent) = score(&entry.info.peer_id);
            let key = (
                entry.info.reach.state != ReachState::Reached,
                routing_cost(price, score, recent),
                entry.info.active_jobs,
                std::cmp::Reverse(entry.info.last_seen),
                id,
            );
            let at = best.partition_point(|b| b.0 <= key);
            if at < keep {
                best.insert(at, (key, entry.as_ref()));
                best.truncate(keep);
            }
        }
        if !best.is_empty() {
            return best.into_iter().map(|b| b.1.info(now)).collect();
        }
        ids.iter()
            .filter_map(|id| inner.nodes.get(id))
            .take(EXPLAIN)
            .map(|e| e.info(now))
            .collect()
    }

    /// The nodes offering `model` (a name or hash) that can take a job
    /// now.
    pub(super) fn available_ids(&self, model: &str, now: UnixMillis) -> Vec<NodeId> {
        let inner = self.read();
        inner
            .by_model
            .get(model)
            .into_iter()
            .flatten()
            .filter_map(|id| inner.nodes.get(id))
            .filter(|e| e.available(now))
            .map(|e| e.info.peer_id)
            .collect()
    }

    /// Calls `f` with every node that can take a job now (its status and
    /// schedule as stored: read only its models and registration).
    pub(super) fn each_available(&self, now: UnixMillis, mut f: impl FnMut(&NodeInfo)) {
        for entry in self.read().nodes.values() {
            if entry.available(now) {
                f(&entry.info);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::fixtures::{node_info, offer};
    use wire::registry::Task;

    fn row(seed: u8, model: &str, price: u64, last_seen: u64) -> NodeRow {
        let mut info = node_info(seed, vec![offer(model, Task::Embedding, price)]);
        info.last_seen = UnixMillis(last_seen);
        info.heartbeat_interval_ms = 1000;
        NodeRow::of(&info)
    }

    #[test]
    fn pages_go_in_peer_id_order_and_a_model_s_nodes_come_from_its_own_map() {
        let index = Index::default();
        for seed in 0..20u8 {
            index.put(row(
                seed,
                if seed % 2 == 0 { "even" } else { "odd" },
                10,
                1_000,
            ));
        }
        let now = UnixMillis(1_500);
        let mut seen = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            let page = index.list(&NodeQuery::default(), after.as_ref(), 7, now, &|_| 86);
            seen.extend(page.nodes.iter().map(|n| n.peer_id.to_string()));
            match page.next_cursor {
                Some(c) => after = Some(query::decode_cursor(&c).unwrap()),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        assert_eq!(seen.len(), 20);
        let q = NodeQuery {
            model: Some("odd".into()),
            ..NodeQuery::default()
        };
        let odd = index.list(&q, None, 100, now, &|_| 86);
        assert_eq!(odd.nodes.len(), 10);
        assert!(odd.nodes.iter().all(|n| n.models[0].name == "odd"));
        // A node that changes its models moves between the maps.
        index.put(row(1, "even", 10, 1_000));
        assert_eq!(index.list(&q, None, 100, now, &|_| 86).nodes.len(), 9);
        index.remove(["nope"]);
        let gone = index.list(&q, None, 100, now, &|_| 86).nodes[0]
            .peer_id
            .to_string();
        index.remove([gone.as_str()]);
        assert_eq!(index.list(&q, None, 100, now, &|_| 86).nodes.len(), 8);
        assert_eq!(index.counts(now), (19, 19));
        // Status is worked out when read.
        assert_eq!(index.counts(UnixMillis(10_000)), (19, 0));
    }

    #[test]
    fn a_banned_node_is_listed_as_banned_never_chosen_and_stays_banned_when_its_row_returns() {
        let index = Index::default();
        for seed in 0..3u8 {
            index.put(row(seed, "m", 100 + u64::from(seed), 1_000));
        }
        let now = UnixMillis(1_500);
        let wanted = Wanted {
            model: "m",
            only: None,
            pool: None,
            max_price: None,
        };
        let cheapest = index.for_job(&wanted, now, 3, &|_| (86, 0))[0].peer_id;
        let id = cheapest.to_string();
        index.ban(
            &id,
            BanSummary {
                at: now,
                server: node_info(9, vec![]).peer_id,
                model_hash: wire::ModelHash::of(b"m"),
                reason: "answered a canary wrong".into(),
            },
        );
        assert!(index.is_banned(&id));
        let chosen = index.for_job(&wanted, now, 3, &|_| (86, 0));
        assert_eq!(chosen.len(), 2);
        assert!(chosen.iter().all(|n| n.peer_id != cheapest));
        assert!(index.available_ids("m", now).iter().all(|n| *n != cheapest));
        // Its row written again (a heartbeat, a registration): still banned.
        index.put(row(0, "m", 100, 1_400));
        let listed = index.get(&id, now).unwrap();
        assert!(listed.banned.is_some() && !listed.is_available());
        assert_eq!(index.for_job(&wanted, now, 3, &|_| (86, 0)).len(), 2);
    }

    #[test]
    fn a_job_gets_the_best_few_that_can_take_it_or_all_to_say_why_not() {
        let index = Index::default();
        for seed in 0..50u8 {
            index.put(row(
                seed,
                "m",
                100 + u64::from(seed % 5),
                1_000 + u64::from(seed),
            ));
        }
        let now = UnixMillis(1_500);
        let best = index.for_job(
            &Wanted {
                model: "m",
                only: None,
                pool: None,
                max_price: None,
            },
            now,
            3,
            &|_| (86, 0),
        );
        assert_eq!(best.len(), 3);
        assert!(best
            .iter()
            .all(|n| n.models[0].price_msat == MilliSats(100)));
        // Of equal price and load, the freshest first.
        assert!(best[0].last_seen > best[1].last_seen && best[1].last_seen > best[2].last_seen);
        // Under a price no node meets: all of them, for the reasons.
        let under_50 = Wanted {
            model: "m",
            only: None,
            pool: None,
            max_price: Some(MilliSats(50)),
        };
        let none = index.for_job(&under_50, now, 3, &|_| (86, 0));
        assert_eq!(none.len(), 50);
        assert!(index
            .for_job(
                &Wanted {
                    model: "other",
                    only: None,
                    pool: None,
                    max_price: None
                },
                now,
                3,
                &|_| (86, 0)
            )
            .is_empty());
        // Found unreachable: left out; not dialled yet: after the reached.
        let unreachable = NodeReach {
            state: ReachState::Unreachable,
            checked_at: Some(now),
            reason: Some("connection refused".into()),
        };
        index.set_reach(&best[0].peer_id.to_string(), unreachable);
        index.set_reach(&best[1].peer_id.to_string(), NodeReach::default());
        let next = index.for_job(
            &Wanted {
                model: "m",
                only: None,
                pool: None,
                max_price: None,
            },
            now,
            50,
            &|_| (86, 0),
        );
        assert_eq!(next.len(), 49);
        assert!(next.iter().all(|n| n.peer_id != best[0].peer_id));
        assert_eq!(next.last().unwrap().peer_id, best[1].peer_id);
        let found = index.get(&best[0].peer_id.to_string(), now).unwrap();
        assert_eq!(found.reach.reason.as_deref(), Some("connection refused"));
        assert_eq!(index.due(now, 60_000, 600_000), vec![best[1].peer_id]);
        let one = best[2].peer_id.to_string();
        let only = index.for_job(
            &Wanted {
                model: "m",
                only: Some(&one),
                pool: None,
                max_price: None,
            },
            now,
            3,
            &|_| (86, 0),
        );
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].peer_id.to_string(), one);
    }

    #[test]
    fn a_cheap_node_that_fails_loses_the_job_to_a_dearer_one_that_works() {
        let index = Index::default();
        index.put(row(1, "m", 100, 1_000));
        index.put(row(2, "m", 300, 1_000));
        let cheap = testkit::fixtures::node_id(1);
        let now = UnixMillis(1_500);
        let first = |score: &dyn Fn(&NodeId) -> (u8, u32)| {
            index.for_job(
                &Wanted {
                    model: "m",
                    only: None,
                    pool: None,
                    max_price: None,
                },
                now,
                1,
                score,
            )[0]
            .peer_id
        };
        assert_eq!(first(&|_| (86, 0)), cheap);
        // One recent failure: still the cheaper (100 / 0.43 < 300 / 0.86).
        assert_eq!(
            first(&|n| if *n == cheap { (86, 1) } else { (86, 0) }),
            cheap
        );
        // Two: not any more (100 / 0.215 > 300 / 0.86).
        assert_ne!(
            first(&|n| if *n == cheap { (86, 2) } else { (86, 0) }),
            cheap
        );
        // A poor record, nothing recent: not either.
        assert_ne!(
            first(&|n| if *n == cheap { (20, 0) } else { (86, 0) }),
            cheap
        );
    }

    #[test]
    fn a_list_by_reputation_pages_best_first_and_filters_by_score() {
        let index = Index::default();
        for seed in 0..20u8 {
            index.put(row(seed, "m", 10, 1_000));
        }
        let now = UnixMillis(1_500);
        // Scores 0, 5, 10, … 95 with ties broken by peer id.
        let score = |n: &NodeId| -> u8 {
            let seed = (0..20u8)
                .find(|s| testkit::fixtures::node_id(*s) == *n)
                .unwrap_or(0);
            (seed / 2) * 10
        };
        let q = NodeQuery {
            sort: Some(NodeSort::Reputation),
            min_reputation: Some(30),
            ..NodeQuery::default()
        };
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = index.list(&q, after.as_ref(), 3, now, &score);
            seen.extend(
                page.nodes
                    .iter()
                    .map(|n| (score(&n.peer_id), n.peer_id.to_string())),
            );
            match page.next_cursor {
                Some(c) => after = Some(query::decode_cursor(&c).unwrap()),
                None => break,
            }
        }
        // 30 to 90: 7 scores, two nodes each.
        assert_eq!(seen.len(), 14);
        let mut expected = seen.clone();
        expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        assert_eq!(seen, expected);
        assert_eq!(seen[0].0, 90);
        // The filter alone, in peer id order.
        let q = NodeQuery {
            min_reputation: Some(80),
            ..NodeQuery::default()
        };
        assert_eq!(index.list(&q, None, 100, now, &score).nodes.len(), 4);
    }
}

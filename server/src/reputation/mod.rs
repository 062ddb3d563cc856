//! Nodes' public reputation, from evidence this server (and the others
//! sharing its database) collected: when each node was heard from, how
//! the jobs sent to it ended and how long they took, canaries and
//! disputes. `evidence` says how it adds up to a score and how routing
//! weighs it.
//!
//! The evidence is kept in memory, where routing and `GET /nodes` read it
//! at no cost, and written to the `node_day` table every
//! [`FLUSH`] (a crash loses at most that much of it). Other servers' rows
//! are read every [`CATCH_UP`].

pub(crate) mod evidence;
mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use wire::reputation::{Reputation, ReputationReport, REPUTATION_DAYS};
use wire::{NodeId, UnixMillis};

use crate::db::{Db, DbError};
pub(crate) use evidence::Outcome;
use evidence::{day_of, Day, Evidence, DAY_MS};
use store::{DayRow, DayStore};

/// How often new evidence is written.
const FLUSH: Duration = Duration::from_secs(10);
/// How often other servers' evidence is read.
const CATCH_UP: Duration = Duration::from_secs(60);
/// How often every node is scored again (uptime falls while a node is
/// silent, with nothing happening to it).
const RESCORE: Duration = Duration::from_secs(300);

/// What one node's reputation is made of.
#[derive(Default)]
struct Record {
    own: Evidence,
    /// Other servers' days: day → server → evidence.
    others: BTreeMap<u64, HashMap<String, Day>>,
    score: Option<u8>,
}

impl Record {
    fn merged(&self) -> Evidence {
        let mut all = self.own.clone();
        for (day, servers) in &self.others {
            for d in servers.values() {
                all.days.entry(*day).merge(d);
            }
        }
        all
    }

    fn rescore(&mut self, now: UnixMillis) {
        self.score = Some(self.merged().reputation(now).score);
    }
}

struct Inner {
    /// This server's peer id: the rows it writes.
    server: String,
    store: DayStore,
    nodes: RwLock<HashMap<NodeId, Record>>,
    /// Own days changed since they were last written.
    dirty: Mutex<HashSet<(NodeId, u64)>>,
    /// Other servers' rows have been read up to here.
    caught_up: Mutex<UnixMillis>,
}

/// Cheap to clone: every clone is the same.
#[derive(Clone)]
pub(crate) struct Reputations(Arc<Inner>);

/// The score of a node nobody has evidence of.
pub(crate) fn newcomer_score() -> u8 {
    Evidence::default().reputation(UnixMillis(0)).score
}

impl Reputations {
    /// The evidence of the last [`REPUTATION_DAYS`] days, read from `db`;
    /// this server writes its own as `server`.
    pub(crate) async fn open(db: Db, server: NodeId) -> Result<Self, DbError> {
        let store = DayStore::new(db);
        let server = server.to_string();
        let now = UnixMillis::now();
        let rows = store.since(window_start(now)).await?;
        let mut nodes: HashMap<NodeId, Record> = HashMap::new();
        let mut newest = UnixMillis(0);
        for row in rows {
            newest = newest.max(row.updated_at);
            take_row(&mut nodes, &server, row);
        }
        for record in nodes.values_mut() {
            record.rescore(now);
        }
        Ok(Reputations(Arc::new(Inner {
            server,
            store,
            nodes: RwLock::new(nodes),
            dirty: Mutex::default(),
            caught_up: Mutex::new(newest),
        })))
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<NodeId, Record>> {
        self.0.nodes.read().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, node: NodeId, at: UnixMillis, f: impl FnOnce(&mut Evidence)) {
        {
            let mut nodes = self.0.nodes.write().unwrap_or_else(|e| e.into_inner());
            let record = nodes.entry(node).or_default();
            f(&mut record.own);
            record.rescore(at);
        }
        self.0
            .dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((node, day_of(at)));
    }

    /// `node` was heard from (a heartbeat, an ad, a registration) at `at`.
    /// Costs a read of a map, but once per node and five minutes.
    pub(crate) fn heard(&self, node: NodeId, at: UnixMillis) {
        if self
            .read()
            .get(&node)
            .is_some_and(|r| r.own.heard_in_slot(at))
        {
            return;
        }
        self.update(node, at, |e| e.heard(at));
    }

    /// How a try of a job on `node` ended.
    pub(crate) fn job(&self, node: NodeId, outcome: Outcome, at: UnixMillis) {
        self.update(node, at, |e| e.job(outcome, at));
    }

    /// A node's reputation as of `now`.
    pub(crate) fn reputation(&self, node: NodeId, now: UnixMillis) -> Reputation {
        match self.read().get(&node) {
            Some(record) => record.merged().reputation(now),
            None => Evidence::default().reputation(now),
        }
    }

    /// A node's reputation and its days.
    pub(crate) fn report(&self, node: NodeId, now: UnixMillis) -> ReputationReport {
        let merged = self
            .read()
            .get(&node)
            .map(Record::merged)
            .unwrap_or_default();
        ReputationReport {
            reputation: merged.reputation(now),
            days: merged.daily(now),
        }
    }

    /// The scores, for reading many nodes' under one lock.
    pub(crate) fn scores(&self) -> Scores<'_> {
        Scores {
            nodes: self.read(),
            newcomer: newcomer_score(),
        }
    }

    /// Writes the evidence gathered since the last write.
    pub(crate) async fn flush(&self) -> Result<usize, DbError> {
        let keys: Vec<(NodeId, u64)> =
            std::mem::take(&mut *self.0.dirty.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let now = UnixMillis::now();
        let rows: Vec<DayRow> = {
            let nodes = self.read();
            keys.iter()
                .filter_map(|(node, day)| {
                    let evidence = nodes.get(node)?.own.days.get(day)?.clone();
                    Some(DayRow {
                        node: *node,
                        day: UnixMillis(*day),
                        server: self.0.server.clone(),
                        updated_at: now,
                        evidence,
                    })
                })
                .collect()
        };
        if let Err(e) = self.0.store.save(&rows).await {
            // Written at the next flush.
            self.0
                .dirty
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(keys);
            return Err(e);
        }
        Ok(rows.len())
    }

    /// Reads the rows other servers wrote since the last time.
    pub(crate) async fn catch_up(&self) -> Result<usize, DbError> {
        let after = *self.0.caught_up.lock().unwrap_or_else(|e| e.into_inner());
        let rows = self.0.store.others_after(&self.0.server, after).await?;
        let now = UnixMillis::now();
        let mut newest = after;
        let n = rows.len();
        let mut nodes = self.0.nodes.write().unwrap_or_else(|e| e.into_inner());
        let mut touched = HashSet::new();
        for row in rows {
            newest = newest.max(row.updated_at);
            touched.insert(row.node);
            take_row(&mut nodes, &self.0.server, row);
        }
        for node in touched {
            if let Some(record) = nodes.get_mut(&node) {
                record.rescore(now);
            }
        }
        drop(nodes);
        *self.0.caught_up.lock().unwrap_or_else(|e| e.into_inner()) = newest;
        Ok(n)
    }

    /// Forgets what is older than the window and scores every node again.
    fn prune(&self, now: UnixMillis) {
        let oldest = window_start(now).0;
        let mut nodes = self.0.nodes.write().unwrap_or_else(|e| e.into_inner());
        for record in nodes.values_mut() {
            record.own.prune(now);
            record.others.retain(|day, _| *day >= oldest);
            record.rescore(now);
        }
        nodes.retain(|_, r| !r.own.days.is_empty() || !r.others.is_empty());
    }

    /// Writes, reads and prunes on their schedules, for ever.
    pub(crate) async fn keep_forever(self) {
        let mut flush = tokio::time::interval(FLUSH);
        let mut catch_up = tokio::time::interval(CATCH_UP);
        let mut rescore = tokio::time::interval(RESCORE);
        for timer in [&mut flush, &mut catch_up, &mut rescore] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = flush.tick() => {
                    if let Err(e) = self.flush().await {
                        tracing::warn!(error = %e, "could not write the nodes' evidence; trying again");
                    }
                }
                _ = catch_up.tick() => {
                    if let Err(e) = self.catch_up().await {
                        tracing::warn!(error = %e, "could not read other servers' evidence");
                    }
                }
                _ = rescore.tick() => {
                    let now = UnixMillis::now();
                    self.prune(now);
                    if let Err(e) = self.0.store.forget_before(window_start(now)).await {
                        tracing::warn!(error = %e, "could not forget old evidence");
                    }
                }
            }
        }
    }
}

/// The first day of the window that ends today.
fn window_start(now: UnixMillis) -> UnixMillis {
    UnixMillis(day_of(now).saturating_sub(u64::from(REPUTATION_DAYS - 1) * DAY_MS))
}

fn take_row(nodes: &mut HashMap<NodeId, Record>, server: &str, row: DayRow) {
    let record = nodes.entry(row.node).or_default();
    if row.server == server {
        record.own.days.insert(row.day.0, row.evidence);
    } else {
        record
            .others
            .entry(row.day.0)
            .or_default()
            .insert(row.server, row.evidence);
    }
}

/// Nodes' scores under one read of the map (see [`Reputations::scores`]).
pub(crate) struct Scores<'a> {
    nodes: RwLockReadGuard<'a, HashMap<NodeId, Record>>,
    newcomer: u8,
}

impl Scores<'_> {
    /// A node's score and its failures of the last fifteen minutes.
    pub(crate) fn get(&self, node: &NodeId, now: UnixMillis) -> (u8, u32) {
        match self.nodes.get(node) {
            Some(r) => (r.score.unwrap_or(self.newcomer), r.own.recent_failures(now)),
            None => (self.newcomer, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::ModelHash;

    fn node(seed: u8) -> NodeId {
        testkit::fixtures::node_id(seed)
    }

    #[tokio::test]
    async fn evidence_is_written_and_read_back_and_other_servers_add_to_it() {
        let db = Db::temp("reputation").await;
        let a = Reputations::open(db.clone(), node(100)).await.unwrap();
        let now = UnixMillis::now();
        let model = ModelHash::of(b"m");
        a.heard(node(1), now);
        a.job(
            node(1),
            Outcome::Succeeded {
                model,
                ms: 200,
                gpu: Some(1),
            },
            now,
        );
        a.job(node(1), Outcome::Failed, now);
        assert_eq!(a.flush().await.unwrap(), 1);
        // Nothing new: nothing written.
        assert_eq!(a.flush().await.unwrap(), 0);

        // Another server on the same database reads it, and adds its own.
        let b = Reputations::open(db.clone(), node(101)).await.unwrap();
        let r = b.reputation(node(1), now);
        assert_eq!((r.jobs, r.failed), (2, 1));
        assert_eq!(r.latency.len(), 1);
        assert_eq!(r.latency[0].jobs, 1);
        b.job(
            node(1),
            Outcome::Succeeded {
                model,
                ms: 300,
                gpu: None,
            },
            now,
        );
        b.flush().await.unwrap();
        // The first catches up with it without counting its own twice.
        assert_eq!(a.catch_up().await.unwrap(), 1);
        let r = a.reputation(node(1), now);
        assert_eq!((r.jobs, r.failed), (3, 1));
        assert_eq!(r.latency[0].jobs, 2);
        // The GPU a receipt named backs the node's claim, from any server.
        assert_eq!(r.gpus_backed, vec![1]);
        assert_eq!(a.catch_up().await.unwrap(), 0);
        // And a restart of the first reads both.
        let again = Reputations::open(db, node(100)).await.unwrap();
        assert_eq!(again.reputation(node(1), now).jobs, 3);
        let scores = again.scores();
        let (score, recent) = scores.get(&node(1), now);
        assert_eq!(score, again.reputation(node(1), now).score);
        // Recent failures are this server's own, and not kept.
        assert_eq!(recent, 0);
        assert_eq!(scores.get(&node(9), now), (newcomer_score(), 0));
    }
}

//! Operators' fleets: every enrolled node keeps a fleet link to this server
//! (`p2p::fleet`, opened by the node on its own connection, so no inbound
//! port is needed). Over it the node reports telemetry every few seconds,
//! and this server sends it its operator's commands, each with an id, an
//! acknowledgement and a result. A command for a node that is away waits
//! (`queued`) and goes when it connects, or expires. Every command is kept:
//! the `fleet_command` table is the operator's audit log, refusals included.
//!
//! A node is online while its link is open. A link that closes (a killed
//! node's connection resets at once) or stays silent for three of its
//! telemetry intervals ends, and the node shows offline at that moment.
//! Changes are pushed to subscribers ([`Fleet::subscribe`]: the app's
//! server-sent events) as they happen.

mod alerts;
mod http;
mod link;
mod stats;
mod store;
mod team;

pub(crate) use alerts::Webhooks;
pub(crate) use http::{router, team_view};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use wire::accounts::Scope;
use wire::fleet::{
    Action, CommandId, CommandStatus, CommandView, FleetEvent, FleetNode, Gauges, NewCommand,
    ServerFrame, Telemetry, TelemetryPoint, TelemetrySeries, DEFAULT_COMMAND_WAIT_SECS,
    MAX_COMMAND_NODES, MAX_COMMAND_WAIT_SECS,
};
use wire::{AccountId, Caller, CallerAuth, NodeId, UnixMillis};

use crate::accounts::AuthError;
use crate::db::{Db, DbError};
use crate::enrolment::{EnrolError, Enrolments};
use crate::registry::{Registry, RegistryError};
use store::{CommandRow, FleetStore};

/// Full-resolution telemetry is kept this long.
const FRAMES_KEPT: Duration = Duration::from_secs(24 * 3600);
/// Five-minute means are kept this long.
const BUCKETS_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);
/// The coarser series' step.
const BUCKET_MS: u64 = 5 * 60 * 1000;
/// The most points a series answers; more are averaged into fewer.
const MAX_POINTS: usize = 720;
/// How often expired commands and old telemetry are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Events a slow subscriber may fall behind by before it misses some.
const EVENT_BACKLOG: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub(crate) enum FleetError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Enrol(#[from] EnrolError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] DbError),
    /// Reading jobs or the ledger failed (internal).
    #[error("{0}")]
    Jobs(String),
}

/// Counts for `/metrics`.
pub(crate) struct FleetCounters {
    pub(crate) links_open: u64,
    pub(crate) frames: u64,
    pub(crate) commands: u64,
    pub(crate) subscribers: u64,
}

/// What this server knows of a node's link now.
#[derive(Default)]
struct Live {
    /// The open link's outbox, and which link it is.
    link: Option<(mpsc::Sender<ServerFrame>, u64)>,
    since: Option<UnixMillis>,
    last_seen: Option<UnixMillis>,
    telemetry: Option<Telemetry>,
    /// The node's operator, as its link found it.
    owner: Option<AccountId>,
    /// Why its last link ended.
    last_end: Option<String>,
}

struct Inner {
    store: FleetStore,
    enrolments: Enrolments,
    registry: Registry,
    jobs: crate::jobs::Jobs,
    ledger: crate::ledger::Ledger,
    webhooks: Webhooks,
    /// Alerts that fired and have not resolved, by node and kind.
    alerts: Mutex<HashMap<(NodeId, wire::fleet::AlertKind), store::AlertRow>>,
    live: Mutex<HashMap<NodeId, Live>>,
    /// Each node's frames of the five-minute bucket being filled.
    buckets: Mutex<HashMap<NodeId, (u64, Vec<Gauges>)>>,
    next_link: std::sync::atomic::AtomicU64,
    /// Telemetry frames received, and commands accepted, since start.
    frames: std::sync::atomic::AtomicU64,
    commands: std::sync::atomic::AtomicU64,
    /// Every event, with the account whose node it is about.
    events: broadcast::Sender<(AccountId, FleetEvent)>,
}

/// The fleets of every operator; cheap to clone.
#[derive(Clone)]
pub(crate) struct Fleet {
    inner: Arc<Inner>,
}

impl Fleet {
    pub(crate) fn new(
        db: Db,
        enrolments: Enrolments,
        registry: Registry,
        jobs: crate::jobs::Jobs,
        ledger: crate::ledger::Ledger,
        webhooks: Webhooks,
    ) -> Self {
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        Fleet {
            inner: Arc::new(Inner {
                store: FleetStore::new(db),
                enrolments,
                registry,
                jobs,
                ledger,
                webhooks,
                alerts: Mutex::new(HashMap::new()),
                live: Mutex::new(HashMap::new()),
                buckets: Mutex::new(HashMap::new()),
                next_link: std::sync::atomic::AtomicU64::new(1),
                frames: std::sync::atomic::AtomicU64::new(0),
                commands: std::sync::atomic::AtomicU64::new(0),
                events,
            }),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Live>> {
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, owner: &AccountId, event: FleetEvent) {
        // Nobody listening is fine.
        let _ = self.inner.events.send((owner.clone(), event));
    }

    /// What `/metrics` shows of the fleet.
    pub(crate) fn counters(&self) -> FleetCounters {
        use std::sync::atomic::Ordering::Relaxed;
        FleetCounters {
            links_open: self.live().values().filter(|l| l.link.is_some()).count() as u64,
            frames: self.inner.frames.load(Relaxed),
            commands: self.inner.commands.load(Relaxed),
            subscribers: self.inner.events.receiver_count() as u64,
        }
    }

    /// Every event about any node, with its operator's account: the
    /// subscriber keeps its own.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<(AccountId, FleetEvent)> {
        self.inner.events.subscribe()
    }

    /// Takes the links nodes open, and sweeps expired commands and old
    /// telemetry, for as long as the server runs.
    pub(crate) fn start(&self, network: &p2p::Client) -> Result<(), p2p::NetworkError> {
        let mut links = network.accept_fleet_links()?;
        let fleet = self.clone();
        tokio::spawn(async move {
            while let Some(l) = links.recv().await {
                tokio::spawn(link::serve(fleet.clone(), l));
            }
        });
        tokio::spawn(self.clone().sweep_forever());
        tokio::spawn(self.clone().alerts_forever());
        Ok(())
    }

    async fn alerts_forever(self) {
        if let Err(e) = self.load_open_alerts().await {
            tracing::warn!(error = %e, "could not read the open alerts");
        }
        let mut ticker = tokio::time::interval(alerts::CHECK_EVERY);
        let mut failures_checked = std::time::Instant::now();
        loop {
            ticker.tick().await;
            let failures = failures_checked.elapsed() >= alerts::FAILURE_EVERY;
            if failures {
                failures_checked = std::time::Instant::now();
            }
            self.check_alerts(failures).await;
        }
    }

    async fn sweep_forever(self) {
        let mut ticker = tokio::time::interval(SWEEP_EVERY);
        let mut last_prune = std::time::Instant::now();
        loop {
            ticker.tick().await;
            match self.inner.store.expire(UnixMillis::now()).await {
                Ok(expired) => {
                    for row in expired {
                        self.emit(&row.owner, FleetEvent::Command(Box::new(row.view())));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not expire fleet commands"),
            }
            if last_prune.elapsed() >= Duration::from_secs(600) {
                last_prune = std::time::Instant::now();
                let ago = |d: Duration| {
                    UnixMillis(
                        UnixMillis::now()
                            .0
                            .saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    )
                };
                let pruned = self
                    .inner
                    .store
                    .prune_telemetry(ago(FRAMES_KEPT), ago(BUCKETS_KEPT))
                    .await;
                if let Err(e) = pruned {
                    tracing::warn!(error = %e, "could not prune telemetry");
                }
            }
        }
    }

    /// Keeps a frame's numbers: as a frame, and in its five-minute bucket,
    /// which is written once the next bucket begins.
    async fn keep_gauges(&self, node: NodeId, at: UnixMillis, gauges: Gauges) {
        self.inner
            .frames
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let store = &self.inner.store;
        if let Err(e) = store.record_gauges(node, at, &gauges).await {
            tracing::warn!(%node, error = %e, "could not store telemetry");
        }
        let bucket = at.0 - at.0 % BUCKET_MS;
        let closed = {
            let mut buckets = self.inner.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let entry = buckets.entry(node).or_insert_with(|| (bucket, Vec::new()));
            let closed = (entry.0 != bucket).then(|| std::mem::take(entry));
            entry.0 = bucket;
            entry.1.push(gauges);
            closed
        };
        if let Some((start, frames)) = closed.filter(|(_, f)| !f.is_empty()) {
            let n = u32::try_from(frames.len()).unwrap_or(u32::MAX);
            let mean = Gauges::mean(&frames);
            if let Err(e) = store.record_bucket(node, UnixMillis(start), n, &mean).await {
                tracing::warn!(%node, error = %e, "could not store a telemetry bucket");
            }
        }
    }

    /// The caller's nodes, live.
    pub(crate) async fn nodes(&self, caller: &Caller) -> Result<Vec<FleetNode>, FleetError> {
        require_any(caller)?;
        let mine = self.inner.enrolments.nodes_of(caller).await?;
        if mine.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<NodeId> = mine.iter().map(|(id, _)| *id).collect();
        let mut known: HashMap<_, _> = self
            .inner
            .registry
            .nodes(&ids, UnixMillis::now())
            .await?
            .into_iter()
            .map(|n| (n.peer_id, n))
            .collect();
        let mut tags = self.inner.store.tags_of(&caller.account).await?;
        let live = self.live();
        Ok(mine
            .into_iter()
            .map(|(node_id, enrolled_at)| {
                let l = live.get(&node_id);
                FleetNode {
                    tags: tags.remove(&node_id).unwrap_or_default(),
                    node_id,
                    enrolled_at,
                    online: l.is_some_and(|l| l.link.is_some()),
                    since: l.and_then(|l| l.since),
                    last_seen: l.and_then(|l| l.last_seen),
                    telemetry: l.and_then(|l| l.telemetry.clone()),
                    info: known.remove(&node_id),
                }
            })
            .collect())
    }

    /// One of the caller's nodes; anyone else's is missing.
    pub(super) async fn own(&self, caller: &Caller, node: NodeId) -> Result<(), FleetError> {
        match self.inner.enrolments.operator_of(node).await? {
            Some(owner) if owner == caller.account => Ok(()),
            _ => Err(FleetError::NotFound("node")),
        }
    }

    /// `node`'s telemetry from `since` to `until`: every frame for spans
    /// within the last day, five-minute means beyond; at most
    /// [`MAX_POINTS`] points, neighbours averaged together if need be.
    pub(crate) async fn telemetry(
        &self,
        caller: &Caller,
        node: NodeId,
        since: UnixMillis,
        until: UnixMillis,
    ) -> Result<TelemetrySeries, FleetError> {
        require_any(caller)?;
        self.own(caller, node).await?;
        let frames_from = UnixMillis::now()
            .0
            .saturating_sub(u64::try_from(FRAMES_KEPT.as_millis()).unwrap_or(u64::MAX));
        let buckets = since.0 < frames_from;
        let points = self.inner.store.points(node, since, until, buckets).await?;
        let base = if buckets { BUCKET_MS } else { 0 };
        Ok(thin(points, since, until, base))
    }

    /// The caller's audit log, newest first.
    pub(crate) async fn log(
        &self,
        caller: &Caller,
        node: Option<NodeId>,
        before: Option<UnixMillis>,
        limit: u32,
    ) -> Result<Vec<CommandView>, FleetError> {
        require_any(caller)?;
        Ok(self
            .inner
            .store
            .log(&caller.account, node, before, limit)
            .await?
            .iter()
            .map(CommandRow::view)
            .collect())
    }

    /// One of the caller's commands.
    pub(crate) async fn command(
        &self,
        caller: &Caller,
        id: &CommandId,
    ) -> Result<CommandView, FleetError> {
        require_any(caller)?;
        self.inner
            .store
            .get(&caller.account, id)
            .await?
            .map(|r| r.view())
            .ok_or(FleetError::NotFound("command"))
    }

    /// Sends `new.action` to each of `new.nodes`: one command each, sent at
    /// once to nodes that are online and queued for the others. Refused as
    /// a whole (and written to the operators' audit logs) if any node is
    /// not the caller's, or the caller's key may not command nodes.
    pub(crate) async fn send(
        &self,
        caller: &Caller,
        new: NewCommand,
    ) -> Result<Vec<CommandView>, FleetError> {
        let mut nodes = new.nodes.clone();
        if let Some(tag) = &new.tag {
            wire::registry::check_label(tag).map_err(FleetError::BadRequest)?;
            let tagged = self.inner.store.tags_of(&caller.account).await?;
            let before = nodes.len();
            nodes.extend(
                tagged
                    .into_iter()
                    .filter(|(_, tags)| tags.contains(tag))
                    .map(|(node, _)| node),
            );
            if nodes.len() == before && nodes.is_empty() {
                return Err(FleetError::BadRequest(format!(
                    "no node carries the tag `{tag}`"
                )));
            }
        }
        nodes.sort();
        nodes.dedup();
        if nodes.is_empty() || nodes.len() > MAX_COMMAND_NODES {
            return Err(FleetError::BadRequest(format!(
                "name 1 to {MAX_COMMAND_NODES} nodes (or a tag)"
            )));
        }
        new.action.check().map_err(FleetError::BadRequest)?;
        let wait = new.expires_in_secs.unwrap_or(DEFAULT_COMMAND_WAIT_SECS);
        if !(1..=MAX_COMMAND_WAIT_SECS).contains(&wait) {
            return Err(FleetError::BadRequest(format!(
                "expires_in_secs must be 1 to {MAX_COMMAND_WAIT_SECS}"
            )));
        }
        let now = UnixMillis::now();
        let expires_at = UnixMillis(now.0.saturating_add(wait.saturating_mul(1000)));
        let mut owners = Vec::with_capacity(nodes.len());
        for node in &nodes {
            owners.push(self.inner.enrolments.operator_of(*node).await?);
        }
        let allowed = caller.may(Scope::FleetWrite);
        let foreign = owners.iter().any(|o| o.as_ref() != Some(&caller.account));
        if foreign || !allowed {
            // Kept for whoever operates each node that exists.
            let reason = if foreign {
                format!("{} does not operate this node", caller.account)
            } else {
                "the API key may not command nodes (it lacks fleet:write)".to_owned()
            };
            for (node, owner) in nodes.iter().zip(&owners) {
                let Some(owner) = owner else { continue };
                if foreign && owner == &caller.account {
                    continue;
                }
                let row = self.row(caller, *node, owner, &new.action, now, expires_at);
                let row = CommandRow {
                    status: CommandStatus::Refused,
                    finished_at: Some(now),
                    detail: Some(reason.clone()),
                    ..row
                };
                self.inner.store.insert(&row).await?;
                tracing::warn!(node = %node, caller = %caller.account, %reason, "fleet command refused");
                self.emit(owner, FleetEvent::Command(Box::new(row.view())));
            }
            return Err(if foreign {
                FleetError::NotFound("node")
            } else {
                FleetError::Auth(AuthError::MissingScope(Scope::FleetWrite))
            });
        }
        let mut views = Vec::with_capacity(nodes.len());
        for node in nodes {
            let row = self.row(caller, node, &caller.account, &new.action, now, expires_at);
            if let Action::SetTags { tags } = &new.action {
                // Kept here, never sent: the node does not know its tags.
                let row = CommandRow {
                    status: CommandStatus::Succeeded,
                    finished_at: Some(now),
                    detail: Some(format!("{} tag(s) kept by the server", tags.len())),
                    ..row
                };
                self.inner.store.set_tags(&row, tags).await?;
                tracing::info!(%node, command = %row.command_id, action = %row.action.describe(), "fleet settings");
                self.emit(&caller.account, FleetEvent::Command(Box::new(row.view())));
                views.push(row.view());
                continue;
            }
            self.inner.store.insert(&row).await?;
            self.inner
                .commands
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(%node, command = %row.command_id, action = %row.action.describe(), "fleet command");
            let row = self.deliver(row).await?;
            self.emit(&caller.account, FleetEvent::Command(Box::new(row.view())));
            views.push(row.view());
        }
        Ok(views)
    }

    fn row(
        &self,
        caller: &Caller,
        node: NodeId,
        owner: &AccountId,
        action: &Action,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> CommandRow {
        let how = match &caller.auth {
            CallerAuth::Session { .. } => "session".to_owned(),
            CallerAuth::ApiKey { key_id, .. } if key_id.starts_with("team member ") => {
                key_id.clone()
            }
            CallerAuth::ApiKey { key_id, .. } => format!("API key {key_id}"),
        };
        CommandRow {
            command_id: CommandId::from_random(*uuid::Uuid::new_v4().as_bytes()),
            node,
            owner: owner.clone(),
            account: caller.account.clone(),
            issued_by: format!("{} ({how})", caller.account),
            action: action.clone(),
            status: CommandStatus::Queued,
            created_at: now,
            expires_at,
            sent_at: None,
            acked_at: None,
            finished_at: None,
            detail: None,
        }
    }

    /// Writes a queued command to its node's link, if it has one: marked
    /// sent first (so that it goes once), queued again if the link is gone.
    async fn deliver(&self, row: CommandRow) -> Result<CommandRow, FleetError> {
        let Some(outbox) = self
            .live()
            .get(&row.node)
            .and_then(|l| l.link.as_ref().map(|(tx, _)| tx.clone()))
        else {
            return Ok(row);
        };
        let store = &self.inner.store;
        let Some(sent) = store
            .advance(
                row.node,
                &row.command_id,
                &[CommandStatus::Queued],
                CommandStatus::Sent,
                UnixMillis::now(),
                None,
            )
            .await?
        else {
            // Sent by someone else meanwhile (the link's own flush).
            return Ok(store.get(&row.owner, &row.command_id).await?.unwrap_or(row));
        };
        let frame = ServerFrame::Command(wire::fleet::Command {
            id: sent.command_id.clone(),
            action: sent.action.clone(),
            expires_at: sent.expires_at,
        });
        if outbox.send(frame).await.is_ok() {
            return Ok(sent);
        }
        Ok(store
            .advance(
                sent.node,
                &sent.command_id,
                &[CommandStatus::Sent],
                CommandStatus::Queued,
                UnixMillis::now(),
                None,
            )
            .await?
            .unwrap_or(sent))
    }
}

/// At most [`MAX_POINTS`] of `points`: the span cut into equal steps, each
/// step's points averaged into one.
fn thin(
    points: Vec<TelemetryPoint>,
    since: UnixMillis,
    until: UnixMillis,
    base: u64,
) -> TelemetrySeries {
    if points.len() <= MAX_POINTS {
        return TelemetrySeries {
            step_ms: base,
            points,
        };
    }
    let span = until.0.saturating_sub(since.0).max(1);
    let step = span.div_ceil(MAX_POINTS as u64).max(base).max(1);
    let mut out: Vec<TelemetryPoint> = Vec::with_capacity(MAX_POINTS + 1);
    let mut group: Vec<Gauges> = Vec::new();
    let mut group_start = None;
    for p in points {
        let slot = since.0 + (p.at.0.saturating_sub(since.0)) / step * step;
        if group_start.is_some_and(|s| s != slot) {
            out.push(TelemetryPoint {
                at: UnixMillis(group_start.unwrap_or(slot)),
                gauges: Gauges::mean(&group),
            });
            group.clear();
        }
        group_start = Some(slot);
        group.push(p.gauges);
    }
    if let Some(start) = group_start {
        out.push(TelemetryPoint {
            at: UnixMillis(start),
            gauges: Gauges::mean(&group),
        });
    }
    TelemetrySeries {
        step_ms: step,
        points: out,
    }
}

/// Reading a fleet takes `fleet:read` (a session may do anything).
fn require_any(caller: &Caller) -> Result<(), AuthError> {
    crate::accounts::require(caller, Scope::FleetRead)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: u64, cpu: f32) -> TelemetryPoint {
        TelemetryPoint {
            at: UnixMillis(at),
            gauges: Gauges {
                cpu_pct: cpu,
                ..Gauges::default()
            },
        }
    }

    #[test]
    fn a_short_series_is_kept_whole() {
        let s = thin(
            vec![point(1, 1.0), point(2, 2.0)],
            UnixMillis(0),
            UnixMillis(10),
            0,
        );
        assert_eq!((s.step_ms, s.points.len()), (0, 2));
    }

    #[test]
    fn a_long_series_is_averaged_into_at_most_max_points_steps() {
        // A day of frames every 5 s: 17 280 points.
        let day = 24 * 3600 * 1000;
        let points: Vec<_> = (0..17_280u64)
            .map(|i| point(i * 5000, (i % 2) as f32 * 100.0))
            .collect();
        let s = thin(points, UnixMillis(0), UnixMillis(day), 0);
        assert!(s.points.len() <= MAX_POINTS, "{}", s.points.len());
        assert_eq!(s.step_ms, day / MAX_POINTS as u64);
        assert!(s
            .points
            .windows(2)
            .all(|w| w[1].at.0 - w[0].at.0 == s.step_ms));
        // 0 and 100 alternate: each step's mean is 50.
        assert!(s
            .points
            .iter()
            .all(|p| (p.gauges.cpu_pct - 50.0).abs() < 1.0));
    }
}

//! The node registry: signed registration and heartbeats, and the public
//! `GET /nodes` list that apps and other instances read.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use wire::ads::CapabilityAd;
use wire::registry::{
    Hardware, Heartbeat, HeartbeatAck, ModelOffer, NodeInfo, NodeList, NodeQuery, NodeStatus,
    Registration, MAX_HEARTBEAT_MS, MAX_MODELS_PER_NODE, MAX_MULTIADDRS, MIN_HEARTBEAT_MS,
    MISSED_HEARTBEATS_OFFLINE,
};
use wire::{NodeId, SignedEnvelope, UnixMillis};

use crate::db::Db;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::AppState;

/// Signed messages more than this far from the server's clock are refused.
pub(crate) const MAX_CLOCK_SKEW_MS: u64 = 60_000;
pub(crate) const DEFAULT_PAGE: u32 = 100;
pub(crate) const MAX_PAGE: u32 = 500;
/// Body limit of registration and heartbeat requests.
pub(crate) const MAX_SIGNED_BODY: usize = 64 * 1024;

/// `GET /nodes`, `GET /nodes/{peer_id}`: public, cacheable, CORS-open.
pub(crate) fn public_router() -> Router<AppState> {
    Router::new()
        .route("/nodes", get(list_nodes))
        .route("/nodes/{peer_id}", get(get_node))
}

/// Registration and heartbeats, under `/api/v1`.
pub(crate) fn api_router() -> Router<AppState> {
    Router::new()
        .route("/nodes/register", post(register))
        .route("/nodes/heartbeat", post(heartbeat))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_SIGNED_BODY))
}

async fn list_nodes(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<NodeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let list = state.registry.list(&query, UnixMillis::now()).await?;
    let body = serde_json::to_vec(&list).map_err(|e| ApiError::Internal(e.to_string()))?;
    let etag = format!("\"{}\"", &wire::Sha256Digest::of(&body).to_string()[..32]);
    let cache = HeaderValue::from_static("public, max-age=2");
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.to_string()))?;
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag_value),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response())
}

async fn get_node(
    State(state): State<AppState>,
    Path(peer_id): Path<String>,
) -> Result<Json<NodeInfo>, ApiError> {
    let id: NodeId = peer_id
        .parse()
        .map_err(|e: wire::ids::ParseIdError| ApiError::BadRequest(e.to_string()))?;
    state
        .registry
        .get(id, UnixMillis::now())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("node {id}")))
}

async fn register(
    State(state): State<AppState>,
    ApiJson(envelope): ApiJson<SignedEnvelope>,
) -> Result<Json<NodeInfo>, ApiError> {
    let now = UnixMillis::now();
    let registration: Registration = envelope.open()?;
    check_fresh(registration.timestamp, now)?;
    validate_registration(&registration)?;
    let info = state.registry.register(&registration, now).await?;
    tracing::info!(peer_id = %registration.node_id, models = registration.models.len(), "node registered");
    Ok(Json(info))
}

async fn heartbeat(
    State(state): State<AppState>,
    ApiJson(envelope): ApiJson<SignedEnvelope>,
) -> Result<Json<HeartbeatAck>, ApiError> {
    let now = UnixMillis::now();
    let beat: Heartbeat = envelope.open()?;
    check_fresh(beat.timestamp, now)?;
    state.registry.heartbeat(&beat, now).await?;
    Ok(Json(HeartbeatAck { server_time: now }))
}

/// Refuses signed messages too far from our clock; together with the
/// strictly-increasing timestamp per node this bounds replays.
pub(crate) fn check_fresh(timestamp: UnixMillis, now: UnixMillis) -> Result<(), ApiError> {
    let skew_ms = timestamp.abs_diff(now);
    if skew_ms > MAX_CLOCK_SKEW_MS {
        return Err(ApiError::ClockSkew {
            skew_ms,
            max_ms: MAX_CLOCK_SKEW_MS,
        });
    }
    Ok(())
}

fn validate_registration(r: &Registration) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::BadRequest(m));
    if r.multiaddrs.len() > MAX_MULTIADDRS {
        return bad(format!("at most {MAX_MULTIADDRS} multiaddrs"));
    }
    for a in &r.multiaddrs {
        if a.parse::<p2p::Multiaddr>().is_err() {
            return bad(format!("`{a}` is not a multiaddr"));
        }
    }
    if r.models.len() > MAX_MODELS_PER_NODE {
        return bad(format!("at most {MAX_MODELS_PER_NODE} models"));
    }
    for m in &r.models {
        if m.name.is_empty() || m.name.len() > 128 {
            return bad("model names must be 1 to 128 bytes".into());
        }
        if m.device.len() > 32 {
            return bad("device names must be at most 32 bytes".into());
        }
    }
    if !(MIN_HEARTBEAT_MS..=MAX_HEARTBEAT_MS).contains(&r.heartbeat_interval_ms) {
        return bad(format!(
            "heartbeat_interval_ms must be {MIN_HEARTBEAT_MS} to {MAX_HEARTBEAT_MS}"
        ));
    }
    if r.version.len() > 64 || r.hardware.cpu_model.len() > 256 || r.hardware.gpus.len() > 64 {
        return bad("version, cpu model or GPU list too long".into());
    }
    Ok(())
}

/// A node is online until it has missed [`MISSED_HEARTBEATS_OFFLINE`] beats.
pub(crate) fn status_at(
    last_seen: UnixMillis,
    heartbeat_interval_ms: u64,
    now: UnixMillis,
) -> NodeStatus {
    let allowed = heartbeat_interval_ms.saturating_mul(MISSED_HEARTBEATS_OFFLINE);
    if now.0.saturating_sub(last_seen.0) <= allowed {
        NodeStatus::Online
    } else {
        NodeStatus::Offline
    }
}

/// Whether `node` passes every filter of `q` (pagination aside). Model,
/// task and price filters must all hold for one and the same offer.
pub(crate) fn matches(q: &NodeQuery, node: &NodeInfo) -> bool {
    if let Some(online) = q.online {
        if online != (node.status == NodeStatus::Online) {
            return false;
        }
    }
    if let Some(gpu) = q.gpu {
        if gpu == node.hardware.gpus.is_empty() {
            return false;
        }
    }
    if let Some(gb) = q.min_vram_gb {
        let need_mb = (gb * 1024.0).ceil() as u64;
        if node.hardware.max_vram_mb() < need_mb {
            return false;
        }
    }
    if q.model.is_some() || q.task.is_some() || q.max_price.is_some() {
        let offer_ok = |m: &ModelOffer| {
            q.model
                .as_deref()
                .is_none_or(|name| m.name == name || m.hash.to_string() == name)
                && q.task.is_none_or(|t| m.task == t)
                && q.max_price.is_none_or(|p| m.price_msat.0 <= p)
        };
        if !node.models.iter().any(offer_ok) {
            return false;
        }
    }
    true
}

pub(crate) fn encode_cursor(last: NodeId) -> String {
    B64URL.encode(format!("v1:{last}"))
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::BadRequest("invalid cursor".into());
    let bytes = B64URL.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let id = text.strip_prefix("v1:").ok_or_else(invalid)?;
    id.parse::<NodeId>().map_err(|_| invalid())?;
    Ok(id.to_owned())
}

/// One page of `nodes` (sorted by peer id) after `cursor`.
pub(crate) fn paginate(nodes: Vec<NodeInfo>, after: Option<&str>, limit: usize) -> NodeList {
    let mut rest = nodes
        .into_iter()
        .skip_while(|n| after.is_some_and(|a| n.peer_id.to_string().as_str() <= a));
    let page: Vec<NodeInfo> = rest.by_ref().take(limit).collect();
    let next_cursor = match (page.last(), rest.next()) {
        (Some(last), Some(_)) => Some(encode_cursor(last.peer_id)),
        _ => None,
    };
    NodeList {
        nodes: page,
        next_cursor,
    }
}

/// A node as stored in the `node` table.
#[derive(Debug, Serialize, Deserialize)]
struct NodeRow {
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
    #[serde(default)]
    fetching: Vec<wire::registry::ModelFetch>,
}

impl NodeRow {
    fn into_info(self, now: UnixMillis) -> NodeInfo {
        NodeInfo {
            status: status_at(self.last_seen, self.heartbeat_interval_ms, now),
            peer_id: self.peer_id,
            multiaddrs: self.multiaddrs,
            hardware: self.hardware,
            models: self.models,
            last_seen: self.last_seen,
            registered_at: self.registered_at,
            version: self.version,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            active_jobs: self.active_jobs,
            fetching: self.fetching,
        }
    }
}

/// The registry's store, over SurrealDB.
#[derive(Clone)]
pub(crate) struct Registry {
    db: Db,
}

impl Registry {
    pub(crate) fn new(db: Db) -> Self {
        Registry { db }
    }

    async fn exists(&self, id: NodeId) -> Result<bool, ApiError> {
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

    /// Stores a verified registration. The timestamp must be newer than
    /// every signed message accepted from this node before.
    pub(crate) async fn register(
        &self,
        r: &Registration,
        now: UnixMillis,
    ) -> Result<NodeInfo, ApiError> {
        let id = r.node_id.to_string();
        let data = json!({
            "peer_id": id,
            "multiaddrs": r.multiaddrs,
            "hardware": r.hardware,
            "models": r.models,
            "version": r.version,
            "heartbeat_interval_ms": r.heartbeat_interval_ms,
            "active_jobs": 0,
            "last_seen": now,
            "last_signed": r.timestamp,
        });
        self.merge_or_create(
            r.node_id,
            data,
            "last_signed < $newer",
            json!(r.timestamp),
            json!({}),
            now,
        )
        .await?
        .map(|row| row.into_info(now))
        .ok_or(ApiError::Replay)
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
    ) -> Result<Option<NodeRow>, ApiError> {
        let id = node.to_string();
        let update = || async {
            let updated: Vec<NodeRow> = self
                .db
                .rows(
                    &format!(
                        "UPDATE type::record('node', $id) MERGE $data WHERE {guard} RETURN AFTER"
                    ),
                    json!({ "id": id, "data": data, "newer": newer }),
                    0,
                )
                .await?;
            Ok::<_, ApiError>(updated.into_iter().next())
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
                .rows::<NodeRow>(
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
                        .ok_or_else(|| ApiError::Internal("CREATE returned no row".into()))
                }
                // Another message about the same node created it first.
                Err(_) if self.exists(node).await? => {}
                Err(e) => return Err(e.into()),
            }
        }
        // The row exists, perhaps created a moment ago by a message of the
        // other kind (an ad racing a registration): the guard decides.
        update().await
    }

    pub(crate) async fn heartbeat(&self, h: &Heartbeat, now: UnixMillis) -> Result<(), ApiError> {
        let updated: Vec<serde_json::Value> = self
            .db
            .rows(
                "UPDATE type::record('node', $id) \
                 SET last_seen = $now, last_signed = $ts, active_jobs = $active \
                 WHERE last_signed < $ts RETURN peer_id",
                json!({ "id": h.node_id.to_string(), "now": now, "ts": h.timestamp, "active": h.active_jobs }),
                0,
            )
            .await?;
        if !updated.is_empty() {
            return Ok(());
        }
        if self.exists(h.node_id).await? {
            Err(ApiError::Replay)
        } else {
            Err(ApiError::NotFound(format!(
                "node {} (register before sending heartbeats)",
                h.node_id
            )))
        }
    }

    pub(crate) async fn get(
        &self,
        id: NodeId,
        now: UnixMillis,
    ) -> Result<Option<NodeInfo>, ApiError> {
        let rows: Vec<NodeRow> = self
            .db
            .rows(
                "SELECT * FROM type::record('node', $id)",
                json!({ "id": id.to_string() }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next().map(|r| r.into_info(now)))
    }

    /// Stores a node's capability ad (already verified by the network
    /// layer: signature, signer, freshness). Ads older than the newest one
    /// taken for this node are ignored. Returns whether it was stored.
    pub(crate) async fn ingest_ad(
        &self,
        ad: &CapabilityAd,
        now: UnixMillis,
    ) -> Result<bool, ApiError> {
        let id = ad.node_id.to_string();
        let interval = (ad.ttl_ms / MISSED_HEARTBEATS_OFFLINE).max(1);
        let data = json!({
            "peer_id": id,
            "multiaddrs": ad.multiaddrs,
            "hardware": ad.hardware,
            "models": ad.models,
            "version": ad.version,
            "heartbeat_interval_ms": interval,
            "active_jobs": ad.load.active_jobs,
            "last_seen": now,
            "last_ad_seq": ad.seq,
            "fetching": ad.fetching,
        });
        let stored = self
            .merge_or_create(
                ad.node_id,
                data,
                "last_ad_seq IS NONE OR last_ad_seq < $newer",
                json!(ad.seq),
                // No signed HTTP message yet: any later one is newer.
                json!({ "last_signed": 0 }),
                now,
            )
            .await?;
        Ok(stored.is_some())
    }

    /// Forgets nodes not heard from since `cutoff`. Returns how many.
    pub(crate) async fn forget_silent(&self, cutoff: UnixMillis) -> Result<usize, ApiError> {
        let gone: Vec<serde_json::Value> = self
            .db
            .rows(
                "DELETE node WHERE last_seen < $cutoff RETURN BEFORE",
                json!({ "cutoff": cutoff }),
                0,
            )
            .await?;
        Ok(gone.len())
    }

    /// Feeds the registry from the network: every verified ad updates its
    /// node, and nodes silent for longer than `retention` are forgotten.
    pub(crate) async fn follow_network(self, network: p2p::Client, retention: Duration) {
        let mut events = network.subscribe();
        let sweep_every =
            (retention / 10).clamp(Duration::from_millis(200), Duration::from_secs(60));
        let mut sweep = tokio::time::interval(sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(p2p::NetworkEvent::AdAccepted { ad, .. }) => {
                        match self.ingest_ad(&ad.ad, UnixMillis::now()).await {
                            Ok(true) => tracing::debug!(node = %ad.ad.node_id, seq = ad.ad.seq, "ad stored"),
                            Ok(false) => {}
                            Err(e) => tracing::warn!(error = %e, "could not store an ad"),
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "registry fell behind the network's ads");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = sweep.tick() => {
                    let ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
                    let cutoff = UnixMillis(UnixMillis::now().0.saturating_sub(ms));
                    match self.forget_silent(cutoff).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(nodes = n, "forgot silent nodes"),
                        Err(e) => tracing::warn!(error = %e, "could not sweep silent nodes"),
                    }
                }
            }
        }
    }

    /// Every node, sorted by peer id, with its status as of `now`.
    pub(crate) async fn all(&self, now: UnixMillis) -> Result<Vec<NodeInfo>, ApiError> {
        let rows: Vec<NodeRow> = self
            .db
            .rows("SELECT * FROM node ORDER BY peer_id", json!({}), 0)
            .await?;
        Ok(rows.into_iter().map(|r| r.into_info(now)).collect())
    }

    pub(crate) async fn list(&self, q: &NodeQuery, now: UnixMillis) -> Result<NodeList, ApiError> {
        let limit = q.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ApiError::BadRequest(format!(
                "limit must be 1 to {MAX_PAGE}"
            )));
        }
        if q.min_vram_gb.is_some_and(|g| !g.is_finite() || g < 0.0) {
            return Err(ApiError::BadRequest(
                "min_vram_gb must be a non-negative number".into(),
            ));
        }
        let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
        let nodes: Vec<NodeInfo> = self
            .all(now)
            .await?
            .into_iter()
            .filter(|n| matches(q, n))
            .collect();
        Ok(paginate(nodes, after.as_deref(), limit as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::registry::{GpuInfo, Task};
    use wire::{MilliSats, Sha256Digest};

    fn node(seed: u8, price: u64, gpus: Vec<GpuInfo>, online: bool) -> NodeInfo {
        let key = p2p::Keypair::ed25519_from_bytes([seed; 32]).unwrap();
        NodeInfo {
            peer_id: key.public().to_peer_id().into(),
            multiaddrs: vec![],
            hardware: Hardware {
                cpu_model: "cpu".into(),
                cpu_cores: 2,
                ram_mb: 1024,
                gpus,
                os: "linux".into(),
                arch: "x86_64".into(),
            },
            models: vec![ModelOffer {
                name: format!("model-{}", seed % 2),
                task: Task::Embedding,
                hash: Sha256Digest::of(&[seed % 2]),
                price_msat: MilliSats(price),
                device: "cpu".into(),
                description: None,
                embedding_dim: Some(384),
                token_price: Default::default(),
                context_tokens: None,
            }],
            status: if online {
                NodeStatus::Online
            } else {
                NodeStatus::Offline
            },
            last_seen: UnixMillis(0),
            registered_at: UnixMillis(0),
            version: "0".into(),
            heartbeat_interval_ms: 1000,
            active_jobs: 0,
            fetching: Vec::new(),
        }
    }

    fn gpu(vram_mb: u64) -> GpuInfo {
        GpuInfo {
            name: "gpu".into(),
            vram_mb,
            compute_capability: Some("8.9".into()),
        }
    }

    #[test]
    fn node_goes_offline_after_three_missed_heartbeats() {
        assert_eq!(
            status_at(UnixMillis(0), 1000, UnixMillis(3000)),
            NodeStatus::Online
        );
        assert_eq!(
            status_at(UnixMillis(0), 1000, UnixMillis(3001)),
            NodeStatus::Offline
        );
        // A clock that went backwards is not "offline".
        assert_eq!(
            status_at(UnixMillis(5000), 1000, UnixMillis(0)),
            NodeStatus::Online
        );
    }

    #[test]
    fn filters_select_by_status_gpu_vram_model_task_and_price() {
        let cpu = node(1, 500, vec![], true);
        let small = node(2, 2000, vec![gpu(8 * 1024)], true);
        let big = node(3, 1000, vec![gpu(80 * 1024)], false);
        let all = [&cpu, &small, &big];
        let pick = |q: NodeQuery| -> Vec<u8> {
            all.iter()
                .enumerate()
                .filter(|(_, n)| matches(&q, n))
                .map(|(i, _)| i as u8)
                .collect()
        };
        assert_eq!(pick(NodeQuery::default()), vec![0, 1, 2]);
        assert_eq!(
            pick(NodeQuery {
                online: Some(true),
                ..Default::default()
            }),
            vec![0, 1]
        );
        assert_eq!(
            pick(NodeQuery {
                online: Some(false),
                ..Default::default()
            }),
            vec![2]
        );
        assert_eq!(
            pick(NodeQuery {
                gpu: Some(true),
                ..Default::default()
            }),
            vec![1, 2]
        );
        assert_eq!(
            pick(NodeQuery {
                gpu: Some(false),
                ..Default::default()
            }),
            vec![0]
        );
        assert_eq!(
            pick(NodeQuery {
                min_vram_gb: Some(24.0),
                ..Default::default()
            }),
            vec![2]
        );
        assert_eq!(
            pick(NodeQuery {
                min_vram_gb: Some(7.5),
                ..Default::default()
            }),
            vec![1, 2]
        );
        assert_eq!(
            pick(NodeQuery {
                model: Some("model-1".into()),
                ..Default::default()
            }),
            vec![0, 2]
        );
        let hash = Sha256Digest::of(&[0]).to_string();
        assert_eq!(
            pick(NodeQuery {
                model: Some(hash),
                ..Default::default()
            }),
            vec![1]
        );
        assert_eq!(
            pick(NodeQuery {
                task: Some(Task::Embedding),
                ..Default::default()
            }),
            vec![0, 1, 2]
        );
        assert_eq!(
            pick(NodeQuery {
                max_price: Some(1000),
                ..Default::default()
            }),
            vec![0, 2]
        );
        // Price and model must hold for the same offer.
        assert_eq!(
            pick(NodeQuery {
                model: Some("model-0".into()),
                max_price: Some(1000),
                ..Default::default()
            }),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn pages_cover_every_node_once_in_order() {
        let mut nodes: Vec<NodeInfo> = (1..=7).map(|s| node(s, 1, vec![], true)).collect();
        nodes.sort_by_key(|n| n.peer_id.to_string());
        let mut seen = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let after = cursor.as_deref().map(|c| decode_cursor(c).unwrap());
            let page = paginate(nodes.clone(), after.as_deref(), 3);
            assert!(page.nodes.len() <= 3);
            seen.extend(page.nodes.iter().map(|n| n.peer_id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, nodes.iter().map(|n| n.peer_id).collect::<Vec<_>>());
    }

    #[test]
    fn last_full_page_has_no_next_cursor() {
        let mut nodes: Vec<NodeInfo> = (1..=4).map(|s| node(s, 1, vec![], true)).collect();
        nodes.sort_by_key(|n| n.peer_id.to_string());
        let first = paginate(nodes.clone(), None, 2);
        let after = decode_cursor(first.next_cursor.as_deref().unwrap()).unwrap();
        let second = paginate(nodes, Some(&after), 2);
        assert_eq!(second.nodes.len(), 2);
        assert_eq!(second.next_cursor, None);
    }

    #[test]
    fn forged_cursors_are_rejected() {
        assert!(decode_cursor("!!!").is_err());
        assert!(decode_cursor(&B64URL.encode("v1:not-a-peer")).is_err());
        assert!(decode_cursor(&B64URL.encode("v2:x")).is_err());
    }

    #[test]
    fn timestamps_more_than_a_minute_off_are_refused() {
        let now = UnixMillis(1_000_000);
        assert!(check_fresh(UnixMillis(now.0 - 60_000), now).is_ok());
        assert!(check_fresh(UnixMillis(now.0 + 60_000), now).is_ok());
        assert!(matches!(
            check_fresh(UnixMillis(now.0 - 60_001), now),
            Err(ApiError::ClockSkew { .. })
        ));
        assert!(matches!(
            check_fresh(UnixMillis(now.0 + 60_001), now),
            Err(ApiError::ClockSkew { .. })
        ));
    }

    #[tokio::test]
    async fn an_ad_racing_a_registration_for_a_new_node_does_not_refuse_it() {
        let dir = std::env::temp_dir().join(format!("infernet-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = Db::connect(&crate::db::DbConfig {
            url: format!("surrealkv://{}", dir.display()),
            namespace: "t".into(),
            database: "t".into(),
            credentials: None,
        })
        .await
        .unwrap();
        let registry = Registry::new(db);
        let info = node(1, 100, vec![], true);
        for round in 0..20u8 {
            let id = NodeId::from(p2p::Keypair::generate_ed25519().public().to_peer_id());
            let now = UnixMillis::now();
            let registration = Registration {
                node_id: id,
                timestamp: now,
                multiaddrs: vec![],
                hardware: info.hardware.clone(),
                models: info.models.clone(),
                version: "0".into(),
                heartbeat_interval_ms: 1000,
            };
            let ad = wire::ads::CapabilityAd {
                node_id: id,
                seq: now.0 + 5,
                issued_at: now,
                ttl_ms: 30_000,
                multiaddrs: vec![],
                hardware: info.hardware.clone(),
                models: info.models.clone(),
                version: "0".into(),
                schedule: vec![],
                load: wire::ads::Load {
                    active_jobs: 0,
                    queued_jobs: 0,
                    capacity: 1,
                },
                accepting_jobs: true,
                fetching: Vec::new(),
            };
            let (registered, ingested) = tokio::join!(
                registry.register(&registration, now),
                registry.ingest_ad(&ad, now)
            );
            assert!(registered.is_ok(), "round {round}: {registered:?}");
            assert!(ingested.unwrap(), "round {round}: the ad was stored too");
            // The replay guard still holds.
            assert!(matches!(
                registry.register(&registration, now).await,
                Err(ApiError::Replay)
            ));
        }
    }
}

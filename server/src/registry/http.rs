//! The registry's HTTP side: the public `GET /nodes` (cacheable, CORS-open),
//! a node's reputation and ban,
//! and the signed registration and heartbeats nodes post.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use wire::registry::{HeartbeatAck, NodeInfo, NodeQuery};
use wire::reputation::ReputationReport;
use wire::verify::BanRecord;
use wire::{NodeId, SignedEnvelope, UnixMillis};

use crate::error::{parse_id, ApiError, ApiJson, ApiQuery};
use crate::AppState;

/// Body limit of registration and heartbeat requests.
pub(crate) const MAX_SIGNED_BODY: usize = 64 * 1024;

/// `GET /nodes`, `GET /nodes/{peer_id}`, `GET /nodes/{peer_id}/reputation`,
/// `GET /nodes/{peer_id}/ban`: anyone may call them.
pub(crate) fn public_router() -> Router<AppState> {
    Router::new()
        .route("/nodes", get(list_nodes))
        .route("/nodes/{peer_id}", get(get_node))
        .route("/nodes/{peer_id}/reputation", get(get_reputation))
        .route("/nodes/{peer_id}/ban", get(get_ban))
}

/// Registration and heartbeats, under `/api/v1`: anyone may call them, and
/// only a message signed by the node's own key is taken.
pub(crate) fn api_router() -> Router<AppState> {
    Router::new()
        .route("/nodes/register", post(register))
        .route("/nodes/heartbeat", post(heartbeat))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_SIGNED_BODY))
}

async fn list_nodes(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<NodeQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (etag, body) = state
        .registry
        .list_json(uri.query().unwrap_or(""), &query, UnixMillis::now())
        .await?;
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
    let id: NodeId = parse_id(&peer_id)?;
    state
        .registry
        .get(id, UnixMillis::now())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("node {id}")))
}

/// A node's reputation and the days it is made of.
async fn get_reputation(
    State(state): State<AppState>,
    Path(peer_id): Path<String>,
) -> Result<Json<ReputationReport>, ApiError> {
    let id: NodeId = parse_id(&peer_id)?;
    state
        .registry
        .reputation_report(id, UnixMillis::now())
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("node {id}")))
}

/// A banned node's ban as its server signed it, with the evidence: 404
/// for a node that is not banned.
async fn get_ban(
    State(state): State<AppState>,
    Path(peer_id): Path<String>,
) -> Result<Json<BanRecord>, ApiError> {
    let id: NodeId = parse_id(&peer_id)?;
    state
        .registry
        .ban_of(id)
        .map(|(ban, signed)| Json(BanRecord { ban, signed }))
        .ok_or_else(|| ApiError::NotFound(format!("a ban of node {id}")))
}

async fn register(
    State(state): State<AppState>,
    ApiJson(envelope): ApiJson<SignedEnvelope>,
) -> Result<Json<NodeInfo>, ApiError> {
    Ok(Json(
        state
            .registry
            .register_signed(&envelope, UnixMillis::now())
            .await?,
    ))
}

async fn heartbeat(
    State(state): State<AppState>,
    ApiJson(envelope): ApiJson<SignedEnvelope>,
) -> Result<Json<HeartbeatAck>, ApiError> {
    let now = UnixMillis::now();
    state.registry.heartbeat_signed(&envelope, now).await?;
    Ok(Json(HeartbeatAck { server_time: now }))
}

//! The registry's HTTP side: the public `GET /nodes` (cacheable, CORS-open),
//! a node's reputation and ban,
//! and the signed registration and heartbeats nodes post.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::api::ErrorBody;
use wire::registry::{HeartbeatAck, NodeInfo, NodeList, NodeQuery};
use wire::reputation::ReputationReport;
use wire::verify::BanRecord;
use wire::{NodeId, SignedEnvelope, UnixMillis};

use crate::error::{parse_id, ApiError, ApiJson, ApiQuery};
use crate::AppState;

/// Body limit of registration and heartbeat requests.
pub(crate) const MAX_SIGNED_BODY: usize = 64 * 1024;

/// `GET /nodes`, `GET /nodes/{peer_id}`, `GET /nodes/{peer_id}/reputation`,
/// `GET /nodes/{peer_id}/ban`: anyone may call them.
pub(crate) fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_nodes))
        .routes(routes!(get_node))
        .routes(routes!(get_reputation))
        .routes(routes!(get_ban))
}

/// Registration and heartbeats, under `/api/v1`: anyone may call them, and
/// only a message signed by the node's own key is taken.
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(heartbeat))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_SIGNED_BODY))
}

/// The nodes of the network, filtered, sorted and a page at a time
/// (`cursor` from the previous page's `next_cursor`). Cacheable for 2 s, with
/// an `ETag`.
#[utoipa::path(
    get,
    path = "/nodes",
    operation_id = "list_nodes",
    tag = "registry",
    params(NodeQuery),
    responses(
        (status = 200, description = "A page of nodes.", body = NodeList,
            headers(("ETag" = String, description = "Send it back in `If-None-Match`."))),
        (status = 304, description = "The page is as it was (`If-None-Match`)."),
        (status = 400, description = "A filter that is not understood.", body = ErrorBody),
    ),
    security(()),
)]
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

/// One node, as listed.
#[utoipa::path(
    get,
    path = "/nodes/{peer_id}",
    operation_id = "get_node",
    tag = "registry",
    params(("peer_id" = String, Path, description = "The node's libp2p peer id.")),
    responses(
        (status = 200, description = "The node.", body = NodeInfo),
        (status = 400, description = "Not a peer id.", body = ErrorBody),
        (status = 404, description = "No such node.", body = ErrorBody),
    ),
    security(()),
)]
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
#[utoipa::path(
    get,
    path = "/nodes/{peer_id}/reputation",
    operation_id = "get_node_reputation",
    tag = "registry",
    params(("peer_id" = String, Path, description = "The node's libp2p peer id.")),
    responses(
        (status = 200, description = "The node's reputation.", body = ReputationReport),
        (status = 400, description = "Not a peer id.", body = ErrorBody),
        (status = 404, description = "No such node.", body = ErrorBody),
    ),
    security(()),
)]
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
#[utoipa::path(
    get,
    path = "/nodes/{peer_id}/ban",
    operation_id = "get_node_ban",
    tag = "registry",
    params(("peer_id" = String, Path, description = "The node's libp2p peer id.")),
    responses(
        (status = 200, description = "The ban and its signed form.", body = BanRecord),
        (status = 400, description = "Not a peer id.", body = ErrorBody),
        (status = 404, description = "The node is not banned.", body = ErrorBody),
    ),
    security(()),
)]
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

/// A node's signed registration (its hardware, models, prices, addresses).
/// Only a message signed by the node's own key is taken.
#[utoipa::path(
    post,
    path = "/nodes/register",
    operation_id = "register_node",
    tag = "registry",
    request_body = SignedEnvelope,
    responses(
        (status = 200, description = "The node as now listed.", body = NodeInfo),
        (status = 400, description = "A malformed registration.", body = ErrorBody),
        (status = 401, description = "A signature that does not verify, or a clock too far off.", body = ErrorBody),
        (status = 409, description = "A message taken before (a replay).", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a signed envelope.", body = ErrorBody),
    ),
    security(()),
)]
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

/// A node's signed heartbeat (load, status).
#[utoipa::path(
    post,
    path = "/nodes/heartbeat",
    operation_id = "node_heartbeat",
    tag = "registry",
    request_body = SignedEnvelope,
    responses(
        (status = 200, description = "Taken.", body = HeartbeatAck),
        (status = 400, description = "A malformed heartbeat.", body = ErrorBody),
        (status = 401, description = "A signature that does not verify, or a clock too far off.", body = ErrorBody),
        (status = 409, description = "A message taken before (a replay).", body = ErrorBody),
        (status = 404, description = "The node never registered.", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a signed envelope.", body = ErrorBody),
    ),
    security(()),
)]
async fn heartbeat(
    State(state): State<AppState>,
    ApiJson(envelope): ApiJson<SignedEnvelope>,
) -> Result<Json<HeartbeatAck>, ApiError> {
    let now = UnixMillis::now();
    state.registry.heartbeat_signed(&envelope, now).await?;
    Ok(Json(HeartbeatAck { server_time: now }))
}

//! How to reach this server's libp2p peer, and a health check.

use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::api::NetworkInfo;

use crate::AppState;

/// `GET /api/v1/network`: nodes bootstrap from these addresses.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(network_info))
}

/// The server's libp2p peer: its id, addresses, version, and how it checks
/// nodes' answers.
#[utoipa::path(
    get,
    path = "/network",
    operation_id = "get_network",
    tag = "network",
    responses((status = 200, description = "How to reach the server's peer.", body = NetworkInfo)),
    security(()),
)]
async fn network_info(State(state): State<AppState>) -> Json<NetworkInfo> {
    Json(state.network_info.clone())
}

/// What a health check or load balancer asks: the server answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
    /// The server's version.
    version: &'static str,
}

/// `GET /healthz`: anyone may call it.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "network",
    responses((status = 200, description = "The server is up.", body = Health)),
    security(()),
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: wire::VERSION,
    })
}

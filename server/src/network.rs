//! How to reach this server's libp2p peer, and a health check.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use wire::api::NetworkInfo;

use crate::AppState;

/// `GET /api/v1/network`: nodes bootstrap from these addresses.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/network", get(network_info))
}

async fn network_info(State(state): State<AppState>) -> Json<NetworkInfo> {
    Json(state.network_info.clone())
}

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": wire::VERSION }))
}

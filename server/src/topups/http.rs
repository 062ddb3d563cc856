//! The top-up API, under `/api/v1`:
//!
//! | route | who may call |
//! |---|---|
//! | `POST /billing/topups {amount_msat}` → BOLT11 invoice, QR, expiry | signed in (`billing` scope for keys) |
//! | `GET /billing/topups` (one's own, newest first) | signed in (`billing`) |
//! | `GET /billing/topups/{id}?wait_secs=` (one's own; waits for a pending one to change) | signed in (`billing`) |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use wire::accounts::Scope;
use wire::billing::{NewTopup, Topup};

use crate::accounts::{require, SignedIn};
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::lightning::{ListQuery, WaitQuery};
use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/billing/topups", get(list).post(create))
        .route("/billing/topups/{id}", get(one))
}

async fn create(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    ApiJson(new): ApiJson<NewTopup>,
) -> Result<(StatusCode, Json<Topup>), ApiError> {
    require(&caller, Scope::Billing)?;
    let topup = state
        .topups
        .create(&caller.account, new.amount_msat)
        .await?;
    Ok((StatusCode::CREATED, Json(topup)))
}

#[derive(Debug, serde::Serialize)]
struct TopupList {
    topups: Vec<Topup>,
}

async fn list(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<TopupList>, ApiError> {
    require(&caller, Scope::Billing)?;
    let limit = q.limit()?;
    let topups = state.topups.list(&caller.account, limit).await?;
    Ok(Json(TopupList { topups }))
}

async fn one(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> Result<Json<Topup>, ApiError> {
    require(&caller, Scope::Billing)?;
    let wait = q.wait()?;
    Ok(Json(state.topups.get(&caller.account, &id, wait).await?))
}

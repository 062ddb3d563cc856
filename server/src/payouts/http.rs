//! The payout API, under `/api/v1`:
//!
//! | route | who may call |
//! |---|---|
//! | `POST /billing/payouts {from, invoice \| address, amount_msat}` | signed in (`billing` scope for keys) |
//! | `GET /billing/payouts` (one's own, newest first) | signed in (`billing`) |
//! | `GET /billing/payouts/{id}?wait_secs=` (one's own) | signed in (`billing`) |
//! | `GET`/`PUT /billing/payout-settings` (address, threshold) | signed in (`billing`) |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use wire::accounts::Scope;
use wire::billing::{NewPayout, Payout, PayoutSettings};

use crate::accounts::{require, SignedIn};
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::lightning::{ListQuery, WaitQuery};
use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/billing/payouts", get(list).post(create))
        .route("/billing/payouts/{id}", get(one))
        .route("/billing/payout-settings", get(settings).put(set_settings))
}

async fn create(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    ApiJson(new): ApiJson<NewPayout>,
) -> Result<(StatusCode, Json<Payout>), ApiError> {
    require(&caller, Scope::Billing)?;
    let payout = state.payouts.create(&caller.account, new).await?;
    Ok((StatusCode::CREATED, Json(payout)))
}

#[derive(Debug, serde::Serialize)]
struct PayoutList {
    payouts: Vec<Payout>,
}

async fn list(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<PayoutList>, ApiError> {
    require(&caller, Scope::Billing)?;
    let limit = q.limit()?;
    let payouts = state.payouts.list(&caller.account, limit).await?;
    Ok(Json(PayoutList { payouts }))
}

async fn one(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> Result<Json<Payout>, ApiError> {
    require(&caller, Scope::Billing)?;
    let wait = q.wait()?;
    Ok(Json(state.payouts.get(&caller.account, &id, wait).await?))
}

async fn settings(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
) -> Result<Json<PayoutSettings>, ApiError> {
    require(&caller, Scope::Billing)?;
    Ok(Json(state.payouts.settings(&caller.account).await?))
}

async fn set_settings(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    ApiJson(new): ApiJson<PayoutSettings>,
) -> Result<Json<PayoutSettings>, ApiError> {
    require(&caller, Scope::Billing)?;
    Ok(Json(
        state.payouts.set_settings(&caller.account, new).await?,
    ))
}

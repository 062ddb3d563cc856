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
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::accounts::Scope;
use wire::api::ErrorBody;
use wire::billing::{NewPayout, Payout, PayoutSettings};

use crate::accounts::{require, SignedIn};
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::lightning::{ListQuery, WaitQuery};
use crate::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(one))
        .routes(routes!(settings, set_settings))
}

/// Pays out to a BOLT11 invoice or a Lightning address.
///
/// From the account's balance or its earnings. The amount and a routing-fee
/// reserve are taken at once; the payment is sent in the background (follow
/// it with `GET /billing/payouts/{id}`), and what the fee did not use comes
/// back. An API key needs the `billing` scope.
#[utoipa::path(
    post,
    path = "/billing/payouts",
    operation_id = "create_payout",
    tag = "billing",
    request_body = NewPayout,
    responses(
        (status = 201, description = "The payout, pending.", body = Payout),
        (status = 400, description = "Not exactly one of invoice and address; an invoice that is malformed, expired, for another network or for another amount; no amount where one is needed; an amount out of range or not whole satoshis.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        (status = 402, description = "The balance (or earnings) cannot cover the amount and its fee reserve.", body = ErrorBody),
        (status = 403, description = "An API key without the `billing` scope, or a request from another site (CSRF).", body = ErrorBody),
        (status = 409, description = "This invoice was paid out already.", body = ErrorBody),
        (status = 413, description = "A body over 2 MiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a payout, or a Lightning address whose service refused, could not be reached, or gave an invoice that does not match.", body = ErrorBody),
        (status = 501, description = "This server has no Lightning to pay out with.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn create(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    ApiJson(new): ApiJson<NewPayout>,
) -> Result<(StatusCode, Json<Payout>), ApiError> {
    require(&caller, Scope::Billing)?;
    let payout = state.payouts.create(&caller.account, new).await?;
    Ok((StatusCode::CREATED, Json(payout)))
}

/// The account's payouts.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct PayoutList {
    payouts: Vec<Payout>,
}

/// The account's payouts, newest first.
///
/// `limit`: 1 to 500 [default: 50]. An API key needs the `billing` scope.
#[utoipa::path(
    get,
    path = "/billing/payouts",
    operation_id = "list_payouts",
    tag = "billing",
    params(ListQuery),
    responses(
        (status = 200, description = "The payouts.", body = PayoutList),
        (status = 400, description = "A `limit` out of range, or a query that is not understood.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoBilling,
    ),
    security(("session" = []), ("api_key" = [])),
)]
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

/// One of the account's payouts.
///
/// With `wait_secs` (at most 60), a pending one is answered as soon as it
/// ends, or when the wait is over. An API key needs the `billing` scope.
#[utoipa::path(
    get,
    path = "/billing/payouts/{id}",
    operation_id = "get_payout",
    tag = "billing",
    params(("id" = String, Path, description = "The payout's `id`."), WaitQuery),
    responses(
        (status = 200, description = "The payout.", body = Payout),
        (status = 400, description = "A `wait_secs` over 60, or a query that is not understood.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoBilling,
        (status = 404, description = "No payout of the account has this id.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
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

/// The account's automatic payouts: where to, and from how much.
///
/// An API key needs the `billing` scope.
#[utoipa::path(
    get,
    path = "/billing/payout-settings",
    operation_id = "get_payout_settings",
    tag = "billing",
    responses(
        (status = 200, description = "The settings.", body = PayoutSettings),
        crate::openapi::NotSignedIn,
        crate::openapi::NoBilling,
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn settings(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
) -> Result<Json<PayoutSettings>, ApiError> {
    require(&caller, Scope::Billing)?;
    Ok(Json(state.payouts.settings(&caller.account).await?))
}

/// Sets the account's automatic payouts.
///
/// Earnings are paid out to the Lightning address by themselves once they
/// reach the threshold; no threshold: none. An API key needs the `billing`
/// scope.
#[utoipa::path(
    put,
    path = "/billing/payout-settings",
    operation_id = "set_payout_settings",
    tag = "billing",
    request_body = PayoutSettings,
    responses(
        (status = 200, description = "The settings, as set.", body = PayoutSettings),
        (status = 400, description = "Not a Lightning address, a threshold out of range, or a threshold without an address.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key without the `billing` scope, or a request from another site (CSRF).", body = ErrorBody),
        (status = 413, description = "A body over 2 MiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not payout settings.", body = ErrorBody),
        (status = 501, description = "An address or threshold on a server without Lightning.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
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

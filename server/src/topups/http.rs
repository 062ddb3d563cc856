//! The top-up API, under `/api/v1`:
//!
//! | route | who may call |
//! |---|---|
//! | `POST /billing/topups {amount_msat}` → BOLT11 invoice, QR, expiry | signed in (`billing` scope for keys) |
//! | `GET /billing/topups` (one's own, newest first) | signed in (`billing`) |
//! | `GET /billing/topups/{id}?wait_secs=` (one's own; waits for a pending one to change) | signed in (`billing`) |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::accounts::Scope;
use wire::api::ErrorBody;
use wire::billing::{NewTopup, Topup};

use crate::accounts::{require, SignedIn};
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::lightning::{ListQuery, WaitQuery};
use crate::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(one))
}

/// Asks for a top-up.
///
/// A Lightning invoice that credits the account once paid: answers the
/// BOLT11 invoice, its QR code and expiry. Whole satoshis, 1 sat
/// to 0.1 BTC. An API key needs the `billing` scope.
#[utoipa::path(
    post,
    path = "/billing/topups",
    operation_id = "create_topup",
    tag = "billing",
    request_body = NewTopup,
    responses(
        (status = 201, description = "The top-up, pending: its invoice to pay.", body = Topup),
        (status = 400, description = "An amount out of range or not whole satoshis.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key without the `billing` scope, or a request from another site (CSRF).", body = ErrorBody),
        (status = 413, description = "A body over 2 MiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a top-up.", body = ErrorBody),
        (status = 429, description = "As many unpaid top-up invoices as an account may hold: pay one or let them expire.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait (60)."))),
        (status = 501, description = "This server takes no Lightning top-ups.", body = ErrorBody),
        (status = 502, description = "The Lightning backend could not make the invoice.", body = ErrorBody),
        (status = 503, description = "The Lightning network cannot be reached now.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
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

/// The account's top-ups.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct TopupList {
    topups: Vec<Topup>,
}

/// The account's top-ups, newest first.
///
/// `limit`: 1 to 500 [default: 50]. An API key needs the `billing` scope.
#[utoipa::path(
    get,
    path = "/billing/topups",
    operation_id = "list_topups",
    tag = "billing",
    params(ListQuery),
    responses(
        (status = 200, description = "The top-ups.", body = TopupList),
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
) -> Result<Json<TopupList>, ApiError> {
    require(&caller, Scope::Billing)?;
    let limit = q.limit()?;
    let topups = state.topups.list(&caller.account, limit).await?;
    Ok(Json(TopupList { topups }))
}

/// One of the account's top-ups, with its QR code.
///
/// With `wait_secs` (at most 60), a pending one is answered as soon as it
/// changes (paid, expired), or when the wait is over. An API key needs the
/// `billing` scope.
#[utoipa::path(
    get,
    path = "/billing/topups/{id}",
    operation_id = "get_topup",
    tag = "billing",
    params(("id" = String, Path, description = "The top-up's `id`."), WaitQuery),
    responses(
        (status = 200, description = "The top-up.", body = Topup),
        (status = 400, description = "A `wait_secs` over 60, or a query that is not understood.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoBilling,
        (status = 404, description = "No top-up of the account has this id.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
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

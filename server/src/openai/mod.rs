//! The OpenAI-compatible API: `GET /v1/models`, `POST /v1/embeddings` and
//! `POST /v1/chat/completions` (whole, or streamed as server-sent events in
//! OpenAI's chunk format). Requests become Infernet jobs through
//! [`Jobs::start`](crate::jobs::Jobs::start): routed to a node over libp2p,
//! recorded, and answered with the node's verified result.
//!
//! `GET /v1/models` is public; the others take an API key (`Authorization:
//! Bearer sk-inf-…`, `jobs` scope) or the app's session, and answer
//! OpenAI's 401 (`invalid_api_key`) without one.
//!
//! - `types`: the JSON of requests and answers, typed;
//! - `error`: OpenAI's error shape, naming the offending parameter;
//! - `models`, `embeddings`, `chat`: the endpoints.

mod chat;
mod embeddings;
mod error;
mod models;
mod types;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::jobs::{JobRecord, Receipt};
use wire::registry::{ModelOffer, Task};

use crate::error::ApiError;
use crate::jobs::{Order, MAX_JOB_BODY};
use crate::AppState;
use error::invalid;
use wire::accounts::Scope;
use wire::{Caller, MilliSats};

pub(crate) use error::OpenAiError;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(models::list))
        .routes(routes!(models::one))
        .routes(routes!(embeddings::create))
        .routes(routes!(chat::create))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JOB_BODY))
}

/// `owner`'s job on `model` for at most `max_price_msat`, on any node (of
/// `pool`, if named).
fn order<'a>(
    model: &'a str,
    max_price_msat: Option<u64>,
    bid_msat: Option<u64>,
    pool: Option<&'a str>,
    caller: &'a Caller,
) -> Order<'a> {
    Order {
        model,
        node: None,
        pool,
        max_price: max_price_msat.map(MilliSats),
        bid: MilliSats(bid_msat.unwrap_or_default()),
        caller,
    }
}

/// Running jobs takes the `jobs` scope (sessions have every scope).
fn may_run_jobs(caller: &Caller) -> Result<(), OpenAiError> {
    crate::accounts::require(caller, Scope::Jobs).map_err(|e| ApiError::from(e).into())
}

/// The endpoint's task, or a 400 naming the model's, about `param`.
fn require_task(offer: &ModelOffer, task: Task, what: &str) -> Result<(), OpenAiError> {
    if offer.task == task {
        return Ok(());
    }
    Err(invalid(
        "model",
        format!(
            "{} is a {} model, not {what} model",
            offer.name,
            offer.task.as_str()
        ),
    ))
}

/// The receipt of a succeeded job (already verified by the job service).
fn receipt_of(record: &JobRecord) -> Result<Receipt, OpenAiError> {
    Ok(record
        .receipt
        .as_ref()
        .ok_or_else(|| ApiError::Internal("a finished job without a receipt".into()))?
        .open()
        .map_err(|e| ApiError::Internal(format!("a verified receipt no longer opens: {e}")))?)
}

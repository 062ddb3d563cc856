//! The job API, under `/api/v1`:
//!
//! | route | who may call |
//! |---|---|
//! | `POST /jobs` (run a job, answer its record) | signed in (`jobs` scope for keys) |
//! | `GET /jobs?limit=&cursor=` (one's jobs, newest first, a page at a time) | signed in (`jobs`) |
//! | `GET /jobs/{id}` (one's job, input and output included) | signed in (`jobs`); another's job is 404 |
//! | `GET /receipts/{id}` (terms and signed receipt, no input or output) | anyone |

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::accounts::{ReceiptCheck, Scope};
use wire::api::ErrorBody;
use wire::jobs::{JobCursor, JobInput, JobPage, JobRecord, SubmitJob};
use wire::{Caller, JobId};

use super::{JobError, Order};
use crate::accounts::{require, ClientIp, SignedIn};
use crate::error::{parse_id, ApiError, ApiJson, ApiQuery};
use crate::AppState;

/// Body limit of a job submission.
pub(crate) const MAX_JOB_BODY: usize = 1024 * 1024;
const MAX_LIST: u32 = 200;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, submit))
        .routes(routes!(fetch))
        .routes(routes!(receipt))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JOB_BODY))
}

impl super::Jobs {
    /// Runs a submission of the job API (and the app) to its end.
    pub(crate) async fn submit(
        &self,
        caller: &Caller,
        job: SubmitJob,
    ) -> Result<JobRecord, JobError> {
        let order = Order {
            model: &job.model,
            node: job.node,
            pool: job.pool.as_deref(),
            max_price: job.max_price_msat,
            bid: job.bid_msat.unwrap_or_default(),
            caller,
        };
        let input = job.input;
        self.start(order, |offer| {
            JobInput::parse(offer.task, input).map_err(JobError::from)
        })
        .await?
        .finish()
        .await
    }
}

/// Runs a job to its end and answers its record: the output, and the
/// node's signed receipt.
///
/// The job goes to a node that offers the model (or the one named), at no
/// more than `max_price_msat`. A job that a node took and then failed is
/// recorded: its error names its `job_id`.
#[utoipa::path(
    post,
    path = "/jobs",
    operation_id = "submit_job",
    tag = "jobs",
    request_body = SubmitJob,
    responses(
        (status = 200, description = "The job succeeded: its record, output and receipt.", body = JobRecord),
        (status = 400, description = "Malformed JSON, a malformed model name, input that does not suit the model's task, an unknown pool, or input the node refused.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        (status = 402, description = "Not enough balance for the job's price, or over the key's spending cap.", body = ErrorBody),
        (status = 403, description = "An API key without the `jobs` scope, or a cross-site request with the session cookie.", body = ErrorBody),
        (status = 404, description = "No node offers the model.", body = ErrorBody),
        (status = 413, description = "A body over 1 MiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a job submission.", body = ErrorBody),
        (status = 429, description = "Too many jobs from this address or account.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
        (status = 502, description = "The node refused the job, broke off, or answered wrongly (a bad receipt).", body = ErrorBody),
        (status = 503, description = "No node can take the job now (none available, or the node is busy or not accepting).", body = ErrorBody),
        (status = 504, description = "The node did not finish in time.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    SignedIn(caller): SignedIn,
    ApiJson(job): ApiJson<SubmitJob>,
) -> Result<Json<JobRecord>, ApiError> {
    require(&caller, Scope::Jobs)?;
    state.jobs.submitted_from(ip)?;
    Ok(Json(state.jobs.submit(&caller, job).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// How many jobs, 1 to 200 (50 unless given).
    limit: Option<u32>,
    /// `next_cursor` of the page before.
    cursor: Option<String>,
}

/// The caller's jobs, newest first, a page at a time (`cursor` from the
/// previous page's `next_cursor`).
#[utoipa::path(
    get,
    path = "/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the caller's jobs.", body = JobPage),
        (status = 400, description = "A limit out of range, a cursor that is not one, or an unknown parameter.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key without the `jobs` scope.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn list(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    require(&caller, Scope::Jobs)?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIST}"
        )));
    }
    let after = q
        .cursor
        .as_deref()
        .map(str::parse::<JobCursor>)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    Ok(Json(
        state
            .jobs
            .list(&caller.account, limit, after.as_ref())
            .await?,
    ))
}

/// One of the caller's jobs, input and output included. Another account's
/// job is 404, as if it did not exist.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id (32 lowercase hex characters).")),
    responses(
        (status = 200, description = "The job's record.", body = JobRecord),
        (status = 400, description = "Not a job id.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key without the `jobs` scope.", body = ErrorBody),
        (status = 404, description = "No such job of the caller's.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn fetch(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    require(&caller, Scope::Jobs)?;
    let id: JobId = parse_id(&id)?;
    state
        .jobs
        .get(&caller.account, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("job {id}")))
}

/// What anyone may check about a job: its terms and the node's signed
/// receipt, without its input or output.
#[utoipa::path(
    get,
    path = "/receipts/{id}",
    operation_id = "get_receipt",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id (32 lowercase hex characters).")),
    responses(
        (status = 200, description = "The job's terms and receipt.", body = ReceiptCheck),
        (status = 400, description = "Not a job id.", body = ErrorBody),
        (status = 404, description = "No such job.", body = ErrorBody),
    ),
    security(()),
)]
async fn receipt(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ReceiptCheck>, ApiError> {
    let id: JobId = parse_id(&id)?;
    state
        .jobs
        .receipt(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("job {id}")))
}

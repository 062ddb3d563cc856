//! The job API, under `/api/v1`:
//!
//! | route | who may call |
//! |---|---|
//! | `POST /jobs` (run a job, answer its record) | signed in (`jobs` scope for keys) |
//! | `GET /jobs?limit=&cursor=` (one's jobs, newest first, a page at a time) | signed in (`jobs`) |
//! | `GET /jobs/{id}` (one's job, input and output included) | signed in (`jobs`); another's job is 404 |
//! | `GET /receipts/{id}` (terms and signed receipt, no input or output) | anyone |

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use wire::accounts::{ReceiptCheck, Scope};
use wire::jobs::{JobCursor, JobInput, JobPage, JobRecord, SubmitJob};
use wire::{Caller, JobId};

use super::{JobError, Order};
use crate::accounts::{require, ClientIp, SignedIn};
use crate::error::{parse_id, ApiError, ApiJson, ApiQuery};
use crate::AppState;

/// Body limit of a job submission.
pub(crate) const MAX_JOB_BODY: usize = 1024 * 1024;
const MAX_LIST: u32 = 200;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", post(submit).get(list))
        .route("/jobs/{id}", get(fetch))
        .route("/receipts/{id}", get(receipt))
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
    /// `next_cursor` of the page before.
    cursor: Option<String>,
}

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

//! `POST /v1/embeddings`: a string or an array of strings in, one vector
//! each out, as floats or base64.

use axum::extract::State;
use axum::Json;
use base64::Engine as _;
use serde_json::Value;
use wire::jobs::{JobInput, JobOutput};
use wire::registry::Task;

use super::error::{invalid, OaiJson, OpenAiError};
use super::types::{
    Embedding, EmbeddingObject, EmbeddingUsage, EmbeddingsRequest, EmbeddingsResponse,
    ErrorResponse, JobFacts,
};
use super::{receipt_of, require_task};
use crate::accounts::{ClientIp, OaiCaller};
use crate::error::ApiError;
use crate::AppState;

/// Embeds a string, or each of an array of strings, as a job on a node
/// that offers the model: one vector each, as floats or base64.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    operation_id = "create_embedding",
    tag = "openai",
    request_body = EmbeddingsRequest,
    responses(
        (status = 200, description = "The vectors, in the order of the inputs, with the job's facts and receipt.", body = EmbeddingsResponse),
        (status = 400, description = "Malformed JSON, an `input` or `encoding_format` not understood, dimensions the model does not have, a model that is not an embedding model, an unknown pool, or input the node refused (`invalid_request_error`, naming the `param`).", body = ErrorResponse),
        (status = 401, description = "No API key or session, an unknown or revoked key, or an expired session (`invalid_api_key`).", body = ErrorResponse),
        (status = 402, description = "Not enough balance for the job's price (`insufficient_quota`), or over the key's spending cap.", body = ErrorResponse),
        (status = 403, description = "An API key without the `jobs` scope, or a cross-site request with the session cookie.", body = ErrorResponse),
        (status = 404, description = "No node offers the model (`model_not_found`).", body = ErrorResponse),
        (status = 413, description = "A body over 1 MiB.", body = ErrorResponse),
        (status = 415, description = "Not JSON.", body = ErrorResponse),
        (status = 422, description = "JSON that does not fit the request's shape.", body = ErrorResponse),
        (status = 429, description = "Too many jobs from this address or account (`rate_limit_error`).", body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
        (status = 502, description = "The node refused the job, broke off, or answered wrongly (a bad receipt).", body = ErrorResponse),
        (status = 503, description = "No node can take the job now (none available, or the node is busy or not accepting).", body = ErrorResponse),
        (status = 504, description = "The node did not finish in time.", body = ErrorResponse),
    ),
    security(("session" = []), ("api_key" = [])),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    OaiCaller(caller): OaiCaller,
    OaiJson(req): OaiJson<EmbeddingsRequest>,
) -> Result<Json<EmbeddingsResponse>, OpenAiError> {
    super::may_run_jobs(&caller)?;
    state.jobs.submitted_from(ip).map_err(ApiError::from)?;
    let texts: Vec<String> = match &req.input {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Value::Array(_) => {
            return Err(invalid(
                "input",
                "input must be a string or an array of strings; token arrays are not supported",
            ))
        }
        _ => {
            return Err(invalid(
                "input",
                "input must be a string or an array of strings",
            ))
        }
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(
                "encoding_format",
                format!("encoding_format must be float or base64, got {other:?}"),
            ))
        }
    };
    let dimensions = req.dimensions;
    let order = super::order(
        &req.model,
        req.max_price_msat,
        req.bid_msat,
        req.pool.as_deref(),
        &caller,
    );
    let started = state
        .jobs
        .start(order, |offer| {
            require_task(offer, Task::Embedding, "an embedding")?;
            if let (Some(want), Some(dim)) = (dimensions, offer.embedding_dim) {
                if want != dim {
                    return Err(invalid(
                        "dimensions",
                        format!(
                            "{} gives {dim}-dimensional embeddings; dimensions={want} is not available",
                            offer.name
                        ),
                    ));
                }
            }
            // Checked by `Jobs::start`, whose errors name their parameter.
            Ok(JobInput::Embedding { texts })
        })
        .await?;
    let record = started.finish().await?;
    let receipt = receipt_of(&record)?;
    let Some(JobOutput::Embedding { vectors, .. }) = &record.output else {
        return Err(ApiError::Internal("an embedding job without vectors".into()).into());
    };
    let data = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| EmbeddingObject {
            object: "embedding",
            index,
            embedding: if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Embedding::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Embedding::Float(v.clone())
            },
        })
        .collect();
    let tokens = receipt.usage.input_tokens;
    Ok(Json(EmbeddingsResponse {
        object: "list",
        data,
        model: record.model.clone(),
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
        infernet: JobFacts::of(&record, &receipt),
    }))
}

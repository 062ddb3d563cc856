//! `GET /v1/models` and `GET /v1/models/{id}`: the model catalogue
//! ([`wire::catalog`]), the same one the app's picker shows.

use axum::extract::{Path, State};
use axum::Json;
use wire::UnixMillis;

use super::error::OpenAiError;
use super::types::{ErrorResponse, List, Model};
use crate::error::ApiError;
use crate::jobs::JobError;
use crate::AppState;

/// The models on offer on the network, with Infernet's listing of each
/// (task, nodes, prices).
#[utoipa::path(
    get,
    path = "/v1/models",
    operation_id = "list_models",
    tag = "openai",
    responses((status = 200, description = "The models on offer.", body = List<Model>)),
    security(()),
)]
pub(super) async fn list(State(state): State<AppState>) -> Result<Json<List<Model>>, OpenAiError> {
    let models = state.catalog(UnixMillis::now()).await?;
    Ok(Json(List::of(
        models.into_iter().map(Model::from).collect(),
    )))
}

/// One model on offer, by name.
#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    operation_id = "retrieve_model",
    tag = "openai",
    params(("id" = String, Path, description = "The model's name.")),
    responses(
        (status = 200, description = "The model.", body = Model),
        (status = 404, description = "No node offers the model (`model_not_found`).", body = ErrorResponse),
    ),
    security(()),
)]
pub(super) async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Model>, OpenAiError> {
    state
        .catalog(UnixMillis::now())
        .await?
        .into_iter()
        .find(|m| m.name == id)
        .map(|m| Json(Model::from(m)))
        .ok_or_else(|| ApiError::Job(JobError::UnknownModel(id)).into())
}

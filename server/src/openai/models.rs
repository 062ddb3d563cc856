//! `GET /v1/models` and `GET /v1/models/{id}`: the model catalogue
//! ([`wire::catalog`]), the same one the app's picker shows.

use axum::extract::{Path, State};
use axum::Json;
use wire::UnixMillis;

use super::error::OpenAiError;
use super::types::{List, Model};
use crate::error::ApiError;
use crate::jobs::JobError;
use crate::AppState;

pub(super) async fn list(State(state): State<AppState>) -> Result<Json<List<Model>>, OpenAiError> {
    let models = state.catalog(UnixMillis::now()).await?;
    Ok(Json(List::of(
        models.into_iter().map(Model::from).collect(),
    )))
}

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

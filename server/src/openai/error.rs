//! Errors in OpenAI's shape, so that the official client libraries raise
//! their usual exceptions: the server's [`ApiError`] gives the status and
//! code, and each error names the request parameter it is about.

use axum::response::{IntoResponse, Response};
use axum::Json;
use wire::jobs::{InputError, InputField};

use super::types::{ErrorObject, ErrorResponse};
use crate::error::ApiError;
use crate::jobs::JobError;

#[derive(Debug)]
pub(crate) struct OpenAiError {
    pub(super) error: Box<ApiError>,
    pub(super) param: Option<&'static str>,
}

/// A 400 about `param`.
pub(super) fn invalid(param: &'static str, message: impl Into<String>) -> OpenAiError {
    OpenAiError {
        error: Box::new(ApiError::BadRequest(message.into())),
        param: Some(param),
    }
}

/// The request parameter an input error is about.
fn param_of(e: &InputError) -> &'static str {
    match e.field() {
        InputField::Input | InputField::Texts | InputField::Tensors => "input",
        InputField::Prompt | InputField::Messages => "messages",
        InputField::MaxTokens => "max_tokens",
        InputField::Stop => "stop",
        InputField::Temperature => "temperature",
        InputField::TopP => "top_p",
    }
}

impl From<JobError> for OpenAiError {
    /// Errors about which model or node are about `model`; input errors
    /// name their own parameter.
    fn from(error: JobError) -> Self {
        let param = match &error {
            JobError::UnknownModel(_) | JobError::NoNodeAvailable(_) | JobError::ModelName => {
                Some("model")
            }
            JobError::BadInput(e) => Some(param_of(e)),
            _ => None,
        };
        OpenAiError {
            error: Box::new(ApiError::Job(error)),
            param,
        }
    }
}

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Job(e) => e.into(),
            other => OpenAiError {
                error: Box::new(other),
                param: None,
            },
        }
    }
}

impl From<crate::registry::RegistryError> for OpenAiError {
    fn from(e: crate::registry::RegistryError) -> Self {
        ApiError::from(e).into()
    }
}

impl OpenAiError {
    pub(super) fn body(&self) -> ErrorResponse {
        let status = self.error.status();
        let kind = match status.as_u16() {
            400 | 404 | 408 | 409 | 413 | 415 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            402 => "insufficient_quota",
            429 => "rate_limit_error",
            _ => "server_error",
        };
        let code = match self.error.code() {
            "unknown_model" => "model_not_found",
            "insufficient_funds" => "insufficient_quota",
            // OpenAI's clients know one code for every 401.
            _ if status.as_u16() == 401 => "invalid_api_key",
            other => other,
        };
        let body = self.error.body();
        ErrorResponse {
            error: ErrorObject {
                message: body.error.message,
                kind,
                param: self.param,
                code,
                job_id: body.error.job_id,
            },
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status = self.error.status();
        if status.is_server_error() {
            tracing::warn!(error = %self.error, "OpenAI API request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        self.error.add_headers(response.headers_mut());
        response
    }
}

/// A JSON object body (`ApiJson`) whose rejections are OpenAI-shaped errors.
#[derive(axum::extract::FromRequest)]
#[from_request(via(crate::error::ApiJson), rejection(OpenAiError))]
pub(crate) struct OaiJson<T>(pub T);

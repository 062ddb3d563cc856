//! The server's one error type and its mapping to HTTP responses.
//! Clients get a stable code and a message; internal detail goes to the log.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use wire::api::ErrorBody;
use wire::jobs::{InputError, ReceiptError, RefusalCode};
use wire::SigningError;

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{message}")]
    BadBody { status: StatusCode, message: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    BadInput(#[from] InputError),
    #[error("signature rejected: {0}")]
    BadSignature(#[from] SigningError),
    #[error(
        "timestamp is {skew_ms} ms away from the server's clock; at most {max_ms} ms is allowed"
    )]
    ClockSkew { skew_ms: u64, max_ms: u64 },
    #[error("this signed message is not newer than one already accepted from this node (replay)")]
    Replay,
    #[error("{0} not found")]
    NotFound(String),
    #[error("no node offers model `{0}`")]
    UnknownModel(String),
    #[error("{0}")]
    NoNodeAvailable(String),
    #[error("the node refused the job ({code:?}): {message}")]
    NodeRefused { code: RefusalCode, message: String },
    #[error("could not reach the node: {0}")]
    NodeUnreachable(String),
    #[error("the node disconnected before finishing the job")]
    NodeDisconnected,
    #[error("the node did not answer within {0} s")]
    NodeTimeout(u64),
    #[error("the node's receipt is invalid: {0}")]
    BadReceipt(#[from] ReceiptError),
    /// A job that was recorded and then failed: the cause, plus the job's id
    /// so that the client can read the record back.
    #[error("{source}")]
    Job {
        job_id: wire::JobId,
        source: Box<ApiError>,
    },
    #[error("internal error")]
    Db(#[from] DbError),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            BadBody { status, .. } => *status,
            BadRequest(_) | BadInput(_) => StatusCode::BAD_REQUEST,
            BadSignature(_) | ClockSkew { .. } => StatusCode::UNAUTHORIZED,
            Replay => StatusCode::CONFLICT,
            NotFound(_) | UnknownModel(_) => StatusCode::NOT_FOUND,
            NoNodeAvailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            NodeRefused {
                code: RefusalCode::BadInput,
                ..
            } => StatusCode::BAD_REQUEST,
            NodeRefused { .. } | NodeUnreachable(_) | NodeDisconnected | BadReceipt(_) => {
                StatusCode::BAD_GATEWAY
            }
            NodeTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Job { source, .. } => source.status(),
            Db(_) | Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            BadBody { status, .. } if *status == StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            BadBody { status, .. } if *status == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "unsupported_media_type"
            }
            BadBody { .. } => "invalid_json",
            BadRequest(_) => "bad_request",
            BadInput(_) => "invalid_input",
            BadSignature(_) => "bad_signature",
            ClockSkew { .. } => "clock_skew",
            Replay => "replayed",
            NotFound(_) => "not_found",
            UnknownModel(_) => "unknown_model",
            NoNodeAvailable(_) => "no_node_available",
            NodeRefused { .. } => "node_refused",
            NodeUnreachable(_) => "node_unreachable",
            NodeDisconnected => "node_disconnected",
            NodeTimeout(_) => "node_timeout",
            BadReceipt(_) => "bad_receipt",
            Job { source, .. } => source.code(),
            Db(_) | Internal(_) => "internal",
        }
    }

    pub(crate) fn body(&self) -> ErrorBody {
        let mut body = ErrorBody::new(self.code(), self.to_string());
        if let ApiError::Job { job_id, .. } = self {
            body.error.job_id = Some(job_id.clone());
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            match &self {
                ApiError::Db(e) => tracing::error!(error = %e, "request failed"),
                ApiError::Internal(e) => tracing::error!(error = %e, "request failed"),
                other => tracing::warn!(error = %other, "request failed"),
            }
        }
        (status, Json(self.body())).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::BadBody {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// `axum::Json`, with its rejections in our JSON error shape.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct ApiJson<T>(pub T);

/// `axum::extract::Query`, with its rejections in our JSON error shape.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub T);

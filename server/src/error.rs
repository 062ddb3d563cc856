//! The server's one mapping from errors to HTTP responses. Domain errors
//! ([`RegistryError`], [`JobError`], the store's [`DbError`]) say what went
//! wrong; this module alone says which status and stable code each is.
//! Clients get the code and a message; internal detail goes to the log.

use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use payments::LightningError;
use wire::api::ErrorBody;
use wire::jobs::RefusalCode;

use crate::accounts::AuthError;
use crate::db::DbError;
use crate::enrolment::EnrolError;
use crate::fleet::FleetError;
use crate::jobs::JobError;
use crate::ledger::LedgerError;
use crate::payouts::PayoutError;
use crate::registry::RegistryError;
use crate::topups::TopupError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{message}")]
    BadBody { status: StatusCode, message: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Enrol(#[from] EnrolError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Topup(#[from] TopupError),
    #[error(transparent)]
    Payout(#[from] PayoutError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error("internal error")]
    Db(#[from] DbError),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadBody { status, .. } => *status,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Auth(e) => auth_status(e),
            ApiError::Enrol(e) => enrol_status(e),
            ApiError::Registry(e) => registry_status(e),
            ApiError::Job(e) => job_status(e),
            ApiError::Ledger(e) => ledger_status(e),
            ApiError::Topup(e) => topup_status(e),
            ApiError::Payout(e) => payout_status(e),
            ApiError::Fleet(e) => fleet_status(e),
            ApiError::Db(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::BadBody { status, .. } if *status == StatusCode::PAYLOAD_TOO_LARGE => {
                "body_too_large"
            }
            ApiError::BadBody { status, .. } if *status == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "unsupported_media_type"
            }
            ApiError::BadBody { status, .. } if *status == StatusCode::REQUEST_TIMEOUT => {
                "body_timeout"
            }
            ApiError::BadBody { .. } => "invalid_json",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Auth(e) => auth_code(e),
            ApiError::Enrol(e) => enrol_code(e),
            ApiError::Registry(e) => registry_code(e),
            ApiError::Job(e) => job_code(e),
            ApiError::Ledger(e) => ledger_code(e),
            ApiError::Topup(e) => topup_code(e),
            ApiError::Payout(e) => payout_code(e),
            ApiError::Fleet(e) => fleet_code(e),
            ApiError::Db(_) | ApiError::Internal(_) => "internal",
        }
    }

    /// The message clients see: internal detail stays in the log.
    fn message(&self) -> String {
        if self.status().is_server_error() && self.code() == "internal" {
            "internal error".to_owned()
        } else {
            self.to_string()
        }
    }

    /// Headers that go with the status: `Retry-After` on 429.
    pub(crate) fn add_headers(&self, headers: &mut axum::http::HeaderMap) {
        if let ApiError::Auth(AuthError::RateLimited { retry_after_secs })
        | ApiError::Job(JobError::RateLimited { retry_after_secs }) = self
        {
            headers.insert(axum::http::header::RETRY_AFTER, (*retry_after_secs).into());
        }
        // Open invoices are paid or expire: a minute is a fair wait.
        if let ApiError::Topup(TopupError::TooManyOpen(_)) = self {
            headers.insert(axum::http::header::RETRY_AFTER, 60.into());
        }
    }

    pub(crate) fn body(&self) -> ErrorBody {
        let mut body = ErrorBody::new(self.code(), self.message());
        if let ApiError::Job(JobError::Failed { job_id, .. }) = self {
            body.error.job_id = Some(job_id.clone());
        }
        body
    }
}

/// How a failed job's record states its error: as the API would.
pub(crate) fn job_error_body(e: &JobError) -> ErrorBody {
    let internal = job_code(e) == "internal";
    ErrorBody::new(
        job_code(e),
        if internal {
            "internal error".to_owned()
        } else {
            e.to_string()
        },
    )
}

fn auth_status(e: &AuthError) -> StatusCode {
    match e {
        AuthError::NotSignedIn
        | AuthError::InvalidApiKey
        | AuthError::SessionExpired
        | AuthError::UnknownCredential => StatusCode::UNAUTHORIZED,
        AuthError::Csrf | AuthError::MissingScope(_) => StatusCode::FORBIDDEN,
        AuthError::UnknownChallenge
        | AuthError::ChallengeExpired
        | AuthError::WebAuthn(_)
        | AuthError::BadSignature
        | AuthError::BadRequest(_) => StatusCode::BAD_REQUEST,
        AuthError::LastWayIn | AuthError::KeyTaken => StatusCode::CONFLICT,
        AuthError::NotFound(_) => StatusCode::NOT_FOUND,
        AuthError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        AuthError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn auth_code(e: &AuthError) -> &'static str {
    match e {
        AuthError::NotSignedIn => "unauthenticated",
        AuthError::InvalidApiKey => "invalid_api_key",
        AuthError::SessionExpired => "session_expired",
        AuthError::UnknownCredential => "unknown_credential",
        AuthError::Csrf => "csrf",
        AuthError::MissingScope(_) => "insufficient_scope",
        AuthError::UnknownChallenge => "unknown_challenge",
        AuthError::ChallengeExpired => "challenge_expired",
        AuthError::WebAuthn(_) => "webauthn_failed",
        AuthError::BadSignature => "bad_signature",
        AuthError::BadRequest(_) => "bad_request",
        AuthError::LastWayIn => "last_sign_in_method",
        AuthError::KeyTaken => "key_taken",
        AuthError::NotFound(_) => "not_found",
        AuthError::RateLimited { .. } => "rate_limited",
        AuthError::Store(_) => "internal",
    }
}

fn enrol_status(e: &EnrolError) -> StatusCode {
    match e {
        EnrolError::BadSignature(_) => StatusCode::UNAUTHORIZED,
        EnrolError::Stale(r) => registry_status(r),
        EnrolError::WrongServer(_) | EnrolError::BadRequest(_) => StatusCode::BAD_REQUEST,
        EnrolError::UnknownToken | EnrolError::Revoked | EnrolError::Expired | EnrolError::Used => {
            StatusCode::FORBIDDEN
        }
        EnrolError::ClaimedElsewhere(_) | EnrolError::Raced => StatusCode::CONFLICT,
        EnrolError::NotFound(_) => StatusCode::NOT_FOUND,
        EnrolError::Auth(a) => auth_status(a),
        EnrolError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn enrol_code(e: &EnrolError) -> &'static str {
    match e {
        EnrolError::BadSignature(_) => "bad_signature",
        EnrolError::Stale(r) => registry_code(r),
        EnrolError::WrongServer(_) => "wrong_server",
        EnrolError::BadRequest(_) => "bad_request",
        EnrolError::UnknownToken => "unknown_token",
        EnrolError::Revoked => "token_revoked",
        EnrolError::Expired => "token_expired",
        EnrolError::Used => "token_used",
        EnrolError::ClaimedElsewhere(_) => "claimed_elsewhere",
        EnrolError::Raced => "conflict",
        EnrolError::NotFound(_) => "not_found",
        EnrolError::Auth(a) => auth_code(a),
        EnrolError::Store(_) => "internal",
    }
}

fn fleet_status(e: &FleetError) -> StatusCode {
    match e {
        FleetError::NotFound(_) => StatusCode::NOT_FOUND,
        FleetError::BadRequest(_) => StatusCode::BAD_REQUEST,
        FleetError::Auth(a) => auth_status(a),
        FleetError::Enrol(e) => enrol_status(e),
        FleetError::Registry(r) => registry_status(r),
        FleetError::Store(_) | FleetError::Jobs(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn fleet_code(e: &FleetError) -> &'static str {
    match e {
        FleetError::NotFound(_) => "not_found",
        FleetError::BadRequest(_) => "bad_request",
        FleetError::Auth(a) => auth_code(a),
        FleetError::Enrol(e) => enrol_code(e),
        FleetError::Registry(r) => registry_code(r),
        FleetError::Store(_) | FleetError::Jobs(_) => "internal",
    }
}

fn registry_status(e: &RegistryError) -> StatusCode {
    match e {
        RegistryError::BadSignature(_) | RegistryError::ClockSkew { .. } => {
            StatusCode::UNAUTHORIZED
        }
        RegistryError::Replay => StatusCode::CONFLICT,
        RegistryError::NotRegistered(_) => StatusCode::NOT_FOUND,
        RegistryError::InvalidRegistration(_) | RegistryError::InvalidQuery(_) => {
            StatusCode::BAD_REQUEST
        }
        RegistryError::Store(_) | RegistryError::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn registry_code(e: &RegistryError) -> &'static str {
    match e {
        RegistryError::BadSignature(_) => "bad_signature",
        RegistryError::ClockSkew { .. } => "clock_skew",
        RegistryError::Replay => "replayed",
        RegistryError::NotRegistered(_) => "not_found",
        RegistryError::InvalidRegistration(_) | RegistryError::InvalidQuery(_) => "bad_request",
        RegistryError::Store(_) | RegistryError::Encode(_) => "internal",
    }
}

fn ledger_status(e: &LedgerError) -> StatusCode {
    match e {
        LedgerError::InsufficientFunds(_) => StatusCode::PAYMENT_REQUIRED,
        LedgerError::BadRequest(_) => StatusCode::BAD_REQUEST,
        LedgerError::Unbalanced(_) | LedgerError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn topup_status(e: &TopupError) -> StatusCode {
    match e {
        TopupError::Disabled | TopupError::Lightning(LightningError::Disabled) => {
            StatusCode::NOT_IMPLEMENTED
        }
        TopupError::BadRequest(_) => StatusCode::BAD_REQUEST,
        TopupError::NotFound(_) => StatusCode::NOT_FOUND,
        TopupError::TooManyOpen(_) => StatusCode::TOO_MANY_REQUESTS,
        TopupError::Lightning(LightningError::Unreachable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        TopupError::Lightning(_) => StatusCode::BAD_GATEWAY,
        TopupError::Ledger(e) => ledger_status(e),
        TopupError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn payout_status(e: &PayoutError) -> StatusCode {
    match e {
        PayoutError::Disabled | PayoutError::Lightning(LightningError::Disabled) => {
            StatusCode::NOT_IMPLEMENTED
        }
        PayoutError::BadRequest(_) => StatusCode::BAD_REQUEST,
        PayoutError::NotFound(_) => StatusCode::NOT_FOUND,
        PayoutError::Duplicate => StatusCode::CONFLICT,
        PayoutError::Address(_) => StatusCode::UNPROCESSABLE_ENTITY,
        PayoutError::Lightning(LightningError::Unreachable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        PayoutError::Lightning(_) => StatusCode::BAD_GATEWAY,
        PayoutError::Ledger(e) => ledger_status(e),
        PayoutError::Store(_) | PayoutError::Registry(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn payout_code(e: &PayoutError) -> &'static str {
    match e {
        PayoutError::Disabled | PayoutError::Lightning(LightningError::Disabled) => {
            "lightning_disabled"
        }
        PayoutError::BadRequest(_) => "bad_request",
        PayoutError::NotFound(_) => "not_found",
        PayoutError::Duplicate => "already_paid_out",
        PayoutError::Address(_) => "lightning_address_failed",
        PayoutError::Lightning(LightningError::Unreachable(_)) => "lightning_unavailable",
        PayoutError::Lightning(_) => "lightning_error",
        PayoutError::Ledger(e) => ledger_code(e),
        PayoutError::Store(_) | PayoutError::Registry(_) => "internal",
    }
}

fn topup_code(e: &TopupError) -> &'static str {
    match e {
        TopupError::Disabled | TopupError::Lightning(LightningError::Disabled) => {
            "lightning_disabled"
        }
        TopupError::BadRequest(_) => "bad_request",
        TopupError::NotFound(_) => "not_found",
        TopupError::TooManyOpen(_) => "too_many_open_topups",
        TopupError::Lightning(LightningError::Unreachable(_)) => "lightning_unavailable",
        TopupError::Lightning(_) => "lightning_error",
        TopupError::Ledger(e) => ledger_code(e),
        TopupError::Store(_) => "internal",
    }
}

fn ledger_code(e: &LedgerError) -> &'static str {
    match e {
        LedgerError::InsufficientFunds(_) => "insufficient_funds",
        LedgerError::BadRequest(_) => "bad_request",
        LedgerError::Unbalanced(_) | LedgerError::Store(_) => "internal",
    }
}

fn job_status(e: &JobError) -> StatusCode {
    match e {
        JobError::ModelName | JobError::Pool(_) | JobError::BadInput(_) => StatusCode::BAD_REQUEST,
        JobError::InsufficientFunds { .. } | JobError::SpendingCap { .. } => {
            StatusCode::PAYMENT_REQUIRED
        }
        JobError::UnknownModel(_) => StatusCode::NOT_FOUND,
        JobError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        JobError::NoNodeAvailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        JobError::NodeRefused {
            code: RefusalCode::BadInput,
            ..
        } => StatusCode::BAD_REQUEST,
        // The node cannot take it now: another node, or later, can.
        JobError::NodeRefused {
            code: RefusalCode::NotAccepting | RefusalCode::Overloaded,
            ..
        } => StatusCode::SERVICE_UNAVAILABLE,
        JobError::NodeRefused { .. }
        | JobError::NodeUnreachable(_)
        | JobError::NodeDisconnected
        | JobError::NodeProtocol(_)
        | JobError::BadReceipt(_) => StatusCode::BAD_GATEWAY,
        JobError::NodeTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        JobError::Failed { cause, .. } => job_status(cause),
        JobError::Registry(e) => registry_status(e),
        JobError::Ledger(e) => ledger_status(e),
        JobError::Store(_) | JobError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn job_code(e: &JobError) -> &'static str {
    match e {
        JobError::ModelName | JobError::Pool(_) => "bad_request",
        JobError::BadInput(_) => "invalid_input",
        JobError::InsufficientFunds { .. } => "insufficient_funds",
        JobError::SpendingCap { .. } => "spending_cap_exceeded",
        JobError::UnknownModel(_) => "unknown_model",
        JobError::RateLimited { .. } => "rate_limited",
        JobError::NoNodeAvailable(_) => "no_node_available",
        JobError::NodeRefused { .. } => "node_refused",
        JobError::NodeUnreachable(_) => "node_unreachable",
        JobError::NodeDisconnected => "node_disconnected",
        JobError::NodeTimeout(_) => "node_timeout",
        JobError::NodeProtocol(_) => "node_protocol_error",
        JobError::BadReceipt(_) => "bad_receipt",
        JobError::Failed { cause, .. } => job_code(cause),
        JobError::Registry(e) => registry_code(e),
        JobError::Ledger(e) => ledger_code(e),
        JobError::Store(_) | JobError::Internal(_) => "internal",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            if self.code() == "internal" {
                tracing::error!(error = ?self, "request failed");
            } else {
                tracing::warn!(error = %self, "request failed");
            }
        }
        let mut response = (status, Json(self.body())).into_response();
        self.add_headers(response.headers_mut());
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        bad_body(&rejection, rejection.status(), rejection.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        bad_body(&rejection, rejection.status(), rejection.body_text())
    }
}

/// A body that could not be read or parsed, as `status`; one that did not
/// arrive in time (`listen`) says so.
fn bad_body(
    rejection: &(dyn std::error::Error + 'static),
    status: StatusCode,
    message: String,
) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(e) = source {
        if let Some(late) = e.downcast_ref::<crate::listen::BodyTimedOut>() {
            return ApiError::BadBody {
                status: StatusCode::REQUEST_TIMEOUT,
                message: late.to_string(),
            };
        }
        source = e.source();
    }
    ApiError::BadBody { status, message }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// An id from a request's path (`JobId`, `NodeId`), or a 400 saying why not.
pub(crate) fn parse_id<T>(text: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr<Err = wire::ids::ParseIdError>,
{
    text.parse()
        .map_err(|e: wire::ids::ParseIdError| ApiError::BadRequest(e.to_string()))
}

/// A JSON body, with its rejections in our JSON error shape: `axum::Json`,
/// but only an object is taken. (Serde reads a struct from an array too,
/// field by field: `[null, null]` would be a body with every field left
/// out, which is not what the API documents or anyone means.)
pub(crate) struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::BadBody {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: "Expected request with `Content-Type: application/json`".into(),
            });
        }
        let bytes = axum::body::Bytes::from_request(req, state).await?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::BadBody {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: "Failed to deserialize the JSON body: expected an object, not an array"
                    .into(),
            });
        }
        Ok(ApiJson(Json::<T>::from_bytes(&bytes)?.0))
    }
}

/// `application/json`, or another `application/…+json`, with any
/// parameters (as `axum::Json` takes).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|sub| sub == "json" || sub.ends_with("+json"))
}

/// `axum::extract::Query`, with its rejections in our JSON error shape.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub T);

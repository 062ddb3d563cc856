//! The HTTP API's OpenAPI 3.1 document, served at `GET /openapi.json`.
//!
//! It is made from the routes themselves: every module's router is a
//! `utoipa_axum` router whose routes come with their handler's
//! `#[utoipa::path]` (method, path, parameters, bodies, answers, who may
//! call), so a route cannot exist without its description, nor a
//! description without its route. This module adds what the whole API
//! shares: the title, the tags, the two ways to be signed in, and the
//! answers many routes give alike (`NotSignedIn`, …: named in a route's
//! `responses(...)` like its own answers).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::accounts::SESSION_COOKIE;
use wire::api::ErrorBody;

/// 401 from any route that takes a session or an API key.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 401,
    description = "Not signed in: no credentials, a session that has expired, or an unknown or revoked API key."
)]
pub(crate) struct NotSignedIn(#[allow(dead_code)] ErrorBody);

/// 403 from the fleet's read routes.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 403,
    description = "An API key (or team role) without `fleet:read`."
)]
pub(crate) struct NoFleetRead(#[allow(dead_code)] ErrorBody);

/// 403 from the routes that manage an account, which take a browser
/// session.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 403,
    description = "An API key (managing the account takes a signed-in browser session), or a request from another site (CSRF)."
)]
pub(crate) struct SessionOnly(#[allow(dead_code)] ErrorBody);

/// 403 from the billing routes' reads.
#[derive(utoipa::IntoResponses)]
#[response(status = 403, description = "An API key without the `billing` scope.")]
pub(crate) struct NoBilling(#[allow(dead_code)] ErrorBody);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Infernet",
        description = "An open marketplace for AI inference, paid per job over Lightning. \
            Errors have one shape everywhere, `{\"error\": {\"code\", \"message\"}}`, \
            except under `/v1`, which answers in OpenAI's shape. Private data answers \
            404 to anyone but its owner, as if it did not exist.",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&SignIn),
    tags(
        (name = "registry", description = "Nodes: the public list, reputation, bans; nodes' signed registrations and heartbeats."),
        (name = "jobs", description = "Jobs run on the network, their records and signed receipts."),
        (name = "accounts", description = "Sign-up and sign-in (passkeys, LNURL-auth), sessions, API keys, settings."),
        (name = "billing", description = "Balance and history, Lightning top-ups and payouts."),
        (name = "fleet", description = "Operators' nodes: enrolment, status, telemetry, commands, alerts, earnings, team."),
        (name = "network", description = "How to reach the server's libp2p peer; health."),
        (name = "openai", description = "The OpenAI-compatible API: models, embeddings, chat completions."),
    ),
    // Referred to by query parameters (bodies' schemas are collected
    // from the operations).
    components(schemas(wire::api::ErrorBody, wire::registry::NodeSort))
)]
pub(crate) struct ApiDoc;

/// The security schemes operations refer to: `api_key` (an API key as a
/// bearer token) and `session` (the browser's session cookie).
struct SignIn;

impl Modify for SignIn {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key made in the app's Settings: `Authorization: Bearer <key>`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "The browser session a passkey or LNURL-auth sign-in sets (HttpOnly).",
            ))),
        );
    }
}

/// One event of a `text/event-stream` answer, as a client's EventSource
/// reads it: what the answer's schema describes (one per event).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema only: the events are written as text
pub(crate) struct ServerSentEvent {
    /// The event's type: `message` unless the event names one.
    event: Option<String>,
    /// The event's data: JSON text (an object), or `[DONE]` at the end of
    /// a chat completion.
    data: String,
    id: Option<String>,
}

/// The finished document as JSON, made once at start-up; each answer
/// shares its bytes.
#[derive(Clone)]
pub(crate) struct Document(axum::body::Bytes);

impl Document {
    pub(crate) fn new(openapi: &utoipa::openapi::OpenApi) -> Result<Self, serde_json::Error> {
        Ok(Document(serde_json::to_vec(openapi)?.into()))
    }

    /// `GET /openapi.json`: anyone may read it.
    pub(crate) fn response(&self) -> Response {
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                ),
            ],
            self.0.clone(),
        )
            .into_response()
    }
}

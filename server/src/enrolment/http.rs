//! Enrolment routes, under `/api/v1`:
//!
//! | route | who may call |
//! |---|---|
//! | `POST /enrolments` | a node, with an enrolment signed by its own key |
//! | `GET`/`POST /account/enrol-tokens`, `DELETE /account/enrol-tokens/{id}` | signed-in session |
//! | `GET /account/nodes` | signed in (`fleet:read` for keys) |
//! | `DELETE /account/nodes/{peer_id}` (release) | signed in (`fleet:write` for keys) |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::accounts::{CreatedEnrolToken, EnrolTokenView, Enrolled, MyNode, NewEnrolToken, Scope};
use wire::api::ErrorBody;
use wire::{NodeId, SignedEnvelope, UnixMillis};

use crate::accounts::{require, Session, SignedIn};
use crate::error::{parse_id, ApiError, ApiJson};
use crate::registry::MAX_SIGNED_BODY;
use crate::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enrol))
        .routes(routes!(tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(my_nodes))
        .routes(routes!(release))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_SIGNED_BODY))
}

/// Enrols a node to the account of an enrolment token.
///
/// The node signs an enrolment, with its own key, naming the token and this
/// server's peer id. A node enrolled to the token's account already is
/// answered as enrolled (and uses no token). What the node earned before it
/// was enrolled becomes its operator's.
#[utoipa::path(
    post,
    path = "/enrolments",
    operation_id = "enrol_node",
    tag = "fleet",
    request_body = SignedEnvelope,
    responses(
        (status = 200, description = "Enrolled: the node, the server it is bound to, and its operator.", body = Enrolled),
        (status = 400, description = "An enrolment for another server.", body = ErrorBody),
        (status = 401, description = "A malformed enrolment, a signature that does not verify, or a clock too far off.", body = ErrorBody),
        (status = 403, description = "An enrolment token that is unknown, revoked, expired, or single-use and used.", body = ErrorBody),
        (status = 409, description = "The node is enrolled to another account (its operator must release it first), or the token was used at the same moment.", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a signed envelope.", body = ErrorBody),
    ),
    security(()),
)]
async fn enrol(
    State(state): State<AppState>,
    ApiJson(envelope): ApiJson<SignedEnvelope>,
) -> Result<Json<Enrolled>, ApiError> {
    let (mut enrolled, account) = state.enrolments.enrol(&envelope, UnixMillis::now()).await?;
    state.registry.claims_changed();
    // What the node earned before it was enrolled is its operator's now.
    let moved = state
        .ledger
        .claim_pending(&enrolled.node_id, &account)
        .await?;
    if moved.0 > 0 {
        tracing::info!(peer_id = %enrolled.node_id, %account, amount = %moved, "pending earnings moved to the operator");
    }
    enrolled.account_name = state.accounts.account(&account).await?.display_name;
    Ok(Json(enrolled))
}

/// The account's enrolment tokens.
#[derive(Serialize, utoipa::ToSchema)]
struct EnrolTokenList {
    tokens: Vec<EnrolTokenView>,
}

/// The account's enrolment tokens.
#[utoipa::path(
    get,
    path = "/account/enrol-tokens",
    operation_id = "list_enrol_tokens",
    tag = "fleet",
    responses(
        (status = 200, description = "The tokens.", body = EnrolTokenList),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key: this takes a signed-in browser session.", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn tokens(
    State(state): State<AppState>,
    Session(caller): Session,
) -> Result<Json<EnrolTokenList>, ApiError> {
    Ok(Json(EnrolTokenList {
        tokens: state.enrolments.tokens(&caller).await?,
    }))
}

/// Makes an enrolment token.
///
/// Single-use, or reusable across a farm until it expires (after
/// `expires_in_secs`, by default a day) or is revoked. Its secret is in this
/// answer and nowhere else.
#[utoipa::path(
    post,
    path = "/account/enrol-tokens",
    operation_id = "create_enrol_token",
    tag = "fleet",
    request_body = NewEnrolToken,
    responses(
        (status = 201, description = "The token, and its secret.", body = CreatedEnrolToken),
        (status = 400, description = "A name that is empty, too long or has control characters, or an expiry out of range.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key (managing enrolment tokens takes a signed-in browser session), or a request from another site (CSRF).", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a new enrolment token.", body = ErrorBody),
        (status = 429, description = "Too many keys and enrolment tokens made by this account.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
    security(("session" = [])),
)]
async fn create_token(
    State(state): State<AppState>,
    Session(caller): Session,
    ApiJson(new): ApiJson<NewEnrolToken>,
) -> Result<(StatusCode, Json<CreatedEnrolToken>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.create_enrol_token(&caller, new).await?),
    ))
}

/// Revokes an enrolment token.
///
/// It enrols no more nodes; the nodes it enrolled stay enrolled.
#[utoipa::path(
    delete,
    path = "/account/enrol-tokens/{id}",
    operation_id = "revoke_enrol_token",
    tag = "fleet",
    params(("id" = String, Path, description = "The token's `id`.")),
    responses(
        (status = 204, description = "Revoked."),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key (managing enrolment tokens takes a signed-in browser session), or a request from another site (CSRF).", body = ErrorBody),
        (status = 404, description = "No enrolment token of the account has this id.", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn revoke_token(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.enrolments.revoke_token(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The nodes enrolled to the account.
#[derive(Serialize, utoipa::ToSchema)]
struct MyNodeList {
    nodes: Vec<MyNode>,
}

/// The nodes enrolled to the account.
///
/// Each with what the registry knows of it. An API key needs the
/// `fleet:read` scope.
#[utoipa::path(
    get,
    path = "/account/nodes",
    operation_id = "list_my_nodes",
    tag = "fleet",
    responses(
        (status = 200, description = "The account's nodes.", body = MyNodeList),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key without the `fleet:read` scope.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn my_nodes(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
) -> Result<Json<MyNodeList>, ApiError> {
    require(&caller, Scope::FleetRead)?;
    Ok(Json(MyNodeList {
        nodes: state.my_nodes(&caller).await?,
    }))
}

/// Releases one of the account's nodes.
///
/// The node is unclaimed again, free to be enrolled by anyone's token. An
/// API key needs the `fleet:write` scope.
#[utoipa::path(
    delete,
    path = "/account/nodes/{peer_id}",
    operation_id = "release_node",
    tag = "fleet",
    params(("peer_id" = String, Path, description = "The node's libp2p peer id.")),
    responses(
        (status = 204, description = "Released."),
        (status = 400, description = "Not a peer id.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key without the `fleet:write` scope, or a request from another site (CSRF).", body = ErrorBody),
        (status = 404, description = "No node of the account has this peer id.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn release(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    Path(peer_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require(&caller, Scope::FleetWrite)?;
    let id: NodeId = parse_id(&peer_id)?;
    state.enrolments.release(&caller, id).await?;
    state.registry.claims_changed();
    Ok(StatusCode::NO_CONTENT)
}

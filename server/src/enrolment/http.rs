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
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;
use wire::accounts::{CreatedEnrolToken, EnrolTokenView, Enrolled, MyNode, NewEnrolToken, Scope};
use wire::{NodeId, SignedEnvelope, UnixMillis};

use crate::accounts::{require, Session, SignedIn};
use crate::error::{parse_id, ApiError, ApiJson};
use crate::registry::MAX_SIGNED_BODY;
use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/enrolments", post(enrol))
        .route("/account/enrol-tokens", get(tokens).post(create_token))
        .route("/account/enrol-tokens/{id}", delete(revoke_token))
        .route("/account/nodes", get(my_nodes))
        .route("/account/nodes/{peer_id}", delete(release))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_SIGNED_BODY))
}

async fn enrol(
    State(state): State<AppState>,
    ApiJson(envelope): ApiJson<SignedEnvelope>,
) -> Result<Json<Enrolled>, ApiError> {
    let (mut enrolled, account) = state.enrolments.enrol(&envelope, UnixMillis::now()).await?;
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

#[derive(Serialize)]
struct TokenList {
    tokens: Vec<EnrolTokenView>,
}

async fn tokens(
    State(state): State<AppState>,
    Session(caller): Session,
) -> Result<Json<TokenList>, ApiError> {
    Ok(Json(TokenList {
        tokens: state.enrolments.tokens(&caller).await?,
    }))
}

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

async fn revoke_token(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.enrolments.revoke_token(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct NodeList {
    nodes: Vec<MyNode>,
}

async fn my_nodes(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
) -> Result<Json<NodeList>, ApiError> {
    require(&caller, Scope::FleetRead)?;
    Ok(Json(NodeList {
        nodes: state.my_nodes(&caller).await?,
    }))
}

async fn release(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    Path(peer_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require(&caller, Scope::FleetWrite)?;
    let id: NodeId = parse_id(&peer_id)?;
    state.enrolments.release(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

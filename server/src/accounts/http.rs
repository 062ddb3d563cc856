//! The account routes, under `/api/v1`:
//!
//! | route | who may call |
//! |---|---|
//! | `POST /auth/passkey/register/start`, `…/finish` | anyone (sign-up); signed in: adds a passkey |
//! | `POST /auth/passkey/sign-in/start`, `…/finish` | anyone |
//! | `POST /auth/lnurl` | anyone (login); `?link=true`: a signed-in session |
//! | `GET /auth/lnurl/callback` | the wallet (LUD-04) |
//! | `GET /auth/lnurl/{k1}?poll=` | the page holding the poll token |
//! | `POST /auth/sign-out` | anyone (ends the cookie's session) |
//! | `GET /account`, `GET /account/settings` | signed in |
//! | `PATCH /account` (public name, default max price per job) | signed-in session |
//! | `GET`/`POST /account/keys`, `DELETE /account/keys/{id}` | signed-in session |
//! | `PUT /account/keys/{id}/caps` (per-day and total spending caps) | signed-in session |
//! | `DELETE /account/sessions[/{id}]` | signed-in session |
//! | `DELETE /account/passkeys/{id}`, `/account/lightning-keys/{id}` | signed-in session |
//!
//! Managing the account takes a browser session: an API key cannot make
//! more keys or end sessions.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use wire::accounts::{
    Account, AccountSettings, ApiKeyView, CreatedApiKey, KeyCaps, LnurlLogin, LnurlStatus,
    NewApiKey, PasskeyCeremony, PasskeyFinish, PasskeyStart,
};
use wire::{Caller, MilliSats};

use super::auth::{clear_cookie, cookie, Authn, Refusal, SESSION_COOKIE};
use super::lnurl::{Callback, Collected, LONG_POLL};
use super::{AuthError, NewSession};
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::AppState;

/// Every account route's body limit: WebAuthn answers are a few KiB.
const MAX_BODY: usize = 64 * 1024;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/passkey/register/start", post(register_start))
        .route("/auth/passkey/register/finish", post(register_finish))
        .route("/auth/passkey/sign-in/start", post(sign_in_start))
        .route("/auth/passkey/sign-in/finish", post(sign_in_finish))
        .route("/auth/lnurl", post(lnurl_start))
        .route("/auth/lnurl/callback", get(lnurl_callback))
        .route("/auth/lnurl/{k1}", get(lnurl_wait))
        .route("/auth/sign-out", post(sign_out))
        .route("/account", get(me).patch(update))
        .route("/account/settings", get(settings))
        .route("/account/keys", get(keys).post(create_key))
        .route("/account/keys/{id}", delete(revoke_key))
        .route("/account/keys/{id}/caps", put(set_key_caps))
        .route("/account/sessions", delete(sign_out_everywhere))
        .route("/account/sessions/{id}", delete(end_session))
        .route("/account/passkeys/{id}", delete(remove_passkey))
        .route("/account/lightning-keys/{id}", delete(remove_ln_key))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

/// The client's address, for per-IP limits.
pub(crate) struct ClientIp(pub(crate) IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
        ))
    }
}

/// The caller if signed in in a browser session; nobody if not, if the
/// session is gone, or for an API key (which may sign up, not add ways in
/// to its account). A cross-site cookie request is refused.
pub(crate) struct MaybeSession(pub(crate) Option<Caller>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<Authn>() {
            Some(Authn::Caller(c)) if c.session_id().is_some() => Ok(MaybeSession(Some(c.clone()))),
            Some(Authn::Refused(Refusal::Csrf)) => Err(AuthError::Csrf.into()),
            Some(Authn::Refused(Refusal::InvalidApiKey)) => Err(AuthError::InvalidApiKey.into()),
            _ => Ok(MaybeSession(None)),
        }
    }
}

/// A signed-in browser session: what managing the account takes.
pub(crate) struct Session(pub(crate) Caller);

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let super::SignedIn(caller) = super::SignedIn::from_request_parts(parts, state).await?;
        if caller.session_id().is_none() {
            return Err(ApiError::Forbidden(
                "managing the account takes a signed-in browser session, not an API key".into(),
            ));
        }
        Ok(Session(caller))
    }
}

fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// `body` with the new session's cookie.
fn with_session<T: serde::Serialize>(session: &NewSession, body: T) -> Response {
    ([(header::SET_COOKIE, session.cookie.clone())], Json(body)).into_response()
}

async fn register_start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    MaybeSession(caller): MaybeSession,
    ApiJson(start): ApiJson<PasskeyStart>,
) -> Result<Json<PasskeyCeremony>, ApiError> {
    state.accounts.limits().sign_in(ip)?;
    Ok(Json(
        state
            .accounts
            .passkey_register_start(caller.as_ref(), start)
            .await?,
    ))
}

async fn register_finish(
    State(state): State<AppState>,
    MaybeSession(caller): MaybeSession,
    headers: HeaderMap,
    ApiJson(finish): ApiJson<PasskeyFinish>,
) -> Result<Response, ApiError> {
    let (account, session) = state
        .accounts
        .passkey_register_finish(caller.as_ref(), finish, user_agent(&headers))
        .await?;
    Ok(match session {
        Some(s) => with_session(&s, account),
        None => Json(account).into_response(),
    })
}

async fn sign_in_start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
) -> Result<Json<PasskeyCeremony>, ApiError> {
    state.accounts.limits().sign_in(ip)?;
    Ok(Json(state.accounts.passkey_sign_in_start().await?))
}

async fn sign_in_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(finish): ApiJson<PasskeyFinish>,
) -> Result<Response, ApiError> {
    let session = state
        .accounts
        .passkey_sign_in_finish(finish, user_agent(&headers))
        .await?;
    Ok(with_session(&session, session.account.clone()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LnurlStartQuery {
    #[serde(default)]
    link: bool,
}

async fn lnurl_start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    MaybeSession(caller): MaybeSession,
    ApiQuery(q): ApiQuery<LnurlStartQuery>,
) -> Result<Json<LnurlLogin>, ApiError> {
    state.accounts.limits().sign_in(ip)?;
    let link = match (q.link, caller) {
        (false, _) => None,
        (true, Some(c)) => Some(c),
        (true, _) => return Err(AuthError::NotSignedIn.into()),
    };
    Ok(Json(state.accounts.lnurl_start(link.as_ref()).await?))
}

/// LUD-04's answer shape, `{"status": "OK"}` or `{"status": "ERROR",
/// "reason": …}`, with our error object alongside for everyone else.
async fn lnurl_callback(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let outcome = match query {
        Ok(axum::extract::Query(cb)) => state
            .accounts
            .lnurl_callback(cb)
            .await
            .map_err(ApiError::from),
        Err(rejection) => Err(ApiError::from(rejection)),
    };
    match outcome {
        Ok(()) => Json(serde_json::json!({ "status": "OK" })).into_response(),
        Err(e) => {
            let body = e.body();
            let json = serde_json::json!({
                "status": "ERROR",
                "reason": body.error.message,
                "error": body.error,
            });
            (e.status(), Json(json)).into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollQuery {
    poll: String,
    /// Seconds to wait for the wallet [default and most: 20].
    #[serde(default)]
    wait: Option<u64>,
}

async fn lnurl_wait(
    State(state): State<AppState>,
    Path(k1): Path<String>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<PollQuery>,
) -> Result<Response, ApiError> {
    let wait = q
        .wait
        .map(std::time::Duration::from_secs)
        .unwrap_or(LONG_POLL)
        .min(LONG_POLL);
    let collected = state
        .accounts
        .lnurl_collect(&k1, &q.poll, wait, user_agent(&headers))
        .await?;
    let status: LnurlStatus = collected.state();
    Ok(match &collected {
        Collected::SignedIn(session) => with_session(session, status),
        _ => Json(status).into_response(),
    })
}

async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        state.accounts.sign_out(token).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            clear_cookie(state.accounts.site().secure()),
        )],
    )
        .into_response())
}

async fn me(
    State(state): State<AppState>,
    super::SignedIn(caller): super::SignedIn,
) -> Result<Json<Account>, ApiError> {
    Ok(Json(state.accounts.account(&caller.account).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountPatch {
    /// Shown next to the account's nodes on `/nodes`; `null` hides it.
    #[serde(default, deserialize_with = "present")]
    public_name: Option<Option<String>>,
    /// The most a job may cost when it names no maximum; `null`: none.
    #[serde(default, deserialize_with = "present")]
    default_max_price_msat: Option<Option<MilliSats>>,
}

/// A field that is present (`Some`, its value possibly `null`), as
/// opposed to absent (`None`, left as it is).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

async fn set_key_caps(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(id): Path<String>,
    ApiJson(caps): ApiJson<KeyCaps>,
) -> Result<StatusCode, ApiError> {
    state.accounts.set_key_caps(&caller, &id, caps).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update(
    State(state): State<AppState>,
    Session(caller): Session,
    ApiJson(patch): ApiJson<AccountPatch>,
) -> Result<Json<Account>, ApiError> {
    let mut account = None;
    if let Some(name) = patch.public_name {
        account = Some(state.accounts.set_public_name(&caller, name).await?);
    }
    if let Some(max) = patch.default_max_price_msat {
        account = Some(state.accounts.set_default_max_price(&caller, max).await?);
    }
    match account {
        Some(a) => Ok(Json(a)),
        None => Ok(Json(state.accounts.account(&caller.account).await?)),
    }
}

async fn settings(
    State(state): State<AppState>,
    Session(caller): Session,
) -> Result<Json<AccountSettings>, ApiError> {
    Ok(Json(state.settings(&caller).await?))
}

#[derive(Debug, serde::Serialize)]
struct KeyList {
    keys: Vec<ApiKeyView>,
}

async fn keys(
    State(state): State<AppState>,
    Session(caller): Session,
) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        keys: state.api_keys(&caller).await?,
    }))
}

async fn create_key(
    State(state): State<AppState>,
    Session(caller): Session,
    ApiJson(new): ApiJson<NewApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.accounts.create_key(&caller, new).await?),
    ))
}

async fn revoke_key(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.revoke_key(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn sign_out_everywhere(
    State(state): State<AppState>,
    Session(caller): Session,
) -> Result<Response, ApiError> {
    state.accounts.sign_out_everywhere(&caller).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            clear_cookie(state.accounts.site().secure()),
        )],
    )
        .into_response())
}

async fn end_session(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.end_session(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_passkey(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.remove_passkey(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_ln_key(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.remove_ln_key(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

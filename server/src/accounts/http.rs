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
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::accounts::{
    Account, AccountSettings, ApiKeyView, CreatedApiKey, KeyCaps, LnurlLogin, LnurlStatus,
    NewApiKey, PasskeyCeremony, PasskeyFinish, PasskeyStart,
};
use wire::api::{ErrorBody, ErrorDetail};
use wire::{Caller, MilliSats};

use super::auth::{clear_cookie, cookie, Authn, Refusal, SESSION_COOKIE};
use super::lnurl::{Callback, Collected, LONG_POLL};
use super::{AuthError, NewSession};
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::AppState;

/// Every account route's body limit: WebAuthn answers are a few KiB.
const MAX_BODY: usize = 64 * 1024;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_start))
        .routes(routes!(register_finish))
        .routes(routes!(sign_in_start))
        .routes(routes!(sign_in_finish))
        .routes(routes!(lnurl_start))
        .routes(routes!(lnurl_callback))
        .routes(routes!(lnurl_wait))
        .routes(routes!(sign_out))
        .routes(routes!(me, update))
        .routes(routes!(settings))
        .routes(routes!(keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(set_key_caps))
        .routes(routes!(sign_out_everywhere))
        .routes(routes!(end_session))
        .routes(routes!(remove_passkey))
        .routes(routes!(remove_ln_key))
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

/// Starts a passkey registration (a sign-up, or another passkey).
///
/// Signed out, a sign-up: a new account named `display_name`. In a
/// signed-in browser session, another passkey (named `name`) for that
/// account. Answers the options for the browser's
/// `navigator.credentials.create`.
#[utoipa::path(
    post,
    path = "/auth/passkey/register/start",
    operation_id = "passkey_register_start",
    tag = "accounts",
    request_body = PasskeyStart,
    responses(
        (status = 200, description = "The ceremony: its id, and the WebAuthn creation options.", body = PasskeyCeremony),
        (status = 400, description = "A name that is empty, too long or has control characters.", body = ErrorBody),
        (status = 401, description = "An unknown or revoked API key.", body = ErrorBody),
        (status = 403, description = "A signed-in request from another site (CSRF).", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a passkey start.", body = ErrorBody),
        (status = 429, description = "Too many sign-ins and sign-ups from this address.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
    security((), ("session" = [])),
)]
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

/// Finishes a passkey registration.
///
/// A sign-up makes the account and its passkey and signs it in (the session
/// cookie is set); in a signed-in session, the passkey is added to the
/// account that started the ceremony.
#[utoipa::path(
    post,
    path = "/auth/passkey/register/finish",
    operation_id = "passkey_register_finish",
    tag = "accounts",
    request_body = PasskeyFinish,
    responses(
        (status = 200, description = "The account; after a sign-up, signed in.", body = Account,
            headers(("Set-Cookie" = String, description = "After a sign-up: the new session's cookie (HttpOnly)."))),
        (status = 400, description = "A ceremony that is unknown, used, expired or another account's; a malformed or refused passkey response; a passkey registered already.", body = ErrorBody),
        (status = 401, description = "An unknown or revoked API key.", body = ErrorBody),
        (status = 403, description = "A signed-in request from another site (CSRF).", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a passkey response.", body = ErrorBody),
    ),
    security((), ("session" = [])),
)]
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

/// Starts a passkey sign-in.
///
/// With any passkey of this site (a discoverable credential: no user name).
/// Answers the options for the browser's `navigator.credentials.get`.
#[utoipa::path(
    post,
    path = "/auth/passkey/sign-in/start",
    operation_id = "passkey_sign_in_start",
    tag = "accounts",
    responses(
        (status = 200, description = "The ceremony: its id, and the WebAuthn request options.", body = PasskeyCeremony),
        (status = 429, description = "Too many sign-ins and sign-ups from this address.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
    security(()),
)]
async fn sign_in_start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
) -> Result<Json<PasskeyCeremony>, ApiError> {
    state.accounts.limits().sign_in(ip)?;
    Ok(Json(state.accounts.passkey_sign_in_start().await?))
}

/// Finishes a passkey sign-in.
///
/// The passkey must be registered here and sign the ceremony's challenge.
/// Sets the session cookie.
#[utoipa::path(
    post,
    path = "/auth/passkey/sign-in/finish",
    operation_id = "passkey_sign_in_finish",
    tag = "accounts",
    request_body = PasskeyFinish,
    responses(
        (status = 200, description = "Signed in: the account.", body = Account,
            headers(("Set-Cookie" = String, description = "The new session's cookie (HttpOnly)."))),
        (status = 400, description = "A ceremony that is unknown, used or expired, or a malformed or refused passkey response.", body = ErrorBody),
        (status = 401, description = "A passkey that is not registered here.", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a passkey response.", body = ErrorBody),
    ),
    security(()),
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LnurlStartQuery {
    /// Link the wallet's key to the signed-in account instead of signing in.
    #[serde(default)]
    link: bool,
}

/// Starts a Lightning login (LNURL-auth).
///
/// Answers the `lnurl` to show as a QR code for a wallet, and the poll token
/// the page waits with. With `?link=true`, in a signed-in browser session,
/// the wallet's key is linked to the account instead.
#[utoipa::path(
    post,
    path = "/auth/lnurl",
    operation_id = "lnurl_start",
    tag = "accounts",
    params(LnurlStartQuery),
    responses(
        (status = 200, description = "The login: its `lnurl`, QR code, poll token and expiry.", body = LnurlLogin),
        (status = 400, description = "A query that is not understood.", body = ErrorBody),
        (status = 401, description = "`link=true` without a signed-in browser session, or an unknown or revoked API key.", body = ErrorBody),
        (status = 403, description = "A signed-in request from another site (CSRF).", body = ErrorBody),
        (status = 429, description = "Too many sign-ins and sign-ups from this address.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
    security((), ("session" = [])),
)]
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

/// The wallet's LNURL-auth callback (LUD-04).
///
/// `k1` signed by the wallet's linking key for this site: `tag=login`,
/// `k1`, `sig` (DER, hex), `key` (compressed secp256k1, hex), and `action`
/// (`login` or `link`, as the login was started).
///
/// LUD-04's answer shape, `{"status": "OK"}` or `{"status": "ERROR",
/// "reason": …}`, with our error object alongside for everyone else.
#[utoipa::path(
    get,
    path = "/auth/lnurl/callback",
    operation_id = "lnurl_callback",
    tag = "accounts",
    params(Callback),
    responses(
        (status = 200, description = "Signed: the page waiting on the login collects its session (or the key is linked). `{\"status\": \"OK\"}`.", body = LnurlCallbackAnswer),
        (status = 400, description = "Not a login; a `k1` that is unknown, used or expired; a malformed key or signature, or one that does not verify; an `action` other than the login's; a query that is not understood. LUD-04's `{\"status\": \"ERROR\", \"reason\": …}` alongside the error object.", body = ErrorBody),
        (status = 409, description = "Linking a key that belongs to another account. LUD-04's `{\"status\": \"ERROR\", \"reason\": …}` alongside the error object.", body = ErrorBody),
    ),
    security(()),
)]
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
        Ok(()) => Json(LnurlCallbackAnswer {
            status: "OK",
            reason: None,
            error: None,
        })
        .into_response(),
        Err(e) => {
            let body = e.body();
            let answer = LnurlCallbackAnswer {
                status: "ERROR",
                reason: Some(body.error.message.clone()),
                error: Some(body.error),
            };
            (e.status(), Json(answer)).into_response()
        }
    }
}

/// LUD-04's answer to a wallet's callback: `{"status": "OK"}`, or
/// `{"status": "ERROR", "reason": …}` with the error object alongside (so
/// an `ErrorBody` too).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct LnurlCallbackAnswer {
    /// `OK` or `ERROR`.
    status: &'static str,
    /// Why not, for the wallet to show (`ERROR` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The error as the rest of the API states it (`ERROR` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PollQuery {
    /// The login's poll token, from its start.
    poll: String,
    /// Seconds to wait for the wallet [default and most: 20].
    #[serde(default)]
    wait: Option<u64>,
}

/// Waits for a Lightning login's wallet.
///
/// Answers `done` as soon as the wallet has signed (a login: with the
/// session cookie set), `pending` if it has not within `wait` seconds, or
/// `expired`. Only the holder of the poll token may wait, and a signed
/// login is collected once.
#[utoipa::path(
    get,
    path = "/auth/lnurl/{k1}",
    operation_id = "lnurl_wait",
    tag = "accounts",
    params(("k1" = String, Path, description = "The login's `id`, from its start."), PollQuery),
    responses(
        (status = 200, description = "Where the login stands; `done` for a login: signed in.", body = LnurlStatus,
            headers(("Set-Cookie" = String, description = "A login, `done`: the new session's cookie (HttpOnly)."))),
        (status = 400, description = "A login that is unknown or collected already, a poll token that is not its own, or a query that is not understood.", body = ErrorBody),
    ),
    security(()),
)]
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

/// Signs out.
///
/// Ends the session of the cookie sent, if any, and clears the cookie.
#[utoipa::path(
    post,
    path = "/auth/sign-out",
    operation_id = "sign_out",
    tag = "accounts",
    responses(
        (status = 204, description = "Signed out.",
            headers(("Set-Cookie" = String, description = "Clears the session cookie."))),
    ),
    security((), ("session" = [])),
)]
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

/// The signed-in account.
#[utoipa::path(
    get,
    path = "/account",
    operation_id = "get_account",
    tag = "accounts",
    responses(
        (status = 200, description = "The account.", body = Account),
        crate::openapi::NotSignedIn,
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn me(
    State(state): State<AppState>,
    super::SignedIn(caller): super::SignedIn,
) -> Result<Json<Account>, ApiError> {
    Ok(Json(state.accounts.account(&caller.account).await?))
}

/// A change to the account: a field left out stays as it is.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AccountPatch {
    /// Shown next to the account's nodes on `/nodes`; `null` hides it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    public_name: Option<Option<String>>,
    /// The most a job may cost when it names no maximum; `null`: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<MilliSats>)]
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

/// Sets an API key's spending caps.
///
/// Per UTC day and in all; a cap left out is none.
#[utoipa::path(
    put,
    path = "/account/keys/{id}/caps",
    operation_id = "set_api_key_caps",
    tag = "accounts",
    params(("id" = String, Path, description = "The key's `id`.")),
    request_body = KeyCaps,
    responses(
        (status = 204, description = "Set."),
        (status = 400, description = "A cap over the most allowed.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::SessionOnly,
        (status = 404, description = "No live key of the account has this id.", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not caps.", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn set_key_caps(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(id): Path<String>,
    ApiJson(caps): ApiJson<KeyCaps>,
) -> Result<StatusCode, ApiError> {
    state.accounts.set_key_caps(&caller, &id, caps).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the account's public name and default max price per job.
///
/// A field left out stays as it is; `null` clears it.
#[utoipa::path(
    patch,
    path = "/account",
    operation_id = "update_account",
    tag = "accounts",
    request_body = AccountPatch,
    responses(
        (status = 200, description = "The account, changed.", body = Account),
        (status = 400, description = "A public name that is too long or has control characters, or a default max price out of range.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::SessionOnly,
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not an account change.", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn update(
    State(state): State<AppState>,
    Session(caller): Session,
    ApiJson(patch): ApiJson<AccountPatch>,
) -> Result<Json<Account>, ApiError> {
    super::Accounts::check_patch(patch.public_name.as_ref(), patch.default_max_price_msat)?;
    let mut account = None;
    if let Some(name) = patch.public_name {
        account = Some(state.accounts.set_public_name(&caller, name).await?);
        // Listings show an operator's public name by its nodes.
        state.registry.claims_changed();
    }
    if let Some(max) = patch.default_max_price_msat {
        account = Some(state.accounts.set_default_max_price(&caller, max).await?);
    }
    match account {
        Some(a) => Ok(Json(a)),
        None => Ok(Json(state.accounts.account(&caller.account).await?)),
    }
}

/// Everything the Settings page shows.
///
/// The account, its passkeys, Lightning keys, sessions, API keys (with what
/// each spent) and enrolment tokens.
#[utoipa::path(
    get,
    path = "/account/settings",
    operation_id = "get_account_settings",
    tag = "accounts",
    responses(
        (status = 200, description = "The account's settings.", body = AccountSettings),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key: this takes a signed-in browser session.", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn settings(
    State(state): State<AppState>,
    Session(caller): Session,
) -> Result<Json<AccountSettings>, ApiError> {
    Ok(Json(state.settings(&caller).await?))
}

/// The account's API keys.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct ApiKeyList {
    keys: Vec<ApiKeyView>,
}

/// The account's API keys.
///
/// Revoked ones too; each live one with what its jobs spent today (UTC) and
/// in all.
#[utoipa::path(
    get,
    path = "/account/keys",
    operation_id = "list_api_keys",
    tag = "accounts",
    responses(
        (status = 200, description = "The keys.", body = ApiKeyList),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key: this takes a signed-in browser session.", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn keys(
    State(state): State<AppState>,
    Session(caller): Session,
) -> Result<Json<ApiKeyList>, ApiError> {
    Ok(Json(ApiKeyList {
        keys: state.api_keys(&caller).await?,
    }))
}

/// Makes an API key.
///
/// With the scopes and spending caps given. Its secret is in this answer
/// and nowhere else.
#[utoipa::path(
    post,
    path = "/account/keys",
    operation_id = "create_api_key",
    tag = "accounts",
    request_body = NewApiKey,
    responses(
        (status = 201, description = "The key, and its secret.", body = CreatedApiKey),
        (status = 400, description = "A name that is empty, too long or has control characters; no scope; a cap over the most allowed; or the account holds as many live keys as it may.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::SessionOnly,
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a new key.", body = ErrorBody),
        (status = 429, description = "Too many keys and enrolment tokens made by this account.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
    security(("session" = [])),
)]
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

/// Revokes an API key: it stops working at once.
#[utoipa::path(
    delete,
    path = "/account/keys/{id}",
    operation_id = "revoke_api_key",
    tag = "accounts",
    params(("id" = String, Path, description = "The key's `id`.")),
    responses(
        (status = 204, description = "Revoked."),
        crate::openapi::NotSignedIn,
        crate::openapi::SessionOnly,
        (status = 404, description = "No live key of the account has this id.", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn revoke_key(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.revoke_key(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Signs out everywhere.
///
/// Ends every session of the account, this one too, and clears the cookie.
#[utoipa::path(
    delete,
    path = "/account/sessions",
    operation_id = "sign_out_everywhere",
    tag = "accounts",
    responses(
        (status = 204, description = "Every session ended.",
            headers(("Set-Cookie" = String, description = "Clears the session cookie."))),
        crate::openapi::NotSignedIn,
        crate::openapi::SessionOnly,
    ),
    security(("session" = [])),
)]
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

/// Ends one of the account's sessions (signs that browser out).
#[utoipa::path(
    delete,
    path = "/account/sessions/{id}",
    operation_id = "end_session",
    tag = "accounts",
    params(("id" = String, Path, description = "The session's `id`, from the settings.")),
    responses(
        (status = 204, description = "Ended."),
        crate::openapi::NotSignedIn,
        crate::openapi::SessionOnly,
        (status = 404, description = "No session of the account has this id.", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn end_session(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.end_session(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a passkey.
///
/// Unless it is the account's last way to sign in.
#[utoipa::path(
    delete,
    path = "/account/passkeys/{id}",
    operation_id = "remove_passkey",
    tag = "accounts",
    params(("id" = String, Path, description = "The passkey's `id`, from the settings.")),
    responses(
        (status = 204, description = "Removed."),
        crate::openapi::NotSignedIn,
        crate::openapi::SessionOnly,
        (status = 404, description = "No passkey of the account has this id.", body = ErrorBody),
        (status = 409, description = "It is the account's last way to sign in: add another first.", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn remove_passkey(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.remove_passkey(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a Lightning (LNURL-auth) key.
///
/// Unless it is the account's last way to sign in.
#[utoipa::path(
    delete,
    path = "/account/lightning-keys/{id}",
    operation_id = "remove_lightning_key",
    tag = "accounts",
    params(("id" = String, Path, description = "The Lightning key's `id`, from the settings.")),
    responses(
        (status = 204, description = "Removed."),
        crate::openapi::NotSignedIn,
        crate::openapi::SessionOnly,
        (status = 404, description = "No Lightning key of the account has this id.", body = ErrorBody),
        (status = 409, description = "It is the account's last way to sign in: add another first.", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn remove_ln_key(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.remove_ln_key(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

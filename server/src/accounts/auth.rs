//! Who is calling. The [`authenticate`] middleware runs on every request:
//! a bearer API key or the session cookie becomes a [`Caller`] in the
//! request's extensions (where handlers and the app's server functions
//! find it), or the reason it did not. Revocations take effect on the next
//! request, because nothing is cached.
//!
//! CSRF: a cookie-authenticated request that may change state (anything
//! but GET, HEAD, OPTIONS) must carry this site's `Origin` (or, without
//! one, `Sec-Fetch-Site: same-origin`). API keys are not sent by browsers
//! on their own, so bearer requests need no such proof.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use wire::{Caller, CallerAuth, UnixMillis};

use super::{hash_secret, Accounts, AuthError, KEY_TOUCH_EVERY, RENEW_EVERY, SESSION_TTL};
use crate::error::ApiError;
use crate::openai::OpenAiError;
use crate::AppState;

pub(crate) const SESSION_COOKIE: &str = "infernet_session";

/// The outcome of authenticating a request, in its extensions.
#[derive(Debug, Clone)]
pub(crate) enum Authn {
    Caller(Caller),
    /// Credentials came and were refused: why.
    Refused(Refusal),
    Anonymous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    InvalidApiKey,
    SessionExpired,
    Csrf,
}

impl From<Refusal> for AuthError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::InvalidApiKey => AuthError::InvalidApiKey,
            Refusal::SessionExpired => AuthError::SessionExpired,
            Refusal::Csrf => AuthError::Csrf,
        }
    }
}

/// What the response must say about the cookie.
enum CookieUpdate {
    None,
    Renew(String),
    Clear,
}

pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // The app's static files need no account.
    let path = request.uri().path();
    if path.starts_with("/pkg/") || path.starts_with("/icons/") {
        return next.run(request).await;
    }
    let (authn, cookie) = match resolve(&state.accounts, request.headers(), request.method()).await
    {
        Ok(done) => done,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Authn::Caller(caller) = &authn {
        request.extensions_mut().insert(caller.clone());
    }
    request.extensions_mut().insert(authn);
    let mut response = next.run(request).await;
    let site = state.accounts.site();
    let set = match cookie {
        CookieUpdate::None => None,
        CookieUpdate::Renew(token) => Some(session_cookie(&token, site.secure())),
        CookieUpdate::Clear => Some(clear_cookie(site.secure())),
    };
    if let Some(value) = set.and_then(|c| HeaderValue::from_str(&c).ok()) {
        // A handler that set the cookie itself (sign in, sign out) wins.
        if !response.headers().contains_key(header::SET_COOKIE) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

async fn resolve(
    accounts: &Accounts,
    headers: &HeaderMap,
    method: &Method,
) -> Result<(Authn, CookieUpdate), AuthError> {
    let now = UnixMillis::now();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        let hash = hash_secret(token);
        let key = match accounts.store.key(&hash).await? {
            Some(k) if k.revoked_at.is_none() => k,
            _ => return Ok((Authn::Refused(Refusal::InvalidApiKey), CookieUpdate::None)),
        };
        if key
            .last_used
            .is_none_or(|t| now.since(t) > KEY_TOUCH_EVERY.as_millis() as u64)
        {
            accounts.store.touch_key(&hash, now).await?;
        }
        let caller = Caller {
            account: key.account,
            auth: CallerAuth::ApiKey {
                key_id: key.key_id,
                scopes: key.scopes,
            },
        };
        return Ok((Authn::Caller(caller), CookieUpdate::None));
    }
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok((Authn::Anonymous, CookieUpdate::None));
    };
    let hash = hash_secret(token);
    let session = match accounts.store.session(&hash).await? {
        Some(s) if s.expires_at > now => s,
        _ => return Ok((Authn::Refused(Refusal::SessionExpired), CookieUpdate::Clear)),
    };
    if !is_safe(method) && !same_origin(headers, accounts.site().origin()) {
        return Ok((Authn::Refused(Refusal::Csrf), CookieUpdate::None));
    }
    let mut update = CookieUpdate::None;
    if now.since(session.last_seen) > RENEW_EVERY.as_millis() as u64 {
        accounts
            .store
            .renew_session(&hash, now, now.plus(SESSION_TTL))
            .await?;
        update = CookieUpdate::Renew(token.to_owned());
    }
    let caller = Caller {
        account: session.account,
        auth: CallerAuth::Session {
            session_id: session.session_id,
        },
    };
    Ok((Authn::Caller(caller), update))
}

/// Whether the credentials in `headers` still sign in `account` (a long
/// answer, such as an event stream, asks this now and then: a key revoked
/// or a session ended meanwhile ends it).
pub(crate) async fn still_signed_in(
    accounts: &Accounts,
    headers: &HeaderMap,
    account: &wire::AccountId,
) -> bool {
    matches!(
        resolve(accounts, headers, &Method::GET).await,
        Ok((Authn::Caller(c), _)) if &c.account == account
    )
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a browser says this request comes from the site's own pages.
pub(crate) fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    match headers.get(header::ORIGIN) {
        Some(o) => o.as_bytes() == origin.as_bytes(),
        None => headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin"),
    }
}

/// The value of cookie `name`, if the request has it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

pub(crate) fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub(crate) fn clear_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The signed-in caller of a `/api/v1` route; 401 or 403 otherwise.
pub(crate) struct SignedIn(pub(crate) Caller);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        caller_of(parts).map(SignedIn).map_err(ApiError::from)
    }
}

/// The caller of a `/v1` (OpenAI) route; OpenAI's 401 otherwise.
pub(crate) struct OaiCaller(pub(crate) Caller);

impl FromRequestParts<AppState> for OaiCaller {
    type Rejection = OpenAiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, OpenAiError> {
        caller_of(parts)
            .map(OaiCaller)
            .map_err(|e| OpenAiError::from(ApiError::from(e)))
    }
}

fn caller_of(parts: &Parts) -> Result<Caller, AuthError> {
    match parts.extensions.get::<Authn>() {
        Some(Authn::Caller(c)) => Ok(c.clone()),
        Some(Authn::Refused(r)) => Err((*r).into()),
        Some(Authn::Anonymous) | None => Err(AuthError::NotSignedIn),
    }
}

/// The caller, held to `scope`.
pub(crate) fn require(caller: &Caller, scope: wire::accounts::Scope) -> Result<(), AuthError> {
    if caller.may(scope) {
        Ok(())
    } else {
        Err(AuthError::MissingScope(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_http_only_lax_and_secure_on_https() {
        let c = session_cookie("t", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.ends_with("; Secure"));
        assert!(!session_cookie("t", false).contains("Secure"));
    }

    #[test]
    fn only_this_site_s_origin_passes_the_csrf_check() {
        let mut h = HeaderMap::new();
        assert!(!same_origin(&h, "http://localhost:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h, "http://localhost:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://localhost:8080"),
        );
        assert!(same_origin(&h, "http://localhost:8080"));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h, "http://localhost:8080"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; infernet_session=tok; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "c"), None);
    }
}

//! Validators for the dynamic answers: every successful `GET` (or `HEAD`)
//! answered in JSON or HTML that carries no `ETag` of its own gets a weak
//! one (a hash of its body), and a request whose `If-None-Match` names it is answered
//! `304 Not Modified` without the body. Browsers (and the app's service
//! worker, whose fetches go through the HTTP cache) revalidate with it, so
//! an unchanged page or list costs a few hundred bytes.
//!
//! Weak, because the same answer is sent compressed in several encodings
//! (the compression layer sits outside this one). Answers without a
//! `Cache-Control` of their own are marked `private, no-cache`: they may
//! be someone's own data, and must be revalidated on every use. Event
//! streams, files and other types pass through untouched; so does every
//! answer that is not a plain `200`.
//!
//! Pages that show live figures (the Nodes page's "seen 3 s ago", a
//! fleet's telemetry) carry the time they were read, so they change from
//! one request to the next and rarely match: that is right, they did
//! change.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The largest body hashed; the server's JSON and HTML answers are far
/// smaller (lists come a page at a time).
const MAX_TAGGED: usize = 32 * 1024 * 1024;

/// The middleware: see the module's documentation.
pub(crate) async fn conditional_get(req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return next.run(req).await;
    }
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    let res = next.run(req).await;
    if res.status() != StatusCode::OK || !taggable(res.headers()) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_TAGGED).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "an answer's body failed while it was read for its ETag");
            return ApiError::Internal("the answer could not be completed".into()).into_response();
        }
    };
    let tag = etag_of(&bytes);
    let headers = &mut parts.headers;
    headers.insert(header::ETAG, tag.clone());
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
    if if_none_match.is_some_and(|v| matches(&v, &tag)) {
        let mut not_modified = Response::new(Body::empty());
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        for name in [header::ETAG, header::CACHE_CONTROL, header::VARY] {
            if let Some(v) = parts.headers.get(&name) {
                not_modified.headers_mut().insert(name, v.clone());
            }
        }
        return not_modified;
    }
    headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// JSON or HTML, not yet tagged, not already encoded.
fn taggable(headers: &HeaderMap) -> bool {
    let document = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            let t = t.trim_start().to_ascii_lowercase();
            t.starts_with("application/json") || t.starts_with("text/html")
        });
    document
        && !headers.contains_key(header::ETAG)
        && !headers.contains_key(header::CONTENT_ENCODING)
}

/// `W/"<first 32 hex digits of the body's SHA-256>"`.
fn etag_of(body: &Bytes) -> HeaderValue {
    let digest = wire::Sha256Digest::of(body).to_string();
    HeaderValue::from_str(&format!("W/\"{}\"", &digest[..32]))
        .unwrap_or_else(|_| HeaderValue::from_static("W/\"\""))
}

/// Whether an `If-None-Match` value names `tag` (weak comparison) or is `*`.
fn matches(if_none_match: &HeaderValue, tag: &HeaderValue) -> bool {
    let Ok(list) = if_none_match.to_str() else {
        return false;
    };
    let Ok(tag) = tag.to_str() else {
        return false;
    };
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    list.split(',')
        .any(|t| t.trim() == "*" || opaque(t) == opaque(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_is_compared_weakly_and_in_lists() {
        let tag = etag_of(&Bytes::from_static(b"[1,2,3]"));
        let text = tag.to_str().unwrap().to_owned();
        assert!(text.starts_with("W/\"") && text.len() == 36, "{text}");
        let strong = text.trim_start_matches("W/").to_owned();
        for yes in [text.clone(), strong, format!("\"x\", {text}"), "*".into()] {
            assert!(
                matches(&HeaderValue::from_str(&yes).unwrap(), &tag),
                "{yes}"
            );
        }
        for no in ["\"x\"", "W/\"x\"", ""] {
            assert!(!matches(&HeaderValue::from_static(no), &tag), "{no}");
        }
        assert_ne!(tag, etag_of(&Bytes::from_static(b"[1,2,4]")));
    }

    #[test]
    fn only_json_and_html_not_yet_tagged_or_encoded() {
        let with = |pairs: &[(header::HeaderName, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(k.clone(), HeaderValue::from_static(v));
            }
            h
        };
        assert!(taggable(&with(&[(
            header::CONTENT_TYPE,
            "application/json"
        )])));
        assert!(taggable(&with(&[(
            header::CONTENT_TYPE,
            "text/html; charset=utf-8"
        )])));
        assert!(!taggable(&with(&[(
            header::CONTENT_TYPE,
            "text/event-stream"
        )])));
        assert!(!taggable(&with(&[(header::CONTENT_TYPE, "text/csv")])));
        assert!(!taggable(&with(&[])));
        assert!(!taggable(&with(&[
            (header::CONTENT_TYPE, "application/json"),
            (header::ETAG, "\"a\""),
        ])));
        assert!(!taggable(&with(&[
            (header::CONTENT_TYPE, "text/html"),
            (header::CONTENT_ENCODING, "br"),
        ])));
    }
}

//! The web app's built files (`scripts/build-site.sh`): which build is
//! served, and how long browsers may keep its files.
//!
//! A build puts its wasm, JS and CSS in a folder named after its content
//! hash (`pkg/<build id>/`) and writes the id to `build-id`: those files
//! never change, so they are sent `immutable` for a year, and a new build
//! is new URLs. Everything else (the wallet's vendored SDK, a site laid out
//! without a build id) is revalidated on every use.

use std::path::Path;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "public, no-cache";

/// The `site_pkg_dir` for the build in `site_root`: `pkg/<build id>`, or
/// `pkg` for a site without a (valid) `build-id` file.
pub(crate) fn pkg_dir(site_root: &Path) -> String {
    match std::fs::read_to_string(site_root.join("build-id")) {
        Ok(id) if is_build_id(id.trim()) => format!("pkg/{}", id.trim()),
        _ => "pkg".to_owned(),
    }
}

/// A build id: 12 lowercase hex digits (the start of the SHA-256 of the
/// build's wasm, JS and CSS).
fn is_build_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Sets `Cache-Control` on the answers for `/pkg/…` (the path as the
/// nested router sees it, without `/pkg`): immutable inside a build's
/// folder when found, revalidated otherwise.
pub(crate) async fn pkg_caching(req: Request, next: Next) -> Response {
    let in_build = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(dir, _)| is_build_id(dir));
    let mut res = next.run(req).await;
    let value = if in_build && (res.status().is_success() || res.status().as_u16() == 304) {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    res
}

/// `Cache-Control` for files revalidated on every use.
pub(crate) const fn revalidate() -> HeaderValue {
    HeaderValue::from_static(REVALIDATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_folder_comes_from_a_valid_build_id_only() {
        let dir = std::env::temp_dir().join(format!("infernet-site-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(pkg_dir(&dir), "pkg");
        std::fs::write(dir.join("build-id"), "0123456789ab\n").unwrap();
        assert_eq!(pkg_dir(&dir), "pkg/0123456789ab");
        for bad in ["../../etc", "0123456789AB", "0123456789a", ""] {
            std::fs::write(dir.join("build-id"), bad).unwrap();
            assert_eq!(pkg_dir(&dir), "pkg", "{bad:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

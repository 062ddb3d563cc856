//! The web app's files as browsers get them: the build's brotli or gzip
//! copy, whichever the browser accepts (the file as it is otherwise), with a
//! validator to revalidate against; HTML and API answers compressed when
//! asked.

use reqwest::StatusCode;

use crate::harness::{http, Server};
use crate::wallet::{browser, sign_in, Wallet};

#[test]
fn assets_go_out_precompressed_as_the_browser_accepts_and_answers_are_compressed() {
    let server = Server::start();
    let pkg = server.data_dir.join("site").join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let js = "export function hello() { return 'a market for inference'; }\n".repeat(200);
    std::fs::write(pkg.join("app.js"), &js).unwrap();
    // What the build's precompression writes beside it (contents stand in:
    // the test checks which file is chosen).
    std::fs::write(pkg.join("app.js.br"), b"brotli bytes").unwrap();
    std::fs::write(pkg.join("app.js.gz"), b"gzip bytes").unwrap();
    let get = |encoding: &str| {
        http()
            .get(server.url("/pkg/app.js"))
            .header("accept-encoding", encoding)
            .send()
            .unwrap()
    };
    let r = get("gzip, deflate, br");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-encoding"], "br");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    assert_eq!(r.headers()["cache-control"], "public, no-cache");
    let modified = r.headers()["last-modified"].clone();
    assert_eq!(r.bytes().unwrap().as_ref(), b"brotli bytes");
    let r = get("gzip");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.bytes().unwrap().as_ref(), b"gzip bytes");
    let r = get("identity");
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(r.text().unwrap(), js);
    // Revalidated, not downloaded again.
    let r = http()
        .get(server.url("/pkg/app.js"))
        .header("if-modified-since", modified)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // A missing asset is a 404.
    let r = http().get(server.url("/pkg/nope.js")).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A build's own folder (named by its content hash) never changes: kept
    // for a year without asking; what is not there is not cached.
    let build = pkg.join("0123456789ab");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(build.join("app.css"), "body { color: red }\n".repeat(50)).unwrap();
    let r = http()
        .get(server.url("/pkg/0123456789ab/app.css"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let r = http()
        .get(server.url("/pkg/0123456789ab/nope.css"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["cache-control"], "public, no-cache");
    // Not a build's folder: revalidated.
    std::fs::create_dir_all(pkg.join("other")).unwrap();
    std::fs::write(pkg.join("other").join("x.css"), "a {}").unwrap();
    let r = http().get(server.url("/pkg/other/x.css")).send().unwrap();
    assert_eq!(r.headers()["cache-control"], "public, no-cache");

    // The API and the app's HTML are compressed on the fly when asked.
    for path in ["/nodes", "/api/v1/network", "/"] {
        let r = http()
            .get(server.url(path))
            .header("accept-encoding", "gzip")
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        if r.headers().get("content-encoding").is_some() {
            assert_eq!(r.headers()["content-encoding"], "gzip", "{path}");
            assert_eq!(&r.bytes().unwrap()[..2], &[0x1f, 0x8b], "{path}: gzip");
        } else {
            // Answers shorter than the layer's threshold go as they are.
            assert!(r.bytes().unwrap().len() < 64, "{path} not compressed");
        }
    }

    // With the build's id in the site, the pages name its folder.
    std::fs::write(
        server.data_dir.join("site").join("build-id"),
        "0123456789ab\n",
    )
    .unwrap();
    let server = server.restart();
    let html = http().get(server.url("/")).send().unwrap().text().unwrap();
    for file in ["app.css", "app.js", "app_bg.wasm"] {
        assert!(
            html.contains(&format!("/pkg/0123456789ab/{file}")),
            "{file} not named from the build's folder in {html}"
        );
    }
}

#[test]
fn pages_and_api_answers_carry_validators_and_an_unchanged_one_is_not_sent_again() {
    let server = Server::start();
    let client = browser(&server);
    sign_in(
        &server,
        &client,
        &Wallet::from_seed(b"validators test operator wallet 1"),
    );
    let tokens = server.url("/api/v1/account/enrol-tokens");
    let get = |url: &str, tag: Option<&str>| {
        let mut req = client.get(url);
        if let Some(tag) = tag {
            req = req.header("if-none-match", tag);
        }
        req.send().unwrap()
    };
    // A private list: tagged, kept only by the browser, revalidated.
    let r = get(&tokens, None);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "private, no-cache");
    let tag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert!(tag.starts_with("W/\""), "{tag}");
    let r = get(&tokens, Some(&tag));
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), tag);
    assert!(r.bytes().unwrap().is_empty());
    // Changed: sent again, under another tag.
    let made = client
        .post(&tokens)
        .json(&serde_json::json!({ "name": "rack 1", "reusable": true }))
        .send()
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let r = get(&tokens, Some(&tag));
    assert_eq!(r.status(), StatusCode::OK);
    let new_tag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_tag, tag);
    let list: serde_json::Value = r.json().unwrap();
    assert!(list.to_string().contains("rack 1"), "{list}");
    // Compressed or not, the same answer has the same (weak) tag.
    let r = client
        .get(&tokens)
        .header("accept-encoding", "gzip")
        .header("if-none-match", &new_tag)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // A tag opens nothing by itself: without the account's session, a 401.
    let stranger = http()
        .get(&tokens)
        .header("if-none-match", &new_tag)
        .send()
        .unwrap();
    assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED);

    // The app's pages: rendered whole (the same bytes for the same data),
    // so a visitor's copy is revalidated, not sent again; a signed-in
    // one's (their account in the top bar) too.
    for (who, page) in [
        (http(), "/sign-in"),
        (http(), "/run"),
        (client.clone(), "/run"),
    ] {
        let page = server.url(page);
        let r = who.get(&page).send().unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{page}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let tag = r.headers()["etag"].to_str().unwrap().to_owned();
        let first = r.text().unwrap();
        assert!(first.contains("<html"));
        let again = who.get(&page).send().unwrap().text().unwrap();
        assert_eq!(first, again, "{page}: the same page twice");
        let r = who.get(&page).header("if-none-match", &tag).send().unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{page}");
        assert!(r.bytes().unwrap().is_empty());
    }

    // What is not a document, or not a 200, is left alone.
    let r = http().get(server.url("/api/v1/nope")).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().get("etag").is_none());
}

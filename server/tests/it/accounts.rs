//! Accounts over real HTTP: Lightning login with a real wallet's keys,
//! sessions and API keys (revoked on the very next request, kept across a
//! restart), CSRF, rate limits, and jobs private to their owner.

use reqwest::StatusCode;
use secp256k1::{PublicKey, SecretKey};
use serde_json::{json, Value};
use wire::jobs::JobRecord;

use crate::harness::{client_with_key, http, Node, Server};
use crate::wallet::{
    browser, collect, create_key, decode_lnurl, sign, sign_in, start_login, Wallet,
};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn a_wallet_signs_in_with_lnurl_auth_and_forgeries_and_replays_are_refused() {
    let server = Server::start();
    let wallet = Wallet::from_seed(b"an infernet test wallet seed 001");
    let page = browser(&server);

    let login = start_login(&server, &page, false);
    let url = decode_lnurl(&login.lnurl);
    assert!(
        url.starts_with(&format!(
            "{}/api/v1/auth/lnurl/callback?tag=login&k1=",
            server.public_url
        )),
        "{url}"
    );
    assert!(login.qr_svg.contains("<svg"));
    assert_eq!(login.uri, format!("lightning:{}", login.lnurl));

    // Nothing signed yet: the page's wait ends pending.
    let (status, body) = collect(&server, &page, &login, 0);
    assert_eq!((status, body["state"].as_str()), (200, Some("pending")));

    // A signature by one key, presented as another's: refused, LUD-04 style.
    let domain = reqwest::Url::parse(&url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    let k1 = login.id.clone();
    let mine = wallet.linking_key(&domain);
    let someone = PublicKey::from_secret_key(&SecretKey::from_secret_bytes([7; 32]).unwrap());
    let forged = http()
        .get(sign(&url, &k1, &mine, Some(&someone)))
        .send()
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    let body: Value = forged.json().unwrap();
    assert_eq!(body["status"], "ERROR");
    assert_eq!(code(&body), "bad_signature");
    // A signature over another k1.
    let other_k1 = "11".repeat(32);
    let wrong = sign(&url, &other_k1, &mine, None);
    let r = http().get(wrong).send().unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The wallet's real signature signs the page in, without a reload.
    let callback = wallet.signed_callback(&login.lnurl);
    let r = http().get(&callback).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().unwrap(), json!({ "status": "OK" }));
    // Someone who knows k1 (it is in the QR code) but not the poll token
    // gets nothing.
    let thief = browser(&server);
    let stolen = thief
        .get(server.url(&format!(
            "/api/v1/auth/lnurl/{}?poll=guess&wait=0",
            login.id
        )))
        .send()
        .unwrap();
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    let (status, body) = collect(&server, &page, &login, 5);
    assert_eq!((status, body["state"].as_str()), (200, Some("done")));
    let me: Value = page
        .get(server.url("/api/v1/account"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let account = me["id"].as_str().unwrap().to_owned();
    assert!(account.starts_with("acct_"));

    // The same signed callback again: k1 is spent.
    let replay = http().get(&callback).send().unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(replay.json::<Value>().unwrap()["status"], "ERROR");
    // And the page cannot collect a second session with it.
    let (status, _) = collect(&server, &page, &login, 0);
    assert_eq!(status, 400);

    // The same wallet later: the same account.
    let again = browser(&server);
    sign_in(
        &server,
        &again,
        &Wallet::from_seed(b"an infernet test wallet seed 001"),
    );
    let me2: Value = again
        .get(server.url("/api/v1/account"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me2["id"], account.as_str());
    // Another wallet: another account.
    let stranger = browser(&server);
    sign_in(
        &server,
        &stranger,
        &Wallet::from_seed(b"another wallet, another person!!"),
    );
    let me3: Value = stranger
        .get(server.url("/api/v1/account"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_ne!(me3["id"], account.as_str());
}

#[test]
fn jobs_are_private_to_their_owner_and_receipts_stay_public() {
    let server = Server::start();
    let _node = Node::start(&server, 1000);
    let job = json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["private thoughts"] } });

    // Anonymous: 401 on every route that runs or reads jobs.
    for (path, body) in [
        ("/api/v1/jobs", job.clone()),
        (
            "/v1/embeddings",
            json!({ "model": "all-minilm-l6-v2", "input": "x" }),
        ),
        (
            "/v1/chat/completions",
            json!({ "model": "tiny-gpt2", "messages": [{ "role": "user", "content": "hi" }] }),
        ),
    ] {
        let r = http().post(server.url(path)).json(&body).send().unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = r.json().unwrap();
        let want = if path.starts_with("/v1") {
            "invalid_api_key"
        } else {
            "unauthenticated"
        };
        assert_eq!(code(&body), want, "{path}: {body}");
    }
    let r = http().get(server.url("/api/v1/jobs")).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The local account runs a job.
    let r = server
        .http()
        .post(server.url("/api/v1/jobs"))
        .json(&job)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let record: JobRecord = r.json().unwrap();

    // A second account cannot list or read it: 404, exactly as a missing job.
    let other = browser(&server);
    sign_in(
        &server,
        &other,
        &Wallet::from_seed(b"the second account's wallet seed"),
    );
    let (other_key, _) = create_key(&server, &other, "other", &["jobs"]);
    let theirs = client_with_key(&other_key);
    let read = theirs
        .get(server.url(&format!("/api/v1/jobs/{}", record.id)))
        .send()
        .unwrap();
    let missing = theirs
        .get(server.url(&format!("/api/v1/jobs/{}", "0".repeat(32))))
        .send()
        .unwrap();
    assert_eq!(read.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let (a, b): (Value, Value) = (read.json().unwrap(), missing.json().unwrap());
    assert_eq!(code(&a), code(&b));
    // Through the session too.
    let r = other
        .get(server.url(&format!("/api/v1/jobs/{}", record.id)))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let listed: Value = theirs
        .get(server.url("/api/v1/jobs"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["jobs"], json!([]));
    // Its owner lists and reads it.
    let listed: Value = server
        .http()
        .get(server.url("/api/v1/jobs"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["jobs"][0]["id"], record.id.to_string());

    // Anyone checks its receipt: terms and signature, no input or output.
    let r = http()
        .get(server.url(&format!("/api/v1/receipts/{}", record.id)))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let check: wire::accounts::ReceiptCheck = r.json().unwrap();
    let receipt = check.receipt.expect("a succeeded job has a receipt");
    assert_eq!(receipt, record.receipt.clone().unwrap());
    let opened: wire::jobs::Receipt = receipt.open().unwrap();
    assert_eq!(opened.price_msat, check.price_msat);
    let raw = http()
        .get(server.url(&format!("/api/v1/receipts/{}", record.id)))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!raw.contains("private thoughts") && !raw.contains("\"input\""));

    // A key without the `jobs` scope may not run jobs.
    let (fleet_key, _) = create_key(&server, &other, "fleet only", &["fleet:read"]);
    let r = client_with_key(&fleet_key)
        .post(server.url("/api/v1/jobs"))
        .json(&job)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(code(&r.json().unwrap()), "insufficient_scope");
}

#[test]
fn keys_and_sessions_end_on_the_next_request_and_survive_a_restart() {
    let server = Server::start();
    let page = browser(&server);
    sign_in(
        &server,
        &page,
        &Wallet::from_seed(b"keys and sessions test wallet 01"),
    );
    let (key, key_id) = create_key(&server, &page, "laptop", &["jobs", "fleet:read"]);
    assert!(key.starts_with("sk-inf-"));
    let keys: Value = page
        .get(server.url("/api/v1/account/keys"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let listed = &keys["keys"][0];
    assert_eq!(listed["prefix"], &key[..11]);
    assert!(
        !keys.to_string().contains(&key),
        "a key's secret is shown once"
    );

    // Bad key creation input is refused, and nothing is made.
    for bad in [
        json!({ "name": "", "scopes": ["jobs"] }),
        json!({ "name": "x", "scopes": [] }),
        json!({ "name": "x", "scopes": ["root"] }),
    ] {
        let r = page
            .post(server.url("/api/v1/account/keys"))
            .json(&bad)
            .send()
            .unwrap();
        assert!(r.status().is_client_error(), "{bad}");
    }
    let keys: Value = page
        .get(server.url("/api/v1/account/keys"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);

    // A cookie request that changes state must come from the site itself.
    let cookie = new_session(&server, b"keys and sessions test wallet 01");
    let cross_site = http()
        .post(server.url("/api/v1/account/keys"))
        .header("cookie", format!("infernet_session={cookie}"))
        .header("origin", "http://evil.example")
        .json(&json!({ "name": "evil", "scopes": ["jobs"] }))
        .send()
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(code(&cross_site.json().unwrap()), "csrf");
    let no_proof = http()
        .post(server.url("/api/v1/account/keys"))
        .header("cookie", format!("infernet_session={cookie}"))
        .json(&json!({ "name": "evil", "scopes": ["jobs"] }))
        .send()
        .unwrap();
    assert_eq!(no_proof.status(), StatusCode::FORBIDDEN);
    // An API key cannot make more keys.
    let r = client_with_key(&key)
        .post(server.url("/api/v1/account/keys"))
        .json(&json!({ "name": "child", "scopes": ["jobs"] }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Both survive a restart: they live in the database.
    let server = server.restart();
    let me = client_with_key(&key)
        .get(server.url("/api/v1/account"))
        .send()
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let r = http()
        .get(server.url("/api/v1/account/settings"))
        .header("cookie", format!("infernet_session={cookie}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let settings: Value = r.json().unwrap();
    assert_eq!(settings["lightning_keys"].as_array().unwrap().len(), 1);
    assert!(settings["api_keys"][0]["last_used"].is_u64(), "{settings}");

    // Revoked: refused on the very next request.
    let page = browser(&server);
    let r = page
        .delete(server.url(&format!("/api/v1/account/keys/{key_id}")))
        .header("cookie", format!("infernet_session={cookie}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = client_with_key(&key)
        .get(server.url("/api/v1/account"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(&r.json().unwrap()), "invalid_api_key");
    let r = client_with_key(&key)
        .post(server.url("/v1/embeddings"))
        .json(&json!({ "model": "all-minilm-l6-v2", "input": "x" }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["error"]["type"], "authentication_error");

    // Sign out everywhere: the session is gone on the next request.
    let r = page
        .delete(server.url("/api/v1/account/sessions"))
        .header("cookie", format!("infernet_session={cookie}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = http()
        .get(server.url("/api/v1/account"))
        .header("cookie", format!("infernet_session={cookie}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(&r.json().unwrap()), "session_expired");
}

/// Signs `seed`'s wallet in once more and returns the new session's token,
/// read from the cookie the server sets.
fn new_session(server: &Server, seed: &[u8]) -> String {
    let login = start_login(server, &http(), false);
    let wallet = Wallet::from_seed(seed);
    let r = http()
        .get(wallet.signed_callback(&login.lnurl))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http()
        .get(server.url(&format!(
            "/api/v1/auth/lnurl/{}?poll={}&wait=5",
            login.id, login.poll_token
        )))
        .send()
        .unwrap();
    let set = r
        .headers()
        .get("set-cookie")
        .expect("signing in sets the session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    set.trim_start_matches("infernet_session=")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn sign_in_attempts_from_one_address_are_rate_limited_with_retry_after() {
    let server = Server::start();
    let limited = (0..40)
        .map(|_| {
            http()
                .post(server.url("/api/v1/auth/lnurl"))
                .send()
                .unwrap()
        })
        .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .expect("a burst of sign-ins is cut off");
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(code(&limited.json().unwrap()), "rate_limited");
    // Bad passkey input gets a clear 4xx, not a crash.
    let r = http()
        .post(server.url("/api/v1/auth/passkey/sign-in/finish"))
        .json(&json!({ "challenge_id": "chal_nope", "credential": { "id": "x" } }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

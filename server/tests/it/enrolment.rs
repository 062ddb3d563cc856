//! Nodes enrolled to their operators: real node processes with `--enroll`,
//! and signed enrolments made by the test for the cases a node would not
//! send (another key's signature, another server, a spent token).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::fixtures::{keypair, node_id};
use wire::accounts::Enrolment;
use wire::{SignedEnvelope, UnixMillis};

use crate::harness::{http, temp_dir, Node, Server};
use crate::wallet::{browser, sign_in, Wallet};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn create_token(
    server: &Server,
    page: &reqwest::blocking::Client,
    body: Value,
) -> (String, String) {
    let r = page
        .post(server.url("/api/v1/account/enrol-tokens"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().unwrap());
    let created: Value = r.json().unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("enr-inf-"));
    (
        created["secret"].as_str().unwrap().to_owned(),
        created["token"]["id"].as_str().unwrap().to_owned(),
    )
}

fn my_nodes(server: &Server, page: &reqwest::blocking::Client) -> Vec<String> {
    let list: Value = page
        .get(server.url("/api/v1/account/nodes"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut ids: Vec<String> = list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// An enrolment of node `seed`, signed by key `signer`.
fn enrolment(server: &Server, seed: u8, signer: u8, token: &str) -> SignedEnvelope {
    let e = Enrolment {
        node_id: node_id(seed),
        server: server.peer_id(),
        token: token.to_owned(),
        timestamp: UnixMillis::now(),
    };
    SignedEnvelope::seal(&keypair(signer), &e).unwrap()
}

fn post_enrolment(server: &Server, envelope: &SignedEnvelope) -> (StatusCode, Value) {
    let r = http()
        .post(server.url("/api/v1/enrolments"))
        .json(envelope)
        .send()
        .unwrap();
    (r.status(), r.json().unwrap_or(Value::Null))
}

#[test]
fn a_farm_token_enrols_real_nodes_which_move_only_once_released() {
    let server = Server::start();
    let farm = browser(&server);
    sign_in(
        &server,
        &farm,
        &Wallet::from_seed(b"the farm operator's wallet seed!"),
    );
    let (token, token_id) = create_token(
        &server,
        &farm,
        json!({ "name": "rack 1", "reusable": true }),
    );

    // Two real nodes enrolled with one reusable token.
    let a = Node::start_with(
        &server,
        1000,
        &temp_dir("node").join("node.key"),
        &["--enroll", &token],
    );
    let b = Node::start_with(
        &server,
        1000,
        &temp_dir("node").join("node.key"),
        &["--enroll", &token],
    );
    for n in [&a, &b] {
        assert!(n.proc.ready["enrolled"]["account"]
            .as_str()
            .unwrap()
            .starts_with("acct_"));
        assert_eq!(
            n.proc.ready["enrolled"]["server"].as_str().unwrap(),
            server.peer_id().to_string(),
            "the node pins the server it enrolled with"
        );
    }
    let pin: Value = serde_json::from_str(
        &std::fs::read_to_string(a.key_file.with_file_name("server.pin")).unwrap(),
    )
    .unwrap();
    assert_eq!(pin["server"], server.peer_id().to_string());
    let mut want = vec![a.peer_id.clone(), b.peer_id.clone()];
    want.sort();
    assert_eq!(my_nodes(&server, &farm), want);
    // /nodes says claimed, not by whom (the operator shows no public name).
    let one: Value = http()
        .get(server.url(&format!("/nodes/{}", a.peer_id)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(one["claimed"], true);
    assert!(one.get("operator").is_none(), "{one}");
    // Once the operator shows a public name, /nodes shows it.
    let r = farm
        .patch(server.url("/api/v1/account"))
        .json(&json!({ "public_name": "Rack Farm" }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let list: Value = http()
        .get(server.url("/nodes"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let shown: Vec<&Value> = list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["operator"])
        .collect();
    assert_eq!(shown, [&json!("Rack Farm"), &json!("Rack Farm")]);

    // Another operator cannot take node a while it is claimed: the node
    // stops with a clear message and an exit code of its own.
    let other = browser(&server);
    sign_in(
        &server,
        &other,
        &Wallet::from_seed(b"a different operator wallet seed"),
    );
    let (single, _) = create_token(&server, &other, json!({ "name": "one node" }));
    let key_a = a.key_file.clone();
    let peer_a = a.peer_id.clone();
    drop(a);
    let (exit, log) = Node::run_to_exit(&server, &key_a, &["--enroll", &single]);
    assert_eq!(exit, Some(5), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("enrolled to another account")),
        "{log:?}"
    );
    // Released by its operator, it enrols into the other account.
    let r = farm
        .delete(server.url(&format!("/api/v1/account/nodes/{peer_a}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let moved = Node::start_with(&server, 1000, &key_a, &["--enroll", &single]);
    assert_eq!(my_nodes(&server, &other), vec![moved.peer_id.clone()]);
    assert_eq!(my_nodes(&server, &farm), vec![b.peer_id.clone()]);

    // The single-use token is spent.
    let (status, body) = post_enrolment(&server, &enrolment(&server, 40, 40, &single));
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "token_used"));

    // A revoked token: the node says so and stops.
    let r = farm
        .delete(server.url(&format!("/api/v1/account/enrol-tokens/{token_id}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (exit, log) = Node::run_to_exit(
        &server,
        &temp_dir("node").join("node.key"),
        &["--enroll", &token],
    );
    assert_eq!(exit, Some(5), "{log:?}");
    assert!(log.iter().any(|l| l.contains("revoked")), "{log:?}");
}

#[test]
fn forged_stale_and_expired_enrolments_are_refused() {
    let server = Server::start();
    let page = browser(&server);
    sign_in(
        &server,
        &page,
        &Wallet::from_seed(b"forgery test operator wallet 001"),
    );
    let (token, token_id) =
        create_token(&server, &page, json!({ "name": "farm", "reusable": true }));

    // Signed by another key than the node it names.
    let (status, body) = post_enrolment(&server, &enrolment(&server, 1, 2, &token));
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );
    // For another server.
    let e = Enrolment {
        node_id: node_id(3),
        server: node_id(99),
        token: token.clone(),
        timestamp: UnixMillis::now(),
    };
    let (status, body) = post_enrolment(&server, &SignedEnvelope::seal(&keypair(3), &e).unwrap());
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "wrong_server")
    );
    // An unknown token.
    let (status, body) = post_enrolment(&server, &enrolment(&server, 4, 4, "enr-inf-nope"));
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "unknown_token")
    );
    // Nothing above enrolled anything.
    assert!(my_nodes(&server, &page).is_empty());
    // A good one does, and sending it again changes nothing.
    let (status, _) = post_enrolment(&server, &enrolment(&server, 5, 5, &token));
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post_enrolment(&server, &enrolment(&server, 5, 5, &token));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(my_nodes(&server, &page), vec![node_id(5).to_string()]);
    // Once the token is revoked, its nodes still start with it (a revoked
    // token enrols nothing new; it releases nobody).
    let r = page
        .delete(server.url(&format!("/api/v1/account/enrol-tokens/{token_id}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, _) = post_enrolment(&server, &enrolment(&server, 5, 5, &token));
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post_enrolment(&server, &enrolment(&server, 7, 7, &token));
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "token_revoked")
    );

    // An expired token.
    let (short, _) = create_token(
        &server,
        &page,
        json!({ "name": "brief", "expires_in_secs": 1 }),
    );
    std::thread::sleep(Duration::from_millis(1200));
    let (status, body) = post_enrolment(&server, &enrolment(&server, 6, 6, &short));
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "token_expired")
    );

    // Enrolments survive a restart.
    let server = server.restart();
    let page = browser(&server);
    sign_in(
        &server,
        &page,
        &Wallet::from_seed(b"forgery test operator wallet 001"),
    );
    assert_eq!(my_nodes(&server, &page), vec![node_id(5).to_string()]);
}

//! Registration, heartbeats and the public `GET /nodes`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::fixtures;
use wire::registry::{Heartbeat, NodeList, Registration, Task};
use wire::{NodeId, SignedEnvelope, UnixMillis};

use crate::harness::{eventually, http, Node, Server};

fn registration(key: &p2p::Keypair, heartbeat_ms: u64) -> Registration {
    Registration {
        node_id: NodeId::from(key.public().to_peer_id()),
        timestamp: UnixMillis::now(),
        multiaddrs: vec!["/ip4/127.0.0.1/tcp/9".into()],
        hardware: fixtures::hardware(),
        models: vec![fixtures::offer("tiny", Task::Embedding, 10)],
        version: "test".into(),
        heartbeat_interval_ms: heartbeat_ms,
        payout_address: None,
    }
}

fn post(server: &Server, path: &str, body: &impl serde::Serialize) -> (StatusCode, Value) {
    let r = http().post(server.url(path)).json(body).send().unwrap();
    let status = r.status();
    (status, r.json().unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}

fn list(server: &Server, query: &str) -> NodeList {
    http()
        .get(server.url(&format!("/nodes{query}")))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn node_registers_and_appears_in_the_public_list_with_its_hardware_and_model() {
    let server = Server::start();
    let node = Node::start(&server, 1000);

    let all = list(&server, "");
    assert_eq!(all.nodes.len(), 1);
    let n = &all.nodes[0];
    assert_eq!(n.peer_id.to_string(), node.peer_id);
    assert_eq!(n.status, wire::registry::NodeStatus::Online);
    assert!(n.hardware.cpu_cores >= 1 && n.hardware.ram_mb > 0);
    assert!(!n.multiaddrs.is_empty());
    let m = &n.models[0];
    assert_eq!(m.name, "all-minilm-l6-v2");
    assert_eq!(m.task, Task::Embedding);
    assert_eq!(m.embedding_dim, Some(384));

    let has_gpu = !n.hardware.gpus.is_empty();
    assert_eq!(list(&server, "?model=all-minilm-l6-v2").nodes.len(), 1);
    assert_eq!(list(&server, &format!("?model={}", m.hash)).nodes.len(), 1);
    assert_eq!(list(&server, "?model=nope").nodes.len(), 0);
    // The same node also offers the tiny GPT-2, priced per token.
    assert_eq!(list(&server, "?task=text_generation").nodes.len(), 1);
    let gen = n
        .offer("tiny-gpt2")
        .expect("the generation model is listed");
    assert_eq!(gen.task, Task::TextGeneration);
    assert!(gen.token_price.output_msat.0 > 0);
    assert_eq!(gen.context_tokens, Some(128));
    assert_eq!(list(&server, "?task=embedding&online=true").nodes.len(), 1);
    assert_eq!(list(&server, "?online=false").nodes.len(), 0);
    assert_eq!(list(&server, "?gpu=true").nodes.len(), usize::from(has_gpu));
    assert_eq!(
        list(
            &server,
            &format!("?model={}&max_price={}", m.name, m.price_msat.0)
        )
        .nodes
        .len(),
        1
    );
    assert_eq!(
        list(
            &server,
            &format!("?model={}&max_price={}", m.name, m.price_msat.0 - 1)
        )
        .nodes
        .len(),
        0
    );

    let one: Value = http()
        .get(server.url(&format!("/nodes/{}", node.peer_id)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(one["peer_id"], node.peer_id);
}

#[test]
fn node_list_is_cacheable_and_open_to_other_origins() {
    let server = Server::start();
    let r = http()
        .get(server.url("/nodes"))
        .header("Origin", "https://elsewhere.example")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let etag = r.headers()["etag"].clone();
    let again = http()
        .get(server.url("/nodes"))
        .header("If-None-Match", etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[test]
fn bad_node_queries_get_clear_errors() {
    let server = Server::start();
    for (query, status) in [
        ("/nodes?limit=0", StatusCode::BAD_REQUEST),
        ("/nodes?limit=100000", StatusCode::BAD_REQUEST),
        ("/nodes?cursor=garbage", StatusCode::BAD_REQUEST),
        ("/nodes?min_vram_gb=-1", StatusCode::BAD_REQUEST),
        ("/nodes?onlin=true", StatusCode::BAD_REQUEST),
        ("/nodes?gpu=maybe", StatusCode::BAD_REQUEST),
        ("/nodes/not-a-peer-id", StatusCode::BAD_REQUEST),
        (
            "/nodes/12D3KooWLF4yeyXjVmzKpuHRNyAvLDUns5r2FkiLrPRV3S2x5DvC",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r = http().get(server.url(query)).send().unwrap();
        assert_eq!(r.status(), status, "{query}");
        let body: Value = r.json().unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{query}: {body}"
        );
    }
}

#[test]
fn registration_and_heartbeats_must_be_signed_fresh_and_new() {
    let server = Server::start();
    let key = p2p::Keypair::generate_ed25519();
    let reg = registration(&key, 10_000);

    // Tampered: the signature no longer matches.
    let mut forged = SignedEnvelope::seal(&key, &reg).unwrap();
    forged.payload = forged.payload.replace("test cpu", "fast cpu");
    let (status, body) = post(&server, "/api/v1/nodes/register", &forged);
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );

    // Signed by a key other than the one it names.
    let impostor = SignedEnvelope::seal(&p2p::Keypair::generate_ed25519(), &reg).unwrap();
    let (status, body) = post(&server, "/api/v1/nodes/register", &impostor);
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );

    // Two minutes old.
    let mut stale = reg.clone();
    stale.timestamp = UnixMillis(UnixMillis::now().0 - 120_000);
    let (status, body) = post(
        &server,
        "/api/v1/nodes/register",
        &SignedEnvelope::seal(&key, &stale).unwrap(),
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "clock_skew")
    );

    // None of that was stored.
    assert!(list(&server, "").nodes.is_empty());

    let good = SignedEnvelope::seal(&key, &reg).unwrap();
    let (status, _) = post(&server, "/api/v1/nodes/register", &good);
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(&server, "/api/v1/nodes/register", &good);
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "replayed"));

    let beat = Heartbeat {
        node_id: reg.node_id,
        timestamp: UnixMillis(reg.timestamp.0 + 1),
        active_jobs: 2,
        accepting_jobs: true,
    };
    let beat = SignedEnvelope::seal(&key, &beat).unwrap();
    let (status, body) = post(&server, "/api/v1/nodes/heartbeat", &beat);
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(&server, "/api/v1/nodes/heartbeat", &beat);
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "replayed"));
    assert_eq!(list(&server, "").nodes[0].active_jobs, 2);

    let stranger = p2p::Keypair::generate_ed25519();
    let beat = Heartbeat {
        node_id: NodeId::from(stranger.public().to_peer_id()),
        timestamp: UnixMillis::now(),
        active_jobs: 0,
        accepting_jobs: true,
    };
    let (status, body) = post(
        &server,
        "/api/v1/nodes/heartbeat",
        &SignedEnvelope::seal(&stranger, &beat).unwrap(),
    );
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

#[test]
fn malformed_and_oversized_bodies_are_refused() {
    let server = Server::start();
    let r = http()
        .post(server.url("/api/v1/nodes/register"))
        .header("content-type", "application/json")
        .body("{\"public_key\": ")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&r.json().unwrap()), "invalid_json");

    let huge = json!({ "public_key": "x".repeat(100 * 1024), "payload": "", "signature": "" });
    let (status, body) = post(&server, "/api/v1/nodes/register", &huge);
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );

    let r = http()
        .post(server.url("/api/v1/nodes/register"))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // `application/…+json` is JSON too.
    let r = http()
        .post(server.url("/api/v1/nodes/register"))
        .header(
            "content-type",
            "application/vnd.infernet+json; charset=utf-8",
        )
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // A body is an object: serde would read the envelope's fields from an
    // array, in order, which no one means.
    let key = p2p::Keypair::generate_ed25519();
    let sealed =
        serde_json::to_value(SignedEnvelope::seal(&key, &registration(&key, 300)).unwrap())
            .unwrap();
    let fields = json!([sealed["public_key"], sealed["payload"], sealed["signature"]]);
    let (status, body) = post(&server, "/api/v1/nodes/register", &fields);
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_json"),
        "{body}"
    );
}

#[test]
fn node_that_misses_three_heartbeats_shows_offline() {
    let server = Server::start();
    let key = p2p::Keypair::generate_ed25519();
    let reg = registration(&key, 300);
    let (status, _) = post(
        &server,
        "/api/v1/nodes/register",
        &SignedEnvelope::seal(&key, &reg).unwrap(),
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list(&server, "?online=true").nodes.len(), 1);
    eventually(
        Duration::from_secs(5),
        "the silent node to go offline",
        || (list(&server, "?online=false").nodes.len() == 1).then_some(()),
    );
}

#[test]
fn pages_of_the_node_list_cover_every_node_once() {
    let server = Server::start();
    let mut registered = Vec::new();
    for _ in 0..5 {
        let key = p2p::Keypair::generate_ed25519();
        let reg = registration(&key, 10_000);
        registered.push(reg.node_id.to_string());
        let (status, _) = post(
            &server,
            "/api/v1/nodes/register",
            &SignedEnvelope::seal(&key, &reg).unwrap(),
        );
        assert_eq!(status, StatusCode::OK);
    }
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = list(&server, &query);
        assert!(page.nodes.len() <= 2);
        seen.extend(page.nodes.iter().map(|n| n.peer_id.to_string()));
        match page.next_cursor {
            Some(c) => query = format!("?limit=2&cursor={c}"),
            None => break,
        }
    }
    registered.sort();
    assert_eq!(seen, registered);
}

#[test]
fn nodes_that_cannot_be_reached_are_listed_as_such_and_never_chosen() {
    let server = Server::start();
    let honest = Node::start(&server, 1000);
    let server_peer: String = http()
        .get(server.url("/api/v1/network"))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["multiaddrs"][0]
        .as_str()
        .unwrap()
        .to_owned();
    // Far cheaper than the honest node, and lying: a port where nothing
    // listens; another peer's address (the server's own: the handshake
    // gives away that it is someone else); no address at all.
    let liars: Vec<(p2p::Keypair, Vec<String>)> = vec![
        (
            p2p::Keypair::generate_ed25519(),
            vec!["/ip4/127.0.0.1/tcp/9".into()],
        ),
        (
            p2p::Keypair::generate_ed25519(),
            vec![server_peer.rsplit_once("/p2p/").unwrap().0.to_owned()],
        ),
        (p2p::Keypair::generate_ed25519(), vec![]),
    ];
    for (key, addrs) in &liars {
        let mut r = registration(key, 60_000);
        r.multiaddrs = addrs.clone();
        r.models = vec![fixtures::offer("all-minilm-l6-v2", Task::Embedding, 1)];
        // The honest node's model file, as a liar would claim it.
        r.models[0].hash = list(&server, "")
            .nodes
            .iter()
            .find(|n| n.peer_id.to_string() == honest.peer_id)
            .unwrap()
            .models[0]
            .hash;
        let (status, body) = post(
            &server,
            "/api/v1/nodes/register",
            &SignedEnvelope::seal(key, &r).unwrap(),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Each is dialled and found out, with the reason, in /nodes.
    let reasons = eventually(Duration::from_secs(40), "the liars found out", || {
        let nodes = list(&server, "").nodes;
        let liars: Vec<_> = nodes
            .iter()
            .filter(|n| n.peer_id.to_string() != honest.peer_id)
            .collect();
        liars
            .iter()
            .all(|n| n.reach.state == wire::registry::ReachState::Unreachable)
            .then(|| {
                liars
                    .iter()
                    .map(|n| n.reach.reason.clone().unwrap_or_default())
                    .collect::<Vec<_>>()
            })
    });
    assert_eq!(reasons.len(), 3);
    assert!(
        reasons.iter().any(|r| r.contains("no address")),
        "{reasons:?}"
    );
    let me = list(&server, "")
        .nodes
        .into_iter()
        .find(|n| n.peer_id.to_string() == honest.peer_id)
        .unwrap();
    assert_eq!(
        me.reach.state,
        wire::registry::ReachState::Reached,
        "{:?}",
        me.reach
    );
    // Jobs go to the node that can be reached, at once, with no try on a
    // liar.
    for _ in 0..3 {
        let r = server
            .http()
            .post(server.url("/api/v1/jobs"))
            .json(&json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["who answers?"] } }))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let record: Value = r.json().unwrap();
        assert_eq!(record["node_id"], honest.peer_id.as_str());
        assert!(record.get("attempts").is_none(), "{record}");
    }
}

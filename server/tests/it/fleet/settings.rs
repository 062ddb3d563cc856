//! What operators set on their nodes over the fleet link, with real node
//! processes: a schedule (a node outside it refuses jobs, and `/nodes` says
//! when it is back), public pools (`/nodes?pool=`, jobs that ask for one),
//! private tags (and commands to every node with a tag), and models
//! (fetch by hash from another node, unload, load, restart the engine).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{code, command, enrolled_node, farm_token, fleet_nodes, Events};
use crate::harness::{eventually, http, models_dir, temp_dir, Node, Server};
use crate::wallet::{browser, sign_in, Wallet};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn registry(server: &Server, node: &str) -> Value {
    http()
        .get(server.url(&format!("/nodes/{node}")))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Sends one command and waits for its end; the command as it ended.
fn obey(
    server: &Server,
    page: &reqwest::blocking::Client,
    events: &Events,
    node: &str,
    action: Value,
) -> Value {
    let (status, body) = command(server, page, json!({ "nodes": [node], "action": action }));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let c = &body["commands"][0];
    if c["status"] == "succeeded" {
        return c.clone();
    }
    let id = c["id"].as_str().unwrap();
    events.wait(&format!("command {id} ends"), |kind, v| {
        kind == "command" && v["id"] == id && v["finished_at"].is_u64()
    })
}

fn job(server: &Server, body: Value) -> (StatusCode, Value) {
    let r = server
        .http()
        .post(server.url("/api/v1/jobs"))
        .json(&body)
        .send()
        .unwrap();
    (r.status(), r.json().unwrap_or(Value::Null))
}

fn offer_hash(info: &Value, model: &str) -> String {
    info["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == model)
        .unwrap_or_else(|| panic!("no {model} in {info}"))["hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn copy_model(name: &str, into: &std::path::Path) {
    let from = models_dir().join(name);
    let to = into.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn operators_set_schedules_pools_tags_and_models_over_the_fleet_link() {
    let server = Server::start();
    let farm = browser(&server);
    sign_in(
        &server,
        &farm,
        &Wallet::from_seed(b"fleet settings operator wallet!!"),
    );
    let events = Events::open(&server, &farm);
    let token = farm_token(&server, &farm);
    let a = enrolled_node(&server, Some(&token), &temp_dir("node").join("node.key"));
    // b has one model only.
    let b_models = temp_dir("b-models");
    copy_model("all-minilm-l6-v2", &b_models);
    let b = Node::start_in(
        &server,
        &b_models,
        1000,
        &temp_dir("node").join("node.key"),
        &[
            "--telemetry-ms",
            "500",
            "--reachability",
            "public",
            "--enroll",
            &token,
        ],
    );
    for n in [&a, &b] {
        events.telemetry(&n.peer_id, |_| true);
    }
    let info_a = registry(&server, &a.peer_id);
    let minilm = offer_hash(&info_a, "all-minilm-l6-v2");
    let tensor = offer_hash(&info_a, "tensor-demo");

    // A maintenance window from a minute ago for an hour: a stops taking
    // jobs, says so, and the registry says when it is back.
    let back = now_ms() + 3_600_000;
    let done = obey(
        &server,
        &farm,
        &events,
        &a.peer_id,
        json!({ "type": "set_schedule", "schedule": {
            "time_zone": "Europe/Berlin",
            "maintenance": [{ "from": now_ms() - 60_000, "until": back, "note": "new fans" }],
            "drain_minutes": 0
        }}),
    );
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        done["detail"].as_str().unwrap().contains("closed now"),
        "{done}"
    );
    let t = events.telemetry(&a.peer_id, |t| t["admission"] == "off_schedule");
    assert_eq!(t["schedule_status"]["opens_at"], back, "{t}");
    assert_eq!(t["schedule"]["time_zone"], "Europe/Berlin");
    let listed = eventually(Duration::from_secs(30), "/nodes says a is closed", || {
        let n = registry(&server, &a.peer_id);
        (n["schedule"]["open"] == false).then_some(n)
    });
    assert_eq!(listed["schedule"]["opens_at"], back, "{listed}");
    assert_eq!(listed["accepting_jobs"], true, "closed is not paused");
    let (status, body) = job(
        &server,
        json!({ "model": "all-minilm-l6-v2", "node": a.peer_id, "input": { "texts": ["x"] } }),
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "no_node_available");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("outside its schedule; it opens again at"),
        "{body}"
    );
    // Jobs that name no node go to b.
    let (status, body) = job(
        &server,
        json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["x"] } }),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["node_id"], b.peer_id.as_str());
    // A schedule that never closes: open again at once.
    let done = obey(
        &server,
        &farm,
        &events,
        &a.peer_id,
        json!({ "type": "set_schedule", "schedule": { "time_zone": "UTC" } }),
    );
    assert_eq!(done["detail"], "always open", "{done}");
    eventually(Duration::from_secs(30), "/nodes says a is open", || {
        registry(&server, &a.peer_id)["schedule"]
            .is_null()
            .then_some(())
    });
    let (status, body) = job(
        &server,
        json!({ "model": "all-minilm-l6-v2", "node": a.peer_id, "input": { "texts": ["x"] } }),
    );
    assert_eq!(status, StatusCode::OK, "{body}");

    // Pools are public: b joins one, and jobs that ask for it go to b.
    let done = obey(
        &server,
        &farm,
        &events,
        &b.peer_id,
        json!({ "type": "set_pools", "pools": ["eu-west"] }),
    );
    assert_eq!(done["status"], "succeeded", "{done}");
    let pool: Value = eventually(Duration::from_secs(30), "/nodes?pool=eu-west", || {
        let list: Value = http()
            .get(server.url("/nodes?pool=eu-west"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        (!list["nodes"].as_array().unwrap().is_empty()).then_some(list)
    });
    let ids: Vec<&str> = pool["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["peer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![b.peer_id.as_str()]);
    for _ in 0..2 {
        let (status, body) = job(
            &server,
            json!({ "model": "all-minilm-l6-v2", "pool": "eu-west", "input": { "texts": ["x"] } }),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["node_id"], b.peer_id.as_str());
    }
    let (status, body) = job(
        &server,
        json!({ "model": "all-minilm-l6-v2", "pool": "us-east", "input": { "texts": ["x"] } }),
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no node in pool `us-east`"));
    let r = http()
        .get(server.url("/nodes?pool=EU%20West"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Tags are private, kept by the server; a command can go to a tag.
    let (status, body) = command(
        &server,
        &farm,
        json!({ "nodes": [a.peer_id], "action": { "type": "set_tags", "tags": ["rack-3", "4090"] } }),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["commands"][0]["status"], "succeeded", "{body}");
    let tags_of = |id: &str| {
        fleet_nodes(&server, &farm)
            .into_iter()
            .find(|n| n["node_id"] == id)
            .unwrap()["tags"]
            .clone()
    };
    assert_eq!(tags_of(&a.peer_id), json!(["rack-3", "4090"]));
    assert!(tags_of(&b.peer_id).is_null());
    assert!(
        registry(&server, &a.peer_id)["tags"].is_null(),
        "tags are not public"
    );
    let (status, body) = command(
        &server,
        &farm,
        json!({ "tag": "rack-3", "action": { "type": "pause" } }),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sent = body["commands"].as_array().unwrap();
    assert_eq!(sent.len(), 1, "{body}");
    assert_eq!(sent[0]["node_id"], a.peer_id.as_str());
    events.telemetry(&a.peer_id, |t| t["admission"] == "paused");
    command(
        &server,
        &farm,
        json!({ "tag": "rack-3", "action": { "type": "resume" } }),
    );
    events.telemetry(&a.peer_id, |t| t["admission"] == "open");
    let (status, body) = command(
        &server,
        &farm,
        json!({ "tag": "rack-9", "action": { "type": "pause" } }),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Models: b fetches tensor-demo by hash from a, verifies and offers it.
    let done = obey(
        &server,
        &farm,
        &events,
        &b.peer_id,
        json!({ "type": "fetch_model", "model": tensor }),
    );
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        done["detail"]
            .as_str()
            .unwrap()
            .contains("fetched and verified tensor-demo"),
        "{done}"
    );
    assert!(b_models.join("tensor-demo").join("manifest.json").is_file());
    eventually(Duration::from_secs(30), "b offers tensor-demo", || {
        let info = registry(&server, &b.peer_id);
        info["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["hash"] == tensor.as_str())
            .then_some(())
    });
    // Unload and load a's embedding model; its telemetry follows.
    let done = obey(
        &server,
        &farm,
        &events,
        &a.peer_id,
        json!({ "type": "unload_model", "model": minilm }),
    );
    assert_eq!(done["status"], "succeeded", "{done}");
    events.telemetry(&a.peer_id, |t| {
        !t["loaded_models"]
            .as_array()
            .unwrap()
            .contains(&json!("all-minilm-l6-v2"))
    });
    let done = obey(
        &server,
        &farm,
        &events,
        &a.peer_id,
        json!({ "type": "load_model", "model": minilm }),
    );
    assert!(
        done["detail"].as_str().unwrap().contains("loaded on cpu"),
        "{done}"
    );
    events.telemetry(&a.peer_id, |t| {
        t["loaded_models"]
            .as_array()
            .unwrap()
            .contains(&json!("all-minilm-l6-v2"))
    });
    // Restart b's engine: it reloads, and still runs jobs.
    let done = obey(
        &server,
        &farm,
        &events,
        &b.peer_id,
        json!({ "type": "restart_engine" }),
    );
    assert!(
        done["detail"].as_str().unwrap().starts_with("restarted"),
        "{done}"
    );
    let (status, body) = job(
        &server,
        json!({ "model": "all-minilm-l6-v2", "node": b.peer_id, "input": { "texts": ["x"] } }),
    );
    assert_eq!(status, StatusCode::OK, "{body}");

    // Everything is in the audit log.
    let log: Value = farm
        .get(server.url("/api/v1/fleet/commands?limit=100"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let kinds: Vec<&str> = log["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"]["type"].as_str().unwrap())
        .collect();
    for kind in [
        "set_schedule",
        "set_pools",
        "set_tags",
        "fetch_model",
        "unload_model",
        "load_model",
        "restart_engine",
    ] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
}

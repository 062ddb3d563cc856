//! Reputation from evidence, with real nodes: what their jobs did shows in
//! `/nodes`, routing turns from a cheap node that fails to a dearer one
//! that works, and the record outlives a restart of the server.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use wire::jobs::JobRecord;
use wire::reputation::ReputationReport;

use crate::harness::{eventually, priced_models, temp_dir, Node, Server};

fn submit(server: &Server, body: &Value) -> (StatusCode, JobRecord) {
    let r = server
        .http()
        .post(server.url("/api/v1/jobs"))
        .json(body)
        .send()
        .unwrap();
    let status = r.status();
    let body: Value = r.json().unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    (status, serde_json::from_value(body).unwrap())
}

fn get(server: &Server, path: &str) -> Value {
    let r = server.http().get(server.url(path)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().unwrap()
}

fn peers(list: &Value) -> Vec<String> {
    list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["peer_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_node_s_record_shows_in_the_registry_steers_routing_and_outlives_a_restart() {
    let server = Server::start_with(&["--first-output-secs", "3"]);
    let key = |tag: &str| temp_dir(tag).join("node.key");
    // 100 against 300 msat: a newcomer at 100 wins; with two recent
    // failures it looks 4 times dearer (see reputation::evidence).
    let cheap = Node::start_in(&server, &priced_models(100), 10_000, &key("cheap"), &[]);
    let dear = Node::start_in(&server, &priced_models(300), 10_000, &key("dear"), &[]);
    for node in [&cheap, &dear] {
        eventually(Duration::from_secs(30), "both nodes listed", || {
            let n: Value = server
                .http()
                .get(server.url(&format!("/nodes/{}", node.peer_id)))
                .send()
                .unwrap()
                .json()
                .ok()?;
            (n["status"] == "online").then_some(())
        });
    }
    let newcomer = get(&server, &format!("/nodes/{}", dear.peer_id));
    assert_eq!(newcomer["reputation"]["jobs"], 0, "{newcomer}");
    assert_eq!(newcomer["reputation"]["uptime_pct"], 100.0, "{newcomer}");
    let job = json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["reputation"] } });

    // Up: the cheap one runs it; its record says so, with the latency.
    let (_, record) = submit(&server, &job);
    assert_eq!(record.node_id.to_string(), cheap.peer_id);
    let n = get(&server, &format!("/nodes/{}", cheap.peer_id));
    let r = &n["reputation"];
    assert_eq!(
        (r["jobs"].as_u64(), r["failed"].as_u64()),
        (Some(1), Some(0)),
        "{n}"
    );
    assert_eq!(r["completion_pct"], 100.0);
    assert_eq!(r["latency"][0]["jobs"], 1, "{n}");
    assert_eq!(r["latency"][0]["model"], n["models"][0]["hash"]);
    assert!(r["latency"][0]["p50_ms"].as_u64().unwrap() > 0, "{n}");

    // Silent: two jobs wait for it and move on; the third does not try it.
    cheap.proc.signal("STOP");
    for _ in 0..2 {
        let (_, record) = submit(&server, &job);
        assert_eq!(record.node_id.to_string(), dear.peer_id);
        assert_eq!(record.attempts.len(), 1, "{record:?}");
    }
    let started = Instant::now();
    let (_, record) = submit(&server, &job);
    assert_eq!(record.node_id.to_string(), dear.peer_id);
    assert!(record.attempts.is_empty(), "{record:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not held up by the silent node"
    );
    cheap.proc.signal("CONT");

    let n = get(&server, &format!("/nodes/{}", cheap.peer_id));
    let r = &n["reputation"];
    assert_eq!(
        (r["jobs"].as_u64(), r["failed"].as_u64()),
        (Some(3), Some(2)),
        "{n}"
    );
    assert_eq!(r["recent_failures"], 2);
    let cheap_score = r["score"].as_u64().unwrap();
    let d = get(&server, &format!("/nodes/{}", dear.peer_id));
    let dear_score = d["reputation"]["score"].as_u64().unwrap();
    assert_eq!(d["reputation"]["jobs"], 3, "{d}");
    assert!(cheap_score < dear_score, "{cheap_score} vs {dear_score}");

    // The list: filtered by score, and best first.
    let min = (cheap_score + dear_score).div_ceil(2);
    let good = get(&server, &format!("/nodes?min_reputation={min}"));
    assert_eq!(peers(&good), vec![dear.peer_id.clone()]);
    let ranked = get(&server, "/nodes?sort=reputation&limit=1");
    assert_eq!(peers(&ranked), vec![dear.peer_id.clone()]);
    let next = ranked["next_cursor"].as_str().unwrap();
    let rest = get(
        &server,
        &format!("/nodes?sort=reputation&limit=1&cursor={next}"),
    );
    assert_eq!(peers(&rest), vec![cheap.peer_id.clone()]);
    assert!(rest["next_cursor"].is_null());
    // A cursor of the other order, or a score out of range: 400.
    for bad in [
        format!("/nodes?cursor={next}"),
        "/nodes?min_reputation=101".to_owned(),
        "/nodes?sort=fame".to_owned(),
    ] {
        let r = server.http().get(server.url(&bad)).send().unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    // Its days.
    let report: ReputationReport = serde_json::from_value(get(
        &server,
        &format!("/nodes/{}/reputation", cheap.peer_id),
    ))
    .unwrap();
    assert_eq!(report.days.len(), 1);
    assert_eq!((report.days[0].jobs, report.days[0].failed), (3, 2));
    assert_eq!(report.reputation.score as u64, cheap_score);
    let missing = server
        .http()
        .get(server.url(&format!(
            "/nodes/{}/reputation",
            testkit::fixtures::node_id(9)
        )))
        .send()
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // A restart keeps the record (recent failures are this run's only).
    let server = server.restart_gracefully();
    let n = get(&server, &format!("/nodes/{}", cheap.peer_id));
    let r = &n["reputation"];
    assert_eq!(
        (r["jobs"].as_u64(), r["failed"].as_u64()),
        (Some(3), Some(2)),
        "{n}"
    );
    assert_eq!(r["recent_failures"], 0, "{n}");
    assert_eq!(r["latency"][0]["jobs"], 1, "{n}");
}

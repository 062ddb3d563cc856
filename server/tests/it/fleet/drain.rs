//! Draining a node mid-job: the running jobs finish (and are paid), new
//! ones are refused, and the drain's result comes only once nothing runs.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{command, enrolled_node, farm_token, Events};
use crate::harness::{temp_dir, Server};
use crate::wallet::{browser, sign_in, Wallet};

#[test]
fn a_drain_lets_the_running_jobs_finish_and_then_says_drained() {
    let server = Server::start();
    let farm = browser(&server);
    sign_in(
        &server,
        &farm,
        &Wallet::from_seed(b"fleet drain operator wallet seed"),
    );
    let events = Events::open(&server, &farm);
    let token = farm_token(&server, &farm);
    let node = enrolled_node(&server, Some(&token), &temp_dir("node").join("node.key"));
    events.telemetry(&node.peer_id, |_| true);

    // Work that takes a while: several full embedding batches of long
    // texts, sent at once.
    let texts: Vec<String> = (0..64)
        .map(|i| format!("text {i} ") + &"the quick brown fox jumps over the lazy dog ".repeat(40))
        .collect();
    let jobs: Vec<_> = (0..4)
        .map(|_| {
            let client = server.http();
            let url = server.url("/api/v1/jobs");
            let body = json!({
                "model": "all-minilm-l6-v2",
                "node": node.peer_id,
                "input": { "texts": texts },
            });
            std::thread::spawn(move || {
                let r = client
                    .post(url)
                    .timeout(Duration::from_secs(300))
                    .json(&body)
                    .send()
                    .unwrap();
                (r.status(), r.json::<Value>().unwrap_or(Value::Null))
            })
        })
        .collect();
    // All four on the node (running or queued) before the drain.
    events.telemetry(&node.peer_id, |t| t["running_jobs"].as_u64() >= Some(4));

    let (status, body) = command(
        &server,
        &farm,
        json!({ "nodes": [node.peer_id], "action": { "type": "drain" } }),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["commands"][0]["id"].as_str().unwrap().to_owned();
    events.command(&id, "acked");
    // Draining, with jobs still running: the drain is not done yet, and a
    // new job is refused.
    let t = events.telemetry(&node.peer_id, |t| t["admission"] == "draining");
    assert!(t["running_jobs"].as_u64() >= Some(1), "{t}");
    let now: Value = farm
        .get(server.url(&format!("/api/v1/fleet/commands/{id}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(now["status"], "acked", "not drained while jobs run: {now}");
    let r = server
        .http()
        .post(server.url("/api/v1/jobs"))
        .json(&json!({ "model": "all-minilm-l6-v2", "node": node.peer_id, "input": { "texts": ["late"] } }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

    // The running jobs finish, whole.
    for job in jobs {
        let (status, record) = job.join().unwrap();
        assert_eq!(status, StatusCode::OK, "{record}");
        assert_eq!(record["status"], "succeeded", "{record}");
        assert_eq!(record["output"]["vectors"].as_array().unwrap().len(), 64);
    }
    let done = events.command(&id, "succeeded");
    assert!(
        done["detail"].as_str().unwrap().contains("drained"),
        "{done}"
    );
    assert!(done["finished_at"].as_u64() > done["acked_at"].as_u64());
    events.telemetry(&node.peer_id, |t| {
        t["admission"] == "drained" && t["running_jobs"] == 0
    });
}

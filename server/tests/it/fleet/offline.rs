//! A node killed and back: offline at once, an alert to a signed webhook,
//! commands that wait for it; strangers and read-only keys refused and
//! audited; expiry; bad input.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{code, command, enrolled_node, farm_token, fleet_nodes, Events};
use crate::harness::{client_with_key, temp_dir, Server};
use crate::wallet::{browser, create_key, sign_in, Wallet};

/// A webhook receiver on loopback: every request's headers (lower-case
/// names) and body, as they arrive.
struct Hook {
    url: String,
    rx: mpsc::Receiver<(std::collections::HashMap<String, String>, Vec<u8>)>,
}

impl Hook {
    fn start() -> Hook {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/infernet", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut headers = std::collections::HashMap::new();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
                    }
                }
                let len: usize = headers["content-length"].parse().unwrap();
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .unwrap();
                if tx.send((headers, body)).is_err() {
                    return;
                }
            }
        });
        Hook { url, rx }
    }

    /// The next call, checked against `secret`: its JSON body.
    fn next(&self, secret: &str) -> Value {
        use hmac::Mac;
        let (headers, body) = self
            .rx
            .recv_timeout(Duration::from_secs(60))
            .expect("no webhook call");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(headers["x-infernet-timestamp"].as_bytes());
        mac.update(b".");
        mac.update(&body);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            headers["x-infernet-signature"], want,
            "the signature checks out"
        );
        serde_json::from_slice(&body).unwrap()
    }
}

#[test]
fn commands_wait_for_an_offline_node_and_strangers_are_refused_and_audited() {
    let server = Server::start_with(&["--allow-private-webhooks"]);
    let farm = browser(&server);
    sign_in(
        &server,
        &farm,
        &Wallet::from_seed(b"fleet operator two wallet seed!!"),
    );
    let events = Events::open(&server, &farm);
    let token = farm_token(&server, &farm);
    let key_file = temp_dir("node").join("node.key");
    let mut a = enrolled_node(&server, Some(&token), &key_file);
    let node = a.peer_id.clone();
    events.telemetry(&node, |_| true);

    // Alerts to a webhook: offline after 5 s.
    let hook = Hook::start();
    let r = farm
        .put(server.url("/api/v1/fleet/alert-settings"))
        .json(&json!({
            "webhook_url": hook.url,
            "offline_after_secs": 5,
            "gpu_temp_c": 85,
            "failure_rate_pct": 20,
            "unreachable_after_secs": 120,
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let secret = r.json::<Value>().unwrap()["webhook_secret"]
        .as_str()
        .unwrap()
        .to_owned();

    // SIGKILL: offline as soon as its connection drops.
    let killed = Instant::now();
    a.proc.kill();
    let offline = events.wait("offline", |k, v| {
        k == "offline" && v["node_id"] == node.as_str()
    });
    let took = killed.elapsed();
    assert!(offline["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(fleet_nodes(&server, &farm)[0]["online"], false);
    // Five seconds on, the alert fires, in the app and at the webhook.
    let alert = events.wait("offline alert", |k, v| {
        k == "alert" && v["kind"] == "offline" && v["resolved_at"].is_null()
    });
    assert!(killed.elapsed() >= Duration::from_secs(5));
    let fired = hook.next(&secret);
    assert_eq!(fired["type"], "alert.fired");
    assert_eq!(fired["alert"]["id"], alert["id"]);
    assert_eq!(fired["alert"]["node_id"], node.as_str());

    // A command for the offline node waits, visibly.
    let (status, body) = command(
        &server,
        &farm,
        json!({ "nodes": [node], "action": { "type": "pause" } }),
    );
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["commands"][0]["status"], "queued");
    let id = body["commands"][0]["id"].as_str().unwrap().to_owned();

    // Back (the same key; its pin remembers the enrolment): the command runs.
    drop(a);
    let a = enrolled_node(&server, None, &key_file);
    assert_eq!(a.peer_id, node);
    events.wait("online again", |k, v| {
        k == "online" && v["node_id"] == node.as_str()
    });
    events.command(&id, "succeeded");
    events.telemetry(&node, |t| t["admission"] == "paused");
    // Back: the alert resolves, once, and the webhook hears it once.
    let resolved = hook.next(&secret);
    assert_eq!(resolved["type"], "alert.resolved");
    assert_eq!(resolved["alert"]["id"], alert["id"]);
    assert!(hook.rx.try_recv().is_err(), "one call each");
    let listed: Value = farm
        .get(server.url("/api/v1/fleet/alerts"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 1, "{listed}");
    assert!(listed["alerts"][0]["resolved_at"].is_u64());
    let nodes = fleet_nodes(&server, &farm);
    assert_eq!(nodes.len(), 1, "no duplicate node");
    assert_eq!(nodes[0]["online"], true);

    // Another account: the node and its commands do not exist for it.
    let other = browser(&server);
    sign_in(
        &server,
        &other,
        &Wallet::from_seed(b"someone else entirely, a seed!!!"),
    );
    let (status, body) = command(
        &server,
        &other,
        json!({ "nodes": [node], "action": { "type": "resume" } }),
    );
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    for path in [
        format!("/api/v1/fleet/nodes/{node}/telemetry"),
        format!("/api/v1/fleet/commands/{id}"),
    ] {
        let r = other.get(server.url(&path)).send().unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert!(fleet_nodes(&server, &other).is_empty());

    // The operator's own key without fleet:write may look, not command.
    let (key, _) = create_key(&server, &farm, "dashboard", &["fleet:read"]);
    let reader = client_with_key(&key);
    assert_eq!(fleet_nodes(&server, &reader).len(), 1);
    let (status, body) = command(
        &server,
        &reader,
        json!({ "nodes": [node], "action": { "type": "resume" } }),
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    // A key with neither scope may not even look.
    let (jobs_only, _) = create_key(&server, &farm, "jobs", &["jobs"]);
    let r = client_with_key(&jobs_only)
        .get(server.url("/api/v1/fleet/nodes"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Both refusals are in the operator's audit log; nothing ran.
    let log: Value = farm
        .get(server.url(&format!("/api/v1/fleet/commands?node={node}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let rows = log["commands"].as_array().unwrap();
    let statuses: Vec<&str> = rows.iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["refused", "refused", "succeeded"], "{log}");
    assert!(rows[0]["detail"].as_str().unwrap().contains("fleet:write"));
    assert!(rows[1]["detail"]
        .as_str()
        .unwrap()
        .contains("does not operate"));
    assert_eq!(
        fleet_nodes(&server, &farm)[0]["telemetry"]["admission"],
        "paused"
    );

    // A command that waits longer than it may expires.
    drop(a);
    events.wait("offline", |k, v| {
        k == "offline" && v["node_id"] == node.as_str()
    });
    let (_, body) = command(
        &server,
        &farm,
        json!({ "nodes": [node], "action": { "type": "resume" }, "expires_in_secs": 1 }),
    );
    let expired = events.command(body["commands"][0]["id"].as_str().unwrap(), "expired");
    assert!(expired["finished_at"].as_u64().is_some());

    // Bad requests are refused in words.
    for bad in [
        json!({ "nodes": [], "action": { "type": "pause" } }),
        json!({ "nodes": [node], "action": { "type": "format_disk" } }),
        json!({ "nodes": [node], "action": { "type": "pause" }, "expires_in_secs": 0 }),
        json!({ "nodes": ["not-a-peer"], "action": { "type": "pause" } }),
    ] {
        let (status, body) = command(&server, &farm, bad.clone());
        assert!(status.is_client_error(), "{bad}: {status}");
        assert!(
            !body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{bad}"
        );
    }
}

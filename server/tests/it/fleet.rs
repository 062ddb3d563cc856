//! Operators' fleets over real processes: nodes enrolled with a farm token
//! keep a fleet link to the server (libp2p on loopback), report telemetry,
//! and take their operator's commands; the test watches the server-sent
//! events the app uses.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{client_with_key, eventually, http, temp_dir, Node, Server};
use crate::wallet::{browser, create_key, sign_in, Wallet};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// `GET /api/v1/fleet/events` as a browser reads it: each event's type and
/// its JSON, read on a thread of its own.
struct Events {
    rx: mpsc::Receiver<(String, Value)>,
}

impl Events {
    fn open(server: &Server, page: &reqwest::blocking::Client) -> Events {
        Self::open_at(server, page, "/api/v1/fleet/events")
    }

    fn open_at(server: &Server, page: &reqwest::blocking::Client, path: &str) -> Events {
        let r = page
            .get(server.url(path))
            .timeout(Duration::from_secs(3600))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut kind = String::new();
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { return };
                if let Some(k) = line.strip_prefix("event: ") {
                    kind = k.to_owned();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    let value = serde_json::from_str(data).unwrap_or(Value::Null);
                    if tx.send((std::mem::take(&mut kind), value)).is_err() {
                        return;
                    }
                }
            }
        });
        Events { rx }
    }

    /// The first event from now on that `want` accepts.
    fn wait(&self, what: &str, mut want: impl FnMut(&str, &Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((kind, value)) if want(&kind, &value) => return value,
                Ok(_) => {}
                Err(_) => panic!("no event: {what}"),
            }
        }
    }

    /// Whether the server ends the stream within `within`.
    fn ends_within(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    fn telemetry(&self, node: &str, mut want: impl FnMut(&Value) -> bool) -> Value {
        self.wait(&format!("telemetry of {node}"), |kind, v| {
            kind == "telemetry" && v["node_id"] == node && want(&v["telemetry"])
        })["telemetry"]
            .clone()
    }

    fn command(&self, id: &str, status: &str) -> Value {
        self.wait(&format!("command {id} {status}"), |kind, v| {
            kind == "command" && v["id"] == id && v["status"] == status
        })
    }
}

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

fn farm_token(server: &Server, page: &reqwest::blocking::Client) -> String {
    let r = page
        .post(server.url("/api/v1/account/enrol-tokens"))
        .json(&json!({ "name": "rack", "reusable": true }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn enrolled_node(server: &Server, token: Option<&str>, key_file: &std::path::Path) -> Node {
    // On loopback AutoNAT has nobody to ask: the node says it is public.
    let mut extra = vec![
        "--telemetry-ms",
        "500",
        "--reachability",
        "public",
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    if let Some(t) = token {
        extra.extend(["--enroll", t]);
    }
    Node::start_with(server, 1000, key_file, &extra)
}

fn command(
    server: &Server,
    client: &reqwest::blocking::Client,
    body: Value,
) -> (StatusCode, Value) {
    let r = client
        .post(server.url("/api/v1/fleet/commands"))
        .json(&body)
        .send()
        .unwrap();
    (r.status(), r.json().unwrap_or(Value::Null))
}

fn fleet_nodes(server: &Server, page: &reqwest::blocking::Client) -> Vec<Value> {
    let list: Value = page
        .get(server.url("/api/v1/fleet/nodes"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    list["nodes"].as_array().unwrap().clone()
}

/// A `/metrics` page: the value of the sample whose line starts with `series`.
fn scrape(url: &str, series: &str) -> f64 {
    let text = http().get(url).send().unwrap().text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

fn accepting(server: &Server, node: &str) -> bool {
    let n: Value = http()
        .get(server.url(&format!("/nodes/{node}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    n["accepting_jobs"].as_bool().unwrap_or(false)
}

#[test]
fn operators_watch_their_nodes_live_and_pause_drain_and_resume_them() {
    let server = Server::start_with(&["--metrics-addr", "127.0.0.1:0"]);
    let farm = browser(&server);
    sign_in(
        &server,
        &farm,
        &Wallet::from_seed(b"fleet operator one wallet seed!!"),
    );
    let events = Events::open(&server, &farm);
    let token = farm_token(&server, &farm);
    let a = enrolled_node(&server, Some(&token), &temp_dir("node").join("node.key"));
    let b = enrolled_node(&server, Some(&token), &temp_dir("node").join("node.key"));

    // Both come online and stream their telemetry.
    for n in [&a, &b] {
        events.wait("online", |k, v| {
            k == "online" && v["node_id"] == n.peer_id.as_str()
        });
    }
    let t = events.telemetry(&a.peer_id, |_| true);
    assert!(t["ram_total_mib"].as_u64().unwrap() > 0, "{t}");
    assert!(t["ram_used_mib"].as_u64().unwrap() > 0, "{t}");
    assert_eq!(t["admission"], "open");
    assert_eq!(t["interval_ms"], 500);
    assert_eq!(t["reachability"]["kind"], "public", "{t}");
    assert!(t["gpus"].as_array().unwrap().is_empty(), "no GPU here");
    events.telemetry(&b.peer_id, |_| true);
    let nodes = fleet_nodes(&server, &farm);
    assert_eq!(nodes.len(), 2);
    for n in &nodes {
        assert_eq!(n["online"], true, "{n}");
        assert!(n["telemetry"]["cpu_pct"].is_number(), "{n}");
        assert!(n["info"]["models"].as_array().is_some(), "{n}");
    }
    // Stored as a time series: the last hour at full resolution.
    let series: Value = farm
        .get(server.url(&format!("/api/v1/fleet/nodes/{}/telemetry", a.peer_id)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(series["step_ms"], 0, "{series}");
    let points = series["points"].as_array().unwrap();
    assert!(points[0]["gauges"]["ram_total_mib"].as_f64().unwrap() > 0.0);
    assert!(!points.is_empty());
    assert!(points
        .windows(2)
        .all(|w| w[0]["at"].as_u64() <= w[1]["at"].as_u64()));

    // Pause a: acknowledged, done, and said in its telemetry and ads; jobs
    // go to b.
    let (status, body) = command(
        &server,
        &farm,
        json!({ "nodes": [a.peer_id], "action": { "type": "pause" } }),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let pause = body["commands"][0].clone();
    assert_eq!(pause["status"], "sent", "{pause}");
    assert!(pause["issued_by"].as_str().unwrap().ends_with("(session)"));
    let id = pause["id"].as_str().unwrap();
    events.command(id, "acked");
    let done = events.command(id, "succeeded");
    assert!(
        done["detail"].as_str().unwrap().contains("paused"),
        "{done}"
    );
    events.telemetry(&a.peer_id, |t| t["admission"] == "paused");
    // Prometheus sees it too, on the node's own /metrics.
    let node_metrics = a.proc.ready["metrics"].as_str().unwrap().to_owned();
    let label = format!("{{node=\"{}\"}}", a.peer_id);
    assert_eq!(
        scrape(
            &node_metrics,
            &format!("infernet_node_accepting_jobs{label}")
        ),
        0.0
    );
    assert!(
        scrape(
            &node_metrics,
            &format!("infernet_node_ram_total_mib{label}")
        ) > 0.0
    );
    eventually(Duration::from_secs(20), "a's ads say paused", || {
        (!accepting(&server, &a.peer_id)).then_some(())
    });
    let consumer = server.http();
    for _ in 0..3 {
        let r = consumer
            .post(server.url("/api/v1/jobs"))
            .json(&json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["fleet"] } }))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().unwrap());
        let record: Value = r.json().unwrap();
        assert_eq!(
            record["node_id"],
            b.peer_id.as_str(),
            "a paused node gets no job"
        );
    }

    // The operator's own record of each node, and earnings that match the
    // ledger to the millisatoshi.
    let stats: Value = farm
        .get(server.url("/api/v1/fleet/stats?days=1"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let of = |id: &str| {
        stats["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == id)
            .unwrap()
            .clone()
    };
    let (sa, sb) = (of(&a.peer_id), of(&b.peer_id));
    assert_eq!(
        (sb["jobs_succeeded"].as_u64(), sb["completion_pct"].as_f64()),
        (Some(3), Some(100.0)),
        "{sb}"
    );
    assert!(sb["median_latency_ms"].as_u64().is_some(), "{sb}");
    assert_eq!(sa["jobs_succeeded"], 0);
    assert!(sa["uptime_pct"].as_f64().unwrap() > 0.0, "{sa}");
    assert_eq!(sa["uptime_by_day"].as_array().unwrap().len(), 1);
    let billing: Value = farm
        .get(server.url("/api/v1/billing"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let earned = billing["earned_total_msat"].as_u64().unwrap();
    assert!(earned > 0, "{billing}");
    assert_eq!(sb["earned_msat"].as_u64(), Some(earned));
    let csv = farm
        .get(server.url("/api/v1/fleet/earnings?format=csv"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "day,node_id,device,model,jobs,earned_msat");
    let body: Vec<Vec<&str>> = lines[1..lines.len() - 1]
        .iter()
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(body.len(), 1, "{csv}");
    assert_eq!(
        (body[0][1], body[0][2], body[0][3], body[0][4]),
        (b.peer_id.as_str(), "cpu", "all-minilm-l6-v2", "3")
    );
    let sum: u64 = body.iter().map(|l| l[5].parse::<u64>().unwrap()).sum();
    assert_eq!(sum, earned, "the CSV adds up to the ledger's earnings");
    assert_eq!(lines.last().unwrap(), &format!("total,,,,,{earned}"));

    // Drain b: nothing runs, so it is drained at once.
    let (_, body) = command(
        &server,
        &farm,
        json!({ "nodes": [b.peer_id], "action": { "type": "drain" } }),
    );
    let drained = events.command(body["commands"][0]["id"].as_str().unwrap(), "succeeded");
    assert!(drained["detail"].as_str().unwrap().contains("drained"));
    events.telemetry(&b.peer_id, |t| t["admission"] == "drained");

    // Resume both with one command.
    let (status, body) = command(
        &server,
        &farm,
        json!({ "nodes": [a.peer_id, b.peer_id], "action": { "type": "resume" } }),
    );
    assert_eq!(status, StatusCode::CREATED);
    for c in body["commands"].as_array().unwrap() {
        events.command(c["id"].as_str().unwrap(), "succeeded");
    }
    events.telemetry(&a.peer_id, |t| t["admission"] == "open");
    eventually(Duration::from_secs(20), "a takes jobs again", || {
        accepting(&server, &a.peer_id).then_some(())
    });

    // A new price for b's MiniLM: the command says so, /nodes shows it at
    // once (the node advertises it), and the next job pays it.
    let info: Value = http()
        .get(server.url(&format!("/nodes/{}", b.peer_id)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let minilm = info["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "all-minilm-l6-v2")
        .unwrap()
        .clone();
    let new_price = minilm["price_msat"].as_u64().unwrap() * 2 + 1000;
    let (status, body) = command(
        &server,
        &farm,
        json!({ "nodes": [b.peer_id], "action": { "type": "set_prices", "prices": [
            { "model": minilm["hash"], "price_msat": new_price }
        ] } }),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    events.command(body["commands"][0]["id"].as_str().unwrap(), "succeeded");
    eventually(Duration::from_secs(10), "the new price in /nodes", || {
        let info: Value = http()
            .get(server.url(&format!("/nodes/{}", b.peer_id)))
            .send()
            .unwrap()
            .json()
            .unwrap();
        info["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "all-minilm-l6-v2" && m["price_msat"] == new_price)
            .then_some(())
    });
    let r = consumer
        .post(server.url("/api/v1/jobs"))
        .json(&json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["priced"] }, "node": b.peer_id }))
        .send()
        .unwrap();
    let record: Value = r.json().unwrap();
    assert!(
        record["price_msat"].as_u64().unwrap() >= new_price,
        "{record}"
    );
    // A price for a model the node does not have changes nothing.
    let (_, body) = command(
        &server,
        &farm,
        json!({ "nodes": [b.peer_id], "action": { "type": "set_prices", "prices": [
            { "model": "ab".repeat(32), "price_msat": 1 }
        ] } }),
    );
    let failed = events.command(body["commands"][0]["id"].as_str().unwrap(), "failed");
    assert!(
        failed["detail"].as_str().unwrap().contains("no model"),
        "{failed}"
    );

    // The server's /metrics: two links open, frames and commands counted.
    let server_metrics = server.ready()["metrics"].as_str().unwrap().to_owned();
    assert_eq!(
        scrape(&server_metrics, "infernet_server_fleet_links_open"),
        2.0
    );
    assert!(scrape(&server_metrics, "infernet_server_telemetry_frames_total") >= 2.0);
    assert_eq!(
        scrape(&server_metrics, "infernet_server_fleet_commands_total"),
        6.0
    );
    assert!(
        scrape(
            &server_metrics,
            "infernet_server_jobs{status=\"succeeded\"}"
        ) >= 3.0
    );

    // This server takes no webhook on this machine; bad settings are refused.
    for bad in [
        json!({ "webhook_url": "http://127.0.0.1:9/x", "offline_after_secs": 300, "gpu_temp_c": 85, "failure_rate_pct": 20, "unreachable_after_secs": 120 }),
        json!({ "offline_after_secs": 1, "gpu_temp_c": 85, "failure_rate_pct": 20, "unreachable_after_secs": 120 }),
    ] {
        let r = farm
            .put(server.url("/api/v1/fleet/alert-settings"))
            .json(&bad)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    // The audit log: every command, newest first, with who sent it.
    let log: Value = farm
        .get(server.url("/api/v1/fleet/commands"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let actions: Vec<&str> = log["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "set_prices",
            "set_prices",
            "resume",
            "resume",
            "drain",
            "pause"
        ]
    );
    let statuses: Vec<&str> = log["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "failed",
            "succeeded",
            "succeeded",
            "succeeded",
            "succeeded",
            "succeeded"
        ]
    );
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

#[test]
fn a_team_member_sees_or_runs_an_owners_fleet_as_their_role_until_revoked() {
    let server = Server::start();
    let owner = browser(&server);
    sign_in(
        &server,
        &owner,
        &Wallet::from_seed(b"fleet owner of a team, wallet!!!"),
    );
    let owner_id = server.account_of(&owner);
    // A token made on the server's own machine, without a browser.
    let (status, out, err) = server.admin(&["enrol-token", &owner_id, "--name", "cli"]);
    assert!(status.success(), "{err}");
    let made: Value = serde_json::from_str(out.trim()).unwrap();
    let token = made["secret"].as_str().unwrap().to_owned();
    assert!(token.starts_with("enr-inf-"), "{made}");
    assert_eq!(made["token"]["name"], "cli");
    let node = enrolled_node(&server, Some(&token), &temp_dir("node").join("node.key"));
    let member = browser(&server);
    sign_in(
        &server,
        &member,
        &Wallet::from_seed(b"a member of the team, a wallet!!"),
    );
    let member_id = server.account_of(&member);
    let as_member = |path: &str| server.url(&format!("{path}?fleet={owner_id}"));

    // Not in the team: the owner's fleet does not exist for them.
    let r = member.get(as_member("/api/v1/fleet/nodes")).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = member
        .get(server.url("/api/v1/fleet/nodes?fleet=not-an-account"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A viewer sees the fleet, and may not command it (audited, naming them).
    let grant = |role: &str| {
        owner
            .put(server.url(&format!("/api/v1/fleet/team/{member_id}")))
            .json(&json!({ "role": role }))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(grant("viewer"), StatusCode::NO_CONTENT);
    let seen: Value = member
        .get(as_member("/api/v1/fleet/nodes"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(seen["nodes"][0]["node_id"], node.peer_id.as_str());
    let team: Value = member
        .get(server.url("/api/v1/fleet/team"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(team["fleets"][0]["account"], owner_id.as_str());
    assert_eq!(team["fleets"][0]["role"], "viewer");
    let pause = json!({ "nodes": [node.peer_id], "action": { "type": "pause" } });
    let r = member
        .post(as_member("/api/v1/fleet/commands"))
        .json(&pause)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Their own fleet is still their own (and empty).
    assert!(fleet_nodes(&server, &member).is_empty());

    // A manager runs it; the audit log says who.
    assert_eq!(grant("manager"), StatusCode::NO_CONTENT);
    let (status, body) = command(&server, &member, pause.clone());
    assert_eq!(status, StatusCode::NOT_FOUND, "not without ?fleet=: {body}");
    let r = member
        .post(as_member("/api/v1/fleet/commands"))
        .json(&pause)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let sent: Value = r.json().unwrap();
    assert!(
        sent["commands"][0]["issued_by"]
            .as_str()
            .unwrap()
            .contains(member_id.as_str()),
        "{sent}"
    );
    let log: Value = owner
        .get(server.url("/api/v1/fleet/commands"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let statuses: Vec<&str> = log["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    // Newest first: the manager's, the attempt without ?fleet=, the viewer's.
    assert_eq!(statuses.len(), 3, "{log}");
    assert_eq!(&statuses[1..], ["refused", "refused"]);
    assert!(log["commands"][1]["detail"]
        .as_str()
        .unwrap()
        .contains("does not operate"));
    assert!(log["commands"][2]["issued_by"]
        .as_str()
        .unwrap()
        .contains(&format!("team member {member_id} as viewer")));
    let team: Value = owner
        .get(server.url("/api/v1/fleet/team"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(team["members"][0]["account"], member_id.as_str());
    assert_eq!(team["members"][0]["role"], "manager");

    // Revoked: gone at once, and the member's open event stream ends.
    let watching = Events::open_at(
        &server,
        &member,
        &format!("/api/v1/fleet/events?fleet={owner_id}"),
    );
    let r = owner
        .delete(server.url(&format!("/api/v1/fleet/team/{member_id}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        watching.ends_within(Duration::from_secs(15)),
        "the stream ends with the membership"
    );
    let r = member.get(as_member("/api/v1/fleet/nodes")).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Only the owner's browser session manages the team.
    let r = owner
        .put(server.url(&format!("/api/v1/fleet/team/{owner_id}")))
        .json(&json!({ "role": "viewer" }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (key, key_id) = create_key(&server, &owner, "fleet", &["fleet:read", "fleet:write"]);
    let r = client_with_key(&key)
        .put(server.url(&format!("/api/v1/fleet/team/{member_id}")))
        .json(&json!({ "role": "viewer" }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A revoked key's open event stream ends too.
    let watching = Events::open(&server, &client_with_key(&key));
    let r = owner
        .delete(server.url(&format!("/api/v1/account/keys/{key_id}")))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    assert!(
        watching.ends_within(Duration::from_secs(15)),
        "the stream ends with its key"
    );
}

//! Operators' fleets over real processes: nodes enrolled with a farm token
//! keep a fleet link to the server (libp2p on loopback), report telemetry,
//! and take their operator's commands; the test watches the server-sent
//! events the app uses.

mod drain;
mod live;
mod offline;
mod settings;
mod team;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{Node, Server};

pub(super) fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// `GET /api/v1/fleet/events` as a browser reads it: each event's type and
/// its JSON, read on a thread of its own.
pub(super) struct Events {
    rx: mpsc::Receiver<(String, Value)>,
}

impl Events {
    pub(super) fn open(server: &Server, page: &reqwest::blocking::Client) -> Events {
        Self::open_at(server, page, "/api/v1/fleet/events")
    }

    pub(super) fn open_at(server: &Server, page: &reqwest::blocking::Client, path: &str) -> Events {
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
    pub(super) fn wait(&self, what: &str, mut want: impl FnMut(&str, &Value) -> bool) -> Value {
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
    pub(super) fn ends_within(&self, within: Duration) -> bool {
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

    pub(super) fn telemetry(&self, node: &str, mut want: impl FnMut(&Value) -> bool) -> Value {
        self.wait(&format!("telemetry of {node}"), |kind, v| {
            kind == "telemetry" && v["node_id"] == node && want(&v["telemetry"])
        })["telemetry"]
            .clone()
    }

    pub(super) fn command(&self, id: &str, status: &str) -> Value {
        self.wait(&format!("command {id} {status}"), |kind, v| {
            kind == "command" && v["id"] == id && v["status"] == status
        })
    }
}

pub(super) fn farm_token(server: &Server, page: &reqwest::blocking::Client) -> String {
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

pub(super) fn enrolled_node(
    server: &Server,
    token: Option<&str>,
    key_file: &std::path::Path,
) -> Node {
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

pub(super) fn command(
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

pub(super) fn fleet_nodes(server: &Server, page: &reqwest::blocking::Client) -> Vec<Value> {
    let list: Value = page
        .get(server.url("/api/v1/fleet/nodes"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    list["nodes"].as_array().unwrap().clone()
}

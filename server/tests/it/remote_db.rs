//! The server on a remote SurrealDB over WebSocket (`--db ws://…`), the same
//! code path as the embedded engine, against the real SurrealDB server
//! (`tools/surreal`, built from crates.io with the workspace).

use std::net::TcpListener;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use wire::jobs::{JobRecord, JobStatus};
use wire::registry::NodeList;

use crate::harness::{eventually, http, sibling_bin, Node, Proc, Server};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn server_keeps_registry_and_jobs_in_a_remote_surrealdb() {
    let bin = sibling_bin("surreal");
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let (_surreal, _) = Proc::start(
        &bin,
        &[
            "start", "--bind", &bind, "--user", "root", "--pass", "root", "memory",
        ],
    );
    eventually(Duration::from_secs(60), "SurrealDB to answer", || {
        http()
            .get(format!("http://{bind}/health"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    let db = format!("ws://{bind}");
    let flags = [
        "--db",
        db.as_str(),
        "--db-user",
        "root",
        "--db-pass",
        "root",
    ];

    let server = Server::start_with(&flags);
    let node = Node::start(&server, 1000);
    let r = server
        .http()
        .post(server.url("/api/v1/jobs"))
        .json(&json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["remote"] } }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let job: JobRecord = r.json().unwrap();
    drop(node);
    drop(server);

    // A second server with an empty data directory sees the same data: it
    // lives in the remote database.
    let again = Server::start_with(&flags);
    let stored: JobRecord = again
        .http()
        .get(again.url(&format!("/api/v1/jobs/{}", job.id)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stored.status, JobStatus::Succeeded);
    assert_eq!(stored.output, job.output);
    let nodes: NodeList = http()
        .get(again.url("/nodes"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(nodes.nodes.len(), 1);
    let listed: Value = again
        .http()
        .get(again.url("/api/v1/jobs"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);
}

#[test]
fn two_servers_on_one_database_list_the_same_nodes_and_share_jobs_and_money() {
    let bin = sibling_bin("surreal");
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let (_surreal, _) = Proc::start(
        &bin,
        &[
            "start", "--bind", &bind, "--user", "root", "--pass", "root", "memory",
        ],
    );
    eventually(Duration::from_secs(60), "SurrealDB to answer", || {
        http()
            .get(format!("http://{bind}/health"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    let db = format!("ws://{bind}");
    let flags = [
        "--db",
        db.as_str(),
        "--db-user",
        "root",
        "--db-pass",
        "root",
    ];
    // Both up before the node: b learns of it from a's writes alone.
    let a = Server::start_with(&flags);
    let b = Server::start_with(&flags);
    let node = Node::start(&a, 1000);
    let listed = eventually(Duration::from_secs(30), "b lists a's node", || {
        let list: NodeList = http().get(b.url("/nodes")).send().ok()?.json().ok()?;
        list.nodes
            .into_iter()
            .find(|n| n.peer_id.to_string() == node.peer_id && n.is_available())
    });
    assert!(listed.offer("all-minilm-l6-v2").is_some());
    // A job through b runs on the node a knows; a reads the same record.
    let r = b
        .http()
        .post(b.url("/api/v1/jobs"))
        .json(&json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["shared"] } }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let job: JobRecord = r.json().unwrap();
    assert_eq!(job.node_id.to_string(), node.peer_id);
    let seen: JobRecord = a
        .http()
        .get(a.url(&format!("/api/v1/jobs/{}", job.id)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(seen.status, JobStatus::Succeeded);
    assert_eq!(seen.receipt, job.receipt);
    // One set of books: both servers see the charge once, and balanced.
    let billing = |s: &Server| -> Value {
        s.http()
            .get(s.url("/api/v1/billing"))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(billing(&a)["balance_msat"], billing(&b)["balance_msat"]);
    assert_eq!(billing(&a)["spent_msat"], job.price_msat.0);
    for s in [&a, &b] {
        let (status, audit, _) = s.admin(&["audit"]);
        assert!(status.success());
        let audit: Value = serde_json::from_str(audit.trim()).unwrap();
        assert_eq!(audit["clean"], true, "{audit}");
    }
}

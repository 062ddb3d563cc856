//! Catching a node that answers wrong, with real processes: a node whose
//! model file was swapped after it hashed it and reloaded (so it serves
//! another computation under the honest file's hash, signing every
//! receipt), honest nodes beside it, and the server's canaries and second
//! opinions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use wire::jobs::JobRecord;
use wire::verify::{Ban, BanRecord, ExhibitRole};

use crate::billing::msat;
use crate::harness::{copied_model, eventually, sibling_bin, temp_dir, Node, Server};

const MODEL: &str = "tensor-demo";

fn job() -> Value {
    json!({"model": MODEL, "input": {"inputs": [
        {"name": "x", "shape": [2, 4], "data": {"dtype": "f32", "values": [3.0, 4.0, 0.0, 1.0, -1.0, 0.5, 0.25, 2.0]}},
        {"name": "scale", "shape": [1], "data": {"dtype": "f32", "values": [0.5]}}
    ]}})
}

fn submit(server: &Server) -> JobRecord {
    let r = server
        .http()
        .post(server.url("/api/v1/jobs"))
        .json(&job())
        .send()
        .unwrap();
    let status = r.status();
    let body: Value = r.json().unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

fn get(server: &Server, path: &str) -> (StatusCode, Value) {
    let r = server.http().get(server.url(path)).send().unwrap();
    let status = r.status();
    (status, r.json().unwrap_or(Value::Null))
}

/// The cheating computation's TorchScript file: the honest interface,
/// another answer.
fn cheat_file() -> PathBuf {
    let python = std::env::var("INFERNET_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = temp_dir("cheat");
    let status = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/export_tensor_demo.py"
        ))
        .arg(&out)
        .arg("--cheat")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("could not run {python}: {e} (run scripts/setup.sh)"));
    assert!(status.success());
    out.join("model.pt")
}

/// A node serving the honest tensor model at `price_msat`, enrolled to
/// the server's local account (whose fleet commands it takes).
fn enrolled(server: &Server, models: &Path, tag: &str) -> Node {
    let account = server.account_of(&server.http());
    let (status, out, err) = server.admin(&["enrol-token", &account]);
    assert!(status.success(), "{err}");
    let made: Value = serde_json::from_str(out.trim()).unwrap();
    let token = made["secret"].as_str().unwrap();
    let key = temp_dir(tag).join("node.key");
    let extra = ["--enroll", token, "--reachability", "public"];
    Node::start_in(server, models, 1000, &key, &extra)
}

/// Turns an enrolled node into a cheat: puts `cheat` in place of its model
/// file and has its operator unload the model, so that it loads the new
/// file on its next job, still under the hash it computed at start-up
/// (nodes hash their files once). Every receipt it signs is then for
/// another computation than the one its hash names.
fn swap_in(server: &Server, node: &Node, models: &Path, cheat: &Path) {
    std::fs::copy(cheat, models.join(MODEL).join("model.pt")).unwrap();
    let (_, listed) = get(server, &format!("/nodes/{}", node.peer_id));
    let hash = listed["models"][0]["hash"].as_str().unwrap().to_owned();
    let r = server
        .http()
        .post(server.url("/api/v1/fleet/commands"))
        .json(&json!({ "nodes": [node.peer_id], "action": { "type": "unload_model", "model": hash } }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().unwrap();
    let id = body["commands"][0]["id"].as_str().unwrap().to_owned();
    let done = eventually(Duration::from_secs(30), "the model is unloaded", || {
        let (_, c) = get(server, &format!("/api/v1/fleet/commands/{id}"));
        c["finished_at"].is_u64().then_some(c)
    });
    assert_eq!(done["status"], "succeeded", "{done}");
}

/// Known answers for the honest tensor model, made by the node binary.
fn canaries() -> PathBuf {
    let file = temp_dir("canaries").join("canaries.json");
    let out = Command::new(sibling_bin("infernet-node"))
        .args(["--make-canaries", file.to_str().unwrap()])
        .args([
            "--canary-count",
            "6",
            "--canary-seed",
            "7",
            "--device",
            "cpu",
        ])
        .arg("--models-dir")
        .arg(copied_model(MODEL, 10))
        .arg("--key-file")
        .arg(temp_dir("canary-key").join("node.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["sets"], 1, "{done}");
    let sets: Vec<wire::verify::CanarySet> =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(sets[0].cases.len(), 6);
    assert_eq!(sets[0].model, MODEL);
    file
}

fn online(server: &Server, node: &Node) {
    eventually(Duration::from_secs(30), "the node is listed online", || {
        let (_, n) = get(server, &format!("/nodes/{}", node.peer_id));
        (n["status"] == "online").then_some(())
    });
}

/// Waits for `node`'s ban and checks it: listed as banned, its signed
/// ban checks out and is this server's.
fn banned(server: &Server, node: &Node) -> Ban {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let ban = loop {
        let (status, body) = get(server, &format!("/nodes/{}/ban", node.peer_id));
        if status == StatusCode::OK {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node was not banned; the server's log:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let record: BanRecord = serde_json::from_value(ban).unwrap();
    let opened: Ban = record
        .signed
        .open()
        .expect("the ban's signature checks out");
    assert_eq!(opened, record.ban);
    assert_eq!(opened.server, server.peer_id());
    assert_eq!(opened.node_id.to_string(), node.peer_id);
    let (_, listed) = get(server, &format!("/nodes/{}", node.peer_id));
    assert_eq!(listed["banned"]["reason"], json!(opened.reason), "{listed}");
    opened
}

fn audit_is_clean(server: &Server) {
    let (status, audit, _) = server.admin(&["audit"]);
    assert!(status.success());
    let audit: Value = serde_json::from_str(audit.trim()).unwrap();
    assert_eq!(audit["clean"], true, "{audit}");
}

#[test]
fn a_second_opinion_catches_a_cheating_node_bans_it_and_refunds_its_consumer() {
    let server = Server::start_with(&["--redundancy", "1", "--canaries-per-hour", "0"]);
    let (_, network) = get(&server, "/api/v1/network");
    assert_eq!(network["verification"]["redundancy"], 1.0, "{network}");
    let key = |tag: &str| temp_dir(tag).join("node.key");
    // The cheat is the cheapest, so it gets the consumer's job.
    let (cheat_models, cheat_file) = (copied_model(MODEL, 5), cheat_file());
    let cheat = enrolled(&server, &cheat_models, "cheat");
    online(&server, &cheat);
    swap_in(&server, &cheat, &cheat_models, &cheat_file);
    let honest = [
        Node::start_in(
            &server,
            &copied_model(MODEL, 20),
            1000,
            &key("honest-1"),
            &[],
        ),
        Node::start_in(
            &server,
            &copied_model(MODEL, 30),
            1000,
            &key("honest-2"),
            &[],
        ),
    ];
    for node in honest.iter().chain([&cheat]) {
        online(&server, node);
    }
    let billing = |server: &Server| {
        let (_, b) = get(server, "/api/v1/billing");
        msat(&b, "balance_msat")
    };
    let before = billing(&server);

    // The consumer gets the cheat's answer (signed, paid)…
    let record = submit(&server);
    assert_eq!(record.node_id.to_string(), cheat.peer_id);
    assert_eq!(billing(&server), before - record.price_msat.0);
    // …then a second node disagrees, a third decides: banned after one job.
    let ban = banned(&server, &cheat);
    let roles: Vec<ExhibitRole> = ban.exhibits.iter().map(|e| e.role).collect();
    assert_eq!(
        roles,
        [
            ExhibitRole::Suspect,
            ExhibitRole::Witness,
            ExhibitRole::Witness
        ]
    );
    assert_eq!(ban.exhibits[0].job_id.as_ref(), Some(&record.id));
    assert_eq!(
        ban.exhibits[0].receipt, record.receipt,
        "the receipt it signed"
    );
    // A consumer's answers stay private: the evidence is receipts.
    assert!(ban.input.is_none() && ban.exhibits.iter().all(|e| e.output.is_none()));
    for witness in &ban.exhibits[1..] {
        let node = witness.node_id.unwrap().to_string();
        assert!(honest.iter().any(|h| h.peer_id == node));
        let receipt: wire::jobs::Receipt = witness.receipt.as_ref().unwrap().open().unwrap();
        assert_eq!(receipt.model_hash, record.model_hash);
        assert!(!witness.against_suspect.as_ref().unwrap().agrees());
    }

    // The consumer has their money back, and the job says why.
    eventually(Duration::from_secs(10), "the job is refunded", || {
        (billing(&server) == before).then_some(())
    });
    let (_, again) = get(&server, &format!("/api/v1/jobs/{}", record.id));
    let again: JobRecord = serde_json::from_value(again).unwrap();
    let last = again.events.last().unwrap().message.clone().unwrap();
    assert!(last.starts_with("refunded"), "{last}");

    // Not routed to any more; the honest nodes take the jobs and agree
    // with each other (their second opinions ban nobody).
    for _ in 0..3 {
        let next = submit(&server);
        assert_ne!(next.node_id.to_string(), cheat.peer_id);
    }
    let (_, list) = get(&server, "/nodes");
    for n in list["nodes"].as_array().unwrap() {
        let banned = n["peer_id"] == json!(cheat.peer_id);
        assert_eq!(n.get("banned").is_some(), banned, "{n}");
    }
    let (_, rep) = get(&server, &format!("/nodes/{}", cheat.peer_id));
    assert_eq!(rep["reputation"]["disputes_lost"], 1, "{rep}");
    for h in &honest {
        let (status, _) = get(&server, &format!("/nodes/{}/ban", h.peer_id));
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    audit_is_clean(&server);

    // The ban outlives a restart (and is still this server's, signed).
    let server = server.restart_gracefully();
    let again = banned(&server, &cheat);
    assert_eq!(again, ban);
}

#[test]
fn canaries_catch_a_cheating_node_and_never_an_honest_one() {
    let canaries = canaries();
    let server = Server::start_with(&[
        "--canaries",
        canaries.to_str().unwrap(),
        "--canaries-per-hour",
        "3600",
    ]);
    let (_, network) = get(&server, "/api/v1/network");
    assert_eq!(network["verification"]["canaries_per_hour"], 3600.0);
    assert_eq!(
        network["verification"]["canary_models"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let key = |tag: &str| temp_dir(tag).join("node.key");
    // The honest node first: it is there to confirm the known answer
    // when the cheat's first canary comes back wrong.
    // Public: the CLI below dials it directly, as any consumer would.
    let honest = Node::start_in(
        &server,
        &copied_model(MODEL, 20),
        1000,
        &key("honest"),
        &["--reachability", "public"],
    );
    online(&server, &honest);
    let (cheat_models, cheat_file) = (copied_model(MODEL, 5), cheat_file());
    let cheat = enrolled(&server, &cheat_models, "cheat");
    online(&server, &cheat);
    swap_in(&server, &cheat, &cheat_models, &cheat_file);

    let ban = banned(&server, &cheat);
    assert!(ban.reason.contains("canary"), "{}", ban.reason);
    // The canary is the server's own: its input and every answer are shown.
    assert!(ban.input.is_some());
    let roles: Vec<ExhibitRole> = ban.exhibits.iter().map(|e| e.role).collect();
    assert_eq!(
        roles,
        [
            ExhibitRole::Suspect,
            ExhibitRole::Reference,
            ExhibitRole::Witness
        ]
    );
    assert!(ban.exhibits.iter().all(|e| e.output.is_some()));
    assert_eq!(
        ban.exhibits[2].node_id.unwrap().to_string(),
        honest.peer_id,
        "the honest node gave the known answer"
    );
    assert!(ban.exhibits[2]
        .against_suspect
        .as_ref()
        .is_some_and(|a| !a.agrees()));

    // The honest node keeps passing canaries and is never banned.
    eventually(
        Duration::from_secs(30),
        "the honest node passes canaries",
        || {
            let (_, n) = get(&server, &format!("/nodes/{}", honest.peer_id));
            (n["reputation"]["canaries_passed"].as_u64()? >= 3).then_some(())
        },
    );
    let (_, n) = get(&server, &format!("/nodes/{}", honest.peer_id));
    assert_eq!(n["reputation"]["canaries_failed"], 0, "{n}");
    assert!(n.get("banned").is_none());
    let (_, c) = get(&server, &format!("/nodes/{}", cheat.peer_id));
    assert!(
        c["reputation"]["canaries_failed"].as_u64().unwrap() >= 1,
        "{c}"
    );
    // Its jobs go to the honest node.
    let next = submit(&server);
    assert_eq!(next.node_id.to_string(), honest.peer_id);
    audit_is_clean(&server);

    // Anyone can run the same known answers with the CLI: the honest
    // node's all agree; known answers that are wrong, none do.
    let check = |file: &Path, provider: &str| {
        let out = Command::new(sibling_bin("infernet"))
            .args(["--peer", &server.p2p_tcp(), "check", "--canaries"])
            .arg(file)
            .args(["--provider", provider, "--timeout", "60"])
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), report, stderr)
    };
    // The DHT through the server finds the provider within moments.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (code, report, stderr) = loop {
        let found = check(&canaries, &honest.peer_id);
        if found.0 != Some(3) || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(
        (report["checked"].as_u64(), report["agreed"].as_u64()),
        (Some(6), Some(6)),
        "{report}"
    );
    let cases = report["sets"][0]["cases"].as_array().unwrap();
    assert!(
        cases
            .iter()
            .all(|c| c["provider"] == json!(honest.peer_id) && c["device"] == "cpu"),
        "{report}"
    );
    assert!(stderr.contains("6 of 6 answers agree"), "{stderr}");
    let mut sets: Vec<wire::verify::CanarySet> =
        serde_json::from_slice(&std::fs::read(&canaries).unwrap()).unwrap();
    for case in &mut sets[0].cases {
        if let wire::jobs::JobOutput::Tensor { outputs } = &mut case.output {
            for t in outputs {
                if let wire::jobs::TensorData::F32(values) = &mut t.data {
                    values.iter_mut().for_each(|v| *v += 1.0);
                }
            }
        }
    }
    let wrong = temp_dir("wrong-canaries").join("canaries.json");
    std::fs::write(&wrong, serde_json::to_vec(&sets).unwrap()).unwrap();
    let (code, report, stderr) = check(&wrong, &honest.peer_id);
    assert_eq!(code, Some(5), "{report}\n{stderr}");
    assert_eq!(report["disagreed"].as_u64(), Some(6), "{report}");
    assert!(stderr.contains("disagrees"), "{stderr}");
    // A provider that does not serve the model: nothing checked (3); a
    // file that is not canaries: bad input (2), before any job.
    let (code, report, _) = check(&canaries, &server.peer_id().to_string());
    assert_eq!(code, Some(3), "{report}");
    assert!(report["sets"][0]["skipped"].is_string(), "{report}");
    let (code, _, stderr) = check(&temp_dir("not-canaries"), &honest.peer_id);
    assert_eq!(code, Some(2), "{stderr}");
}

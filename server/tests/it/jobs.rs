//! Jobs from `POST /api/v1/jobs` through libp2p to a real node and back.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use wire::jobs::{cosine, verify_receipt, JobOutput, JobRecord, JobStatus};

use crate::harness::{eventually, priced_models, temp_dir, Node, Server};

fn submit(server: &Server, body: &Value) -> (StatusCode, Value) {
    let r = server
        .http()
        .post(server.url("/api/v1/jobs"))
        .json(body)
        .send()
        .unwrap();
    (r.status(), r.json().unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}

/// Embeddings of `texts` from PyTorch eager (sentence-transformers) in the venv.
fn reference_embeddings(texts: &[String]) -> Vec<Vec<f32>> {
    let python = std::env::var("INFERNET_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/reference_embedding.py"
    );
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {python}: {e} (run scripts/setup.sh)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(texts).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference_embedding.py failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn embedding_job_matches_pytorch_and_carries_a_valid_signed_receipt() {
    let server = Server::start();
    let node = Node::start(&server, 1000);
    let texts: Vec<String> = vec![
        "A man is playing a guitar.".into(),
        "The quick brown fox jumps over the lazy dog.".into(),
        // Longer than the model's 256-token window: truncated the same way.
        "Infernet sells inference over a peer-to-peer network. ".repeat(40),
        "Ünïcödé, punctuation — and an emoji 🚀!".into(),
    ];
    let (status, body) = submit(
        &server,
        &json!({ "model": "all-minilm-l6-v2", "input": { "texts": texts } }),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let record: JobRecord = serde_json::from_value(body).unwrap();
    assert_eq!(record.status, JobStatus::Succeeded);
    assert_eq!(record.node_id.to_string(), node.peer_id);

    let Some(JobOutput::Embedding { dim, vectors }) = &record.output else {
        panic!("no embedding output: {record:?}");
    };
    assert_eq!(*dim, 384);
    assert_eq!(vectors.len(), texts.len());
    let reference = reference_embeddings(&texts);
    for (i, (got, want)) in vectors.iter().zip(&reference).enumerate() {
        let c = cosine(got, want);
        eprintln!("text {i}: cosine(node, pytorch) = {c:.7}");
        assert!(c >= 0.999, "text {i}: cosine {c}");
    }

    let receipt = verify_receipt(
        record.receipt.as_ref().unwrap(),
        &record.terms(),
        record.output.as_ref().unwrap(),
    )
    .unwrap();
    assert_eq!(receipt.price_msat, record.price_msat);
    assert!(
        record.max_price_msat >= record.price_msat && record.max_price_msat.0 > 0,
        "the agreed budget is kept with the job: {:?}",
        record.max_price_msat
    );
    assert_eq!(receipt.device, "cpu");

    // Read back from the database: the same job, with both status changes.
    let stored: JobRecord = server
        .http()
        .get(server.url(&format!("/api/v1/jobs/{}", record.id)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stored.output, record.output);
    assert_eq!(stored.receipt, record.receipt);
    let statuses: Vec<JobStatus> = stored.events.iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![JobStatus::Dispatched, JobStatus::Succeeded]);
    let listed: Value = server
        .http()
        .get(server.url("/api/v1/jobs"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["jobs"][0]["id"], record.id.to_string());
}

#[test]
fn bad_job_requests_get_clear_errors_and_store_nothing() {
    let server = Server::start();
    let (status, body) = submit(
        &server,
        &json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["x"] } }),
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "unknown_model")
    );

    let node = Node::start(&server, 1000);
    let cases = [
        (
            json!({ "model": "nope", "input": { "texts": ["x"] } }),
            StatusCode::NOT_FOUND,
            "unknown_model",
        ),
        (
            json!({ "model": "all-minilm-l6-v2", "input": { "text": "x" } }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({ "model": "all-minilm-l6-v2", "input": { "texts": [] } }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["x"] }, "colour": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_json",
        ),
        (
            json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["x"] }, "max_price_msat": 1 }),
            StatusCode::SERVICE_UNAVAILABLE,
            "no_node_available",
        ),
        (
            json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["x"] }, "node": "12D3KooWLF4yeyXjVmzKpuHRNyAvLDUns5r2FkiLrPRV3S2x5DvC" }),
            StatusCode::SERVICE_UNAVAILABLE,
            "no_node_available",
        ),
        (
            json!({ "model": "", "input": {} }),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let (status, answer) = submit(&server, &body);
        assert_eq!(
            (status, code(&answer)),
            (want_status, want_code),
            "{body} -> {answer}"
        );
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }

    let r = server
        .http()
        .post(server.url("/api/v1/jobs"))
        .header("content-type", "application/json")
        .body("{\"model\": \"all-minilm-l6-v2\", \"input\": ")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&r.json().unwrap()), "invalid_json");

    // Just over the 1 MiB limit: the server answers once it has read the
    // limit, so a much larger body would still be on its way when it closes
    // the connection (a broken pipe instead of the answer).
    let huge = json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["y".repeat(1024 * 1024 + 16 * 1024)] } });
    let (status, body) = submit(&server, &huge);
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );

    let listed: Value = server
        .http()
        .get(server.url("/api/v1/jobs"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["jobs"], json!([]), "a refused job was stored");

    let r = server
        .http()
        .get(server.url("/api/v1/jobs/not-a-job"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = server
        .http()
        .get(server.url(&format!("/api/v1/jobs/{}", "0".repeat(32))))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    drop(node);
}

#[test]
fn node_that_vanishes_mid_job_fails_the_job_with_a_complete_record() {
    let server = Server::start();
    let mut node = Node::start(&server, 1000);
    // Big enough to take a while on a CPU: 64 texts at the 256-token window.
    let texts: Vec<String> = (0..64)
        .map(|i| format!("Sentence number {i} about distributed inference markets. ").repeat(30))
        .collect();
    let body = json!({ "model": "all-minilm-l6-v2", "input": { "texts": texts } });
    let url = server.url("/api/v1/jobs");
    let client = server.http();
    let pending = std::thread::spawn(move || {
        let r = client.post(url).json(&body).send().unwrap();
        (r.status(), r.json::<Value>().unwrap())
    });
    node.proc
        .wait_for_log("running job", Duration::from_secs(60));
    node.proc.kill();

    let (status, body) = pending.join().unwrap();
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_GATEWAY, "node_disconnected"),
        "{body}"
    );
    let job_id = body["error"]["job_id"]
        .as_str()
        .expect("the error names the recorded job");

    let stored: JobRecord = server
        .http()
        .get(server.url(&format!("/api/v1/jobs/{job_id}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stored.status, JobStatus::Failed);
    assert_eq!(
        stored.error.as_ref().unwrap().error.code,
        "node_disconnected"
    );
    assert!(stored.output.is_none() && stored.receipt.is_none());
    assert!(stored.finished_at.is_some());
    let statuses: Vec<JobStatus> = stored.events.iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![JobStatus::Dispatched, JobStatus::Failed]);
}

#[test]
fn tensor_and_generation_jobs_run_through_the_job_api() {
    let server = Server::start();
    let _node = Node::start(&server, 1000);
    let (status, body) = submit(
        &server,
        &json!({"model": "tensor-demo", "input": {"inputs": [
            {"name": "x", "shape": [1, 4], "data": {"dtype": "f32", "values": [3.0, 4.0, 0.0, 0.0]}},
            {"name": "scale", "shape": [1], "data": {"dtype": "f32", "values": [0.5]}}
        ]}}),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let record: JobRecord = serde_json::from_value(body).unwrap();
    let Some(JobOutput::Tensor { outputs }) = &record.output else {
        panic!("{:?}", record.output);
    };
    assert_eq!(outputs[0].name, "y");
    assert_eq!(outputs[0].data, wire::jobs::TensorData::F32(vec![3.5, 3.0]));
    assert_eq!(outputs[1].data, wire::jobs::TensorData::F32(vec![2.5]));

    // A bad tensor is refused by the node with a reason, as a 400.
    let (status, body) = submit(
        &server,
        &json!({"model": "tensor-demo", "input": {"inputs": [
            {"name": "x", "shape": [1, 3], "data": {"dtype": "f32", "values": [3.0, 4.0, 0.0]}},
            {"name": "scale", "shape": [1], "data": {"dtype": "f32", "values": [0.5]}}
        ]}}),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("shape"));

    // Generation through the job API: priced by its metered tokens.
    let (status, body) = submit(
        &server,
        &json!({"model": "tiny-gpt2", "input": {"prompt": "Once", "max_tokens": 6}}),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let record: JobRecord = serde_json::from_value(body).unwrap();
    let receipt: wire::jobs::Receipt = record.receipt.as_ref().unwrap().open().unwrap();
    assert_eq!(receipt.usage.output_tokens, 6);
    assert!(receipt.usage.input_tokens >= 1);
    assert_eq!(
        receipt.price_msat.0,
        receipt.usage.input_tokens as u64 + 2 * receipt.usage.output_tokens as u64,
        "0 per job + 1 msat per input token + 2 per output token"
    );
    assert_eq!(record.price_msat, receipt.price_msat);
}

#[test]
fn a_job_moves_to_the_next_node_when_the_cheapest_is_silent_or_gone_and_is_charged_once() {
    // The first-output timeout short, so that a silent node is left soon.
    let server = Server::start_with(&["--first-output-secs", "3"]);
    // Nodes announce themselves every 10 s: a node that dies stays listed
    // online for a while, as it would on a real network.
    let key = |tag: &str| temp_dir(tag).join("node.key");
    let mut cheap = Node::start_in(&server, &priced_models(100), 10_000, &key("cheap"), &[]);
    let dear = Node::start_in(&server, &priced_models(900), 10_000, &key("dear"), &[]);
    let listed = |id: &str| {
        eventually(Duration::from_secs(30), "both nodes listed", || {
            let n: Value = server
                .http()
                .get(server.url(&format!("/nodes/{id}")))
                .send()
                .unwrap()
                .json()
                .ok()?;
            (n["status"] == "online").then_some(())
        })
    };
    listed(&cheap.peer_id);
    listed(&dear.peer_id);
    let job = json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["failover"] } });
    let balance = |s: &Server| -> i64 {
        let b: Value = s
            .http()
            .get(s.url("/api/v1/billing"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        b["balance_msat"].as_i64().unwrap()
    };

    // Up: the cheapest runs it, alone.
    let (status, body) = submit(&server, &job);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["node_id"], cheap.peer_id.as_str());
    assert!(body.get("attempts").is_none(), "{body}");

    // Silent (stopped, its connection still open): after the first-output
    // timeout the job goes to the next node, under the same id.
    cheap.proc.signal("STOP");
    let before = balance(&server);
    let (status, body) = submit(&server, &job);
    cheap.proc.signal("CONT");
    assert_eq!(status, StatusCode::OK, "{body}");
    let record: JobRecord = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(record.node_id.to_string(), dear.peer_id);
    assert_eq!(record.attempts.len(), 1, "{body}");
    assert_eq!(record.attempts[0].node_id.to_string(), cheap.peer_id);
    assert_eq!(record.attempts[0].error.error.code, "node_timeout");
    let moved = record
        .events
        .iter()
        .filter_map(|e| e.message.as_deref())
        .find(|m| m.contains("sent to") && m.contains(&dear.peer_id))
        .unwrap_or_else(|| panic!("no event of the move: {body}"));
    assert!(moved.contains(&cheap.peer_id), "{moved}");
    // The receipt is the node's that ran it, for this job; charged once,
    // what that node asked.
    let receipt = verify_receipt(
        record.receipt.as_ref().unwrap(),
        &record.terms(),
        record.output.as_ref().unwrap(),
    )
    .unwrap();
    assert_eq!(receipt.price_msat.0, 900);
    assert_eq!(before - balance(&server), 900);
    // Read back, the record says the same.
    let stored: JobRecord = server
        .http()
        .get(server.url(&format!("/api/v1/jobs/{}", record.id)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stored.node_id, record.node_id);
    assert_eq!(stored.attempts, record.attempts);
    assert_eq!(stored.events.len(), record.events.len());

    // Gone (killed, still listed online): the dial fails, or nothing
    // answers in time, and the job moves.
    cheap.proc.kill();
    let before = balance(&server);
    let (status, body) = submit(&server, &job);
    assert_eq!(status, StatusCode::OK, "{body}");
    let record: JobRecord = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(record.node_id.to_string(), dear.peer_id);
    assert_eq!(record.attempts.len(), 1, "{body}");
    assert!(
        ["node_unreachable", "node_disconnected", "node_timeout"]
            .contains(&record.attempts[0].error.error.code.as_str()),
        "{body}"
    );
    assert_eq!(before - balance(&server), 900);

    // A node named by the consumer is that node or nothing.
    let (status, body) = submit(
        &server,
        &json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["x"] }, "node": cheap.peer_id }),
    );
    assert!(
        [StatusCode::BAD_GATEWAY, StatusCode::GATEWAY_TIMEOUT].contains(&status),
        "{body}"
    );
    let failed: JobRecord = server
        .http()
        .get(server.url(&format!(
            "/api/v1/jobs/{}",
            body["error"]["job_id"].as_str().unwrap()
        )))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.attempts.is_empty());

    // Money: every hold settled once, the books balanced.
    let (status, audit, _) = server.admin(&["audit"]);
    assert!(status.success());
    let audit: Value = serde_json::from_str(audit.trim()).unwrap();
    assert_eq!(audit["clean"], true, "{audit}");
    drop(dear);
}

#[test]
fn a_flood_of_jobs_from_one_account_or_address_is_cut_off_with_429_and_retry_after() {
    // No node: each job is refused for its model, after the limits.
    let job = json!({ "model": "nope", "input": { "texts": ["x"] } });
    let server = Server::start_with(&["--jobs-per-minute", "3"]);
    for _ in 0..3 {
        let (status, body) = submit(&server, &job);
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let r = server
        .http()
        .post(server.url("/api/v1/jobs"))
        .json(&job)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=21).contains(&wait), "{wait}");
    let body: Value = r.json().unwrap();
    assert_eq!(code(&body), "rate_limited", "{body}");
    // The same account on the OpenAI API: OpenAI's shape.
    let r = server
        .http()
        .post(server.url("/v1/embeddings"))
        .json(&json!({ "model": "nope", "input": "x" }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");

    // Per address: counted before the account's.
    let server = Server::start_with(&["--jobs-per-minute-per-ip", "2"]);
    for _ in 0..2 {
        assert_eq!(submit(&server, &job).0, StatusCode::NOT_FOUND);
    }
    let (status, body) = submit(&server, &job);
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let r = server
        .http()
        .post(server.url("/v1/chat/completions"))
        .json(&json!({ "model": "nope", "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Reading is not limited.
    let r = server
        .http()
        .get(server.url("/api/v1/jobs"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

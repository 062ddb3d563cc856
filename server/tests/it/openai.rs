//! The OpenAI-compatible API, driven by raw HTTP (shapes, the SSE chunk
//! format and `[DONE]`, error shapes) and by the official `openai` Python
//! library, unchanged.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};
use wire::jobs::{cosine, JobRecord, JobStatus};

use crate::harness::{client_with_key, http, Node, Server};
use crate::wallet::{browser, create_key, sign_in, Wallet};

fn post(server: &Server, path: &str, body: &Value) -> (StatusCode, Value) {
    let r = server
        .http()
        .post(server.url(path))
        .json(body)
        .send()
        .unwrap();
    (r.status(), r.json().unwrap_or(Value::Null))
}

/// The `data:` payloads of a server-sent event stream, in order.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

fn chat_body(stream: bool) -> Value {
    json!({
        "model": "tiny-gpt2",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        "max_tokens": 10,
        "temperature": 0,
        "stream": stream,
    })
}

#[test]
fn openai_shapes_streaming_chunks_and_errors_over_raw_http() {
    let server = Server::start();
    let _node = Node::start(&server, 1000);

    // Models.
    let models: Value = http()
        .get(server.url("/v1/models"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["all-minilm-l6-v2", "tensor-demo", "tiny-gpt2"]);
    assert_eq!(models["data"][0]["object"], "model");
    let one = http()
        .get(server.url("/v1/models/tiny-gpt2"))
        .send()
        .unwrap();
    assert_eq!(one.status(), StatusCode::OK);
    let missing = http().get(server.url("/v1/models/nope")).send().unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let missing: Value = missing.json().unwrap();
    assert_eq!(missing["error"]["code"], "model_not_found");
    assert_eq!(missing["error"]["type"], "invalid_request_error");

    // Embeddings, as floats and as base64 little-endian f32s.
    let (status, emb) = post(
        &server,
        "/v1/embeddings",
        &json!({"model": "all-minilm-l6-v2", "input": ["a cat sits", "a cat sits"]}),
    );
    assert_eq!(status, StatusCode::OK, "{emb}");
    assert_eq!(emb["object"], "list");
    assert_eq!(emb["data"][1]["index"], 1);
    assert_eq!(emb["data"][0]["object"], "embedding");
    let v: Vec<f32> = serde_json::from_value(emb["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(v.len(), 384);
    assert!(emb["usage"]["prompt_tokens"].as_u64().unwrap() >= 6);
    let (_, b64) = post(
        &server,
        "/v1/embeddings",
        &json!({"model": "all-minilm-l6-v2", "input": "a cat sits", "encoding_format": "base64"}),
    );
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(cosine(&decoded, &v) > 0.9999);

    // A whole chat completion; its job is recorded like any other.
    let (status, done) = post(&server, "/v1/chat/completions", &chat_body(false));
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["object"], "chat.completion");
    assert_eq!(done["choices"][0]["message"]["role"], "assistant");
    assert_eq!(done["choices"][0]["finish_reason"], "length");
    assert_eq!(done["usage"]["completion_tokens"], 10);
    let text = done["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let job_id = done["infernet"]["job_id"].as_str().unwrap();
    let record: JobRecord = server
        .http()
        .get(server.url(&format!("/api/v1/jobs/{job_id}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(record.status, JobStatus::Succeeded);
    assert_eq!(
        record.price_msat.0,
        done["infernet"]["price_msat"].as_u64().unwrap()
    );

    // The same chat streamed: a role chunk, content chunks, a finish chunk,
    // then [DONE]; the pieces make the same text.
    let streamed = server
        .http()
        .post(server.url("/v1/chat/completions"))
        .json(&chat_body(true))
        .send()
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::OK);
    assert!(streamed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let data = sse_data(&streamed.text().unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.len() >= 3, "{chunks:?}");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["choices"][0]["finish_reason"].is_null()));
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(joined, text, "greedy: the stream equals the whole answer");

    // Errors in OpenAI's shape, before any stream starts.
    for (path, body, status, param) in [
        (
            "/v1/chat/completions",
            json!({"model": "tiny-gpt2", "messages": []}),
            400,
            "messages",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny-gpt2", "messages": [{"role": "user", "content": "x"}], "n": 3}),
            400,
            "n",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny-gpt2", "messages": [{"role": "user", "content": "x"}], "stream": true, "top_p": 0}),
            400,
            "top_p",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
            404,
            "model",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "all-minilm-l6-v2", "messages": [{"role": "user", "content": "x"}]}),
            400,
            "model",
        ),
        (
            "/v1/embeddings",
            json!({"model": "all-minilm-l6-v2", "input": [1, 2, 3]}),
            400,
            "input",
        ),
        (
            "/v1/embeddings",
            json!({"model": "all-minilm-l6-v2", "input": "x", "dimensions": 12}),
            400,
            "dimensions",
        ),
    ] {
        let (got, err) = post(&server, path, &body);
        assert_eq!(got.as_u16(), status, "{body} -> {err}");
        assert_eq!(err["error"]["param"], param, "{body} -> {err}");
        assert!(err["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(err["error"]["type"].is_string());
    }
    let garbage = server
        .http()
        .post(server.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    let garbage: Value = garbage.json().unwrap();
    assert_eq!(garbage["error"]["type"], "invalid_request_error");
    let huge = json!({"model": "tiny-gpt2", "messages": [{"role": "user", "content": "x".repeat(2 << 20)}]});
    let (status, _) = post(&server, "/v1/chat/completions", &huge);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A prompt longer than the model's context is refused by the node.
    let (status, err) = post(
        &server,
        "/v1/chat/completions",
        &json!({"model": "tiny-gpt2", "messages": [{"role": "user", "content": "word ".repeat(300)}]}),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("tokens"));
}

#[test]
fn the_official_openai_python_library_works_unchanged() {
    let server = Server::start();
    let _node = Node::start(&server, 1000);
    // A key made in a signed-in session, and one made and revoked.
    let page = browser(&server);
    sign_in(
        &server,
        &page,
        &Wallet::from_seed(b"openai client test wallet seed 1"),
    );
    let (key, _) = create_key(&server, &page, "python", &["jobs"]);
    server.credit_with_key(
        &server.account_of(&client_with_key(&key)),
        10_000_000,
        "python",
    );
    let (revoked, revoked_id) = create_key(&server, &page, "old", &["jobs"]);
    // And an account with no money.
    let poor = browser(&server);
    sign_in(
        &server,
        &poor,
        &Wallet::from_seed(b"openai client test: broke wallet"),
    );
    let (broke, _) = create_key(&server, &poor, "python", &["jobs"]);
    let r = page
        .delete(server.url(&format!("/api/v1/account/keys/{revoked_id}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let python = std::env::var("INFERNET_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/openai_client.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(server.url("/v1"))
        .arg(&key)
        .arg(&revoked)
        .arg(&broke)
        .output()
        .unwrap_or_else(|e| panic!("could not run {python}: {e} (run scripts/setup.sh)"));
    assert!(
        out.status.success(),
        "openai_client.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got["models"],
        json!(["all-minilm-l6-v2", "tensor-demo", "tiny-gpt2"])
    );
    let e = &got["embeddings"];
    assert_eq!(e["count"], 2);
    assert_eq!(e["dim"], 384);
    // The library asks for base64 by default and decodes it itself: the
    // same numbers as the float encoding (up to batch-size rounding).
    let first: Vec<f32> = serde_json::from_value(e["first"].clone()).unwrap();
    let float_first: Vec<f32> = serde_json::from_value(e["float_first"].clone()).unwrap();
    for (a, b) in first.iter().zip(&float_first) {
        assert!((a - b).abs() < 1e-5, "{first:?} vs {float_first:?}");
    }
    let chat = &got["chat"];
    assert_eq!(chat["finish_reason"], "length");
    assert_eq!(chat["completion_tokens"], 12);
    assert!(chat["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let s = &got["stream"];
    let pieces: Vec<String> = serde_json::from_value(s["pieces"].clone()).unwrap();
    assert!(pieces.len() > 1, "streamed in pieces: {pieces:?}");
    assert_eq!(pieces.concat(), chat["content"].as_str().unwrap());
    assert_eq!(s["finish_reason"], "length");
    assert_eq!(s["completion_tokens"], 12);
    let errors = &got["errors"];
    assert_eq!(errors["unknown_model"]["status"], 404);
    assert_eq!(errors["unknown_model"]["code"], "model_not_found");
    assert_eq!(errors["bad_temperature"]["status"], 400);
    assert_eq!(errors["bad_temperature"]["param"], "temperature");
    assert_eq!(errors["wrong_task"]["status"], 400);
    for case in ["none", "bad", "revoked"] {
        assert_eq!(
            got["auth"][case],
            json!({ "status": 401, "code": "invalid_api_key", "type": "authentication_error" }),
            "{case}"
        );
    }
    assert_eq!(
        got["broke"],
        json!({ "status": 402, "code": "insufficient_quota", "type": "insufficient_quota" })
    );
    // What the jobs cost is in the account's billing history.
    let billing: Value = page
        .get(server.url("/api/v1/billing"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let spent = billing["spent_msat"].as_u64().unwrap();
    assert!(spent > 0, "{billing}");
    assert_eq!(
        billing["balance_msat"].as_u64().unwrap(),
        10_000_000 - spent
    );
    let history: Value = page
        .get(server.url("/api/v1/billing/history?limit=1000"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let charged: i64 = history["postings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["book"] == "balance" && p["kind"] != "credit")
        .map(|p| p["amount_msat"].as_i64().unwrap())
        .sum();
    assert_eq!(-charged, spent as i64);
}

/// A streaming chat whose client hangs up mid-way: the server asks the
/// node to stop, the node signs a receipt for what it generated, and the
/// consumer pays for that, not for the whole reply.
#[test]
fn a_client_that_hangs_up_mid_stream_pays_only_for_what_was_generated() {
    use std::io::Read;
    let server = Server::start();
    let _node = Node::start(&server, 1000);
    let client = server.http();
    let before: Value = client
        .get(server.url("/api/v1/billing"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut r = client
        .post(server.url("/v1/chat/completions"))
        .json(&json!({
            "model": "tiny-gpt2",
            "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": 120,
            "temperature": 0,
            "stream": true,
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Read until the first text arrives, then hang up.
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("\"content\":\"") || seen.matches("data:").count() < 3 {
        let n = r.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    drop(r);

    // The job ends, stopped, with a receipt for what the node generated.
    let job =
        crate::harness::eventually(std::time::Duration::from_secs(60), "the job's end", || {
            let list: Value = client
                .get(server.url("/api/v1/jobs?limit=1"))
                .send()
                .ok()?
                .json()
                .ok()?;
            let id = list["jobs"][0]["id"].as_str()?.to_owned();
            let job: JobRecord = client
                .get(server.url(&format!("/api/v1/jobs/{id}")))
                .send()
                .ok()?
                .json()
                .ok()?;
            (job.status != JobStatus::Dispatched).then_some(job)
        });
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    let Some(wire::jobs::JobOutput::TextGeneration { finish_reason, .. }) = &job.output else {
        panic!("{job:?}")
    };
    assert_eq!(finish_reason.as_str(), "stopped");
    let receipt: wire::jobs::Receipt = job.receipt.as_ref().unwrap().open().unwrap();
    assert!(receipt.usage.output_tokens < 120, "{receipt:?}");
    assert_eq!(job.price_msat, receipt.price_msat);
    // What left the balance is that price, no more.
    let after: Value = client
        .get(server.url("/api/v1/billing"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        before["balance_msat"].as_u64().unwrap() - after["balance_msat"].as_u64().unwrap(),
        receipt.price_msat.0
    );
}

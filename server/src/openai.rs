//! The OpenAI-compatible API: `GET /v1/models`, `POST /v1/embeddings` and
//! `POST /v1/chat/completions` (whole, or streamed as server-sent events in
//! OpenAI's chunk format). Requests become Infernet jobs: routed to a node
//! over libp2p, recorded, and answered with the node's verified result.
//! Errors use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`,
//! so that the official client libraries raise their usual exceptions.
//!
//! Each answer also carries an `infernet` object (job id, node, price, the
//! signed receipt); OpenAI's clients keep unknown fields.

use std::convert::Infallible;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use wire::jobs::{
    ChatMessage, GenerationParams, JobInput, JobOutput, JobRecord, Prompt, Receipt, Role,
    MAX_OUTPUT_TOKENS,
};
use wire::registry::{NodeStatus, Task};
use wire::{MilliSats, UnixMillis};

use crate::error::ApiError;
use crate::jobs::MAX_JOB_BODY;
use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/chat/completions", post(chat))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JOB_BODY))
}

/// An [`ApiError`] in OpenAI's error shape.
#[derive(Debug)]
pub(crate) struct OpenAiError {
    error: Box<ApiError>,
    param: Option<&'static str>,
}

impl From<ApiError> for OpenAiError {
    /// Errors about which model or node are about the `model` parameter.
    fn from(error: ApiError) -> Self {
        let param = matches!(
            error,
            ApiError::UnknownModel(_) | ApiError::NoNodeAvailable(_)
        )
        .then_some("model");
        OpenAiError {
            error: Box::new(error),
            param,
        }
    }
}

impl From<JsonRejection> for OpenAiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::from(r).into()
    }
}

fn invalid(param: &'static str, message: impl Into<String>) -> OpenAiError {
    OpenAiError {
        error: Box::new(ApiError::BadRequest(message.into())),
        param: Some(param),
    }
}

impl OpenAiError {
    fn body(&self) -> Value {
        let status = self.error.status();
        let kind = match status.as_u16() {
            400 | 404 | 409 | 413 | 415 | 422 => "invalid_request_error",
            401 => "authentication_error",
            402 => "insufficient_quota",
            429 => "rate_limit_error",
            _ => "server_error",
        };
        let code = match &*self.error {
            ApiError::UnknownModel(_) => "model_not_found",
            ApiError::Job { source, .. } if matches!(**source, ApiError::UnknownModel(_)) => {
                "model_not_found"
            }
            other => other.code(),
        };
        let mut body = json!({
            "error": {
                "message": self.error.to_string(),
                "type": kind,
                "param": self.param,
                "code": code,
            }
        });
        if let ApiError::Job { job_id, .. } = &*self.error {
            body["error"]["job_id"] = json!(job_id);
        }
        body
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status = self.error.status();
        if status.is_server_error() {
            tracing::warn!(error = %self.error, "OpenAI API request failed");
        }
        (status, Json(self.body())).into_response()
    }
}

/// `axum::Json` whose rejections are OpenAI-shaped errors.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(OpenAiError))]
pub(crate) struct OaiJson<T>(pub T);

// ---------------------------------------------------------------- models

async fn models(State(state): State<AppState>) -> Result<Json<Value>, OpenAiError> {
    let data = model_list(&state).await?;
    Ok(Json(json!({ "object": "list", "data": data })))
}

async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    model_list(&state)
        .await?
        .into_iter()
        .find(|m| m["id"] == id.as_str())
        .map(Json)
        .ok_or_else(|| OpenAiError {
            error: Box::new(ApiError::UnknownModel(id)),
            param: Some("model"),
        })
}

/// Every model some online node offers, once, with Infernet's facts.
async fn model_list(state: &AppState) -> Result<Vec<Value>, ApiError> {
    let nodes = state.registry.all(UnixMillis::now()).await?;
    let mut models: Vec<Value> = Vec::new();
    for node in nodes.iter().filter(|n| n.status == NodeStatus::Online) {
        for offer in &node.models {
            match models.iter_mut().find(|m| m["id"] == offer.name.as_str()) {
                Some(m) => {
                    let providers = m["infernet"]["providers"].as_u64().unwrap_or(0) + 1;
                    m["infernet"]["providers"] = json!(providers);
                    let cheapest = m["infernet"]["price_msat"].as_u64().unwrap_or(u64::MAX);
                    m["infernet"]["price_msat"] = json!(cheapest.min(offer.price_msat.0));
                    let created = m["created"].as_u64().unwrap_or(u64::MAX);
                    m["created"] = json!(created.min(node.registered_at.0 / 1000));
                }
                None => models.push(json!({
                    "id": offer.name,
                    "object": "model",
                    "created": node.registered_at.0 / 1000,
                    "owned_by": "infernet",
                    "infernet": {
                        "task": offer.task,
                        "hash": offer.hash,
                        "providers": 1,
                        "price_msat": offer.price_msat,
                        "token_price": offer.token_price,
                        "context_tokens": offer.context_tokens,
                        "embedding_dim": offer.embedding_dim,
                    },
                })),
            }
        }
    }
    models.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(models)
}

// ---------------------------------------------------------------- embeddings

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    model: String,
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u32>,
    /// Infernet's addition: the most to pay, in millisatoshis.
    #[serde(default)]
    max_price_msat: Option<u64>,
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
}

async fn embeddings(
    State(state): State<AppState>,
    OaiJson(req): OaiJson<EmbeddingsRequest>,
) -> Result<Json<Value>, OpenAiError> {
    let texts: Vec<String> = match &req.input {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Value::Array(_) => {
            return Err(invalid(
                "input",
                "input must be a string or an array of strings; token arrays are not supported",
            ))
        }
        _ => {
            return Err(invalid(
                "input",
                "input must be a string or an array of strings",
            ))
        }
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(
                "encoding_format",
                format!("encoding_format must be float or base64, got {other:?}"),
            ))
        }
    };
    let dimensions = req.dimensions;
    let prepared = state
        .jobs
        .prepare(
            &req.model,
            None,
            req.max_price_msat.map(MilliSats),
            |offer| {
                require_task(offer, Task::Embedding, "an embedding", "input")?;
                if let (Some(want), Some(dim)) = (dimensions, offer.embedding_dim) {
                    if want != dim {
                        return Err(invalid(
                            "input",
                            format!(
                                "{} gives {dim}-dimensional embeddings; dimensions={want} is not available",
                                offer.name
                            ),
                        ));
                    }
                }
                let input = JobInput::Embedding { texts };
                input.validate().map_err(|e| OpenAiError {
                    error: Box::new(ApiError::BadInput(e)),
                    param: Some("input"),
                })?;
                Ok(input)
            },
        )
        .await?;
    let record = state.jobs.run_detached(prepared).await?;
    let (receipt, usage) = receipt_of(&record)?;
    let Some(JobOutput::Embedding { vectors, .. }) = &record.output else {
        return Err(ApiError::Internal("an embedding job without vectors".into()).into());
    };
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": record.model,
        "usage": { "prompt_tokens": usage.0, "total_tokens": usage.0 },
        "infernet": infernet(&record, &receipt),
    })))
}

/// The endpoint's task, or a 400 naming the model's, about `param`.
fn require_task(
    offer: &wire::registry::ModelOffer,
    task: Task,
    what: &str,
    param: &'static str,
) -> Result<(), OpenAiError> {
    if offer.task == task {
        return Ok(());
    }
    Err(invalid(
        param,
        format!(
            "{} is a {} model, not {what} model",
            offer.name,
            offer.task.as_str()
        ),
    ))
}

/// The verified receipt of a succeeded job and its (input, output) tokens.
fn receipt_of(record: &JobRecord) -> Result<(Receipt, (u32, u32)), OpenAiError> {
    let receipt: Receipt = record
        .receipt
        .as_ref()
        .ok_or_else(|| ApiError::Internal("a finished job without a receipt".into()))?
        .open()
        .map_err(ApiError::from)?;
    let usage = (receipt.usage.input_tokens, receipt.usage.output_tokens);
    Ok((receipt, usage))
}

fn infernet(record: &JobRecord, receipt: &Receipt) -> Value {
    json!({
        "job_id": record.id,
        "node_id": record.node_id,
        "model_hash": record.model_hash,
        "price_msat": receipt.price_msat,
        "usage": receipt.usage,
        "receipt": record.receipt,
    })
}

// ---------------------------------------------------------------- chat

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessageIn>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    tools: Option<Value>,
    #[serde(default)]
    functions: Option<Value>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    response_format: Option<Value>,
    /// Infernet's addition: the most to pay, in millisatoshis.
    #[serde(default)]
    max_price_msat: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ChatMessageIn {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

impl ChatRequest {
    /// The job input, or an error naming the offending parameter.
    fn input(&self, context: Option<u32>) -> Result<JobInput, OpenAiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(invalid("n", "only n=1 is supported"));
        }
        if self.tools.is_some() || self.functions.is_some() {
            return Err(invalid("tools", "tools and functions are not supported"));
        }
        if self.logprobs == Some(true) {
            return Err(invalid("logprobs", "logprobs are not supported"));
        }
        if let Some(f) = &self.response_format {
            if f.get("type").and_then(Value::as_str) != Some("text") {
                return Err(invalid(
                    "response_format",
                    "only response_format {\"type\": \"text\"} is supported",
                ));
            }
        }
        if self.messages.is_empty() {
            return Err(invalid("messages", "messages must not be empty"));
        }
        let mut messages = Vec::with_capacity(self.messages.len());
        for (i, m) in self.messages.iter().enumerate() {
            let role = match m.role.as_str() {
                "system" | "developer" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    return Err(invalid(
                        "messages",
                        format!("messages[{i}].role {other:?} is not supported (system, developer, user, assistant)"),
                    ))
                }
            };
            let content = match &m.content {
                None => String::new(),
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for p in parts {
                        match (p.kind.as_str(), &p.text) {
                            ("text", Some(t)) => text.push_str(t),
                            (kind, _) => {
                                return Err(invalid(
                                    "messages",
                                    format!(
                                        "messages[{i}] has a {kind:?} part; only text is supported"
                                    ),
                                ))
                            }
                        }
                    }
                    text
                }
            };
            messages.push(ChatMessage { role, content });
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        let max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or_else(|| context.unwrap_or(MAX_OUTPUT_TOKENS).min(MAX_OUTPUT_TOKENS));
        let params = GenerationParams {
            max_tokens,
            stop,
            // OpenAI's defaults.
            temperature: self.temperature.unwrap_or(1.0),
            top_p: self.top_p.unwrap_or(1.0),
            seed: self.seed,
        };
        let input = JobInput::TextGeneration {
            prompt: Prompt::Chat(messages),
            params,
        };
        input.validate().map_err(|e| {
            let param = match e.to_string() {
                m if m.contains("max_tokens") => "max_tokens",
                m if m.contains("temperature") => "temperature",
                m if m.contains("top_p") => "top_p",
                m if m.contains("stop") => "stop",
                _ => "messages",
            };
            OpenAiError {
                error: Box::new(ApiError::BadInput(e)),
                param: Some(param),
            }
        })?;
        Ok(input)
    }
}

async fn chat(
    State(state): State<AppState>,
    OaiJson(req): OaiJson<ChatRequest>,
) -> Result<Response, OpenAiError> {
    let prepared = state
        .jobs
        .prepare(
            &req.model,
            None,
            req.max_price_msat.map(MilliSats),
            |offer| {
                require_task(offer, Task::TextGeneration, "a chat", "messages")?;
                req.input(offer.context_tokens)
            },
        )
        .await?;
    let id = format!("chatcmpl-{}", prepared.record.id);
    let created = prepared.record.created_at.0 / 1000;
    let model = prepared.record.model.clone();
    if req.stream != Some(true) {
        let record = state.jobs.run_detached(prepared).await?;
        let (receipt, (prompt, completion)) = receipt_of(&record)?;
        let Some(JobOutput::TextGeneration {
            text,
            finish_reason,
        }) = &record.output
        else {
            return Err(ApiError::Internal("a chat job without text".into()).into());
        };
        return Ok(Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": Value::Null,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": text, "refusal": Value::Null },
                "logprobs": Value::Null,
                "finish_reason": finish_reason.as_str(),
            }],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
            "infernet": infernet(&record, &receipt),
        }))
        .into_response());
    }

    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": Value::Null,
            "choices": [{ "index": 0, "delta": delta, "logprobs": Value::Null, "finish_reason": finish }],
        })
    };
    let (text_tx, mut text_rx) = mpsc::unbounded_channel::<String>();
    let (events_tx, events_rx) = mpsc::channel::<Event>(64);
    let jobs = state.jobs.clone();
    let job = tokio::spawn(async move { jobs.run(prepared, Some(text_tx)).await });
    tokio::spawn(async move {
        let send = |v: Value| {
            let tx = events_tx.clone();
            async move { tx.send(Event::default().data(v.to_string())).await.is_ok() }
        };
        if !send(chunk(json!({ "role": "assistant", "content": "" }), None)).await {
            return;
        }
        while let Some(delta) = text_rx.recv().await {
            if !send(chunk(json!({ "content": delta }), None)).await {
                return;
            }
        }
        let outcome = match job.await {
            Ok(r) => r.map_err(OpenAiError::from),
            Err(e) => Err(ApiError::Internal(e.to_string()).into()),
        };
        match outcome.and_then(|record| receipt_of(&record).map(|r| (record, r))) {
            Ok((record, (receipt, (prompt, completion)))) => {
                let finish = match &record.output {
                    Some(JobOutput::TextGeneration { finish_reason, .. }) => finish_reason.as_str(),
                    _ => "stop",
                };
                let mut last = chunk(json!({}), Some(finish));
                last["infernet"] = infernet(&record, &receipt);
                if !send(last).await {
                    return;
                }
                if include_usage {
                    let mut usage = chunk(json!({}), None);
                    usage["choices"] = json!([]);
                    usage["usage"] = json!({
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    });
                    if !send(usage).await {
                        return;
                    }
                }
            }
            Err(e) => {
                if !send(e.body()).await {
                    return;
                }
            }
        }
        let _ = events_tx.send(Event::default().data("[DONE]")).await;
    });
    let stream = futures::stream::unfold(events_rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<Event, Infallible>(e), rx))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn chat_requests_become_generation_jobs_with_openai_defaults() {
        let req = request(json!({
            "model": "m",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]}
            ],
            "stop": "\n",
            "max_completion_tokens": 7,
            "user": "ignored",
        }));
        let JobInput::TextGeneration { prompt, params } = req.input(Some(128)).unwrap() else {
            panic!("not a generation");
        };
        let Prompt::Chat(m) = prompt else {
            panic!("not a chat")
        };
        assert_eq!(m[0].role, Role::System);
        assert_eq!(m[1].content, "hi there");
        assert_eq!(params.stop, vec!["\n".to_owned()]);
        assert_eq!(params.max_tokens, 7);
        assert_eq!(params.temperature, 1.0);
        let JobInput::TextGeneration { params, .. } = request(json!({
            "model": "m", "messages": [{"role": "user", "content": "x"}]
        }))
        .input(Some(128))
        .unwrap() else {
            panic!("not a generation");
        };
        assert_eq!(params.max_tokens, 128, "max_tokens defaults to the context");
    }

    #[test]
    fn unsupported_chat_options_name_their_parameter() {
        for (body, param) in [
            (json!({"n": 2}), "n"),
            (json!({"tools": []}), "tools"),
            (json!({"logprobs": true}), "logprobs"),
            (
                json!({"response_format": {"type": "json_object"}}),
                "response_format",
            ),
            (json!({"temperature": 2.5}), "temperature"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages",
            ),
            (json!({"messages": []}), "messages"),
        ] {
            let mut full = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
            for (k, v) in body.as_object().unwrap() {
                full[k] = v.clone();
            }
            let err = request(full.clone()).input(Some(128)).unwrap_err();
            assert_eq!(err.param, Some(param), "{full}");
            assert_eq!(err.body()["error"]["type"], "invalid_request_error");
        }
    }
}

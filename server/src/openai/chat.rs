//! `POST /v1/chat/completions`: a chat in, the assistant's reply out, whole
//! or streamed as server-sent `chat.completion.chunk` events while the node
//! decodes it.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use wire::jobs::{
    ChatMessage, GenerationParams, JobInput, JobOutput, JobRecord, Prompt, Role, MAX_OUTPUT_TOKENS,
};
use wire::registry::Task;

use super::error::{invalid, OaiJson, OpenAiError};
use super::types::{
    AssistantMessage, ChatChunk, ChatCompletion, ChatRequest, ChatUsage, Choice, ChunkChoice,
    Content, Delta, ErrorResponse, JobFacts, Stop,
};
use super::{receipt_of, require_task};
use crate::accounts::{ClientIp, OaiCaller};
use crate::error::ApiError;
use crate::jobs::JobError;
use crate::AppState;

/// Server-sent events a stream may have waiting for a slow client.
const EVENT_BUFFER: usize = 64;

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
        // Checked here as well as by `Jobs::start`, so that a request is
        // refused before any model is chosen for it.
        input.validate().map_err(JobError::from)?;
        Ok(input)
    }
}

/// The assistant's reply to a chat, run as a job on a node that offers the
/// model: whole, or streamed while the node decodes it (`stream: true`).
///
/// A stream is server-sent events, each `data:` a `chat.completion.chunk`
/// as JSON (the last with the job's facts and receipt, then the usage if
/// `stream_options.include_usage`), ended by `data: [DONE]`. A job that
/// fails once streaming has begun sends an error object in OpenAI's shape
/// as its last event before `[DONE]`.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    operation_id = "create_chat_completion",
    tag = "openai",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The reply: a `chat.completion` as JSON, or (`stream: true`) server-sent `chat.completion.chunk` events.",
            content((ChatCompletion = "application/json"), (crate::openapi::ServerSentEvent = "text/event-stream"))),
        (status = 400, description = "Malformed JSON, an option not supported (`n`, `tools`, `logprobs`, `response_format`), messages or parameters out of range, a model that is not a text generation model, an unknown pool, or input the node refused (`invalid_request_error`, naming the `param`).", body = ErrorResponse),
        (status = 401, description = "No API key or session, an unknown or revoked key, or an expired session (`invalid_api_key`).", body = ErrorResponse),
        (status = 402, description = "Not enough balance for the job's price (`insufficient_quota`), or over the key's spending cap.", body = ErrorResponse),
        (status = 403, description = "An API key without the `jobs` scope, or a cross-site request with the session cookie.", body = ErrorResponse),
        (status = 404, description = "No node offers the model (`model_not_found`).", body = ErrorResponse),
        (status = 413, description = "A body over 1 MiB.", body = ErrorResponse),
        (status = 415, description = "Not JSON.", body = ErrorResponse),
        (status = 422, description = "JSON that does not fit the request's shape.", body = ErrorResponse),
        (status = 429, description = "Too many jobs from this address or account (`rate_limit_error`).", body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
        (status = 502, description = "The node refused the job, broke off, or answered wrongly (a bad receipt).", body = ErrorResponse),
        (status = 503, description = "No node can take the job now (none available, or the node is busy or not accepting).", body = ErrorResponse),
        (status = 504, description = "The node did not finish in time.", body = ErrorResponse),
    ),
    security(("session" = []), ("api_key" = [])),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    OaiCaller(caller): OaiCaller,
    OaiJson(req): OaiJson<ChatRequest>,
) -> Result<Response, OpenAiError> {
    super::may_run_jobs(&caller)?;
    state.jobs.submitted_from(ip).map_err(ApiError::from)?;
    let order = super::order(
        &req.model,
        req.max_price_msat,
        req.bid_msat,
        req.pool.as_deref(),
        &caller,
    );
    let started = state
        .jobs
        .start(order, |offer| {
            require_task(offer, Task::TextGeneration, "a chat")?;
            req.input(offer.context_tokens)
        })
        .await?;
    let head = ChunkHead {
        id: format!("chatcmpl-{}", started.record.id),
        created: started.record.created_at.0 / 1000,
        model: started.record.model.clone(),
    };
    if req.stream != Some(true) {
        let record = started.finish().await?;
        return Ok(Json(whole(head, &record)?).into_response());
    }

    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let (mut text, end) = started.into_stream();
    let (events_tx, events_rx) = mpsc::channel::<Event>(EVENT_BUFFER);
    tokio::spawn(async move {
        let send = |data: String| {
            let tx = events_tx.clone();
            async move { tx.send(Event::default().data(data)).await.is_ok() }
        };
        let role = Delta {
            role: Some("assistant"),
            content: Some(String::new()),
        };
        if !send(json(&head.chunk(role, None))).await {
            return;
        }
        while let Some(delta) = text.recv().await {
            let delta = Delta {
                content: Some(delta),
                ..Default::default()
            };
            if !send(json(&head.chunk(delta, None))).await {
                return;
            }
        }
        let ended = end
            .await
            .map_err(OpenAiError::from)
            .and_then(|record| receipt_of(&record).map(|r| (record, r)));
        match ended {
            Ok((record, receipt)) => {
                let mut last = head.chunk(Delta::default(), Some(finish_reason(&record)));
                last.infernet = Some(JobFacts::of(&record, &receipt));
                if !send(json(&last)).await {
                    return;
                }
                if include_usage {
                    let mut usage = head.chunk(Delta::default(), None);
                    usage.choices.clear();
                    usage.usage = Some(ChatUsage::of(&receipt));
                    if !send(json(&usage)).await {
                        return;
                    }
                }
            }
            Err(e) => {
                if !send(json(&e.body())).await {
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

/// A whole answer, once the job has ended.
fn whole(head: ChunkHead, record: &JobRecord) -> Result<ChatCompletion, OpenAiError> {
    let receipt = receipt_of(record)?;
    let Some(JobOutput::TextGeneration { text, .. }) = &record.output else {
        return Err(ApiError::Internal("a chat job without text".into()).into());
    };
    Ok(ChatCompletion {
        id: head.id,
        object: "chat.completion",
        created: head.created,
        model: head.model,
        system_fingerprint: None,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: text.clone(),
                refusal: None,
            },
            logprobs: None,
            finish_reason: finish_reason(record),
        }],
        usage: ChatUsage::of(&receipt),
        infernet: JobFacts::of(record, &receipt),
    })
}

fn finish_reason(record: &JobRecord) -> &'static str {
    match &record.output {
        Some(JobOutput::TextGeneration { finish_reason, .. }) => finish_reason.as_str(),
        _ => "stop",
    }
}

/// What every chunk of one answer shares.
struct ChunkHead {
    id: String,
    created: u64,
    model: String,
}

impl ChunkHead {
    fn chunk(&self, delta: Delta, finish_reason: Option<&'static str>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: None,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: None,
            infernet: None,
        }
    }
}

/// One event's data: a chunk or an error, as JSON.
fn json<T: Serialize>(value: &T) -> String {
    // These plain structs always serialise.
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            (json!({"top_p": 0.0}), "top_p"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
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
            assert_eq!(err.body().error.kind, "invalid_request_error");
        }
    }
}

//! The OpenAI API's JSON, as typed structs: what clients send, and what we
//! answer (each answer also carries an `infernet` object, which OpenAI's
//! clients keep as an unknown field).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wire::catalog::ModelListing;
use wire::jobs::{JobRecord, Receipt, Usage};
use wire::{JobId, MilliSats, ModelHash, NodeId, SignedEnvelope};

/// `{"object": "list", "data": [...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct List<T> {
    /// Always `list`.
    pub(super) object: &'static str,
    pub(super) data: Vec<T>,
}

impl<T> List<T> {
    pub(super) fn of(data: Vec<T>) -> Self {
        List {
            object: "list",
            data,
        }
    }
}

/// One entry of `GET /v1/models`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OpenAiModel)]
pub(super) struct Model {
    /// The model's name, as requests give it.
    pub(super) id: String,
    /// Always `model`.
    pub(super) object: &'static str,
    /// When its first provider registered, in Unix seconds.
    pub(super) created: u64,
    /// Always `infernet`.
    pub(super) owned_by: &'static str,
    /// The model as Infernet lists it: its task, nodes and prices.
    pub(super) infernet: ModelListing,
}

impl From<ModelListing> for Model {
    fn from(listing: ModelListing) -> Self {
        Model {
            id: listing.name.clone(),
            object: "model",
            created: listing.since.0 / 1000,
            owned_by: "infernet",
            infernet: listing,
        }
    }
}

/// Infernet's facts about the job behind an answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct JobFacts {
    pub(super) job_id: JobId,
    pub(super) node_id: NodeId,
    pub(super) model_hash: ModelHash,
    pub(super) price_msat: MilliSats,
    pub(super) usage: Usage,
    pub(super) receipt: Option<SignedEnvelope>,
}

impl JobFacts {
    pub(super) fn of(record: &JobRecord, receipt: &Receipt) -> Self {
        JobFacts {
            job_id: record.id.clone(),
            node_id: record.node_id,
            model_hash: record.model_hash,
            price_msat: receipt.price_msat,
            usage: receipt.usage,
            receipt: record.receipt.clone(),
        }
    }
}

// ---------------------------------------------------------------- embeddings

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"model": "all-minilm-l6-v2", "input": ["a cat sat on the mat", "a dog"]}))]
pub(super) struct EmbeddingsRequest {
    /// An embedding model's name (`GET /v1/models`).
    pub(super) model: String,
    /// A string, or an array of strings (token arrays are not supported).
    pub(super) input: Value,
    /// `float` (unless given) or `base64` (little-endian f32s).
    #[serde(default)]
    pub(super) encoding_format: Option<String>,
    /// The model's own dimensions only: other values are refused.
    #[serde(default)]
    pub(super) dimensions: Option<u32>,
    /// Infernet's addition: the most to pay, in millisatoshis.
    #[serde(default)]
    pub(super) max_price_msat: Option<u64>,
    /// Infernet's addition: offered on top of the price to jump a busy
    /// node's queue, in millisatoshis.
    #[serde(default)]
    pub(super) bid_msat: Option<u64>,
    /// Infernet's addition: run on a node of this public pool only.
    #[serde(default)]
    pub(super) pool: Option<String>,
    // Other fields (`user`) are taken and ignored, as OpenAI's clients send them.
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EmbeddingVector)]
#[serde(untagged)]
pub(super) enum Embedding {
    Float(Vec<f32>),
    /// Little-endian f32s, base64.
    Base64(String),
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct EmbeddingObject {
    pub(super) object: &'static str,
    pub(super) index: usize,
    pub(super) embedding: Embedding,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct EmbeddingUsage {
    pub(super) prompt_tokens: u32,
    pub(super) total_tokens: u32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct EmbeddingsResponse {
    pub(super) object: &'static str,
    pub(super) data: Vec<EmbeddingObject>,
    pub(super) model: String,
    pub(super) usage: EmbeddingUsage,
    pub(super) infernet: JobFacts,
}

// ---------------------------------------------------------------- chat

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "model": "tiny-gpt2",
    "messages": [{"role": "user", "content": "Tell me about cats."}],
    "max_tokens": 16
}))]
pub(super) struct ChatRequest {
    /// A text generation model's name (`GET /v1/models`).
    pub(super) model: String,
    /// The chat so far: `system`, `developer`, `user` and `assistant`
    /// messages of text.
    pub(super) messages: Vec<ChatMessageIn>,
    #[serde(default)]
    pub(super) max_tokens: Option<u32>,
    #[serde(default)]
    pub(super) max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub(super) temperature: Option<f32>,
    #[serde(default)]
    pub(super) top_p: Option<f32>,
    #[serde(default)]
    pub(super) stop: Option<Stop>,
    /// Stream the answer as server-sent `chat.completion.chunk` events.
    #[serde(default)]
    pub(super) stream: Option<bool>,
    #[serde(default)]
    pub(super) stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub(super) seed: Option<u64>,
    /// Only 1.
    #[serde(default)]
    pub(super) n: Option<u32>,
    /// Not supported.
    #[serde(default)]
    pub(super) tools: Option<Value>,
    /// Not supported.
    #[serde(default)]
    pub(super) functions: Option<Value>,
    /// Not supported (`false` only).
    #[serde(default)]
    pub(super) logprobs: Option<bool>,
    /// `{"type": "text"}` only.
    #[serde(default)]
    pub(super) response_format: Option<Value>,
    /// Infernet's addition: the most to pay, in millisatoshis.
    #[serde(default)]
    pub(super) max_price_msat: Option<u64>,
    /// Infernet's addition: offered on top of the price to jump a busy
    /// node's queue, in millisatoshis.
    #[serde(default)]
    pub(super) bid_msat: Option<u64>,
    /// Infernet's addition: run on a node of this public pool only.
    #[serde(default)]
    pub(super) pool: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct ChatMessageIn {
    pub(super) role: String,
    #[serde(default)]
    pub(super) content: Option<Content>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ChatContent)]
#[serde(untagged)]
pub(super) enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ChatContentPart)]
pub(super) struct ContentPart {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) text: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ChatStop)]
#[serde(untagged)]
pub(super) enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ChatStreamOptions)]
pub(super) struct StreamOptions {
    /// End the stream with a chunk of the usage.
    #[serde(default)]
    pub(super) include_usage: bool,
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub(super) struct ChatUsage {
    pub(super) prompt_tokens: u32,
    pub(super) completion_tokens: u32,
    pub(super) total_tokens: u32,
}

impl ChatUsage {
    pub(super) fn of(receipt: &Receipt) -> Self {
        let (prompt, completion) = (receipt.usage.input_tokens, receipt.usage.output_tokens);
        ChatUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AssistantMessage {
    pub(super) role: &'static str,
    pub(super) content: String,
    pub(super) refusal: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ChatChoice)]
pub(super) struct Choice {
    pub(super) index: u32,
    pub(super) message: AssistantMessage,
    pub(super) logprobs: Option<Value>,
    pub(super) finish_reason: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ChatCompletion {
    pub(super) id: String,
    pub(super) object: &'static str,
    pub(super) created: u64,
    pub(super) model: String,
    pub(super) system_fingerprint: Option<String>,
    pub(super) choices: Vec<Choice>,
    pub(super) usage: ChatUsage,
    pub(super) infernet: JobFacts,
}

/// What a chunk adds to the assistant's message.
#[derive(Debug, Default, Serialize)]
pub(super) struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) content: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct ChunkChoice {
    pub(super) index: u32,
    pub(super) delta: Delta,
    pub(super) logprobs: Option<Value>,
    pub(super) finish_reason: Option<&'static str>,
}

/// One `chat.completion.chunk` of a streamed answer.
#[derive(Debug, Serialize)]
pub(super) struct ChatChunk {
    pub(super) id: String,
    pub(super) object: &'static str,
    pub(super) created: u64,
    pub(super) model: String,
    pub(super) system_fingerprint: Option<String>,
    pub(super) choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) usage: Option<ChatUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) infernet: Option<JobFacts>,
}

// ---------------------------------------------------------------- errors

/// OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`,
/// plus the job's id when a recorded job failed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OpenAiErrorResponse)]
pub(super) struct ErrorResponse {
    pub(super) error: ErrorObject,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OpenAiErrorObject)]
pub(super) struct ErrorObject {
    pub(super) message: String,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) param: Option<&'static str>,
    pub(super) code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) job_id: Option<JobId>,
}

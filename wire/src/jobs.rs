//! Jobs: what a consumer submits, what travels to the node over libp2p, what
//! comes back, and the receipt the node signs.

use serde::{Deserialize, Serialize};

use crate::api::ErrorBody;
use crate::registry::Task;
use crate::signing::{Signable, SignedEnvelope, SigningError};
use crate::{JobId, MilliSats, ModelHash, NodeId, Sha256Digest, UnixMillis};

/// Limits on one embedding job's input.
pub const MAX_EMBEDDING_TEXTS: usize = 64;
pub const MAX_EMBEDDING_TEXT_CHARS: usize = 8_192;
/// Limits on one text-generation job's input.
pub const MAX_PROMPT_CHARS: usize = 65_536;
pub const MAX_CHAT_MESSAGES: usize = 256;
pub const MAX_OUTPUT_TOKENS: u32 = 8_192;
pub const MAX_STOP_SEQUENCES: usize = 4;
pub const MAX_STOP_CHARS: usize = 64;
/// Limits on one tensor job: tensors, dimensions, and numbers in all inputs
/// (the request must also fit in a job frame) and in all outputs.
pub const MAX_TENSORS: usize = 16;
pub const MAX_TENSOR_DIMS: usize = 8;
pub const MAX_TENSOR_INPUT_VALUES: usize = 1 << 17;
pub const MAX_TENSOR_OUTPUT_VALUES: usize = 1 << 22;

/// A job's input, tagged with its task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum JobInput {
    Embedding {
        texts: Vec<String>,
    },
    TextGeneration {
        prompt: Prompt,
        params: GenerationParams,
    },
    Tensor {
        inputs: Vec<NamedTensor>,
    },
}

/// A named tensor: its shape and its values in row-major order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub data: TensorData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dtype", content = "values", rename_all = "snake_case")]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> &'static str {
        match self {
            TensorData::F32(_) => "f32",
            TensorData::I64(_) => "i64",
        }
    }

    /// Values `range` of these, same dtype.
    pub fn slice(&self, range: std::ops::Range<usize>) -> TensorData {
        match self {
            TensorData::F32(v) => TensorData::F32(v[range].to_vec()),
            TensorData::I64(v) => TensorData::I64(v[range].to_vec()),
        }
    }

    /// Appends `more`; an error when the dtypes differ.
    pub fn extend(&mut self, more: TensorData) -> Result<(), String> {
        match (self, more) {
            (TensorData::F32(a), TensorData::F32(b)) => a.extend(b),
            (TensorData::I64(a), TensorData::I64(b)) => a.extend(b),
            (a, b) => return Err(format!("{} values after {} ones", b.dtype(), a.dtype())),
        }
        Ok(())
    }
}

impl NamedTensor {
    /// Number of values the shape calls for; `None` on overflow.
    pub fn numel(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
    }

    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.len() > 64 {
            return Err("tensor names are 1 to 64 bytes".into());
        }
        if self.shape.len() > MAX_TENSOR_DIMS {
            return Err(format!(
                "{} has {} dimensions; at most {MAX_TENSOR_DIMS}",
                self.name,
                self.shape.len()
            ));
        }
        match self.numel() {
            Some(n) if n == self.data.len() => Ok(()),
            Some(n) => Err(format!(
                "{} has shape {:?} ({n} values) but {} values",
                self.name,
                self.shape,
                self.data.len()
            )),
            None => Err(format!("{} has an overflowing shape", self.name)),
        }
    }
}

/// What a generation starts from: raw text, or a chat the node renders with
/// its model's chat template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    Text(String),
    Chat(Vec<ChatMessage>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// How to sample. `temperature` 0 is greedy decoding, which is deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationParams {
    pub max_tokens: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(default)]
    pub temperature: f32,
    #[serde(default = "one")]
    pub top_p: f32,
    /// Fixes the sampler's random stream, so that a sampled job can be rerun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

fn one() -> f32 {
    1.0
}

impl Default for GenerationParams {
    fn default() -> Self {
        GenerationParams {
            max_tokens: 256,
            stop: Vec::new(),
            temperature: 0.0,
            top_p: 1.0,
            seed: None,
        }
    }
}

/// Why a generation ended (OpenAI's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model's end-of-text token, or a stop sequence.
    Stop,
    /// `max_tokens`, the context window, or the job's budget.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// A job's output, tagged with its task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum JobOutput {
    Embedding {
        dim: u32,
        vectors: Vec<Vec<f32>>,
    },
    TextGeneration {
        text: String,
        finish_reason: FinishReason,
    },
    Tensor {
        outputs: Vec<NamedTensor>,
    },
}

/// What a job used, as metered by the node. The price is computed from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// This job's share of the device time of the batches it ran in.
    pub device_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("input for an {task} job must be {expected}: {detail}")]
    Shape {
        task: &'static str,
        expected: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Limit(String),
}

impl JobInput {
    /// Reads the untagged `input` of an HTTP job submission as input for
    /// `task`, and checks its limits.
    pub fn parse(task: Task, input: serde_json::Value) -> Result<Self, InputError> {
        let parsed = match task {
            Task::Embedding => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Embedding {
                    texts: Vec<String>,
                }
                let e: Embedding =
                    serde_json::from_value(input).map_err(|e| InputError::Shape {
                        task: "embedding",
                        expected: r#"{"texts": ["...", ...]}"#,
                        detail: e.to_string(),
                    })?;
                JobInput::Embedding { texts: e.texts }
            }
            Task::TextGeneration => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Generation {
                    #[serde(default)]
                    prompt: Option<String>,
                    #[serde(default)]
                    messages: Option<Vec<ChatMessage>>,
                    #[serde(default)]
                    max_tokens: Option<u32>,
                    #[serde(default)]
                    stop: Vec<String>,
                    #[serde(default)]
                    temperature: Option<f32>,
                    #[serde(default)]
                    top_p: Option<f32>,
                    #[serde(default)]
                    seed: Option<u64>,
                }
                let shape = |detail: String| InputError::Shape {
                    task: "text_generation",
                    expected: r#"{"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}, with max_tokens, stop, temperature, top_p, seed"#,
                    detail,
                };
                let g: Generation =
                    serde_json::from_value(input).map_err(|e| shape(e.to_string()))?;
                let prompt = match (g.prompt, g.messages) {
                    (Some(p), None) => Prompt::Text(p),
                    (None, Some(m)) => Prompt::Chat(m),
                    _ => return Err(shape("give exactly one of prompt and messages".into())),
                };
                let d = GenerationParams::default();
                JobInput::TextGeneration {
                    prompt,
                    params: GenerationParams {
                        max_tokens: g.max_tokens.unwrap_or(d.max_tokens),
                        stop: g.stop,
                        temperature: g.temperature.unwrap_or(d.temperature),
                        top_p: g.top_p.unwrap_or(d.top_p),
                        seed: g.seed,
                    },
                }
            }
            Task::Tensor => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Tensors {
                    inputs: Vec<NamedTensor>,
                }
                let t: Tensors = serde_json::from_value(input).map_err(|e| InputError::Shape {
                    task: "tensor",
                    expected: r#"{"inputs": [{"name": "x", "shape": [2, 3], "data": {"dtype": "f32", "values": [...]}}]}"#,
                    detail: e.to_string(),
                })?;
                JobInput::Tensor { inputs: t.inputs }
            }
        };
        parsed.validate()?;
        Ok(parsed)
    }

    pub fn validate(&self) -> Result<(), InputError> {
        match self {
            JobInput::Embedding { texts } => {
                if texts.is_empty() || texts.len() > MAX_EMBEDDING_TEXTS {
                    return Err(InputError::Limit(format!(
                        "an embedding job takes 1 to {MAX_EMBEDDING_TEXTS} texts, got {}",
                        texts.len()
                    )));
                }
                if let Some((i, t)) = texts
                    .iter()
                    .enumerate()
                    .find(|(_, t)| t.chars().count() > MAX_EMBEDDING_TEXT_CHARS)
                {
                    return Err(InputError::Limit(format!(
                        "text {i} has {} characters; the limit is {MAX_EMBEDDING_TEXT_CHARS}",
                        t.chars().count()
                    )));
                }
                Ok(())
            }
            JobInput::TextGeneration { prompt, params } => {
                match prompt {
                    Prompt::Text(text) => check_chars("the prompt", text, MAX_PROMPT_CHARS)?,
                    Prompt::Chat(messages) => {
                        if messages.is_empty() || messages.len() > MAX_CHAT_MESSAGES {
                            return Err(InputError::Limit(format!(
                                "a chat takes 1 to {MAX_CHAT_MESSAGES} messages, got {}",
                                messages.len()
                            )));
                        }
                        let total: usize = messages.iter().map(|m| m.content.chars().count()).sum();
                        if total > MAX_PROMPT_CHARS {
                            return Err(InputError::Limit(format!(
                                "the messages have {total} characters; the limit is {MAX_PROMPT_CHARS}"
                            )));
                        }
                    }
                }
                params.validate()
            }
            JobInput::Tensor { inputs } => {
                if inputs.is_empty() || inputs.len() > MAX_TENSORS {
                    return Err(InputError::Limit(format!(
                        "a tensor job takes 1 to {MAX_TENSORS} inputs, got {}",
                        inputs.len()
                    )));
                }
                let mut total = 0usize;
                for (i, t) in inputs.iter().enumerate() {
                    t.check().map_err(InputError::Limit)?;
                    if inputs[..i].iter().any(|o| o.name == t.name) {
                        return Err(InputError::Limit(format!(
                            "input {} is given twice",
                            t.name
                        )));
                    }
                    total += t.data.len();
                }
                if total > MAX_TENSOR_INPUT_VALUES {
                    return Err(InputError::Limit(format!(
                        "the inputs hold {total} values; at most {MAX_TENSOR_INPUT_VALUES}"
                    )));
                }
                Ok(())
            }
        }
    }

    pub fn task(&self) -> Task {
        match self {
            JobInput::Embedding { .. } => Task::Embedding,
            JobInput::TextGeneration { .. } => Task::TextGeneration,
            JobInput::Tensor { .. } => Task::Tensor,
        }
    }

    pub fn digest(&self) -> Sha256Digest {
        // Serialising these plain types cannot fail.
        Sha256Digest::of_json(self).unwrap_or_else(|_| Sha256Digest::of(b""))
    }
}

fn check_chars(what: &str, text: &str, max: usize) -> Result<(), InputError> {
    let n = text.chars().count();
    if n > max {
        return Err(InputError::Limit(format!(
            "{what} has {n} characters; the limit is {max}"
        )));
    }
    Ok(())
}

impl GenerationParams {
    pub fn validate(&self) -> Result<(), InputError> {
        if self.max_tokens == 0 || self.max_tokens > MAX_OUTPUT_TOKENS {
            return Err(InputError::Limit(format!(
                "max_tokens must be 1 to {MAX_OUTPUT_TOKENS}, got {}",
                self.max_tokens
            )));
        }
        if self.stop.len() > MAX_STOP_SEQUENCES {
            return Err(InputError::Limit(format!(
                "at most {MAX_STOP_SEQUENCES} stop sequences, got {}",
                self.stop.len()
            )));
        }
        if let Some(s) = self
            .stop
            .iter()
            .find(|s| s.is_empty() || s.chars().count() > MAX_STOP_CHARS)
        {
            return Err(InputError::Limit(format!(
                "stop sequences must be 1 to {MAX_STOP_CHARS} characters, got {:?}",
                s
            )));
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return Err(InputError::Limit(format!(
                "temperature must be between 0 and 2, got {}",
                self.temperature
            )));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(InputError::Limit(format!(
                "top_p must be above 0 and at most 1, got {}",
                self.top_p
            )));
        }
        Ok(())
    }
}

impl crate::registry::ModelOffer {
    /// The most a job with `input` can cost on this model: what a consumer
    /// that names no maximum agrees to. A token is at least one byte of
    /// text, plus a few markers per text or message.
    pub fn worst_case_price(&self, input: &JobInput) -> MilliSats {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match input {
            JobInput::Embedding { texts } => {
                let bytes: usize = texts.iter().map(|t| t.len() + 4).sum();
                self.price_for(clamp(bytes), 0)
            }
            JobInput::Tensor { .. } => self.price_for(0, 0),
            JobInput::TextGeneration { prompt, params } => {
                let bytes = match prompt {
                    Prompt::Text(t) => t.len() + 4,
                    Prompt::Chat(m) => m.iter().map(|m| m.content.len() + 32).sum(),
                };
                let context = self.context_tokens.unwrap_or(u32::MAX);
                let input = clamp(bytes).min(context);
                self.price_for(input, params.max_tokens.min(context))
            }
        }
    }
}

impl JobOutput {
    pub fn digest(&self) -> Sha256Digest {
        Sha256Digest::of_json(self).unwrap_or_else(|_| Sha256Digest::of(b""))
    }
}

/// Sent by the server (or any consumer) to a node over the job protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    pub job_id: JobId,
    pub model_hash: ModelHash,
    pub input: JobInput,
    /// The consumer pays at most this much; a node asking more refuses.
    pub max_price_msat: MilliSats,
    /// The node gives up on the job after this time.
    pub deadline: UnixMillis,
}

/// A node's answer over the job protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum JobResponse {
    Done {
        output: JobOutput,
        /// A [`SignedEnvelope`] around a [`Receipt`].
        receipt: SignedEnvelope,
    },
    Refused {
        code: RefusalCode,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    UnknownModel,
    PriceTooLow,
    BadInput,
    Overloaded,
    DeadlineExceeded,
    EngineFailed,
    /// The node is paused, draining, or outside its schedule.
    NotAccepting,
    /// The consumer cancelled the job.
    Cancelled,
}

/// What a consumer writes on a job stream ([`JOB_PROTOCOL`](crate::JOB_PROTOCOL)):
/// one `Request`, then possibly `Cancel`. Closing the stream before the
/// answer also cancels the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum ConsumerFrame {
    Request { request: JobRequest },
    Cancel,
}

/// What a provider writes on a job stream: `Accepted`, the output in
/// `Output` parts (in order), then exactly one `Done` (whose receipt covers
/// the whole output) or `Refused`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum ProviderFrame {
    Accepted { queue_position: u32 },
    Output { part: OutputPart },
    Done { receipt: SignedEnvelope },
    Refused { code: RefusalCode, message: String },
}

/// A piece of a job's output, so that long outputs stream in bounded frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum OutputPart {
    /// Vectors `first .. first + vectors.len()` of an embedding job.
    Embedding {
        dim: u32,
        first: u32,
        vectors: Vec<Vec<f32>>,
    },
    /// The next piece of generated text (part `seq`, counting from 0). The
    /// last part carries the finish reason.
    Text {
        seq: u32,
        delta: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finish_reason: Option<FinishReason>,
    },
    /// Values `first ..` of output tensor `index` (a tensor spans as many
    /// parts as its size needs; tensors come in order).
    Tensor {
        index: u32,
        name: String,
        shape: Vec<u64>,
        first: u64,
        data: TensorData,
    },
}

impl JobOutput {
    /// Splits the output into parts of roughly at most `max_bytes` each
    /// (never fewer than one item per part).
    pub fn into_parts(self, max_bytes: usize) -> Vec<OutputPart> {
        match self {
            JobOutput::Embedding { dim, vectors } => {
                // CBOR spends 5 bytes on each f32, plus a few per vector.
                let per_vector = (dim as usize) * 5 + 9;
                let per_part = (max_bytes / per_vector.max(1)).max(1);
                if vectors.is_empty() {
                    return vec![OutputPart::Embedding {
                        dim,
                        first: 0,
                        vectors,
                    }];
                }
                let mut parts = Vec::with_capacity(vectors.len().div_ceil(per_part));
                let mut first = 0u32;
                let mut rest = vectors.into_iter().peekable();
                while rest.peek().is_some() {
                    let chunk: Vec<Vec<f32>> = rest.by_ref().take(per_part).collect();
                    let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                    parts.push(OutputPart::Embedding {
                        dim,
                        first,
                        vectors: chunk,
                    });
                    first = first.saturating_add(n);
                }
                parts
            }
            JobOutput::TextGeneration {
                text,
                finish_reason,
            } => {
                let mut parts = Vec::new();
                let mut rest = text.as_str();
                let max = max_bytes.max(4);
                while rest.len() > max {
                    let mut cut = max;
                    while !rest.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    parts.push(OutputPart::Text {
                        seq: u32::try_from(parts.len()).unwrap_or(u32::MAX),
                        delta: rest[..cut].to_owned(),
                        finish_reason: None,
                    });
                    rest = &rest[cut..];
                }
                parts.push(OutputPart::Text {
                    seq: u32::try_from(parts.len()).unwrap_or(u32::MAX),
                    delta: rest.to_owned(),
                    finish_reason: Some(finish_reason),
                });
                parts
            }
            JobOutput::Tensor { outputs } => {
                // CBOR spends at most 9 bytes on a value.
                let per_part = (max_bytes / 9).max(1);
                let mut parts = Vec::new();
                for (index, t) in outputs.into_iter().enumerate() {
                    let n = t.data.len();
                    let mut first = 0;
                    loop {
                        let end = (first + per_part).min(n);
                        parts.push(OutputPart::Tensor {
                            index: u32::try_from(index).unwrap_or(u32::MAX),
                            name: t.name.clone(),
                            shape: t.shape.clone(),
                            first: first as u64,
                            data: t.data.slice(first..end),
                        });
                        first = end;
                        if first >= n {
                            break;
                        }
                    }
                }
                parts
            }
        }
    }
}

/// Puts a streamed output back together, checking that parts come in order,
/// agree with each other, and stay under a size bound.
#[derive(Debug, Default)]
pub struct OutputAssembler {
    output: Option<JobOutput>,
    items: usize,
    max_values: usize,
    text: Option<(String, Option<FinishReason>)>,
}

impl OutputAssembler {
    /// `max_values`: the most numbers the whole output may hold.
    pub fn new(max_values: usize) -> Self {
        OutputAssembler {
            output: None,
            items: 0,
            max_values,
            text: None,
        }
    }

    /// `max_values` bounds an embedding output's numbers and, four bytes
    /// each, a text output's bytes.
    pub fn push(&mut self, part: OutputPart) -> Result<(), String> {
        match part {
            OutputPart::Tensor {
                index,
                name,
                shape,
                first,
                data,
            } => {
                if self.text.is_some() {
                    return Err("tensor part in a text output".into());
                }
                let outputs = match self.output.get_or_insert_with(|| JobOutput::Tensor {
                    outputs: Vec::new(),
                }) {
                    JobOutput::Tensor { outputs } => outputs,
                    _ => return Err("tensor part in another output".into()),
                };
                self.items += data.len();
                if self.items > self.max_values {
                    return Err(format!("output exceeds {} values", self.max_values));
                }
                let index = index as usize;
                if index + 1 == outputs.len() {
                    let t = &mut outputs[index];
                    if t.name != name || t.shape != shape || t.data.len() as u64 != first {
                        return Err(format!("tensor part of {name} out of order"));
                    }
                    t.data.extend(data)?;
                } else if index == outputs.len() && first == 0 {
                    outputs.push(NamedTensor { name, shape, data });
                } else {
                    return Err(format!("tensor part {index} of {name} out of order"));
                }
                Ok(())
            }
            OutputPart::Text {
                seq,
                delta,
                finish_reason,
            } => {
                if self.output.is_some() {
                    return Err("text part in an embedding output".into());
                }
                let (text, finished) = self.text.get_or_insert_with(Default::default);
                if finished.is_some() {
                    return Err("text part after the last one".into());
                }
                if seq as usize != self.items {
                    return Err(format!("text part {seq} arrived, expected {}", self.items));
                }
                let max_bytes = self.max_values.saturating_mul(4);
                if text.len() + delta.len() > max_bytes {
                    return Err(format!("output exceeds {max_bytes} bytes"));
                }
                text.push_str(&delta);
                *finished = finish_reason;
                self.items += 1;
                Ok(())
            }
            OutputPart::Embedding {
                dim,
                first,
                vectors,
            } => {
                if first as usize != self.items {
                    return Err(format!(
                        "output part starts at item {first}, expected {}",
                        self.items
                    ));
                }
                if let Some(v) = vectors.iter().find(|v| v.len() != dim as usize) {
                    return Err(format!(
                        "vector of length {} in a {dim}-dim output",
                        v.len()
                    ));
                }
                let values = (self.items + vectors.len()).saturating_mul(dim as usize);
                if values > self.max_values {
                    return Err(format!("output exceeds {} values", self.max_values));
                }
                if self.text.is_some() {
                    return Err("embedding part in a text output".into());
                }
                self.items += vectors.len();
                match &mut self.output {
                    None => self.output = Some(JobOutput::Embedding { dim, vectors }),
                    Some(JobOutput::Embedding {
                        dim: d,
                        vectors: all,
                    }) => {
                        if *d != dim {
                            return Err(format!("output part has dim {dim}, earlier parts {d}"));
                        }
                        all.extend(vectors);
                    }
                    Some(_) => return Err("embedding part in another output".into()),
                }
                Ok(())
            }
        }
    }

    /// The whole output; an error if no part came.
    pub fn finish(self) -> Result<JobOutput, String> {
        if let Some(JobOutput::Tensor { outputs }) = &self.output {
            for t in outputs {
                t.check()?;
            }
        }
        if let Some((text, finish_reason)) = self.text {
            let finish_reason =
                finish_reason.ok_or_else(|| "the text ended without a finish reason".to_owned())?;
            return Ok(JobOutput::TextGeneration {
                text,
                finish_reason,
            });
        }
        self.output
            .ok_or_else(|| "the job ended without output".to_owned())
    }
}

/// What the node signs about a finished job. Anyone holding the job's input
/// and output can check every hash in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub job_id: JobId,
    pub node_id: NodeId,
    pub model_hash: ModelHash,
    pub input_hash: Sha256Digest,
    pub output_hash: Sha256Digest,
    pub price_msat: MilliSats,
    pub received_at: UnixMillis,
    pub finished_at: UnixMillis,
    /// Time spent waiting for the engine.
    pub queue_ms: u64,
    /// Time spent computing, tokenisation included.
    pub compute_ms: u64,
    pub device: String,
    /// What the job used; `price_msat` is computed from it.
    #[serde(default)]
    pub usage: Usage,
}

impl Signable for Receipt {
    const DOMAIN: &'static str = "infernet/receipt/v1";
    fn signer(&self) -> NodeId {
        self.node_id
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt signature: {0}")]
    Signature(#[from] SigningError),
    #[error("receipt is signed by {actual}, but the job ran on {expected}")]
    WrongNode { expected: String, actual: String },
    #[error("receipt names job {actual}, not {expected}")]
    WrongJob { expected: String, actual: String },
    #[error("receipt's {what} hash does not match the job's")]
    HashMismatch { what: &'static str },
    #[error("receipt charges {charged}, above the agreed maximum {max}")]
    Overcharged { charged: MilliSats, max: MilliSats },
}

/// Checks a receipt against the job it claims to be for: signature, node,
/// job id, and the model, input and output hashes.
pub fn verify_receipt(
    envelope: &SignedEnvelope,
    job_id: &JobId,
    node: NodeId,
    model_hash: ModelHash,
    input: &JobInput,
    output: &JobOutput,
) -> Result<Receipt, ReceiptError> {
    let receipt: Receipt = envelope.open()?;
    if receipt.node_id != node {
        return Err(ReceiptError::WrongNode {
            expected: node.to_string(),
            actual: receipt.node_id.to_string(),
        });
    }
    if &receipt.job_id != job_id {
        return Err(ReceiptError::WrongJob {
            expected: job_id.to_string(),
            actual: receipt.job_id.to_string(),
        });
    }
    if receipt.model_hash != model_hash {
        return Err(ReceiptError::HashMismatch { what: "model" });
    }
    if receipt.input_hash != input.digest() {
        return Err(ReceiptError::HashMismatch { what: "input" });
    }
    if receipt.output_hash != output.digest() {
        return Err(ReceiptError::HashMismatch { what: "output" });
    }
    Ok(receipt)
}

/// Cosine similarity of two vectors; 0 when either is all zeros. (The
/// embeddings are L2-normalised, but this does not rely on it.)
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// `POST /api/v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// A model name or content hash.
    pub model: String,
    /// Task-specific; for embeddings `{"texts": [...]}`.
    pub input: serde_json::Value,
    /// Run on this node only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_msat: Option<MilliSats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Sent to a node; waiting for its answer.
    Dispatched,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Dispatched => "dispatched",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEvent {
    pub status: JobStatus,
    pub at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A job as the server keeps it and `GET /api/v1/jobs/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    pub model: String,
    pub model_hash: ModelHash,
    pub task: Task,
    pub node_id: NodeId,
    pub status: JobStatus,
    pub input: JobInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<JobOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<SignedEnvelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    pub price_msat: MilliSats,
    pub created_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
    #[serde(default)]
    pub events: Vec<JobEvent>,
}

/// One line of `GET /api/v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    pub id: JobId,
    pub model: String,
    pub node_id: NodeId,
    pub status: JobStatus,
    pub price_msat: MilliSats,
    pub created_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p_identity::Keypair;

    fn done_job(key: &Keypair) -> (JobId, JobInput, JobOutput, Receipt) {
        let job_id = JobId::from_random([7; 16]);
        let input = JobInput::Embedding {
            texts: vec!["a cat".into()],
        };
        let output = JobOutput::Embedding {
            dim: 2,
            vectors: vec![vec![0.6, 0.8]],
        };
        let receipt = Receipt {
            job_id: job_id.clone(),
            node_id: key.public().to_peer_id().into(),
            model_hash: Sha256Digest::of(b"model"),
            input_hash: input.digest(),
            output_hash: output.digest(),
            price_msat: MilliSats(1000),
            received_at: UnixMillis(1),
            finished_at: UnixMillis(2),
            queue_ms: 0,
            compute_ms: 1,
            device: "cpu".into(),
            usage: Usage::default(),
        };
        (job_id, input, output, receipt)
    }

    #[test]
    fn receipt_verifies_against_its_job() {
        let key = Keypair::generate_ed25519();
        let (id, input, output, receipt) = done_job(&key);
        let env = SignedEnvelope::seal(&key, &receipt).unwrap();
        let got = verify_receipt(
            &env,
            &id,
            receipt.node_id,
            receipt.model_hash,
            &input,
            &output,
        )
        .unwrap();
        assert_eq!(got, receipt);
    }

    #[test]
    fn receipt_for_a_different_output_is_rejected() {
        let key = Keypair::generate_ed25519();
        let (id, input, _, receipt) = done_job(&key);
        let env = SignedEnvelope::seal(&key, &receipt).unwrap();
        let other = JobOutput::Embedding {
            dim: 2,
            vectors: vec![vec![0.8, 0.6]],
        };
        assert_eq!(
            verify_receipt(
                &env,
                &id,
                receipt.node_id,
                receipt.model_hash,
                &input,
                &other
            ),
            Err(ReceiptError::HashMismatch { what: "output" })
        );
    }

    #[test]
    fn receipt_from_another_node_is_rejected() {
        let key = Keypair::generate_ed25519();
        let (id, input, output, receipt) = done_job(&key);
        let env = SignedEnvelope::seal(&key, &receipt).unwrap();
        let other = NodeId::from(Keypair::generate_ed25519().public().to_peer_id());
        assert!(matches!(
            verify_receipt(&env, &id, other, receipt.model_hash, &input, &output),
            Err(ReceiptError::WrongNode { .. })
        ));
    }

    #[test]
    fn output_digest_survives_a_json_round_trip() {
        // The browser re-checks receipts from JSON it received: the digest
        // must not change when f32s go through JSON text and back.
        let output = JobOutput::Embedding {
            dim: 3,
            vectors: vec![vec![0.1, -1.0e-7, 0.333_333_34]],
        };
        let back: JobOutput =
            serde_json::from_str(&serde_json::to_string(&output).unwrap()).unwrap();
        assert_eq!(back.digest(), output.digest());
    }

    #[test]
    fn cosine_of_a_vector_with_itself_is_one() {
        assert!((cosine(&[0.6, 0.8], &[0.6, 0.8]) - 1.0).abs() < 1e-9);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-9);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn long_outputs_split_into_bounded_parts_and_reassemble_exactly() {
        let output = JobOutput::Embedding {
            dim: 384,
            vectors: (0..64)
                .map(|i| (0..384).map(|j| (i * 384 + j) as f32 * 1e-3).collect())
                .collect(),
        };
        let parts = output.clone().into_parts(16 * 1024);
        assert!(parts.len() > 1, "{} parts", parts.len());
        let mut asm = OutputAssembler::new(64 * 384);
        for p in parts {
            asm.push(p).unwrap();
        }
        let back = asm.finish().unwrap();
        assert_eq!(back.digest(), output.digest());
    }

    #[test]
    fn out_of_order_oversized_or_ragged_parts_are_refused() {
        let part = |first, vectors: Vec<Vec<f32>>| OutputPart::Embedding {
            dim: 2,
            first,
            vectors,
        };
        let mut asm = OutputAssembler::new(4);
        assert!(asm.push(part(1, vec![vec![0.0, 1.0]])).is_err());
        asm.push(part(0, vec![vec![0.0, 1.0]])).unwrap();
        assert!(asm.push(part(1, vec![vec![0.0]])).is_err());
        assert!(asm
            .push(part(1, vec![vec![0.0, 1.0], vec![1.0, 0.0]]))
            .is_err());
        assert!(OutputAssembler::new(4).finish().is_err());
    }

    #[test]
    fn embedding_input_is_parsed_and_bounded() {
        let ok = JobInput::parse(Task::Embedding, serde_json::json!({"texts": ["hi"]})).unwrap();
        assert_eq!(ok.task(), Task::Embedding);
        assert!(matches!(
            JobInput::parse(Task::Embedding, serde_json::json!({"text": "hi"})),
            Err(InputError::Shape { .. })
        ));
        assert!(matches!(
            JobInput::parse(Task::Embedding, serde_json::json!({"texts": []})),
            Err(InputError::Limit(_))
        ));
        let long = "x".repeat(MAX_EMBEDDING_TEXT_CHARS + 1);
        assert!(matches!(
            JobInput::parse(Task::Embedding, serde_json::json!({"texts": [long]})),
            Err(InputError::Limit(_))
        ));
    }

    #[test]
    fn generation_input_takes_a_prompt_or_messages_and_is_bounded() {
        let chat = JobInput::parse(
            Task::TextGeneration,
            serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stop": ["\n"]}),
        )
        .unwrap();
        let JobInput::TextGeneration { prompt, params } = &chat else {
            panic!("{chat:?}");
        };
        assert!(matches!(prompt, Prompt::Chat(m) if m[0].role == Role::User));
        assert_eq!(params.max_tokens, 5);
        assert_eq!(params.stop, vec!["\n".to_owned()]);
        let text =
            JobInput::parse(Task::TextGeneration, serde_json::json!({"prompt": "once"})).unwrap();
        assert_eq!(text.task(), Task::TextGeneration);
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"prompt": "a", "messages": []}),
            serde_json::json!({"prompt": "a", "max_tokens": 0}),
            serde_json::json!({"prompt": "a", "temperature": 3.0}),
            serde_json::json!({"prompt": "a", "top_p": 0.0}),
            serde_json::json!({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]}),
            serde_json::json!({"prompt": "a", "stop": [""]}),
            serde_json::json!({"prompt": "a", "frequency": 1}),
            serde_json::json!({"messages": []}),
            serde_json::json!({"messages": [{"role": "robot", "content": "x"}]}),
        ] {
            assert!(
                JobInput::parse(Task::TextGeneration, bad.clone()).is_err(),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn text_output_streams_in_ordered_parts_and_needs_its_finish_reason() {
        let output = JobOutput::TextGeneration {
            text: "héllo wörld, ".repeat(50),
            finish_reason: FinishReason::Length,
        };
        let parts = output.clone().into_parts(7);
        assert!(parts.len() > 50);
        let mut asm = OutputAssembler::new(1 << 20);
        for p in parts.clone() {
            asm.push(p).unwrap();
        }
        assert_eq!(asm.finish().unwrap(), output);

        let mut asm = OutputAssembler::new(1 << 20);
        assert!(asm.push(parts[1].clone()).is_err(), "out of order");
        let mut asm = OutputAssembler::new(1 << 20);
        asm.push(parts[0].clone()).unwrap();
        assert!(asm.finish().is_err(), "no finish reason");
        let mut asm = OutputAssembler::new(4);
        assert!(asm.push(parts[0].clone()).is_ok());
        assert!(asm.push(parts[1].clone()).is_ok());
        assert!(asm.push(parts[2].clone()).is_err(), "over the bound");
    }

    #[test]
    fn a_job_costs_its_base_price_plus_its_metered_tokens() {
        let mut offer = crate::registry::ModelOffer {
            name: "m".into(),
            task: Task::TextGeneration,
            hash: Sha256Digest::of(b"m"),
            price_msat: MilliSats(100),
            token_price: crate::registry::TokenPrice {
                input_msat: MilliSats(1),
                output_msat: MilliSats(3),
            },
            device: "cpu".into(),
            description: None,
            embedding_dim: None,
            context_tokens: Some(256),
        };
        assert_eq!(offer.price_for(10, 5), MilliSats(125));
        assert_eq!(offer.output_tokens_within(MilliSats(125), 10), Some(5));
        assert_eq!(offer.output_tokens_within(MilliSats(126), 10), Some(5));
        assert_eq!(offer.output_tokens_within(MilliSats(109), 10), None);
        offer.token_price = Default::default();
        assert_eq!(
            offer.output_tokens_within(MilliSats(100), 10),
            Some(u32::MAX)
        );
        assert_eq!(offer.price_for(u32::MAX, u32::MAX), MilliSats(100));
    }

    #[test]
    fn tensor_inputs_are_checked_and_outputs_stream_in_parts() {
        let ok = JobInput::parse(
            Task::Tensor,
            serde_json::json!({"inputs": [{"name": "x", "shape": [2, 2], "data": {"dtype": "f32", "values": [1.0, 2.0, 3.0, 4.0]}}]}),
        )
        .unwrap();
        assert_eq!(ok.task(), Task::Tensor);
        for bad in [
            serde_json::json!({"inputs": []}),
            serde_json::json!({"inputs": [{"name": "x", "shape": [3], "data": {"dtype": "f32", "values": [1.0]}}]}),
            serde_json::json!({"inputs": [{"name": "x", "shape": [1], "data": {"dtype": "u8", "values": [1]}}]}),
            serde_json::json!({"inputs": [
                {"name": "x", "shape": [1], "data": {"dtype": "i64", "values": [1]}},
                {"name": "x", "shape": [1], "data": {"dtype": "i64", "values": [1]}}]}),
            serde_json::json!({"inputs": [{"name": "x", "shape": [4294967296u64, 4294967296u64], "data": {"dtype": "f32", "values": []}}]}),
        ] {
            assert!(JobInput::parse(Task::Tensor, bad.clone()).is_err(), "{bad}");
        }
        let output = JobOutput::Tensor {
            outputs: vec![
                NamedTensor {
                    name: "y".into(),
                    shape: vec![100, 10],
                    data: TensorData::F32((0..1000).map(|i| i as f32).collect()),
                },
                NamedTensor {
                    name: "ids".into(),
                    shape: vec![3],
                    data: TensorData::I64(vec![7, 8, 9]),
                },
            ],
        };
        let parts = output.clone().into_parts(900);
        assert!(parts.len() > 10, "{} parts", parts.len());
        let mut asm = OutputAssembler::new(2000);
        for p in parts.clone() {
            asm.push(p).unwrap();
        }
        assert_eq!(asm.finish().unwrap(), output);
        let mut asm = OutputAssembler::new(2000);
        assert!(asm.push(parts[1].clone()).is_err(), "out of order");
        let mut asm = OutputAssembler::new(2000);
        asm.push(parts[0].clone()).unwrap();
        assert!(asm.finish().is_err(), "a tensor missing values");
    }
}

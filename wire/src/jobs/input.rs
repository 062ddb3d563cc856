//! What a job asks for: its input, tagged with its task, the limits every
//! input must keep, and the typed errors that say which part broke them.

use serde::{Deserialize, Serialize};

use crate::registry::Task;
use crate::Sha256Digest;

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
pub const MAX_TENSOR_NAME_BYTES: usize = 64;
pub const MAX_TENSOR_INPUT_VALUES: usize = 1 << 17;
pub const MAX_TENSOR_OUTPUT_VALUES: usize = 1 << 22;

/// A job's input, tagged with its task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub data: TensorData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "dtype", content = "values", rename_all = "snake_case")]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// Why a tensor is not what its name, shape and values claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    #[error("tensor names are 1 to {MAX_TENSOR_NAME_BYTES} bytes")]
    Name,
    #[error("{name} has {dims} dimensions; at most {MAX_TENSOR_DIMS}")]
    Dims { name: String, dims: usize },
    #[error("{name} has shape {shape:?} ({expected} values) but {got} values")]
    Values {
        name: String,
        shape: Vec<u64>,
        expected: usize,
        got: usize,
    },
    #[error("{name} has an overflowing shape")]
    Overflow { name: String },
    #[error("{got} values after {had} ones")]
    Dtype {
        had: &'static str,
        got: &'static str,
    },
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
    pub fn extend(&mut self, more: TensorData) -> Result<(), TensorError> {
        match (self, more) {
            (TensorData::F32(a), TensorData::F32(b)) => a.extend(b),
            (TensorData::I64(a), TensorData::I64(b)) => a.extend(b),
            (a, b) => {
                return Err(TensorError::Dtype {
                    had: a.dtype(),
                    got: b.dtype(),
                })
            }
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

    pub fn check(&self) -> Result<(), TensorError> {
        if self.name.is_empty() || self.name.len() > MAX_TENSOR_NAME_BYTES {
            return Err(TensorError::Name);
        }
        if self.shape.len() > MAX_TENSOR_DIMS {
            return Err(TensorError::Dims {
                name: self.name.clone(),
                dims: self.shape.len(),
            });
        }
        match self.numel() {
            Some(n) if n == self.data.len() => Ok(()),
            Some(expected) => Err(TensorError::Values {
                name: self.name.clone(),
                shape: self.shape.clone(),
                expected,
                got: self.data.len(),
            }),
            None => Err(TensorError::Overflow {
                name: self.name.clone(),
            }),
        }
    }
}

/// What a generation starts from: raw text, or a chat the node renders with
/// its model's chat template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    Text(String),
    Chat(Vec<ChatMessage>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// How to sample. `temperature` 0 is greedy decoding, which is deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// The part of a job's input an [`InputError`] is about, so that an API can
/// name its own parameter without reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputField {
    /// The input as a whole (its JSON shape).
    Input,
    Texts,
    Prompt,
    Messages,
    MaxTokens,
    Stop,
    Temperature,
    TopP,
    Tensors,
}

/// Why a job's input was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("input for an {task} job must be {expected}: {detail}")]
    Shape {
        task: &'static str,
        expected: &'static str,
        detail: String,
    },
    #[error("give exactly one of prompt and messages")]
    PromptOrMessages,
    #[error("an embedding job takes 1 to {MAX_EMBEDDING_TEXTS} texts, got {0}")]
    TextCount(usize),
    #[error("text {index} has {chars} characters; the limit is {MAX_EMBEDDING_TEXT_CHARS}")]
    TextTooLong { index: usize, chars: usize },
    #[error("the prompt has {0} characters; the limit is {MAX_PROMPT_CHARS}")]
    PromptTooLong(usize),
    #[error("a chat takes 1 to {MAX_CHAT_MESSAGES} messages, got {0}")]
    MessageCount(usize),
    #[error("the messages have {0} characters; the limit is {MAX_PROMPT_CHARS}")]
    MessagesTooLong(usize),
    #[error("max_tokens must be 1 to {MAX_OUTPUT_TOKENS}, got {0}")]
    MaxTokens(u32),
    #[error("at most {MAX_STOP_SEQUENCES} stop sequences, got {0}")]
    StopCount(usize),
    #[error("stop sequences must be 1 to {MAX_STOP_CHARS} characters, got {0:?}")]
    StopLength(String),
    #[error("temperature must be between 0 and 2, got {0}")]
    Temperature(f32),
    #[error("top_p must be above 0 and at most 1, got {0}")]
    TopP(f32),
    #[error("a tensor job takes 1 to {MAX_TENSORS} inputs, got {0}")]
    TensorCount(usize),
    #[error(transparent)]
    Tensor(#[from] TensorError),
    #[error("input {0} is given twice")]
    DuplicateTensor(String),
    #[error("the inputs hold {0} values; at most {MAX_TENSOR_INPUT_VALUES}")]
    TensorValues(usize),
}

impl InputError {
    /// Which part of the input is at fault.
    pub fn field(&self) -> InputField {
        use InputError::*;
        match self {
            Shape { .. } => InputField::Input,
            PromptOrMessages | PromptTooLong(_) => InputField::Prompt,
            TextCount(_) | TextTooLong { .. } => InputField::Texts,
            MessageCount(_) | MessagesTooLong(_) => InputField::Messages,
            MaxTokens(_) => InputField::MaxTokens,
            StopCount(_) | StopLength(_) => InputField::Stop,
            Temperature(_) => InputField::Temperature,
            TopP(_) => InputField::TopP,
            TensorCount(_) | Tensor(_) | DuplicateTensor(_) | TensorValues(_) => {
                InputField::Tensors
            }
        }
    }
}

impl JobInput {
    /// Reads the untagged `input` of an HTTP job submission as input for
    /// `task`, and checks its limits.
    pub fn parse(task: Task, input: serde_json::Value) -> Result<Self, InputError> {
        let parsed = match task {
            Task::Embedding => {
                #[derive(Deserialize)]
                #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
                #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
                let g: Generation =
                    serde_json::from_value(input).map_err(|e| InputError::Shape {
                        task: "text_generation",
                        expected: r#"{"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}, with max_tokens, stop, temperature, top_p, seed"#,
                        detail: e.to_string(),
                    })?;
                let prompt = match (g.prompt, g.messages) {
                    (Some(p), None) => Prompt::Text(p),
                    (None, Some(m)) => Prompt::Chat(m),
                    _ => return Err(InputError::PromptOrMessages),
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
                #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
                    return Err(InputError::TextCount(texts.len()));
                }
                if let Some((index, chars)) = texts
                    .iter()
                    .map(|t| t.chars().count())
                    .enumerate()
                    .find(|(_, n)| *n > MAX_EMBEDDING_TEXT_CHARS)
                {
                    return Err(InputError::TextTooLong { index, chars });
                }
                Ok(())
            }
            JobInput::TextGeneration { prompt, params } => {
                match prompt {
                    Prompt::Text(text) => {
                        let n = text.chars().count();
                        if n > MAX_PROMPT_CHARS {
                            return Err(InputError::PromptTooLong(n));
                        }
                    }
                    Prompt::Chat(messages) => {
                        if messages.is_empty() || messages.len() > MAX_CHAT_MESSAGES {
                            return Err(InputError::MessageCount(messages.len()));
                        }
                        let total: usize = messages.iter().map(|m| m.content.chars().count()).sum();
                        if total > MAX_PROMPT_CHARS {
                            return Err(InputError::MessagesTooLong(total));
                        }
                    }
                }
                params.validate()
            }
            JobInput::Tensor { inputs } => {
                if inputs.is_empty() || inputs.len() > MAX_TENSORS {
                    return Err(InputError::TensorCount(inputs.len()));
                }
                let mut total = 0usize;
                for (i, t) in inputs.iter().enumerate() {
                    t.check()?;
                    if inputs[..i].iter().any(|o| o.name == t.name) {
                        return Err(InputError::DuplicateTensor(t.name.clone()));
                    }
                    total += t.data.len();
                }
                if total > MAX_TENSOR_INPUT_VALUES {
                    return Err(InputError::TensorValues(total));
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

impl GenerationParams {
    pub fn validate(&self) -> Result<(), InputError> {
        if self.max_tokens == 0 || self.max_tokens > MAX_OUTPUT_TOKENS {
            return Err(InputError::MaxTokens(self.max_tokens));
        }
        if self.stop.len() > MAX_STOP_SEQUENCES {
            return Err(InputError::StopCount(self.stop.len()));
        }
        if let Some(s) = self
            .stop
            .iter()
            .find(|s| s.is_empty() || s.chars().count() > MAX_STOP_CHARS)
        {
            return Err(InputError::StopLength(s.clone()));
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return Err(InputError::Temperature(self.temperature));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(InputError::TopP(self.top_p));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_input_is_parsed_and_bounded() {
        let ok = JobInput::parse(Task::Embedding, serde_json::json!({"texts": ["hi"]})).unwrap();
        assert_eq!(ok.task(), Task::Embedding);
        assert!(matches!(
            JobInput::parse(Task::Embedding, serde_json::json!({"text": "hi"})),
            Err(InputError::Shape { .. })
        ));
        assert_eq!(
            JobInput::parse(Task::Embedding, serde_json::json!({"texts": []})),
            Err(InputError::TextCount(0))
        );
        let long = "x".repeat(MAX_EMBEDDING_TEXT_CHARS + 1);
        assert_eq!(
            JobInput::parse(Task::Embedding, serde_json::json!({"texts": ["ok", long]})),
            Err(InputError::TextTooLong {
                index: 1,
                chars: MAX_EMBEDDING_TEXT_CHARS + 1
            })
        );
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
    fn each_input_error_names_the_field_it_is_about() {
        let field = |input: serde_json::Value| {
            JobInput::parse(Task::TextGeneration, input)
                .unwrap_err()
                .field()
        };
        let with = |k: &str, v: serde_json::Value| {
            let mut body = serde_json::json!({"prompt": "a"});
            body[k] = v;
            body
        };
        assert_eq!(field(with("max_tokens", 0.into())), InputField::MaxTokens);
        assert_eq!(
            field(with("temperature", 2.5.into())),
            InputField::Temperature
        );
        assert_eq!(field(with("top_p", 0.0.into())), InputField::TopP);
        assert_eq!(
            field(with("stop", serde_json::json!([""]))),
            InputField::Stop
        );
        assert_eq!(
            field(serde_json::json!({"messages": []})),
            InputField::Messages
        );
        assert_eq!(
            field(serde_json::json!({"prompt": "x".repeat(MAX_PROMPT_CHARS + 1)})),
            InputField::Prompt
        );
        assert_eq!(field(serde_json::json!({"oops": 1})), InputField::Input);
    }

    #[test]
    fn tensor_inputs_are_checked_by_name_shape_and_dtype() {
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
        let mut f = TensorData::F32(vec![1.0]);
        assert_eq!(
            f.extend(TensorData::I64(vec![1])),
            Err(TensorError::Dtype {
                had: "f32",
                got: "i64"
            })
        );
    }
}

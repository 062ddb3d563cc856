//! The job protocol's frames ([`JOB_PROTOCOL`](crate::JOB_PROTOCOL)): the
//! request a consumer sends, what a provider streams back, and how a long
//! output is cut into bounded parts and put back together.

use serde::{Deserialize, Serialize};

use super::{FinishReason, JobInput, JobOutput, NamedTensor, TensorData, TensorError};
use crate::{JobId, MilliSats, ModelHash, UnixMillis};

/// Sent by the server (or any consumer) to a node over the job protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobRequest {
    pub job_id: JobId,
    pub model_hash: ModelHash,
    pub input: JobInput,
    /// The consumer pays at most this much; a node asking more refuses.
    pub max_price_msat: MilliSats,
    /// The node gives up on the job after this time.
    pub deadline: UnixMillis,
    /// Offered on top of the node's price (and within `max_price_msat`)
    /// to be served before jobs that offer less while the node is busy;
    /// charged only if the job went ahead of one.
    #[serde(default, skip_serializing_if = "MilliSats::is_zero")]
    pub bid_msat: MilliSats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

impl RefusalCode {
    /// The code as it is written on the wire (`price_too_low`).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::UnknownModel => "unknown_model",
            RefusalCode::PriceTooLow => "price_too_low",
            RefusalCode::BadInput => "bad_input",
            RefusalCode::Overloaded => "overloaded",
            RefusalCode::DeadlineExceeded => "deadline_exceeded",
            RefusalCode::EngineFailed => "engine_failed",
            RefusalCode::NotAccepting => "not_accepting",
            RefusalCode::Cancelled => "cancelled",
        }
    }
}

/// What a consumer writes on a job stream: one `Request`, then possibly
/// `Cancel`. Closing the stream before the answer also cancels the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum ConsumerFrame {
    Request {
        request: JobRequest,
    },
    /// Stop now and answer with what was generated so far, with a receipt
    /// for it (the stream stays open for the answer).
    Stop,
    Cancel,
}

/// What a provider writes on a job stream: `Accepted`, the output in
/// `Output` parts (in order), then exactly one `Done` (whose receipt covers
/// the whole output) or `Refused`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum ProviderFrame {
    Accepted { queue_position: u32 },
    Output { part: OutputPart },
    Done { receipt: crate::SignedEnvelope },
    Refused { code: RefusalCode, message: String },
}

/// A piece of a job's output, so that long outputs stream in bounded frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// Why streamed parts do not make an output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssemblyError {
    #[error("a {part} part in a {output} output")]
    MixedTasks {
        part: &'static str,
        output: &'static str,
    },
    #[error("part {got} arrived, expected {expected}")]
    OutOfOrder { got: u64, expected: u64 },
    #[error("tensor part {index} of {name} out of order")]
    TensorOutOfOrder { index: u32, name: String },
    #[error("text part after the last one")]
    AfterLast,
    #[error("output exceeds {0} values")]
    TooManyValues(usize),
    #[error("output exceeds {0} bytes")]
    TooManyBytes(usize),
    #[error("vector of length {len} in a {dim}-dim output")]
    Ragged { len: usize, dim: u32 },
    #[error("output part has dim {got}, earlier parts {dim}")]
    DimChanged { got: u32, dim: u32 },
    #[error(transparent)]
    Tensor(#[from] TensorError),
    #[error("the text ended without a finish reason")]
    NoFinishReason,
    #[error("the job ended without output")]
    Empty,
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
    pub fn push(&mut self, part: OutputPart) -> Result<(), AssemblyError> {
        match part {
            OutputPart::Tensor {
                index,
                name,
                shape,
                first,
                data,
            } => {
                if self.text.is_some() {
                    return Err(AssemblyError::MixedTasks {
                        part: "tensor",
                        output: "text",
                    });
                }
                let outputs = match self.output.get_or_insert_with(|| JobOutput::Tensor {
                    outputs: Vec::new(),
                }) {
                    JobOutput::Tensor { outputs } => outputs,
                    _ => {
                        return Err(AssemblyError::MixedTasks {
                            part: "tensor",
                            output: "embedding",
                        })
                    }
                };
                self.items += data.len();
                if self.items > self.max_values {
                    return Err(AssemblyError::TooManyValues(self.max_values));
                }
                let index = index as usize;
                if index + 1 == outputs.len() {
                    let t = &mut outputs[index];
                    if t.name != name || t.shape != shape || t.data.len() as u64 != first {
                        return Err(AssemblyError::TensorOutOfOrder {
                            index: index as u32,
                            name,
                        });
                    }
                    t.data.extend(data)?;
                } else if index == outputs.len() && first == 0 {
                    outputs.push(NamedTensor { name, shape, data });
                } else {
                    return Err(AssemblyError::TensorOutOfOrder {
                        index: index as u32,
                        name,
                    });
                }
                Ok(())
            }
            OutputPart::Text {
                seq,
                delta,
                finish_reason,
            } => {
                if self.output.is_some() {
                    return Err(AssemblyError::MixedTasks {
                        part: "text",
                        output: "embedding or tensor",
                    });
                }
                let (text, finished) = self.text.get_or_insert_with(Default::default);
                if finished.is_some() {
                    return Err(AssemblyError::AfterLast);
                }
                if seq as usize != self.items {
                    return Err(AssemblyError::OutOfOrder {
                        got: u64::from(seq),
                        expected: self.items as u64,
                    });
                }
                let max_bytes = self.max_values.saturating_mul(4);
                if text.len() + delta.len() > max_bytes {
                    return Err(AssemblyError::TooManyBytes(max_bytes));
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
                    return Err(AssemblyError::OutOfOrder {
                        got: u64::from(first),
                        expected: self.items as u64,
                    });
                }
                if let Some(v) = vectors.iter().find(|v| v.len() != dim as usize) {
                    return Err(AssemblyError::Ragged { len: v.len(), dim });
                }
                let values = (self.items + vectors.len()).saturating_mul(dim as usize);
                if values > self.max_values {
                    return Err(AssemblyError::TooManyValues(self.max_values));
                }
                if self.text.is_some() {
                    return Err(AssemblyError::MixedTasks {
                        part: "embedding",
                        output: "text",
                    });
                }
                self.items += vectors.len();
                match &mut self.output {
                    None => self.output = Some(JobOutput::Embedding { dim, vectors }),
                    Some(JobOutput::Embedding {
                        dim: d,
                        vectors: all,
                    }) => {
                        if *d != dim {
                            return Err(AssemblyError::DimChanged { got: dim, dim: *d });
                        }
                        all.extend(vectors);
                    }
                    Some(_) => {
                        return Err(AssemblyError::MixedTasks {
                            part: "embedding",
                            output: "tensor",
                        })
                    }
                }
                Ok(())
            }
        }
    }

    /// The whole output; an error if no part came.
    pub fn finish(self) -> Result<JobOutput, AssemblyError> {
        if let Some(JobOutput::Tensor { outputs }) = &self.output {
            for t in outputs {
                t.check()?;
            }
        }
        if let Some((text, finish_reason)) = self.text {
            let finish_reason = finish_reason.ok_or(AssemblyError::NoFinishReason)?;
            return Ok(JobOutput::TextGeneration {
                text,
                finish_reason,
            });
        }
        self.output.ok_or(AssemblyError::Empty)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            asm.push(part(1, vec![vec![0.0, 1.0]])),
            Err(AssemblyError::OutOfOrder {
                got: 1,
                expected: 0
            })
        );
        asm.push(part(0, vec![vec![0.0, 1.0]])).unwrap();
        assert_eq!(
            asm.push(part(1, vec![vec![0.0]])),
            Err(AssemblyError::Ragged { len: 1, dim: 2 })
        );
        assert_eq!(
            asm.push(part(1, vec![vec![0.0, 1.0], vec![1.0, 0.0]])),
            Err(AssemblyError::TooManyValues(4))
        );
        assert_eq!(OutputAssembler::new(4).finish(), Err(AssemblyError::Empty));
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
        assert_eq!(asm.finish(), Err(AssemblyError::NoFinishReason));
        let mut asm = OutputAssembler::new(4);
        assert!(asm.push(parts[0].clone()).is_ok());
        assert!(asm.push(parts[1].clone()).is_ok());
        assert_eq!(
            asm.push(parts[2].clone()),
            Err(AssemblyError::TooManyBytes(16)),
            "over the bound"
        );
    }

    #[test]
    fn tensor_outputs_stream_in_parts_and_reassemble() {
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
        assert!(
            matches!(
                asm.finish(),
                Err(AssemblyError::Tensor(TensorError::Values { .. }))
            ),
            "a tensor missing values"
        );
    }
}

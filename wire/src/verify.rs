//! Checking what nodes answer, and what happens to those that answer
//! wrong.
//!
//! - A [`CanarySet`] holds inputs whose answers are known: computed from a
//!   model file (by its hash) by an engine its maker trusts
//!   (`infernet-node --make-canaries`). A server sends them as ordinary jobs.
//! - [`compare`] says whether two answers to one input agree, allowing for
//!   the rounding of another device: cosine for embeddings, a relative
//!   tolerance for tensors, the same tokens for greedy generation.
//! - A [`Ban`] is a server's signed finding that a node answered wrong,
//!   with its [`Exhibit`]s: the receipts the node signed, what it answered
//!   and what two others did. Anyone can check the signature
//!   ([`SignedEnvelope::open`]) and the receipts in it.

use serde::{Deserialize, Serialize};

use crate::jobs::{cosine, FinishReason, JobInput, JobOutput, TensorData};
use crate::registry::Task;
use crate::signing::Signable;
use crate::{JobId, ModelHash, NodeId, SignedEnvelope, UnixMillis};

/// Embeddings agree when every pair of vectors is at least this similar.
/// Rounding every value to half precision (a GPU in fp16) keeps a vector
/// above 0.99999 of itself; another model, or a shortcut, lands far below.
pub const MIN_COSINE: f64 = 0.995;
/// Tensor values agree within this fraction of the larger one…
pub const TENSOR_RTOL: f64 = 1e-2;
/// …or within this absolute difference (values near zero).
pub const TENSOR_ATOL: f64 = 1e-3;

/// How a server checks nodes, as it publishes it (`GET /api/v1/network`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Published {
    /// Canaries each node gets per model an hour, on average, for the
    /// models in `canary_models`.
    pub canaries_per_hour: f64,
    pub canary_models: Vec<ModelHash>,
    /// The fraction of consumers' jobs (those whose answers can be
    /// compared) that run again on a second node.
    pub redundancy: f64,
}

/// A known answer: what the model computes for `input`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Canary {
    pub input: JobInput,
    pub output: JobOutput,
}

/// Canaries for one model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CanarySet {
    pub model_hash: ModelHash,
    /// The model's name where it was made (for people; jobs go by hash).
    pub model: String,
    pub task: Task,
    /// The device the answers were computed on (`cpu`, `cuda:0`).
    pub device: String,
    pub made_at: UnixMillis,
    pub cases: Vec<Canary>,
}

impl CanarySet {
    /// Whether every case is of the set's task, input and output alike.
    pub fn check(&self) -> Result<(), String> {
        if self.cases.is_empty() {
            return Err(format!("the canaries of {} have no cases", self.model));
        }
        for (i, case) in self.cases.iter().enumerate() {
            if case.input.task() != self.task || output_task(&case.output) != self.task {
                return Err(format!(
                    "canary {i} of {} is not a {} job",
                    self.model,
                    self.task.as_str()
                ));
            }
            case.input
                .validate()
                .map_err(|e| format!("canary {i} of {}: {e}", self.model))?;
        }
        Ok(())
    }
}

fn output_task(output: &JobOutput) -> Task {
    match output {
        JobOutput::Embedding { .. } => Task::Embedding,
        JobOutput::TextGeneration { .. } => Task::TextGeneration,
        JobOutput::Tensor { .. } => Task::Tensor,
    }
}

/// Whether an input's answers can be compared across nodes: greedy
/// generation is deterministic, sampling is not (another device's rounding
/// draws other tokens even with the same seed).
pub fn comparable(input: &JobInput) -> bool {
    match input {
        JobInput::TextGeneration { params, .. } => params.temperature == 0.0,
        JobInput::Embedding { .. } | JobInput::Tensor { .. } => true,
    }
}

/// How two answers to one input compare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "agreement", rename_all = "snake_case")]
pub enum Agreement {
    Agree,
    /// With what differs, in words.
    Disagree {
        detail: String,
    },
}

impl Agreement {
    pub fn agrees(&self) -> bool {
        matches!(self, Agreement::Agree)
    }
}

fn differ(detail: String) -> Agreement {
    Agreement::Disagree { detail }
}

/// Compares two answers to the same input (see the tolerances above).
/// Generated texts agree when equal, or when the shorter one was cut short
/// (by its budget or its reader) and the longer one goes on from it.
pub fn compare(a: &JobOutput, b: &JobOutput) -> Agreement {
    match (a, b) {
        (
            JobOutput::Embedding {
                dim: da,
                vectors: va,
            },
            JobOutput::Embedding {
                dim: db,
                vectors: vb,
            },
        ) => {
            if da != db || va.len() != vb.len() {
                return differ(format!(
                    "{} vectors of {da} against {} of {db}",
                    va.len(),
                    vb.len()
                ));
            }
            let worst = va
                .iter()
                .zip(vb)
                .map(|(x, y)| {
                    let c = if x.len() == y.len() {
                        cosine(x, y)
                    } else {
                        -1.0
                    };
                    // NaN (a vector of NaNs) agrees with nothing; `min`
                    // would skip it.
                    if c.is_nan() {
                        -1.0
                    } else {
                        c
                    }
                })
                .fold(1.0f64, f64::min);
            if worst < MIN_COSINE {
                differ(format!("cosine similarity {worst:.4}, under {MIN_COSINE}"))
            } else {
                Agreement::Agree
            }
        }
        (
            JobOutput::TextGeneration {
                text: ta,
                finish_reason: fa,
            },
            JobOutput::TextGeneration {
                text: tb,
                finish_reason: fb,
            },
        ) => {
            if ta == tb {
                return Agreement::Agree;
            }
            let cut_short =
                |f: &FinishReason| matches!(f, FinishReason::Length | FinishReason::Stopped);
            let (short, long, f) = if ta.len() < tb.len() {
                (ta, tb, fa)
            } else {
                (tb, ta, fb)
            };
            if cut_short(f) && long.starts_with(short.as_str()) {
                return Agreement::Agree;
            }
            let at = ta
                .chars()
                .zip(tb.chars())
                .take_while(|(x, y)| x == y)
                .count();
            differ(format!("the texts differ from character {at}"))
        }
        (JobOutput::Tensor { outputs: oa }, JobOutput::Tensor { outputs: ob }) => {
            if oa.len() != ob.len() {
                return differ(format!("{} tensors against {}", oa.len(), ob.len()));
            }
            for (x, y) in oa.iter().zip(ob) {
                if x.name != y.name || x.shape != y.shape {
                    return differ(format!(
                        "tensor {} {:?} against {} {:?}",
                        x.name, x.shape, y.name, y.shape
                    ));
                }
                let far = match (&x.data, &y.data) {
                    (TensorData::F32(p), TensorData::F32(q)) => {
                        p.iter().zip(q).position(|(u, v)| {
                            let (u, v) = (f64::from(*u), f64::from(*v));
                            let d = (u - v).abs();
                            d.is_nan() || d > TENSOR_ATOL.max(TENSOR_RTOL * u.abs().max(v.abs()))
                        })
                    }
                    (TensorData::I64(p), TensorData::I64(q)) => {
                        p.iter().zip(q).position(|(u, v)| u != v)
                    }
                    _ => Some(0),
                };
                if let Some(i) = far {
                    return differ(format!("tensor {} differs at value {i}", x.name));
                }
            }
            Agreement::Agree
        }
        _ => differ("answers of different tasks".into()),
    }
}

/// What an exhibit of a ban is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExhibitRole {
    /// The banned node's answer.
    Suspect,
    /// Another node's answer to the same input.
    Witness,
    /// The known answer of a canary.
    Reference,
}

/// One answer in a ban's evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Exhibit {
    pub role: ExhibitRole,
    /// The job that carried it (none for a reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<NodeId>,
    /// The receipt the node signed for it: job, model, input and output
    /// hashes, price, device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<SignedEnvelope>,
    /// The answer itself, where it is the server's to show (a canary's);
    /// a consumer's job shows only its hashes, in the receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<JobOutput>,
    /// How it compares with the suspect's answer (none for the suspect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against_suspect: Option<Agreement>,
}

/// A server's finding that a node answered wrong: signed by the server
/// (its libp2p key), so that other servers can check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ban {
    pub node_id: NodeId,
    /// The server that found it and signed this.
    pub server: NodeId,
    pub model_hash: ModelHash,
    pub at: UnixMillis,
    /// In words.
    pub reason: String,
    /// The input the answers are to, where it is the server's to show (a
    /// canary's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<JobInput>,
    pub exhibits: Vec<Exhibit>,
}

impl Signable for Ban {
    const DOMAIN: &'static str = "infernet/ban/v1";
    fn signer(&self) -> NodeId {
        self.server
    }
}

/// `GET /nodes/{id}/ban`: the ban, and the same as its server signed it
/// (check `signed` with [`SignedEnvelope::open`]; its payload is `ban`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BanRecord {
    pub ban: Ban,
    pub signed: SignedEnvelope,
}

/// What `/nodes` says of a banned node; the whole signed ban is at
/// `GET /nodes/{id}/ban`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BanSummary {
    pub at: UnixMillis,
    pub server: NodeId,
    pub model_hash: ModelHash,
    pub reason: String,
}

impl From<&Ban> for BanSummary {
    fn from(ban: &Ban) -> Self {
        BanSummary {
            at: ban.at,
            server: ban.server,
            model_hash: ban.model_hash,
            reason: ban.reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{GenerationParams, NamedTensor, Prompt};

    fn embedding(vectors: Vec<Vec<f32>>) -> JobOutput {
        JobOutput::Embedding {
            dim: vectors.first().map_or(0, |v| v.len() as u32),
            vectors,
        }
    }

    /// A deterministic unit vector, a little different for each seed.
    fn unit(seed: u32, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim)
            .map(|i| ((i as f32 + 1.0) * (seed as f32 + 0.37)).sin())
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    /// Rounds to fp16's 11 significant bits, as a GPU in half precision
    /// would, and back.
    fn half(x: f32) -> f32 {
        let bits = x.to_bits() & !((1 << 13) - 1);
        f32::from_bits(bits)
    }

    #[test]
    fn embeddings_rounded_by_another_device_agree_and_other_vectors_do_not() {
        let honest = embedding(vec![unit(1, 384), unit(2, 384)]);
        let fp16 = embedding(vec![
            unit(1, 384).into_iter().map(half).collect(),
            unit(2, 384).into_iter().map(half).collect(),
        ]);
        assert_eq!(compare(&honest, &fp16), Agreement::Agree);
        // Another model's vectors (or a cheap guess) for one of the texts.
        let cheat = embedding(vec![unit(1, 384), unit(9, 384)]);
        assert!(!compare(&honest, &cheat).agrees());
        // Noise of a few percent on every value is already too much.
        let noisy = embedding(vec![
            unit(1, 384)
                .iter()
                .enumerate()
                .map(|(i, x)| x + if i % 2 == 0 { 0.01 } else { -0.01 })
                .collect(),
            unit(2, 384),
        ]);
        assert!(!compare(&honest, &noisy).agrees());
        assert!(!compare(&honest, &embedding(vec![unit(1, 384)])).agrees());
        assert!(!compare(&honest, &embedding(vec![vec![f32::NAN; 384], unit(2, 384)])).agrees());
    }

    fn text(t: &str, f: FinishReason) -> JobOutput {
        JobOutput::TextGeneration {
            text: t.into(),
            finish_reason: f,
        }
    }

    #[test]
    fn greedy_texts_agree_when_equal_or_one_was_cut_short() {
        use FinishReason::*;
        assert!(compare(&text("a cat sat", Stop), &text("a cat sat", Stop)).agrees());
        // One node's budget ran out sooner.
        assert!(compare(&text("a cat", Length), &text("a cat sat", Stop)).agrees());
        assert!(compare(&text("a cat sat", Stop), &text("a cat", Stopped)).agrees());
        // A shorter text that claims to have ended is a different answer.
        assert!(!compare(&text("a cat", Stop), &text("a cat sat", Stop)).agrees());
        assert_eq!(
            compare(&text("a cat sat", Stop), &text("a dog sat", Stop)),
            Agreement::Disagree {
                detail: "the texts differ from character 2".into()
            }
        );
    }

    fn tensor(values: Vec<f32>) -> JobOutput {
        JobOutput::Tensor {
            outputs: vec![NamedTensor {
                name: "y".into(),
                shape: vec![values.len() as u64],
                data: TensorData::F32(values),
            }],
        }
    }

    #[test]
    fn tensors_agree_within_the_tolerance() {
        let a = tensor(vec![1.0, -2.0, 1e-5, 300.0]);
        assert!(compare(&a, &tensor(vec![1.0004, -2.001, 0.0, 300.5])).agrees());
        assert!(!compare(&a, &tensor(vec![1.5, -2.0, 0.0, 300.0])).agrees());
        assert!(!compare(&a, &tensor(vec![1.0, -2.0, 0.01, 300.0])).agrees());
        assert!(!compare(&a, &tensor(vec![1.0, -2.0, f32::NAN, 300.0])).agrees());
        assert!(!compare(&a, &tensor(vec![1.0, -2.0, 0.0])).agrees());
        assert!(!compare(&a, &text("1", FinishReason::Stop)).agrees());
    }

    #[test]
    fn only_greedy_generation_is_compared() {
        let gen = |temperature| JobInput::TextGeneration {
            prompt: Prompt::Text("hi".into()),
            params: GenerationParams {
                temperature,
                seed: Some(7),
                ..GenerationParams::default()
            },
        };
        assert!(comparable(&gen(0.0)));
        assert!(!comparable(&gen(0.8)));
        assert!(comparable(&JobInput::Embedding {
            texts: vec!["x".into()]
        }));
    }

    #[test]
    fn a_ban_is_signed_by_its_server_and_checks_out_elsewhere() {
        let key = libp2p_identity::Keypair::generate_ed25519();
        let server = NodeId::from(key.public().to_peer_id());
        let ban = Ban {
            node_id: NodeId::from(libp2p_identity::PeerId::random()),
            server,
            model_hash: ModelHash::of(b"model"),
            at: UnixMillis(1),
            reason: "answered a canary wrong".into(),
            input: None,
            exhibits: vec![Exhibit {
                role: ExhibitRole::Reference,
                job_id: None,
                node_id: None,
                receipt: None,
                output: Some(text("x", FinishReason::Stop)),
                against_suspect: Some(Agreement::Disagree {
                    detail: "the texts differ from character 0".into(),
                }),
            }],
        };
        let sealed = SignedEnvelope::seal(&key, &ban).unwrap();
        assert_eq!(sealed.open::<Ban>().unwrap(), ban);
        // Another server cannot pass off a ban as this one's.
        let mut forged = ban.clone();
        forged.server = NodeId::from(libp2p_identity::PeerId::random());
        let forged = SignedEnvelope::seal(&key, &forged).unwrap();
        assert!(forged.open::<Ban>().is_err());
    }
}

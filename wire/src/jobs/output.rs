//! What a job gives back, tagged with its task.

use serde::{Deserialize, Serialize};

use super::NamedTensor;
use crate::Sha256Digest;

/// Why a generation ended (OpenAI's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model's end-of-text token, or a stop sequence.
    Stop,
    /// `max_tokens`, the context window, or the job's budget.
    Length,
    /// The consumer stopped it (its reader went away): the output is what
    /// was generated until then, and that is what the receipt charges.
    Stopped,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Stopped => "stopped",
        }
    }
}

/// A job's output, tagged with its task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

impl JobOutput {
    pub fn digest(&self) -> Sha256Digest {
        Sha256Digest::of_json(self).unwrap_or_else(|_| Sha256Digest::of(b""))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

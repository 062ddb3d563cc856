//! What jobs cost: a model's price per job plus per metered token, the
//! worst case a consumer agrees to when it names no maximum, and how a
//! price reads for people (`1 sat/job + 2 sat/1k output tokens`).

use serde::{Deserialize, Serialize};

use crate::jobs::{JobInput, Prompt};
use crate::registry::ModelOffer;
use crate::MilliSats;

/// Per-token prices of a model, in millisatoshis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenPrice {
    #[serde(default)]
    pub input_msat: MilliSats,
    #[serde(default)]
    pub output_msat: MilliSats,
}

impl TokenPrice {
    pub fn is_zero(&self) -> bool {
        self.input_msat.0 == 0 && self.output_msat.0 == 0
    }
}

impl ModelOffer {
    /// What a job that used `input` and `output` tokens costs; saturates.
    pub fn price_for(&self, input_tokens: u32, output_tokens: u32) -> MilliSats {
        let tokens = |n: u32, p: MilliSats| u64::from(n).saturating_mul(p.0);
        MilliSats(
            self.price_msat
                .0
                .saturating_add(tokens(input_tokens, self.token_price.input_msat))
                .saturating_add(tokens(output_tokens, self.token_price.output_msat)),
        )
    }

    /// The most output tokens a job may produce without costing more than
    /// `budget`, given its input; `None` when even no output is too dear.
    pub fn output_tokens_within(&self, budget: MilliSats, input_tokens: u32) -> Option<u32> {
        let fixed = self.price_for(input_tokens, 0);
        let left = budget.0.checked_sub(fixed.0)?;
        Some(match self.token_price.output_msat.0 {
            0 => u32::MAX,
            p => u32::try_from(left / p).unwrap_or(u32::MAX),
        })
    }

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

    /// The offer's prices for people: see [`describe`].
    pub fn price_label(&self) -> String {
        describe(self.price_msat, self.token_price)
    }
}

/// A price per job and per token for people: `1 sat/job`,
/// `0.5 sat/job + 1 sat/1k input tokens + 3 sat/1k output tokens`, or
/// `free`. Token prices are shown per thousand tokens, the way people
/// compare language models; a model priced only by the token never shows
/// as costing nothing.
pub fn describe(per_job: MilliSats, tokens: TokenPrice) -> String {
    let per_1k = |p: MilliSats| MilliSats(p.0.saturating_mul(1000));
    let mut parts = Vec::new();
    if per_job.0 > 0 {
        parts.push(format!("{per_job}/job"));
    }
    if tokens.input_msat.0 > 0 {
        parts.push(format!("{}/1k input tokens", per_1k(tokens.input_msat)));
    }
    if tokens.output_msat.0 > 0 {
        parts.push(format!("{}/1k output tokens", per_1k(tokens.output_msat)));
    }
    if parts.is_empty() {
        "free".to_owned()
    } else {
        parts.join(" + ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Task;
    use crate::Sha256Digest;

    fn offer(price: u64, input: u64, output: u64) -> ModelOffer {
        ModelOffer {
            name: "m".into(),
            task: Task::TextGeneration,
            hash: Sha256Digest::of(b"m"),
            price_msat: MilliSats(price),
            token_price: TokenPrice {
                input_msat: MilliSats(input),
                output_msat: MilliSats(output),
            },
            device: "cpu".into(),
            description: None,
            embedding_dim: None,
            context_tokens: Some(256),
        }
    }

    #[test]
    fn a_job_costs_its_base_price_plus_its_metered_tokens() {
        let mut offer = offer(100, 1, 3);
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
    fn the_worst_case_covers_the_whole_context_at_most() {
        let offer = offer(100, 1, 3);
        let input = JobInput::TextGeneration {
            prompt: Prompt::Text("x".repeat(1000)),
            params: crate::jobs::GenerationParams {
                max_tokens: 1000,
                ..Default::default()
            },
        };
        // Input and output are each capped by the 256-token context.
        assert_eq!(
            offer.worst_case_price(&input),
            MilliSats(100 + 256 + 3 * 256)
        );
    }

    #[test]
    fn prices_read_per_job_and_per_thousand_tokens() {
        assert_eq!(offer(0, 0, 0).price_label(), "free");
        assert_eq!(offer(1000, 0, 0).price_label(), "1 sat/job");
        assert_eq!(
            offer(0, 1, 3).price_label(),
            "1 sat/1k input tokens + 3 sat/1k output tokens",
            "a model priced per token does not read as 0 sat"
        );
        assert_eq!(
            offer(500, 0, 2).price_label(),
            "0.500 sat/job + 2 sat/1k output tokens"
        );
    }
}

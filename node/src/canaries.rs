//! `--make-canaries <file>`: known answers for the models in the models
//! directory, computed here by the engine that serves them, for a server
//! to send as canary jobs (`wire::verify`). Run it on a machine you trust
//! with the same model files (the sets are keyed by each file's hash).
//!
//! The inputs look like what people send: sentences made from a word
//! list, prompts, tensors of the model's shapes, different for each set
//! (they come from a seed), so that a node cannot learn them.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wire::jobs::{GenerationParams, JobInput, NamedTensor, Prompt, TensorData};
use wire::registry::{ModelOffer, Task};
use wire::verify::{Canary, CanarySet};
use wire::{MilliSats, UnixMillis};

use crate::engine::manifest::TensorSpec;
use crate::engine::Engine;
use crate::{Config, NodeError};

/// Canaries made per model.
pub const DEFAULT_COUNT: usize = 24;

const SUBJECTS: &[&str] = &[
    "the river",
    "my neighbour",
    "a small bakery",
    "the new library",
    "our team",
    "the old bridge",
    "a quiet village",
    "the train",
    "this recipe",
    "the museum",
    "a young doctor",
    "the mountain road",
    "the city council",
    "a local farmer",
];
const VERBS: &[&str] = &[
    "opened",
    "crossed",
    "explained",
    "painted",
    "repaired",
    "visited",
    "described",
    "measured",
    "celebrated",
    "questioned",
    "followed",
    "planted",
];
const OBJECTS: &[&str] = &[
    "a long letter",
    "the winter market",
    "three new routes",
    "the broken clock",
    "an unusual garden",
    "the annual report",
    "a history of the valley",
    "fresh bread",
    "the evening news",
    "a map of the coast",
    "the last chapter",
    "two red boats",
];
const ENDINGS: &[&str] = &[
    "before the storm.",
    "after lunch.",
    "with great care.",
    "for the first time.",
    "without telling anyone.",
    "in the morning light.",
    "as everyone expected.",
    "despite the rain.",
];

/// A small deterministic generator (SplitMix64): the same seed makes the
/// same inputs, another seed others.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }

    /// A value in [-2, 2), in steps of 1/64 (exact in f32).
    fn value(&mut self) -> f32 {
        (self.next() % 256) as f32 / 64.0 - 2.0
    }

    fn sentence(&mut self) -> String {
        format!(
            "{} {} {} {}",
            capitalise(self.pick(SUBJECTS)),
            self.pick(VERBS),
            self.pick(OBJECTS),
            self.pick(ENDINGS)
        )
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The `i`th input for a model, or none for a task with nothing to ask.
fn input_for(offer: &ModelOffer, tensor: Option<&TensorSpec>, draw: &mut Draw) -> Option<JobInput> {
    Some(match offer.task {
        Task::Embedding => {
            let n = 1 + (draw.next() % 3) as usize;
            JobInput::Embedding {
                texts: (0..n).map(|_| draw.sentence()).collect(),
            }
        }
        Task::TextGeneration => JobInput::TextGeneration {
            prompt: Prompt::Text(draw.sentence()),
            params: GenerationParams {
                max_tokens: 8 + (draw.next() % 9) as u32,
                temperature: 0.0,
                ..GenerationParams::default()
            },
        },
        Task::Tensor => {
            let spec = tensor?;
            let rows = 1 + draw.next() % 4;
            let inputs = spec
                .inputs
                .iter()
                .map(|t| {
                    // -1 is any size: a few rows.
                    let shape: Vec<u64> = t
                        .shape
                        .iter()
                        .map(|d| u64::try_from(*d).unwrap_or(rows))
                        .collect();
                    let n = shape.iter().product::<u64>() as usize;
                    let data = if t.dtype == "i64" {
                        TensorData::I64((0..n).map(|_| (draw.next() % 100) as i64).collect())
                    } else {
                        TensorData::F32((0..n).map(|_| draw.value()).collect())
                    };
                    NamedTensor {
                        name: t.name.clone(),
                        shape,
                        data,
                    }
                })
                .collect();
            JobInput::Tensor { inputs }
        }
    })
}

/// Computes `count` canaries for each model in `config.models_dir` and
/// writes them to `out` as a JSON list of [`CanarySet`]s. Returns how many
/// sets.
pub async fn make(
    config: &Config,
    out: &Path,
    count: usize,
    seed: u64,
) -> Result<usize, NodeError> {
    let hardware = crate::hardware::detect();
    let engine_config = config.engine(&hardware);
    let models_dir = config.models_dir.clone();
    let engine = tokio::task::spawn_blocking(move || Engine::load(&models_dir, engine_config))
        .await
        .map_err(|_| NodeError::LoaderPanicked)??;
    let engine = Arc::new(engine);
    let offers = engine.offers();
    if offers.is_empty() {
        return Err(NodeError::NoModels(config.models_dir.display().to_string()));
    }
    let mut draw = Draw(seed);
    let mut sets = Vec::new();
    for offer in offers {
        let model = engine.get(&offer.hash).await?;
        let tensor = engine.tensor_spec(&offer.hash);
        let mut cases = Vec::with_capacity(count);
        for _ in 0..count {
            let Some(input) = input_for(&offer, tensor.as_ref(), &mut draw) else {
                break;
            };
            let deadline = Instant::now() + Duration::from_secs(600);
            let finished = model
                .run(input.clone(), MilliSats(u64::MAX / 4), deadline, None)
                .await?;
            cases.push(Canary {
                input,
                output: finished.output,
            });
        }
        if cases.is_empty() {
            continue;
        }
        tracing::info!(model = %offer.name, hash = %offer.hash, cases = cases.len(), "canaries made");
        sets.push(CanarySet {
            model_hash: offer.hash,
            model: offer.name.clone(),
            task: offer.task,
            device: offer.device.clone(),
            made_at: UnixMillis::now(),
            cases,
        });
    }
    let json = serde_json::to_vec(&sets)
        .map_err(|e| NodeError::Settings(format!("writing canaries: {e}")))?;
    std::fs::write(out, json)
        .map_err(|e| NodeError::Settings(format!("writing {}: {e}", out.display())))?;
    Ok(sets.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_inputs_and_another_seed_others() {
        let offer = testkit::fixtures::offer("minilm", Task::Embedding, 10);
        let make = |seed| {
            let mut d = Draw(seed);
            (0..5)
                .map(|_| input_for(&offer, None, &mut d).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(make(1), make(1));
        assert_ne!(make(1), make(2));
        for input in make(3) {
            input.validate().unwrap();
            let JobInput::Embedding { texts } = input else {
                panic!("an embedding model gets texts")
            };
            assert!(texts.iter().all(|t| t.ends_with('.') && t.len() > 20));
        }
    }
}

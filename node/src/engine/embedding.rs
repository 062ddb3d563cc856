//! Text embeddings: tokenise in Rust, run the TorchScript module, return
//! one vector per text.

//!
//! The worker batches across jobs: every job queued when a batch starts (up
//! to `max_batch` texts) runs in one forward pass, padded to its longest
//! text; the attention mask keeps padding from changing any vector.

use std::time::Instant;

use tch::{CModule, Device, Kind, Tensor};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use wire::jobs::{JobInput, JobOutput, Usage};
use wire::registry::ModelOffer;

use super::manifest::ModelFiles;
use super::queue::{gather, spawn_worker, Work};
use super::{elapsed_ms, EngineConfig, EngineError, Finished, LoadedModel};

struct Embedder {
    module: CModule,
    tokenizer: Tokenizer,
    device: Device,
    dim: u32,
}

impl Embedder {
    fn load(files: &ModelFiles, device: Device) -> Result<Self, EngineError> {
        // Tokenising a batch on rayon's threads would fight libtorch's
        // OpenMP threads for the same cores; a batch is tokenised in far
        // less time than it computes anyway.
        tokenizers::utils::parallelism::set_parallelism(false);
        let spec = files
            .manifest
            .embedding
            .clone()
            .ok_or(EngineError::WrongTask("embedding"))?;
        let tok_path = files
            .tokenizer
            .as_ref()
            .ok_or(EngineError::WrongTask("embedding"))?;
        let mut tokenizer = Tokenizer::from_file(tok_path).map_err(|e| EngineError::Load {
            path: tok_path.display().to_string(),
            reason: e.to_string(),
        })?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: spec.max_tokens,
                ..Default::default()
            }))
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        let mut module =
            CModule::load_on_device(&files.model, device).map_err(|e| EngineError::Load {
                path: files.model.display().to_string(),
                reason: e.to_string(),
            })?;
        module.set_eval();
        Ok(Embedder {
            module,
            tokenizer,
            device,
            dim: spec.dim,
        })
    }

    /// One vector per text, and each text's token count.
    fn embed(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, Vec<u32>), EngineError> {
        let _no_grad = tch::no_grad_guard();
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        let batch = encodings.len();
        let len = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(batch * len);
        let mut mask = Vec::with_capacity(batch * len);
        let mut types = Vec::with_capacity(batch * len);
        for e in &encodings {
            ids.extend(e.get_ids().iter().map(|&x| i64::from(x)));
            mask.extend(e.get_attention_mask().iter().map(|&x| i64::from(x)));
            types.extend(e.get_type_ids().iter().map(|&x| i64::from(x)));
        }
        let shape = [batch as i64, len as i64];
        let tensor = |v: &[i64]| -> Result<Tensor, tch::TchError> {
            Tensor::f_from_slice(v)?
                .f_view(shape)?
                .f_to_device(self.device)
        };
        let inputs = [tensor(&ids)?, tensor(&mask)?, tensor(&types)?];
        let out = self
            .module
            .forward_ts(&inputs)?
            .f_to_kind(Kind::Float)?
            .f_to_device(Device::Cpu)?;
        let size = out.size();
        if size != [batch as i64, i64::from(self.dim)] {
            return Err(EngineError::BadOutput(format!(
                "shape {size:?}, expected [{batch}, {}]",
                self.dim
            )));
        }
        let flat = Vec::<f32>::try_from(&out.f_contiguous()?.f_view([-1])?)?;
        let tokens = encodings
            .iter()
            .map(|e| e.get_attention_mask().iter().sum::<u32>())
            .collect();
        Ok((
            flat.chunks(self.dim as usize)
                .map(<[f32]>::to_vec)
                .collect(),
            tokens,
        ))
    }

    /// Runs a batch of jobs in one forward pass and answers each.
    fn run_batch(&self, batch: Vec<Work>, offer: &ModelOffer) {
        let started = Instant::now();
        let batch: Vec<Work> = batch
            .into_iter()
            .filter_map(|w| w.keep(started))
            .filter_map(|w| match w.input {
                JobInput::Embedding { .. } => Some(w),
                JobInput::TextGeneration { .. } | JobInput::Tensor { .. } => {
                    w.fail(EngineError::WrongTask("non-embedding"));
                    None
                }
            })
            .collect();
        if batch.is_empty() {
            return;
        }
        let texts: Vec<&str> = batch
            .iter()
            .flat_map(|w| match &w.input {
                JobInput::Embedding { texts } => texts.iter().map(String::as_str).collect(),
                JobInput::TextGeneration { .. } | JobInput::Tensor { .. } => Vec::new(),
            })
            .collect();
        let (mut vectors, tokens) = match self.embed(&texts) {
            Ok(done) => done,
            Err(e) => {
                let message = e.to_string();
                for w in batch {
                    w.fail(EngineError::BadOutput(message.clone()));
                }
                return;
            }
        };
        let device_ms = started.elapsed().as_secs_f64() * 1000.0;
        let all_tokens = f64::from(tokens.iter().sum::<u32>().max(1));
        let mut tokens = tokens.into_iter();
        let mut rest = vectors.drain(..);
        for w in batch {
            let n = match &w.input {
                JobInput::Embedding { texts } => texts.len(),
                JobInput::TextGeneration { .. } | JobInput::Tensor { .. } => 0,
            };
            let mine: Vec<Vec<f32>> = rest.by_ref().take(n).collect();
            let input_tokens: u32 = tokens.by_ref().take(n).sum();
            let usage = Usage {
                input_tokens,
                output_tokens: 0,
                device_ms: (device_ms * f64::from(input_tokens) / all_tokens).round() as u64,
            };
            if offer.price_for(input_tokens, 0) > w.budget {
                let (price, budget) = (offer.price_for(input_tokens, 0), w.budget);
                w.fail(EngineError::OverBudget(format!(
                    "{input_tokens} tokens cost {price}, above the job's {budget}"
                )));
                continue;
            }
            let finished = Finished {
                output: JobOutput::Embedding {
                    dim: self.dim,
                    vectors: mine,
                },
                usage,
                queue_ms: u64::try_from(started.duration_since(w.enqueued).as_millis())
                    .unwrap_or(u64::MAX),
                compute_ms: elapsed_ms(started),
                tokens: Vec::new(),
                overtook: 0,
            };
            let _ = w.reply.send(Ok(finished));
        }
    }
}

/// Loads the model on its own thread and returns once it is ready.
pub(super) fn start(
    files: &ModelFiles,
    offer: ModelOffer,
    device: Device,
    config: &EngineConfig,
) -> Result<LoadedModel, EngineError> {
    let files = files.clone();
    let (max_batch, wait) = (config.max_batch.max(1), config.batch_wait);
    spawn_worker(
        format!("embed-{}", files.manifest.name),
        config.queue_depth,
        move || {
            let embedder = Embedder::load(&files, device)?;
            Ok(((embedder, offer.clone()), offer))
        },
        move |(embedder, offer): (Embedder, ModelOffer), rx| {
            let mut held = None;
            let texts = |w: &Work| match &w.input {
                JobInput::Embedding { texts } => texts.len(),
                JobInput::TextGeneration { .. } | JobInput::Tensor { .. } => 1,
            };
            while let Some(batch) = gather(&rx, &mut held, max_batch, wait, texts) {
                embedder.run_batch(batch, &offer);
            }
        },
    )
}

//! Text embeddings: tokenise in Rust, run the TorchScript module, return
//! one vector per text.

use std::time::Instant;

use tch::{CModule, Device, Kind, Tensor};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use tokio::sync::mpsc;
use wire::jobs::{JobInput, JobOutput};
use wire::registry::ModelOffer;
use wire::ModelHash;

use super::manifest::ModelFiles;
use super::{device_name, elapsed_ms, EngineError, LoadedModel, Timing, Work};

struct Embedder {
    module: CModule,
    tokenizer: Tokenizer,
    device: Device,
    dim: u32,
}

impl Embedder {
    fn load(files: &ModelFiles, device: Device) -> Result<Self, EngineError> {
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

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EngineError> {
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
        Ok(flat
            .chunks(self.dim as usize)
            .map(<[f32]>::to_vec)
            .collect())
    }
}

/// Loads the model on its own thread and returns once it is ready.
pub(super) fn start(
    files: &ModelFiles,
    hash: ModelHash,
    device: Device,
    queue_depth: usize,
) -> Result<LoadedModel, EngineError> {
    let (queue, mut rx) = mpsc::channel::<Work>(queue_depth.max(1));
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let thread_files = files.clone();
    let name = format!("embed-{}", files.manifest.name);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let embedder = match Embedder::load(&thread_files, device) {
                Ok(e) => {
                    let _ = ready_tx.send(Ok(e.dim));
                    e
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while let Some(work) = rx.blocking_recv() {
                let queue_ms = elapsed_ms(work.enqueued);
                let started = Instant::now();
                let result = match &work.input {
                    JobInput::Embedding { texts } => embedder.embed(texts).map(|vectors| {
                        let output = JobOutput::Embedding {
                            dim: embedder.dim,
                            vectors,
                        };
                        let timing = Timing {
                            queue_ms,
                            compute_ms: elapsed_ms(started),
                        };
                        (output, timing)
                    }),
                };
                let _ = work.reply.send(result);
            }
        })
        .map_err(|e| EngineError::Load {
            path: files.model.display().to_string(),
            reason: format!("could not start worker thread: {e}"),
        })?;
    let dim = ready_rx.recv().map_err(|_| EngineError::WorkerGone)??;
    Ok(LoadedModel {
        offer: ModelOffer {
            name: files.manifest.name.clone(),
            task: files.manifest.task,
            hash,
            price_msat: files.manifest.price_msat,
            device: device_name(device),
            description: files.manifest.description.clone(),
            embedding_dim: Some(dim),
        },
        queue,
    })
}

//! Text generation with a KV cache and continuous batching.
//!
//! The model is a TorchScript decoder with the interface documented in
//! `scripts/export_gpt2.py`: `forward(ids, start, last, k_cache, v_cache)`
//! writes the new tokens' keys and values into the caches in place and
//! returns the logits of one token per row; `empty_cache(batch)` and
//! `max_context()` describe the cache.
//!
//! The worker keeps one cache with a slot per sequence it may decode at
//! once (`max_batch`). Active sequences occupy slots `0..n`. Between decode
//! steps it admits queued jobs: their prompts run together in one prefill
//! (right-padded; padding only writes slots a later step overwrites before
//! it is ever attended to), into the slots after the active ones. Each step
//! then decodes one token for every active sequence. A finished sequence
//! gives its slot to the last one, so the active slots stay contiguous and
//! every forward pass takes views of the cache, never copies of it.

use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use tch::{CModule, Device, IValue, Kind, Tensor};
use tokenizers::Tokenizer;
use wire::jobs::{FinishReason, GenerationParams, JobInput, JobOutput, Prompt, Usage};
use wire::registry::ModelOffer;

use super::manifest::{ChatTemplate, ModelFiles};
use super::queue::{spawn_worker, QueueRx, Work};
use super::{elapsed_ms, EngineConfig, EngineError, Finished, LoadedModel};

mod sampling;
mod text;

use sampling::{sample, SplitMix64};
use text::TextStream;

struct Generator {
    module: CModule,
    tokenizer: Tokenizer,
    device: Device,
    eos: Option<u32>,
    template: Option<ChatTemplate>,
    context: usize,
    max_batch: usize,
    offer: ModelOffer,
    k_cache: Tensor,
    v_cache: Tensor,
}

/// One sequence being generated.
struct Seq {
    work: Work,
    /// Prompt then generated tokens. All but the last are in the cache.
    tokens: Vec<i64>,
    prompt_len: usize,
    max_new: usize,
    generated: Vec<u32>,
    text: TextStream,
    params: GenerationParams,
    rng: SplitMix64,
    device_ms: f64,
    admitted: Instant,
    finish: Option<FinishReason>,
    /// Why the model could not go on, if it could not.
    failed: Option<String>,
}

impl Generator {
    fn load(
        files: &ModelFiles,
        offer: ModelOffer,
        device: Device,
        max_batch: usize,
    ) -> Result<Self, EngineError> {
        let load_err = |path: &std::path::Path, reason: String| EngineError::Load {
            path: path.display().to_string(),
            reason,
        };
        let tok_path = files
            .tokenizer
            .as_ref()
            .ok_or(EngineError::WrongTask("text_generation"))?;
        let tokenizer =
            Tokenizer::from_file(tok_path).map_err(|e| load_err(tok_path, e.to_string()))?;
        let spec = files.manifest.generation.clone().unwrap_or_default();
        let eos = match &spec.eos_token {
            Some(t) => Some(tokenizer.token_to_id(t).ok_or_else(|| {
                load_err(
                    tok_path,
                    format!("eos_token {t:?} is not in the vocabulary"),
                )
            })?),
            None => None,
        };
        let mut module = CModule::load_on_device(&files.model, device)
            .map_err(|e| load_err(&files.model, e.to_string()))?;
        module.set_eval();
        let context = match module.method_is::<IValue>("max_context", &[]) {
            Ok(IValue::Int(n)) if n > 1 => usize::try_from(n).unwrap_or(0),
            Ok(other) => {
                return Err(load_err(
                    &files.model,
                    format!("max_context() returned {other:?}"),
                ))
            }
            Err(e) => {
                return Err(load_err(
                    &files.model,
                    format!("the module has no max_context(): {e}"),
                ))
            }
        };
        let slots = i64::try_from(max_batch).unwrap_or(1);
        let (k_cache, v_cache) = match module.method_is("empty_cache", &[IValue::Int(slots)]) {
            Ok(IValue::Tuple(mut kv)) if kv.len() == 2 => match (kv.pop(), kv.pop()) {
                (Some(IValue::Tensor(v)), Some(IValue::Tensor(k))) => (k, v),
                _ => return Err(load_err(&files.model, "empty_cache() is not (k, v)".into())),
            },
            Ok(other) => {
                return Err(load_err(
                    &files.model,
                    format!("empty_cache() returned {other:?}"),
                ))
            }
            Err(e) => {
                return Err(load_err(
                    &files.model,
                    format!("the module has no empty_cache(batch): {e}"),
                ))
            }
        };
        if k_cache.dim() != 5 || k_cache.size()[1] != slots {
            return Err(load_err(
                &files.model,
                format!("empty_cache({slots}) has shape {:?}", k_cache.size()),
            ));
        }
        let mut offer = offer;
        offer.context_tokens = u32::try_from(context).ok();
        Ok(Generator {
            module,
            tokenizer,
            device,
            eos,
            template: spec.chat_template,
            context,
            max_batch,
            offer,
            k_cache,
            v_cache,
        })
    }

    /// Serves jobs until the queue closes.
    fn serve(mut self, rx: QueueRx) {
        let mut active: Vec<Seq> = Vec::new();
        loop {
            let mut incoming = Vec::new();
            if active.is_empty() {
                match rx.recv() {
                    Some(w) => incoming.push(w),
                    None => return,
                }
            }
            while active.len() + incoming.len() < self.max_batch {
                match rx.try_recv() {
                    Some(w) => incoming.push(w),
                    None => break,
                }
            }
            let now = Instant::now();
            let new: Vec<Seq> = incoming
                .into_iter()
                .filter_map(|w| w.keep(now))
                .filter_map(|w| self.admit(w))
                .collect();
            if !new.is_empty() {
                self.prefill(&mut active, new);
            }
            self.retire(&mut active);
            if !active.is_empty() {
                self.decode(&mut active);
                self.retire(&mut active);
            }
        }
    }

    /// Tokenises a job's prompt and works out how far it may go.
    fn admit(&self, work: Work) -> Option<Seq> {
        match self.plan(&work) {
            Ok((tokens, max_new, params)) => {
                let seed = params.seed.unwrap_or_else(|| {
                    std::collections::hash_map::RandomState::new()
                        .build_hasher()
                        .finish()
                });
                Some(Seq {
                    prompt_len: tokens.len(),
                    tokens,
                    max_new,
                    generated: Vec::new(),
                    text: TextStream::default(),
                    rng: SplitMix64(seed),
                    params,
                    device_ms: 0.0,
                    admitted: Instant::now(),
                    finish: None,
                    failed: None,
                    work,
                })
            }
            Err(e) => {
                work.fail(e);
                None
            }
        }
    }

    /// A job's prompt tokens, how many tokens it may generate, and how.
    fn plan(&self, work: &Work) -> Result<(Vec<i64>, usize, GenerationParams), EngineError> {
        let (prompt, params) = match &work.input {
            JobInput::TextGeneration { prompt, params } => (prompt, params.clone()),
            JobInput::Embedding { .. } | JobInput::Tensor { .. } => {
                return Err(EngineError::WrongTask("non-generation"))
            }
        };
        let text = match (prompt, &self.template) {
            (Prompt::Text(t), _) => t.clone(),
            (Prompt::Chat(messages), Some(t)) => t.render(messages),
            (Prompt::Chat(_), None) => {
                return Err(EngineError::BadInput(
                    "this model has no chat template; send a prompt instead".into(),
                ))
            }
        };
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        let mut tokens: Vec<i64> = encoding.get_ids().iter().map(|&t| i64::from(t)).collect();
        if tokens.is_empty() {
            let eos = self
                .eos
                .ok_or_else(|| EngineError::BadInput("the prompt is empty".into()))?;
            tokens.push(i64::from(eos));
        }
        let prompt_len = tokens.len();
        if prompt_len >= self.context {
            return Err(EngineError::BadInput(format!(
                "the prompt has {prompt_len} tokens; {} takes at most {} with the answer",
                self.offer.name, self.context
            )));
        }
        let prompt_tokens = u32::try_from(prompt_len).unwrap_or(u32::MAX);
        let affordable = self
            .offer
            .output_tokens_within(work.budget, prompt_tokens)
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                EngineError::OverBudget(format!(
                    "the prompt's {prompt_len} tokens and one output token cost {}, above the job's {}",
                    self.offer.price_for(prompt_tokens, 1),
                    work.budget
                ))
            })?;
        let max_new = (params.max_tokens as usize)
            .min(affordable as usize)
            .min(self.context - prompt_len);
        Ok((tokens, max_new, params))
    }

    /// Runs the new sequences' prompts in slots after the active ones, and
    /// takes each one's first token.
    fn prefill(&mut self, active: &mut Vec<Seq>, new: Vec<Seq>) {
        let first = active.len();
        let m = new.len();
        let longest = new.iter().map(|s| s.tokens.len()).max().unwrap_or(1);
        let mut ids = vec![0i64; m * longest];
        for (row, s) in new.iter().enumerate() {
            ids[row * longest..row * longest + s.tokens.len()].copy_from_slice(&s.tokens);
        }
        let last: Vec<i64> = new.iter().map(|s| s.tokens.len() as i64 - 1).collect();
        let started = Instant::now();
        let result = self.forward(&ids, longest, &vec![0; m], &last, first, longest);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => {
                let message = e.to_string();
                for s in new {
                    s.work.fail(EngineError::BadOutput(message.clone()));
                }
                return;
            }
        };
        let total: usize = new.iter().map(|s| s.tokens.len()).sum();
        for (mut s, row) in new.into_iter().zip(rows) {
            s.device_ms += ms * s.tokens.len() as f64 / total.max(1) as f64;
            self.take(&mut s, &row);
            active.push(s);
        }
    }

    /// One token for every active sequence.
    fn decode(&mut self, active: &mut [Seq]) {
        let n = active.len();
        let ids: Vec<i64> = active
            .iter()
            .map(|s| *s.tokens.last().unwrap_or(&0))
            .collect();
        let start: Vec<i64> = active.iter().map(|s| s.tokens.len() as i64 - 1).collect();
        let slots = start.iter().copied().max().unwrap_or(0) as usize + 1;
        let started = Instant::now();
        let result = self.forward(&ids, 1, &start, &vec![0; n], 0, slots);
        let ms = started.elapsed().as_secs_f64() * 1000.0 / n as f64;
        match result {
            Ok(rows) => {
                for (s, row) in active.iter_mut().zip(rows) {
                    s.device_ms += ms;
                    self.take(s, &row);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "decode step failed");
                // Every sequence fails; `retire` answers them.
                for s in active.iter_mut() {
                    s.failed = Some(e.to_string());
                }
            }
        }
    }

    /// Runs the module over rows `first..first + rows` of the slot cache,
    /// whose first `slots` positions it may use; the logits of one token per
    /// row come back.
    fn forward(
        &mut self,
        ids: &[i64],
        width: usize,
        start: &[i64],
        last: &[i64],
        first: usize,
        slots: usize,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let _no_grad = tch::no_grad_guard();
        let rows = start.len() as i64;
        let width = width as i64;
        let on = |v: &[i64]| Tensor::f_from_slice(v).and_then(|t| t.f_to_device(self.device));
        let ids = on(ids)?.f_view([rows, width])?;
        let k = self
            .k_cache
            .f_narrow(1, first as i64, rows)?
            .f_narrow(3, 0, slots as i64)?;
        let v = self
            .v_cache
            .f_narrow(1, first as i64, rows)?
            .f_narrow(3, 0, slots as i64)?;
        let logits = self
            .module
            .forward_ts(&[ids, on(start)?, on(last)?, k, v])?
            .f_to_kind(Kind::Float)?
            .f_to_device(Device::Cpu)?
            .f_contiguous()?;
        let size = logits.size();
        if size.len() != 2 || size[0] != rows {
            return Err(EngineError::BadOutput(format!(
                "logits of shape {size:?} for {rows} rows"
            )));
        }
        let flat = Vec::<f32>::try_from(&logits.f_view([-1])?)?;
        Ok(flat.chunks(size[1] as usize).map(<[f32]>::to_vec).collect())
    }

    /// Samples a sequence's next token from its logits and decides whether
    /// it is finished.
    fn take(&self, s: &mut Seq, logits: &[f32]) {
        let token = sample(logits, &s.params, &mut s.rng);
        s.generated.push(token);
        s.tokens.push(i64::from(token));
        let finish = if Some(token) == self.eos {
            Some(FinishReason::Stop)
        } else {
            s.text.push(&self.tokenizer, &s.generated, false);
            if s.text.cut_at_stop(&s.params.stop) {
                Some(FinishReason::Stop)
            } else if s.generated.len() >= s.max_new || s.tokens.len() >= self.context {
                Some(FinishReason::Length)
            } else {
                None
            }
        };
        if finish.is_some() && Some(token) != self.eos {
            s.text.push(&self.tokenizer, &s.generated, true);
            s.text.cut_at_stop(&s.params.stop);
        }
        s.finish = finish;
        if let Some(tx) = &s.work.deltas {
            s.text.offer(tx, &s.params.stop, finish.is_some());
        }
    }

    /// Answers finished, cancelled and expired sequences, and frees their
    /// slots (the last active sequence moves into each freed slot).
    fn retire(&mut self, active: &mut Vec<Seq>) {
        let now = Instant::now();
        for i in (0..active.len()).rev() {
            // Asked to stop: it ends here, with what it has.
            if active[i].finish.is_none() && active[i].work.stop_requested() {
                let s = &mut active[i];
                s.finish = Some(FinishReason::Stopped);
                if let Some(tx) = &s.work.deltas {
                    s.text.offer(tx, &s.params.stop, true);
                }
            }
            let s = &active[i];
            let done = s.finish.is_some()
                || s.failed.is_some()
                || s.work.abandoned()
                || s.work.expired(now);
            if !done {
                continue;
            }
            let last = active.len() - 1;
            if i != last {
                for cache in [&self.k_cache, &self.v_cache] {
                    let moved = cache
                        .f_narrow(1, last as i64, 1)
                        .and_then(|src| cache.f_narrow(1, i as i64, 1)?.f_copy_(&src));
                    if let Err(e) = moved {
                        tracing::error!(error = %e, "could not move a cache slot");
                    }
                }
            }
            let s = active.swap_remove(i);
            s.answer(now);
        }
    }
}

impl Seq {
    fn answer(self, now: Instant) {
        let Seq {
            work,
            prompt_len,
            generated,
            text,
            device_ms,
            admitted,
            finish,
            failed,
            ..
        } = self;
        if work.abandoned() {
            return;
        }
        if let Some(message) = failed {
            work.fail(EngineError::BadOutput(message));
            return;
        }
        let Some(finish_reason) = finish else {
            work.fail(EngineError::DeadlineExceeded);
            return;
        };
        // Text held back for a full consumer: one more try. What still does
        // not fit arrives with the output, which holds the whole text.
        let mut text = text;
        if let Some(tx) = &work.deltas {
            text.offer(tx, &[], true);
        }
        let finished = Finished {
            output: JobOutput::TextGeneration {
                text: text.into_text(),
                finish_reason,
            },
            usage: Usage {
                input_tokens: u32::try_from(prompt_len).unwrap_or(u32::MAX),
                output_tokens: u32::try_from(generated.len()).unwrap_or(u32::MAX),
                device_ms: device_ms.round() as u64,
            },
            queue_ms: u64::try_from(admitted.duration_since(work.enqueued).as_millis())
                .unwrap_or(u64::MAX),
            compute_ms: u64::try_from(now.duration_since(admitted).as_millis())
                .unwrap_or(elapsed_ms(admitted)),
            tokens: generated,
            overtook: 0,
        };
        let _ = work.reply.send(Ok(finished));
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
    let max_batch = config.max_batch.max(1);
    spawn_worker(
        format!("generate-{}", files.manifest.name),
        config.queue_depth,
        move || {
            let generator = Generator::load(&files, offer, device, max_batch)?;
            // Loading learnt the context length.
            let offer = generator.offer.clone();
            Ok((generator, offer))
        },
        Generator::serve,
    )
}

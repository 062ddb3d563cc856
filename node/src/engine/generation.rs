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
use std::sync::mpsc::Receiver;
use std::time::Instant;

use tch::{CModule, Device, IValue, Kind, Tensor};
use tokenizers::Tokenizer;
use wire::jobs::{FinishReason, GenerationParams, JobInput, JobOutput, Prompt, Usage};
use wire::registry::ModelOffer;

use super::manifest::{ChatTemplate, ModelFiles};
use super::queue::{spawn_worker, Work};
use super::{elapsed_ms, EngineConfig, EngineError, Finished, LoadedModel};

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
    fn serve(mut self, rx: Receiver<Work>) {
        let mut active: Vec<Seq> = Vec::new();
        loop {
            let mut incoming = Vec::new();
            if active.is_empty() {
                match rx.recv() {
                    Ok(w) => incoming.push(w),
                    Err(_) => return,
                }
            }
            while active.len() + incoming.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(w) => incoming.push(w),
                    Err(_) => break,
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
        let delta = s.text.take_delta(&s.params.stop, finish.is_some());
        if let (Some(tx), false) = (&s.work.deltas, delta.is_empty()) {
            let _ = tx.send(delta);
        }
    }

    /// Answers finished, cancelled and expired sequences, and frees their
    /// slots (the last active sequence moves into each freed slot).
    fn retire(&mut self, active: &mut Vec<Seq>) {
        let now = Instant::now();
        for i in (0..active.len()).rev() {
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
        let finished = Finished {
            output: JobOutput::TextGeneration {
                text: text.text,
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
        };
        let _ = work.reply.send(Ok(finished));
    }
}

/// Turns generated tokens into text as they come, holding back bytes that
/// do not yet form whole characters and text that may begin a stop sequence.
#[derive(Default)]
struct TextStream {
    /// Tokens `prefix..read` are the last ones already turned into text;
    /// decoding them again gives the context the next piece needs (some
    /// tokenizers decode a token differently at the start of a text).
    prefix: usize,
    read: usize,
    text: String,
    /// Bytes of `text` already sent.
    emitted: usize,
}

impl TextStream {
    fn push(&mut self, tokenizer: &Tokenizer, ids: &[u32], flush: bool) {
        let decode = |ids: &[u32]| tokenizer.decode(ids, true).unwrap_or_default();
        let before = decode(&ids[self.prefix..self.read]);
        let now = decode(&ids[self.prefix..]);
        if now.len() <= before.len() || (!flush && now.ends_with('\u{FFFD}')) {
            return;
        }
        if let Some(new) = now.get(before.len()..) {
            self.text.push_str(new);
        }
        self.prefix = self.read;
        self.read = ids.len();
    }

    /// Cuts the text at the first stop sequence, if one has appeared.
    fn cut_at_stop(&mut self, stops: &[String]) -> bool {
        let from = floor_char_boundary(&self.text, self.emitted);
        let hit = stops
            .iter()
            .filter_map(|s| self.text[from..].find(s.as_str()))
            .min();
        match hit {
            Some(i) => {
                self.text.truncate(from + i);
                true
            }
            None => false,
        }
    }

    /// The text not yet sent, minus any tail that could begin a stop
    /// sequence (unless the generation is over).
    fn take_delta(&mut self, stops: &[String], finished: bool) -> String {
        let end = if finished {
            self.text.len()
        } else {
            let tail = &self.text[self.emitted.min(self.text.len())..];
            self.text.len() - held_back(tail, stops)
        };
        if end <= self.emitted {
            return String::new();
        }
        let delta = self.text[self.emitted..end].to_owned();
        self.emitted = end;
        delta
    }
}

/// Bytes at the end of `tail` that are the start of some stop sequence.
fn held_back(tail: &str, stops: &[String]) -> usize {
    stops
        .iter()
        .flat_map(|s| {
            s.char_indices()
                .skip(1)
                .map(|(i, _)| &s[..i])
                .filter(|prefix| tail.ends_with(prefix))
                .map(str::len)
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap_or(0)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Greedy at temperature 0; otherwise samples from the softmax at that
/// temperature, restricted to the top-p nucleus.
fn sample(logits: &[f32], params: &GenerationParams, rng: &mut SplitMix64) -> u32 {
    let finite = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
    if params.temperature <= 0.0 {
        let mut best = 0;
        for (i, &x) in logits.iter().enumerate() {
            if finite(x) > finite(logits[best]) {
                best = i;
            }
        }
        return best as u32;
    }
    let t = f64::from(params.temperature);
    let max = logits
        .iter()
        .map(|&x| finite(x))
        .fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &x)| (i as u32, (f64::from(finite(x) - max) / t).exp()))
        .collect();
    if params.top_p < 1.0 {
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = probs.iter().map(|p| p.1).sum();
        let mut kept = 0.0;
        let mut n = 0;
        for p in &probs {
            kept += p.1;
            n += 1;
            if kept >= f64::from(params.top_p) * total {
                break;
            }
        }
        probs.truncate(n.max(1));
    }
    let total: f64 = probs.iter().map(|p| p.1).sum();
    let mut r = rng.next_f64() * total;
    for (i, p) in &probs {
        r -= p;
        if r <= 0.0 {
            return *i;
        }
    }
    probs.last().map_or(0, |p| p.0)
}

/// A small deterministic random stream (SplitMix64), so that a seeded job
/// samples the same tokens on every node.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_may_start_a_stop_sequence_is_held_back() {
        let stops = vec!["\nUser:".to_owned(), "END".to_owned()];
        assert_eq!(held_back("hello\nUs", &stops), 3);
        assert_eq!(held_back("hello E", &stops), 1);
        assert_eq!(held_back("hello", &stops), 0);
        let mut t = TextStream {
            text: "answer\nUs".into(),
            ..Default::default()
        };
        assert_eq!(t.take_delta(&stops, false), "answer");
        t.text.push_str("er: next");
        assert!(t.cut_at_stop(&stops));
        assert_eq!(t.text, "answer");
        assert_eq!(t.take_delta(&stops, true), "");
    }

    #[test]
    fn greedy_takes_the_largest_logit_and_sampling_follows_the_seed() {
        let greedy = GenerationParams::default();
        let mut rng = SplitMix64(1);
        assert_eq!(sample(&[0.1, 3.0, f32::NAN, 2.0], &greedy, &mut rng), 1);
        let hot = GenerationParams {
            temperature: 1.0,
            top_p: 0.5,
            ..Default::default()
        };
        // With top-p 0.5 only the dominant token survives.
        for _ in 0..20 {
            assert_eq!(sample(&[0.0, 5.0, 0.0], &hot, &mut rng), 1);
        }
        let warm = GenerationParams {
            temperature: 1.0,
            ..Default::default()
        };
        let draw = |seed| {
            let mut r = SplitMix64(seed);
            (0..32)
                .map(|_| sample(&[1.0, 1.0, 1.0, 1.0], &warm, &mut r))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert!(draw(7).iter().any(|&t| t != draw(7)[0]), "not one token");
    }

    mod with_model {
        use std::path::PathBuf;
        use std::sync::{Arc, OnceLock};
        use std::time::Duration;

        use tokio::sync::mpsc;
        use wire::jobs::{ChatMessage, Role};
        use wire::MilliSats;

        use super::super::super::{DeviceChoice, Engine, EngineConfig, LoadedModel};
        use super::*;

        fn model_dir() -> PathBuf {
            let dir = std::env::var_os("INFERNET_MODELS_DIR").expect(
                "INFERNET_MODELS_DIR is not set: run scripts/setup.sh, source scripts/env.sh",
            );
            PathBuf::from(dir).join("tiny-gpt2")
        }

        /// The tiny GPT-2 alone, in an engine of its own.
        fn model() -> Arc<LoadedModel> {
            static MODEL: OnceLock<Arc<LoadedModel>> = OnceLock::new();
            MODEL
                .get_or_init(|| {
                    let root = std::env::temp_dir()
                        .join(format!("infernet-gen-test-{}", std::process::id()));
                    let _ = std::fs::remove_dir_all(&root);
                    std::fs::create_dir_all(&root).unwrap();
                    std::os::unix::fs::symlink(model_dir(), root.join("tiny-gpt2")).unwrap();
                    let config = EngineConfig {
                        device: DeviceChoice::Cpu,
                        max_batch: 8,
                        ..Default::default()
                    };
                    let engine = Arc::new(Engine::load(&root, config).unwrap());
                    let hash = engine.offers()[0].hash;
                    // On a runtime of its own: each test has its own.
                    std::thread::spawn(move || {
                        let rt = tokio::runtime::Runtime::new().unwrap();
                        rt.block_on(engine.get(&hash)).unwrap()
                    })
                    .join()
                    .unwrap()
                })
                .clone()
        }

        fn input(prompt: &str, params: GenerationParams) -> JobInput {
            JobInput::TextGeneration {
                prompt: Prompt::Text(prompt.into()),
                params,
            }
        }

        fn greedy(max_tokens: u32) -> GenerationParams {
            GenerationParams {
                max_tokens,
                ..Default::default()
            }
        }

        async fn run(
            input: JobInput,
            budget: MilliSats,
        ) -> (Result<Finished, EngineError>, Vec<String>) {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let done = model()
                .run(
                    input,
                    budget,
                    Instant::now() + Duration::from_secs(60),
                    Some(tx),
                )
                .await;
            let mut deltas = Vec::new();
            while let Some(d) = rx.recv().await {
                deltas.push(d);
            }
            (done, deltas)
        }

        fn text(f: &Finished) -> (&str, FinishReason) {
            match &f.output {
                JobOutput::TextGeneration {
                    text,
                    finish_reason,
                } => (text, *finish_reason),
                other => panic!("{other:?}"),
            }
        }

        const RICH: MilliSats = MilliSats(u64::MAX);

        fn reference(prompts: &[&str], max_new: u32) -> Vec<Vec<u32>> {
            use std::io::Write;
            let python = std::env::var("INFERNET_PYTHON").unwrap_or_else(|_| "python3".into());
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/reference_generation.py"
            );
            let mut child = std::process::Command::new(&python)
                .arg(script)
                .arg(model_dir())
                .arg(max_new.to_string())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("could not run {python}: {e}"));
            child
                .stdin
                .take()
                .unwrap()
                .write_all(serde_json::to_string(prompts).unwrap().as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "reference_generation.py failed");
            serde_json::from_slice(&out.stdout).unwrap()
        }

        const PROMPTS: [&str; 5] = [
            "User: tell me a story about a lighthouse.\nAssistant:",
            "The market",
            "",
            "Ünïcödé and emoji 🚀 in a longer prompt about inference markets and nodes",
            "A",
        ];

        #[tokio::test]
        async fn greedy_tokens_match_transformers_one_by_one_and_batched() {
            let want = reference(&PROMPTS, 24);
            // One at a time.
            for (prompt, want) in PROMPTS.iter().zip(&want) {
                let (done, _) = run(input(prompt, greedy(24)), RICH).await;
                let done = done.unwrap();
                assert_eq!(&done.tokens, want, "prompt {prompt:?} alone");
            }
            // All at once, joining a long generation already running: they
            // are admitted between its decode steps and decode together.
            let long = tokio::spawn(run(input("Once upon a time", greedy(100)), RICH));
            let together: Vec<_> = PROMPTS
                .iter()
                .map(|p| tokio::spawn(run(input(p, greedy(24)), RICH)))
                .collect();
            for ((prompt, want), job) in PROMPTS.iter().zip(&want).zip(together) {
                let (done, _) = job.await.unwrap();
                assert_eq!(&done.unwrap().tokens, want, "prompt {prompt:?} batched");
            }
            let (long, _) = long.await.unwrap();
            let alone = run(input("Once upon a time", greedy(100)), RICH).await.0;
            assert_eq!(long.unwrap().tokens, alone.unwrap().tokens);
        }

        #[tokio::test]
        async fn text_streams_in_order_and_stops_at_max_tokens() {
            let (done, deltas) = run(input("The market", greedy(17)), RICH).await;
            let done = done.unwrap();
            let (text, reason) = text(&done);
            assert_eq!(reason, FinishReason::Length);
            assert_eq!(done.usage.output_tokens, 17);
            assert_eq!(done.tokens.len(), 17);
            assert!(deltas.len() > 1, "{deltas:?}");
            assert_eq!(deltas.concat(), text, "the stream is the text, in order");
            assert!(done.usage.input_tokens > 0);
        }

        #[tokio::test]
        async fn a_stop_sequence_ends_the_text_just_before_it() {
            let (free, _) = run(input("User: hello", greedy(40)), RICH).await;
            let free = free.unwrap();
            let (full, _) = text(&free);
            // A stop sequence taken from the middle of the free text.
            let chars: Vec<char> = full.chars().collect();
            assert!(chars.len() > 12, "{full:?}");
            let stop: String = chars[8..11].iter().collect();
            let before = &full[..full.find(&stop).unwrap()];
            let mut params = greedy(40);
            params.stop = vec!["never appears ~~~".into(), stop.clone()];
            let (cut, deltas) = run(input("User: hello", params), RICH).await;
            let cut = cut.unwrap();
            let (text, reason) = text(&cut);
            assert_eq!(reason, FinishReason::Stop);
            assert_eq!(text, before);
            assert_eq!(deltas.concat(), before, "no part of the stop was streamed");
        }

        #[tokio::test]
        async fn the_budget_caps_output_tokens_and_an_empty_budget_is_refused() {
            let model = model();
            let (done, _) = run(input("The market", greedy(50)), RICH).await;
            let input_tokens = done.unwrap().usage.input_tokens;
            let offer = &model.offer;
            // Enough for the prompt and exactly 5 output tokens.
            let budget = offer.price_for(input_tokens, 5);
            let (capped, _) = run(input("The market", greedy(50)), budget).await;
            let capped = capped.unwrap();
            assert_eq!(capped.usage.output_tokens, 5);
            assert_eq!(text(&capped).1, FinishReason::Length);
            let (refused, _) = run(
                input("The market", greedy(50)),
                offer.price_for(input_tokens, 0),
            )
            .await;
            assert!(
                matches!(refused, Err(EngineError::OverBudget(_))),
                "{refused:?}"
            );
        }

        #[tokio::test]
        async fn seeded_sampling_repeats_and_other_seeds_differ() {
            let sampled = |seed| GenerationParams {
                max_tokens: 30,
                temperature: 1.0,
                seed: Some(seed),
                ..Default::default()
            };
            let a = run(input("A", sampled(42)), RICH).await.0.unwrap().tokens;
            let b = run(input("A", sampled(42)), RICH).await.0.unwrap().tokens;
            let c = run(input("A", sampled(43)), RICH).await.0.unwrap().tokens;
            assert_eq!(a, b);
            assert_ne!(a, c);
        }

        #[tokio::test]
        async fn chats_use_the_template_and_long_prompts_are_refused() {
            let chat = JobInput::TextGeneration {
                prompt: Prompt::Chat(vec![ChatMessage {
                    role: Role::User,
                    content: "hello".into(),
                }]),
                params: greedy(8),
            };
            let (by_chat, _) = run(chat, RICH).await;
            let (by_text, _) = run(input("User: hello\nAssistant:", greedy(8)), RICH).await;
            assert_eq!(by_chat.unwrap().tokens, by_text.unwrap().tokens);
            let (long, _) = run(input(&"word ".repeat(400), greedy(8)), RICH).await;
            assert!(matches!(long, Err(EngineError::BadInput(_))), "{long:?}");
        }

        #[tokio::test]
        async fn a_cancelled_generation_stops_and_frees_its_slot() {
            let model = model();
            let (tx, mut rx) = mpsc::unbounded_channel();
            let job = {
                let model = model.clone();
                tokio::spawn(async move {
                    model
                        .run(
                            input("Once upon a time", greedy(120)),
                            RICH,
                            Instant::now() + Duration::from_secs(60),
                            Some(tx),
                        )
                        .await
                })
            };
            assert!(rx.recv().await.is_some(), "the generation started");
            job.abort();
            // The worker notices, drops the sequence and with it the sender.
            while rx.recv().await.is_some() {}
            let (after, _) = run(input("A", greedy(4)), RICH).await;
            assert_eq!(after.unwrap().usage.output_tokens, 4);
        }
    }
}

//! The inference engine: a content-addressed model store whose models are
//! loaded on demand with libtorch (each CUDA device when present, CPU
//! otherwise), unloaded least-recently-used under a memory budget per
//! device, and served by one worker thread each.
//!
//! `tch` tensors are not `Sync`, so each model lives on its own OS thread
//! and async code reaches it through a bounded queue. Workers batch: the
//! embedding worker runs every queued job in one forward pass, the
//! generation worker decodes all its sequences together and admits new ones
//! between steps (continuous batching).

pub mod cuda;
mod embedding;
mod generation;
pub mod manifest;
mod queue;
mod residency;
mod tensor;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use wire::jobs::{JobInput, JobOutput, Usage};
use wire::pricing::TokenPrice;
use wire::registry::{ModelOffer, Task};
use wire::{MilliSats, ModelHash, Sha256Digest};

use manifest::{ManifestError, ModelFiles};
use queue::Work;
use residency::{Residency, ResidencyError};

/// Jobs each model's queue holds before it refuses more.
pub const DEFAULT_QUEUE_DEPTH: usize = 64;
/// Most texts in one embedding batch, and most sequences a generation
/// model decodes at once (each holds a KV-cache slot, allocated at load).
pub const DEFAULT_MAX_BATCH: usize = 16;

/// Generated text a job may have waiting for its consumer before the
/// worker holds the rest back (and sends it joined up, once there is room).
pub const DELTA_BUFFER: usize = 32;

/// Where models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// Every CUDA device libtorch sees, models spread over them; the CPU
    /// when there is none.
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("device must be auto, cpu, cuda or cuda:N, got `{other}`")),
        }
    }
}

impl DeviceChoice {
    /// The devices models are spread over: every CUDA device for `Auto`
    /// when libtorch sees one, else the CPU.
    fn resolve(self) -> Result<Vec<tch::Device>, EngineError> {
        if self != DeviceChoice::Cpu {
            cuda::ensure_loaded();
        }
        let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
        match self {
            DeviceChoice::Cpu => Ok(vec![tch::Device::Cpu]),
            DeviceChoice::Auto if count > 0 => Ok((0..count).map(tch::Device::Cuda).collect()),
            DeviceChoice::Auto => Ok(vec![tch::Device::Cpu]),
            DeviceChoice::Cuda(n) => {
                if n < count {
                    Ok(vec![tch::Device::Cuda(n)])
                } else {
                    Err(EngineError::NoSuchDevice(format!(
                        "cuda:{n} requested but libtorch sees {count} CUDA device(s)"
                    )))
                }
            }
        }
    }
}

pub fn device_name(d: tch::Device) -> String {
    match d {
        tch::Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("could not hash {path}: {source}")]
    Hash {
        path: String,
        source: std::io::Error,
    },
    #[error("could not load {path}: {reason}")]
    Load { path: String, reason: String },
    /// A load on demand failed; the reason is the load's own error.
    #[error("{0}")]
    LoadFailed(String),
    #[error("{0}")]
    NoSuchDevice(String),
    #[error("this node has no model with hash {0}")]
    UnknownModel(ModelHash),
    #[error("{name} needs about {need_mb} MB but {device}'s budget is {budget_mb} MB")]
    TooLarge {
        name: String,
        device: String,
        need_mb: u64,
        budget_mb: u64,
    },
    #[error("the model's queue is full")]
    Overloaded,
    #[error("the model's worker has stopped")]
    WorkerGone,
    #[error("the deadline passed before the job finished")]
    DeadlineExceeded,
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    OverBudget(String),
    #[error("this model does not run {0} jobs")]
    WrongTask(&'static str),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("the prices file: {0}")]
    Prices(String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("the model returned {0}")]
    BadOutput(String),
}

/// What a finished job gives back: its output and what it used.
#[derive(Debug, Clone)]
pub struct Finished {
    pub output: JobOutput,
    pub usage: Usage,
    /// Time from queueing to the first batch the job ran in.
    pub queue_ms: u64,
    /// Time from its first batch to its end.
    pub compute_ms: u64,
    /// For generation: the generated token ids (what metering counted).
    pub tokens: Vec<u32>,
    /// Waiting jobs with lower bids that this one went ahead of.
    pub overtook: usize,
}

/// How the engine runs its models.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub device: DeviceChoice,
    /// Jobs each model's queue holds before refusing more.
    pub queue_depth: usize,
    /// Most texts per embedding batch; most sequences decoding together.
    pub max_batch: usize,
    /// How long a worker waits for more jobs before running a batch that is
    /// not full. Zero runs whatever is queued at once (jobs that arrive
    /// while a batch runs form the next one).
    pub batch_wait: Duration,
    /// Bytes each device may hold in loaded models; `None` is unbounded.
    pub memory_budget: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            device: DeviceChoice::Auto,
            queue_depth: DEFAULT_QUEUE_DEPTH,
            max_batch: DEFAULT_MAX_BATCH,
            batch_wait: Duration::ZERO,
            memory_budget: None,
        }
    }
}

/// A model loaded on a device, with its worker.
pub struct LoadedModel {
    pub offer: ModelOffer,
    queue: queue::QueueTx,
}

impl LoadedModel {
    /// Queues `input` and waits for the result. A full queue is refused at
    /// once rather than waited on. Dropping the future cancels the job: the
    /// worker skips it, or stops generating for it.
    ///
    /// `budget` is the most the job may cost; generation stops early rather
    /// than exceed it. Text deltas go to `deltas` as they are decoded; when
    /// it is full the worker holds them back, never waits (a slow consumer
    /// does not slow the batch), and the output carries the whole text.
    pub async fn run(
        &self,
        input: JobInput,
        budget: MilliSats,
        deadline: Instant,
        deltas: Option<mpsc::Sender<String>>,
    ) -> Result<Finished, EngineError> {
        self.run_bidding(input, budget, MilliSats(0), deadline, deltas, None)
            .await
    }

    /// [`LoadedModel::run`] for a job that offers `bid` on top of its price
    /// to be served before jobs that offer less: it waits in the queue
    /// ahead of them. Setting `stop` ends a generation early with what it
    /// has generated (finish reason `stopped`), metered as usual.
    pub async fn run_bidding(
        &self,
        input: JobInput,
        budget: MilliSats,
        bid: MilliSats,
        deadline: Instant,
        deltas: Option<mpsc::Sender<String>>,
        stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) -> Result<Finished, EngineError> {
        let (reply, rx) = oneshot::channel();
        let work = Work {
            input,
            budget,
            enqueued: Instant::now(),
            deadline,
            deltas,
            reply,
            bid,
            stop,
        };
        let queued = self.queue.push(work)?;
        let mut finished = rx.await.map_err(|_| EngineError::WorkerGone)??;
        finished.overtook = queued.overtook;
        Ok(finished)
    }

    /// Jobs waiting for this model now, and the highest bid among them.
    pub fn waiting(&self) -> (usize, Option<MilliSats>) {
        self.queue.waiting()
    }
}

/// A model in the store: on disk, maybe loaded.
struct Stored {
    files: ModelFiles,
    offer: ModelOffer,
    device: usize,
    /// What loading it is expected to take on its device.
    bytes: u64,
}

/// A model's prices as its operator set them, over its manifest's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pricing {
    pub price_msat: MilliSats,
    #[serde(default)]
    pub token_price: TokenPrice,
}

pub struct Engine {
    config: EngineConfig,
    devices: Vec<tch::Device>,
    /// Where the models are; scanned again by [`Engine::rescan`].
    dir: PathBuf,
    /// Only ever grows, so that a model's entry never moves.
    store: std::sync::RwLock<Vec<Arc<Stored>>>,
    /// Bytes placed on each device so far (where the next model goes).
    planned: std::sync::Mutex<Vec<u64>>,
    residency: Residency<LoadedModel>,
    /// Prices set by the operator, by model; kept in `prices_file`.
    prices: std::sync::RwLock<HashMap<ModelHash, Pricing>>,
    prices_file: Option<PathBuf>,
}

impl Engine {
    /// Reads the store under `dir` (blocking: hashes every model file), places
    /// each model on a device, and loads models until the budget is full.
    pub fn load(dir: &Path, config: EngineConfig) -> Result<Self, EngineError> {
        let devices = config.device.resolve()?;
        let engine = Engine {
            residency: Residency::new(config.memory_budget.unwrap_or(u64::MAX)),
            config,
            planned: std::sync::Mutex::new(vec![0; devices.len()]),
            devices,
            dir: dir.to_owned(),
            store: std::sync::RwLock::new(Vec::new()),
            prices: std::sync::RwLock::new(HashMap::new()),
            prices_file: None,
        };
        engine.rescan()?;
        engine.warm()?;
        Ok(engine)
    }

    fn budget(&self) -> u64 {
        self.config.memory_budget.unwrap_or(u64::MAX)
    }

    fn stored(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Stored>>> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    fn find(&self, hash: &ModelHash) -> Option<Arc<Stored>> {
        self.stored()
            .iter()
            .find(|s| &s.offer.hash == hash)
            .cloned()
    }

    /// Adds the models under the models directory that the store does not
    /// have yet (blocking: hashes their files), each placed on a device;
    /// answers their offers. A model fetched from the network, or copied
    /// in by hand, is offered from then on.
    pub fn rescan(&self) -> Result<Vec<ModelOffer>, EngineError> {
        let known: Vec<PathBuf> = self
            .stored()
            .iter()
            .map(|s| s.files.model.clone())
            .collect();
        let mut added = Vec::new();
        for files in ModelFiles::scan(&self.dir)? {
            if known.contains(&files.model) {
                continue;
            }
            let hash = hash_file(&files.model)?;
            if self.find(&hash).is_some() {
                continue;
            }
            let bytes = estimate_bytes(&files);
            let device = {
                let mut planned = self.planned.lock().unwrap_or_else(|e| e.into_inner());
                place(&mut planned, bytes)
            };
            let m = &files.manifest;
            let offer = ModelOffer {
                name: m.name.clone(),
                task: m.task,
                hash,
                price_msat: m.price_msat,
                token_price: m.token_price,
                device: device_name(self.devices[device]),
                description: m.description.clone(),
                embedding_dim: m.embedding.as_ref().map(|e| e.dim),
                context_tokens: None,
            };
            added.push(self.priced(offer.clone()));
            self.store
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .push(Arc::new(Stored {
                    files,
                    offer,
                    device,
                    bytes,
                }));
        }
        Ok(added)
    }

    /// Loads models that are not in memory, in store order, while they fit
    /// the budget (blocking); the rest load on first use.
    fn warm(&self) -> Result<(), EngineError> {
        let resident = self.residency.resident();
        let mut used = vec![0u64; self.devices.len()];
        let store: Vec<Arc<Stored>> = self.stored().clone();
        for (i, s) in store.iter().enumerate() {
            if used[s.device].saturating_add(s.bytes) > self.budget() {
                continue;
            }
            used[s.device] += s.bytes;
            if resident.contains(&s.offer.hash) {
                continue;
            }
            let model = self.start(s)?;
            // Loading learns what the manifest cannot say (the context).
            let learned = Arc::new(Stored {
                files: s.files.clone(),
                offer: model.offer.clone(),
                device: s.device,
                bytes: s.bytes,
            });
            if let Some(slot) = self
                .store
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(i)
            {
                *slot = learned;
            }
            self.residency
                .insert_loaded(s.offer.hash, s.device, s.bytes, model);
        }
        Ok(())
    }

    /// Loads a model on its device (blocking).
    fn start(&self, s: &Stored) -> Result<LoadedModel, EngineError> {
        let device = self.devices[s.device];
        let model = match s.files.manifest.task {
            Task::Embedding => {
                embedding::start(&s.files, self.priced(s.offer.clone()), device, &self.config)?
            }
            Task::TextGeneration => {
                generation::start(&s.files, self.priced(s.offer.clone()), device, &self.config)?
            }
            Task::Tensor => {
                tensor::start(&s.files, self.priced(s.offer.clone()), device, &self.config)?
            }
        };
        tracing::info!(
            model = %model.offer.name,
            hash = %model.offer.hash,
            device = %model.offer.device,
            "model loaded"
        );
        Ok(model)
    }

    /// Frees a loaded model's memory (jobs running on it finish first); it
    /// stays offered and loads again on its next job. False if it was not
    /// loaded.
    pub fn unload(&self, hash: &ModelHash) -> Result<bool, EngineError> {
        if self.find(hash).is_none() {
            return Err(EngineError::UnknownModel(*hash));
        }
        Ok(!self.residency.forget(|h| h == hash).is_empty())
    }

    /// Restarts the engine (blocking): every model is unloaded (running
    /// jobs finish on the models they hold), new models in the models
    /// directory join the store, and models load again while they fit.
    /// Answers the models added.
    pub fn restart(&self) -> Result<Vec<ModelOffer>, EngineError> {
        let gone = self.residency.forget(|_| true);
        tracing::info!(unloaded = gone.len(), "restarting the engine");
        let added = self.rescan()?;
        self.warm()?;
        Ok(added)
    }

    /// What this node offers: every model in the store, loaded or not, at
    /// its current prices.
    pub fn offers(&self) -> Vec<ModelOffer> {
        self.stored()
            .iter()
            .map(|s| self.priced(s.offer.clone()))
            .collect()
    }

    /// One model's offer, at its current prices.
    pub fn offer(&self, hash: &ModelHash) -> Option<ModelOffer> {
        self.find(hash).map(|s| self.priced(s.offer.clone()))
    }

    fn priced(&self, mut offer: ModelOffer) -> ModelOffer {
        let prices = self.prices.read().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = prices.get(&offer.hash) {
            offer.price_msat = p.price_msat;
            offer.token_price = p.token_price;
        }
        offer
    }

    /// Keeps the operator's prices in `path` (JSON), reading those saved
    /// there before (for models still in the store).
    pub fn keep_prices_in(&mut self, path: PathBuf) -> Result<(), EngineError> {
        let saved: HashMap<ModelHash, Pricing> = crate::saved::load(&path)
            .map_err(EngineError::Prices)?
            .unwrap_or_default();
        let known: Vec<ModelHash> = self.stored().iter().map(|s| s.offer.hash).collect();
        self.prices
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(saved.into_iter().filter(|(h, _)| known.contains(h)));
        self.prices_file = Some(path);
        Ok(())
    }

    /// Sets the prices of some models, all or none: every hash must name a
    /// model in the store. New jobs pay them at once; a model loads with
    /// them next time (a generation running now stops within its budget
    /// as it was priced when it started).
    pub fn set_prices(&self, changes: &[(ModelHash, Pricing)]) -> Result<(), EngineError> {
        for (hash, _) in changes {
            if self.find(hash).is_none() {
                return Err(EngineError::UnknownModel(*hash));
            }
        }
        let snapshot = {
            let mut prices = self.prices.write().unwrap_or_else(|e| e.into_inner());
            prices.extend(changes.iter().copied());
            prices.clone()
        };
        if let Some(path) = &self.prices_file {
            crate::saved::save(path, Some(&snapshot)).map_err(EngineError::Prices)?;
        }
        Ok(())
    }

    /// The model with `hash`, loading it first if it is not resident, and
    /// unloading the least recently used models on its device to make room.
    /// (A model unloaded while it still runs jobs finishes them first.)
    /// While one model loads, jobs on the others go on.
    pub async fn get(self: &Arc<Self>, hash: &ModelHash) -> Result<Arc<LoadedModel>, EngineError> {
        let want = self.find(hash).ok_or(EngineError::UnknownModel(*hash))?;
        if want.bytes > self.budget() {
            return Err(EngineError::TooLarge {
                name: want.offer.name.clone(),
                device: want.offer.device.clone(),
                need_mb: want.bytes >> 20,
                budget_mb: self.budget() >> 20,
            });
        }
        let engine = self.clone();
        let (device, bytes) = (want.device, want.bytes);
        self.residency
            .get_or_load(*hash, device, bytes, move || async move {
                tokio::task::spawn_blocking(move || engine.start(&want))
                    .await
                    .map_err(|_| EngineError::WorkerGone)?
            })
            .await
            .map_err(|ResidencyError::LoadFailed(reason)| EngineError::LoadFailed(reason))
    }

    /// The models that can be handed to other nodes: each one's hash, its
    /// directory, its model file and its other files, when all are flat
    /// names in that directory.
    pub fn packages(&self) -> Vec<(ModelHash, std::path::PathBuf, String, Vec<String>)> {
        let flat = |p: &Path| p.components().count() == 1;
        self.stored()
            .iter()
            .filter_map(|s| {
                let m = &s.files.manifest;
                if !flat(&m.file) || m.tokenizer.as_deref().is_some_and(|t| !flat(t)) {
                    return None;
                }
                let dir = s.files.model.parent()?.to_owned();
                let mut others = vec!["manifest.json".to_owned()];
                if let Some(t) = &m.tokenizer {
                    others.push(t.to_str()?.to_owned());
                }
                Some((s.offer.hash, dir, m.file.to_str()?.to_owned(), others))
            })
            .collect()
    }

    /// A raw-tensor model's inputs and outputs, from its manifest.
    pub fn tensor_spec(&self, hash: &ModelHash) -> Option<manifest::TensorSpec> {
        self.stored()
            .iter()
            .find(|s| s.offer.hash == *hash)
            .and_then(|s| s.files.manifest.tensor.clone())
    }

    /// Hashes of the models loaded now, most recently used first.
    pub fn resident(&self) -> Vec<ModelHash> {
        self.residency.resident()
    }

    pub fn is_empty(&self) -> bool {
        self.stored().is_empty()
    }
}

/// Spreads models over devices: each goes to the device with the least
/// planned so far (ties to the lowest index), which `planned` then counts.
fn place(planned: &mut [u64], bytes: u64) -> usize {
    let device = (0..planned.len()).min_by_key(|&i| planned[i]).unwrap_or(0);
    if let Some(p) = planned.get_mut(device) {
        *p = p.saturating_add(bytes);
    }
    device
}

/// What loading a model is expected to take: its weights and libtorch's
/// working memory, about half as much again.
pub fn estimate_bytes(files: &ModelFiles) -> u64 {
    let size = std::fs::metadata(&files.model).map_or(0, |m| m.len());
    size.saturating_add(size / 2)
}

/// SHA-256 of a file ([`p2p::models::hash_file`]), with the path in the error.
pub fn hash_file(path: &Path) -> Result<Sha256Digest, EngineError> {
    p2p::models::hash_file(path).map_err(|source| EngineError::Hash {
        path: path.display().to_string(),
        source,
    })
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choice_parses_the_documented_forms() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:2".parse(), Ok(DeviceChoice::Cuda(2)));
        assert!("gpu".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn models_spread_over_every_device() {
        let mut planned = vec![0u64; 3];
        let placed: Vec<usize> = [500, 100, 100, 100, 300]
            .iter()
            .map(|&b| place(&mut planned, b))
            .collect();
        assert_eq!(placed, vec![0, 1, 2, 1, 2]);
        assert_eq!(planned, vec![500, 200, 400]);
        let mut one = vec![0u64];
        assert_eq!(place(&mut one, 7), 0);
    }

    #[test]
    fn file_hash_is_the_sha256_of_its_bytes() {
        let path = std::env::temp_dir().join(format!("infernet-hash-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            hash_file(&path).unwrap().to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

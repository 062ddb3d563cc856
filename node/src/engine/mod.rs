//! The inference engine: models loaded from the model directory with
//! libtorch (CUDA when present, CPU otherwise), one worker thread each.
//!
//! `tch` tensors are not `Sync`, so each model lives on its own OS thread
//! and async code reaches it through a bounded queue.

pub mod cuda;
mod embedding;
pub mod manifest;

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use wire::jobs::{JobInput, JobOutput};
use wire::registry::{ModelOffer, Task};
use wire::{ModelHash, Sha256Digest};

use manifest::{ManifestError, ModelFiles};

/// Where models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The first CUDA device if libtorch sees one, else the CPU.
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
    fn resolve(self) -> Result<tch::Device, EngineError> {
        if self != DeviceChoice::Cpu {
            cuda::ensure_loaded();
        }
        match self {
            DeviceChoice::Cpu => Ok(tch::Device::Cpu),
            DeviceChoice::Auto if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
            DeviceChoice::Auto => Ok(tch::Device::Cpu),
            DeviceChoice::Cuda(n) => {
                let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
                if n < count {
                    Ok(tch::Device::Cuda(n))
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
    #[error("{0}")]
    NoSuchDevice(String),
    #[error("the model's queue is full")]
    Overloaded,
    #[error("the model's worker has stopped")]
    WorkerGone,
    #[error("this model does not run {0} jobs")]
    WrongTask(&'static str),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("the model returned {0}")]
    BadOutput(String),
}

/// How long a job waited and how long it computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub queue_ms: u64,
    pub compute_ms: u64,
}

struct Work {
    input: JobInput,
    enqueued: Instant,
    reply: oneshot::Sender<Result<(JobOutput, Timing), EngineError>>,
}

/// A model loaded on a device, with its worker.
pub struct LoadedModel {
    pub offer: ModelOffer,
    queue: mpsc::Sender<Work>,
}

impl LoadedModel {
    /// Queues `input` and waits for the result. A full queue is refused at
    /// once rather than waited on.
    pub async fn run(&self, input: JobInput) -> Result<(JobOutput, Timing), EngineError> {
        let (reply, rx) = oneshot::channel();
        let work = Work {
            input,
            enqueued: Instant::now(),
            reply,
        };
        self.queue.try_send(work).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => EngineError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => EngineError::WorkerGone,
        })?;
        rx.await.map_err(|_| EngineError::WorkerGone)?
    }
}

pub struct Engine {
    models: Vec<LoadedModel>,
}

impl Engine {
    /// Loads every model under `dir` (blocking: hashes and loads files).
    pub fn load(dir: &Path, device: DeviceChoice, queue_depth: usize) -> Result<Self, EngineError> {
        let device = device.resolve()?;
        let mut models = Vec::new();
        for files in ModelFiles::scan(dir)? {
            let hash = hash_file(&files.model)?;
            let model = match files.manifest.task {
                Task::Embedding => embedding::start(&files, hash, device, queue_depth)?,
            };
            tracing::info!(
                model = %model.offer.name,
                hash = %model.offer.hash,
                device = %model.offer.device,
                "model loaded"
            );
            models.push(model);
        }
        Ok(Engine { models })
    }

    pub fn offers(&self) -> Vec<ModelOffer> {
        self.models.iter().map(|m| m.offer.clone()).collect()
    }

    pub fn model(&self, hash: &ModelHash) -> Option<&LoadedModel> {
        self.models.iter().find(|m| &m.offer.hash == hash)
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// SHA-256 of a file, read in chunks.
pub fn hash_file(path: &Path) -> Result<Sha256Digest, EngineError> {
    use sha2::{Digest, Sha256};
    let err = |source| EngineError::Hash {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Sha256Digest::from_bytes(hasher.finalize().into()))
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
    fn file_hash_is_the_sha256_of_its_bytes() {
        let path = std::env::temp_dir().join(format!("infernet-hash-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            hash_file(&path).unwrap().to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

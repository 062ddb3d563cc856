//! Model distribution for the node: hand out the models it has, and fetch a
//! model it lacks by hash from a peer that has it (found through the DHT),
//! with a progress bar on stderr. The transfer itself (chunked, resumable,
//! hash-checked) is `p2p::models`.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2p::models::{DirSource, FetchError, FetchProgress};
use wire::ModelHash;

use crate::engine::manifest::ModelFiles;
use crate::engine::Engine;

/// Tries per provider when a transfer is interrupted (each resumes).
const RESUMES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum DistributeError {
    #[error("no peer on the network has model {0}")]
    NoProvider(ModelHash),
    #[error("could not fetch model {model}: {last}")]
    Failed { model: ModelHash, last: String },
    #[error("the fetched model is not usable: {0}")]
    BadModel(String),
    #[error("{0}")]
    Io(String),
}

/// Offers every model in the engine's store whose files are flat names in
/// its directory (the model file, tokenizer and manifest).
pub fn source(engine: &Engine) -> DirSource {
    let mut source = DirSource::default();
    for (hash, dir, model_file, others) in engine.packages() {
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        if let Err(e) = source.add(hash, &dir, &model_file, &others) {
            tracing::warn!(model = %hash, error = %e, "model not offered for download");
        }
    }
    source
}

pub fn serve(network: &p2p::Client, engine: &Engine) -> Result<(), p2p::NetworkError> {
    network.serve_models(Arc::new(source(engine)))
}

/// Fetches `model` into `models_dir` unless a model with that hash is
/// already there; returns the model's directory.
pub async fn fetch(
    network: &p2p::Client,
    model: ModelHash,
    models_dir: &Path,
    max_rate: Option<u64>,
    mut progress: impl FnMut(&FetchProgress),
) -> Result<PathBuf, DistributeError> {
    let incoming = models_dir.join(".incoming").join(model.to_string());
    let mut providers: HashSet<p2p::PeerId> = HashSet::new();
    for _ in 0..10 {
        match network.find_providers(p2p::model_key(&model)).await {
            Ok(found) if !found.is_empty() => {
                providers = found;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    providers.remove(&network.local_peer_id());
    if providers.is_empty() {
        return Err(DistributeError::NoProvider(model));
    }
    let mut last = String::new();
    'providers: for peer in providers {
        for _ in 0..RESUMES {
            match network
                .fetch_model(peer, Vec::new(), model, &incoming, max_rate, |p| {
                    progress(&p)
                })
                .await
            {
                Ok(_) => break 'providers,
                Err(e @ FetchError::Interrupted { .. }) | Err(e @ FetchError::Network(_)) => {
                    tracing::info!(%peer, error = %e, "transfer interrupted; resuming");
                    last = e.to_string();
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "fetch failed; trying another peer");
                    last = e.to_string();
                    continue 'providers;
                }
            }
        }
    }
    let manifest = incoming.join("manifest.json");
    if !manifest.is_file() {
        return Err(DistributeError::Failed { model, last });
    }
    let files =
        ModelFiles::read(&manifest).map_err(|e| DistributeError::BadModel(e.to_string()))?;
    let got = crate::engine::hash_file(&files.model)
        .map_err(|e| DistributeError::BadModel(e.to_string()))?;
    if got != model {
        return Err(DistributeError::BadModel(format!(
            "the manifest names a model file that hashes to {got}, not {model}"
        )));
    }
    let mut target = models_dir.join(&files.manifest.name);
    if target.exists() {
        target = models_dir.join(format!(
            "{}-{}",
            files.manifest.name,
            &model.to_string()[..12]
        ));
    }
    std::fs::rename(&incoming, &target).map_err(|e| {
        DistributeError::Io(format!(
            "could not move {} to {}: {e}",
            incoming.display(),
            target.display()
        ))
    })?;
    Ok(target)
}

/// A progress bar on stderr: redrawn in place on a terminal, a line per
/// tenth otherwise.
pub struct ProgressBar {
    started: Instant,
    drawn: Instant,
    tenth: u64,
    tty: bool,
}

impl Default for ProgressBar {
    fn default() -> Self {
        use std::io::IsTerminal;
        ProgressBar {
            started: Instant::now(),
            drawn: Instant::now() - Duration::from_secs(1),
            tenth: 0,
            tty: std::io::stderr().is_terminal(),
        }
    }
}

impl ProgressBar {
    pub fn update(&mut self, p: &FetchProgress) {
        let mb = |b: u64| b as f64 / 1e6;
        let pct = (p.done * 100).checked_div(p.total).unwrap_or(100);
        let done = p.done == p.total;
        let rate = mb(p.done) / self.started.elapsed().as_secs_f64().max(1e-3);
        let width = 30usize;
        let filled = (pct as usize * width / 100).min(width);
        let line = format!(
            "[{}{}] {pct:>3}% {:.1}/{:.1} MB {rate:.1} MB/s {}",
            "#".repeat(filled),
            " ".repeat(width - filled),
            mb(p.done),
            mb(p.total),
            p.file
        );
        let mut err = std::io::stderr();
        if self.tty {
            if done || self.drawn.elapsed() >= Duration::from_millis(100) {
                let _ = write!(err, "\r{line}\x1b[K");
                if done {
                    let _ = writeln!(err);
                }
                let _ = err.flush();
                self.drawn = Instant::now();
            }
        } else if pct / 10 > self.tenth || (done && self.tenth < 10) {
            self.tenth = pct / 10;
            let _ = writeln!(err, "{line}");
        }
    }
}

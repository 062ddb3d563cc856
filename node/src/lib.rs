//! The Infernet provider node: detects its hardware, loads its models, joins
//! the network (through the server or any peer), advertises itself on the
//! network (signed ads, DHT provider records) and to a server over HTTP if
//! it has one, and serves jobs.

pub mod advertise;
pub mod announce;
pub mod config;
pub mod distribute;
pub mod engine;
pub mod hardware;
pub mod jobs;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
use wire::registry::{ModelOffer, Registration};
use wire::{NodeId, UnixMillis};

use crate::advertise::Advertiser;
use crate::announce::{AnnounceError, Announcer};
use crate::engine::{Engine, EngineError};
use crate::jobs::JobServer;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Identity(#[from] p2p::identity::IdentityError),
    #[error("loading models: {0}")]
    Engine(#[from] EngineError),
    #[error("no models in {0}: each model is a sub-directory with a manifest.json")]
    NoModels(String),
    #[error(transparent)]
    Announce(#[from] AnnounceError),
    #[error("network: {0}")]
    Network(#[from] p2p::NetworkError),
    #[error("the model loader crashed")]
    LoaderPanicked,
    #[error("fetching a model: {0}")]
    Fetch(#[from] distribute::DistributeError),
}

/// A node that has joined the network (and registered, if it has a server).
pub struct RunningNode {
    pub node_id: NodeId,
    pub models: Vec<ModelOffer>,
    pub p2p_addrs: Vec<p2p::Multiaddr>,
    pub network: p2p::Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningNode {
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Stops heartbeats and job serving.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// The peers to join through: `--bootstrap`, else the server's own peer.
async fn bootstrap_peers(config: &Config) -> Result<Vec<p2p::Multiaddr>, NodeError> {
    Ok(match (&config.server, config.bootstrap.is_empty()) {
        (Some(server), true) => {
            let info = announce::server_network(server, Duration::from_secs(30)).await?;
            info.multiaddrs
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect()
        }
        _ => config.bootstrap.clone(),
    })
}

/// Fetches the `--fetch` models that are not in the models directory yet.
async fn fetch_all(network: &p2p::Client, config: &Config) -> Result<(), NodeError> {
    let have: Vec<wire::ModelHash> = {
        let dir = config.models_dir.clone();
        tokio::task::spawn_blocking(move || {
            engine::manifest::ModelFiles::scan(&dir)
                .unwrap_or_default()
                .iter()
                .filter_map(|f| engine::hash_file(&f.model).ok())
                .collect()
        })
        .await
        .map_err(|_| NodeError::LoaderPanicked)?
    };
    for model in config.fetch.iter().filter(|m| !have.contains(m)) {
        tracing::info!(%model, "fetching model from the network");
        let mut bar = distribute::ProgressBar::default();
        let dir = distribute::fetch(network, *model, &config.models_dir, |p| bar.update(p)).await?;
        tracing::info!(%model, dir = %dir.display(), "model fetched and verified");
    }
    Ok(())
}

/// `--fetch-only`: joins the network as a client, fetches, and returns.
pub async fn fetch_only(config: Config) -> Result<(), NodeError> {
    let keypair = p2p::identity::load_or_create(&config.key_file)?;
    let mut p2p_config = p2p::Config::new(Vec::new(), format!("infernet-node/{}", wire::VERSION));
    p2p_config.bootstrap = bootstrap_peers(&config).await?;
    p2p_config.reachability = p2p::Reachability::Client;
    let (network, _inbound, event_loop) = p2p::start(keypair, p2p_config).await?;
    let task = tokio::spawn(event_loop.run());
    let result = fetch_all(&network, &config).await;
    drop(network);
    task.abort();
    result
}

pub async fn start(config: Config) -> Result<RunningNode, NodeError> {
    let keypair = p2p::identity::load_or_create(&config.key_file)?;
    let node_id = NodeId::from(keypair.public().to_peer_id());
    let hardware = hardware::detect();
    tracing::info!(%node_id, cores = hardware.cpu_cores, gpus = hardware.gpus.len(), "hardware detected");

    let bootstrap = bootstrap_peers(&config).await?;
    let mut p2p_config = p2p::Config::new(
        p2p::Config::listen_on(config.p2p_host, config.p2p_port),
        format!("infernet-node/{}", wire::VERSION),
    );
    p2p_config.bootstrap = bootstrap;
    p2p_config.serve_jobs = true;
    p2p_config.reachability = config.reachability;
    p2p_config.external_addrs = config.external_addrs.clone();
    p2p_config.relays = config.relays.clone();
    p2p_config.relay_server = config.relay_server;
    p2p_config.nat_probe_timeout = config.nat_probe_timeout;
    let (network, inbound, event_loop) = p2p::start(keypair.clone(), p2p_config).await?;
    let mut tasks = vec![tokio::spawn(event_loop.run())];
    let p2p_addrs = network.listen_addrs().await?;

    fetch_all(&network, &config).await?;
    let models_dir = config.models_dir.clone();
    let engine_config = config.engine(&hardware);
    let engine = tokio::task::spawn_blocking(move || Engine::load(&models_dir, engine_config))
        .await
        .map_err(|_| NodeError::LoaderPanicked)??;
    if engine.is_empty() {
        return Err(NodeError::NoModels(config.models_dir.display().to_string()));
    }
    let engine = Arc::new(engine);

    distribute::serve(&network, &engine)?;

    let active = Arc::new(AtomicU32::new(0));
    let job_server = Arc::new(JobServer {
        engine: engine.clone(),
        keypair: keypair.clone(),
        node_id,
        active: active.clone(),
    });
    tasks.push(tokio::spawn(job_server.run(inbound)));

    let models = engine.offers();
    let advertiser = Advertiser {
        network: network.clone(),
        keypair: keypair.clone(),
        node_id,
        hardware: hardware.clone(),
        models: models.clone(),
        schedule: Vec::new(),
        interval: config.ad_interval,
        active: active.clone(),
        capacity: u32::try_from(models.len()).unwrap_or(u32::MAX),
        last_seq: 0,
    };
    if let Err(e) = advertiser.provide().await {
        tracing::warn!(error = %e, "could not put provider records in the DHT yet");
    }
    tasks.push(tokio::spawn(advertiser.run()));

    if let Some(server) = &config.server {
        let registration = Registration {
            node_id,
            timestamp: UnixMillis::now(),
            multiaddrs: p2p_addrs.iter().map(|a| a.to_string()).collect(),
            hardware,
            models: models.clone(),
            version: wire::VERSION.to_owned(),
            heartbeat_interval_ms: u64::try_from(config.heartbeat.as_millis()).unwrap_or(u64::MAX),
        };
        let announcer = Arc::new(Announcer::new(server.clone(), keypair, registration));
        let info = announcer.register().await?;
        tracing::info!(%node_id, models = info.models.len(), "registered");
        tasks.push(tokio::spawn(
            announcer.heartbeat_loop(config.heartbeat, active),
        ));
    } else {
        tracing::info!(%node_id, "no server: announcing on the network only");
    }

    Ok(RunningNode {
        node_id,
        models,
        p2p_addrs,
        network,
        tasks,
    })
}

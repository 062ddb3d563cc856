//! The Infernet provider node: detects its hardware, loads its models, joins
//! the network through the server, registers, heartbeats, and serves jobs.

pub mod announce;
pub mod config;
pub mod engine;
pub mod hardware;
pub mod jobs;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
use wire::registry::{NodeInfo, Registration};
use wire::{NodeId, UnixMillis};

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
}

/// A node that has joined the network and registered.
pub struct RunningNode {
    pub info: NodeInfo,
    pub p2p_addrs: Vec<p2p::Multiaddr>,
    _network: p2p::Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningNode {
    pub fn node_id(&self) -> NodeId {
        self.info.peer_id
    }

    /// Stops heartbeats and job serving.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

pub async fn start(config: Config) -> Result<RunningNode, NodeError> {
    let keypair = p2p::identity::load_or_create(&config.key_file)?;
    let node_id = NodeId::from(keypair.public().to_peer_id());
    let hardware = hardware::detect();
    tracing::info!(%node_id, cores = hardware.cpu_cores, gpus = hardware.gpus.len(), "hardware detected");

    let models_dir = config.models_dir.clone();
    let (device, depth) = (config.device, config.queue_depth);
    let engine = tokio::task::spawn_blocking(move || Engine::load(&models_dir, device, depth))
        .await
        .map_err(|_| NodeError::LoaderPanicked)??;
    if engine.is_empty() {
        return Err(NodeError::NoModels(config.models_dir.display().to_string()));
    }
    let engine = Arc::new(engine);

    let bootstrap = if config.bootstrap.is_empty() {
        let info = announce::server_network(&config.server, Duration::from_secs(30)).await?;
        info.multiaddrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    } else {
        config.bootstrap.clone()
    };
    let p2p_config = p2p::Config {
        listen: p2p::Config::listen_on(config.p2p_host, config.p2p_port),
        bootstrap,
        serve_jobs: true,
        request_timeout: Duration::from_secs(300),
        idle_timeout: Duration::from_secs(300),
        agent_version: format!("infernet-node/{}", wire::VERSION),
    };
    let (network, inbound, event_loop) = p2p::start(keypair.clone(), p2p_config).await?;
    let mut tasks = vec![tokio::spawn(event_loop.run())];
    let p2p_addrs = network.listen_addrs().await?;

    let active = Arc::new(AtomicU32::new(0));
    let job_server = Arc::new(JobServer {
        engine: engine.clone(),
        keypair: keypair.clone(),
        node_id,
        active: active.clone(),
    });
    tasks.push(tokio::spawn(job_server.run(inbound)));

    let registration = Registration {
        node_id,
        timestamp: UnixMillis::now(),
        multiaddrs: p2p_addrs.iter().map(|a| a.to_string()).collect(),
        hardware,
        models: engine.offers(),
        version: wire::VERSION.to_owned(),
        heartbeat_interval_ms: u64::try_from(config.heartbeat.as_millis()).unwrap_or(u64::MAX),
    };
    let announcer = Arc::new(Announcer::new(config.server.clone(), keypair, registration));
    let info = announcer.register().await?;
    tracing::info!(%node_id, models = info.models.len(), "registered");
    tasks.push(tokio::spawn(
        announcer.heartbeat_loop(config.heartbeat, active),
    ));

    Ok(RunningNode {
        info,
        p2p_addrs,
        _network: network,
        tasks,
    })
}

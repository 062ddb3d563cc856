//! The Infernet provider node: detects its hardware, loads its models, joins
//! the network (through the server or any peer), advertises itself on the
//! network (signed ads, DHT provider records) and to a server over HTTP if
//! it has one, and serves jobs.

pub mod admission;
pub mod advertise;
pub mod announce;
pub mod canaries;
pub mod config;
pub mod distribute;
pub mod engine;
pub mod enrol;
pub mod fleet;
pub mod hardware;
pub mod jobs;
pub mod metrics;
pub mod saved;
pub mod schedule;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
use wire::registry::{ModelOffer, Registration};
use wire::{NodeId, UnixMillis};

use tokio::sync::watch;

use crate::admission::Gate;
use crate::advertise::{Advertiser, Catalog};
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
    #[error(transparent)]
    Enrol(#[from] enrol::EnrolError),
    #[error("node settings: {0}")]
    Settings(String),
    #[error("could not serve metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// A node that has joined the network (and registered, if it has a server).
pub struct RunningNode {
    pub node_id: NodeId,
    /// What `hardware::detect` found (GPUs through NVML).
    pub hardware: wire::registry::Hardware,
    pub models: Vec<ModelOffer>,
    pub p2p_addrs: Vec<p2p::Multiaddr>,
    pub network: p2p::Client,
    /// Pauses, drains and resumes the node.
    pub admission: Gate,
    /// Its schedule.
    pub hours: schedule::Hours,
    /// The server and account this node is enrolled with, if any.
    pub pin: Option<enrol::Pin>,
    /// Where `/metrics` is served, with `--metrics-addr`.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// What the node advertises; kept so the advertiser keeps listening.
    _catalog: Arc<watch::Sender<Catalog>>,
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

/// Fetches the `--fetch` models that are not in the models directory yet,
/// reporting progress in the catalog (and so in the node's ads) if given.
async fn fetch_all(
    network: &p2p::Client,
    config: &Config,
    catalog: Option<&watch::Sender<Catalog>>,
) -> Result<(), NodeError> {
    if config.fetch.is_empty() {
        return Ok(());
    }
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
        fetch_model(
            network,
            *model,
            &config.models_dir,
            config.fetch_max_rate,
            catalog,
        )
        .await?;
    }
    Ok(())
}

/// Fetches one model into `models_dir` and verifies it, reporting progress
/// in the catalog (and so in the node's ads and telemetry) if given.
pub(crate) async fn fetch_model(
    network: &p2p::Client,
    model: wire::ModelHash,
    models_dir: &std::path::Path,
    max_rate: Option<u64>,
    catalog: Option<&watch::Sender<Catalog>>,
) -> Result<std::path::PathBuf, NodeError> {
    tracing::info!(%model, "fetching model from the network");
    let mut bar = distribute::ProgressBar::default();
    let mut reported = std::time::Instant::now() - Duration::from_secs(1);
    let report = |p: &p2p::models::FetchProgress| {
        bar.update(p);
        // At most twice a second into the ads, and the last state.
        let (Some(catalog), true) = (
            catalog,
            p.done == p.total || reported.elapsed() >= Duration::from_millis(500),
        ) else {
            return;
        };
        reported = std::time::Instant::now();
        catalog.send_modify(|c| {
            let entry = wire::registry::ModelFetch {
                model,
                done_bytes: p.done,
                total_bytes: p.total,
            };
            match c.fetching.iter_mut().find(|f| f.model == model) {
                Some(f) => *f = entry,
                None => c.fetching.push(entry),
            }
        });
    };
    let fetched = distribute::fetch(network, model, models_dir, max_rate, report).await;
    if let Some(catalog) = catalog {
        catalog.send_modify(|c| c.fetching.retain(|f| f.model != model));
    }
    let dir = fetched?;
    tracing::info!(%model, dir = %dir.display(), "model fetched and verified");
    Ok(dir)
}

/// `--fetch-only`: joins the network as a client, fetches, and returns.
pub async fn fetch_only(config: Config) -> Result<(), NodeError> {
    let keypair = p2p::identity::load_or_create(&config.key_file)?;
    let mut p2p_config = p2p::Config::new(Vec::new(), format!("infernet-node/{}", wire::VERSION));
    p2p_config.bootstrap = bootstrap_peers(&config).await?;
    p2p_config.reachability = p2p::Reachability::Client;
    let (network, _inbound, event_loop) = p2p::start(keypair, p2p_config).await?;
    let task = tokio::spawn(event_loop.run());
    let result = fetch_all(&network, &config, None).await;
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
    let nat = Arc::new(telemetry::NatWatch::start(&network));
    let p2p_addrs = network.listen_addrs().await?;
    let active = admission::ActiveJobs::default();
    let admission = Gate::default();
    // The operator's schedule and pools, kept next to the node key.
    let hours = schedule::Hours::keep_in(
        config.key_file.with_file_name("schedule.json"),
        config.schedule.clone(),
    )
    .map_err(NodeError::Settings)?;
    tasks.push(tokio::spawn(hours.clone().run()));
    let pools = saved::Setting::keep_in(
        config.key_file.with_file_name("pools.json"),
        config.pools.clone(),
    )
    .map_err(NodeError::Settings)?;

    // Advertise from the start, so that downloads show in the operator's
    // view; the models join the ads once loaded.
    let (catalog, catalog_rx) = watch::channel(Catalog::default());
    let catalog = Arc::new(catalog);
    let bids = jobs::Bids::default();
    let advertiser = Advertiser {
        network: network.clone(),
        keypair: keypair.clone(),
        node_id,
        hardware: hardware.clone(),
        catalog: catalog_rx.clone(),
        hours: hours.clone(),
        pools: pools.clone(),
        payout_address: config.payout_address.clone(),
        interval: config.ad_interval,
        active: active.clone(),
        admission: admission.clone(),
        bids: bids.clone(),
        last_seq: 0,
    };
    tasks.push(tokio::spawn(advertiser.run()));

    fetch_all(&network, &config, Some(&catalog)).await?;
    let models_dir = config.models_dir.clone();
    let engine_config = config.engine(&hardware);
    let mut engine = tokio::task::spawn_blocking(move || Engine::load(&models_dir, engine_config))
        .await
        .map_err(|_| NodeError::LoaderPanicked)??;
    // Prices the operator set (over the fleet link) outlive restarts.
    engine.keep_prices_in(config.key_file.with_file_name("prices.json"))?;
    if engine.is_empty() {
        return Err(NodeError::NoModels(config.models_dir.display().to_string()));
    }
    let engine = Arc::new(engine);

    distribute::serve(&network, &engine)?;

    let job_server = Arc::new(JobServer {
        engine: engine.clone(),
        keypair: keypair.clone(),
        node_id,
        active: active.clone(),
        admission: admission.clone(),
        hours: hours.clone(),
        bids: bids.clone(),
    });
    tasks.push(tokio::spawn(job_server.run(inbound)));

    let models = engine.offers();
    catalog.send_replace(Catalog {
        models: models.clone(),
        fetching: Vec::new(),
    });

    let state = telemetry::NodeState {
        network: network.clone(),
        admission: admission.clone(),
        active: active.clone(),
        engine: engine.clone(),
        catalog: catalog_rx.clone(),
        nat,
        interval: config.telemetry,
        hours: hours.clone(),
        pools,
        time_zone: schedule::local_time_zone(),
    };
    let mut metrics_addr = None;
    if let Some(addr) = config.metrics_addr {
        let (bound, task) = metrics::serve(addr, state.clone(), node_id.to_string())
            .await
            .map_err(|source| NodeError::Metrics { addr, source })?;
        tracing::info!(%bound, "Prometheus metrics at /metrics");
        metrics_addr = Some(bound);
        tasks.push(task);
    }

    let mut pin = None;
    if let Some(server) = &config.server {
        let registration = Registration {
            node_id,
            timestamp: UnixMillis::now(),
            multiaddrs: p2p_addrs.iter().map(|a| a.to_string()).collect(),
            hardware: hardware.clone(),
            models: models.clone(),
            version: wire::VERSION.to_owned(),
            heartbeat_interval_ms: u64::try_from(config.heartbeat.as_millis()).unwrap_or(u64::MAX),
            payout_address: config.payout_address.clone(),
        };
        let announcer = Arc::new(Announcer::new(
            server.clone(),
            keypair.clone(),
            registration,
        ));
        // Enrolled before it registers: a node whose enrolment is refused
        // stops before it does.
        pin = match &config.enroll {
            Some(token) => {
                let network = announce::server_network(server, Duration::from_secs(30)).await?;
                let pin = enrol::enrol(
                    &announcer,
                    &keypair,
                    node_id,
                    network.peer_id,
                    &token.0,
                    &config.key_file,
                )
                .await?;
                tracing::info!(account = %pin.account, server = %pin.server, "enrolled");
                Some(pin)
            }
            None => enrol::read_pin(&config.key_file),
        };
        let info = announcer.register().await?;
        tracing::info!(%node_id, models = info.models.len(), "registered");
        tasks.push(tokio::spawn(announcer.heartbeat_loop(
            config.heartbeat,
            active.clone(),
            admission.clone(),
        )));
        // An enrolled node keeps a fleet link to the server it pinned.
        if let Some(pin) = &pin {
            let agent = fleet::FleetAgent {
                state: state.clone(),
                server: pin.server.peer_id(),
                catalog: catalog.clone(),
                models_dir: config.models_dir.clone(),
                fetch_max_rate: config.fetch_max_rate,
            };
            tasks.push(tokio::spawn(agent.run()));
        }
    } else {
        tracing::info!(%node_id, "no server: announcing on the network only");
    }

    Ok(RunningNode {
        node_id,
        hardware,
        models,
        p2p_addrs,
        network,
        admission,
        hours,
        pin,
        metrics_addr,
        _catalog: catalog,
        tasks,
    })
}

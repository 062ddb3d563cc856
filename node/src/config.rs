//! The node's configuration: flags, then `INFERNET_*` environment
//! variables, then an optional TOML file, then defaults.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::engine::DeviceChoice;

#[derive(Debug, Parser, Default)]
#[command(
    name = "infernet-node",
    version,
    about = "Infernet provider node: sells inference on this machine's CPU or GPU"
)]
struct Cli {
    /// TOML file with any of the settings below (flag names, with `_` for `-`).
    #[arg(long, env = "INFERNET_NODE_CONFIG")]
    config: Option<PathBuf>,
    /// The Infernet server to register with over HTTP [default:
    /// http://127.0.0.1:8080 unless --bootstrap is given]. Without one the
    /// node only gossips its ads (servers pick them up from the network).
    #[arg(long, env = "INFERNET_SERVER")]
    server: Option<String>,
    /// libp2p peers to bootstrap from (`/ip4/…/tcp/…/p2p/<id>`); by default
    /// the server's own peer, read from its `/api/v1/network`.
    #[arg(long, env = "INFERNET_BOOTSTRAP", value_delimiter = ',')]
    bootstrap: Vec<String>,
    /// auto (AutoNAT decides), public (listen addresses are dialable),
    /// private (go through relays) [default: auto].
    #[arg(long, env = "INFERNET_REACHABILITY")]
    reachability: Option<String>,
    /// Addresses others can dial this node at that it cannot see itself
    /// (e.g. a forwarded port), as multiaddrs.
    #[arg(long, env = "INFERNET_EXTERNAL_ADDR", value_delimiter = ',')]
    external_addr: Vec<String>,
    /// Relays to use when unreachable (`…/p2p/<id>`) [default: the bootstrap peers].
    #[arg(long, env = "INFERNET_RELAY", value_delimiter = ',')]
    relay: Vec<String>,
    /// Do not serve as a circuit relay for others.
    #[arg(long, env = "INFERNET_NO_RELAY_SERVER")]
    no_relay_server: bool,
    /// How often to gossip this node's signed ad, in milliseconds; each ad
    /// lives three intervals [default: 10000].
    #[arg(long, env = "INFERNET_AD_INTERVAL_MS")]
    ad_interval_ms: Option<u64>,
    /// With reachability auto: how long AutoNAT may take before relays are
    /// used, in milliseconds [default: 30000].
    #[arg(long, env = "INFERNET_NAT_PROBE_TIMEOUT_MS")]
    nat_probe_timeout_ms: Option<u64>,
    /// Directory of models, one sub-directory with a manifest.json each [default: models].
    #[arg(long, env = "INFERNET_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    /// The node's private key; created (mode 0600) if absent [default: .data/node/node.key].
    #[arg(long, env = "INFERNET_NODE_KEY")]
    key_file: Option<PathBuf>,
    /// Enrol this node to the operator account that made this token (in
    /// the app: Settings, enrolment tokens). Needs --server.
    #[arg(long, env = "INFERNET_ENROLL_TOKEN", hide_env_values = true)]
    enroll: Option<String>,
    /// A Lightning address (name@domain) the node's earnings are paid to
    /// while no operator has enrolled it; signed into its registration
    /// and ads.
    #[arg(long, env = "INFERNET_PAYOUT_ADDRESS")]
    payout_address: Option<String>,
    /// libp2p port for TCP and QUIC; 0 picks free ports [default: 0].
    #[arg(long, env = "INFERNET_NODE_P2P_PORT")]
    p2p_port: Option<u16>,
    /// libp2p listen address [default: 0.0.0.0].
    #[arg(long, env = "INFERNET_NODE_P2P_HOST")]
    p2p_host: Option<IpAddr>,
    /// Heartbeat interval in milliseconds [default: 10000].
    #[arg(long, env = "INFERNET_HEARTBEAT_MS")]
    heartbeat_ms: Option<u64>,
    /// How often an enrolled node sends its telemetry to its server over
    /// the fleet link, in milliseconds [default: 5000].
    #[arg(long, env = "INFERNET_TELEMETRY_MS")]
    telemetry_ms: Option<u64>,
    /// Serve Prometheus metrics at http://<addr>/metrics (GPU gauges named
    /// as DCGM names them), e.g. 127.0.0.1:9400 [default: off].
    #[arg(long, env = "INFERNET_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// auto, cpu, cuda or cuda:N [default: auto].
    #[arg(long, env = "INFERNET_DEVICE")]
    device: Option<String>,
    /// Jobs that may wait for each model before new ones are refused [default: 64]
    /// (`engine::DEFAULT_QUEUE_DEPTH`).
    #[arg(long, env = "INFERNET_QUEUE_DEPTH")]
    queue_depth: Option<usize>,
    /// Most texts in one embedding batch, and most sequences a generation
    /// model decodes at once [default: 16] (`engine::DEFAULT_MAX_BATCH`).
    #[arg(long, env = "INFERNET_MAX_BATCH")]
    max_batch: Option<usize>,
    /// How long a model waits for more jobs before running a batch that is
    /// not full, in milliseconds; 0 runs what is queued [default: 0].
    #[arg(long, env = "INFERNET_BATCH_WAIT_MS")]
    batch_wait_ms: Option<u64>,
    /// Memory each device may hold in loaded models, in MB; the least
    /// recently used model is unloaded to make room [default: half the RAM
    /// for the CPU, 90% of the VRAM for each GPU].
    #[arg(long, env = "INFERNET_MEMORY_BUDGET_MB")]
    memory_budget_mb: Option<u64>,
    /// Models to fetch by hash from peers that have them, before serving
    /// (skipped when already in the models directory; resumable).
    #[arg(long, env = "INFERNET_FETCH", value_delimiter = ',')]
    fetch: Vec<String>,
    /// Fetch the `--fetch` models, then exit instead of serving.
    #[arg(long)]
    fetch_only: bool,
    /// Compute known answers (canaries) for every model in the models
    /// directory, write them to this file as JSON, and exit: a server
    /// given the file (`--canaries`) sends them as jobs to check nodes.
    #[arg(long, value_name = "FILE")]
    make_canaries: Option<PathBuf>,
    /// Canaries per model for `--make-canaries`.
    #[arg(long, default_value_t = crate::canaries::DEFAULT_COUNT)]
    canary_count: usize,
    /// Seed of the canaries' inputs (a new one makes new inputs)
    /// [default: the clock].
    #[arg(long)]
    canary_seed: Option<u64>,
    /// Download models at most this fast, in megabits per second.
    #[arg(long, env = "INFERNET_FETCH_MAX_MBIT")]
    fetch_max_mbit: Option<u64>,
    /// A JSON file with the node's availability schedule (weekly windows in
    /// a time zone, maintenance windows, drain lead: see the README). Used
    /// until the operator sets one from the fleet pages, which then wins.
    #[arg(long, env = "INFERNET_SCHEDULE")]
    schedule: Option<PathBuf>,
    /// Public pools to join (a region, a model family); consumers may ask
    /// for a pool. The operator's choice from the fleet pages wins.
    #[arg(long, env = "INFERNET_POOL", value_delimiter = ',')]
    pool: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<String>,
    bootstrap: Option<Vec<String>>,
    reachability: Option<String>,
    external_addr: Option<Vec<String>>,
    relay: Option<Vec<String>>,
    no_relay_server: Option<bool>,
    ad_interval_ms: Option<u64>,
    nat_probe_timeout_ms: Option<u64>,
    models_dir: Option<PathBuf>,
    key_file: Option<PathBuf>,
    enroll: Option<String>,
    payout_address: Option<String>,
    p2p_port: Option<u16>,
    p2p_host: Option<IpAddr>,
    heartbeat_ms: Option<u64>,
    telemetry_ms: Option<u64>,
    metrics_addr: Option<std::net::SocketAddr>,
    device: Option<String>,
    queue_depth: Option<usize>,
    max_batch: Option<usize>,
    batch_wait_ms: Option<u64>,
    memory_budget_mb: Option<u64>,
    fetch: Option<Vec<String>>,
    fetch_max_mbit: Option<u64>,
    schedule: Option<PathBuf>,
    pool: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// None: no HTTP registration, ads only.
    pub server: Option<reqwest::Url>,
    pub bootstrap: Vec<p2p::Multiaddr>,
    pub reachability: p2p::Reachability,
    pub external_addrs: Vec<p2p::Multiaddr>,
    pub relays: Vec<p2p::Multiaddr>,
    pub relay_server: bool,
    pub ad_interval: Duration,
    pub nat_probe_timeout: Duration,
    pub models_dir: PathBuf,
    pub key_file: PathBuf,
    /// `--enroll`: the operator's enrolment token.
    pub enroll: Option<EnrolToken>,
    /// `--payout-address`: a Lightning address, checked.
    pub payout_address: Option<String>,
    pub p2p_port: u16,
    pub p2p_host: IpAddr,
    pub heartbeat: Duration,
    /// How often the fleet link carries telemetry.
    pub telemetry: Duration,
    /// `--metrics-addr`: where to serve `/metrics`.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub device: DeviceChoice,
    pub queue_depth: usize,
    pub max_batch: usize,
    pub batch_wait: Duration,
    /// `None`: derived from the hardware (see [`Config::engine`]).
    pub memory_budget_mb: Option<u64>,
    pub fetch: Vec<wire::ModelHash>,
    pub fetch_only: bool,
    /// `--make-canaries`: where to write them, how many per model, and
    /// the seed of their inputs.
    pub make_canaries: Option<(PathBuf, usize, u64)>,
    /// Bytes per second.
    pub fetch_max_rate: Option<u64>,
    /// `--schedule`, read and checked.
    pub schedule: Option<wire::schedule::Schedule>,
    /// `--pool`, checked.
    pub pools: Vec<String>,
}

/// An enrolment token: a secret, kept out of logs.
#[derive(Clone)]
pub struct EnrolToken(pub String);

impl std::fmt::Debug for EnrolToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    pub fn load() -> Result<Self, ConfigError> {
        Self::resolve(Cli::parse())
    }

    fn resolve(cli: Cli) -> Result<Self, ConfigError> {
        let file: FileConfig = match &cli.config {
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: shown.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: shown,
                    source,
                })?
            }
            None => FileConfig::default(),
        };
        let invalid = |m: String| ConfigError::Invalid(m);

        let bootstrap = parse_peer_addrs(&list(cli.bootstrap, file.bootstrap), "bootstrap")?;

        let server_text = cli.server.or(file.server).or_else(|| {
            bootstrap
                .is_empty()
                .then(|| "http://127.0.0.1:8080".to_owned())
        });
        let server = server_text
            .map(|text| {
                reqwest::Url::parse(&text)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        invalid(format!("--server must be an http(s) URL, got `{text}`"))
                    })
            })
            .transpose()?;

        let reachability = cli
            .reachability
            .or(file.reachability)
            .unwrap_or_else(|| "auto".into())
            .parse()
            .map_err(invalid)?;
        let external_addrs = list(cli.external_addr, file.external_addr)
            .iter()
            .map(|a| {
                a.parse::<p2p::Multiaddr>()
                    .map_err(|_| invalid(format!("`{a}` is not a multiaddr")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let relays = parse_peer_addrs(&list(cli.relay, file.relay), "relay")?;
        let ad_interval_ms = cli.ad_interval_ms.or(file.ad_interval_ms).unwrap_or(10_000);
        // Three intervals must fit an ad's time to live.
        let ad_range = 300..=(wire::ads::MAX_AD_TTL_MS / 3);
        if !ad_range.contains(&ad_interval_ms) {
            return Err(invalid(format!(
                "ad_interval_ms must be {} to {}",
                ad_range.start(),
                ad_range.end()
            )));
        }
        let nat_probe_timeout_ms = cli
            .nat_probe_timeout_ms
            .or(file.nat_probe_timeout_ms)
            .unwrap_or(30_000);
        if !(100..=3_600_000).contains(&nat_probe_timeout_ms) {
            return Err(invalid(
                "nat_probe_timeout_ms must be 100 to 3600000".into(),
            ));
        }

        let heartbeat_ms = cli.heartbeat_ms.or(file.heartbeat_ms).unwrap_or(10_000);
        let range = wire::registry::MIN_HEARTBEAT_MS..=wire::registry::MAX_HEARTBEAT_MS;
        if !range.contains(&heartbeat_ms) {
            return Err(invalid(format!(
                "heartbeat_ms must be {} to {}",
                range.start(),
                range.end()
            )));
        }
        let telemetry_ms = cli.telemetry_ms.or(file.telemetry_ms).unwrap_or(5_000);
        if !(200..=600_000).contains(&telemetry_ms) {
            return Err(invalid("telemetry_ms must be 200 to 600000".into()));
        }
        let device = cli
            .device
            .or(file.device)
            .unwrap_or_else(|| "auto".into())
            .parse()
            .map_err(invalid)?;
        let queue_depth = cli
            .queue_depth
            .or(file.queue_depth)
            .unwrap_or(crate::engine::DEFAULT_QUEUE_DEPTH);
        if queue_depth == 0 || queue_depth > 100_000 {
            return Err(invalid("queue_depth must be 1 to 100000".into()));
        }
        let max_batch = cli
            .max_batch
            .or(file.max_batch)
            .unwrap_or(crate::engine::DEFAULT_MAX_BATCH);
        if max_batch == 0 || max_batch > 1024 {
            return Err(invalid("max_batch must be 1 to 1024".into()));
        }
        let batch_wait_ms = cli.batch_wait_ms.or(file.batch_wait_ms).unwrap_or(0);
        if batch_wait_ms > 10_000 {
            return Err(invalid("batch_wait_ms must be 0 to 10000".into()));
        }
        let memory_budget_mb = cli.memory_budget_mb.or(file.memory_budget_mb);
        if memory_budget_mb == Some(0) {
            return Err(invalid("memory_budget_mb must be positive".into()));
        }
        let fetch = list(cli.fetch, file.fetch)
            .iter()
            .map(|h| {
                h.parse::<wire::ModelHash>()
                    .map_err(|e| invalid(format!("--fetch {h}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if cli.fetch_only && fetch.is_empty() {
            return Err(invalid("--fetch-only needs at least one --fetch".into()));
        }
        let enroll = cli
            .enroll
            .or(file.enroll)
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(EnrolToken);
        if enroll.is_some() && server.is_none() {
            return Err(invalid(
                "--enroll needs --server: a node enrols with the server that made the token".into(),
            ));
        }
        let payout_address = cli
            .payout_address
            .or(file.payout_address)
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty());
        if let Some(address) = &payout_address {
            wire::billing::check_lightning_address(address)
                .map_err(|e| invalid(format!("--payout-address: {e}")))?;
        }
        let schedule = match cli.schedule.or(file.schedule) {
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: shown.clone(),
                    source,
                })?;
                let schedule: wire::schedule::Schedule = serde_json::from_str(&text)
                    .map_err(|e| invalid(format!("--schedule {shown}: {e}")))?;
                schedule
                    .check()
                    .map_err(|e| invalid(format!("--schedule {shown}: {e}")))?;
                Some(schedule)
            }
            None => None,
        };
        let pools = list(cli.pool, file.pool);
        wire::registry::check_pools(&pools).map_err(|e| invalid(format!("--pool: {e}")))?;
        Ok(Config {
            schedule,
            pools,
            enroll,
            payout_address,
            server,
            bootstrap,
            reachability,
            external_addrs,
            relays,
            relay_server: !(cli.no_relay_server || file.no_relay_server.unwrap_or(false)),
            ad_interval: Duration::from_millis(ad_interval_ms),
            nat_probe_timeout: Duration::from_millis(nat_probe_timeout_ms),
            models_dir: cli
                .models_dir
                .or(file.models_dir)
                .unwrap_or_else(|| "models".into()),
            key_file: cli
                .key_file
                .or(file.key_file)
                .unwrap_or_else(|| ".data/node/node.key".into()),
            p2p_port: cli.p2p_port.or(file.p2p_port).unwrap_or(0),
            p2p_host: cli
                .p2p_host
                .or(file.p2p_host)
                .unwrap_or_else(|| IpAddr::from([0, 0, 0, 0])),
            heartbeat: Duration::from_millis(heartbeat_ms),
            telemetry: Duration::from_millis(telemetry_ms),
            metrics_addr: cli.metrics_addr.or(file.metrics_addr),
            device,
            queue_depth,
            max_batch,
            batch_wait: Duration::from_millis(batch_wait_ms),
            memory_budget_mb,
            fetch,
            fetch_only: cli.fetch_only,
            make_canaries: match cli.make_canaries {
                Some(_) if !(1..=10_000).contains(&cli.canary_count) => {
                    return Err(invalid("--canary-count must be 1 to 10000".into()))
                }
                Some(path) => Some((
                    path,
                    cli.canary_count,
                    cli.canary_seed.unwrap_or_else(|| wire::UnixMillis::now().0),
                )),
                None => None,
            },
            fetch_max_rate: match cli.fetch_max_mbit.or(file.fetch_max_mbit) {
                Some(0) => return Err(invalid("fetch_max_mbit must be positive".into())),
                mbit => mbit.map(|m| m.saturating_mul(1_000_000 / 8)),
            },
        })
    }

    /// The engine's settings. Without a configured budget each device gets
    /// half the RAM (CPU) or 90% of the smallest GPU's VRAM.
    pub fn engine(&self, hardware: &wire::registry::Hardware) -> crate::engine::EngineConfig {
        let derived = match (self.device, hardware.gpus.iter().map(|g| g.vram_mb).min()) {
            (DeviceChoice::Cpu, _) | (_, None) => hardware.ram_mb / 2,
            (_, Some(vram)) => vram / 10 * 9,
        };
        crate::engine::EngineConfig {
            device: self.device,
            queue_depth: self.queue_depth,
            max_batch: self.max_batch,
            batch_wait: self.batch_wait,
            memory_budget: Some(
                self.memory_budget_mb
                    .unwrap_or(derived)
                    .saturating_mul(1 << 20),
            )
            .filter(|b| *b > 0),
        }
    }
}

/// A list setting: the flag's values if any were given, else the file's.
fn list(flag: Vec<String>, file: Option<Vec<String>>) -> Vec<String> {
    if flag.is_empty() {
        file.unwrap_or_default()
    } else {
        flag
    }
}

/// Parses multiaddrs that must each name their peer (`…/p2p/<id>`).
fn parse_peer_addrs(texts: &[String], what: &str) -> Result<Vec<p2p::Multiaddr>, ConfigError> {
    texts
        .iter()
        .map(|a| {
            let addr: p2p::Multiaddr = a
                .parse()
                .map_err(|_| ConfigError::Invalid(format!("`{a}` is not a multiaddr")))?;
            p2p::split_peer_id(&addr).ok_or_else(|| {
                ConfigError::Invalid(format!("{what} address `{a}` must end in /p2p/<peer id>"))
            })?;
            Ok(addr)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("infernet-node-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let cli = Cli {
            config: Some(file(
                "a.toml",
                "heartbeat_ms = 2000\ndevice = \"cpu\"\nqueue_depth = 3\n",
            )),
            queue_depth: Some(7),
            ..Default::default()
        };
        let c = Config::resolve(cli).unwrap();
        assert_eq!(c.heartbeat, Duration::from_millis(2000));
        assert_eq!(c.device, DeviceChoice::Cpu);
        assert_eq!(c.queue_depth, 7);
        assert_eq!(
            c.max_batch,
            crate::engine::EngineConfig::default().max_batch,
            "one default, whether the engine is built from flags or not"
        );
        assert_eq!(c.server.unwrap().as_str(), "http://127.0.0.1:8080/");
        assert_eq!(c.reachability, p2p::Reachability::Auto);
        assert!(c.relay_server);
    }

    #[test]
    fn bootstrap_without_server_means_gossip_only() {
        let cli = Cli {
            bootstrap: vec![
                "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
                    .into(),
            ],
            reachability: Some("private".into()),
            ..Default::default()
        };
        let c = Config::resolve(cli).unwrap();
        assert!(c.server.is_none());
        assert_eq!(c.reachability, p2p::Reachability::Private);
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for cli in [
            Cli {
                server: Some("ftp://x".into()),
                ..Default::default()
            },
            Cli {
                heartbeat_ms: Some(1),
                ..Default::default()
            },
            Cli {
                device: Some("tpu".into()),
                ..Default::default()
            },
            Cli {
                bootstrap: vec!["/ip4/127.0.0.1/tcp/1".into()],
                ..Default::default()
            },
            Cli {
                reachability: Some("sometimes".into()),
                ..Default::default()
            },
            Cli {
                ad_interval_ms: Some(10),
                ..Default::default()
            },
            Cli {
                relay: vec!["/ip4/127.0.0.1/tcp/1".into()],
                ..Default::default()
            },
        ] {
            assert!(matches!(Config::resolve(cli), Err(ConfigError::Invalid(_))));
        }
        let cli = Cli {
            config: Some(file("b.toml", "heartbeat = 5\n")),
            ..Default::default()
        };
        assert!(matches!(
            Config::resolve(cli),
            Err(ConfigError::Parse { .. })
        ));
    }
}

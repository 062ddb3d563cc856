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
    name = "node",
    version,
    about = "Infernet provider node: sells inference on this machine's CPU or GPU"
)]
struct Cli {
    /// TOML file with any of the settings below (flag names, with `_` for `-`).
    #[arg(long, env = "INFERNET_NODE_CONFIG")]
    config: Option<PathBuf>,
    /// The Infernet server to register with [default: http://127.0.0.1:8080].
    #[arg(long, env = "INFERNET_SERVER")]
    server: Option<String>,
    /// libp2p peers to bootstrap from (`/ip4/…/tcp/…/p2p/<id>`); by default
    /// the server's own peer, read from its `/api/v1/network`.
    #[arg(long, env = "INFERNET_BOOTSTRAP", value_delimiter = ',')]
    bootstrap: Vec<String>,
    /// Directory of models, one sub-directory with a manifest.json each [default: models].
    #[arg(long, env = "INFERNET_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    /// The node's private key; created (mode 0600) if absent [default: .data/node/node.key].
    #[arg(long, env = "INFERNET_NODE_KEY")]
    key_file: Option<PathBuf>,
    /// libp2p port for TCP and QUIC; 0 picks free ports [default: 0].
    #[arg(long, env = "INFERNET_NODE_P2P_PORT")]
    p2p_port: Option<u16>,
    /// libp2p listen address [default: 0.0.0.0].
    #[arg(long, env = "INFERNET_NODE_P2P_HOST")]
    p2p_host: Option<IpAddr>,
    /// Heartbeat interval in milliseconds [default: 10000].
    #[arg(long, env = "INFERNET_HEARTBEAT_MS")]
    heartbeat_ms: Option<u64>,
    /// auto, cpu, cuda or cuda:N [default: auto].
    #[arg(long, env = "INFERNET_DEVICE")]
    device: Option<String>,
    /// Jobs that may wait for each model before new ones are refused [default: 64].
    #[arg(long, env = "INFERNET_QUEUE_DEPTH")]
    queue_depth: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<String>,
    bootstrap: Option<Vec<String>>,
    models_dir: Option<PathBuf>,
    key_file: Option<PathBuf>,
    p2p_port: Option<u16>,
    p2p_host: Option<IpAddr>,
    heartbeat_ms: Option<u64>,
    device: Option<String>,
    queue_depth: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub server: reqwest::Url,
    pub bootstrap: Vec<p2p::Multiaddr>,
    pub models_dir: PathBuf,
    pub key_file: PathBuf,
    pub p2p_port: u16,
    pub p2p_host: IpAddr,
    pub heartbeat: Duration,
    pub device: DeviceChoice,
    pub queue_depth: usize,
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

        let server_text = cli
            .server
            .or(file.server)
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let server = reqwest::Url::parse(&server_text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                invalid(format!(
                    "--server must be an http(s) URL, got `{server_text}`"
                ))
            })?;

        let bootstrap_text = if cli.bootstrap.is_empty() {
            file.bootstrap.unwrap_or_default()
        } else {
            cli.bootstrap
        };
        let bootstrap = bootstrap_text
            .iter()
            .map(|a| {
                let addr: p2p::Multiaddr = a
                    .parse()
                    .map_err(|_| invalid(format!("`{a}` is not a multiaddr")))?;
                p2p::split_peer_id(&addr).ok_or_else(|| {
                    invalid(format!(
                        "bootstrap address `{a}` must end in /p2p/<peer id>"
                    ))
                })?;
                Ok(addr)
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;

        let heartbeat_ms = cli.heartbeat_ms.or(file.heartbeat_ms).unwrap_or(10_000);
        let range = wire::registry::MIN_HEARTBEAT_MS..=wire::registry::MAX_HEARTBEAT_MS;
        if !range.contains(&heartbeat_ms) {
            return Err(invalid(format!(
                "heartbeat_ms must be {} to {}",
                range.start(),
                range.end()
            )));
        }
        let device = cli
            .device
            .or(file.device)
            .unwrap_or_else(|| "auto".into())
            .parse()
            .map_err(invalid)?;
        let queue_depth = cli.queue_depth.or(file.queue_depth).unwrap_or(64);
        if queue_depth == 0 || queue_depth > 100_000 {
            return Err(invalid("queue_depth must be 1 to 100000".into()));
        }
        Ok(Config {
            server,
            bootstrap,
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
            device,
            queue_depth,
        })
    }
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
        assert_eq!(c.server.as_str(), "http://127.0.0.1:8080/");
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

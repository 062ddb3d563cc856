//! The server's configuration: flags, then `INFERNET_*` environment
//! variables, then an optional TOML file, then defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// Where `scripts/build-site.sh` puts the web app, from the repository root.
pub const DEFAULT_SITE_ROOT: &str = "target/site";

#[derive(Debug, Parser, Default)]
#[command(
    name = "server",
    version,
    about = "Infernet server: node registry, job API, libp2p seed peer and web app"
)]
struct Cli {
    /// TOML file with any of the settings below (flag names, with `_` for `-`).
    #[arg(long, env = "INFERNET_CONFIG")]
    config: Option<PathBuf>,
    /// HTTP address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "INFERNET_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the embedded database and the server's key [default: .data/server].
    #[arg(long, env = "INFERNET_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A remote SurrealDB (`ws://host:port`); by default SurrealKV embedded in the data dir.
    #[arg(long, env = "INFERNET_DB")]
    db: Option<String>,
    /// Root user for a remote SurrealDB.
    #[arg(long, env = "INFERNET_DB_USER")]
    db_user: Option<String>,
    /// Root password for a remote SurrealDB.
    #[arg(long, env = "INFERNET_DB_PASS", hide_env_values = true)]
    db_pass: Option<String>,
    /// SurrealDB namespace [default: infernet].
    #[arg(long, env = "INFERNET_DB_NS")]
    db_namespace: Option<String>,
    /// SurrealDB database [default: main].
    #[arg(long, env = "INFERNET_DB_NAME")]
    db_database: Option<String>,
    /// libp2p port for TCP and QUIC; 0 picks free ports [default: 4001].
    #[arg(long, env = "INFERNET_P2P_PORT")]
    p2p_port: Option<u16>,
    /// libp2p listen address [default: 0.0.0.0].
    #[arg(long, env = "INFERNET_P2P_HOST")]
    p2p_host: Option<IpAddr>,
    /// The built web app: pkg/, manifest, icons, service worker; where
    /// `scripts/build-site.sh` writes it [default: target/site, from the
    /// working directory].
    #[arg(long, env = "INFERNET_SITE_ROOT")]
    site_root: Option<PathBuf>,
    /// Longest a job may take, in seconds [default: 60].
    #[arg(long, env = "INFERNET_JOB_TIMEOUT_SECS")]
    job_timeout_secs: Option<u64>,
    /// A job whose node sends no output within this many seconds moves to
    /// the next node [default: 20, at most the job timeout].
    #[arg(long, env = "INFERNET_FIRST_OUTPUT_SECS")]
    first_output_secs: Option<u64>,
    /// Jobs one account may submit a minute (as many at once) [default: 600].
    #[arg(long, env = "INFERNET_JOBS_PER_MINUTE")]
    jobs_per_minute: Option<u32>,
    /// Jobs one client address may submit a minute over the API (as many
    /// at once) [default: 1200].
    #[arg(long, env = "INFERNET_JOBS_PER_MINUTE_PER_IP")]
    jobs_per_minute_per_ip: Option<u32>,
    /// public (the p2p listen addresses are dialable as they are), auto
    /// (AutoNAT decides) or private [default: public].
    #[arg(long, env = "INFERNET_P2P_REACHABILITY")]
    p2p_reachability: Option<String>,
    /// Addresses the p2p side can be dialled at that it cannot see itself.
    #[arg(long, env = "INFERNET_P2P_EXTERNAL_ADDR", value_delimiter = ',')]
    p2p_external_addr: Vec<String>,
    /// Forget a node this many seconds after it was last heard from
    /// (offline nodes stay listed until then) [default: 604800].
    #[arg(long, env = "INFERNET_NODE_RETENTION_SECS")]
    node_retention_secs: Option<u64>,
    /// The site's URL as browsers reach it: passkeys' relying party and
    /// origin, the origin signed-in requests must come from, and whether
    /// cookies are Secure [default: http://localhost:<listen port>].
    #[arg(long, env = "INFERNET_PUBLIC_URL")]
    public_url: Option<String>,
    /// Let operators' alert webhooks point at this machine or a private
    /// network (tests, single-machine setups).
    #[arg(long, env = "INFERNET_ALLOW_PRIVATE_WEBHOOKS")]
    allow_private_webhooks: bool,
    /// Serve Prometheus metrics at http://<addr>/metrics, on a listener of
    /// its own (e.g. 127.0.0.1:9464) [default: off].
    #[arg(long, env = "INFERNET_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// For a private single-user deployment: keep an API key of the local
    /// account in this file (0600), making both if need be.
    #[arg(long, env = "INFERNET_LOCAL_KEY_FILE")]
    local_key_file: Option<PathBuf>,
    /// The platform's fee on every job's price, in basis points (100 =
    /// 1 %), kept from what the node's operator earns [default: 0].
    #[arg(long, env = "INFERNET_PLATFORM_FEE_BPS")]
    platform_fee_bps: Option<u32>,
    /// Lightning for top-ups and payouts: `none` (credit by admin command
    /// only), `breez` (the Breez SDK, Spark), or `test` (a stand-in that
    /// settles invoices when `admin test-pay` says so: tests only, never
    /// real money) [default: none].
    #[arg(long, env = "INFERNET_LIGHTNING")]
    lightning: Option<String>,
    /// The Lightning network: bitcoin, signet or regtest [default: bitcoin].
    #[arg(long, env = "INFERNET_LIGHTNING_NETWORK")]
    lightning_network: Option<String>,
    /// The Breez API key (needed on bitcoin mainnet).
    #[arg(long, env = "INFERNET_BREEZ_API_KEY", hide_env_values = true)]
    breez_api_key: Option<String>,
    /// The Breez wallet's seed (BIP39 words), kept 0600; made if missing
    /// [default: <data dir>/breez.seed].
    #[arg(long, env = "INFERNET_BREEZ_SEED_FILE")]
    breez_seed_file: Option<PathBuf>,
    /// The Python that runs the Breez worker, with the `breez-sdk-spark`
    /// package installed [default: python3].
    #[arg(long, env = "INFERNET_BREEZ_PYTHON")]
    breez_python: Option<PathBuf>,
    /// How often unpaid top-ups and unfinished payouts are checked with
    /// the Lightning backend, in seconds [default: 30].
    #[arg(long, env = "INFERNET_LIGHTNING_RECONCILE_SECS")]
    lightning_reconcile_secs: Option<u64>,
    /// An unenrolled node that names a payout address (`node
    /// --payout-address`) is paid its pending earnings once they reach
    /// this, in millisatoshis [default: 1000000, 1000 sat].
    #[arg(long, env = "INFERNET_NODE_PAYOUT_THRESHOLD_MSAT")]
    node_payout_threshold_msat: Option<u64>,
    /// Known answers to send nodes as canary jobs: a file made by
    /// `infernet-node --make-canaries` from the same model files.
    #[arg(long, env = "INFERNET_CANARIES")]
    canaries: Option<PathBuf>,
    /// Canaries each node gets per model (of those with canaries) an hour,
    /// on average [default: 4].
    #[arg(long, env = "INFERNET_CANARIES_PER_HOUR")]
    canaries_per_hour: Option<f64>,
    /// The fraction of consumers' jobs (embeddings, tensors, greedy
    /// generation) run again on a second node to compare [default: 0.02].
    #[arg(long, env = "INFERNET_REDUNDANCY")]
    redundancy: Option<f64>,
    /// A client must send a request's headers within this many seconds,
    /// else the connection closes; an idle keep-alive connection closes after
    /// it too [default: 30].
    #[arg(long, env = "INFERNET_HEADER_TIMEOUT_SECS")]
    header_timeout_secs: Option<u64>,
    /// …and its body within this many seconds of them, else `408
    /// body_timeout` [default: 30].
    #[arg(long, env = "INFERNET_BODY_TIMEOUT_SECS")]
    body_timeout_secs: Option<u64>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Which Lightning backend the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LightningBackend {
    None,
    Breez,
    Test,
}

impl std::str::FromStr for LightningBackend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(LightningBackend::None),
            "breez" => Ok(LightningBackend::Breez),
            "test" => Ok(LightningBackend::Test),
            other => Err(format!(
                "--lightning must be none, breez or test, not `{other}`"
            )),
        }
    }
}

/// What the server binary does besides serving.
#[derive(Debug, clap::Subcommand, Clone, PartialEq, Eq)]
pub enum Command {
    /// Exits 0 if the server on --listen answers `GET /healthz` with 200
    /// within 3 s, else 1 (a container's health check).
    Healthcheck,
    /// Commands for the running server's operator, over the admin socket
    /// in its data dir (only whoever may read the data dir can use it).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// The operator's commands.
#[derive(Debug, clap::Subcommand, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Grants credit to an account (a private instance without
    /// Lightning): recorded in the ledger like any other movement, once
    /// per --key.
    Credit {
        /// The account (`acct_…`).
        account: String,
        /// Millisatoshis.
        amount_msat: u64,
        /// Idempotency key: the same key never credits twice [default: a new one].
        #[arg(long)]
        key: Option<String>,
        /// A note shown in the account's history.
        #[arg(long)]
        memo: Option<String>,
    },
    /// Checks the whole ledger: postings sum to zero, balances match.
    Audit,
    /// Makes an enrolment token for an account (nodes started with
    /// `--enroll <token>` join its fleet), for deployments run without a
    /// browser; prints the secret once.
    EnrolToken {
        /// The account (`acct_…`).
        account: String,
        /// What the token is for.
        #[arg(long, default_value = "admin")]
        name: String,
        /// Usable by any number of nodes until it expires.
        #[arg(long)]
        reusable: bool,
    },
    /// Pays a top-up invoice from the test Lightning backend (a server
    /// started with `--lightning test`; for tests, never real money).
    TestPay {
        /// The BOLT11 invoice.
        invoice: String,
        /// Settle it without telling the server (as if the payment's event
        /// were lost): only the reconciliation credits it.
        #[arg(long)]
        silently: bool,
    },
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    db: Option<String>,
    db_user: Option<String>,
    db_pass: Option<String>,
    db_namespace: Option<String>,
    db_database: Option<String>,
    p2p_port: Option<u16>,
    p2p_host: Option<IpAddr>,
    site_root: Option<PathBuf>,
    job_timeout_secs: Option<u64>,
    first_output_secs: Option<u64>,
    jobs_per_minute: Option<u32>,
    jobs_per_minute_per_ip: Option<u32>,
    p2p_reachability: Option<String>,
    p2p_external_addr: Option<Vec<String>>,
    node_retention_secs: Option<u64>,
    public_url: Option<String>,
    local_key_file: Option<PathBuf>,
    metrics_addr: Option<SocketAddr>,
    allow_private_webhooks: Option<bool>,
    platform_fee_bps: Option<u32>,
    lightning: Option<String>,
    lightning_network: Option<String>,
    breez_api_key: Option<String>,
    breez_seed_file: Option<PathBuf>,
    breez_python: Option<PathBuf>,
    lightning_reconcile_secs: Option<u64>,
    node_payout_threshold_msat: Option<u64>,
    canaries: Option<PathBuf>,
    canaries_per_hour: Option<f64>,
    redundancy: Option<f64>,
    header_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
}

/// The resolved configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub db: Option<String>,
    pub db_user: Option<String>,
    pub db_pass: Option<String>,
    pub db_namespace: String,
    pub db_database: String,
    pub p2p_port: u16,
    pub p2p_host: IpAddr,
    pub site_root: PathBuf,
    pub job_timeout: Duration,
    /// How long a node may take to its job's first output before the job
    /// moves on (at most `job_timeout`).
    pub first_output: Duration,
    /// Jobs an account, and a client address, may submit a minute.
    pub job_rates: JobRates,
    pub p2p_reachability: p2p::Reachability,
    pub p2p_external_addrs: Vec<p2p::Multiaddr>,
    pub node_retention: Duration,
    pub public_url: Option<String>,
    pub local_key_file: Option<PathBuf>,
    /// `--metrics-addr`: where `/metrics` is served.
    pub metrics_addr: Option<SocketAddr>,
    /// `--allow-private-webhooks`.
    pub allow_private_webhooks: bool,
    pub platform_fee_bps: u32,
    pub lightning: LightningBackend,
    /// bitcoin, signet or regtest.
    pub lightning_network: String,
    pub breez_api_key: Option<String>,
    pub breez_seed_file: Option<PathBuf>,
    pub breez_python: PathBuf,
    pub lightning_reconcile: Duration,
    pub node_payout_threshold_msat: u64,
    /// `--canaries`: the known answers' file.
    pub canaries: Option<PathBuf>,
    pub canaries_per_hour: f64,
    pub redundancy: f64,
    /// How long a client may take to send a request's headers, and then
    /// its body (slow clients are cut off).
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// An admin command to run against the running server, instead of serving.
    pub command: Option<Command>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("db", &self.db.as_deref().unwrap_or("embedded surrealkv"))
            .field("db_user", &self.db_user)
            .field("db_pass", &self.db_pass.as_ref().map(|_| "<redacted>"))
            .field("db_namespace", &self.db_namespace)
            .field("db_database", &self.db_database)
            .field("p2p_port", &self.p2p_port)
            .field("p2p_host", &self.p2p_host)
            .field("site_root", &self.site_root)
            .field("job_timeout", &self.job_timeout)
            .field("first_output", &self.first_output)
            .field("job_rates", &self.job_rates)
            .field("p2p_reachability", &self.p2p_reachability)
            .field("p2p_external_addrs", &self.p2p_external_addrs)
            .field("node_retention", &self.node_retention)
            .field("public_url", &self.public_url)
            .field("local_key_file", &self.local_key_file)
            .field("platform_fee_bps", &self.platform_fee_bps)
            .field("lightning", &self.lightning)
            .field("lightning_network", &self.lightning_network)
            .field(
                "breez_api_key",
                &self.breez_api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("breez_seed_file", &self.breez_seed_file)
            .field("breez_python", &self.breez_python)
            .field("lightning_reconcile", &self.lightning_reconcile)
            .field(
                "node_payout_threshold_msat",
                &self.node_payout_threshold_msat,
            )
            .field("canaries", &self.canaries)
            .field("canaries_per_hour", &self.canaries_per_hour)
            .field("redundancy", &self.redundancy)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .finish()
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
    /// From the process's arguments and environment. Exits with a usage
    /// message on bad flags, as clap does.
    pub fn load() -> Result<Self, ConfigError> {
        Self::resolve(Cli::parse())
    }

    /// Defaults for tests: loopback, OS-chosen ports, everything under `data_dir`.
    pub fn for_tests(data_dir: &Path, site_root: &Path) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_owned(),
            db: None,
            db_user: None,
            db_pass: None,
            db_namespace: "infernet".into(),
            db_database: "main".into(),
            p2p_port: 0,
            p2p_host: IpAddr::from([127, 0, 0, 1]),
            site_root: site_root.to_owned(),
            job_timeout: Duration::from_secs(30),
            first_output: Duration::from_secs(20),
            job_rates: JobRates::default(),
            p2p_reachability: p2p::Reachability::Public,
            p2p_external_addrs: Vec::new(),
            node_retention: Duration::from_secs(7 * 24 * 3600),
            public_url: None,
            local_key_file: None,
            metrics_addr: None,
            allow_private_webhooks: true,
            platform_fee_bps: 0,
            lightning: LightningBackend::None,
            lightning_network: "regtest".into(),
            breez_api_key: None,
            breez_seed_file: None,
            breez_python: PathBuf::from("python3"),
            lightning_reconcile: Duration::from_secs(30),
            node_payout_threshold_msat: 1_000_000,
            canaries: None,
            canaries_per_hour: 0.0,
            redundancy: 0.0,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            command: None,
        }
    }

    fn resolve(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
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
        let timeout = cli.job_timeout_secs.or(file.job_timeout_secs).unwrap_or(60);
        if timeout == 0 || timeout > 3600 {
            return Err(ConfigError::Invalid(
                "job_timeout_secs must be 1 to 3600".into(),
            ));
        }
        let first_output = cli
            .first_output_secs
            .or(file.first_output_secs)
            .unwrap_or(20)
            .min(timeout);
        if first_output == 0 {
            return Err(ConfigError::Invalid(
                "first_output_secs must be at least 1".into(),
            ));
        }
        let job_rates = JobRates {
            per_account: cli
                .jobs_per_minute
                .or(file.jobs_per_minute)
                .unwrap_or(JobRates::default().per_account),
            per_ip: cli
                .jobs_per_minute_per_ip
                .or(file.jobs_per_minute_per_ip)
                .unwrap_or(JobRates::default().per_ip),
        };
        if job_rates.per_account == 0 || job_rates.per_ip == 0 {
            return Err(ConfigError::Invalid(
                "jobs_per_minute and jobs_per_minute_per_ip must be at least 1".into(),
            ));
        }
        let p2p_reachability = cli
            .p2p_reachability
            .or(file.p2p_reachability)
            .unwrap_or_else(|| "public".into())
            .parse()
            .map_err(ConfigError::Invalid)?;
        let external_text = if cli.p2p_external_addr.is_empty() {
            file.p2p_external_addr.unwrap_or_default()
        } else {
            cli.p2p_external_addr
        };
        let p2p_external_addrs = external_text
            .iter()
            .map(|a| {
                a.parse::<p2p::Multiaddr>()
                    .map_err(|_| ConfigError::Invalid(format!("`{a}` is not a multiaddr")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let retention = cli
            .node_retention_secs
            .or(file.node_retention_secs)
            .unwrap_or(7 * 24 * 3600);
        if retention == 0 || retention > 365 * 24 * 3600 {
            return Err(ConfigError::Invalid(
                "node_retention_secs must be 1 to 31536000".into(),
            ));
        }
        let db = cli.db.or(file.db);
        if let Some(url) = &db {
            let ok = ["ws://", "wss://", "surrealkv://", "http://", "https://"]
                .iter()
                .any(|p| url.starts_with(p));
            if !ok {
                return Err(ConfigError::Invalid(format!(
                    "--db must be a ws://, wss://, http(s):// or surrealkv:// URL, got `{url}`"
                )));
            }
        }
        let platform_fee_bps = cli.platform_fee_bps.or(file.platform_fee_bps).unwrap_or(0);
        if platform_fee_bps > 5000 {
            return Err(ConfigError::Invalid(
                "platform_fee_bps must be 0 to 5000 (50 %)".into(),
            ));
        }
        let lightning = cli
            .lightning
            .or(file.lightning)
            .unwrap_or_else(|| "none".into())
            .parse()
            .map_err(ConfigError::Invalid)?;
        let lightning_network = cli
            .lightning_network
            .or(file.lightning_network)
            .unwrap_or_else(|| "bitcoin".into());
        if !["bitcoin", "signet", "regtest"].contains(&lightning_network.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "lightning_network must be bitcoin, signet or regtest, not `{lightning_network}`"
            )));
        }
        let breez_api_key = cli.breez_api_key.or(file.breez_api_key);
        if lightning == LightningBackend::Breez
            && lightning_network == "bitcoin"
            && breez_api_key.is_none()
        {
            return Err(ConfigError::Invalid(
                "--lightning breez on bitcoin (mainnet) needs --breez-api-key (INFERNET_BREEZ_API_KEY)"
                    .into(),
            ));
        }
        let reconcile = cli
            .lightning_reconcile_secs
            .or(file.lightning_reconcile_secs)
            .unwrap_or(30);
        if reconcile == 0 || reconcile > 3600 {
            return Err(ConfigError::Invalid(
                "lightning_reconcile_secs must be 1 to 3600".into(),
            ));
        }
        let node_payout_threshold_msat = cli
            .node_payout_threshold_msat
            .or(file.node_payout_threshold_msat)
            .unwrap_or(1_000_000);
        if !(11_000..=10_000_000_000).contains(&node_payout_threshold_msat) {
            return Err(ConfigError::Invalid(
                "node_payout_threshold_msat must be 11000 to 10000000000".into(),
            ));
        }
        let canaries_per_hour = cli
            .canaries_per_hour
            .or(file.canaries_per_hour)
            .unwrap_or(4.0);
        if !(0.0..=3600.0).contains(&canaries_per_hour) {
            return Err(ConfigError::Invalid(
                "canaries_per_hour must be 0 to 3600".into(),
            ));
        }
        let redundancy = cli.redundancy.or(file.redundancy).unwrap_or(0.02);
        if !(0.0..=1.0).contains(&redundancy) {
            return Err(ConfigError::Invalid("redundancy must be 0 to 1".into()));
        }
        let header_timeout = cli
            .header_timeout_secs
            .or(file.header_timeout_secs)
            .unwrap_or(30);
        let body_timeout = cli
            .body_timeout_secs
            .or(file.body_timeout_secs)
            .unwrap_or(30);
        if !(1..=600).contains(&header_timeout) || !(1..=600).contains(&body_timeout) {
            return Err(ConfigError::Invalid(
                "header_timeout_secs and body_timeout_secs must be 1 to 600".into(),
            ));
        }
        Ok(Config {
            platform_fee_bps,
            node_payout_threshold_msat,
            header_timeout: Duration::from_secs(header_timeout),
            body_timeout: Duration::from_secs(body_timeout),
            canaries: cli.canaries.or(file.canaries),
            canaries_per_hour,
            redundancy,
            lightning,
            lightning_network,
            breez_api_key,
            breez_seed_file: cli.breez_seed_file.or(file.breez_seed_file),
            breez_python: cli
                .breez_python
                .or(file.breez_python)
                .unwrap_or_else(|| PathBuf::from("python3")),
            lightning_reconcile: Duration::from_secs(reconcile),
            command: cli.command,
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: cli
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(".data/server")),
            db,
            db_user: cli.db_user.or(file.db_user),
            db_pass: cli.db_pass.or(file.db_pass),
            db_namespace: cli
                .db_namespace
                .or(file.db_namespace)
                .unwrap_or_else(|| "infernet".into()),
            db_database: cli
                .db_database
                .or(file.db_database)
                .unwrap_or_else(|| "main".into()),
            p2p_port: cli.p2p_port.or(file.p2p_port).unwrap_or(4001),
            p2p_host: cli
                .p2p_host
                .or(file.p2p_host)
                .unwrap_or_else(|| IpAddr::from([0, 0, 0, 0])),
            site_root: cli
                .site_root
                .or(file.site_root)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SITE_ROOT)),
            job_timeout: Duration::from_secs(timeout),
            first_output: Duration::from_secs(first_output),
            job_rates,
            p2p_reachability,
            p2p_external_addrs,
            node_retention: Duration::from_secs(retention),
            public_url: cli.public_url.or(file.public_url),
            local_key_file: cli.local_key_file.or(file.local_key_file),
            metrics_addr: cli.metrics_addr.or(file.metrics_addr),
            allow_private_webhooks: cli.allow_private_webhooks
                || file.allow_private_webhooks.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir =
            std::env::temp_dir().join(format!("infernet-server-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("server.toml");
        std::fs::write(&file, "p2p_port = 5000\njob_timeout_secs = 9\n").unwrap();
        let cli = Cli {
            config: Some(file),
            p2p_port: Some(6000),
            ..Default::default()
        };
        let c = Config::resolve(cli).unwrap();
        assert_eq!(c.p2p_port, 6000);
        assert_eq!(c.job_timeout, Duration::from_secs(9));
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        let dir =
            std::env::temp_dir().join(format!("infernet-server-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("server.toml");
        std::fs::write(&file, "p2p_prot = 5000\n").unwrap();
        let cli = Cli {
            config: Some(file),
            ..Default::default()
        };
        assert!(matches!(
            Config::resolve(cli),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn db_url_must_name_a_known_scheme() {
        let cli = Cli {
            db: Some("mysql://x".into()),
            ..Default::default()
        };
        assert!(matches!(Config::resolve(cli), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn password_is_redacted_in_debug_output() {
        let cli = Cli {
            db_pass: Some("hunter2".into()),
            ..Default::default()
        };
        let c = Config::resolve(cli).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}

/// How many jobs may be submitted a minute, and at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRates {
    pub per_account: u32,
    pub per_ip: u32,
}

impl Default for JobRates {
    fn default() -> Self {
        JobRates {
            per_account: 600,
            per_ip: 1200,
        }
    }
}

//! Building the parts, binding the listeners, serving until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::backend::BackendHandle;
use axum::http::{header, Method};
use axum::routing::get;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use wire::api::{ErrorBody, NetworkInfo};

use crate::db::{Db, DbConfig, DbError};
use crate::registry::Registry;
use crate::{
    accounts, enrolment, fleet, jobs, ledger, network, openai, openapi, payouts, registry, topups,
    AppState, Config,
};

/// No request body anywhere may be larger than this; routes set lower limits.
const MAX_ANY_BODY: usize = 2 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("could not create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Identity(#[from] p2p::identity::IdentityError),
    #[error("could not open the database: {0}")]
    Db(#[from] DbError),
    #[error("could not read the registry: {0}")]
    Registry(String),
    #[error("could not start the libp2p peer: {0}")]
    Network(#[from] p2p::NetworkError),
    #[error("could not listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Site(#[from] accounts::SiteError),
    #[error(transparent)]
    LocalKey(#[from] accounts::LocalKeyError),
    #[error(transparent)]
    Lightning(#[from] crate::lightning::LightningStartError),
    #[error("canaries: {0}")]
    Canaries(String),
    #[error("the OpenAPI document: {0}")]
    OpenApi(#[from] serde_json::Error),
}

pub struct Application {
    listener: TcpListener,
    metrics_addr: Option<SocketAddr>,
    router: Router,
    network_info: NetworkInfo,
    public_url: String,
    /// What it keeps in memory is written out when the server stops.
    registry: Registry,
    /// How long a client may take to send a request.
    cutoffs: crate::listen::Cutoffs,
    /// Keeps the swarm's event loop alive as long as the server runs.
    _network: p2p::Client,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartupError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        // Bound first: the public URL's default names the port.
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartupError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let listen_addr = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: config.listen,
                source,
            })?;
        let site = accounts::Site::new(config.public_url.as_deref(), listen_addr)?;
        let canaries = match &config.canaries {
            Some(path) => crate::verify::read_canaries(path).map_err(StartupError::Canaries)?,
            None => Vec::new(),
        };
        let keypair = p2p::identity::load_or_create(&config.data_dir.join("server.key"))?;

        let db_url = config
            .db
            .clone()
            .unwrap_or_else(|| format!("surrealkv://{}", config.data_dir.join("db").display()));
        let db = Db::connect(&DbConfig {
            url: db_url,
            namespace: config.db_namespace.clone(),
            database: config.db_database.clone(),
            credentials: config.db_user.clone().zip(config.db_pass.clone()),
        })
        .await?;

        let mut p2p_config = p2p::Config::new(
            p2p::Config::listen_on(config.p2p_host, config.p2p_port),
            format!("infernet-server/{}", wire::VERSION),
        );
        p2p_config.request_timeout = config.job_timeout;
        p2p_config.reachability = config.p2p_reachability;
        p2p_config.external_addrs = config.p2p_external_addrs.clone();
        // The server is the network's seed: it relays for nodes that
        // cannot be dialled.
        p2p_config.relay_server = true;
        let (network, _inbound, event_loop) = p2p::start(keypair.clone(), p2p_config).await?;
        tokio::spawn(event_loop.run());
        let peer_id = network.local_peer_id();
        let multiaddrs = network
            .listen_addrs()
            .await?
            .into_iter()
            .map(|a| a.with(p2p::Protocol::P2p(peer_id)).to_string())
            .collect();
        let mut network_info = NetworkInfo {
            peer_id: peer_id.into(),
            multiaddrs,
            version: wire::VERSION.to_owned(),
            verification: None,
        };

        let registry = Registry::open(db.clone(), peer_id.into())
            .await
            .map_err(|e| StartupError::Registry(e.to_string()))?;
        tokio::spawn(registry.reputations().clone().keep_forever());
        tokio::spawn(registry.clone().write_beats_forever());
        // Other servers may share a remote database: follow their writes.
        if config.db.is_some() {
            tokio::spawn(registry.clone().follow_others(Duration::from_secs(2)));
        }
        tokio::spawn(
            registry
                .clone()
                .follow_network(network.clone(), config.node_retention),
        );
        tokio::spawn(registry.clone().reach_forever(network.clone()));
        let enrolments = enrolment::Enrolments::new(db.clone(), peer_id.into());
        let lightning = crate::lightning::start(&config).await?;
        let ledger = ledger::Ledger::new(
            db.clone(),
            config.platform_fee_bps,
            lightning.backend.is_some(),
        )
        .on_network(match config.lightning {
            // The test stand-in issues regtest invoices.
            crate::config::LightningBackend::Test => "regtest",
            _ => &config.lightning_network,
        });
        let topups = topups::Topups::new(db.clone(), ledger.clone(), lightning.backend.clone());
        tokio::spawn(topups.clone().follow(config.lightning_reconcile));
        let payouts = payouts::Payouts::new(db.clone(), ledger.clone(), lightning.backend.clone())
            .paying_nodes(
                registry.clone(),
                wire::MilliSats(config.node_payout_threshold_msat),
            );
        tokio::spawn(payouts.clone().follow(config.lightning_reconcile));
        let admin = crate::admin::Admin {
            ledger: ledger.clone(),
            enrolments: enrolments.clone(),
            test_lightning: lightning.test.clone(),
        };
        crate::admin::serve(&config.data_dir, admin).map_err(|source| StartupError::DataDir {
            path: config
                .data_dir
                .join(crate::admin::SOCKET)
                .display()
                .to_string(),
            source,
        })?;
        let public_url = site.origin().to_owned();
        let accounts = accounts::Accounts::new(db.clone(), site, accounts::Limits::standard())?;
        // Canaries and second opinions: nodes that answer wrong are
        // caught and banned.
        let verifier = crate::verify::Verifier::new(
            crate::verify::Settings {
                canaries,
                canaries_per_hour: config.canaries_per_hour,
                redundancy: config.redundancy,
            },
            crate::verify::Parts {
                network: network.clone(),
                registry: registry.clone(),
                ledger: ledger.clone(),
                enrolments: enrolments.clone(),
                jobs: jobs::JobStore::new(db.clone()),
                keypair,
                timeout: config.job_timeout,
            },
        );
        network_info.verification = Some(verifier.published());
        tokio::spawn(verifier.clone().canaries_forever());
        let jobs = jobs::Jobs::new(
            db.clone(),
            registry.clone(),
            network.clone(),
            jobs::Pace {
                timeout: config.job_timeout,
                first_output: config.first_output,
                rates: config.job_rates,
            },
            ledger.clone(),
            enrolments.clone(),
            accounts.clone(),
        )
        .checked_by(verifier);
        // Enrolled nodes' fleet links: telemetry up, commands down.
        let webhooks = fleet::Webhooks::load(&config.data_dir, config.allow_private_webhooks)
            .map_err(|source| StartupError::DataDir {
                path: config.data_dir.join("webhook.key").display().to_string(),
                source,
            })?;
        let fleet = fleet::Fleet::new(
            db.clone(),
            enrolments.clone(),
            registry.clone(),
            jobs.clone(),
            ledger.clone(),
            webhooks,
        );
        fleet.start(&network)?;
        if let Some(path) = &config.local_key_file {
            let account = accounts.ensure_local_key(path).await?;
            tracing::info!(%account, path = %path.display(), "local account's API key is ready");
        }
        tokio::spawn(accounts.clone().sweep_forever());
        // Jobs left dispatched by an earlier run (or whose end could not be
        // written) are failed once they are surely over.
        tokio::spawn(
            jobs.clone().reconcile_forever(
                config
                    .job_timeout
                    .clamp(Duration::from_secs(5), Duration::from_secs(60)),
            ),
        );
        let state = AppState(Arc::new(crate::Services {
            jobs,
            ledger,
            topups,
            payouts,
            registry,
            accounts,
            enrolments,
            fleet,
            network_info: network_info.clone(),
            leptos: LeptosOptions::builder()
                .output_name("app")
                .site_root(config.site_root.display().to_string())
                .site_pkg_dir(crate::site::pkg_dir(&config.site_root))
                .site_addr(listen_addr)
                .build(),
        }));
        let metrics_addr = match config.metrics_addr {
            Some(addr) => Some(
                crate::metrics::serve(addr, state.clone())
                    .await
                    .map_err(|source| StartupError::Listen { addr, source })?,
            ),
            None => None,
        };
        let registry = state.registry.clone();
        Ok(Application {
            listener,
            metrics_addr,
            registry,
            cutoffs: crate::listen::Cutoffs {
                header_read: config.header_timeout,
                body_read: config.body_timeout,
            },
            router: router(state)?,
            network_info,
            public_url,
            _network: network,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Where `/metrics` is served, with `--metrics-addr`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn network_info(&self) -> &NetworkInfo {
        &self.network_info
    }

    /// The site's origin as browsers reach it (`--public-url`).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests
    /// finish and writes what the registry keeps in memory (the latest
    /// heartbeats, the nodes' evidence).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let served = crate::listen::serve(self.listener, self.router, self.cutoffs, shutdown).await;
        self.registry.flush().await;
        served
    }
}

/// The BIP39 word list for the browser wallet's backup words (public; the
/// same for everyone, for ever).
async fn bip39_words() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        payments::breez::bip39_english(),
    )
}

async fn api_not_found() -> (axum::http::StatusCode, axum::Json<ErrorBody>) {
    (
        axum::http::StatusCode::NOT_FOUND,
        axum::Json(ErrorBody::new("not_found", "no such endpoint")),
    )
}

/// The outer body limit answers in plain text; give it our JSON error shape.
async fn json_body_limit_error(response: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        let body = ErrorBody::new(
            "body_too_large",
            format!("request bodies are limited to {MAX_ANY_BODY} bytes"),
        );
        return (axum::http::StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
    }
    response
}

/// Every route, with the layers that apply to all of them.
fn router(state: AppState) -> Result<Router, StartupError> {
    use utoipa::OpenApi;
    use utoipa_axum::router::OpenApiRouter;

    let api = OpenApiRouter::new()
        .merge(registry::api_router())
        .merge(jobs::router())
        .merge(network::router())
        .merge(accounts::router())
        .merge(enrolment::router())
        .merge(ledger::router())
        .merge(topups::router())
        .merge(payouts::router())
        .merge(fleet::router())
        .fallback(api_not_found);
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            header::AUTHORIZATION,
        ])
        .expose_headers([header::ETAG]);
    let (api_routes, openapi) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", api)
        .merge(registry::public_router())
        .merge(openai::router())
        .routes(utoipa_axum::routes!(network::healthz))
        .split_for_parts();
    let document = openapi::Document::new(&openapi)?;
    let api_routes = api_routes
        .route(
            "/openapi.json",
            get(move || std::future::ready(document.response())),
        )
        .route("/wallet/bip39-english.txt", get(bip39_words))
        .layer(cors)
        .with_state(state.clone());

    let options = state.leptos.clone();
    // The app's build output (wasm, JS, CSS) and the wallet's vendored SDK:
    // served as the build precompressed them (brotli, gzip), whichever the
    // browser takes. A build's own folder is immutable (see `site`); the
    // rest is revalidated by Last-Modified.
    let site_root = std::path::PathBuf::from(options.site_root.as_ref());
    let files = |dir: &str| {
        ServeDir::new(site_root.join(dir))
            .precompressed_br()
            .precompressed_gzip()
    };
    let static_routes = Router::new()
        .nest(
            "/pkg",
            Router::new()
                .fallback_service(files("pkg"))
                .layer(axum::middleware::from_fn(crate::site::pkg_caching)),
        )
        .nest(
            "/vendor",
            Router::new().fallback_service(files("vendor")).layer(
                SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    crate::site::revalidate(),
                ),
            ),
        );
    let backend = BackendHandle(Arc::new(state.clone()));
    let context = move || {
        provide_context(backend.clone());
        // The app sets no Content-Security-Policy, so it needs no nonce:
        // Leptos's per-request one (written into its preload links) would
        // only make every page differ from the last, never revalidated.
        provide_context(leptos::nonce::Nonce::from_value(""));
    };
    let routes = generate_route_list(app::App);
    let web = Router::new()
        .leptos_routes_with_context(&options, routes, context.clone(), {
            let options = options.clone();
            move || app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            LeptosOptions,
            _,
        >(context, app::shell))
        .with_state(options);

    Ok(api_routes
        .merge(static_routes)
        .merge(web)
        // HTML and JSON answers get validators (before they are compressed).
        .layer(axum::middleware::from_fn(
            crate::validators::conditional_get,
        ))
        // HTML and API answers compressed as the client asks (server-sent
        // events and precompressed files are left alone).
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            state,
            accounts::authenticate,
        ))
        .layer(RequestBodyLimitLayer::new(MAX_ANY_BODY))
        .layer(axum::middleware::map_response(json_body_limit_error))
        .layer(TraceLayer::new_for_http()))
}

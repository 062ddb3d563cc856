use std::process::ExitCode;

use server::{Application, Config};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: the registry's ingestion and the
/// database allocate many small short-lived values on every thread, where
/// glibc's per-thread arenas fragment (a quarter of the server's time went
/// to malloc, free and consolidation at 100 000 nodes) and hold memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("INFERNET_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(server::Command::Healthcheck) = config.command {
        return match server::probe_health(config.listen, std::time::Duration::from_secs(3)).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(server::Command::Admin { command }) = config.command.clone() {
        return match server::admin::client(&config.data_dir, command).await {
            Ok(answer) => {
                #[allow(clippy::print_stdout)]
                {
                    println!("{answer}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        };
    }
    tracing::info!(?config, "starting");
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    // One machine-readable line on stdout: scripts and tests wait for it.
    let ready = serde_json::json!({
        "event": "ready",
        "http": format!("http://{}", app.http_addr()),
        "public_url": app.public_url(),
        "peer_id": app.network_info().peer_id,
        "p2p": app.network_info().multiaddrs,
        "metrics": app.metrics_addr().map(|a| format!("http://{a}/metrics")),
    });
    #[allow(clippy::print_stdout)]
    {
        println!("{ready}");
    }
    tracing::info!(url = %format!("http://{}", app.http_addr()), "serving");
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

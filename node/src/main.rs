use std::process::ExitCode;

use node::{Config, NodeError};
use tracing_subscriber::EnvFilter;

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
    tracing::info!(?config, "starting");
    if let Some((out, count, seed)) = config.make_canaries.clone() {
        return match node::canaries::make(&config, &out, count, seed).await {
            Ok(sets) => {
                let done = serde_json::json!({"event": "canaries", "file": out, "sets": sets});
                #[allow(clippy::print_stdout)]
                {
                    println!("{done}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    if config.fetch_only {
        return match node::fetch_only(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(match e {
                    NodeError::Fetch(node::distribute::DistributeError::NoProvider(_)) => 3,
                    NodeError::Fetch(_) => 4,
                    _ => 1,
                })
            }
        };
    }
    let running = match node::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(match e {
                NodeError::NoModels(_) | NodeError::Engine(_) | NodeError::Identity(_) => 2,
                NodeError::Enrol(_) => 5,
                _ => 1,
            });
        }
    };
    let ready = serde_json::json!({
        "event": "ready",
        "peer_id": running.node_id(),
        "p2p": running.p2p_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "models": running.models.iter().map(|m| &m.name).collect::<Vec<_>>(),
        "devices": running.models.iter().map(|m| &m.device).collect::<Vec<_>>(),
        "gpus": running.hardware.gpus,
        "enrolled": running.pin,
        "metrics": running.metrics_addr.map(|a| format!("http://{a}/metrics")),
    });
    #[allow(clippy::print_stdout)]
    {
        println!("{ready}");
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop();
    ExitCode::SUCCESS
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
}

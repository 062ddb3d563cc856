//! `GET /metrics` for Prometheus, on `--metrics-addr` (off unless given):
//! a listener of its own, so that it is reachable only where the operator
//! binds it (e.g. loopback, or the monitoring network), never on the
//! public site. Nodes in the registry, open fleet links, telemetry frames
//! and commands, jobs by status, event-stream subscribers.

use std::fmt::Write;
use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use wire::UnixMillis;

use crate::AppState;

/// Listens on `addr` and serves `/metrics` while the server runs.
pub(crate) async fn serve(addr: SocketAddr, state: AppState) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route("/metrics", get(scrape))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(bound)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let (nodes, online) = state.registry.counts(UnixMillis::now());
    let jobs = state.jobs.count_by_status().await.unwrap_or_default();
    let fleet = state.fleet.counters();
    let mut out = String::new();
    family(
        &mut out,
        "infernet_server_nodes",
        "gauge",
        "Nodes in the registry.",
        &[
            (r#"{status="online"}"#, online as u64),
            (r#"{status="offline"}"#, (nodes - online) as u64),
        ],
    );
    family(
        &mut out,
        "infernet_server_fleet_links_open",
        "gauge",
        "Enrolled nodes whose fleet link is open.",
        &[("", fleet.links_open)],
    );
    family(
        &mut out,
        "infernet_server_telemetry_frames_total",
        "counter",
        "Telemetry frames received since the server started.",
        &[("", fleet.frames)],
    );
    family(
        &mut out,
        "infernet_server_fleet_commands_total",
        "counter",
        "Fleet commands accepted since the server started.",
        &[("", fleet.commands)],
    );
    family(
        &mut out,
        "infernet_server_fleet_event_subscribers",
        "gauge",
        "Open fleet event streams (app pages, API clients).",
        &[("", fleet.subscribers)],
    );
    let by_status: Vec<(String, u64)> = jobs
        .iter()
        .map(|(s, n)| (format!("{{status=\"{s}\"}}"), *n))
        .collect();
    let samples: Vec<(&str, u64)> = by_status.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    family(
        &mut out,
        "infernet_server_jobs",
        "gauge",
        "Job records by status.",
        &samples,
    );
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

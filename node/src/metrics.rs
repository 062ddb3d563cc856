//! `GET /metrics` for Prometheus, on `--metrics-addr` (off unless given;
//! bind it to an address only the operator's Prometheus reaches). GPU
//! gauges carry the names and labels of NVIDIA's DCGM exporter, so that
//! existing Grafana dashboards read them; the rest are `infernet_node_*`.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::Mutex;
use wire::fleet::{AdmissionState, ReachabilityKind, Telemetry};

use crate::telemetry::{NodeState, Sampler};

struct Metrics {
    state: NodeState,
    node_id: String,
    sampler: Mutex<Sampler>,
}

/// Listens on `addr` and serves `/metrics` until the node stops.
pub async fn serve(
    addr: SocketAddr,
    state: NodeState,
    node_id: String,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let metrics = Arc::new(Metrics {
        state,
        node_id,
        sampler: Mutex::new(Sampler::new()),
    });
    let router = Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok((bound, task))
}

async fn scrape(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let t = {
        let mut sampler = m.sampler.lock().await;
        m.state.telemetry(&mut sampler).await
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&t, &m.node_id),
    )
}

/// One gauge family: its help, its type, and its samples.
fn family(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// A label value, escaped as the exposition format wants.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of `t`.
pub fn render(t: &Telemetry, node_id: &str) -> String {
    let mut out = String::new();
    let gpu = |f: &dyn Fn(&wire::fleet::GpuTelemetry) -> f64| -> Vec<(String, f64)> {
        t.gpus
            .iter()
            .map(|g| {
                (
                    format!(
                        "{{gpu=\"{}\",modelName=\"{}\",node=\"{}\"}}",
                        g.index,
                        esc(&g.name),
                        esc(node_id)
                    ),
                    f(g),
                )
            })
            .collect()
    };
    family(
        &mut out,
        "DCGM_FI_DEV_GPU_UTIL",
        "GPU utilization (in %).",
        &gpu(&|g| f64::from(g.util_pct)),
    );
    family(
        &mut out,
        "DCGM_FI_DEV_FB_USED",
        "Framebuffer memory used (in MiB).",
        &gpu(&|g| g.mem_used_mib as f64),
    );
    family(
        &mut out,
        "DCGM_FI_DEV_FB_FREE",
        "Framebuffer memory free (in MiB).",
        &gpu(&|g| g.mem_total_mib.saturating_sub(g.mem_used_mib) as f64),
    );
    family(
        &mut out,
        "DCGM_FI_DEV_GPU_TEMP",
        "GPU temperature (in C).",
        &gpu(&|g| f64::from(g.temp_c)),
    );
    family(
        &mut out,
        "DCGM_FI_DEV_POWER_USAGE",
        "Power draw (in W).",
        &gpu(&|g| f64::from(g.power_w)),
    );
    let node = format!("{{node=\"{}\"}}", esc(node_id));
    let one = |v: f64| vec![(node.clone(), v)];
    family(
        &mut out,
        "infernet_node_cpu_percent",
        "CPU use, all cores together (in %).",
        &one(f64::from(t.cpu_pct)),
    );
    family(
        &mut out,
        "infernet_node_ram_used_mib",
        "RAM used (in MiB).",
        &one(t.ram_used_mib as f64),
    );
    family(
        &mut out,
        "infernet_node_ram_total_mib",
        "RAM in all (in MiB).",
        &one(t.ram_total_mib as f64),
    );
    family(
        &mut out,
        "infernet_node_jobs_running",
        "Jobs the node holds now, queued ones included.",
        &one(f64::from(t.running_jobs)),
    );
    family(
        &mut out,
        "infernet_node_jobs_queued",
        "Jobs waiting for a worker.",
        &one(f64::from(t.queued_jobs)),
    );
    family(
        &mut out,
        "infernet_node_models_loaded",
        "Models loaded in memory.",
        &one(t.loaded_models.len() as f64),
    );
    family(
        &mut out,
        "infernet_node_accepting_jobs",
        "1 while the node takes new jobs (not paused or draining).",
        &one(if t.admission == AdmissionState::Open {
            1.0
        } else {
            0.0
        }),
    );
    let reach = match t.reachability.kind {
        ReachabilityKind::Public => 2.0,
        ReachabilityKind::Relayed => 1.0,
        ReachabilityKind::Unreachable => 0.0,
        ReachabilityKind::Unknown => -1.0,
    };
    family(
        &mut out,
        "infernet_node_reachability",
        "2 public, 1 relayed, 0 unreachable, -1 not known yet.",
        &one(reach),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::fleet::{GpuTelemetry, Reachability};

    #[test]
    fn gpus_read_as_dcgm_names_them_and_labels_are_escaped() {
        let t = Telemetry {
            at: wire::UnixMillis(0),
            gpus: vec![GpuTelemetry {
                index: 0,
                name: "NVIDIA \"H100\"".into(),
                util_pct: 35.0,
                mem_used_mib: 1000,
                mem_total_mib: 81_000,
                temp_c: 61.0,
                power_w: 250.5,
            }],
            cpu_pct: 12.5,
            ram_used_mib: 2048,
            ram_total_mib: 8192,
            queued_jobs: 1,
            running_jobs: 3,
            loaded_models: vec!["m".into()],
            downloads: vec![],
            admission: AdmissionState::Paused,
            reachability: Reachability {
                kind: ReachabilityKind::Relayed,
                reason: None,
            },
            version: "0".into(),
            interval_ms: 5000,
            time_zone: None,
            schedule: None,
            schedule_status: None,
            pools: Vec::new(),
        };
        let text = render(&t, "12D3Koo");
        for line in [
            "# TYPE DCGM_FI_DEV_GPU_UTIL gauge",
            r#"DCGM_FI_DEV_GPU_UTIL{gpu="0",modelName="NVIDIA \"H100\"",node="12D3Koo"} 35"#,
            r#"DCGM_FI_DEV_FB_FREE{gpu="0",modelName="NVIDIA \"H100\"",node="12D3Koo"} 80000"#,
            r#"DCGM_FI_DEV_POWER_USAGE{gpu="0",modelName="NVIDIA \"H100\"",node="12D3Koo"} 250.5"#,
            r#"infernet_node_jobs_running{node="12D3Koo"} 3"#,
            r#"infernet_node_accepting_jobs{node="12D3Koo"} 0"#,
            r#"infernet_node_reachability{node="12D3Koo"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}

//! What a fleet costs the server: `--nodes` simulated nodes (real libp2p
//! peers in this process, enrolled through the real API with a token from
//! `server admin enrol-token`) keep fleet links to a real server process
//! and send telemetry (four GPUs each) every `--interval-ms` for `--secs`.
//!
//! Printed, all from the same run:
//! - telemetry → screen: from the node's clock when it measured to the
//!   moment the operator's server-sent event is read (one machine, one
//!   clock), p50 and p99;
//! - the server process's CPU (user + system, from /proc) while the links
//!   are open but silent (the baseline) and while they stream;
//! - the database's growth per frame, and so per node per day at the
//!   default 5 s interval.
//!
//! `cargo bench -p server --bench fleet` (release: 100 nodes, 1 s, 30 s) or,
//! as a quick smoke, `cargo bench --profile dev -p server --bench fleet --
//! --nodes 10 --secs 3`.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::bench::{arg, p50_p99_ms};
use wire::accounts::Enrolment;
use wire::fleet::{
    AdmissionState, GpuTelemetry, NodeFrame, Reachability, ReachabilityKind, ServerFrame, Telemetry,
};
use wire::{NodeId, SignedEnvelope, UnixMillis};

mod common;
use common::{start_server, Server};

/// The server's peer id and its TCP address, from its ready line.
fn p2p_of(server: &Server) -> (p2p::PeerId, p2p::Multiaddr) {
    let peer = server.ready["peer_id"].as_str().unwrap().parse().unwrap();
    let tcp = server.ready["p2p"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .find(|a| a.contains("/tcp/"))
        .unwrap()
        .parse()
        .unwrap();
    (peer, tcp)
}

/// The server process's CPU time so far (user + system).
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 1000 / clock_ticks())
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|hz: &u64| *hz > 0)
        .unwrap_or(100)
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn telemetry(interval_ms: u32) -> Telemetry {
    Telemetry {
        at: UnixMillis::now(),
        gpus: (0..4)
            .map(|i| GpuTelemetry {
                index: i,
                name: "NVIDIA GeForce RTX 4090".into(),
                util_pct: 40.0 + i as f32,
                mem_used_mib: 12_000,
                mem_total_mib: 24_564,
                temp_c: 61.0,
                power_w: 280.5,
            })
            .collect(),
        cpu_pct: 23.5,
        ram_used_mib: 30_000,
        ram_total_mib: 64_000,
        queued_jobs: 1,
        running_jobs: 4,
        loaded_models: vec!["llama-3-8b".into(), "all-minilm-l6-v2".into()],
        downloads: Vec::new(),
        admission: AdmissionState::Open,
        reachability: Reachability {
            kind: ReachabilityKind::Relayed,
            reason: None,
        },
        version: wire::VERSION.into(),
        interval_ms,
        time_zone: None,
        schedule: None,
        schedule_status: None,
        pools: Vec::new(),
    }
}

#[tokio::main]
async fn main() {
    let nodes = arg("--nodes", 100).max(1);
    let interval = Duration::from_millis(arg("--interval-ms", 1000).max(100) as u64);
    let secs = arg("--secs", 30).max(1) as u64;
    let dir = std::env::temp_dir().join(format!("infernet-bench-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "fleet: {nodes} nodes, telemetry every {} ms for {secs} s, against the server binary ({})",
        interval.as_millis(),
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        }
    );
    let server = start_server(&dir, &[]);
    let (server_peer, server_tcp) = p2p_of(&server);
    let http = reqwest::Client::new();
    let auth = format!("Bearer {}", server.key);
    let me: serde_json::Value = http
        .get(format!("{}/api/v1/account", server.http))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("--data-dir")
        .arg(&server.data)
        .args([
            "admin",
            "enrol-token",
            me["id"].as_str().unwrap(),
            "--reusable",
        ])
        .output()
        .unwrap();
    let token: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a token");
    let token = token["secret"].as_str().unwrap().to_owned();

    // The operator's event stream: every telemetry event's delay.
    let delays = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut events = http
        .get(format!("{}/api/v1/fleet/events", server.http))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    let seen = delays.clone();
    let counting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counting_events = counting.clone();
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = events.chunk().await {
            let now = UnixMillis::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
                    continue;
                };
                if v["type"] == "telemetry"
                    && counting_events.load(std::sync::atomic::Ordering::Relaxed)
                {
                    let at = v["telemetry"]["at"].as_u64().unwrap_or(now.0);
                    seen.lock()
                        .unwrap()
                        .push(Duration::from_millis(now.0.saturating_sub(at)));
                }
            }
        }
    });

    // The nodes: each a libp2p peer, enrolled, with its fleet link open.
    let mut writers = Vec::with_capacity(nodes);
    let mut keep = Vec::with_capacity(nodes);
    for _ in 0..nodes {
        let keypair = p2p::Keypair::generate_ed25519();
        let node = NodeId::from(keypair.public().to_peer_id());
        let enrolment = Enrolment {
            node_id: node,
            server: server_peer.into(),
            token: token.clone(),
            timestamp: UnixMillis::now(),
        };
        let r = http
            .post(format!("{}/api/v1/enrolments", server.http))
            .json(&SignedEnvelope::seal(&keypair, &enrolment).unwrap())
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "enrolment: {}",
            r.text().await.unwrap()
        );
        let mut config = p2p::Config::new(Vec::new(), "bench-node");
        config.reachability = p2p::Reachability::Client;
        let (network, _inbound, event_loop) = p2p::start(keypair, config).await.unwrap();
        keep.push(tokio::spawn(event_loop.run()));
        network
            .dial(server_tcp.clone().with(p2p::Protocol::P2p(server_peer)))
            .await
            .unwrap();
        let link = network.open_fleet_link(server_peer).await.unwrap();
        let (reader, mut writer) = link.split::<ServerFrame, NodeFrame>();
        // One frame to come online, promising a long silence: the baseline.
        writer
            .send(&NodeFrame::Telemetry(Box::new(telemetry(3_600_000))))
            .await
            .unwrap();
        writers.push((writer, reader, network));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let pid = server.child.id();
    let idle_from = cpu(pid);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let idle = cpu(pid) - idle_from;

    let db = server.data.join("db");
    let bytes_before = dir_bytes(&db);
    counting.store(true, std::sync::atomic::Ordering::Relaxed);
    let busy_from = cpu(pid);
    let started = Instant::now();
    let frames = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    let stagger = interval / nodes as u32;
    for (i, (mut writer, reader, network)) in writers.into_iter().enumerate() {
        let frames = frames.clone();
        tasks.push(tokio::spawn(async move {
            let _keep = (reader, network);
            tokio::time::sleep(stagger * i as u32).await;
            let mut tick = tokio::time::interval(interval);
            let until = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < until {
                tick.tick().await;
                let t = telemetry(u32::try_from(interval.as_millis()).unwrap_or(u32::MAX));
                if writer
                    .send(&NodeFrame::Telemetry(Box::new(t)))
                    .await
                    .is_err()
                {
                    return;
                }
                frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let streamed = started.elapsed();
    let busy = cpu(pid) - busy_from;
    // Let the last frames reach the database and the stream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bytes_after = dir_bytes(&db);
    let frames = frames.load(std::sync::atomic::Ordering::Relaxed).max(1);

    let delays = delays.lock().unwrap().clone();
    let got = delays.len();
    let (p50, p99) = p50_p99_ms(delays);
    let share = |d: Duration, over: Duration| d.as_secs_f64() / over.as_secs_f64() * 100.0;
    println!("  telemetry → operator's event stream: p50 {p50:7.2} ms  p99 {p99:7.2} ms  ({got} of {frames} frames seen)");
    println!(
        "  server CPU, links open and silent (baseline): {:6.1} % of one core",
        share(idle, Duration::from_secs(secs))
    );
    println!(
        "  server CPU, {nodes} nodes streaming:          {:6.1} % of one core  ({:.0} frames/s; +{:.1} points over the baseline)",
        share(busy, streamed),
        frames as f64 / streamed.as_secs_f64(),
        share(busy, streamed) - share(idle, Duration::from_secs(secs))
    );
    let per_frame = bytes_after.saturating_sub(bytes_before) as f64 / frames as f64;
    println!(
        "  database growth: {per_frame:.0} bytes per frame → {:.1} MB per node per day at the default 5 s (kept a day; then 288 five-minute means a day, kept 30 days)",
        per_frame * (86_400.0 / 5.0) / 1e6
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

//! The registry at scale: a real server process, `--nodes` nodes
//! registered through the real API (each a signed `Registration` from its
//! own key, as a node sends it), then a signed heartbeat from each, then
//! `GET /nodes` under load.
//!
//! Printed, all from the same run:
//! - registrations and heartbeats taken per second (`--clients` at once);
//! - `GET /nodes?limit=50`, filtered (a model, online, a page after a
//!   cursor): req/s and p50/p99 from `--clients` keep-alive clients in this
//!   process; with `wrk` installed (Debian's package), the same query and
//!   `/healthz` (the HTTP stack alone: the baseline) through `wrk`;
//! - the server's resident memory before the nodes and after them;
//! - a job's choice of node among them: the time `POST /api/v1/jobs`
//!   takes to refuse a price no node meets, against `/healthz`;
//! - heartbeats' writes, in process: logged, and folded into the nodes'
//!   `live` rows, against rewriting their whole rows (the baseline).
//!
//! `cargo bench -p server --bench registry` (release: 100 000 nodes) or, as
//! a quick smoke, `cargo bench --profile dev -p server --bench registry --
//! --nodes 300 --secs 1`. `--db ws://…` runs the server against a remote
//! SurrealDB.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::bench::{arg, p50_p99_ms};
use testkit::fixtures::{hardware, offer};
use wire::registry::{Heartbeat, Registration, Task};
use wire::{NodeId, SignedEnvelope, UnixMillis};

mod common;
use common::start_server;

/// CPU time `pid` has used (user and system), in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's closing parenthesis: fields 3 onwards; utime
    // and stime are fields 14 and 15, in clock ticks (100 a second).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Runs `work(i)` for i in 0..n on `clients` threads; the rate per second.
fn in_parallel(
    n: usize,
    clients: usize,
    work: impl Fn(&reqwest::blocking::Client, usize) + Sync,
) -> f64 {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let client = reqwest::blocking::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    work(&client, i);
                }
            });
        }
    });
    n as f64 / started.elapsed().as_secs_f64()
}

/// Requests to `url` from `clients` threads for `secs`: req/s and latencies.
fn load(url: &str, clients: usize, secs: u64, key: Option<&str>) -> (f64, Vec<Duration>) {
    load_each(|_| url.to_owned(), clients, secs, key)
}

/// [`load`], the `n`th request of all to `url(n)`.
fn load_each(
    url: impl Fn(usize) -> String + Sync,
    clients: usize,
    secs: u64,
    key: Option<&str>,
) -> (f64, Vec<Duration>) {
    let count = AtomicUsize::new(0);
    let until = Instant::now() + Duration::from_secs(secs);
    let samples = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let client = reqwest::blocking::Client::new();
                let mut mine = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    let mut req = client.get(url(count.fetch_add(1, Ordering::Relaxed)));
                    if let Some(key) = key {
                        req = req.bearer_auth(key);
                    }
                    let r = req.send().unwrap();
                    let _ = r.bytes().unwrap();
                    mine.push(t.elapsed());
                }
                samples.lock().unwrap().extend(mine);
            });
        }
    });
    let samples = samples.into_inner().unwrap();
    (
        samples.len() as f64 / started.elapsed().as_secs_f64(),
        samples,
    )
}

/// What one `wrk` run printed.
struct WrkRun {
    rate: f64,
    /// Requests sent.
    sent: u64,
    /// Answers other than 2xx or 3xx.
    refused: u64,
    /// The `99%` line of `--latency` (empty without it).
    p99: String,
}

impl WrkRun {
    fn parse(text: &str) -> Option<WrkRun> {
        let field = |prefix: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .map(|v| v.trim().to_owned())
        };
        Some(WrkRun {
            rate: field("Requests/sec:")?.parse().ok()?,
            sent: text
                .lines()
                .find(|l| l.contains("requests in"))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            refused: field("Non-2xx or 3xx responses:")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            p99: text
                .lines()
                .find(|l| l.trim_start().starts_with("99%"))
                .map(|l| l.trim().to_owned())
                .unwrap_or_default(),
        })
    }
}

/// `wrk` against `url`, if it is installed: its req/s and its p99 line.
fn wrk(url: &str, clients: usize, secs: u64) -> Option<(f64, String)> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{clients}"),
            &format!("-d{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .ok()?;
    let run = WrkRun::parse(&String::from_utf8_lossy(&out.stdout))?;
    Some((run.rate, run.p99))
}

/// Heartbeats through wrk: its rate, requests sent, answers not 200, and
/// wrk's `/healthz` rate (the baseline).
struct WrkBeats {
    rate: f64,
    sent: u64,
    refused: u64,
    baseline: f64,
    /// The server's CPU time per heartbeat (its batch writes included),
    /// and per `/healthz`, in microseconds.
    cpu_us: f64,
    baseline_cpu_us: f64,
}

/// Each wrk thread posts its share of the signed heartbeats in `$BEATS`
/// (one JSON envelope a line), each once while they last.
const BEATS_LUA: &str = r#"
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  local every = tonumber(os.getenv("WRK_THREADS"))
  beats, n = {}, 0
  local i = 0
  for line in io.lines(os.getenv("BEATS")) do
    if i % every == id then beats[#beats + 1] = line end
    i = i + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, beats[(n - 1) % #beats + 1])
end
"#;

/// Signed heartbeats from every node, round after round (each newer than
/// the node's last, so none is a replay), enough for `secs` at 40 000/s,
/// posted through `wrk` if it is installed.
fn wrk_heartbeats(
    base: &str,
    pid: u32,
    keys: &[p2p::Keypair],
    connections: usize,
    secs: u64,
) -> Option<WrkBeats> {
    let cpu = cpu_secs(pid);
    let (baseline, _) = wrk(&format!("{base}/healthz"), connections, secs)?;
    let baseline_cpu_us = (cpu_secs(pid) - cpu) * 1e6 / (baseline * secs as f64).max(1.0);
    let dir = std::env::temp_dir().join(format!("infernet-beats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let beats = dir.join("beats.jsonl");
    let script = dir.join("beats.lua");
    std::fs::write(&script, BEATS_LUA).unwrap();
    let wanted = (40_000 * secs as usize).max(keys.len());
    let rounds = wanted.div_ceil(keys.len().max(1));
    let mut lines = String::new();
    let now = UnixMillis::now();
    for round in 0..rounds {
        for (i, key) in keys.iter().enumerate() {
            let beat = Heartbeat {
                node_id: NodeId::from(key.public().to_peer_id()),
                // Later than the beats sent before: fresh for every node.
                timestamp: UnixMillis(now.0 + 1 + round as u64),
                active_jobs: (i % 3) as u32,
                accepting_jobs: true,
            };
            lines.push_str(
                &serde_json::to_string(&SignedEnvelope::seal(key, &beat).unwrap()).unwrap(),
            );
            lines.push('\n');
        }
    }
    std::fs::write(&beats, lines).unwrap();
    let cpu = cpu_secs(pid);
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "-s",
        ])
        .arg(&script)
        .arg(format!("{base}/api/v1/nodes/heartbeat"))
        .env("BEATS", &beats)
        .env("WRK_THREADS", "2")
        .output()
        .ok()?;
    // The last batch written (once a second).
    std::thread::sleep(Duration::from_millis(1500));
    let used = cpu_secs(pid) - cpu;
    let _ = std::fs::remove_dir_all(&dir);
    let run = WrkRun::parse(&String::from_utf8_lossy(&out.stdout))?;
    Some(WrkBeats {
        rate: run.rate,
        sent: run.sent,
        refused: run.refused,
        baseline,
        cpu_us: used * 1e6 / (run.sent as f64).max(1.0),
        baseline_cpu_us,
    })
}

fn main() {
    let nodes = arg("--nodes", 100_000);
    let clients = arg("--clients", 16);
    let secs = arg("--secs", 5) as u64;
    let args: Vec<String> = std::env::args().collect();
    let db = args
        .iter()
        .position(|a| a == "--db")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let dir = std::env::temp_dir().join(format!("infernet-bench-registry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let remote: Vec<&str> = match db.as_deref() {
        Some(db) => vec!["--db", db, "--db-user", "root", "--db-pass", "root"],
        None => Vec::new(),
    };
    let server = start_server(&dir, &remote);
    let pid = server.child.id();
    let base = server.http.clone();
    let idle_mb = rss_mb(pid);
    println!(
        "registry benchmark: {nodes} nodes, {clients} clients, {} database",
        db.as_deref().unwrap_or("embedded")
    );

    // Keys, made before the clock starts.
    let keys: Arc<Vec<p2p::Keypair>> = Arc::new(
        (0..nodes)
            .map(|_| p2p::Keypair::generate_ed25519())
            .collect(),
    );
    let models = |i: usize| {
        vec![
            offer(
                &format!("model-{}", i % 20),
                Task::Embedding,
                100 + (i % 50) as u64,
            ),
            offer("common", Task::Embedding, 1_000 + (i % 997) as u64),
        ]
    };
    let register = |client: &reqwest::blocking::Client, i: usize| {
        let key = &keys[i];
        let registration = Registration {
            node_id: NodeId::from(key.public().to_peer_id()),
            timestamp: UnixMillis::now(),
            multiaddrs: vec![format!("/ip4/127.0.0.1/tcp/{}", 20_000 + i % 40_000)],
            hardware: hardware(),
            models: models(i),
            version: "bench".into(),
            heartbeat_interval_ms: 60_000,
            payout_address: None,
        };
        let envelope = SignedEnvelope::seal(key, &registration).unwrap();
        let r = client
            .post(format!("{base}/api/v1/nodes/register"))
            .json(&envelope)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap());
    };
    let registered = in_parallel(nodes, clients, register);
    // Heartbeats signed beforehand (as each node does on its own
    // machine): the figure is the server's, not this process's signing.
    let signed: Vec<Vec<u8>> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let beat = Heartbeat {
                node_id: NodeId::from(key.public().to_peer_id()),
                timestamp: UnixMillis::now(),
                active_jobs: (i % 3) as u32,
                accepting_jobs: true,
            };
            serde_json::to_vec(&SignedEnvelope::seal(key, &beat).unwrap()).unwrap()
        })
        .collect();
    let beat = |client: &reqwest::blocking::Client, i: usize| {
        let r = client
            .post(format!("{base}/api/v1/nodes/heartbeat"))
            .header("content-type", "application/json")
            .body(signed[i].clone())
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap());
    };
    let beats = in_parallel(nodes, clients, beat);
    let full_mb = rss_mb(pid);
    println!("ingestion (HTTP, signed, {clients} clients in this process):");
    println!("  registrations  {registered:>9.0} /s");
    println!("  heartbeats     {beats:>9.0} /s   goal >= 10000");
    // The same through wrk, a load generator in C (as a fleet of machines
    // would send them: the server's figure, not this process's clients'),
    // against `/healthz` through wrk in the same run.
    match wrk_heartbeats(&base, pid, &keys, 64, secs) {
        Some(w) => println!(
            "  heartbeats     {:>9.0} /s   through wrk (64 connections, {secs} s; {} of {} answers not 200); \
             /healthz {:.0} req/s ({:.2} of it)   goal >= 10000\n  \
             server CPU per heartbeat {:.0} us (its batch write included), per /healthz {:.0} us",
            w.rate,
            w.refused,
            w.sent,
            w.baseline,
            w.rate / w.baseline,
            w.cpu_us,
            w.baseline_cpu_us
        ),
        None => println!("  (wrk not installed: apt-get install wrk for heartbeats through a load generator)"),
    }
    println!("memory: {idle_mb:.0} MB idle, {full_mb:.0} MB with {nodes} nodes   goal < 1024 MB");

    // Queries: the same one (what a cache serves), and a page deep into
    // the list (after a cursor), each filtered.
    let cached = format!("{base}/nodes?limit=50&online=true&model=model-7");
    let first: serde_json::Value =
        reqwest::blocking::get(format!("{base}/nodes?limit=50&model=common"))
            .unwrap()
            .json()
            .unwrap();
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    let deep = format!("{base}/nodes?limit=50&model=common&max_price=1500&cursor={cursor}");
    let health = format!("{base}/healthz");
    println!("GET /nodes?limit=50 (in-process clients, {secs} s each):");
    let mut baseline_rate = 0.0;
    for (what, url) in [
        ("/healthz (baseline)", &health),
        ("same filtered query", &cached),
        ("page after a cursor", &deep),
    ] {
        let (rate, samples) = load(url, clients, secs, None);
        let (p50, p99) = p50_p99_ms(samples);
        if baseline_rate == 0.0 {
            baseline_rate = rate;
        }
        println!(
            "  {what:<22} {rate:>8.0} req/s  p50 {p50:.2} ms  p99 {p99:.2} ms  ({:.2} of the baseline)",
            rate / baseline_rate
        );
    }
    // Uncached: every request a query never asked before (its maximum
    // price differs), so each is read from the index and written anew.
    let (rate, samples) = load_each(
        |n| format!("{base}/nodes?limit=50&model=common&max_price={}", 2_000 + n),
        clients,
        secs,
        None,
    );
    let (p50, p99) = p50_p99_ms(samples);
    println!(
        "  {:<22} {rate:>8.0} req/s  p50 {p50:.2} ms  p99 {p99:.2} ms  ({:.2} of the baseline)",
        "every query new",
        rate / baseline_rate
    );
    match wrk(&health, 64, secs) {
        Some((health_rate, _)) => {
            println!("through wrk (2 threads, 64 connections, {secs} s):");
            println!("  /healthz (baseline)    {health_rate:>8.0} req/s");
            for (what, url) in [
                ("same filtered query", &cached),
                ("page after a cursor", &deep),
            ] {
                if let Some((rate, p99)) = wrk(url, 64, secs) {
                    println!(
                        "  {what:<22} {rate:>8.0} req/s  {p99}  ({:.2} of the baseline; goal >= 20000 req/s, p99 < 10 ms)",
                        rate / health_rate
                    );
                }
            }
        }
        None => {
            println!("(wrk not installed: apt-get install wrk for the load generator's figures)")
        }
    }

    // A job's choice of node: refused at once for a price no node meets,
    // after the choice has looked at every node offering the model.
    let client = reqwest::blocking::Client::new();
    let mut choice = Vec::new();
    let mut health_times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let r = client
            .post(format!("{base}/api/v1/jobs"))
            .bearer_auth(&server.key)
            .json(&serde_json::json!({
                "model": "common", "input": { "texts": ["x"] }, "max_price_msat": 1
            }))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 503, "{}", r.text().unwrap());
        choice.push(t.elapsed());
        let t = Instant::now();
        client.get(&health).send().unwrap();
        health_times.push(t.elapsed());
    }
    let (c50, c99) = p50_p99_ms(choice);
    let (h50, _) = p50_p99_ms(health_times);
    println!(
        "node choice among {nodes} nodes offering the model (a refused job): p50 {c50:.2} ms, p99 {c99:.2} ms; /healthz p50 {h50:.2} ms"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    // The choice itself, in process, for a job some node can take: the
    // index reads the model's nodes cheapest first and stops once no
    // dearer node could win, against weighing every node (the baseline),
    // on the same nodes, in alternation.
    let now = UnixMillis::now();
    let infos: Vec<_> = (0..nodes)
        .map(|i| {
            let mut n = testkit::fixtures::node_info(0, models(i));
            n.peer_id = NodeId::from(p2p::Keypair::generate_ed25519().public().to_peer_id());
            n.last_seen = now;
            n
        })
        .collect();
    let (fast, full) = server::registry_bench::choices(infos.clone(), "common", 200);
    let (f50, f99) = p50_p99_ms(fast);
    let (w50, w99) = p50_p99_ms(full);
    println!(
        "node choice among {nodes} nodes offering the model (a job that runs, in process): \
         p50 {f50:.3} ms, p99 {f99:.3} ms; weighing every node: p50 {w50:.3} ms, p99 {w99:.3} ms ({:.0}x)",
        w50 / f50.max(1e-6)
    );

    // Heartbeats as the registry writes them: logged each second (one
    // record), folded into each node's small `live` row every half minute,
    // against rewriting each node's whole row (what it did before), on an
    // embedded database of its own.
    let dir = std::env::temp_dir().join(format!("infernet-bench-beats-{}", std::process::id()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (logged, live, whole) = runtime.block_on(server::registry_bench::beat_writes(infos, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "heartbeat writes, {nodes} nodes, embedded: logged {logged:.0} beats/s ({:.1}x), \
         folded into liveness rows {live:.0} rows/s ({:.2}x); rewriting whole node rows \
         (the baseline): {whole:.0} rows/s",
        logged / whole,
        live / whole
    );
}

//! Embeddings per second: the node's engine (Rust tokenizer, libtorch,
//! dynamic batching) against PyTorch from the venv serving the same model the
//! plain way, one request per forward pass, on the same CPU thread count.
//! Both run in this one process tree, one after the other, at each
//! concurrency level; prints the rates and the ratios.
//!
//! `cargo bench -p node --bench engine_vs_torch` (release), or as a smoke,
//! `cargo bench --profile dev -p node --bench engine_vs_torch -- --requests 64`.
//! Goal: ≥ 1.0× PyTorch eager at concurrency 1, ≥ 1.5× at 16.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use node::engine::{DeviceChoice, Engine, EngineConfig, LoadedModel};
use wire::jobs::JobInput;
use wire::registry::Task;
use wire::MilliSats;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SENTENCES: [&str; 8] = [
    "A man is playing a guitar on the street corner.",
    "The quick brown fox jumps over the lazy dog.",
    "Infernet sells inference over a peer-to-peer network.",
    "Providers earn a few satoshis for every job they run.",
    "Stock markets fell sharply after the announcement.",
    "She baked bread every morning before the sun came up.",
    "Batching many small requests keeps the processor busy.",
    "What is the capital city of the country with the most lakes?",
];

async fn engine_rate(model: Arc<LoadedModel>, requests: usize, concurrency: usize) -> f64 {
    let left = Arc::new(AtomicUsize::new(requests));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (model, left) = (model.clone(), left.clone());
            tokio::spawn(async move {
                while let Ok(i) =
                    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                {
                    let input = JobInput::Embedding {
                        texts: vec![SENTENCES[i % SENTENCES.len()].to_owned()],
                    };
                    let deadline = Instant::now() + Duration::from_secs(600);
                    model
                        .run(input, MilliSats(u64::MAX), deadline, None)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    requests as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let requests = arg("--requests", 512).max(16);
    let threads = arg(
        "--threads",
        std::thread::available_parallelism().map_or(1, usize::from),
    );
    let max_batch = arg("--max-batch", 16);
    let levels = [1usize, 16];
    tch::set_num_threads(i32::try_from(threads).unwrap_or(1));
    let dir = PathBuf::from(
        std::env::var_os("INFERNET_MODELS_DIR")
            .expect("INFERNET_MODELS_DIR is not set: run scripts/setup.sh, source scripts/env.sh"),
    );
    let config = EngineConfig {
        device: DeviceChoice::Cpu,
        max_batch,
        queue_depth: 1024,
        ..Default::default()
    };
    let engine = Arc::new(Engine::load(&dir, config).unwrap());
    let offer = engine
        .offers()
        .into_iter()
        .find(|o| o.task == Task::Embedding)
        .unwrap();
    let model = engine.get(&offer.hash).await.unwrap();
    println!(
        "engine vs torch: {} on cpu, {threads} threads, {requests} requests of one sentence, max batch {max_batch}",
        offer.name
    );
    // Warm up.
    engine_rate(model.clone(), 16, 4).await;
    let mut ours = Vec::new();
    for &c in &levels {
        ours.push(engine_rate(model.clone(), requests, c).await);
    }

    let python = std::env::var("INFERNET_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/bench_torch_eager.py"
    );
    let mut cmd = Command::new(&python);
    cmd.arg(script)
        .arg(dir.join(&offer.name))
        .arg(requests.to_string())
        .arg(threads.to_string());
    for c in levels {
        cmd.arg(c.to_string());
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {python}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SENTENCES.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "bench_torch_eager.py failed");
    let torch: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, c) in levels.iter().enumerate() {
        let eager = torch["eager"][c.to_string()].as_f64().unwrap();
        let script = torch["torchscript"][c.to_string()].as_f64().unwrap();
        println!(
            "concurrency {c:>2}: engine {:>7.1}/s  pytorch eager {eager:>7.1}/s  torchscript-in-python {script:>7.1}/s  ratio vs eager {:.2}x  vs torchscript {:.2}x",
            ours[i],
            ours[i] / eager,
            ours[i] / script
        );
    }
}

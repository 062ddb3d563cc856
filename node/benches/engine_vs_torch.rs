//! Embeddings per second: the node's engine (Rust tokenizer, libtorch,
//! dynamic batching) against PyTorch from the venv serving the same model the
//! plain way, one request per forward pass, on the same CPU thread count.
//! The baselines run in a Python process that stays up; each level is
//! measured `--rounds` times, engine and baselines alternating, and the
//! medians are compared. Prints the rates and the ratios.
//!
//! `cargo bench -p node --bench engine_vs_torch` (release), or as a smoke,
//! `cargo bench --profile dev -p node --bench engine_vs_torch -- --requests 64`.
//! Goal: ≥ 1.0× PyTorch eager at concurrency 1, ≥ 1.5× at 16.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use node::engine::{DeviceChoice, Engine, EngineConfig, LoadedModel};
use testkit::bench::{arg, median};
use wire::jobs::JobInput;
use wire::registry::Task;
use wire::MilliSats;

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
    let max_batch = arg("--max-batch", node::engine::DEFAULT_MAX_BATCH);
    let rounds = arg("--rounds", 3).max(1);
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
        "engine vs torch: {} on cpu, {threads} threads, {requests} requests of one sentence, max batch {max_batch}, median of {rounds} alternating rounds",
        offer.name
    );
    let python = std::env::var("INFERNET_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/bench_torch_eager.py"
    );
    let mut child = Command::new(&python)
        .arg(script)
        .arg(dir.join(&offer.name))
        .arg(requests.to_string())
        .arg(threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {python}: {e}"));
    let mut to_python = child.stdin.take().unwrap();
    let mut from_python = BufReader::new(child.stdout.take().unwrap()).lines();
    writeln!(to_python, "{}", serde_json::to_string(&SENTENCES).unwrap()).unwrap();
    assert_eq!(from_python.next().unwrap().unwrap(), "ready");
    let mut baseline = |kind: &str, c: usize| -> f64 {
        writeln!(to_python, "{kind} {c}").unwrap();
        from_python.next().unwrap().unwrap().trim().parse().unwrap()
    };

    // Warm up, then alternate the three servers at each level, `rounds`
    // times, and compare medians: all three see the same machine.
    engine_rate(model.clone(), 16, 4).await;
    for c in levels {
        let (mut ours, mut eager, mut script) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(engine_rate(model.clone(), requests, c).await);
            eager.push(baseline("eager", c));
            script.push(baseline("torchscript", c));
        }
        let (ours, eager, script) = (median(&ours), median(&eager), median(&script));
        println!(
            "concurrency {c:>2}: engine {ours:>7.1}/s  pytorch eager {eager:>7.1}/s  torchscript-in-python {script:>7.1}/s  ratio vs eager {:.2}x  vs torchscript {:.2}x",
            ours / eager,
            ours / script
        );
    }
    drop(to_python);
    let _ = child.wait();
}

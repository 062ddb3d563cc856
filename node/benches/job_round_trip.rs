//! What the network adds to a job: the same engine and model, called
//! directly and through libp2p (a consumer and a provider in one process,
//! over loopback TCP, with the node's full job path: checks, receipt
//! signing, framing, streaming). Prints p50/p99 of both and the difference.
//!
//! `cargo bench -p node --bench job_round_trip` (release) or, as a quick
//! smoke, `cargo bench --profile dev -p node --bench job_round_trip -- --jobs 20`.
//! Goal: at most 2 ms added at p50.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use node::engine::{DeviceChoice, Engine, EngineConfig};
use node::jobs::JobServer;
use p2p::JobResponse;
use p2p::{Config, Keypair, Reachability};
use testkit::bench::{arg, p50_p99_ms};
use wire::jobs::{JobInput, JobRequest};
use wire::{JobId, NodeId, UnixMillis};

#[tokio::main]
async fn main() {
    let jobs = arg("--jobs", 200).max(5);
    let dir = PathBuf::from(
        std::env::var_os("INFERNET_MODELS_DIR")
            .expect("INFERNET_MODELS_DIR is not set: run scripts/setup.sh, source scripts/env.sh"),
    );
    let config = EngineConfig {
        device: DeviceChoice::Cpu,
        ..Default::default()
    };
    let engine = Arc::new(Engine::load(&dir, config).unwrap());
    let offer = engine
        .offers()
        .into_iter()
        .find(|o| o.task == wire::registry::Task::Embedding)
        .unwrap();
    let model = engine.get(&offer.hash).await.unwrap();
    let deadline = || Instant::now() + std::time::Duration::from_secs(60);
    let input = JobInput::Embedding {
        texts: vec!["Infernet sells inference over a peer-to-peer network.".into()],
    };
    println!(
        "job round trip: model {} on cpu, {jobs} jobs of one short sentence",
        offer.name
    );

    // Warm up libtorch and the tokenizer.
    for _ in 0..5 {
        model
            .run(input.clone(), offer.price_msat, deadline(), None)
            .await
            .unwrap();
    }
    let mut direct = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let t = Instant::now();
        model
            .run(input.clone(), offer.price_msat, deadline(), None)
            .await
            .unwrap();
        direct.push(t.elapsed());
    }

    let provider_key = Keypair::generate_ed25519();
    let mut config = Config::new(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()], "bench");
    config.serve_jobs = true;
    config.reachability = Reachability::Public;
    let (provider, inbound, event_loop) = p2p::start(provider_key.clone(), config).await.unwrap();
    tokio::spawn(event_loop.run());
    let server = Arc::new(JobServer {
        engine: engine.clone(),
        node_id: NodeId::from(provider_key.public().to_peer_id()),
        keypair: provider_key,
        active: node::admission::ActiveJobs::default(),
        admission: node::admission::Gate::default(),
        hours: node::schedule::Hours::always(),
        bids: Default::default(),
    });
    tokio::spawn(server.run(inbound));
    let addrs = provider.listen_addrs().await.unwrap();

    let mut config = Config::new(vec![], "bench-consumer");
    config.reachability = Reachability::Client;
    let (consumer, _inbound, event_loop) = p2p::start(Keypair::generate_ed25519(), config)
        .await
        .unwrap();
    tokio::spawn(event_loop.run());
    let peer = provider.local_peer_id();
    consumer.connect(peer, addrs.clone()).await.unwrap();

    let request = |n: usize| JobRequest {
        job_id: JobId::from_random((n as u128).to_le_bytes()),
        model_hash: offer.hash,
        input: input.clone(),
        max_price_msat: offer.price_msat,
        deadline: UnixMillis(UnixMillis::now().0 + 60_000),
        bid_msat: wire::MilliSats(0),
    };
    for n in 0..5 {
        consumer.send_job(peer, vec![], request(n)).await.unwrap();
    }
    let mut network = Vec::with_capacity(jobs);
    for n in 0..jobs {
        let t = Instant::now();
        let r = consumer
            .send_job(peer, vec![], request(1000 + n))
            .await
            .unwrap();
        network.push(t.elapsed());
        assert!(matches!(r, JobResponse::Done { .. }));
    }

    let (d50, d99) = p50_p99_ms(direct);
    let (n50, n99) = p50_p99_ms(network);
    println!("direct_engine_ms p50={d50:.3} p99={d99:.3}");
    println!("through_libp2p_ms p50={n50:.3} p99={n99:.3}");
    println!(
        "added_by_network_ms p50={:.3} ratio={:.3} (goal: added p50 <= 2)",
        n50 - d50,
        n50 / d50
    );
}

//! Real swarms on loopback sockets: the helpers every test here shares,
//! and the tests by protocol.

mod ads;
mod jobs;
mod models;
mod network;

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use wire::ads::CapabilityAd;
use wire::jobs::{JobInput, JobOutput, JobRequest, RefusalCode};
use wire::{JobId, MilliSats, NodeId, Sha256Digest, SignedEnvelope, UnixMillis};

use super::*;

fn config(serve_jobs: bool, bootstrap: Vec<Multiaddr>) -> Config {
    let mut c = Config::new(Config::listen_loopback(), "infernet-test");
    c.bootstrap = bootstrap;
    c.serve_jobs = serve_jobs;
    c.request_timeout = Duration::from_secs(10);
    c.idle_timeout = Duration::from_secs(30);
    c.reachability = Reachability::Public;
    c
}

fn request(n: u8) -> JobRequest {
    JobRequest {
        job_id: JobId::from_random([n; 16]),
        model_hash: Sha256Digest::of(b"m"),
        input: JobInput::Embedding {
            texts: vec!["hi".into()],
        },
        max_price_msat: MilliSats(5),
        deadline: UnixMillis(UnixMillis::now().0 + 30_000),
        bid_msat: wire::MilliSats(0),
    }
}

struct Peer {
    client: Client,
    key: Keypair,
    inbound: mpsc::Receiver<InboundJob>,
    task: tokio::task::JoinHandle<()>,
}

async fn spawn_with(config: Config) -> Peer {
    // RUST_LOG=debug shows what the swarms do.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let key = Keypair::generate_ed25519();
    let (client, inbound, event_loop) = start(key.clone(), config).await.unwrap();
    let task = tokio::spawn(event_loop.run());
    Peer {
        client,
        key,
        inbound,
        task,
    }
}

async fn spawn(serve_jobs: bool, bootstrap: Vec<Multiaddr>) -> Peer {
    spawn_with(config(serve_jobs, bootstrap)).await
}

impl Peer {
    async fn full_addr(&self) -> Multiaddr {
        addr_with(&self.client.listen_addrs().await.unwrap(), "tcp")
            .with(Protocol::P2p(self.client.local_peer_id()))
    }
}

/// Answers every job with its own job id, and `n` vectors, so the caller can
/// tell answers apart.
fn echo_jobs(mut inbound: mpsc::Receiver<InboundJob>, vectors: usize) {
    tokio::spawn(async move {
        while let Some(mut job) = inbound.recv().await {
            let receipt = SignedEnvelope {
                public_key: String::new(),
                payload: job.request.job_id.to_string(),
                signature: String::new(),
            };
            let output = JobOutput::Embedding {
                dim: 384,
                vectors: (0..vectors).map(|i| vec![i as f32; 384]).collect(),
            };
            job.responder.accepted(0).await.unwrap();
            job.responder
                .send(JobResponse::Done { output, receipt })
                .await
                .unwrap();
        }
    });
}

fn addr_with(addrs: &[Multiaddr], transport: &str) -> Multiaddr {
    addrs
        .iter()
        .find(|a| a.iter().any(|p| p.tag() == transport))
        .cloned()
        .unwrap_or_else(|| panic!("no {transport} address in {addrs:?}"))
}

#[track_caller]
fn next_event<T, F: FnMut(&NetworkEvent) -> Option<T>>(
    events: &mut broadcast::Receiver<NetworkEvent>,
    mut pick: F,
) -> impl std::future::Future<Output = T> + use<'_, T, F> {
    let caller = std::panic::Location::caller();
    async move {
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(e) => {
                        if let Some(t) = pick(&e) {
                            return t;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("event stream ended: {e}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("event did not come (awaited at {caller})"))
    }
}

fn ad_for(key: &Keypair, seq: u64, issued_at: UnixMillis, price: u64) -> CapabilityAd {
    let mut ad = testkit::fixtures::ad(key, seq, issued_at, 30_000);
    ad.multiaddrs.clear();
    ad.models[0].price_msat = MilliSats(price);
    ad
}

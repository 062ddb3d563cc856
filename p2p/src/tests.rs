//! Real swarms on loopback sockets.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use wire::jobs::{JobInput, JobOutput, JobRequest, JobResponse};
use wire::{JobId, MilliSats, Sha256Digest, UnixMillis};

use super::*;

fn config(serve_jobs: bool, bootstrap: Vec<Multiaddr>) -> Config {
    Config {
        listen: Config::listen_loopback(),
        bootstrap,
        serve_jobs,
        request_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
        agent_version: "infernet-test".into(),
    }
}

fn request(n: u8) -> JobRequest {
    JobRequest {
        job_id: JobId::from_random([n; 16]),
        model_hash: Sha256Digest::of(b"m"),
        input: JobInput::Embedding {
            texts: vec!["hi".into()],
        },
        max_price_msat: MilliSats(5),
        deadline: UnixMillis(u64::MAX),
    }
}

struct Peer {
    client: Client,
    inbound: mpsc::Receiver<InboundJob>,
    task: tokio::task::JoinHandle<()>,
}

async fn spawn(serve_jobs: bool, bootstrap: Vec<Multiaddr>) -> Peer {
    let (client, inbound, event_loop) =
        start(Keypair::generate_ed25519(), config(serve_jobs, bootstrap))
            .await
            .unwrap();
    let task = tokio::spawn(event_loop.run());
    Peer {
        client,
        inbound,
        task,
    }
}

/// Answers every job with its own job id, so the caller can tell answers apart.
fn echo_jobs(mut inbound: mpsc::Receiver<InboundJob>) {
    tokio::spawn(async move {
        while let Some(job) = inbound.recv().await {
            let receipt = wire::SignedEnvelope {
                public_key: String::new(),
                payload: job.request.job_id.to_string(),
                signature: String::new(),
            };
            let output = JobOutput::Embedding {
                dim: 1,
                vectors: vec![vec![1.0]],
            };
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

#[tokio::test]
async fn listeners_report_real_ports_for_tcp_and_quic() {
    let peer = spawn(true, vec![]).await;
    let addrs = peer.client.listen_addrs().await.unwrap();
    let tcp = addr_with(&addrs, "tcp");
    assert!(tcp
        .iter()
        .any(|p| matches!(p, Protocol::Tcp(port) if port != 0)));
    addr_with(&addrs, "quic-v1");
}

#[tokio::test]
async fn jobs_round_trip_over_tcp_and_over_quic() {
    let provider = spawn(true, vec![]).await;
    let addrs = provider.client.listen_addrs().await.unwrap();
    let provider_id = provider.client.local_peer_id();
    echo_jobs(provider.inbound);

    for (n, transport) in [(1, "tcp"), (2, "quic-v1")] {
        let consumer = spawn(false, vec![]).await;
        let response = consumer
            .client
            .send_job(provider_id, vec![addr_with(&addrs, transport)], request(n))
            .await
            .unwrap();
        let JobResponse::Done { receipt, .. } = response else {
            panic!("expected an answer over {transport}, got {response:?}");
        };
        assert_eq!(receipt.payload, request(n).job_id.to_string());
    }
}

#[tokio::test]
async fn provider_that_vanishes_mid_job_is_reported_as_disconnected() {
    let mut provider = spawn(true, vec![]).await;
    let addrs = provider.client.listen_addrs().await.unwrap();
    let provider_id = provider.client.local_peer_id();
    let consumer = spawn(false, vec![]).await;

    let pending = tokio::spawn({
        let client = consumer.client.clone();
        async move { client.send_job(provider_id, addrs, request(3)).await }
    });
    // The job has arrived; now the provider's process dies.
    let job = provider.inbound.recv().await.unwrap();
    provider.task.abort();
    drop(job);
    let result = pending.await.unwrap();
    assert_eq!(result.unwrap_err(), NetworkError::ConnectionClosed);
}

#[tokio::test]
async fn peer_that_does_not_serve_jobs_refuses_the_protocol() {
    let server = spawn(false, vec![]).await;
    let addrs = server.client.listen_addrs().await.unwrap();
    let consumer = spawn(false, vec![]).await;
    let err = consumer
        .client
        .send_job(server.client.local_peer_id(), addrs, request(4))
        .await
        .unwrap_err();
    assert_eq!(err, NetworkError::UnsupportedProtocol);
}

#[tokio::test]
async fn dial_waits_for_the_connection_and_rejects_addresses_without_peer_id() {
    let a = spawn(false, vec![]).await;
    let b = spawn(false, vec![]).await;
    let a_addr = addr_with(&a.client.listen_addrs().await.unwrap(), "tcp");
    let full = a_addr.clone().with(Protocol::P2p(a.client.local_peer_id()));
    assert_eq!(b.client.dial(full).await.unwrap(), a.client.local_peer_id());
    assert!(b
        .client
        .connected_peers()
        .await
        .unwrap()
        .contains(&a.client.local_peer_id()));
    assert!(matches!(
        b.client.dial(a_addr).await,
        Err(NetworkError::Dial(_))
    ));
}

#[tokio::test]
async fn bootstrap_address_without_peer_id_is_refused_at_start() {
    let err = start(
        Keypair::generate_ed25519(),
        config(false, vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()]),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, NetworkError::BootstrapWithoutPeerId(_)));
}

#[tokio::test]
async fn event_loop_stops_when_every_client_is_dropped() {
    let peer = spawn(false, vec![]).await;
    drop(peer.client);
    tokio::time::timeout(Duration::from_secs(10), peer.task)
        .await
        .expect("event loop did not stop")
        .unwrap();
}

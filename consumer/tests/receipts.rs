//! The consumer library checks what a provider charges: on real libp2p over
//! loopback, a provider whose signed receipt asks more than the job's
//! agreed maximum is treated like one that failed, and the job moves on to
//! an honest provider.

use std::time::{Duration, Instant};

use consumer::{Consumer, JobSpec};
use p2p::{JobResponse, Keypair, Multiaddr, Protocol};
use tokio::sync::mpsc;
use wire::jobs::{JobInput, JobOutput, Receipt, Usage};
use wire::{MilliSats, SignedEnvelope, UnixMillis};

/// A provider of model `m` at `price` that answers every job with one
/// vector and a receipt charging `charge(agreed maximum)`.
struct Provider {
    addr: Multiaddr,
    _network: p2p::Client,
}

async fn provider(price: u64, charge: fn(MilliSats) -> MilliSats) -> Provider {
    let key = Keypair::generate_ed25519();
    let mut config = p2p::Config::new(p2p::Config::listen_loopback(), "test-provider");
    config.serve_jobs = true;
    config.reachability = p2p::Reachability::Public;
    config.relay_server = false;
    let (network, inbound, event_loop) = p2p::start(key.clone(), config).await.unwrap();
    tokio::spawn(event_loop.run());
    let listen = network.listen_addrs().await.unwrap();
    let tcp = listen
        .iter()
        .find(|a| a.iter().any(|p| matches!(p, Protocol::Tcp(_))))
        .unwrap()
        .clone();
    let mut ad = testkit::fixtures::ad(&key, 1, UnixMillis::now(), 60_000);
    ad.models[0].price_msat = MilliSats(price);
    ad.multiaddrs = vec![tcp.to_string()];
    let offer = ad.models[0].clone();
    network
        .publish_ad(SignedEnvelope::seal(&key, &ad).unwrap())
        .await
        .unwrap();
    network
        .start_providing(vec![
            p2p::model_key(&offer.hash),
            p2p::model_name_key(&offer.name),
        ])
        .await
        .unwrap();
    answer(inbound, key, charge);
    Provider {
        addr: tcp.with(Protocol::P2p(network.local_peer_id())),
        _network: network,
    }
}

fn answer(
    mut inbound: mpsc::Receiver<p2p::InboundJob>,
    key: Keypair,
    charge: fn(MilliSats) -> MilliSats,
) {
    tokio::spawn(async move {
        while let Some(mut job) = inbound.recv().await {
            let request = job.request;
            let output = JobOutput::Embedding {
                dim: 2,
                vectors: vec![vec![0.6, 0.8]],
            };
            let receipt = Receipt {
                job_id: request.job_id.clone(),
                node_id: key.public().to_peer_id().into(),
                model_hash: request.model_hash,
                input_hash: request.input.digest(),
                output_hash: output.digest(),
                price_msat: charge(request.max_price_msat),
                received_at: UnixMillis::now(),
                finished_at: UnixMillis::now(),
                queue_ms: 0,
                compute_ms: 1,
                device: "cpu".into(),
                usage: Usage::default(),
                priority_msat: MilliSats(0),
            };
            let receipt = SignedEnvelope::seal(&key, &receipt).unwrap();
            let _ = job.responder.accepted(0).await;
            let _ = job
                .responder
                .send(JobResponse::Done { output, receipt })
                .await;
        }
    });
}

#[tokio::test]
async fn a_receipt_charging_more_than_agreed_fails_over_to_an_honest_provider() {
    // The cheaper provider overcharges by one millisatoshi.
    let greedy = provider(100, |max| MilliSats(max.0 + 1)).await;
    let honest = provider(200, |max| max).await;
    let (consumer, _task) = Consumer::join(vec![greedy.addr.clone(), honest.addr.clone()], vec![])
        .await
        .unwrap();
    let spec = JobSpec {
        pool: None,
        provider: None,
        model: "m".into(),
        input: JobInput::Embedding {
            texts: vec!["what does it cost".into()],
        },
        max_price: None,
        timeout: Duration::from_secs(30),
    };
    let greedy_id = greedy.addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    });
    // Until both providers are known (the DHT answers as peers identify).
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let found = consumer.discover("m").await.unwrap();
        if found.len() == 2 {
            break consumer.run(&spec, |_| {}).await.unwrap();
        }
        assert!(Instant::now() < deadline, "found {} providers", found.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done.offer.price_msat, MilliSats(200), "the honest provider");
    assert_eq!(done.receipt.price_msat, MilliSats(200));
    assert_eq!(done.failed_attempts.len(), 1, "{:?}", done.failed_attempts);
    let attempt = &done.failed_attempts[0];
    assert_eq!(
        Some(attempt.provider.as_str()),
        greedy_id.map(|id| id.to_string()).as_deref()
    );
    assert!(
        attempt.outcome.contains("above the agreed maximum"),
        "{}",
        attempt.outcome
    );

    // Pinned to one provider, the job goes to it alone: no failover.
    let pinned = JobSpec {
        provider: greedy_id,
        ..spec.clone()
    };
    match consumer.run(&pinned, |_| {}).await {
        Err(consumer::ConsumerError::AllFailed(attempts)) => {
            assert_eq!(attempts.len(), 1, "{attempts:?}");
            assert_eq!(attempts[0].provider, attempt.provider);
        }
        other => panic!("pinned to the overcharging provider: {other:?}"),
    }
    let nobody = Keypair::generate_ed25519().public().to_peer_id();
    let missing = JobSpec {
        provider: Some(nobody),
        ..spec
    };
    match consumer.run(&missing, |_| {}).await {
        Err(consumer::ConsumerError::ProviderNotFound {
            found, provider, ..
        }) => {
            assert_eq!((found, provider), (2, nobody));
        }
        other => panic!("pinned to a peer that serves nothing: {other:?}"),
    }
}

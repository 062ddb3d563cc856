//! How fast a signed ad reaches every peer: N real swarms in one process on
//! loopback TCP, each joined to a few earlier ones, gossipsub as in
//! production. Prints p50/p99 publish-to-receipt latency over all deliveries.
//!
//! `cargo bench -p p2p --bench ad_propagation` (100 peers, release) or, as a
//! quick smoke, `cargo bench --profile dev -p p2p --bench ad_propagation -- --nodes 20 --ads 5 --settle-secs 2`.
//! Goal: p99 < 1 s at 100 peers. By default the ads are sent after the
//! network has settled for 45 s; `--settle-secs 2` measures them while all
//! peers are still joining (DHT bootstrap of every peer at once), which on
//! two shared cores is much slower.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use p2p::{Client, Config, Keypair, Multiaddr, NetworkEvent, Protocol, Reachability};
use testkit::bench::{arg, percentile};
use tokio::sync::{broadcast, mpsc};
use wire::{NodeId, SignedEnvelope, UnixMillis};

fn ad(key: &Keypair, seq: u64) -> SignedEnvelope {
    let mut ad = testkit::fixtures::ad(key, seq, UnixMillis::now(), 60_000);
    ad.multiaddrs = vec!["/ip4/127.0.0.1/tcp/1".into()];
    SignedEnvelope::seal(key, &ad).unwrap()
}

struct Peer {
    client: Client,
    key: Keypair,
    addr: Multiaddr,
}

#[tokio::main]
async fn main() {
    let n = arg("--nodes", 100).max(2);
    let ads = arg("--ads", 20).max(1);
    let links = arg("--links", 3);
    println!("ad propagation: {n} peers, {ads} ads, {links} links per peer");

    let started = Instant::now();
    let mut peers: Vec<Peer> = Vec::with_capacity(n);
    // Roomy, so that no peer's forwarder waits (and timestamps late); the
    // backlog is drained before anything is measured.
    let (tx, mut rx) = mpsc::channel::<(usize, NetworkEvent, Instant)>(1 << 16);
    for i in 0..n {
        let mut config = Config::new(
            vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            "infernet-bench",
        );
        config.reachability = Reachability::Public;
        config.relay_server = false;
        // Each joins a few earlier peers, spread over the whole set.
        config.bootstrap = (0..links.min(i))
            .map(|k| peers[(i * 7919 + k * 104_729) % i].addr.clone())
            .collect();
        let key = Keypair::generate_ed25519();
        let (client, _inbound, event_loop) = p2p::start(key.clone(), config).await.unwrap();
        tokio::spawn(event_loop.run());
        let mut events = client.subscribe();
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(e) => {
                        if tx.send((i, e, Instant::now())).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
        let tcp = client.listen_addrs().await.unwrap().remove(0);
        let addr = tcp.with(Protocol::P2p(client.local_peer_id()));
        peers.push(Peer { client, key, addr });
    }
    // Wait until every peer has gossip peers on the ads topic.
    let mut gossip_peers: HashMap<usize, usize> = HashMap::new();
    let want = links.clamp(1, n - 1);
    while gossip_peers.len() < n || gossip_peers.values().any(|c| *c < want) {
        let (i, e, _) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("the gossip mesh did not form")
            .unwrap();
        if let NetworkEvent::GossipPeer { .. } = e {
            *gossip_peers.entry(i).or_default() += 1;
        }
    }
    // Let gossipsub heartbeats build the mesh and the DHT's start-up
    // bootstrap queries (which all peers run at once here) die down:
    // ads in a running network do not compete with a hundred peers joining.
    let settle = arg("--settle-secs", 45) as u64;
    println!("letting the network settle for {settle} s");
    tokio::time::sleep(Duration::from_secs(settle)).await;
    println!("network up in {:.1} s", started.elapsed().as_secs_f64());
    while rx.try_recv().is_ok() {}

    let mut latencies = Vec::new();
    let mut missing = 0usize;
    for a in 0..ads {
        let from = (a * 31) % n;
        let envelope = ad(&peers[from].key, a as u64 + 1);
        let node = NodeId::from(peers[from].client.local_peer_id());
        let sent = Instant::now();
        peers[from].client.publish_ad(envelope).await.unwrap();
        let mut got = 0usize;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got < n - 1 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((_, NetworkEvent::AdAccepted { ad, .. }, at))) if ad.ad.node_id == node => {
                    latencies.push(at - sent);
                    got += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        missing += n - 1 - got;
    }
    latencies.sort();
    let delivered = latencies.len();
    println!(
        "deliveries: {delivered} of {} ({missing} missing)",
        ads * (n - 1)
    );
    if delivered > 0 {
        let p50 = percentile(&latencies, 0.50);
        let p99 = percentile(&latencies, 0.99);
        let max = latencies[delivered - 1];
        println!(
            "ad_propagation_ms p50={:.2} p99={:.2} max={:.2} (goal p99 < 1000)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
    if missing > 0 {
        eprintln!("error: {missing} deliveries missing");
        std::process::exit(1);
    }
}

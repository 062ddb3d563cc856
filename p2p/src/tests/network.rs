//! Listening, dialling, start-up, the DHT and relays.

use super::*;

#[tokio::test]
async fn listeners_report_real_ports_for_tcp_and_quic() {
    let peer = spawn(true, vec![]).await;
    let addrs = peer.client.listen_addrs().await.unwrap();
    let tcp = addr_with(&addrs, "tcp");
    assert!(tcp
        .iter()
        .any(|p| matches!(p, Protocol::Tcp(port) if port != 0)));
    addr_with(&addrs, "quic-v1");
    // Public: the listen addresses are what others dial.
    let external = peer.client.external_addrs().await.unwrap();
    assert!(external.contains(&tcp), "{external:?}");
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

#[tokio::test]
async fn providers_are_found_through_the_dht_from_any_peer() {
    // seed <- a (provides), seed <- b <- c: c only knows b.
    let seed = spawn(false, vec![]).await;
    let a = spawn(true, vec![seed.full_addr().await]).await;
    let b = spawn(false, vec![seed.full_addr().await]).await;
    let c = spawn(false, vec![b.full_addr().await]).await;
    let key = model_key(&Sha256Digest::of(b"m"));
    // Connected to the seed: the record has somewhere to go.
    a.client
        .connect(seed.client.local_peer_id(), vec![])
        .await
        .unwrap();
    a.client.start_providing(vec![key.clone()]).await.unwrap();
    let a_id = a.client.local_peer_id();
    // The record spreads asynchronously; ask until it is there.
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let found = c.client.find_providers(key.clone()).await.unwrap();
            if found.contains(&a_id) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("c never found a");
    assert_eq!(found.len(), 1);
    assert!(c
        .client
        .find_providers(model_name_key("nothing"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_unreachable_provider_is_reached_through_a_relay() {
    let relay = spawn(false, vec![]).await;
    let relay_addr = relay.full_addr().await;
    // The provider listens on nothing: no one can dial it directly.
    let mut private = config(true, vec![relay_addr.clone()]);
    private.listen = vec![];
    private.reachability = Reachability::Private;
    let provider = spawn_with(private).await;
    let mut events = provider.client.subscribe();
    next_event(&mut events, |e| match e {
        NetworkEvent::RelayReservation { .. } => Some(()),
        _ => None,
    })
    .await;
    let provider_id = provider.client.local_peer_id();
    let external = provider.client.external_addrs().await.unwrap();
    let circuit = external
        .iter()
        .find(|a| a.iter().any(|p| p == Protocol::P2pCircuit))
        .unwrap_or_else(|| panic!("no circuit address in {external:?}"))
        .clone();
    echo_jobs(provider.inbound, 1);

    let consumer = spawn(false, vec![]).await;
    let response = consumer
        .client
        .send_job(provider_id, vec![circuit], request(9))
        .await
        .unwrap();
    assert!(matches!(response, JobResponse::Done { .. }));
}

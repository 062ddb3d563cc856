//! Finding a node without any server: a real node (in this process) puts
//! provider records in the DHT, and a peer that only dialled it finds it
//! by the model's CID, the key IPFS and every libp2p implementation use
//! for `findProviders`, as well as by Infernet's own hash key.

use std::time::Duration;

#[tokio::test]
async fn a_node_is_found_by_its_model_s_cid_through_the_dht() {
    let models = crate::store_of("discovery", &["all-minilm-l6-v2"]);
    let node = node::start(crate::admission::config(
        models.clone(),
        models.join("node.key"),
    ))
    .await
    .unwrap();
    let peer = node.node_id().peer_id();
    let hash = node.models[0].hash;
    let mut config = p2p::Config::new(p2p::Config::listen_loopback(), "test-finder");
    config.reachability = p2p::Reachability::Client;
    let (finder, _inbound, event_loop) = p2p::start(p2p::Keypair::generate_ed25519(), config)
        .await
        .unwrap();
    tokio::spawn(event_loop.run());
    finder.connect(peer, node.p2p_addrs.clone()).await.unwrap();
    // The CID as other implementations print it, and the key they look up.
    assert!(
        hash.cid_text().starts_with("bafkrei"),
        "{}",
        hash.cid_text()
    );
    assert_eq!(p2p::model_cid_key(&hash), hash.multihash());
    for key in [p2p::model_cid_key(&hash), p2p::model_key(&hash)] {
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let found = finder.find_providers(key.clone()).await.unwrap();
                if found.contains(&peer) {
                    return found;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .expect("the node was never found");
        assert!(found.contains(&peer));
    }
    // A CID nobody provides: nobody.
    let other = wire::Sha256Digest::of(b"no such model");
    assert!(finder
        .find_providers(p2p::model_cid_key(&other))
        .await
        .unwrap()
        .is_empty());
}

//! Capability ads: gossip with forgeries dropped, and the ad protocol.

use super::*;

#[tokio::test]
async fn ads_gossip_and_forged_replayed_or_expired_ones_are_dropped() {
    // Subscribe before the others join, so no event is missed.
    let a = spawn(true, vec![]).await;
    let mut a_events = a.client.subscribe();
    let b = spawn(false, vec![a.full_addr().await]).await;
    let mut b_events = b.client.subscribe();
    let mallory = spawn(false, vec![a.full_addr().await]).await;
    let mut m_events = mallory.client.subscribe();
    let b_id = b.client.local_peer_id();
    let m_id = mallory.client.local_peer_id();
    // Both have joined a's ads topic.
    let mut joined = std::collections::HashSet::new();
    while joined.len() < 2 {
        let peer = next_event(&mut a_events, |e| match e {
            NetworkEvent::GossipPeer { peer } => Some(*peer),
            _ => None,
        })
        .await;
        joined.insert(peer);
    }
    assert!(joined.contains(&b_id) && joined.contains(&m_id));
    next_event(&mut m_events, |e| match e {
        NetworkEvent::GossipPeer { .. } => Some(()),
        _ => None,
    })
    .await;

    let now = UnixMillis::now();
    let genuine = SignedEnvelope::seal(&a.key, &ad_for(&a.key, 10, now, 1000)).unwrap();
    a.client.publish_ad(genuine.clone()).await.unwrap();
    let got = next_event(&mut b_events, |e| match e {
        NetworkEvent::AdAccepted { ad, .. } => Some(ad.clone()),
        _ => None,
    })
    .await;
    assert_eq!(got.ad.seq, 10);
    assert_eq!(got.ad.node_id, NodeId::from(a.client.local_peer_id()));

    // Mallory, connected to a only: an ad for a signed with her key; a's
    // genuine ad again; an expired ad of a's she kept. a checks each and
    // passes none on.
    let forged = SignedEnvelope::seal(&mallory.key, &ad_for(&a.key, 11, now, 1)).unwrap();
    let expired =
        SignedEnvelope::seal(&a.key, &ad_for(&a.key, 12, UnixMillis(now.0 - 60_000), 1)).unwrap();
    for (envelope, want_forged) in [(forged, true), (genuine, true), (expired, false)] {
        mallory.client.publish_ad(envelope).await.unwrap();
        let (via, error, forged) = next_event(&mut a_events, |e| match e {
            NetworkEvent::AdRejected { via, error, forged } => Some((*via, error.clone(), *forged)),
            NetworkEvent::AdAccepted { ad, .. } => panic!("accepted {:?}", ad.ad),
            _ => None,
        })
        .await;
        assert_eq!(via, m_id);
        // Re-publishing a's ad is a forgery here: mallory is not a.
        assert_eq!(forged, want_forged, "{error}");
    }
    // b never saw them: it still holds a's genuine ad and its price.
    let held = b.client.ads_offering("m").await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].ad.models[0].price_msat, MilliSats(1000));

    // A replay by a itself (same seq) is dropped but not called a forgery.
    let replay = SignedEnvelope::seal(&a.key, &ad_for(&a.key, 10, now, 5)).unwrap();
    a.client.publish_ad(replay).await.unwrap();
    // (b may also have heard mallory directly, once the DHT introduced
    // them; it must have accepted none of hers.)
    let forged = next_event(&mut b_events, |e| match e {
        NetworkEvent::AdRejected {
            error: wire::ads::AdError::Replayed { .. },
            forged,
            ..
        } => Some(*forged),
        NetworkEvent::AdAccepted { ad, .. } => panic!("b accepted {:?}", ad.ad),
        _ => None,
    })
    .await;
    assert!(!forged);
}

#[tokio::test]
async fn a_node_answers_its_current_ad_on_request() {
    let a = spawn(true, vec![]).await;
    let b = spawn(false, vec![a.full_addr().await]).await;
    let a_id = a.client.local_peer_id();
    b.client.connect(a_id, vec![]).await.unwrap();
    assert!(matches!(
        b.client.fetch_ad(a_id).await,
        Err(NetworkError::Protocol(_))
    ));
    let ad = ad_for(&a.key, 3, UnixMillis::now(), 700);
    a.client
        .publish_ad(SignedEnvelope::seal(&a.key, &ad).unwrap())
        .await
        .unwrap();
    let held = b.client.fetch_ad(a_id).await.unwrap();
    assert_eq!(held.ad, ad);
    assert_eq!(b.client.ads_offering("m").await.unwrap().len(), 1);
    // Asking again gives the same (still valid) ad.
    assert_eq!(b.client.fetch_ad(a_id).await.unwrap().ad, ad);
}

//! A node paused by its operator: a real node (in this process, with the
//! real MiniLM) and a consumer on loopback libp2p. Paused, it refuses new
//! jobs as `not_accepting` and its ads say so; resumed, it serves again.

use std::time::{Duration, Instant};

use node::admission::Admission;
use node::Config;
use p2p::JobResponse;
use wire::jobs::{JobInput, JobRequest, RefusalCode};
use wire::{JobId, UnixMillis};

pub(crate) fn config(models_dir: std::path::PathBuf, key_file: std::path::PathBuf) -> Config {
    Config {
        server: None,
        bootstrap: vec![],
        reachability: p2p::Reachability::Public,
        external_addrs: vec![],
        relays: vec![],
        relay_server: false,
        ad_interval: Duration::from_secs(60),
        nat_probe_timeout: Duration::from_secs(30),
        models_dir,
        key_file,
        enroll: None,
        payout_address: None,
        p2p_port: 0,
        p2p_host: std::net::IpAddr::from([127, 0, 0, 1]),
        heartbeat: Duration::from_secs(10),
        telemetry: Duration::from_secs(5),
        metrics_addr: None,
        device: node::engine::DeviceChoice::Cpu,
        queue_depth: node::engine::DEFAULT_QUEUE_DEPTH,
        max_batch: node::engine::DEFAULT_MAX_BATCH,
        batch_wait: Duration::ZERO,
        memory_budget_mb: None,
        fetch: vec![],
        fetch_only: false,
        make_canaries: None,
        fetch_max_rate: None,
        schedule: None,
        pools: vec![],
    }
}

#[tokio::test]
async fn a_paused_node_refuses_jobs_and_advertises_it_until_resumed() {
    let models = crate::store_of("admission", &["all-minilm-l6-v2"]);
    let node = node::start(config(models.clone(), models.join("node.key")))
        .await
        .unwrap();
    let peer = node.node_id().peer_id();
    let mut consumer_config = p2p::Config::new(p2p::Config::listen_loopback(), "test-consumer");
    consumer_config.reachability = p2p::Reachability::Client;
    let (consumer, _inbound, event_loop) =
        p2p::start(p2p::Keypair::generate_ed25519(), consumer_config)
            .await
            .unwrap();
    tokio::spawn(event_loop.run());
    let offer = node.models[0].clone();
    let job = |n: u8| JobRequest {
        job_id: JobId::from_random([n; 16]),
        model_hash: offer.hash,
        input: JobInput::Embedding {
            texts: vec!["paused or not".into()],
        },
        max_price_msat: offer.worst_case_price(&JobInput::Embedding {
            texts: vec!["paused or not".into()],
        }),
        deadline: UnixMillis(UnixMillis::now().0 + 60_000),
        bid_msat: wire::MilliSats(0),
    };
    let send = |n: u8| consumer.send_job(peer, node.p2p_addrs.clone(), job(n));
    // The ad the node answers with on the ad protocol, once it says `open`.
    let ad_says = |open: bool| {
        let consumer = consumer.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let ad = consumer.fetch_ad(peer).await.unwrap().ad;
                if ad.accepting_jobs == open {
                    return;
                }
                assert!(Instant::now() < deadline, "the ad never said {open}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    assert!(matches!(send(1).await.unwrap(), JobResponse::Done { .. }));
    ad_says(true).await;

    node.admission.set(Admission::Paused);
    match send(2).await.unwrap() {
        JobResponse::Refused { code, .. } => assert_eq!(code, RefusalCode::NotAccepting),
        other => panic!("a paused node ran a job: {other:?}"),
    }
    ad_says(false).await;

    node.admission.set(Admission::Open);
    assert!(matches!(send(3).await.unwrap(), JobResponse::Done { .. }));
    ad_says(true).await;
    node.stop();
}

#[tokio::test]
async fn a_node_outside_its_schedule_refuses_jobs_and_its_ad_says_when_it_is_back() {
    let models = crate::store_of("schedule", &["all-minilm-l6-v2"]);
    let _ = std::fs::remove_file(models.join("schedule.json"));
    let now = UnixMillis::now();
    let back = UnixMillis(now.0 + 3_600_000);
    let mut config = config(models.clone(), models.join("node.key"));
    config.pools = vec!["eu-west".into()];
    config.schedule = Some(wire::schedule::Schedule {
        maintenance: vec![wire::schedule::Maintenance {
            from: UnixMillis(now.0 - 60_000),
            until: back,
            note: "new fans".into(),
        }],
        ..wire::schedule::Schedule::always()
    });
    let node = node::start(config).await.unwrap();
    assert!(
        models.join("schedule.json").exists(),
        "the schedule is kept for the next start"
    );
    let peer = node.node_id().peer_id();
    let mut consumer_config = p2p::Config::new(p2p::Config::listen_loopback(), "test-consumer");
    consumer_config.reachability = p2p::Reachability::Client;
    let (consumer, _inbound, event_loop) =
        p2p::start(p2p::Keypair::generate_ed25519(), consumer_config)
            .await
            .unwrap();
    tokio::spawn(event_loop.run());
    let offer = node.models[0].clone();
    let input = JobInput::Embedding {
        texts: vec!["open or not".into()],
    };
    let job = |n: u8| JobRequest {
        job_id: JobId::from_random([n; 16]),
        model_hash: offer.hash,
        input: input.clone(),
        max_price_msat: offer.worst_case_price(&input),
        deadline: UnixMillis(UnixMillis::now().0 + 60_000),
        bid_msat: wire::MilliSats(0),
    };
    let send = |n: u8| consumer.send_job(peer, node.p2p_addrs.clone(), job(n));

    match send(1).await.unwrap() {
        JobResponse::Refused { code, message } => {
            assert_eq!(code, RefusalCode::NotAccepting);
            assert!(message.contains("outside its schedule"), "{message}");
        }
        other => panic!("a closed node ran a job: {other:?}"),
    }
    // The latest ad the node answers with, once `ready` holds for it.
    let ad_when = |ready: fn(&wire::ads::CapabilityAd) -> bool| {
        let consumer = consumer.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let ad = consumer.fetch_ad(peer).await.unwrap().ad;
                if ready(&ad) {
                    return ad;
                }
                assert!(Instant::now() < deadline, "the ad never changed: {ad:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // Its ad says it is closed, and when it opens again; it is not paused.
    let ad = ad_when(|ad| ad.availability.is_some()).await;
    assert!(ad.accepting_jobs);
    assert!(!ad.is_open(UnixMillis::now()));
    let status = ad.availability.as_ref().unwrap().status(UnixMillis::now());
    assert_eq!((status.open, status.opens_at), (false, Some(back)));
    assert!(ad.is_open(back));
    assert_eq!(ad.pools, vec!["eu-west".to_owned()]);

    // The operator lifts the schedule: open at once, in the ads too.
    node.hours.set(None).unwrap();
    assert!(matches!(send(2).await.unwrap(), JobResponse::Done { .. }));
    let ad = ad_when(|ad| ad.availability.is_none()).await;
    assert!(ad.is_open(UnixMillis::now()));
    node.stop();
}

#[tokio::test]
async fn no_peer_can_open_a_fleet_link_to_a_node() {
    // Commands come only down the link the node itself opens to the server
    // it pinned: the node accepts the fleet protocol from nobody, so a
    // rogue server (or any peer) that dials it cannot command it.
    let models = crate::store_of("rogue", &["all-minilm-l6-v2"]);
    let node = node::start(config(models.clone(), models.join("node.key")))
        .await
        .unwrap();
    let peer = node.node_id().peer_id();
    let mut rogue_config = p2p::Config::new(p2p::Config::listen_loopback(), "rogue-server");
    rogue_config.reachability = p2p::Reachability::Client;
    let (rogue, _inbound, event_loop) = p2p::start(p2p::Keypair::generate_ed25519(), rogue_config)
        .await
        .unwrap();
    tokio::spawn(event_loop.run());
    rogue.connect(peer, node.p2p_addrs.clone()).await.unwrap();
    assert!(
        rogue.open_fleet_link(peer).await.is_err(),
        "the node took a fleet link it did not open"
    );
    // The node is untouched and still takes jobs.
    assert_eq!(node.admission.get(), Admission::Open);
    node.stop();
}

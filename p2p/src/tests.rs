//! Real swarms on loopback sockets.

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
async fn jobs_round_trip_over_tcp_and_over_quic() {
    let provider = spawn(true, vec![]).await;
    let addrs = provider.client.listen_addrs().await.unwrap();
    let provider_id = provider.client.local_peer_id();
    echo_jobs(provider.inbound, 1);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_jobs_and_ad_requests_from_many_consumers_all_get_answers() {
    // libp2p-stream takes inbound streams through a channel of one and drops
    // the ones that arrive while it is full: many consumers opening streams
    // at once lose some, unless they are opened again.
    let provider = spawn(true, vec![]).await;
    let addrs = provider.client.listen_addrs().await.unwrap();
    let provider_id = provider.client.local_peer_id();
    let ad = ad_for(&provider.key, 1, UnixMillis::now(), 1000);
    provider
        .client
        .publish_ad(SignedEnvelope::seal(&provider.key, &ad).unwrap())
        .await
        .unwrap();
    echo_jobs(provider.inbound, 1);
    let mut consumers = Vec::new();
    for _ in 0..16 {
        let consumer = spawn(false, vec![]).await;
        consumer
            .client
            .connect(provider_id, vec![addr_with(&addrs, "tcp")])
            .await
            .unwrap();
        consumers.push(consumer);
    }
    let calls = consumers.iter().enumerate().map(|(i, consumer)| {
        let client = consumer.client.clone();
        let ad = ad.clone();
        tokio::spawn(async move {
            let n = i as u8;
            let (fetched, answers) = tokio::join!(
                client.fetch_ad(provider_id),
                futures::future::join_all((0..3).map(|k| client.send_job(
                    provider_id,
                    vec![],
                    request(n * 3 + k)
                )))
            );
            assert_eq!(fetched.unwrap().ad, ad, "consumer {i}'s ad");
            for (k, answer) in answers.into_iter().enumerate() {
                match answer {
                    Ok(JobResponse::Done { receipt, .. }) => {
                        assert_eq!(receipt.payload, request(n * 3 + k as u8).job_id.to_string())
                    }
                    other => panic!("consumer {i}, job {k}: {other:?}"),
                }
            }
        })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap();
    }
}

#[tokio::test]
async fn long_outputs_stream_in_order_in_bounded_parts() {
    let provider = spawn(true, vec![]).await;
    let addrs = provider.client.listen_addrs().await.unwrap();
    let provider_id = provider.client.local_peer_id();
    // 200 vectors of 384 floats: ~380 KB, more than one part.
    echo_jobs(provider.inbound, 200);
    let consumer = spawn(false, vec![]).await;
    let mut call = consumer
        .client
        .call_job(provider_id, addrs, request(5))
        .await
        .unwrap();
    let mut updates = Vec::new();
    while let Some(u) = call.next().await.unwrap() {
        updates.push(u);
    }
    assert_eq!(updates[0], JobUpdate::Accepted { queue_position: 0 });
    let parts: Vec<u32> = updates
        .iter()
        .filter_map(|u| match u {
            JobUpdate::Output(wire::jobs::OutputPart::Embedding { first, .. }) => Some(*first),
            _ => None,
        })
        .collect();
    assert!(parts.len() > 1, "one part only: {parts:?}");
    assert!(parts.windows(2).all(|w| w[0] < w[1]));
    let Some(JobUpdate::Finished(JobResponse::Done {
        output: JobOutput::Embedding { vectors, .. },
        ..
    })) = updates.last()
    else {
        panic!("no Done at the end");
    };
    assert_eq!(vectors.len(), 200);
    assert!(vectors.iter().enumerate().all(|(i, v)| v[0] == i as f32));
}

#[tokio::test]
async fn consumer_cancel_reaches_the_provider() {
    let mut provider = spawn(true, vec![]).await;
    let addrs = provider.client.listen_addrs().await.unwrap();
    let consumer = spawn(false, vec![]).await;
    let call = consumer
        .client
        .call_job(provider.client.local_peer_id(), addrs, request(6))
        .await
        .unwrap();
    let job = provider.inbound.recv().await.unwrap();
    let mut signal = job.responder.cancel_signal();
    assert!(!signal.is_cancelled());
    call.cancel().await;
    tokio::time::timeout(Duration::from_secs(10), signal.cancelled())
        .await
        .expect("the provider never saw the cancel");
    assert!(signal.is_cancelled());
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
async fn refusals_and_missed_deadlines_reach_the_consumer() {
    let mut provider = spawn(true, vec![]).await;
    let addrs = provider.client.listen_addrs().await.unwrap();
    let provider_id = provider.client.local_peer_id();
    tokio::spawn(async move {
        // Refuse the first job; sit on the second past its deadline.
        let job = provider.inbound.recv().await.unwrap();
        job.responder
            .send(JobResponse::Refused {
                code: RefusalCode::Overloaded,
                message: "busy".into(),
            })
            .await
            .unwrap();
        let _held = provider.inbound.recv().await.unwrap();
        std::future::pending::<()>().await;
    });
    let consumer = spawn(false, vec![]).await;
    let refused = consumer
        .client
        .send_job(provider_id, addrs.clone(), request(7))
        .await
        .unwrap();
    assert!(matches!(
        refused,
        JobResponse::Refused {
            code: RefusalCode::Overloaded,
            ..
        }
    ));
    let mut late = request(8);
    late.deadline = UnixMillis(UnixMillis::now().0 + 100);
    let err = consumer
        .client
        .send_job(provider_id, addrs, late)
        .await
        .unwrap_err();
    assert_eq!(err, NetworkError::Timeout);
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
    assert!(
        matches!(err, NetworkError::UnsupportedProtocol(_)),
        "{err:?}"
    );
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

mod model_fetch {
    use std::io::Read;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::models::{DirSource, FetchError, ModelSource};
    use wire::models::PackageFile;

    /// Real files, served with faults on demand: a transfer of one file cut
    /// short, or a flipped byte. Records the offsets it was asked for.
    struct Faulty {
        inner: DirSource,
        cut: Mutex<Option<(String, u64)>>,
        flip: Mutex<Option<String>>,
        reads: Mutex<Vec<(String, u64)>>,
    }

    struct Flip(Box<dyn Read + Send>, bool);

    impl Read for Flip {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            if n > 0 && !self.1 {
                buf[0] ^= 0xff;
                self.1 = true;
            }
            Ok(n)
        }
    }

    impl ModelSource for Faulty {
        fn describe(&self, model: &wire::ModelHash) -> Option<Vec<PackageFile>> {
            self.inner.describe(model)
        }
        fn open(
            &self,
            model: &wire::ModelHash,
            file: &str,
            offset: u64,
        ) -> std::io::Result<Box<dyn Read + Send>> {
            self.reads.lock().unwrap().push((file.to_owned(), offset));
            let r = self.inner.open(model, file, offset)?;
            let mut cut = self.cut.lock().unwrap();
            if cut.as_ref().is_some_and(|(f, _)| f == file) {
                let (_, n) = cut.take().unwrap();
                return Ok(Box::new(r.take(n)));
            }
            if self.flip.lock().unwrap().as_deref() == Some(file) {
                return Ok(Box::new(Flip(r, false)));
            }
            Ok(r)
        }
    }

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("infernet-fetch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A model of three files, the weights 3 MiB of varied bytes.
    fn model_files(dir: &Path) -> (wire::ModelHash, Vec<u8>) {
        let weights: Vec<u8> = (0..3u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(dir.join("model.pt"), &weights).unwrap();
        std::fs::write(dir.join("manifest.json"), br#"{"name": "m"}"#).unwrap();
        std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
        (Sha256Digest::of(&weights), weights)
    }

    async fn provider(source: Arc<Faulty>) -> (Peer, Multiaddr) {
        let provider = spawn(false, vec![]).await;
        provider.client.serve_models(source).unwrap();
        let addr = addr_with(&provider.client.listen_addrs().await.unwrap(), "tcp");
        (provider, addr)
    }

    fn faulty(dir: &Path, model: wire::ModelHash) -> Arc<Faulty> {
        let mut inner = DirSource::default();
        inner
            .add(model, dir, "model.pt", &["manifest.json", "tokenizer.json"])
            .unwrap();
        Arc::new(Faulty {
            inner,
            cut: Mutex::new(None),
            flip: Mutex::new(None),
            reads: Mutex::new(Vec::new()),
        })
    }

    #[tokio::test]
    async fn an_interrupted_fetch_resumes_where_it_stopped_and_is_verified() {
        let src = temp("src");
        let (model, weights) = model_files(&src);
        let source = faulty(&src, model);
        *source.cut.lock().unwrap() = Some(("model.pt".into(), 1 << 20));
        let (provider, addr) = provider(source.clone()).await;
        let fetcher = spawn(false, vec![]).await;
        let peer = provider.key.public().to_peer_id();
        let dest = temp("dest");

        let first = fetcher
            .client
            .fetch_model(peer, vec![addr.clone()], model, &dest, None, |_| {})
            .await;
        match first {
            Err(FetchError::Interrupted { file, at, size }) => {
                assert_eq!(file, "model.pt");
                assert_eq!(at, 1 << 20);
                assert_eq!(size, 3 << 20);
            }
            other => panic!("expected an interrupted transfer, got {other:?}"),
        }
        assert_eq!(
            std::fs::metadata(dest.join("model.pt.part")).unwrap().len(),
            1 << 20
        );
        assert!(
            !dest.join("model.pt").exists(),
            "no final name before the hash is checked"
        );

        let mut last = None;
        let files = fetcher
            .client
            .fetch_model(peer, vec![addr], model, &dest, None, |p| last = Some(p))
            .await
            .unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(std::fs::read(dest.join("model.pt")).unwrap(), weights);
        assert!(!dest.join("model.pt.part").exists());
        let last = last.unwrap();
        assert_eq!(last.done, last.total);
        let model_reads: Vec<u64> = source
            .reads
            .lock()
            .unwrap()
            .iter()
            .filter(|(f, _)| f == "model.pt")
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(model_reads, vec![0, 1 << 20], "the second transfer resumed");
    }

    #[tokio::test]
    async fn a_corrupted_chunk_fails_the_hash_check_and_is_discarded() {
        let src = temp("src-corrupt");
        let (model, weights) = model_files(&src);
        let source = faulty(&src, model);
        *source.flip.lock().unwrap() = Some("model.pt".into());
        let (provider, addr) = provider(source.clone()).await;
        let fetcher = spawn(false, vec![]).await;
        let peer = provider.key.public().to_peer_id();
        let dest = temp("dest-corrupt");

        let bad = fetcher
            .client
            .fetch_model(peer, vec![addr.clone()], model, &dest, None, |_| {})
            .await;
        match bad {
            Err(FetchError::HashMismatch { file, expected, .. }) => {
                assert_eq!(file, "model.pt");
                assert_eq!(expected, model);
            }
            other => panic!("expected a hash mismatch, got {other:?}"),
        }
        assert!(!dest.join("model.pt").exists());
        assert!(
            !dest.join("model.pt.part").exists(),
            "corrupt bytes are not kept"
        );

        // An honest transfer afterwards succeeds; unknown models are refused.
        *source.flip.lock().unwrap() = None;
        fetcher
            .client
            .fetch_model(peer, vec![addr.clone()], model, &dest, None, |_| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(dest.join("model.pt")).unwrap(), weights);
        let unknown = fetcher
            .client
            .fetch_model(
                peer,
                vec![addr],
                Sha256Digest::of(b"nope"),
                &dest,
                None,
                |_| {},
            )
            .await;
        assert!(
            matches!(unknown, Err(FetchError::NotFound(_))),
            "{unknown:?}"
        );
    }
}

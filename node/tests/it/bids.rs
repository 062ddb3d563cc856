//! Priority by bid on a busy node, with the real tiny GPT-2 and one
//! sequence at a time: a job that bids more is served before jobs that
//! wait with less, its receipt charges the bid, and a bid that jumps
//! nobody costs nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use node::admission::Gate;
use node::engine::{DeviceChoice, Engine, EngineConfig};
use node::jobs::JobServer;
use p2p::JobResponse;
use tokio::sync::mpsc;
use wire::jobs::{GenerationParams, JobInput, JobRequest, Prompt, Receipt};
use wire::{JobId, MilliSats, NodeId, UnixMillis};

fn server() -> Arc<JobServer> {
    let root = crate::store_of("bids", &["tiny-gpt2"]);
    let config = EngineConfig {
        device: DeviceChoice::Cpu,
        // One sequence at a time: everything else waits in the queue.
        max_batch: 1,
        queue_depth: 8,
        ..Default::default()
    };
    let keypair = p2p::Keypair::generate_ed25519();
    Arc::new(JobServer {
        engine: Arc::new(Engine::load(&root, config).unwrap()),
        node_id: NodeId::from(keypair.public().to_peer_id()),
        keypair,
        active: node::admission::ActiveJobs::default(),
        admission: Gate::default(),
        hours: node::schedule::Hours::always(),
        bids: Default::default(),
    })
}

fn request(server: &JobServer, n: u8, max_tokens: u32, bid: u64) -> JobRequest {
    let offer = &server.engine.offers()[0];
    JobRequest {
        job_id: JobId::from_random([n; 16]),
        model_hash: offer.hash,
        input: JobInput::TextGeneration {
            prompt: Prompt::Text("Once upon a time".into()),
            params: GenerationParams {
                max_tokens,
                ..Default::default()
            },
        },
        max_price_msat: MilliSats(100_000 + bid),
        deadline: UnixMillis(UnixMillis::now().0 + 120_000),
        bid_msat: MilliSats(bid),
    }
}

/// Runs a job to its end: its receipt and when it ended.
fn spawn(
    server: &Arc<JobServer>,
    request: JobRequest,
    deltas: Option<mpsc::Sender<String>>,
) -> tokio::task::JoinHandle<(Receipt, Instant)> {
    let server = server.clone();
    tokio::spawn(async move {
        match server.answer(request, deltas).await {
            JobResponse::Done { receipt, .. } => (receipt.open().unwrap(), Instant::now()),
            other => panic!("{other:?}"),
        }
    })
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_higher_bid_is_served_first_and_pays_its_bid_only_when_it_jumped() {
    let server = server();
    let offer = server.engine.offers()[0].clone();
    let model = server.engine.get(&offer.hash).await.unwrap();

    // A long job occupies the only slot: its first text shows it runs.
    let (tx, mut first_text) = mpsc::channel(1024);
    let long = spawn(&server, request(&server, 1, 120, 0), Some(tx));
    first_text.recv().await.expect("the long job streams");

    // Two short jobs wait behind it: the second bids.
    let plain = spawn(&server, request(&server, 2, 4, 0), None);
    until("the plain job queued", || model.waiting().0 == 1).await;
    let bidder = spawn(&server, request(&server, 3, 4, 5_000), None);
    until("the bidder queued", || model.waiting().0 == 2).await;
    assert_eq!(model.waiting().1, Some(MilliSats(5_000)));
    assert_eq!(
        server.bids.top(),
        Some(MilliSats(5_000)),
        "the node shows the bid to beat"
    );

    let (long, _) = long.await.unwrap();
    let (bidder, bidder_done) = bidder.await.unwrap();
    let (plain, plain_done) = plain.await.unwrap();
    assert!(bidder_done < plain_done, "the bid went first");
    assert_eq!(bidder.priority_msat, MilliSats(5_000), "{bidder:?}");
    let metered = offer.price_for(bidder.usage.input_tokens, bidder.usage.output_tokens);
    assert_eq!(bidder.price_msat, MilliSats(metered.0 + 5_000));
    assert_eq!(plain.priority_msat, MilliSats(0));
    assert_eq!(long.priority_msat, MilliSats(0));
    assert_eq!(server.bids.top(), None, "nothing held any more");

    // On an idle node a bid jumps nobody and costs nothing.
    let (idle, _) = spawn(&server, request(&server, 4, 4, 3_000), None)
        .await
        .unwrap();
    assert_eq!(idle.priority_msat, MilliSats(0));
    assert_eq!(
        idle.price_msat,
        offer.price_for(idle.usage.input_tokens, idle.usage.output_tokens)
    );
}

#[tokio::test]
async fn a_stopped_generation_answers_with_what_it_made_and_charges_just_that() {
    let server = server();
    let offer = server.engine.offers()[0].clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, mut deltas) = mpsc::channel(1024);
    let job = {
        let server = server.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            server
                .answer_stoppable(request(&server, 9, 200, 0), Some(tx), Some(stop))
                .await
        })
    };
    let mut streamed = deltas.recv().await.expect("it streams");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (output, receipt) = match job.await.unwrap() {
        JobResponse::Done { output, receipt } => (output, receipt.open::<Receipt>().unwrap()),
        other => panic!("{other:?}"),
    };
    while let Ok(d) = deltas.try_recv() {
        streamed.push_str(&d);
    }
    let wire::jobs::JobOutput::TextGeneration {
        text,
        finish_reason,
    } = &output
    else {
        panic!("{output:?}")
    };
    assert_eq!(*finish_reason, wire::jobs::FinishReason::Stopped);
    assert_eq!(text, &streamed, "the output is what was streamed");
    let tokens = receipt.usage.output_tokens;
    assert!((1..120).contains(&tokens), "{tokens} tokens");
    assert_eq!(
        receipt.price_msat,
        offer.price_for(receipt.usage.input_tokens, tokens),
        "it charges what it generated"
    );
    assert_eq!(receipt.output_hash, output.digest());
}

//! The job protocol: round trips, streaming, cancels, failures, bursts.

use super::*;

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

//! Payouts against the real database, the test Lightning backend (real
//! signed invoices; a payment reveals the payee's real preimage), and a
//! real LNURL-pay service on a loopback port (Lightning addresses,
//! LUD-21 verify).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use payments::test_backend::TestLightning;
use payments::Lightning;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wire::billing::{NewPayout, PaymentStatus, PayoutSettings, PayoutSource};
use wire::{AccountId, JobId, MilliSats, UnixMillis};

use super::*;
use crate::ledger::{Book, Ledger, Movement, Payee};

fn acct(n: u8) -> AccountId {
    AccountId::from_random([n; 16])
}

struct World {
    payouts: Payouts,
    ledger: Ledger,
    /// The server's wallet.
    ours: TestLightning,
    /// Somebody else's wallet, paid by payouts.
    payee: TestLightning,
}

async fn world(tag: &str) -> World {
    let db = Db::temp(tag).await;
    let ledger = Ledger::new(db.clone(), 0, true);
    let ours = TestLightning::new();
    let payouts = Payouts::new(db, ledger.clone(), Some(Arc::new(ours.clone())));
    World {
        payouts,
        ledger,
        ours,
        payee: TestLightning::new(),
    }
}

async fn balance(ledger: &Ledger, book: Book) -> i64 {
    ledger.book_balance(&book).await.unwrap()
}

/// Waits for the payout to end, as a client would.
async fn ended(w: &World, account: &AccountId, id: &str) -> wire::billing::Payout {
    let p = w
        .payouts
        .get(account, id, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_ne!(p.status, PaymentStatus::Pending, "{p:?}");
    p
}

fn to_invoice(invoice: &str, from: PayoutSource) -> NewPayout {
    NewPayout {
        from,
        amount_msat: None,
        invoice: Some(invoice.to_owned()),
        address: None,
    }
}

/// Earnings for `operator`, as a job's charge would leave them.
async fn earn(ledger: &Ledger, operator: &AccountId, amount: u64) {
    let consumer = acct(200);
    let job = JobId::from_random(*uuid::Uuid::new_v4().as_bytes());
    ledger
        .credit(&consumer, MilliSats(amount), &job.to_string(), None)
        .await
        .unwrap();
    let held = MilliSats(amount);
    ledger
        .apply(&Movement::hold(&job, &consumer, held, UnixMillis::now()))
        .await
        .unwrap();
    let charge = Movement::charge(
        &job,
        &consumer,
        held,
        held,
        &Payee::Operator(operator.clone()),
        0,
        UnixMillis::now(),
    )
    .unwrap();
    ledger.apply(&charge).await.unwrap();
}

#[tokio::test]
async fn a_withdrawal_to_an_invoice_is_paid_once_with_its_proof() {
    let w = world("payout-invoice").await;
    let me = acct(1);
    w.ledger
        .credit(&me, MilliSats(100_000), "k", None)
        .await
        .unwrap();
    let invoice = w
        .payee
        .create_invoice(MilliSats(40_000), "withdrawal", 600)
        .await
        .unwrap();
    w.ours.set_fee(MilliSats(2_000));
    let payout = w
        .payouts
        .create(&me, to_invoice(&invoice.bolt11, PayoutSource::Balance))
        .await
        .unwrap();
    assert_eq!(payout.status, PaymentStatus::Pending);
    assert_eq!(payout.fee_reserve_msat, MilliSats(10_000));
    let done = ended(&w, &me, &payout.id).await;
    assert_eq!(done.status, PaymentStatus::Succeeded, "{done:?}");
    assert_eq!(done.fee_msat, Some(MilliSats(2_000)));
    let preimage = hex::decode(done.preimage.as_deref().unwrap()).unwrap();
    assert_eq!(hex::encode(Sha256::digest(preimage)), invoice.payment_hash);
    // The amount and the fee left; the rest of the reserve came back.
    assert_eq!(balance(&w.ledger, Book::Balance(me.clone())).await, 58_000);
    let summary = w.ledger.summary(&me).await.unwrap();
    assert_eq!(summary.in_flight_msat, MilliSats(0));
    assert_eq!(summary.paid_out_msat, MilliSats(42_000));

    // The same invoice again: refused, nothing moves.
    assert!(matches!(
        w.payouts
            .create(&me, to_invoice(&invoice.bolt11, PayoutSource::Balance))
            .await,
        Err(PayoutError::Duplicate)
    ));
    assert_eq!(balance(&w.ledger, Book::Balance(me.clone())).await, 58_000);
    assert_eq!(w.ours.sent().len(), 1);
    // Someone else's payout is missing to them.
    assert!(matches!(
        w.payouts.get(&acct(2), &payout.id, None).await,
        Err(PayoutError::NotFound(_))
    ));
    assert!(w.ledger.audit().await.unwrap().is_clean());
}

#[tokio::test]
async fn short_of_funds_or_bad_invoices_record_nothing() {
    let w = world("payout-refused").await;
    let me = acct(3);
    w.ledger
        .credit(&me, MilliSats(15_000), "k", None)
        .await
        .unwrap();
    // 10 sat + the 10 sat reserve > 15 sat.
    let invoice = w
        .payee
        .create_invoice(MilliSats(10_000), "too much", 600)
        .await
        .unwrap();
    assert!(matches!(
        w.payouts
            .create(&me, to_invoice(&invoice.bolt11, PayoutSource::Balance))
            .await,
        Err(PayoutError::Ledger(LedgerError::InsufficientFunds(_)))
    ));
    // Earnings are a book of their own: none.
    let small = w
        .payee
        .create_invoice(MilliSats(1_000), "small", 600)
        .await
        .unwrap();
    assert!(matches!(
        w.payouts
            .create(&me, to_invoice(&small.bolt11, PayoutSource::Earnings))
            .await,
        Err(PayoutError::Ledger(LedgerError::InsufficientFunds(_)))
    ));
    for bad in [
        NewPayout {
            from: PayoutSource::Balance,
            amount_msat: None,
            invoice: Some("lnbc1garbage".into()),
            address: None,
        },
        NewPayout {
            from: PayoutSource::Balance,
            amount_msat: Some(MilliSats(2_000)),
            invoice: Some(small.bolt11.clone()),
            address: None,
        },
        NewPayout {
            from: PayoutSource::Balance,
            amount_msat: None,
            invoice: None,
            address: None,
        },
    ] {
        assert!(
            matches!(
                w.payouts.create(&me, bad.clone()).await,
                Err(PayoutError::BadRequest(_))
            ),
            "{bad:?}"
        );
    }
    assert!(w.payouts.list(&me, 10).await.unwrap().is_empty());
    assert_eq!(balance(&w.ledger, Book::Balance(me.clone())).await, 15_000);
}

#[tokio::test]
async fn a_failed_payment_returns_the_money_and_an_unreachable_one_is_retried_once() {
    let w = world("payout-fail").await;
    let me = acct(4);
    w.ledger
        .credit(&me, MilliSats(200_000), "k", None)
        .await
        .unwrap();
    let first = w
        .payee
        .create_invoice(MilliSats(50_000), "fails", 600)
        .await
        .unwrap();
    w.ours.fail_payments(Some("no route"));
    let p = w
        .payouts
        .create(&me, to_invoice(&first.bolt11, PayoutSource::Balance))
        .await
        .unwrap();
    let done = ended(&w, &me, &p.id).await;
    assert_eq!(done.status, PaymentStatus::Failed);
    assert!(done.error.as_deref().unwrap().contains("no route"));
    assert_eq!(balance(&w.ledger, Book::Balance(me.clone())).await, 200_000);
    w.ours.fail_payments(None);

    // The network unreachable: pending, money in flight, tried again.
    w.ours.set_unreachable(true);
    let second = w
        .payee
        .create_invoice(MilliSats(30_000), "retried", 600)
        .await
        .unwrap();
    let p = w
        .payouts
        .create(&me, to_invoice(&second.bolt11, PayoutSource::Balance))
        .await
        .unwrap();
    // Its first try ends without an answer: still pending, one attempt.
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let p = w.payouts.get(&me, &p.id, None).await.unwrap();
            if p.attempts > 0 {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(seen.status, PaymentStatus::Pending);
    assert_eq!(
        w.ledger.summary(&me).await.unwrap().in_flight_msat,
        MilliSats(40_000)
    );
    w.ours.set_unreachable(false);
    let later = UnixMillis::now().plus(Duration::from_secs(3600));
    w.payouts.tick(later).await.unwrap();
    w.payouts.tick(later).await.unwrap();
    let done = ended(&w, &me, &p.id).await;
    assert_eq!(done.status, PaymentStatus::Succeeded);
    assert_eq!(w.ours.sent().len(), 1, "paid once");
    assert_eq!(balance(&w.ledger, Book::Balance(me.clone())).await, 170_000);
    assert!(w.ledger.audit().await.unwrap().is_clean());
}

/// A Lightning address service on a loopback port: LUD-16 (well-known
/// URL), LUD-06 (callback, metadata hash) and LUD-21 (verify), its
/// invoices issued by `payee`. It learns of payments from the paying
/// wallet, as the network would tell it.
async fn lnurl_service(payee: TestLightning, payer: TestLightning) -> String {
    #[derive(Clone)]
    struct Svc {
        base: String,
        payee: TestLightning,
        payer: TestLightning,
    }
    const METADATA: &str = r#"[["text/plain","Pay alice"]]"#;
    async fn well_known(State(s): State<Svc>, Path(name): Path<String>) -> Json<Value> {
        if name != "alice" {
            return Json(json!({ "status": "ERROR", "reason": "no such user" }));
        }
        Json(json!({
            "callback": format!("{}/cb/alice", s.base),
            "minSendable": 1000, "maxSendable": 1_000_000_000,
            "metadata": METADATA, "tag": "payRequest"
        }))
    }
    async fn callback(
        State(s): State<Svc>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> Json<Value> {
        let amount: u64 = q["amount"].parse().unwrap();
        let hash: [u8; 32] = Sha256::digest(METADATA.as_bytes()).into();
        let invoice = s
            .payee
            .create_invoice_for_hash(MilliSats(amount), hash, 600)
            .unwrap();
        Json(json!({
            "pr": invoice.bolt11, "routes": [],
            "verify": format!("{}/verify/{}", s.base, invoice.payment_hash)
        }))
    }
    async fn verify(State(s): State<Svc>, Path(hash): Path<String>) -> Json<Value> {
        let paid = s.payer.sent().into_iter().find(|p| p.payment_hash == hash);
        Json(json!({
            "status": "OK", "settled": paid.is_some(),
            "preimage": paid.map(|p| p.preimage), "pr": ""
        }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let svc = Svc {
        base: base.clone(),
        payee,
        payer,
    };
    let app = Router::new()
        .route("/.well-known/lnurlp/{name}", get(well_known))
        .route("/cb/alice", get(callback))
        .route("/verify/{hash}", get(verify))
        .with_state(svc);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_lightning_address_is_paid_and_verified() {
    let w = world("payout-address").await;
    let host = lnurl_service(w.payee.clone(), w.ours.clone()).await;
    let me = acct(5);
    earn(&w.ledger, &me, 500_000).await;
    let p = w
        .payouts
        .create(
            &me,
            NewPayout {
                from: PayoutSource::Earnings,
                amount_msat: Some(MilliSats(300_000)),
                invoice: None,
                address: Some(format!("alice@{host}")),
            },
        )
        .await
        .unwrap();
    assert_eq!(p.address.as_deref(), Some(format!("alice@{host}").as_str()));
    let done = ended(&w, &me, &p.id).await;
    assert_eq!(done.status, PaymentStatus::Succeeded, "{done:?}");
    assert_eq!(done.verified, Some(true), "LUD-21 says it settled");
    assert_eq!(
        balance(&w.ledger, Book::Earnings(me.clone())).await,
        200_000
    );
    // An address its service does not know: refused, nothing recorded.
    let err = w
        .payouts
        .create(
            &me,
            NewPayout {
                from: PayoutSource::Earnings,
                amount_msat: Some(MilliSats(1_000)),
                invoice: None,
                address: Some(format!("bob@{host}")),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no such user"), "{err}");
    assert_eq!(w.payouts.list(&me, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn earnings_over_the_threshold_are_paid_out_automatically_with_backoff() {
    let w = world("payout-auto").await;
    let host = lnurl_service(w.payee.clone(), w.ours.clone()).await;
    let operator = acct(6);
    // Bad settings are refused.
    for bad in [
        PayoutSettings {
            address: Some("not an address".into()),
            threshold_msat: Some(MilliSats(100_000)),
        },
        PayoutSettings {
            address: None,
            threshold_msat: Some(MilliSats(100_000)),
        },
        PayoutSettings {
            address: Some(format!("alice@{host}")),
            threshold_msat: Some(MilliSats(5)),
        },
    ] {
        assert!(w.payouts.set_settings(&operator, bad).await.is_err());
    }
    let settings = PayoutSettings {
        address: Some(format!("alice@{host}")),
        threshold_msat: Some(MilliSats(100_000)),
    };
    w.payouts
        .set_settings(&operator, settings.clone())
        .await
        .unwrap();
    assert_eq!(w.payouts.settings(&operator).await.unwrap(), settings);

    // Under the threshold: nothing.
    earn(&w.ledger, &operator, 60_000).await;
    w.payouts.tick(UnixMillis::now()).await.unwrap();
    assert!(w.payouts.list(&operator, 10).await.unwrap().is_empty());

    // Over it: all of it that fits with the fee reserve goes out.
    earn(&w.ledger, &operator, 60_000).await;
    w.payouts.tick(UnixMillis::now()).await.unwrap();
    let list = w.payouts.list(&operator, 10).await.unwrap();
    assert_eq!(list.len(), 1);
    let done = ended(&w, &operator, &list[0].id).await;
    assert!(done.automatic);
    assert_eq!(done.status, PaymentStatus::Succeeded);
    assert_eq!(done.amount_msat, MilliSats(110_000));
    assert_eq!(
        balance(&w.ledger, Book::Earnings(operator.clone())).await,
        10_000
    );

    // A payout that fails returns the money and backs off: the next
    // round (at once) starts none.
    earn(&w.ledger, &operator, 200_000).await;
    w.ours.fail_payments(Some("no route"));
    w.payouts.tick(UnixMillis::now()).await.unwrap();
    let list = w.payouts.list(&operator, 10).await.unwrap();
    assert_eq!(list.len(), 2);
    let failed = ended(&w, &operator, &list[0].id).await;
    assert_eq!(failed.status, PaymentStatus::Failed);
    w.ours.fail_payments(None);
    w.payouts.tick(UnixMillis::now()).await.unwrap();
    assert_eq!(w.payouts.list(&operator, 10).await.unwrap().len(), 2);
    // After the backoff it goes out.
    let later = UnixMillis::now().plus(Duration::from_secs(600));
    w.payouts.tick(later).await.unwrap();
    let list = w.payouts.list(&operator, 10).await.unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(
        ended(&w, &operator, &list[0].id).await.status,
        PaymentStatus::Succeeded
    );
    assert!(w.ledger.audit().await.unwrap().is_clean());
}

#[test]
fn the_largest_payout_leaves_room_for_its_fee_reserve() {
    assert_eq!(largest_payout(0), None);
    assert_eq!(largest_payout(10_999), None);
    assert_eq!(largest_payout(11_000), Some(MilliSats(1_000)));
    assert_eq!(largest_payout(120_000), Some(MilliSats(110_000)));
    assert_eq!(largest_payout(10_100_000), Some(MilliSats(10_000_000)));
    for available in [11_000u64, 99_999, 1_234_567, 10_000_000_000] {
        let a = largest_payout(available).unwrap();
        assert!(a.0 + fee_reserve(a).0 <= available);
        assert_eq!(a.0 % 1000, 0);
    }
}

#[tokio::test]
async fn an_unenrolled_node_is_paid_at_its_signed_address() {
    let db = Db::temp("payout-node").await;
    let ledger = Ledger::new(db.clone(), 0, true);
    let ours = TestLightning::new();
    let registry = crate::registry::Registry::open(db.clone(), testkit::fixtures::node_id(200))
        .await
        .unwrap();
    let payouts = Payouts::new(db, ledger.clone(), Some(Arc::new(ours.clone())))
        .paying_nodes(registry.clone(), MilliSats(50_000));
    let host = lnurl_service(TestLightning::new(), ours.clone()).await;
    let node = testkit::fixtures::node_id(7);
    let registration = wire::registry::Registration {
        node_id: node,
        timestamp: UnixMillis::now(),
        multiaddrs: vec![],
        hardware: testkit::fixtures::hardware(),
        models: vec![],
        version: wire::VERSION.to_owned(),
        heartbeat_interval_ms: 1000,
        payout_address: Some(format!("alice@{host}")),
    };
    let info = registry
        .register(&registration, UnixMillis::now())
        .await
        .unwrap();
    assert_eq!(info.payout_address, registration.payout_address);

    // Its jobs earn into its pending book.
    let consumer = acct(9);
    ledger
        .credit(&consumer, MilliSats(100_000), "k", None)
        .await
        .unwrap();
    let job = JobId::from_random([7; 16]);
    let held = MilliSats(80_000);
    ledger
        .apply(&Movement::hold(&job, &consumer, held, UnixMillis::now()))
        .await
        .unwrap();
    ledger
        .apply(
            &Movement::charge(
                &job,
                &consumer,
                held,
                held,
                &Payee::Node(node),
                0,
                UnixMillis::now(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(balance(&ledger, Book::Pending(node)).await, 80_000);

    payouts.tick(UnixMillis::now()).await.unwrap();
    // Paid: all that fits with the fee reserve (fee 0 here, so the reserve
    // returns to its pending book).
    assert_eq!(ours.sent().len(), 1);
    assert_eq!(ours.sent()[0].amount, MilliSats(70_000));
    assert_eq!(balance(&ledger, Book::Pending(node)).await, 10_000);
    // Under the threshold now: nothing more.
    payouts.tick(UnixMillis::now()).await.unwrap();
    assert_eq!(ours.sent().len(), 1);
    assert!(ledger.audit().await.unwrap().is_clean());
}

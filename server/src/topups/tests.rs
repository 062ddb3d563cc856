//! Top-ups against the real database and the test Lightning backend
//! (real signed BOLT11 invoices, paid when the test says so).

use std::sync::Arc;
use std::time::Duration;

use payments::test_backend::TestLightning;
use wire::billing::PaymentStatus;
use wire::{AccountId, MilliSats, UnixMillis};

use super::*;
use crate::ledger::{Book, Ledger};

fn acct(n: u8) -> AccountId {
    AccountId::from_random([n; 16])
}

async fn setup(tag: &str) -> (Topups, Ledger, TestLightning) {
    let db = Db::temp(tag).await;
    let ledger = Ledger::new(db.clone(), 0, true);
    let test = TestLightning::new();
    let topups = Topups::new(db, ledger.clone(), Some(Arc::new(test.clone())));
    (topups, ledger, test)
}

async fn balance(ledger: &Ledger, account: &AccountId) -> i64 {
    ledger
        .book_balance(&Book::Balance(account.clone()))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_paid_invoice_credits_its_account_once() {
    let (topups, ledger, test) = setup("topup-once").await;
    let me = acct(1);
    let topup = topups.create(&me, MilliSats(21_000)).await.unwrap();
    assert_eq!(topup.status, PaymentStatus::Pending);
    let parsed = payments::parse_invoice(&topup.invoice).unwrap();
    assert_eq!(parsed.amount, Some(MilliSats(21_000)));
    assert_eq!(parsed.payment_hash, topup.payment_hash);
    assert!(topup.expires_at > UnixMillis::now());
    assert!(topup.qr_svg.as_deref().unwrap().contains("<svg"));

    // The follower credits it from the backend's event; someone waiting
    // on the top-up sees it change without polling.
    tokio::spawn(topups.clone().follow(Duration::from_secs(3600)));
    let waiter = {
        let topups = topups.clone();
        let (me, id) = (me.clone(), topup.id.clone());
        tokio::spawn(async move { topups.get(&me, &id, Some(Duration::from_secs(30))).await })
    };
    test.settle(&topup.invoice).unwrap();
    let seen = waiter.await.unwrap().unwrap();
    assert_eq!(seen.status, PaymentStatus::Succeeded);
    assert!(seen.paid_at.is_some());
    assert_eq!(balance(&ledger, &me).await, 21_000);

    // A duplicate notification, a reconciliation, a direct second credit:
    // nothing moves again.
    test.settle(&topup.invoice).unwrap();
    assert_eq!(
        topups
            .paid(&topup.payment_hash, MilliSats(21_000), UnixMillis::now())
            .await
            .unwrap(),
        Some(Applied::AlreadyDone)
    );
    let done = topups.reconcile(UnixMillis::now()).await.unwrap();
    assert_eq!(done, Reconciled::default());
    assert_eq!(balance(&ledger, &me).await, 21_000);
    let summary = ledger.summary(&me).await.unwrap();
    assert_eq!(summary.topped_up_msat, MilliSats(21_000));
    assert!(ledger.audit().await.unwrap().is_clean());

    // Someone else's top-up is missing to them, as one that never was.
    let other = acct(2);
    assert!(matches!(
        topups.get(&other, &topup.id, None).await,
        Err(TopupError::NotFound(_))
    ));
    assert!(topups.list(&other, 10).await.unwrap().is_empty());
    assert_eq!(topups.list(&me, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_credits_of_one_invoice_move_money_once() {
    let (topups, ledger, test) = setup("topup-race").await;
    let me = acct(3);
    let topup = topups.create(&me, MilliSats(5_000)).await.unwrap();
    test.settle_silently(&topup.invoice).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let topups = topups.clone();
        let hash = topup.payment_hash.clone();
        tasks.push(tokio::spawn(async move {
            topups
                .paid(&hash, MilliSats(5_000), UnixMillis::now())
                .await
        }));
    }
    tasks.push({
        let topups = topups.clone();
        tokio::spawn(async move { topups.reconcile(UnixMillis::now()).await.map(|_| None) })
    });
    let mut moved = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == Some(Applied::Moved) {
            moved += 1;
        }
    }
    assert_eq!(moved, 1);
    assert_eq!(balance(&ledger, &me).await, 5_000);
    assert!(ledger.audit().await.unwrap().is_clean());
}

#[tokio::test]
async fn reconciliation_credits_a_missed_payment_and_expires_the_unpaid() {
    let (topups, ledger, test) = setup("topup-reconcile").await;
    let me = acct(4);
    let paid = topups.create(&me, MilliSats(7_000)).await.unwrap();
    let topups_short = topups.clone().with_expiry(1);
    let unpaid = topups_short.create(&me, MilliSats(9_000)).await.unwrap();
    // Paid, but its event lost.
    test.settle_silently(&paid.invoice).unwrap();
    assert_eq!(balance(&ledger, &me).await, 0);
    // Past the short invoice's expiry (1 s; BOLT11 counts whole seconds).
    let wait = unpaid.expires_at.0.saturating_sub(UnixMillis::now().0) + 50;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let done = topups.reconcile(UnixMillis::now()).await.unwrap();
    assert_eq!(
        done,
        Reconciled {
            credited: 1,
            expired: 1
        }
    );
    assert_eq!(balance(&ledger, &me).await, 7_000);
    let unpaid = topups.get(&me, &unpaid.id, None).await.unwrap();
    assert_eq!(unpaid.status, PaymentStatus::Expired);
    // An expired invoice cannot be paid any more.
    assert!(test.settle(&unpaid.invoice).is_err());
    assert_eq!(
        topups.reconcile(UnixMillis::now()).await.unwrap(),
        Reconciled::default()
    );
}

#[tokio::test]
async fn bad_amounts_and_servers_without_lightning_are_refused() {
    let (topups, _, _) = setup("topup-bad").await;
    let me = acct(5);
    for bad in [0, 999, 1_500, MAX_TOPUP + 1000] {
        assert!(
            matches!(
                topups.create(&me, MilliSats(bad)).await,
                Err(TopupError::BadRequest(_))
            ),
            "{bad}"
        );
    }
    assert!(topups.list(&me, 10).await.unwrap().is_empty());
    for _ in 0..MAX_OPEN {
        topups.create(&me, MilliSats(1_000)).await.unwrap();
    }
    assert!(matches!(
        topups.create(&me, MilliSats(1_000)).await,
        Err(TopupError::TooManyOpen(_))
    ));

    let db = Db::temp("topup-none").await;
    let ledger = Ledger::new(db.clone(), 0, false);
    let none = Topups::new(db, ledger, None);
    assert!(matches!(
        none.create(&me, MilliSats(1_000)).await,
        Err(TopupError::Disabled)
    ));
}

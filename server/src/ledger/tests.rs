//! The ledger against the real database: idempotency, funds, and a
//! property test of many concurrent random movements.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wire::{AccountId, JobId, MilliSats, NodeId, UnixMillis};

use super::*;

fn acct(n: u8) -> AccountId {
    AccountId::from_random([n; 16])
}

async fn ledger(tag: &str) -> Ledger {
    Ledger::new(Db::temp(tag).await, 100, false)
}

#[tokio::test]
async fn a_movement_applies_once_and_a_book_never_goes_negative() {
    let ledger = ledger("once").await;
    let me = acct(1);
    assert_eq!(
        ledger
            .credit(&me, MilliSats(5_000), "k1", None)
            .await
            .unwrap(),
        Applied::Moved
    );
    assert_eq!(
        ledger
            .credit(&me, MilliSats(5_000), "k1", None)
            .await
            .unwrap(),
        Applied::AlreadyDone,
        "the same key credits once"
    );
    let job = JobId::from_random([9; 16]);
    let hold = Movement::hold(&job, &me, MilliSats(6_000), UnixMillis(1));
    assert!(matches!(
        ledger.apply(&hold).await,
        Err(LedgerError::InsufficientFunds(book)) if book == format!("balance:{me}")
    ));
    assert_eq!(
        ledger
            .book_balance(&Book::Balance(me.clone()))
            .await
            .unwrap(),
        5_000
    );
    let hold = Movement::hold(&job, &me, MilliSats(4_000), UnixMillis(2));
    assert_eq!(ledger.apply(&hold).await.unwrap(), Applied::Moved);
    let node = testkit::fixtures::node_id(3);
    let charge = Movement::charge(
        &job,
        &me,
        MilliSats(4_000),
        MilliSats(1_000),
        &Payee::Node(node),
        100,
        UnixMillis(3),
    )
    .unwrap();
    assert_eq!(ledger.apply(&charge).await.unwrap(), Applied::Moved);
    let release = Movement::release(&job, &me, MilliSats(4_000), UnixMillis(4));
    assert_eq!(
        ledger.apply(&release).await.unwrap(),
        Applied::AlreadyDone,
        "a job is settled once"
    );
    let summary = ledger.summary(&me).await.unwrap();
    assert_eq!(summary.balance_msat, MilliSats(4_000));
    assert_eq!(summary.held_msat, MilliSats(0));
    assert_eq!(summary.spent_msat, MilliSats(1_000));
    assert_eq!(summary.topped_up_msat, MilliSats(5_000));
    assert_eq!(
        ledger.book_balance(&Book::Pending(node)).await.unwrap(),
        990
    );
    assert_eq!(ledger.book_balance(&Book::Fees).await.unwrap(), 10);
    // The node's operator enrols it: what it earned is theirs.
    let operator = acct(2);
    assert_eq!(
        ledger.claim_pending(&node, &operator).await.unwrap(),
        MilliSats(990)
    );
    assert_eq!(
        ledger.claim_pending(&node, &operator).await.unwrap(),
        MilliSats(0)
    );
    let theirs = ledger.summary(&operator).await.unwrap();
    assert_eq!(theirs.earnings_msat, MilliSats(990));
    assert_eq!(theirs.earned_total_msat, MilliSats(990));
    let audit = ledger.audit().await.unwrap();
    assert!(audit.is_clean(), "{audit:?}");
    assert_eq!(audit.movements, 4);
}

#[tokio::test]
async fn history_pages_newest_first_and_only_the_owners() {
    let ledger = ledger("history").await;
    let me = acct(1);
    let them = acct(2);
    for i in 0..7u64 {
        let m = Movement::credit(
            &me,
            MilliSats(1_000 + i),
            &format!("c{i}"),
            UnixMillis(100 + i),
            None,
        );
        ledger.apply(&m).await.unwrap();
    }
    ledger
        .credit(&them, MilliSats(1), "theirs", None)
        .await
        .unwrap();
    let first = ledger.history(&me, None, 3).await.unwrap();
    let amounts: Vec<i64> = first.postings.iter().map(|p| p.amount_msat).collect();
    assert_eq!(amounts, [1_006, 1_005, 1_004]);
    let second = ledger.history(&me, first.next.as_deref(), 3).await.unwrap();
    let amounts: Vec<i64> = second.postings.iter().map(|p| p.amount_msat).collect();
    assert_eq!(amounts, [1_003, 1_002, 1_001]);
    let last = ledger
        .history(&me, second.next.as_deref(), 3)
        .await
        .unwrap();
    assert_eq!(last.postings.len(), 1);
    assert!(last.next.is_none());
    assert_eq!(last.postings[0].balance_after_msat, 1_000);
    assert!(matches!(
        ledger.history(&me, Some("garbage"), 3).await,
        Err(LedgerError::BadRequest(_))
    ));
}

/// A small deterministic generator: the property test's runs repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the test expects every book to hold: only movements the ledger
/// said it applied count.
#[derive(Default)]
struct Model {
    books: HashMap<String, i64>,
    settled: HashMap<String, usize>,
}

impl Model {
    fn applied(&mut self, m: &Movement) {
        for (book, amount) in m.postings() {
            *self.books.entry(book.key()).or_default() += amount;
        }
        if let Some(job) = &m.job_id {
            if m.key == Movement::settle_key(job) {
                *self.settled.entry(job.to_string()).or_default() += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_random_movements_keep_the_books_exact() {
    let ops: u64 = std::env::var("INFERNET_LEDGER_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        // scripts/test.sh runs 10 000; a quick run by hand, fewer.
        .unwrap_or(2_000);
    let ledger = ledger("property").await;
    let model = Arc::new(Mutex::new(Model::default()));
    let consumers: Vec<AccountId> = (1..=6).map(acct).collect();
    let operators: Vec<AccountId> = (101..=103).map(acct).collect();
    let nodes: Vec<NodeId> = (1..=4).map(testkit::fixtures::node_id).collect();
    let workers: u64 = std::env::var("INFERNET_LEDGER_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (ledger, model) = (ledger.clone(), model.clone());
        let (consumers, operators, nodes) = (consumers.clone(), operators.clone(), nodes.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
            let mut done = 0u64;
            let apply = |m: Movement| {
                let (ledger, model) = (ledger.clone(), model.clone());
                async move {
                    let r = ledger.apply(&m).await;
                    if let Ok(Applied::Moved) = r {
                        model.lock().unwrap().applied(&m);
                    }
                    r
                }
            };
            let mut i = 0u64;
            while done < ops / workers {
                i += 1;
                let now = UnixMillis(1_000_000 + w * 1_000_000 + i);
                let me = &consumers[rng.below(consumers.len() as u64) as usize];
                match rng.below(10) {
                    // A top-up, its notification sometimes delivered twice.
                    0 | 1 => {
                        let id = format!("pay-{w}-{i}");
                        let m = Movement::topup(me, &id, MilliSats(1 + rng.below(50_000)), now);
                        apply(m.clone()).await.unwrap();
                        done += 1;
                        if rng.below(3) == 0 {
                            assert_eq!(apply(m).await.unwrap(), Applied::AlreadyDone);
                            done += 1;
                        }
                    }
                    // A job: hold, then charge or release, with duplicates
                    // and both racing.
                    2..=6 => {
                        let job = JobId::from_random({
                            let mut b = [0u8; 16];
                            b[..8].copy_from_slice(&w.to_le_bytes());
                            b[8..].copy_from_slice(&i.to_le_bytes());
                            b
                        });
                        let budget = MilliSats(1 + rng.below(20_000));
                        done += 1;
                        match apply(Movement::hold(&job, me, budget, now)).await {
                            Ok(Applied::Moved) => {}
                            Err(LedgerError::InsufficientFunds(_)) => continue,
                            other => panic!("hold: {other:?}"),
                        }
                        let price = MilliSats(rng.below(budget.0 + 1));
                        let node = nodes[rng.below(nodes.len() as u64) as usize];
                        let payee = if rng.below(2) == 0 {
                            Payee::Node(node)
                        } else {
                            Payee::Operator(operators[rng.below(3) as usize].clone())
                        };
                        let charge =
                            Movement::charge(&job, me, budget, price, &payee, 100, now).unwrap();
                        let release = Movement::release(&job, me, budget, now);
                        let (a, b) = match rng.below(3) {
                            0 => (charge.clone(), charge),
                            1 => (release.clone(), charge),
                            _ => (charge, release),
                        };
                        let (ra, rb) = tokio::join!(apply(a), apply(b));
                        done += 2;
                        let moved = [ra.unwrap(), rb.unwrap()]
                            .iter()
                            .filter(|r| **r == Applied::Moved)
                            .count();
                        assert_eq!(moved, 1, "job {job} settled once");
                    }
                    // A payout from earnings: settled or failed, once.
                    7 | 8 => {
                        let op = &operators[rng.below(3) as usize];
                        let id = format!("out-{w}-{i}");
                        let amount = MilliSats(1 + rng.below(5_000));
                        done += 1;
                        match apply(Movement::payout(
                            Book::Earnings(op.clone()),
                            &id,
                            amount,
                            now,
                        ))
                        .await
                        {
                            Ok(Applied::Moved) => {}
                            Err(LedgerError::InsufficientFunds(_)) => continue,
                            other => panic!("payout: {other:?}"),
                        }
                        let ok = Movement::payout_settled(
                            &id,
                            amount,
                            amount,
                            Book::Earnings(op.clone()),
                            now,
                        );
                        let failed =
                            Movement::payout_failed(&id, Book::Earnings(op.clone()), amount, now);
                        let (ra, rb) = if rng.below(2) == 0 {
                            tokio::join!(apply(ok), apply(failed))
                        } else {
                            tokio::join!(apply(failed), apply(ok))
                        };
                        done += 2;
                        let moved = [ra.unwrap(), rb.unwrap()]
                            .iter()
                            .filter(|r| **r == Applied::Moved)
                            .count();
                        assert_eq!(moved, 1, "payout {id} ended once");
                    }
                    // An operator enrols a node: its pending earnings move.
                    _ => {
                        let node = nodes[rng.below(nodes.len() as u64) as usize];
                        let op = &operators[rng.below(3) as usize];
                        let moved = ledger.claim_pending(&node, op).await.unwrap();
                        if moved.0 > 0 {
                            let mut model = model.lock().unwrap();
                            *model.books.entry(Book::Pending(node).key()).or_default() -=
                                moved.0 as i64;
                            *model
                                .books
                                .entry(Book::Earnings(op.clone()).key())
                                .or_default() += moved.0 as i64;
                        }
                        done += 1;
                    }
                }
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let audit = ledger.audit().await.unwrap();
    assert!(audit.is_clean(), "{audit:?}");
    let (books, settled) = {
        let model = model.lock().unwrap();
        (model.books.clone(), model.settled.clone())
    };
    for (book, expected) in &books {
        let held = ledger.store.book_balance(book).await.unwrap();
        assert_eq!(held, *expected, "book {book}");
        if book.starts_with("escrow:") || book.starts_with("payout:") {
            assert_eq!(held, 0, "{book} is settled");
        }
    }
    assert!(settled.values().all(|n| *n == 1));
    let ms = elapsed.as_millis().max(1);
    eprintln!(
        "{total} operations ({} movements, {} postings) in {ms} ms: {} operations/s",
        audit.movements,
        audit.postings,
        u128::from(total) * 1000 / ms
    );
}

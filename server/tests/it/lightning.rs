//! Lightning through real processes, with the test backend (real regtest
//! invoices, settled by `server admin test-pay`) and the real Breez worker
//! offline: top-ups credited once, live and after a missed event;
//! withdrawals paid once and private; a clear 503 when Breez's network
//! cannot be reached.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::billing::{account, code, get, msat};
use crate::harness::{eventually, Server};

#[test]
fn lightning_top_ups_are_credited_once_live_and_after_a_missed_event() {
    let server = Server::start_with(&["--lightning", "test", "--lightning-reconcile-secs", "1"]);
    let (page, me, me_id) = account(&server, b"billing test: a top-up wallet!!!");
    let summary = get(&me, &server, "/api/v1/billing");
    assert_eq!(summary["lightning"], true);
    assert_eq!(msat(&summary, "balance_msat"), 0);

    // Bad amounts: 400, nothing issued.
    for bad in [
        json!({ "amount_msat": 0 }),
        json!({ "amount_msat": 1500 }),
        json!({}),
    ] {
        let r = me
            .post(server.url("/api/v1/billing/topups"))
            .json(&bad)
            .send()
            .unwrap();
        assert!(r.status().is_client_error(), "{bad}: {}", r.status());
        let body: Value = r.json().unwrap();
        assert!(body["error"]["message"].as_str().is_some(), "{body}");
    }

    // An invoice, with its QR code.
    let r = me
        .post(server.url("/api/v1/billing/topups"))
        .json(&json!({ "amount_msat": 2_000_000 }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let topup: Value = r.json().unwrap();
    assert_eq!(topup["status"], "pending");
    let invoice = topup["invoice"].as_str().unwrap().to_owned();
    assert!(invoice.starts_with("lnbcrt20u"), "{invoice}");
    assert!(topup["qr_svg"].as_str().unwrap().starts_with("<?xml"));
    let id = topup["id"].as_str().unwrap().to_owned();

    // Someone waiting on it sees it paid as soon as it is (long poll), and
    // the balance has it.
    let waiter = {
        let me = me.clone();
        let url = server.url(&format!("/api/v1/billing/topups/{id}?wait_secs=30"));
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let v: Value = me.get(url).send().unwrap().json().unwrap();
            (v, started.elapsed())
        })
    };
    let (status, paid, err) = server.admin(&["test-pay", &invoice]);
    assert!(status.success(), "{err}");
    assert!(paid.contains("\"preimage\""), "{paid}");
    let (seen, waited) = waiter.join().unwrap();
    assert_eq!(seen["status"], "succeeded", "{seen}");
    assert!(waited < Duration::from_secs(25), "{waited:?}");
    let summary = get(&me, &server, "/api/v1/billing");
    assert_eq!(msat(&summary, "balance_msat"), 2_000_000);
    assert_eq!(msat(&summary, "topped_up_msat"), 2_000_000);

    // Paying (and being told) again moves nothing.
    let (status, _, _) = server.admin(&["test-pay", &invoice]);
    assert!(status.success());
    let history = get(&me, &server, "/api/v1/billing/history");
    let postings = history["postings"].as_array().unwrap();
    assert_eq!(postings.len(), 1, "{history}");
    assert_eq!(postings[0]["kind"], "topup");
    assert_eq!(postings[0]["payment_id"], id.as_str());
    assert_eq!(
        get(&me, &server, "/api/v1/billing")["balance_msat"],
        2_000_000
    );

    // A payment whose event is lost is credited by the reconciliation.
    let r = me
        .post(server.url("/api/v1/billing/topups"))
        .json(&json!({ "amount_msat": 3_000 }))
        .send()
        .unwrap();
    let second: Value = r.json().unwrap();
    let (status, _, err) = server.admin(&[
        "test-pay",
        second["invoice"].as_str().unwrap(),
        "--silently",
    ]);
    assert!(status.success(), "{err}");
    eventually(Duration::from_secs(20), "the reconciliation", || {
        (get(&me, &server, "/api/v1/billing")["balance_msat"] == 2_003_000).then_some(())
    });
    let list = get(&me, &server, "/api/v1/billing/topups");
    let statuses: Vec<&str> = list["topups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "succeeded"]);

    // Someone else's top-up answers 404, like one that never was; their
    // list is empty.
    let other = server.http();
    let r = other
        .get(server.url(&format!("/api/v1/billing/topups/{id}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        get(&other, &server, "/api/v1/billing/topups")["topups"],
        json!([])
    );
    // The money in: Lightning's book answers for it, the ledger is clean.
    let (status, audit, _) = server.admin(&["audit"]);
    assert!(status.success());
    let audit: Value = serde_json::from_str(audit.trim()).unwrap();
    assert_eq!(audit["clean"], true, "{audit}");
    drop(page);
    let _ = me_id;

    // A server without Lightning says so.
    let plain = Server::start();
    let r = plain
        .http()
        .post(plain.url("/api/v1/billing/topups"))
        .json(&json!({ "amount_msat": 2_000 }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_IMPLEMENTED);
    let body: Value = r.json().unwrap();
    assert_eq!(code(&body), "lightning_disabled");
    let (status, _, err) = plain.admin(&["test-pay", &invoice]);
    assert!(!status.success());
    assert!(err.contains("--lightning test"), "{err}");
}

/// The server with the real Breez worker (regtest, no key, offline): it
/// starts, says it takes Lightning, and a top-up fails with a clear 503
/// because Breez's operators cannot be reached from here (not a hang).
#[test]
fn a_server_on_breez_offline_says_lightning_is_unreachable() {
    let Some(python) = std::env::var_os("INFERNET_PYTHON") else {
        eprintln!("SKIPPED: INFERNET_PYTHON is not set (run through scripts/test.sh)");
        return;
    };
    let python = python.to_string_lossy().into_owned();
    let server = Server::start_with(&[
        "--lightning",
        "breez",
        "--lightning-network",
        "regtest",
        "--breez-python",
        &python,
    ]);
    let me = server.http();
    assert_eq!(get(&me, &server, "/api/v1/billing")["lightning"], true);
    let seed = server.data_dir.join("data").join("breez.seed");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&seed).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let words = std::fs::read_to_string(&seed).unwrap();
    assert!(
        !server.logs().contains(words.trim()),
        "the seed must never be logged"
    );
    let started = std::time::Instant::now();
    let r = me
        .post(server.url("/api/v1/billing/topups"))
        .json(&json!({ "amount_msat": 10_000 }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().unwrap();
    assert_eq!(code(&body), "lightning_unavailable", "{body}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(
        get(&me, &server, "/api/v1/billing/topups")["topups"],
        json!([])
    );
}

#[test]
fn withdrawals_over_http_are_paid_once_and_private() {
    use payments::Lightning;
    let server = Server::start_with(&["--lightning", "test"]);
    let (_page, me, me_id) = account(&server, b"billing test: withdrawer wallet!");
    server.credit_with_key(&me_id, 100_000, "w");
    let payee = payments::test_backend::TestLightning::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let invoice = |msat: u64| {
        rt.block_on(payee.create_invoice(wire::MilliSats(msat), "withdrawal", 600))
            .unwrap()
    };
    let post = |body: Value| {
        let r = me
            .post(server.url("/api/v1/billing/payouts"))
            .json(&body)
            .send()
            .unwrap();
        (r.status(), r.json::<Value>().unwrap())
    };

    // More than the balance (with the fee reserve): 402, nothing recorded.
    let big = invoice(95_000);
    let (status, body) = post(json!({ "from": "balance", "invoice": big.bolt11 }));
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(code(&body), "insufficient_funds");
    let (status, body) = post(json!({ "from": "balance" }));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = post(json!({ "from": "everything", "invoice": big.bolt11 }));
    assert!(status.is_client_error(), "{body}");
    assert_eq!(
        get(&me, &server, "/api/v1/billing/payouts")["payouts"],
        json!([])
    );

    let ok = invoice(60_000);
    let (status, payout) = post(json!({ "from": "balance", "invoice": ok.bolt11 }));
    assert_eq!(status, StatusCode::CREATED, "{payout}");
    let id = payout["id"].as_str().unwrap();
    let done = get(
        &me,
        &server,
        &format!("/api/v1/billing/payouts/{id}?wait_secs=30"),
    );
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["preimage"].as_str().is_some());
    let summary = get(&me, &server, "/api/v1/billing");
    assert_eq!(msat(&summary, "balance_msat"), 40_000);
    assert_eq!(msat(&summary, "paid_out_msat"), 60_000);
    assert_eq!(msat(&summary, "in_flight_msat"), 0);
    // Twice: 409, nothing moves.
    let (status, body) = post(json!({ "from": "balance", "invoice": ok.bolt11 }));
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "already_paid_out");
    assert_eq!(get(&me, &server, "/api/v1/billing")["balance_msat"], 40_000);

    // Somebody else sees none of it.
    let other = server.http();
    let r = other
        .get(server.url(&format!("/api/v1/billing/payouts/{id}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Payout settings: checked, kept.
    let r = me
        .put(server.url("/api/v1/billing/payout-settings"))
        .json(&json!({ "address": "not an address", "threshold_msat": 50_000 }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = me
        .put(server.url("/api/v1/billing/payout-settings"))
        .json(&json!({ "address": "alice@example.com", "threshold_msat": 50_000 }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        get(&me, &server, "/api/v1/billing/payout-settings"),
        json!({ "address": "alice@example.com", "threshold_msat": 50_000 })
    );
    let (status, audit, _) = server.admin(&["audit"]);
    assert!(status.success());
    assert!(audit.contains("\"clean\":true"), "{audit}");
}

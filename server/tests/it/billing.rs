//! Money through real processes: the admin credit command, per-job holds
//! charged from signed receipts, operators paid, unenrolled nodes' pending
//! earnings, billing history and its CSV, and a server killed mid-load.

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{client_with_key, eventually, temp_dir, Node, Server};
use crate::wallet::{browser, create_key, sign_in, Wallet};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}

fn get(client: &Client, server: &Server, path: &str) -> Value {
    let r = client.get(server.url(path)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}: {}", r.text().unwrap());
    r.json().unwrap()
}

fn msat(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

fn embed(client: &Client, server: &Server, max_price: Option<u64>) -> (StatusCode, Value) {
    let mut body = json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["a cat", "a dog"] } });
    if let Some(p) = max_price {
        body["max_price_msat"] = json!(p);
    }
    let r = client
        .post(server.url("/api/v1/jobs"))
        .json(&body)
        .send()
        .unwrap();
    (r.status(), r.json().unwrap_or(Value::Null))
}

/// A new account signed in with a wallet of its own, and an API key of it.
fn account(server: &Server, seed: &[u8; 32]) -> (Client, Client, String) {
    let page = browser(server);
    sign_in(server, &page, &Wallet::from_seed(seed));
    let (key, _) = create_key(server, &page, "billing", &["jobs", "billing"]);
    let api = client_with_key(&key);
    let id = server.account_of(&api);
    (page, api, id)
}

#[test]
fn jobs_hold_their_budget_pay_their_price_and_operators_are_paid() {
    let server = Server::start();
    let node_key = temp_dir("node").join("node.key");
    // A payout address must be one.
    let (code_, logs) = Node::run_to_exit(&server, &node_key, &["--payout-address", "nope"]);
    assert_ne!(code_, Some(0));
    assert!(
        logs.join("\n").contains("not a Lightning address"),
        "{logs:?}"
    );
    let node = Node::start_with(
        &server,
        1000,
        &node_key,
        &["--payout-address", "node-owner@example.com"],
    );
    let (_page, consumer, consumer_id) = account(&server, b"billing test: a consumer wallet!");
    // The address the node signed is public, with its registration.
    let listed = get(&consumer, &server, "/nodes");
    assert_eq!(
        listed["nodes"][0]["payout_address"], "node-owner@example.com",
        "{listed}"
    );

    // No money: 402, and nothing is recorded.
    let (status, body) = embed(&consumer, &server, None);
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(code(&body), "insufficient_funds");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("top up"),
        "{body}"
    );
    assert_eq!(get(&consumer, &server, "/api/v1/jobs")["jobs"], json!([]));
    let summary = get(&consumer, &server, "/api/v1/billing");
    assert_eq!(msat(&summary, "balance_msat"), 0);

    // Credit from the operator of the server, once per key.
    let first = server.credit_with_key(&consumer_id, 50_000_000, "grant-1");
    assert_eq!(first["credited"], true);
    let again = server.credit_with_key(&consumer_id, 50_000_000, "grant-1");
    assert_eq!(again["already_credited"], true, "{again}");
    assert_eq!(msat(&again, "balance_msat"), 50_000_000);
    let (status, _, err) = server.admin(&["credit", "acct_nobody", "5"]);
    assert!(!status.success());
    assert!(err.contains("account"), "{err}");

    // A job: its budget held while it runs, its price charged from the
    // node's signed receipt, the rest released.
    let (status, job) = embed(&consumer, &server, Some(25_000));
    assert_eq!(status, StatusCode::OK, "{job}");
    let price = msat(&job, "price_msat");
    let budget = msat(&job, "max_price_msat");
    assert!(price > 0 && budget == 25_000 && budget > price, "{job}");
    let summary = get(&consumer, &server, "/api/v1/billing");
    assert_eq!(msat(&summary, "balance_msat"), 50_000_000 - price);
    assert_eq!(msat(&summary, "held_msat"), 0);
    assert_eq!(msat(&summary, "spent_msat"), price);
    assert_eq!(msat(&summary, "topped_up_msat"), 50_000_000);
    let history = get(&consumer, &server, "/api/v1/billing/history");
    let kinds: Vec<(&str, &str, i64)> = history["postings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap(),
                p["book"].as_str().unwrap(),
                p["amount_msat"].as_i64().unwrap(),
            )
        })
        .collect();
    let (budget_i, price_i) = (budget as i64, price as i64);
    assert_eq!(
        kinds,
        [
            ("charge", "balance", budget_i - price_i),
            ("charge", "escrow", -budget_i),
            ("hold", "escrow", budget_i),
            ("hold", "balance", -budget_i),
            ("credit", "balance", 50_000_000),
        ]
    );
    assert_eq!(history["postings"][0]["job_id"], job["id"]);

    // The node is nobody's yet: it earns into its pending balance, which
    // its operator gets when they enrol it.
    let (farm, _, farm_id) = account(&server, b"billing test: the operator walle");
    let r = farm
        .post(server.url("/api/v1/account/enrol-tokens"))
        .json(&json!({ "name": "rack" }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let token: Value = r.json().unwrap();
    drop(node);
    let node = Node::start_with(
        &server,
        1000,
        &node_key,
        &["--enroll", token["secret"].as_str().unwrap()],
    );
    assert_eq!(
        node.proc.ready["enrolled"]["account"].as_str(),
        Some(farm_id.as_str())
    );
    let earnings = get(&farm, &server, "/api/v1/billing");
    assert_eq!(msat(&earnings, "earnings_msat"), price, "{earnings}");
    // And from now on the node's jobs pay its operator directly. (The
    // node's ad must show it online again before a job can choose it.)
    // Until the server drops its connection to the node's old process, a
    // job may still be sent there and fail with 502 (its hold released):
    // those attempts are counted, their postings are in the history too.
    let mut failed_attempts = 0;
    let (status, second) = eventually(Duration::from_secs(30), "the node back online", || {
        let (s, b) = embed(&consumer, &server, Some(budget));
        if s == StatusCode::BAD_GATEWAY && code(&b) == "node_unreachable" {
            failed_attempts += 1;
            return None;
        }
        (s != StatusCode::SERVICE_UNAVAILABLE).then_some((s, b))
    });
    assert_eq!(status, StatusCode::OK, "{second}");
    let price2 = msat(&second, "price_msat");
    let earnings = get(&farm, &server, "/api/v1/billing");
    assert_eq!(msat(&earnings, "earnings_msat"), price + price2);
    assert_eq!(msat(&earnings, "earned_total_msat"), price + price2);
    let history = get(&farm, &server, "/api/v1/billing/history");
    let kinds: Vec<&str> = history["postings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["charge", "claim"]);

    // The CSV export: every posting of the consumer, summing to the balance.
    let r = consumer
        .get(server.url("/api/v1/billing/history?format=csv"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text().unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("id,at_ms,kind,book,amount_msat,balance_after_msat,job_id,payment_id,memo")
    );
    let balance_sum: i64 = lines
        .filter(|l| l.split(',').nth(3) == Some("balance"))
        .map(|l| l.split(',').nth(4).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(balance_sum, (50_000_000 - price - price2) as i64);
    // Pages: one posting at a time, to the end.
    let mut seen = 0;
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(c) => format!("/api/v1/billing/history?limit=1&before={c}"),
            None => "/api/v1/billing/history?limit=1".into(),
        };
        let page = get(&consumer, &server, &path);
        seen += page["postings"].as_array().unwrap().len();
        match page["next"].as_str() {
            Some(c) => before = Some(c.to_owned()),
            None => break,
        }
    }
    // The credit, the first job's hold and charge (2 postings each), the
    // second's, and a hold and release for each attempt that failed.
    assert_eq!(seen, 9 + 4 * failed_attempts);
    let r = consumer
        .get(server.url("/api/v1/billing/history?before=nonsense"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Someone else's billing is their own: a key without the billing
    // scope may not read it at all.
    let (_, jobs_only) = {
        let page = browser(&server);
        sign_in(
            &server,
            &page,
            &Wallet::from_seed(b"billing test: jobs-only key wal!"),
        );
        let (key, _) = create_key(&server, &page, "jobs", &["jobs"]);
        (page, client_with_key(&key))
    };
    let r = jobs_only.get(server.url("/api/v1/billing")).send().unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let (status, audit, _) = server.admin(&["audit"]);
    assert!(status.success());
    let audit: Value = serde_json::from_str(audit.trim()).unwrap();
    assert_eq!(audit["clean"], true, "{audit}");
    assert_eq!(audit["total_msat"], 0);
    let _ = consumer_id;
}

#[test]
fn a_server_killed_mid_load_loses_and_doubles_nothing() {
    // A short job timeout, so that the jobs cut off by the kill are over
    // (and their holds released) soon after the restart.
    let mut server = Server::start_with(&["--job-timeout-secs", "4"]);
    let _node = Node::start(&server, 1000);
    let (_page, consumer, consumer_id) = account(&server, b"billing test: killed mid load!!!");
    server.credit_with_key(&consumer_id, 10_000_000, "before");
    // Generation jobs running, and credits arriving, as the server dies.
    let jobs: Vec<_> = (0..6)
        .map(|i| {
            let (c, url) = (consumer.clone(), server.url("/api/v1/jobs"));
            std::thread::spawn(move || {
                c.post(url)
                    .json(&json!({ "model": "tiny-gpt2", "input": {
                        "prompt": format!("story {i}"), "max_tokens": 400 } }))
                    .send()
            })
        })
        .collect();
    let credits: Vec<_> = (0..4)
        .map(|i| server.credit_with_key(&consumer_id, 1_000, &format!("during-{i}")))
        .collect();
    assert!(credits.iter().all(|c| c["credited"] == true));
    eventually(Duration::from_secs(20), "jobs running", || {
        let s = get(&consumer, &server, "/api/v1/billing");
        (msat(&s, "held_msat") > 0).then_some(())
    });
    server.kill();
    for j in jobs {
        let _ = j.join();
    }
    let server = server.restart();
    // Credits sent again after the restart are not applied twice.
    for i in 0..4 {
        let again = server.credit_with_key(&consumer_id, 1_000, &format!("during-{i}"));
        assert_eq!(again["already_credited"], true);
    }
    // Every hold of a job that did not finish is released once its
    // deadline has passed; nothing stays held.
    let summary = eventually(Duration::from_secs(30), "every hold released", || {
        let s = get(&consumer, &server, "/api/v1/billing");
        (msat(&s, "held_msat") == 0).then_some(s)
    });
    let spent = msat(&summary, "spent_msat");
    assert_eq!(
        msat(&summary, "balance_msat"),
        10_000_000 + 4_000 - spent,
        "{summary}"
    );
    let listed = get(&consumer, &server, "/api/v1/jobs");
    for job in listed["jobs"].as_array().unwrap() {
        assert_ne!(job["status"], "dispatched", "{job}");
    }
    let (status, audit, _) = server.admin(&["audit"]);
    assert!(status.success());
    let audit: Value = serde_json::from_str(audit.trim()).unwrap();
    assert_eq!(audit["clean"], true, "{audit}");
}

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

#[test]
fn spending_caps_per_key_and_a_default_max_price_hold_jobs_back() {
    let server = Server::start();
    let _node = Node::start(&server, 1000);
    let page = browser(&server);
    sign_in(
        &server,
        &page,
        &Wallet::from_seed(b"billing test: spending caps wal!"),
    );
    let (key, key_id) = create_key(&server, &page, "capped", &["jobs", "billing"]);
    let api = client_with_key(&key);
    let me = server.account_of(&api);
    server.credit_with_key(&me, 10_000_000, "caps");

    // A daily cap of 20 500 msat: a job that may cost 20 000 fits; once it
    // has cost its price, a second that may cost 20 000 would pass the cap
    // and is refused, recording nothing.
    let r = page
        .put(server.url(&format!("/api/v1/account/keys/{key_id}/caps")))
        .json(&json!({ "daily_cap_msat": 20_500, "total_cap_msat": 1_000_000 }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, first) = embed(&api, &server, Some(20_000));
    assert_eq!(status, StatusCode::OK, "{first}");
    let price = msat(&first, "price_msat");
    let (status, body) = embed(&api, &server, Some(20_000));
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(code(&body), "spending_cap_exceeded");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("daily spending cap"), "{message}");
    assert_eq!(
        get(&api, &server, "/api/v1/jobs")["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // What the key spent is its jobs' price, shown with its caps.
    let keys = get(&page, &server, "/api/v1/account/keys");
    let shown = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(shown["daily_cap_msat"], 20_500);
    assert_eq!(shown["spent_today_msat"], price);
    assert_eq!(shown["spent_total_msat"], price);
    // A job that fits what is left still runs; the browser session has no
    // key caps at all.
    let (status, _) = embed(&api, &server, Some(20_500 - price));
    assert_eq!(status, StatusCode::OK);
    let (status, _) = embed(&page, &server, Some(25_000));
    assert_eq!(status, StatusCode::OK);
    // Caps of someone else's key, or a key that is not one: 404.
    let r = page
        .put(server.url("/api/v1/account/keys/key_nope/caps"))
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // An API key cannot change caps (not even its own).
    let r = api
        .put(server.url(&format!("/api/v1/account/keys/{key_id}/caps")))
        .json(&json!({}))
        .send()
        .unwrap();
    assert!(r.status().is_client_error());

    // A default max price per job: a job that names none gets it, and a
    // node dearer than it is not chosen.
    let r = page
        .patch(server.url("/api/v1/account"))
        .json(&json!({ "default_max_price_msat": 1 }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let account: Value = r.json().unwrap();
    assert_eq!(account["default_max_price_msat"], 1);
    let (status, body) = embed(&page, &server, None);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "no_node_available");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at or below 1 msat"),
        "{body}"
    );
    let r = page
        .patch(server.url("/api/v1/account"))
        .json(&json!({ "default_max_price_msat": 20_000 }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, job) = embed(&page, &server, None);
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(msat(&job, "max_price_msat"), 20_000);
    // A bid on an idle node: held with the budget, jumps nobody, costs
    // nothing more.
    let r = page
        .post(server.url("/api/v1/jobs"))
        .json(&json!({
            "model": "all-minilm-l6-v2",
            "input": { "texts": ["a cat"] },
            "max_price_msat": 5_000,
            "bid_msat": 2_000,
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let bid_job: Value = r.json().unwrap();
    assert_eq!(msat(&bid_job, "max_price_msat"), 7_000);
    assert_eq!(msat(&bid_job, "price_msat"), price, "{bid_job}");
    // Clearing it leaves the public name alone.
    let r = page
        .patch(server.url("/api/v1/account"))
        .json(&json!({ "default_max_price_msat": null }))
        .send()
        .unwrap();
    let account: Value = r.json().unwrap();
    assert!(account.get("default_max_price_msat").is_none(), "{account}");
}

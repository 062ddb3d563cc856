//! Money through real processes: the admin credit command, per-job holds
//! charged from signed receipts, operators paid, unenrolled nodes' pending
//! earnings, billing history and its CSV, a server killed mid-load, and
//! spending caps, a default max price and bids. (Lightning: `lightning`.)

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{client_with_key, eventually, temp_dir, Node, Server};
use crate::wallet::{browser, create_key, sign_in, Wallet};

pub(crate) fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}

pub(crate) fn get(client: &Client, server: &Server, path: &str) -> Value {
    let r = client.get(server.url(path)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}: {}", r.text().unwrap());
    r.json().unwrap()
}

pub(crate) fn msat(v: &Value, field: &str) -> u64 {
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
pub(crate) fn account(server: &Server, seed: &[u8; 32]) -> (Client, Client, String) {
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
    let jobs: Vec<_> = (0..20)
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
    // All twenty recorded, and (nearly) all running, as it dies.
    eventually(Duration::from_secs(30), "20 jobs running", || {
        let listed = get(&consumer, &server, "/api/v1/jobs?limit=50");
        let jobs = listed["jobs"].as_array()?;
        let running = jobs.iter().filter(|j| j["status"] == "dispatched").count();
        (jobs.len() == 20 && running >= 15).then_some(())
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
    let listed = get(&consumer, &server, "/api/v1/jobs?limit=50");
    let jobs = listed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 20);
    for job in jobs {
        assert!(
            job["status"] == "succeeded" || job["status"] == "failed",
            "{job}"
        );
    }
    let (status, audit, _) = server.admin(&["audit"]);
    assert!(status.success());
    let audit: Value = serde_json::from_str(audit.trim()).unwrap();
    assert_eq!(audit["clean"], true, "{audit}");
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
    // A patch refused in part is refused whole: the name is not changed
    // when the price is out of range.
    let r = page
        .patch(server.url("/api/v1/account"))
        .json(&json!({ "public_name": "half-written", "default_max_price_msat": 0 }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let account: Value = page
        .get(server.url("/api/v1/account"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_ne!(account["public_name"], "half-written", "{account}");
}

//! Two real nodes watched live and commanded: telemetry, pause, prices,
//! records and earnings, drain, resume, Prometheus, the audit log.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{command, enrolled_node, farm_token, fleet_nodes, Events};
use crate::harness::{eventually, http, temp_dir, Server};
use crate::wallet::{browser, sign_in, Wallet};

/// A `/metrics` page: the value of the sample whose line starts with `series`.
fn scrape(url: &str, series: &str) -> f64 {
    let text = http().get(url).send().unwrap().text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

fn accepting(server: &Server, node: &str) -> bool {
    let n: Value = http()
        .get(server.url(&format!("/nodes/{node}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    n["accepting_jobs"].as_bool().unwrap_or(false)
}

#[test]
fn operators_watch_their_nodes_live_and_pause_drain_and_resume_them() {
    let server = Server::start_with(&["--metrics-addr", "127.0.0.1:0"]);
    let farm = browser(&server);
    sign_in(
        &server,
        &farm,
        &Wallet::from_seed(b"fleet operator one wallet seed!!"),
    );
    let events = Events::open(&server, &farm);
    let token = farm_token(&server, &farm);
    let a = enrolled_node(&server, Some(&token), &temp_dir("node").join("node.key"));
    let b = enrolled_node(&server, Some(&token), &temp_dir("node").join("node.key"));

    // Both come online and stream their telemetry.
    for n in [&a, &b] {
        events.wait("online", |k, v| {
            k == "online" && v["node_id"] == n.peer_id.as_str()
        });
    }
    let t = events.telemetry(&a.peer_id, |_| true);
    assert!(t["ram_total_mib"].as_u64().unwrap() > 0, "{t}");
    assert!(t["ram_used_mib"].as_u64().unwrap() > 0, "{t}");
    assert_eq!(t["admission"], "open");
    assert_eq!(t["interval_ms"], 500);
    assert_eq!(t["reachability"]["kind"], "public", "{t}");
    assert!(t["gpus"].as_array().unwrap().is_empty(), "no GPU here");
    events.telemetry(&b.peer_id, |_| true);
    let nodes = fleet_nodes(&server, &farm);
    assert_eq!(nodes.len(), 2);
    for n in &nodes {
        assert_eq!(n["online"], true, "{n}");
        assert!(n["telemetry"]["cpu_pct"].is_number(), "{n}");
        assert!(n["info"]["models"].as_array().is_some(), "{n}");
    }
    // Stored as a time series: the last hour at full resolution.
    let series: Value = farm
        .get(server.url(&format!("/api/v1/fleet/nodes/{}/telemetry", a.peer_id)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(series["step_ms"], 0, "{series}");
    let points = series["points"].as_array().unwrap();
    assert!(points[0]["gauges"]["ram_total_mib"].as_f64().unwrap() > 0.0);
    assert!(!points.is_empty());
    assert!(points
        .windows(2)
        .all(|w| w[0]["at"].as_u64() <= w[1]["at"].as_u64()));

    // Pause a: acknowledged, done, and said in its telemetry and ads; jobs
    // go to b.
    let (status, body) = command(
        &server,
        &farm,
        json!({ "nodes": [a.peer_id], "action": { "type": "pause" } }),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let pause = body["commands"][0].clone();
    assert_eq!(pause["status"], "sent", "{pause}");
    assert!(pause["issued_by"].as_str().unwrap().ends_with("(session)"));
    let id = pause["id"].as_str().unwrap();
    events.command(id, "acked");
    let done = events.command(id, "succeeded");
    assert!(
        done["detail"].as_str().unwrap().contains("paused"),
        "{done}"
    );
    events.telemetry(&a.peer_id, |t| t["admission"] == "paused");
    // Prometheus sees it too, on the node's own /metrics.
    let node_metrics = a.proc.ready["metrics"].as_str().unwrap().to_owned();
    let label = format!("{{node=\"{}\"}}", a.peer_id);
    assert_eq!(
        scrape(
            &node_metrics,
            &format!("infernet_node_accepting_jobs{label}")
        ),
        0.0
    );
    assert!(
        scrape(
            &node_metrics,
            &format!("infernet_node_ram_total_mib{label}")
        ) > 0.0
    );
    eventually(Duration::from_secs(20), "a's ads say paused", || {
        (!accepting(&server, &a.peer_id)).then_some(())
    });
    let consumer = server.http();
    for _ in 0..3 {
        let r = consumer
            .post(server.url("/api/v1/jobs"))
            .json(&json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["fleet"] } }))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().unwrap());
        let record: Value = r.json().unwrap();
        assert_eq!(
            record["node_id"],
            b.peer_id.as_str(),
            "a paused node gets no job"
        );
    }

    // The operator's own record of each node, and earnings that match the
    // ledger to the millisatoshi.
    let stats: Value = farm
        .get(server.url("/api/v1/fleet/stats?days=1"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let of = |id: &str| {
        stats["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == id)
            .unwrap()
            .clone()
    };
    let (sa, sb) = (of(&a.peer_id), of(&b.peer_id));
    assert_eq!(
        (sb["jobs_succeeded"].as_u64(), sb["completion_pct"].as_f64()),
        (Some(3), Some(100.0)),
        "{sb}"
    );
    assert!(sb["median_latency_ms"].as_u64().is_some(), "{sb}");
    assert_eq!(sa["jobs_succeeded"], 0);
    assert!(sa["uptime_pct"].as_f64().unwrap() > 0.0, "{sa}");
    assert_eq!(sa["uptime_by_day"].as_array().unwrap().len(), 1);
    let billing: Value = farm
        .get(server.url("/api/v1/billing"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let earned = billing["earned_total_msat"].as_u64().unwrap();
    assert!(earned > 0, "{billing}");
    assert_eq!(sb["earned_msat"].as_u64(), Some(earned));
    // The same jobs over time, for b's charts: per bucket, adding up.
    let activity: Value = farm
        .get(server.url(&format!("/api/v1/fleet/nodes/{}/activity", b.peer_id)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(activity["bucket_ms"], 60_000, "{activity}");
    let buckets = activity["buckets"].as_array().unwrap();
    assert!(
        (60..=61).contains(&buckets.len()),
        "an hour, from the minute it began"
    );
    let total = |f: &str| buckets.iter().map(|b| b[f].as_u64().unwrap()).sum::<u64>();
    assert_eq!((total("succeeded"), total("failed")), (3, 0));
    assert_eq!(total("earned_msat"), earned, "the ledger's earnings");
    assert!(buckets.iter().any(|b| b["median_latency_ms"].is_u64()));
    let r = http()
        .get(server.url(&format!("/api/v1/fleet/nodes/{}/activity", b.peer_id)))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let csv = farm
        .get(server.url("/api/v1/fleet/earnings?format=csv"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "day,node_id,device,model,jobs,earned_msat");
    let body: Vec<Vec<&str>> = lines[1..lines.len() - 1]
        .iter()
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(body.len(), 1, "{csv}");
    assert_eq!(
        (body[0][1], body[0][2], body[0][3], body[0][4]),
        (b.peer_id.as_str(), "cpu", "all-minilm-l6-v2", "3")
    );
    let sum: u64 = body.iter().map(|l| l[5].parse::<u64>().unwrap()).sum();
    assert_eq!(sum, earned, "the CSV adds up to the ledger's earnings");
    assert_eq!(lines.last().unwrap(), &format!("total,,,,,{earned}"));

    // Drain b: nothing runs, so it is drained at once.
    let (_, body) = command(
        &server,
        &farm,
        json!({ "nodes": [b.peer_id], "action": { "type": "drain" } }),
    );
    let drained = events.command(body["commands"][0]["id"].as_str().unwrap(), "succeeded");
    assert!(drained["detail"].as_str().unwrap().contains("drained"));
    events.telemetry(&b.peer_id, |t| t["admission"] == "drained");

    // Resume both with one command.
    let (status, body) = command(
        &server,
        &farm,
        json!({ "nodes": [a.peer_id, b.peer_id], "action": { "type": "resume" } }),
    );
    assert_eq!(status, StatusCode::CREATED);
    for c in body["commands"].as_array().unwrap() {
        events.command(c["id"].as_str().unwrap(), "succeeded");
    }
    events.telemetry(&a.peer_id, |t| t["admission"] == "open");
    eventually(Duration::from_secs(20), "a takes jobs again", || {
        accepting(&server, &a.peer_id).then_some(())
    });

    // A new price for b's MiniLM: the command says so, /nodes shows it at
    // once (the node advertises it), and the next job pays it.
    let info: Value = http()
        .get(server.url(&format!("/nodes/{}", b.peer_id)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let minilm = info["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "all-minilm-l6-v2")
        .unwrap()
        .clone();
    let new_price = minilm["price_msat"].as_u64().unwrap() * 2 + 1000;
    let (status, body) = command(
        &server,
        &farm,
        json!({ "nodes": [b.peer_id], "action": { "type": "set_prices", "prices": [
            { "model": minilm["hash"], "price_msat": new_price }
        ] } }),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    events.command(body["commands"][0]["id"].as_str().unwrap(), "succeeded");
    eventually(Duration::from_secs(10), "the new price in /nodes", || {
        let info: Value = http()
            .get(server.url(&format!("/nodes/{}", b.peer_id)))
            .send()
            .unwrap()
            .json()
            .unwrap();
        info["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "all-minilm-l6-v2" && m["price_msat"] == new_price)
            .then_some(())
    });
    let r = consumer
        .post(server.url("/api/v1/jobs"))
        .json(&json!({ "model": "all-minilm-l6-v2", "input": { "texts": ["priced"] }, "node": b.peer_id }))
        .send()
        .unwrap();
    let record: Value = r.json().unwrap();
    assert!(
        record["price_msat"].as_u64().unwrap() >= new_price,
        "{record}"
    );
    // A price for a model the node does not have changes nothing.
    let (_, body) = command(
        &server,
        &farm,
        json!({ "nodes": [b.peer_id], "action": { "type": "set_prices", "prices": [
            { "model": "ab".repeat(32), "price_msat": 1 }
        ] } }),
    );
    let failed = events.command(body["commands"][0]["id"].as_str().unwrap(), "failed");
    assert!(
        failed["detail"].as_str().unwrap().contains("no model"),
        "{failed}"
    );

    // The server's /metrics: two links open, frames and commands counted.
    let server_metrics = server.ready()["metrics"].as_str().unwrap().to_owned();
    assert_eq!(
        scrape(&server_metrics, "infernet_server_fleet_links_open"),
        2.0
    );
    assert!(scrape(&server_metrics, "infernet_server_telemetry_frames_total") >= 2.0);
    assert_eq!(
        scrape(&server_metrics, "infernet_server_fleet_commands_total"),
        6.0
    );
    assert!(
        scrape(
            &server_metrics,
            "infernet_server_jobs{status=\"succeeded\"}"
        ) >= 3.0
    );

    // This server takes no webhook on this machine; bad settings are refused.
    for bad in [
        json!({ "webhook_url": "http://127.0.0.1:9/x", "offline_after_secs": 300, "gpu_temp_c": 85, "failure_rate_pct": 20, "unreachable_after_secs": 120 }),
        json!({ "offline_after_secs": 1, "gpu_temp_c": 85, "failure_rate_pct": 20, "unreachable_after_secs": 120 }),
    ] {
        let r = farm
            .put(server.url("/api/v1/fleet/alert-settings"))
            .json(&bad)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    // The audit log: every command, newest first, with who sent it.
    let log: Value = farm
        .get(server.url("/api/v1/fleet/commands"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let actions: Vec<&str> = log["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "set_prices",
            "set_prices",
            "resume",
            "resume",
            "drain",
            "pause"
        ]
    );
    let statuses: Vec<&str> = log["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "failed",
            "succeeded",
            "succeeded",
            "succeeded",
            "succeeded",
            "succeeded"
        ]
    );
}

//! The network on its own: nodes found through the DHT from any peer, jobs
//! run directly by the `infernet` consumer (with failover), ads feeding the
//! registry, and a node that cannot be dialled reached through a relay.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{eventually, http, models_dir, sibling_bin, temp_dir, Proc, Server};

const MODEL: &str = "all-minilm-l6-v2";

/// A node process that joins through a peer address only (no HTTP server).
struct NetNode {
    proc: Proc,
    peer_id: String,
    /// `/ip4/127.0.0.1/tcp/…/p2p/<id>`.
    addr: String,
}

fn node_args(bootstrap: &str, models: &Path, key: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--bootstrap",
        bootstrap,
        "--models-dir",
        models.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--p2p-host",
        "127.0.0.1",
        "--device",
        "cpu",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !extra.contains(&"--ad-interval-ms") {
        args.extend(["--ad-interval-ms".into(), "1000".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn start_node(bootstrap: &str, models: &Path, extra: &[&str]) -> NetNode {
    let dir = temp_dir("netnode");
    let mut args = node_args(bootstrap, models, &dir.join("node.key"), extra);
    if !extra.contains(&"--reachability") {
        args.extend(["--reachability".into(), "public".into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proc = Proc::spawn(&sibling_bin("infernet-node"), &args);
    let peer_id = proc.ready["peer_id"].as_str().unwrap().to_owned();
    let tcp = proc.ready["p2p"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|a| a.contains("/tcp/"))
        .unwrap()
        .to_owned();
    NetNode {
        addr: format!("{tcp}/p2p/{peer_id}"),
        proc,
        peer_id,
    }
}

/// Starts `n` nodes at once (model loading dominates; let it overlap).
fn start_nodes(n: usize, bootstrap: &str, models: &Path) -> Vec<NetNode> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| s.spawn(|| start_node(bootstrap, models, &[])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// A models directory with the real model at another price.
fn models_priced(price_msat: u64) -> PathBuf {
    let src = models_dir().join(MODEL);
    let dir = temp_dir("models");
    let model = dir.join(MODEL);
    std::fs::create_dir_all(&model).unwrap();
    for f in ["model.pt", "tokenizer.json"] {
        std::os::unix::fs::symlink(src.join(f), model.join(f)).unwrap();
    }
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(src.join("manifest.json")).unwrap()).unwrap();
    manifest["price_msat"] = price_msat.into();
    std::fs::write(
        model.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    dir
}

/// Runs the `infernet` consumer CLI; returns its exit code, JSON and stderr.
fn infernet(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(sibling_bin("infernet"))
        .args(args)
        .env("INFERNET_LOG", "info")
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn provider_ids(json: &Value) -> HashSet<String> {
    json["providers"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["peer_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ten_providers_are_found_from_any_peer_and_jobs_run_after_the_server_stops() {
    let mut server = Server::start();
    let seed = server.p2p_tcp();
    let models = models_dir();
    let nodes = start_nodes(10, &seed, &models);
    let all: HashSet<String> = nodes.iter().map(|n| n.peer_id.clone()).collect();

    // A consumer that knows only the last node finds all ten.
    let mut last = (0, Value::Null, String::new());
    let found = std::iter::repeat_with(|| {
        last = infernet(&["--peer", &nodes[9].addr, "providers", MODEL]);
        (last.0 == 0 && provider_ids(&last.1) == all).then(|| last.1.clone())
    })
    .take(60)
    .flatten()
    .next()
    .unwrap_or_else(|| {
        panic!(
            "not all ten providers found; last answer: {} of 10\n{}",
            provider_ids(&last.1).len(),
            last.2
        )
    });
    assert_eq!(found["providers"].as_array().unwrap().len(), 10);
    assert_eq!(found["providers"][0]["price_msat"], 1000);

    assert_eq!(found["providers"][0]["price"], "1 sat/job");

    // The server goes away; the network does not.
    server.kill();
    let (code, json, stderr) = infernet(&["--peer", &nodes[3].addr, "providers", MODEL]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(provider_ids(&json), all, "{stderr}");

    // `infernet providers … | head -c 0`: the reader goes away before the
    // result is written; the CLI exits quietly instead of panicking.
    let mut piped = Command::new(sibling_bin("infernet"))
        .args(["--peer", &nodes[3].addr, "providers", MODEL])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(piped.stdout.take());
    let out = piped.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, job, stderr) = infernet(&[
        "--peer",
        &nodes[5].addr,
        "run",
        "--model",
        MODEL,
        "--text",
        "A man is playing a guitar.",
        "--text",
        "Someone plays an instrument.",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(all.contains(job["provider"].as_str().unwrap()));
    assert_eq!(job["receipt_verified"], true);
    assert_eq!(job["dim"], 384);
    let sim = job["similarity"].as_f64().unwrap();
    assert!(sim > 0.3 && sim <= 1.0, "similarity {sim}");
    assert_eq!(job["failed_attempts"].as_array().unwrap().len(), 0);

    // A model nobody has, and a price nobody meets: clear errors.
    let (code, _, stderr) = infernet(&[
        "--peer",
        &nodes[0].addr,
        "run",
        "--model",
        "nope",
        "--text",
        "x",
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("no provider of `nope`"), "{stderr}");
    let (code, _, stderr) = infernet(&[
        "--peer",
        &nodes[0].addr,
        "run",
        "--model",
        MODEL,
        "--text",
        "x",
        "--max-price",
        "1",
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("none at or under"), "{stderr}");
}

#[test]
fn a_provider_killed_mid_job_fails_over_and_the_job_completes_once() {
    let server = Server::start();
    let seed = server.p2p_tcp();
    let cheap = models_priced(500);
    let dear = models_priced(900);
    let mut first = start_node(&seed, &cheap, &[]);
    let second = start_node(&seed, &dear, &[]);

    // Enough text that the job runs for a while on the cheap node.
    let long = "The quick brown fox jumps over the lazy dog near the river bank. ".repeat(30);
    let mut args: Vec<String> = vec![
        "--peer".into(),
        second.addr.clone(),
        "run".into(),
        "--model".into(),
        MODEL.into(),
    ];
    for i in 0..64 {
        args.extend(["--text".into(), format!("{i}: {long}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (consumer, stdout) = Proc::start(&sibling_bin("infernet"), &args);

    // The cheap node takes the job first; it dies while running it.
    first
        .proc
        .wait_for_log("running job", Duration::from_secs(120));
    first.proc.kill();

    let line = stdout
        .recv_timeout(Duration::from_secs(240))
        .expect("the consumer printed no result");
    let job: Value = serde_json::from_str(&line).unwrap();
    drop(consumer);
    assert_eq!(job["provider"], second.peer_id.as_str());
    assert_eq!(job["count"], 64);
    assert_eq!(job["price_msat"], 900);
    let failed = job["failed_attempts"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["provider"], first.peer_id.as_str());

    // The second node ran this job exactly once.
    let job_id = job["job_id"].as_str().unwrap();
    let done: Vec<String> = second
        .proc
        .logs()
        .into_iter()
        .filter(|l| l.contains(job_id) && l.contains("job done"))
        .collect();
    assert_eq!(done.len(), 1, "{done:?}");
}

fn listed(server: &Server, peer_id: &str) -> Option<Value> {
    let list: Value = http().get(server.url("/nodes")).send().ok()?.json().ok()?;
    list["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["peer_id"] == peer_id)
        .cloned()
}

#[test]
fn a_node_that_only_gossips_is_listed_and_ages_out() {
    let server = Server::start_with(&["--node-retention-secs", "4"]);
    let seed = server.p2p_tcp();
    // No --server: the node never speaks HTTP to the registry.
    let mut node = start_node(&seed, &models_dir(), &["--ad-interval-ms", "500"]);
    // Its first ads go out while its models still load (so that downloads
    // show): wait for the one that offers them.
    let entry = eventually(Duration::from_secs(30), "the node in /nodes", || {
        listed(&server, &node.peer_id)
            .filter(|n| n["status"] == "online" && n["models"][0]["name"] == MODEL)
    });
    assert_eq!(entry["models"][0]["name"], MODEL);
    assert_eq!(
        entry["hardware"]["cpu_cores"].as_u64().map(|c| c > 0),
        Some(true)
    );
    assert!(entry["multiaddrs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a.as_str().unwrap().contains("/tcp/")));

    node.proc.kill();
    // Offline once its last ad has lived out (3 intervals), then gone.
    eventually(Duration::from_secs(30), "the node offline", || {
        listed(&server, &node.peer_id).filter(|n| n["status"] == "offline")
    });
    eventually(Duration::from_secs(30), "the node forgotten", || {
        listed(&server, &node.peer_id).is_none().then_some(())
    });
}

/// A network namespace with a veth link to this one; removed on drop.
struct Netns {
    name: String,
    host_ip: String,
}

impl Netns {
    fn create() -> Result<Netns, String> {
        let id = std::process::id() % 100_000;
        let name = format!("infernet-{id}");
        let (host_if, ns_if) = (format!("inh{id}"), format!("inn{id}"));
        let octet = 10 + id % 200;
        let host_ip = format!("10.231.{octet}.1");
        let ns_ip = format!("10.231.{octet}.2");
        let ns = Netns {
            name: name.clone(),
            host_ip: host_ip.clone(),
        };
        let run = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        run(&["netns", "add", &name])?;
        run(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        run(&["link", "set", &ns_if, "netns", &name])?;
        run(&["addr", "add", &format!("{host_ip}/24"), "dev", &host_if])?;
        run(&["link", "set", &host_if, "up"])?;
        run(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{ns_ip}/24"),
            "dev",
            &ns_if,
        ])?;
        run(&["-n", &name, "link", "set", &ns_if, "up"])?;
        run(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth, and so both.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn a_node_that_cannot_be_dialled_is_reached_through_the_server_relay() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => {
            // The same path is covered on loopback by the p2p crate's
            // `an_unreachable_provider_is_reached_through_a_relay`.
            eprintln!("SKIPPED: cannot create a network namespace here ({e})");
            return;
        }
    };
    // The server listens on every interface, the namespace's link included.
    let data = temp_dir("relay-server");
    let site = data.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let server = Proc::spawn(
        &crate::harness::server_bin(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.join("data").to_str().unwrap(),
            "--p2p-port",
            "0",
            "--p2p-host",
            "0.0.0.0",
            "--site-root",
            site.to_str().unwrap(),
        ],
    );
    let via_loopback = server.ready["p2p"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
        .unwrap_or_else(|| panic!("no loopback address in {}", server.ready))
        .to_owned();
    // The same port on the link's address (the listener is on 0.0.0.0).
    let via_link = via_loopback.replace("/ip4/127.0.0.1/", &format!("/ip4/{}/", ns.host_ip));

    // Inside the namespace the node listens on its own loopback only: it
    // can dial out to the server, but nothing outside can dial it.
    let key_dir = temp_dir("relay-node");
    let models = models_dir();
    let mut args = vec!["netns".to_owned(), "exec".into(), ns.name.clone()];
    args.push(sibling_bin("infernet-node").to_str().unwrap().to_owned());
    args.extend(node_args(
        &via_link,
        &models,
        &key_dir.join("node.key"),
        &["--reachability", "auto", "--nat-probe-timeout-ms", "3000"],
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = Proc::spawn(Path::new("ip"), &args);
    let node_id = node.ready["peer_id"].as_str().unwrap().to_owned();
    node.wait_for_log("relay reservation accepted", Duration::from_secs(60));

    // A consumer on this side, knowing only the server, runs a job on it.
    let (code, job, stderr) = infernet(&[
        "--peer",
        &via_loopback,
        "run",
        "--model",
        MODEL,
        "--text",
        "through the relay",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(job["provider"], node_id.as_str());
    assert_eq!(job["receipt_verified"], true);
}

/// SHA-256 of a file, as lowercase hex.
fn file_hash(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    hex::encode(sha2::Sha256::digest(&bytes))
}

#[test]
fn a_node_fetches_a_model_it_lacks_by_hash_and_then_serves_it() {
    let server = Server::start();
    let seed = server.p2p_tcp();
    let models = models_dir();
    let holder = start_node(&seed, &models, &[]);
    let hash = file_hash(&models.join("tiny-gpt2").join("model.pt"));

    // A second machine with an empty models directory fetches it.
    let empty = temp_dir("fetch-models");
    let key = temp_dir("fetch-key").join("node.key");
    let mut args = node_args(&holder.addr, &empty, &key, &["--fetch", &hash]);
    args.push("--fetch-only".into());
    let out = Command::new(sibling_bin("infernet-node"))
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fetch failed:\n{stderr}");
    assert!(
        stderr.contains("100%"),
        "a progress bar to completion:\n{stderr}"
    );
    let fetched = empty.join("tiny-gpt2");
    assert_eq!(file_hash(&fetched.join("model.pt")), hash);
    for f in ["manifest.json", "tokenizer.json"] {
        assert_eq!(
            std::fs::read(fetched.join(f)).unwrap(),
            std::fs::read(models.join("tiny-gpt2").join(f)).unwrap()
        );
    }

    // Started on that directory, the node offers and runs the model.
    let node = start_node(&holder.addr, &empty, &["--fetch", &hash]);
    assert_eq!(node.proc.ready["models"], serde_json::json!(["tiny-gpt2"]));
    let (code, job, stderr) = infernet(&[
        "--peer",
        &node.addr,
        "run",
        "--model",
        &hash,
        "--prompt",
        "hello",
        "--max-tokens",
        "5",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(job["usage"]["output_tokens"], 5);
    assert_eq!(job["receipt_verified"], true);

    // A hash nobody has: exit code 3.
    let missing = "0".repeat(64);
    let mut args = node_args(&holder.addr, &empty, &key, &["--fetch", &missing]);
    args.push("--fetch-only".into());
    let out = Command::new(sibling_bin("infernet-node"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_download_in_progress_shows_in_the_registry_until_the_model_is_served() {
    let server = Server::start();
    let seed = server.p2p_tcp();
    let models = models_dir();
    let holder = start_node(&seed, &models, &[]);
    let hash = file_hash(&models.join("all-minilm-l6-v2").join("model.pt"));

    // About 90 MB at 160 Mbit/s: some 4.5 s of download to watch.
    let empty = temp_dir("progress-models");
    let key = temp_dir("progress-key").join("node.key");
    let args = node_args(
        &holder.addr,
        &empty,
        &key,
        &[
            "--fetch",
            &hash,
            "--fetch-max-mbit",
            "160",
            "--reachability",
            "public",
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_fetcher, _stdout) = Proc::start(&sibling_bin("infernet-node"), &args);

    // The node gossips ads while it downloads; the registry shows how far.
    let (peer, done, total) = eventually(Duration::from_secs(60), "download progress", || {
        let list: Value = http().get(server.url("/nodes")).send().ok()?.json().ok()?;
        list["nodes"].as_array()?.iter().find_map(|n| {
            let f = &n["fetching"][0];
            let (done, total) = (f["done_bytes"].as_u64()?, f["total_bytes"].as_u64()?);
            (f["model"] == hash.as_str() && done > 0 && done < total).then(|| {
                (
                    n["peer_id"].as_str().unwrap_or_default().to_owned(),
                    done,
                    total,
                )
            })
        })
    });
    assert!(total > 80_000_000, "the whole package: {total} bytes");
    assert!(done < total);

    // Then the model is served and the download is gone from the listing.
    eventually(
        Duration::from_secs(120),
        "the fetched model on offer",
        || {
            let n: Value = http()
                .get(server.url(&format!("/nodes/{peer}")))
                .send()
                .ok()?
                .json()
                .ok()?;
            let offered = n["models"]
                .as_array()?
                .iter()
                .any(|m| m["hash"] == hash.as_str());
            (offered && n.get("fetching").is_none()).then_some(())
        },
    );
}

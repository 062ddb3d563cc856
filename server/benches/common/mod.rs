//! What the benchmarks share: the real server binary, started on ports
//! the OS picks, in a folder of its own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running server process; killed when dropped.
// Each benchmark reads the fields it needs.
#[allow(dead_code)]
pub(crate) struct Server {
    pub(crate) child: Child,
    /// Its `--data-dir`.
    pub(crate) data: PathBuf,
    /// Its HTTP base URL.
    pub(crate) http: String,
    /// The local account's API key.
    pub(crate) key: String,
    /// The ready line it printed (addresses, peer id).
    pub(crate) ready: serde_json::Value,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server binary with its data in `dir` and `extra` arguments,
/// and waits for its ready line.
pub(crate) fn start_server(dir: &Path, extra: &[&str]) -> Server {
    let data = dir.join("data");
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let key_file = dir.join("local.key");
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--p2p-port",
            "0",
            "--p2p-host",
            "127.0.0.1",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--site-root")
        .arg(&site)
        .arg("--local-key-file")
        .arg(&key_file)
        .args(extra)
        .env("INFERNET_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server binary runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).expect("the server's ready line");
    Server {
        http: ready["http"].as_str().unwrap().to_owned(),
        key: std::fs::read_to_string(&key_file)
            .unwrap()
            .trim()
            .to_owned(),
        child,
        data,
        ready,
    }
}

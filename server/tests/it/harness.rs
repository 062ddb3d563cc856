//! Starting and stopping the real binaries.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_server"))
}

/// Another workspace binary (`node`, `surreal`): it sits next to the
/// server's in the same target directory; `cargo test --workspace` builds all.
pub(crate) fn sibling_bin(name: &str) -> PathBuf {
    let path = server_bin().with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (or `cargo test --workspace`)",
        path.display()
    );
    path
}

pub(crate) fn models_dir() -> PathBuf {
    let dir = std::env::var_os("INFERNET_MODELS_DIR")
        .map(PathBuf::from)
        .expect("INFERNET_MODELS_DIR is not set: run scripts/setup.sh and source scripts/env.sh");
    assert!(
        dir.join("all-minilm-l6-v2/manifest.json").is_file(),
        "no all-minilm-l6-v2 in {}: run scripts/setup.sh",
        dir.display()
    );
    dir
}

pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("infernet-it-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A child process that is killed when dropped.
pub(crate) struct Proc {
    child: Child,
    pub(crate) ready: Value,
    stderr: mpsc::Receiver<String>,
}

impl Proc {
    /// Starts `bin` and waits for the one-line JSON `{"event": "ready"}`
    /// that Infernet's binaries print on stdout.
    pub(crate) fn spawn<S: AsRef<std::ffi::OsStr>>(bin: &Path, args: &[S]) -> Proc {
        let (mut proc, stdout) = Self::start(bin, args);
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match stdout.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if v["event"] == "ready" {
                            proc.ready = v;
                            return proc;
                        }
                    }
                }
                Err(_) => {
                    proc.kill();
                    let log: Vec<String> = proc.stderr.try_iter().collect();
                    panic!(
                        "{} did not report ready:\n{}",
                        bin.display(),
                        log[log.len().saturating_sub(30)..].join("\n")
                    );
                }
            }
        }
    }

    /// Starts `bin` without waiting for anything; returns its stdout lines.
    pub(crate) fn start<S: AsRef<std::ffi::OsStr>>(
        bin: &Path,
        args: &[S],
    ) -> (Proc, mpsc::Receiver<String>) {
        let mut child = Command::new(bin)
            .args(args)
            .env("INFERNET_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
        let (out_tx, out_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        let proc = Proc {
            child,
            ready: Value::Null,
            stderr: err_rx,
        };
        (proc, out_rx)
    }

    /// Waits until the process logs a line containing `needle`.
    pub(crate) fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing `{needle}` within {timeout:?}"),
            }
        }
    }

    /// Every stderr line logged since the last call (or the last wait).
    pub(crate) fn logs(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Waits for the process to exit by itself; its exit code and the
    /// stderr lines it wrote.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader threads end with the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), self.logs());
            }
            assert!(Instant::now() < deadline, "the process did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGKILL: the process gets no chance to say goodbye.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the local account of every test server starts with: 1 000 000 sat.
pub(crate) const LOCAL_CREDIT_MSAT: u64 = 1_000_000_000;

pub(crate) struct Server {
    /// Kept for its `Drop`, which stops the server.
    proc: Proc,
    pub(crate) url: String,
    /// The site's origin as browsers see it (`http://localhost:<port>`).
    pub(crate) public_url: String,
    /// An API key (every scope) of the server's local account.
    pub(crate) key: String,
    /// Where its data lives, to start it again on the same data.
    pub(crate) data_dir: PathBuf,
    extra: Vec<String>,
}

impl Server {
    pub(crate) fn start() -> Server {
        Self::start_with(&[])
    }

    /// With extra flags, e.g. a remote database.
    pub(crate) fn start_with(extra: &[&str]) -> Server {
        let data_dir = temp_dir("server");
        let extra = extra.iter().map(|s| s.to_string()).collect();
        Self::start_in(data_dir, extra, None)
    }

    /// Stops this server and starts it again on the same data (and, unless
    /// it was chosen by the OS, the same port).
    pub(crate) fn restart(self) -> Server {
        let Server {
            mut proc,
            data_dir,
            extra,
            url,
            ..
        } = self;
        proc.kill();
        let addr = url.trim_start_matches("http://").to_owned();
        Self::start_in(data_dir, extra, Some(addr))
    }

    /// [`Server::restart`], stopping it as an operator would (SIGTERM:
    /// it finishes and writes what it keeps in memory).
    pub(crate) fn restart_gracefully(self) -> Server {
        let Server {
            mut proc,
            data_dir,
            extra,
            url,
            ..
        } = self;
        proc.signal("TERM");
        let (code, logs) = proc.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(0), "the server stops cleanly: {logs:?}");
        let addr = url.trim_start_matches("http://").to_owned();
        Self::start_in(data_dir, extra, Some(addr))
    }

    fn start_in(data_dir: PathBuf, extra: Vec<String>, listen: Option<String>) -> Server {
        let site = data_dir.join("site");
        std::fs::create_dir_all(&site).unwrap();
        let data = data_dir.join("data");
        let key_file = data_dir.join("local.key");
        let listen = listen.unwrap_or_else(|| "127.0.0.1:0".to_owned());
        let mut args = vec![
            "--listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
            "--local-key-file",
            key_file.to_str().unwrap(),
            "--p2p-port",
            "0",
            "--p2p-host",
            "127.0.0.1",
            "--site-root",
            site.to_str().unwrap(),
        ];
        if !extra.iter().any(|a| a == "--job-timeout-secs") {
            args.extend(["--job-timeout-secs", "60"]);
        }
        // Second opinions send jobs of their own: only where a test asks.
        if !extra.iter().any(|a| a == "--redundancy") {
            args.extend(["--redundancy", "0"]);
        }
        args.extend(extra.iter().map(String::as_str));
        let proc = Proc::spawn(&server_bin(), &args);
        let url = proc.ready["http"].as_str().unwrap().to_owned();
        let public_url = proc.ready["public_url"].as_str().unwrap().to_owned();
        let key = std::fs::read_to_string(&key_file)
            .expect("the server writes the local account's key")
            .trim()
            .to_owned();
        let server = Server {
            proc,
            url,
            public_url,
            key,
            data_dir,
            extra,
        };
        // Jobs need funds: the local account starts with credit (once:
        // the same key on a restart credits nothing).
        let account = server.account_of(&server.http());
        server.credit_with_key(&account, LOCAL_CREDIT_MSAT, "harness");
        server
    }

    /// The id of the account `client` is signed in to.
    pub(crate) fn account_of(&self, client: &reqwest::blocking::Client) -> String {
        let me: serde_json::Value = client
            .get(format!("{}/api/v1/account", self.url))
            .send()
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .unwrap();
        me["id"].as_str().unwrap().to_owned()
    }

    /// Runs `server admin <args>` against this server; its exit status
    /// and what it printed.
    pub(crate) fn admin(&self, args: &[&str]) -> (std::process::ExitStatus, String, String) {
        let data = self.data_dir.join("data");
        let out = std::process::Command::new(server_bin())
            .arg("--data-dir")
            .arg(&data)
            .arg("admin")
            .args(args)
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Grants `account` credit with the admin command, once per `key`.
    pub(crate) fn credit_with_key(&self, account: &str, msat: u64, key: &str) -> serde_json::Value {
        let (status, out, err) = self.admin(&["credit", account, &msat.to_string(), "--key", key]);
        assert!(status.success(), "admin credit failed: {err}");
        serde_json::from_str(out.trim()).unwrap()
    }

    /// A client that sends the local account's API key.
    pub(crate) fn http(&self) -> reqwest::blocking::Client {
        client_with_key(&self.key)
    }

    /// The server's libp2p TCP address, `/ip4/…/tcp/…/p2p/<id>`.
    pub(crate) fn p2p_tcp(&self) -> String {
        self.proc.ready["p2p"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str())
            .find(|a| a.contains("/tcp/") && a.starts_with("/ip4/127.0.0.1/"))
            .unwrap_or_else(|| panic!("no loopback TCP address in {}", self.proc.ready))
            .to_owned()
    }

    /// SIGKILL.
    pub(crate) fn kill(&mut self) {
        self.proc.kill();
    }

    /// What the server logged since the last look: for failure messages.
    pub(crate) fn logs(&self) -> String {
        self.proc.logs().join("\n")
    }

    /// What the server's ready line said, e.g. its `metrics` URL.
    pub(crate) fn ready(&self) -> &Value {
        &self.proc.ready
    }

    /// The server's libp2p peer id.
    pub(crate) fn peer_id(&self) -> wire::NodeId {
        self.proc.ready["peer_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

pub(crate) struct Node {
    pub(crate) proc: Proc,
    pub(crate) peer_id: String,
    /// Its key: start it again with the same identity.
    pub(crate) key_file: PathBuf,
}

impl Node {
    pub(crate) fn start(server: &Server, heartbeat_ms: u64) -> Node {
        let key_file = temp_dir("node").join("node.key");
        Self::start_with(server, heartbeat_ms, &key_file, &[])
    }

    /// A node with the key in `key_file` and `extra` flags.
    pub(crate) fn start_with(
        server: &Server,
        heartbeat_ms: u64,
        key_file: &Path,
        extra: &[&str],
    ) -> Node {
        Self::start_in(server, &models_dir(), heartbeat_ms, key_file, extra)
    }

    /// A node serving the models in `models`.
    pub(crate) fn start_in(
        server: &Server,
        models: &Path,
        heartbeat_ms: u64,
        key_file: &Path,
        extra: &[&str],
    ) -> Node {
        let proc = Proc::spawn(
            &sibling_bin("infernet-node"),
            &Self::args(server, models, heartbeat_ms, key_file, extra),
        );
        let peer_id = proc.ready["peer_id"].as_str().unwrap().to_owned();
        Node {
            proc,
            peer_id,
            key_file: key_file.to_owned(),
        }
    }

    /// A node expected to stop on its own: its exit code and stderr.
    pub(crate) fn run_to_exit(
        server: &Server,
        key_file: &Path,
        extra: &[&str],
    ) -> (Option<i32>, Vec<String>) {
        let (mut proc, _) = Proc::start(
            &sibling_bin("infernet-node"),
            &Self::args(server, &models_dir(), 1000, key_file, extra),
        );
        proc.wait_exit(Duration::from_secs(120))
    }

    fn args(
        server: &Server,
        models: &Path,
        heartbeat_ms: u64,
        key_file: &Path,
        extra: &[&str],
    ) -> Vec<String> {
        let mut args: Vec<String> = [
            "--server",
            &server.url,
            "--models-dir",
            models.to_str().unwrap(),
            "--key-file",
            key_file.to_str().unwrap(),
            "--p2p-host",
            "127.0.0.1",
            "--heartbeat-ms",
            &heartbeat_ms.to_string(),
            "--device",
            "cpu",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

/// The embedding model of [`models_dir`] alone, at `price_msat` a job:
/// the same model file (linked, so the same hash), its manifest priced
/// anew. For tests that need nodes at different prices.
pub(crate) fn priced_models(price_msat: u64) -> PathBuf {
    let dir = temp_dir("models").join("all-minilm-l6-v2");
    std::fs::create_dir_all(&dir).unwrap();
    let source = models_dir().join("all-minilm-l6-v2");
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "manifest.json" {
            std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    let manifest = std::fs::read_to_string(source.join("manifest.json")).unwrap();
    let mut manifest: Value = serde_json::from_str(&manifest).unwrap();
    manifest["price_msat"] = serde_json::json!(price_msat);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    dir.parent().unwrap().to_owned()
}

/// The model `name` of [`models_dir`] alone, at `price_msat` a job, its
/// files copied (so a test may change them after the node hashed them).
pub(crate) fn copied_model(name: &str, price_msat: u64) -> PathBuf {
    let dir = temp_dir("models").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let source = models_dir().join(name);
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() && entry.file_name() != "manifest.json" {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    let manifest = std::fs::read_to_string(source.join("manifest.json")).unwrap();
    let mut manifest: Value = serde_json::from_str(&manifest).unwrap();
    manifest["price_msat"] = serde_json::json!(price_msat);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    dir.parent().unwrap().to_owned()
}

/// A client that sends `key` as its bearer token.
pub(crate) fn client_with_key(key: &str) -> reqwest::blocking::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    );
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A client with no credentials.
pub(crate) fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Polls `check` until it returns `Some`, or panics after `timeout`. For
/// state that is only observable by asking (a node going offline).
pub(crate) fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

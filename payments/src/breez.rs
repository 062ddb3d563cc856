//! The Breez SDK (Spark) as a [`Lightning`] backend. Breez's Rust crate is
//! not on crates.io; its official Python binding (PyPI `breez-sdk-spark`,
//! a native library) is, so the SDK runs in a small worker process
//! (`breez_worker.py`, embedded here) that this module starts, talks to
//! over stdin/stdout in JSON lines, and restarts whenever it dies. Requests
//! made while it is down fail at once as unreachable; payment state lives
//! in the server's ledger, so nothing is lost with the worker.
//!
//! The wallet's seed is a BIP39 mnemonic in a 0600 file, made on the
//! first start; it and the API key reach the worker on its stdin only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{broadcast, mpsc, oneshot};
use wire::{MilliSats, UnixMillis};

use crate::{Invoice, InvoiceState, Lightning, LightningError, LightningEvent, SentPayment};

/// The worker's source, written next to its storage at every start.
const WORKER: &str = include_str!("../breez_worker.py");
/// Longest the server waits for any answer (the worker gives up on the
/// SDK sooner and answers `unreachable`).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(150);
/// Longest a (re)start may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Waits between restarts of a worker that keeps dying.
const RESTART_BACKOFF: [u64; 5] = [1, 2, 5, 10, 30];

/// How to run the worker.
#[derive(Clone)]
pub struct BreezConfig {
    /// A Python with `breez-sdk-spark` installed.
    pub python: PathBuf,
    /// `bitcoin`, `signet` or `regtest`.
    pub network: String,
    pub api_key: Option<String>,
    /// The wallet's mnemonic (made if missing, kept 0600).
    pub seed_file: PathBuf,
    /// The SDK's storage, and where the worker's script is written.
    pub storage_dir: PathBuf,
}

impl std::fmt::Debug for BreezConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreezConfig")
            .field("python", &self.python)
            .field("network", &self.network)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("seed_file", &self.seed_file)
            .field("storage_dir", &self.storage_dir)
            .finish()
    }
}

/// What the worker said when it was ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The wallet's identity key (hex), if the SDK could tell.
    pub pubkey: Option<String>,
    pub balance_sat: Option<u64>,
}

struct Call {
    request: Value,
    reply: oneshot::Sender<Result<Value, LightningError>>,
}

/// The backend; cheap to clone. Dropping every clone stops the worker.
#[derive(Clone)]
pub struct BreezWorker {
    network: String,
    calls: mpsc::Sender<Call>,
    events: broadcast::Sender<LightningEvent>,
}

impl BreezWorker {
    /// Starts the worker and waits until its wallet is connected. A first
    /// start that fails (no Python, no package, a bad key) is an error,
    /// so that a misconfigured server says so at once; later deaths are
    /// restarted.
    pub async fn start(config: BreezConfig) -> Result<(BreezWorker, Ready), LightningError> {
        let mnemonic = load_or_create_seed(&config.seed_file)?;
        std::fs::create_dir_all(&config.storage_dir)
            .map_err(|e| LightningError::Backend(format!("storage dir: {e}")))?;
        let script = config.storage_dir.join("breez_worker.py");
        std::fs::write(&script, WORKER)
            .map_err(|e| LightningError::Backend(format!("writing the worker: {e}")))?;
        let init = json!({ "init": {
            "network": config.network,
            "api_key": config.api_key,
            "mnemonic": mnemonic,
            "storage_dir": config.storage_dir.join("sdk"),
        }});
        let spawn = Spawn {
            python: config.python.clone(),
            script,
            init,
        };
        let (events, _) = broadcast::channel(256);
        let running = spawn.start().await?;
        let ready = running.ready.clone();
        let (calls, requests) = mpsc::channel(256);
        tokio::spawn(supervise(spawn, running, requests, events.clone()));
        Ok((
            BreezWorker {
                network: config.network,
                calls,
                events,
            },
            ready,
        ))
    }

    async fn call(&self, request: Value) -> Result<Value, LightningError> {
        let (reply, answer) = oneshot::channel();
        self.calls
            .send(Call { request, reply })
            .await
            .map_err(|_| LightningError::Unreachable("the Breez worker has stopped".into()))?;
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(LightningError::Unreachable(
                "the Breez worker stopped before answering".into(),
            )),
            Err(_) => Err(LightningError::Unreachable(
                "the Breez worker did not answer in time".into(),
            )),
        }
    }

    /// The wallet's identity and balance.
    pub async fn info(&self) -> Result<Ready, LightningError> {
        let v = self.call(json!({ "op": "get_info" })).await?;
        Ok(ready_of(&v))
    }

    /// What the SDK makes of `input` (an invoice, a Lightning address, an
    /// LNURL): its kind, and for an invoice its payment hash and amount.
    pub async fn parse(&self, input: &str) -> Result<Value, LightningError> {
        self.call(json!({ "op": "parse", "input": input })).await
    }
}

fn ready_of(v: &Value) -> Ready {
    Ready {
        pubkey: v["pubkey"].as_str().map(str::to_owned),
        balance_sat: v["balance_sat"].as_u64(),
    }
}

fn str_field(v: &Value, field: &str) -> Result<String, LightningError> {
    v[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| LightningError::Backend(format!("the worker's answer lacks {field}")))
}

fn u64_field(v: &Value, field: &str) -> Result<u64, LightningError> {
    v[field]
        .as_u64()
        .ok_or_else(|| LightningError::Backend(format!("the worker's answer lacks {field}")))
}

impl Lightning for BreezWorker {
    fn network(&self) -> &str {
        &self.network
    }

    fn create_invoice(
        &self,
        amount: MilliSats,
        description: &str,
        expiry_secs: u32,
    ) -> BoxFuture<'_, Result<Invoice, LightningError>> {
        let request = json!({
            "op": "create_invoice",
            "amount_msat": amount.0,
            "description": description,
            "expiry_secs": expiry_secs,
        });
        Box::pin(async move {
            let v = self.call(request).await?;
            Ok(Invoice {
                bolt11: str_field(&v, "bolt11")?,
                payment_hash: str_field(&v, "payment_hash")?,
                amount,
                expires_at: UnixMillis(u64_field(&v, "expires_at_ms")?),
            })
        })
    }

    fn invoice_state(
        &self,
        payment_hash: &str,
    ) -> BoxFuture<'_, Result<InvoiceState, LightningError>> {
        let request = json!({ "op": "invoice_state", "payment_hash": payment_hash });
        Box::pin(async move {
            let v = self.call(request).await?;
            match v["state"].as_str() {
                Some("paid") => Ok(InvoiceState::Paid {
                    amount: MilliSats(u64_field(&v, "amount_msat")?),
                    at: UnixMillis(u64_field(&v, "at_ms")?),
                }),
                Some("expired") => Ok(InvoiceState::Expired),
                Some("pending") => Ok(InvoiceState::Pending),
                other => Err(LightningError::Backend(format!(
                    "the worker named an unknown invoice state {other:?}"
                ))),
            }
        })
    }

    fn pay_invoice(
        &self,
        bolt11: &str,
        amount: Option<MilliSats>,
    ) -> BoxFuture<'_, Result<SentPayment, LightningError>> {
        let request = json!({
            "op": "pay_invoice",
            "bolt11": bolt11,
            "amount_msat": amount.map(|a| a.0),
        });
        Box::pin(async move {
            let v = self.call(request).await?;
            Ok(SentPayment {
                payment_hash: str_field(&v, "payment_hash")?,
                preimage: str_field(&v, "preimage")?,
                amount: MilliSats(u64_field(&v, "amount_msat")?),
                fee: MilliSats(u64_field(&v, "fee_msat")?),
            })
        })
    }

    fn events(&self) -> broadcast::Receiver<LightningEvent> {
        self.events.subscribe()
    }
}

/// How to start one worker process.
struct Spawn {
    python: PathBuf,
    script: PathBuf,
    init: Value,
}

/// A started worker.
struct Running {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    ready: Ready,
}

impl Spawn {
    async fn start(&self) -> Result<Running, LightningError> {
        let mut child = Command::new(&self.python)
            .arg("-u")
            .arg(&self.script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                LightningError::Backend(format!(
                    "could not run {} for the Breez worker: {e}",
                    self.python.display()
                ))
            })?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(LightningError::Backend("the worker's pipes".into()));
        };
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(target: "breez_worker", "{line}");
            }
        });
        let mut init = serde_json::to_vec(&self.init).unwrap_or_default();
        init.push(b'\n');
        stdin
            .write_all(&init)
            .await
            .map_err(|e| LightningError::Backend(format!("the worker's stdin: {e}")))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(START_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| LightningError::Unreachable("the Breez worker did not start".into()))?
            .map_err(|e| LightningError::Backend(format!("the worker's stdout: {e}")))?;
        let Some(first) = first else {
            let status = child.wait().await.ok();
            return Err(LightningError::Backend(format!(
                "the Breez worker exited at start ({status:?}); is breez-sdk-spark installed for {}?",
                self.python.display()
            )));
        };
        let v: Value = serde_json::from_str(&first)
            .map_err(|e| LightningError::Backend(format!("the worker said {first:?}: {e}")))?;
        if let Some(fatal) = v["fatal"].as_str() {
            let _ = child.wait().await;
            return Err(if fatal.starts_with("unreachable") {
                LightningError::Unreachable(fatal.to_owned())
            } else {
                LightningError::Backend(fatal.to_owned())
            });
        }
        let ready = ready_of(&v["ready"]);
        tracing::info!(pubkey = ?ready.pubkey, balance_sat = ?ready.balance_sat, "Breez worker ready");
        Ok(Running {
            child,
            stdin,
            lines,
            ready,
        })
    }
}

/// Runs calls through the worker, restarting it when it dies, until every
/// handle is dropped.
async fn supervise(
    spawn: Spawn,
    first: Running,
    mut calls: mpsc::Receiver<Call>,
    events: broadcast::Sender<LightningEvent>,
) {
    let mut running = Some(first);
    let mut failures = 0usize;
    loop {
        let Some(mut worker) = running.take() else {
            // Down: refuse calls at once while waiting to restart.
            let wait =
                Duration::from_secs(RESTART_BACKOFF[failures.min(RESTART_BACKOFF.len() - 1)]);
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    call = calls.recv() => match call {
                        Some(call) => {
                            let _ = call.reply.send(Err(LightningError::Unreachable(
                                "the Breez worker is restarting".into(),
                            )));
                        }
                        None => return,
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            match spawn.start().await {
                Ok(w) => {
                    tracing::info!("Breez worker restarted");
                    running = Some(w);
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "Breez worker failed to restart");
                }
            }
            continue;
        };
        let mut pending: HashMap<u64, oneshot::Sender<Result<Value, LightningError>>> =
            HashMap::new();
        let mut next_id = 0u64;
        let ended = loop {
            tokio::select! {
                call = calls.recv() => {
                    let Some(Call { mut request, reply }) = call else {
                        let _ = worker.child.kill().await;
                        return;
                    };
                    next_id += 1;
                    request["id"] = json!(next_id);
                    let mut line = serde_json::to_vec(&request).unwrap_or_default();
                    line.push(b'\n');
                    if let Err(e) = worker.stdin.write_all(&line).await {
                        let _ = reply.send(Err(LightningError::Unreachable(format!(
                            "the Breez worker: {e}"
                        ))));
                        break "its stdin closed";
                    }
                    pending.insert(next_id, reply);
                }
                line = worker.lines.next_line() => match line {
                    Ok(Some(line)) => {
                        failures = 0;
                        dispatch(&line, &mut pending, &events);
                    }
                    Ok(None) | Err(_) => break "it exited",
                },
            }
        };
        let status = worker.child.wait().await.ok();
        tracing::warn!(why = ended, ?status, "Breez worker stopped; restarting");
        for (_, reply) in pending.drain() {
            let _ = reply.send(Err(LightningError::Unreachable(
                "the Breez worker stopped before answering".into(),
            )));
        }
        failures += 1;
    }
}

/// One line from the worker: an answer to a call, or an event.
fn dispatch(
    line: &str,
    pending: &mut HashMap<u64, oneshot::Sender<Result<Value, LightningError>>>,
    events: &broadcast::Sender<LightningEvent>,
) {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        tracing::warn!("the Breez worker wrote a line that is not JSON");
        return;
    };
    if v["event"] == "invoice_paid" {
        if let (Some(hash), Some(amount)) = (v["payment_hash"].as_str(), v["amount_msat"].as_u64())
        {
            let _ = events.send(LightningEvent::InvoicePaid {
                payment_hash: hash.to_owned(),
                amount: MilliSats(amount),
            });
        }
        return;
    }
    let Some(reply) = v["id"].as_u64().and_then(|id| pending.remove(&id)) else {
        return;
    };
    let result = if let Some(ok) = v.get("ok") {
        Ok(ok.clone())
    } else {
        let message = v["err"]["message"].as_str().unwrap_or("unknown").to_owned();
        Err(match v["err"]["kind"].as_str() {
            Some("unreachable") => LightningError::Unreachable(message),
            Some("invalid_invoice") => LightningError::InvalidInvoice(message),
            Some("payment_failed") => LightningError::PaymentFailed(message),
            Some("unknown_payment") => LightningError::UnknownPayment(message),
            _ => LightningError::Backend(message),
        })
    };
    let _ = reply.send(result);
}

/// The BIP39 English word list, one word per line: what the browser wallet
/// makes and checks its backup words with.
pub fn bip39_english() -> String {
    bip39::Language::English.word_list().join("\n")
}

/// The wallet's mnemonic from `path`, or a new 12-word one written there
/// (0600) if there is none.
pub fn load_or_create_seed(path: &Path) -> Result<String, LightningError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let words = text.trim().to_owned();
            bip39::Mnemonic::parse_normalized(&words).map_err(|e| {
                LightningError::Backend(format!("{} is not a BIP39 mnemonic: {e}", path.display()))
            })?;
            restrict(path)?;
            Ok(words)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let entropy: [u8; 16] = rand::random();
            let mnemonic = bip39::Mnemonic::from_entropy(&entropy)
                .map_err(|e| LightningError::Backend(format!("mnemonic: {e}")))?
                .to_string();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| LightningError::Backend(format!("seed dir: {e}")))?;
            }
            write_secret(path, &mnemonic)?;
            tracing::info!(path = %path.display(), "made a new Breez wallet seed (back it up)");
            Ok(mnemonic)
        }
        Err(e) => Err(LightningError::Backend(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(unix)]
fn write_secret(path: &Path, text: &str) -> Result<(), LightningError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| LightningError::Backend(format!("writing {}: {e}", path.display())))?;
    writeln!(file, "{text}")
        .map_err(|e| LightningError::Backend(format!("writing {}: {e}", path.display())))
}

#[cfg(unix)]
fn restrict(path: &Path) -> Result<(), LightningError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| LightningError::Backend(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests;

//! The operator's admin socket: `admin.sock` in the data dir (0600), one
//! JSON request per line and one JSON answer per line. Only whoever may
//! use the data dir (the server's own user) reaches it, so it needs no
//! other credential; nothing of it listens on the network. The same
//! binary is both ends: `infernet-server admin …` is the client.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use wire::{AccountId, MilliSats};

use crate::config::AdminCommand;
use crate::ledger::{Applied, Ledger};

/// The socket's file name in the data dir.
pub const SOCKET: &str = "admin.sock";
/// The longest request line.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    Credit {
        account: String,
        amount_msat: u64,
        key: String,
        memo: Option<String>,
    },
    Audit,
    EnrolToken {
        account: String,
        name: String,
        reusable: bool,
    },
    TestPay {
        invoice: String,
        silently: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Ok(serde_json::Value),
    Error(String),
}

/// What the admin commands act on.
#[derive(Clone)]
pub(crate) struct Admin {
    pub(crate) ledger: Ledger,
    pub(crate) enrolments: crate::enrolment::Enrolments,
    /// The test Lightning backend, on a server started with `--lightning test`.
    pub(crate) test_lightning: Option<payments::test_backend::TestLightning>,
}

/// Serves the admin socket until the server stops.
pub(crate) fn serve(data_dir: &Path, admin: Admin) -> std::io::Result<()> {
    let path = data_dir.join(SOCKET);
    // A socket left by an earlier run (this process owns the data dir).
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    restrict(&path)?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let admin = admin.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &admin).await {
                            tracing::warn!(error = %e, "admin connection failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

async fn answer(stream: UnixStream, admin: &Admin) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_LINE as u64 + 1)).lines();
    let Some(line) = lines.next_line().await? else {
        return Ok(());
    };
    let answer = match serde_json::from_str::<Request>(&line) {
        Ok(request) => run(request, admin).await,
        Err(e) => Answer::Error(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&answer).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await
}

async fn run(request: Request, admin: &Admin) -> Answer {
    let ledger = &admin.ledger;
    match request {
        Request::Credit {
            account,
            amount_msat,
            key,
            memo,
        } => {
            let account: AccountId = match account.parse() {
                Ok(a) => a,
                Err(e) => return Answer::Error(format!("account: {e}")),
            };
            match ledger
                .credit(&account, MilliSats(amount_msat), &key, memo)
                .await
            {
                Ok(applied) => {
                    tracing::info!(%account, amount_msat, key, ?applied, "credit granted by the operator");
                    match ledger.summary(&account).await {
                        Ok(summary) => Answer::Ok(serde_json::json!({
                            "credited": applied == Applied::Moved,
                            "already_credited": applied == Applied::AlreadyDone,
                            "balance_msat": summary.balance_msat,
                        })),
                        Err(e) => Answer::Error(e.to_string()),
                    }
                }
                Err(e) => Answer::Error(e.to_string()),
            }
        }
        Request::Audit => match ledger.audit().await {
            Ok(audit) => Answer::Ok(serde_json::json!({
                "clean": audit.is_clean(),
                "total_msat": audit.total,
                "movements": audit.movements,
                "postings": audit.postings,
                "unbalanced_movements": audit.unbalanced_movements,
                "mismatched_books": audit.mismatched_books,
                "negative_books": audit.negative_books,
            })),
            Err(e) => Answer::Error(e.to_string()),
        },
        Request::EnrolToken {
            account,
            name,
            reusable,
        } => {
            let account: AccountId = match account.parse() {
                Ok(a) => a,
                Err(e) => return Answer::Error(format!("account: {e}")),
            };
            // Only the account matters to a token: it names whose fleet.
            let owner = wire::Caller {
                account,
                auth: wire::CallerAuth::ApiKey {
                    key_id: "admin socket".into(),
                    scopes: Vec::new(),
                },
            };
            let new = wire::accounts::NewEnrolToken {
                name,
                reusable,
                expires_in_secs: None,
            };
            match admin.enrolments.create_token(&owner, new).await {
                Ok(created) => Answer::Ok(serde_json::json!({
                    "secret": created.secret,
                    "token": created.token,
                })),
                Err(e) => Answer::Error(e.to_string()),
            }
        }
        Request::TestPay { invoice, silently } => {
            let Some(test) = &admin.test_lightning else {
                return Answer::Error(
                    "test-pay needs a server started with --lightning test".into(),
                );
            };
            let paid = if silently {
                test.settle_silently(&invoice).map(|()| None)
            } else {
                test.settle(&invoice).map(Some)
            };
            match paid {
                Ok(preimage) => Answer::Ok(serde_json::json!({
                    "paid": true,
                    "preimage": preimage.map(hex::encode),
                    "event_sent": !silently,
                })),
                Err(e) => Answer::Error(e.to_string()),
            }
        }
    }
}

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("could not reach the server's admin socket {path}: {source} (is the server running with this --data-dir?)")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server answered: {0}")]
    Refused(String),
    #[error("the server's answer could not be read: {0}")]
    Garbled(String),
}

/// Runs an admin command against the server whose data dir is `data_dir`
/// and returns its answer (JSON).
pub async fn client(
    data_dir: &Path,
    command: AdminCommand,
) -> Result<serde_json::Value, AdminError> {
    let request = match command {
        AdminCommand::Credit {
            account,
            amount_msat,
            key,
            memo,
        } => Request::Credit {
            account,
            amount_msat,
            key: key.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
            memo,
        },
        AdminCommand::Audit => Request::Audit,
        AdminCommand::EnrolToken {
            account,
            name,
            reusable,
        } => Request::EnrolToken {
            account,
            name,
            reusable,
        },
        AdminCommand::TestPay { invoice, silently } => Request::TestPay { invoice, silently },
    };
    let path = data_dir.join(SOCKET);
    let stream = UnixStream::connect(&path)
        .await
        .map_err(|source| AdminError::Connect { path, source })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(&request).map_err(|e| AdminError::Garbled(e.to_string()))?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut lines = BufReader::new(read).lines();
    let answer = lines
        .next_line()
        .await?
        .ok_or_else(|| AdminError::Garbled("no answer".into()))?;
    match serde_json::from_str::<Answer>(&answer).map_err(|e| AdminError::Garbled(e.to_string()))? {
        Answer::Ok(v) => Ok(v),
        Answer::Error(e) => Err(AdminError::Refused(e)),
    }
}

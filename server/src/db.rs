//! The SurrealDB connection: embedded SurrealKV on disk by default, or a
//! remote server over `ws://`/`wss://`, through the same `engine::any` path.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use surrealdb::engine::any::Any;
use surrealdb::opt::auth::Root;
use surrealdb::Surreal;

const SCHEMA: &str = include_str!("schema.surql");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Surreal(#[from] surrealdb::Error),
    #[error("database returned an unexpected shape: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("database returned no row for {0}")]
    Missing(&'static str),
}

/// How long [`Db::transact`] keeps running a transaction that keeps losing
/// write conflicts (many concurrent jobs of one account all write its
/// balance) before it gives up.
const CONFLICT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

impl DbError {
    /// A transaction that lost a write conflict: nothing of it was applied,
    /// and running it again may succeed.
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, DbError::Surreal(e) if e.to_string().contains("can be retried"))
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub(crate) struct DbConfig {
    /// `surrealkv://<dir>` (embedded) or `ws://host:port` (remote).
    pub url: String,
    pub namespace: String,
    pub database: String,
    /// Root credentials for a remote server; unused when embedded.
    pub credentials: Option<(String, String)>,
}

/// Cheap to clone. The `Surreal` handle sits behind an `Arc` on purpose:
/// cloning a `Surreal` opens a new database session per clone, and over the
/// WebSocket engine (SurrealDB 3.3.5) queries on such fresh sessions hung.
/// One session, set up once, is what the server wants anyway.
#[derive(Clone)]
pub(crate) struct Db {
    inner: Arc<Surreal<Any>>,
}

impl Db {
    pub(crate) async fn connect(config: &DbConfig) -> Result<Self, DbError> {
        let inner = surrealdb::engine::any::connect(config.url.as_str()).await?;
        if let Some((username, password)) = &config.credentials {
            inner
                .signin(Root {
                    username: username.clone(),
                    password: password.clone(),
                })
                .await?;
        }
        inner
            .use_ns(config.namespace.as_str())
            .use_db(config.database.as_str())
            .await?;
        inner.query(SCHEMA).await?.check()?;
        Ok(Db {
            inner: Arc::new(inner),
        })
    }

    /// Runs `sql` with `vars` (a JSON object) and returns every row of
    /// statement `index`, decoded from JSON.
    pub(crate) async fn rows<T: DeserializeOwned>(
        &self,
        sql: &str,
        vars: serde_json::Value,
        index: usize,
    ) -> Result<Vec<T>, DbError> {
        let mut response = checked(self.inner.query(sql).bind(vars).await?)?;
        let rows: Vec<serde_json::Value> = response.take(index)?;
        rows.into_iter()
            .map(|r| serde_json::from_value(r).map_err(DbError::from))
            .collect()
    }

    /// Runs `sql`, one transaction, with `vars` and returns statement
    /// `index`'s rows; a transaction that lost a write conflict to a
    /// concurrent one (which cancels all of it) is run again, a few times.
    pub(crate) async fn transact<T: DeserializeOwned>(
        &self,
        sql: &str,
        vars: serde_json::Value,
        index: usize,
    ) -> Result<Vec<T>, DbError> {
        let started = std::time::Instant::now();
        let mut tries = 0u32;
        loop {
            match self.rows(sql, vars.clone(), index).await {
                Err(e) if e.is_conflict() && started.elapsed() < CONFLICT_PATIENCE => {
                    tries += 1;
                    // Spread the retries of the transactions that collided:
                    // a random wait below a ceiling that grows to 128 ms.
                    let ceiling = 1u64 << tries.min(7);
                    let random = u64::from(uuid::Uuid::new_v4().as_bytes()[0]);
                    tokio::time::sleep(std::time::Duration::from_millis(
                        1 + random * ceiling / 256,
                    ))
                    .await;
                }
                result => return result,
            }
        }
    }

    /// Runs `sql` with `vars` and fails if any statement failed.
    pub(crate) async fn execute(&self, sql: &str, vars: serde_json::Value) -> Result<(), DbError> {
        checked(self.inner.query(sql).bind(vars).await?)?;
        Ok(())
    }
}

/// The response, or the error that failed it: in a cancelled transaction
/// every statement fails, most with "not executed", so the one that says
/// why is picked (a `THROW`, a conflict at `COMMIT`).
fn checked(
    mut response: surrealdb::IndexedResults,
) -> Result<surrealdb::IndexedResults, surrealdb::Error> {
    let mut errors: Vec<(usize, surrealdb::Error)> = response.take_errors().into_iter().collect();
    if errors.is_empty() {
        return Ok(response);
    }
    errors.sort_by_key(|(i, _)| *i);
    let cause = errors
        .iter()
        .position(|(_, e)| {
            !e.to_string()
                .contains("not executed due to a failed transaction")
        })
        .unwrap_or(0);
    Err(errors.swap_remove(cause).1)
}

#[cfg(test)]
impl Db {
    /// A fresh embedded database of its own, for one test.
    pub(crate) async fn temp(tag: &str) -> Db {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("infernet-db-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Db::connect(&DbConfig {
            // Each test's database is thrown away: no fsync per commit.
            url: format!("surrealkv://{}?sync=never", dir.display()),
            namespace: "t".into(),
            database: "t".into(),
            credentials: None,
        })
        .await
        .expect("an embedded database opens")
    }
}

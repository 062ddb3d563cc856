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
        let mut response = self.inner.query(sql).bind(vars).await?.check()?;
        let rows: Vec<serde_json::Value> = response.take(index)?;
        rows.into_iter()
            .map(|r| serde_json::from_value(r).map_err(DbError::from))
            .collect()
    }

    /// Runs `sql` with `vars` and fails if any statement failed.
    pub(crate) async fn execute(&self, sql: &str, vars: serde_json::Value) -> Result<(), DbError> {
        self.inner.query(sql).bind(vars).await?.check()?;
        Ok(())
    }
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
            url: format!("surrealkv://{}", dir.display()),
            namespace: "t".into(),
            database: "t".into(),
            credentials: None,
        })
        .await
        .expect("an embedded database opens")
    }
}

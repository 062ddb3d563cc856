//! The `node_day` table: each server's evidence of each node, a row per
//! UTC day, under the record id `[node, day, server]` (a server writes
//! only its own rows, so servers sharing a database never overwrite each
//! other's evidence; a node's reputation adds them up).

use serde::{Deserialize, Serialize};
use serde_json::json;
use wire::{NodeId, UnixMillis};

use super::evidence::Day;
use crate::db::{Db, DbError};

/// Rows written per query.
const BATCH: usize = 500;

/// One row of `node_day`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct DayRow {
    pub(super) node: NodeId,
    pub(super) day: UnixMillis,
    /// The peer id of the server whose evidence this is.
    pub(super) server: String,
    /// When the row was last written (for other servers to catch up).
    pub(super) updated_at: UnixMillis,
    #[serde(flatten)]
    pub(super) evidence: Day,
}

#[derive(Clone)]
pub(super) struct DayStore {
    db: Db,
}

impl DayStore {
    pub(super) fn new(db: Db) -> Self {
        DayStore { db }
    }

    /// Every row of the days from `since` on, of every server.
    pub(super) async fn since(&self, since: UnixMillis) -> Result<Vec<DayRow>, DbError> {
        self.db
            .rows(
                "SELECT * OMIT id FROM node_day WHERE day >= $since",
                json!({ "since": since }),
                0,
            )
            .await
    }

    /// Other servers' rows written after `after`.
    pub(super) async fn others_after(
        &self,
        server: &str,
        after: UnixMillis,
    ) -> Result<Vec<DayRow>, DbError> {
        self.db
            .rows(
                "SELECT * OMIT id FROM node_day WHERE updated_at > $after AND server != $server",
                json!({ "after": after, "server": server }),
                0,
            )
            .await
    }

    /// Writes rows (each replacing the row of its node, day and server).
    pub(super) async fn save(&self, rows: &[DayRow]) -> Result<(), DbError> {
        for batch in rows.chunks(BATCH) {
            // One statement: one transaction per batch.
            self.db
                .execute(
                    "FOR $r IN $rows { \
                       UPSERT type::record('node_day', [$r.node, $r.day, $r.server]) CONTENT $r; \
                     };",
                    json!({ "rows": batch }),
                )
                .await?;
        }
        Ok(())
    }

    /// Deletes the days before `before`.
    pub(super) async fn forget_before(&self, before: UnixMillis) -> Result<(), DbError> {
        self.db
            .execute(
                "DELETE node_day WHERE day < $before",
                json!({ "before": before }),
            )
            .await
    }
}

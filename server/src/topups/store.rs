//! The `topup` table: one row per invoice issued, its status, and the
//! crediting of a paid one together with its ledger movement.

use serde::{Deserialize, Serialize};
use serde_json::json;
use wire::billing::{PaymentStatus, Topup};
use wire::{AccountId, MilliSats, UnixMillis};

use crate::db::{Db, DbError};
use crate::ledger::{move_sql, Applied, LedgerError, Movement};

/// A top-up as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TopupRow {
    pub(super) topup_id: String,
    pub(super) account: AccountId,
    pub(super) amount_msat: MilliSats,
    pub(super) invoice: String,
    pub(super) payment_hash: String,
    pub(super) status: PaymentStatus,
    pub(super) created_at: UnixMillis,
    pub(super) expires_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) paid_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) received_msat: Option<MilliSats>,
}

impl TopupRow {
    pub(super) fn to_wire(&self) -> Topup {
        Topup {
            id: self.topup_id.clone(),
            amount_msat: self.amount_msat,
            invoice: self.invoice.clone(),
            payment_hash: self.payment_hash.clone(),
            status: self.status,
            created_at: self.created_at,
            expires_at: self.expires_at,
            paid_at: self.paid_at,
            qr_svg: None,
        }
    }
}

#[derive(Clone)]
pub(super) struct TopupStore {
    db: Db,
}

const FIELDS: &str = "topup_id, account, amount_msat, invoice, payment_hash, status, \
                      created_at, expires_at, paid_at, received_msat";

impl TopupStore {
    pub(super) fn new(db: Db) -> Self {
        TopupStore { db }
    }

    pub(super) async fn insert(&self, row: &TopupRow) -> Result<(), DbError> {
        self.db
            .execute(
                "CREATE type::record('topup', $id) CONTENT $row",
                json!({ "id": row.topup_id, "row": row }),
            )
            .await
    }

    /// One of `account`'s top-ups; another account's is missing.
    pub(super) async fn get(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<TopupRow>, DbError> {
        let sql =
            format!("SELECT {FIELDS} FROM type::record('topup', $id) WHERE account = $account");
        let rows: Vec<TopupRow> = self
            .db
            .rows(&sql, json!({ "id": id, "account": account }), 0)
            .await?;
        Ok(rows.into_iter().next())
    }

    pub(super) async fn by_hash(&self, payment_hash: &str) -> Result<Option<TopupRow>, DbError> {
        let sql = format!("SELECT {FIELDS} FROM topup WHERE payment_hash = $hash LIMIT 1");
        let rows: Vec<TopupRow> = self
            .db
            .rows(&sql, json!({ "hash": payment_hash }), 0)
            .await?;
        Ok(rows.into_iter().next())
    }

    /// `account`'s top-ups, newest first.
    pub(super) async fn list(
        &self,
        account: &AccountId,
        limit: u32,
    ) -> Result<Vec<TopupRow>, DbError> {
        let sql = format!(
            "SELECT {FIELDS} FROM topup WHERE account = $account \
             ORDER BY created_at DESC LIMIT $limit"
        );
        self.db
            .rows(&sql, json!({ "account": account, "limit": limit }), 0)
            .await
    }

    /// How many of `account`'s invoices are unpaid and unexpired.
    pub(super) async fn open_count(
        &self,
        account: &AccountId,
        now: UnixMillis,
    ) -> Result<usize, DbError> {
        #[derive(Deserialize)]
        struct Count {
            n: usize,
        }
        let rows: Vec<Count> = self
            .db
            .rows(
                "SELECT count() AS n FROM topup WHERE account = $account \
                 AND status = 'pending' AND expires_at > $now GROUP ALL",
                json!({ "account": account, "now": now }),
                0,
            )
            .await?;
        Ok(rows.first().map_or(0, |c| c.n))
    }

    /// Unpaid top-ups issued since `since`, oldest first: what the
    /// reconciliation asks the backend about.
    pub(super) async fn pending(
        &self,
        since: UnixMillis,
        limit: u32,
    ) -> Result<Vec<TopupRow>, DbError> {
        let sql = format!(
            "SELECT {FIELDS} FROM topup WHERE status = 'pending' AND created_at >= $since \
             ORDER BY created_at LIMIT $limit"
        );
        self.db
            .rows(&sql, json!({ "since": since, "limit": limit }), 0)
            .await
    }

    /// Marks a top-up paid and applies its movement (the credit), in one
    /// transaction: a second credit of the same top-up moves nothing.
    pub(super) async fn credit(
        &self,
        id: &str,
        received: MilliSats,
        at: UnixMillis,
        movement: &Movement,
    ) -> Result<Applied, LedgerError> {
        let sql = format!(
            "BEGIN TRANSACTION; \
             UPDATE type::record('topup', $id) SET status = 'succeeded', paid_at = $at, \
                 received_msat = $received; \
             {} \
             COMMIT TRANSACTION;",
            move_sql("mv")
        );
        let vars = json!({ "id": id, "at": at, "received": received, "mv": movement.to_json()? });
        match self.db.transact::<serde_json::Value>(&sql, vars, 0).await {
            Ok(_) => Ok(Applied::Moved),
            Err(e) => LedgerError::from_db(e),
        }
    }

    /// Marks an unpaid top-up expired; a paid one stays paid.
    pub(super) async fn expire(&self, id: &str) -> Result<(), DbError> {
        self.db
            .execute(
                "UPDATE type::record('topup', $id) SET status = 'expired' \
                 WHERE status = 'pending'",
                json!({ "id": id }),
            )
            .await
    }
}

//! The `payout` and `payout_settings` tables; each change of a payout's
//! money goes with its status in one transaction.

use serde::{Deserialize, Serialize};
use serde_json::json;
use wire::billing::{PaymentStatus, Payout, PayoutSettings, PayoutSource};
use wire::{AccountId, MilliSats, NodeId, UnixMillis};

use crate::db::{Db, DbError};
use crate::ledger::{move_sql, Applied, LedgerError, Movement};

/// A payout as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PayoutRow {
    pub(super) payout_id: String,
    /// Whose money: an account's, or (with no account) a node's pending
    /// earnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) account: Option<AccountId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) node_id: Option<NodeId>,
    pub(super) source: PayoutSource,
    pub(super) amount_msat: MilliSats,
    pub(super) fee_reserve_msat: MilliSats,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) fee_msat: Option<MilliSats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) address: Option<String>,
    pub(super) invoice: String,
    pub(super) payment_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) preimage: Option<String>,
    pub(super) status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) verify_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) verified: Option<bool>,
    pub(super) automatic: bool,
    pub(super) attempts: u32,
    pub(super) next_attempt_at: UnixMillis,
    pub(super) created_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) finished_at: Option<UnixMillis>,
}

impl PayoutRow {
    pub(super) fn to_wire(&self) -> Payout {
        Payout {
            id: self.payout_id.clone(),
            from: self.source,
            amount_msat: self.amount_msat,
            fee_reserve_msat: self.fee_reserve_msat,
            fee_msat: self.fee_msat,
            address: self.address.clone(),
            invoice: self.invoice.clone(),
            payment_hash: self.payment_hash.clone(),
            preimage: self.preimage.clone(),
            status: self.status,
            error: self.error.clone(),
            verified: self.verified,
            automatic: self.automatic,
            attempts: self.attempts,
            created_at: self.created_at,
            finished_at: self.finished_at,
        }
    }
}

/// Why a new payout was not recorded.
#[derive(Debug)]
pub(super) enum InsertError {
    /// This invoice was paid out already.
    Duplicate,
    Ledger(LedgerError),
}

#[derive(Deserialize)]
struct SettingsRow {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    threshold_msat: Option<MilliSats>,
}

/// An account due an automatic payout check.
#[derive(Debug, Deserialize)]
pub(super) struct Due {
    pub(super) account: AccountId,
    pub(super) address: String,
    pub(super) threshold_msat: MilliSats,
    pub(super) failures: u32,
}

#[derive(Clone)]
pub(super) struct PayoutStore {
    db: Db,
}

const FIELDS: &str =
    "payout_id, account, node_id, source, amount_msat, fee_reserve_msat, fee_msat, \
    address, invoice, payment_hash, preimage, status, error, verify_url, verified, automatic, \
    attempts, next_attempt_at, created_at, finished_at";

impl PayoutStore {
    pub(super) fn new(db: Db) -> Self {
        PayoutStore { db }
    }

    /// Records a payout with the movement that takes its money (amount and
    /// fee reserve) from its source, in one transaction.
    pub(super) async fn insert(&self, row: &PayoutRow, take: &Movement) -> Result<(), InsertError> {
        let sql = format!(
            "BEGIN TRANSACTION; \
             CREATE type::record('payout', $id) CONTENT $row; \
             {} \
             COMMIT TRANSACTION;",
            move_sql("mv")
        );
        let mv = take.to_json().map_err(InsertError::Ledger)?;
        let vars = json!({ "id": row.payout_id, "row": row, "mv": mv });
        match self.db.transact::<serde_json::Value>(&sql, vars, 0).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("payout_hash") => Err(InsertError::Duplicate),
            Err(e) => match LedgerError::from_db(e) {
                // A new payout's key is new.
                Ok(_) => Err(InsertError::Ledger(LedgerError::Unbalanced(
                    take.key.clone(),
                ))),
                Err(e) => Err(InsertError::Ledger(e)),
            },
        }
    }

    pub(super) async fn get(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<PayoutRow>, DbError> {
        let sql =
            format!("SELECT {FIELDS} FROM type::record('payout', $id) WHERE account = $account");
        let rows: Vec<PayoutRow> = self
            .db
            .rows(&sql, json!({ "id": id, "account": account }), 0)
            .await?;
        Ok(rows.into_iter().next())
    }

    pub(super) async fn list(
        &self,
        account: &AccountId,
        limit: u32,
    ) -> Result<Vec<PayoutRow>, DbError> {
        let sql = format!(
            "SELECT {FIELDS} FROM payout WHERE account = $account \
             ORDER BY created_at DESC LIMIT $limit"
        );
        self.db
            .rows(&sql, json!({ "account": account, "limit": limit }), 0)
            .await
    }

    /// Pending payouts whose next attempt is due.
    pub(super) async fn due(&self, now: UnixMillis, limit: u32) -> Result<Vec<PayoutRow>, DbError> {
        let sql = format!(
            "SELECT {FIELDS} FROM payout WHERE status = 'pending' AND next_attempt_at <= $now \
             ORDER BY next_attempt_at LIMIT $limit"
        );
        self.db
            .rows(&sql, json!({ "now": now, "limit": limit }), 0)
            .await
    }

    /// Whether `account` has an automatic payout on its way.
    pub(super) async fn automatic_pending(&self, account: &AccountId) -> Result<bool, DbError> {
        let rows: Vec<serde_json::Value> = self
            .db
            .rows(
                "SELECT payout_id FROM payout WHERE account = $account AND automatic = true \
                 AND status = 'pending' LIMIT 1",
                json!({ "account": account }),
                0,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// The latest payout of a node's pending earnings, and how many of
    /// them failed since `since`.
    pub(super) async fn node_history(
        &self,
        node: &NodeId,
        since: UnixMillis,
    ) -> Result<(Option<PayoutRow>, u32), DbError> {
        #[derive(Deserialize)]
        struct Count {
            n: u32,
        }
        let sql = format!(
            "SELECT {FIELDS} FROM payout WHERE node_id = $node ORDER BY created_at DESC LIMIT 1"
        );
        let vars = json!({ "node": node, "since": since });
        let latest: Vec<PayoutRow> = self.db.rows(&sql, vars.clone(), 0).await?;
        let failed: Vec<Count> = self
            .db
            .rows(
                "SELECT count() AS n FROM payout WHERE node_id = $node AND status = 'failed' \
                 AND created_at >= $since GROUP ALL",
                vars,
                0,
            )
            .await?;
        Ok((latest.into_iter().next(), failed.first().map_or(0, |c| c.n)))
    }

    /// Ends a pending payout: its new fields and the movement that settles
    /// its money, in one transaction. A payout ends once.
    pub(super) async fn finish(
        &self,
        id: &str,
        patch: serde_json::Value,
        end: &Movement,
    ) -> Result<Applied, LedgerError> {
        let sql = format!(
            "BEGIN TRANSACTION; \
             UPDATE type::record('payout', $id) MERGE $patch WHERE status = 'pending'; \
             {} \
             COMMIT TRANSACTION;",
            move_sql("mv")
        );
        let vars = json!({ "id": id, "patch": patch, "mv": end.to_json()? });
        match self.db.transact::<serde_json::Value>(&sql, vars, 0).await {
            Ok(_) => Ok(Applied::Moved),
            Err(e) => LedgerError::from_db(e),
        }
    }

    /// A try that got no answer: when to try again, and why.
    pub(super) async fn retry_later(
        &self,
        id: &str,
        next: UnixMillis,
        error: &str,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "UPDATE type::record('payout', $id) SET attempts += 1, next_attempt_at = $next, \
                 error = $error WHERE status = 'pending'",
                json!({ "id": id, "next": next, "error": error }),
            )
            .await
    }

    pub(super) async fn settings(&self, account: &AccountId) -> Result<PayoutSettings, DbError> {
        let rows: Vec<SettingsRow> = self
            .db
            .rows(
                "SELECT address, threshold_msat FROM type::record('payout_settings', $account)",
                json!({ "account": account }),
                0,
            )
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .map(|r| PayoutSettings {
                address: r.address,
                threshold_msat: r.threshold_msat,
            })
            .unwrap_or_default())
    }

    /// Saves the settings; a change clears the backoff of earlier failures.
    pub(super) async fn set_settings(
        &self,
        account: &AccountId,
        settings: &PayoutSettings,
    ) -> Result<(), DbError> {
        let mut content = json!({ "account": account, "failures": 0, "next_try_at": 0 });
        if let Some(a) = &settings.address {
            content["address"] = json!(a);
        }
        if let Some(t) = settings.threshold_msat {
            content["threshold_msat"] = json!(t);
        }
        self.db
            .execute(
                "UPSERT type::record('payout_settings', $account) CONTENT $content",
                json!({ "account": account, "content": content }),
            )
            .await
    }

    /// Accounts with automatic payouts set up whose backoff has passed.
    pub(super) async fn due_settings(
        &self,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<Due>, DbError> {
        self.db
            .rows(
                "SELECT account, address, threshold_msat, failures FROM payout_settings \
                 WHERE next_try_at <= $now AND address != NONE AND threshold_msat != NONE \
                 LIMIT $limit",
                json!({ "now": now, "limit": limit }),
                0,
            )
            .await
    }

    /// How many automatic payouts of `account` failed in a row.
    pub(super) async fn failures(&self, account: &AccountId) -> Result<u32, DbError> {
        #[derive(Deserialize)]
        struct Row {
            failures: u32,
        }
        let rows: Vec<Row> = self
            .db
            .rows(
                "SELECT failures FROM type::record('payout_settings', $account)",
                json!({ "account": account }),
                0,
            )
            .await?;
        Ok(rows.first().map_or(0, |r| r.failures))
    }

    /// After an automatic payout failed: wait longer before the next.
    pub(super) async fn back_off(
        &self,
        account: &AccountId,
        failures: u32,
        next: UnixMillis,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "UPDATE type::record('payout_settings', $account) SET failures = $failures, \
                 next_try_at = $next",
                json!({ "account": account, "failures": failures, "next": next }),
            )
            .await
    }
}

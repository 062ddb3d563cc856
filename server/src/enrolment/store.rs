//! The `enrol_token` and `claim` tables and all their SurrealQL.

use serde::{Deserialize, Serialize};
use serde_json::json;
use wire::accounts::EnrolTokenView;
use wire::{AccountId, NodeId, UnixMillis};

use crate::db::{Db, DbError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TokenRow {
    pub(super) token_id: String,
    pub(super) account: AccountId,
    pub(super) name: String,
    pub(super) prefix: String,
    pub(super) reusable: bool,
    pub(super) created_at: UnixMillis,
    pub(super) expires_at: UnixMillis,
    pub(super) uses: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) revoked_at: Option<UnixMillis>,
}

impl TokenRow {
    pub(super) fn view(&self) -> EnrolTokenView {
        EnrolTokenView {
            id: self.token_id.clone(),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            reusable: self.reusable,
            created_at: self.created_at,
            expires_at: self.expires_at,
            uses: self.uses,
            revoked_at: self.revoked_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ClaimRow {
    pub(super) peer_id: NodeId,
    pub(super) account: AccountId,
    pub(super) token_id: String,
    pub(super) enrolled_at: UnixMillis,
}

#[derive(Clone)]
pub(super) struct EnrolStore {
    db: Db,
}

impl EnrolStore {
    pub(super) fn new(db: Db) -> Self {
        EnrolStore { db }
    }

    pub(super) async fn insert_token(&self, hash: &str, t: &TokenRow) -> Result<(), DbError> {
        self.db
            .execute(
                "CREATE type::record('enrol_token', $hash) CONTENT $row",
                json!({ "hash": hash, "row": t }),
            )
            .await
    }

    pub(super) async fn token(&self, hash: &str) -> Result<Option<TokenRow>, DbError> {
        Ok(self
            .db
            .rows(
                "SELECT * FROM type::record('enrol_token', $hash)",
                json!({ "hash": hash }),
                0,
            )
            .await?
            .into_iter()
            .next())
    }

    pub(super) async fn tokens_of(&self, account: &AccountId) -> Result<Vec<TokenRow>, DbError> {
        self.db
            .rows(
                "SELECT * FROM enrol_token WHERE account = $account ORDER BY created_at DESC",
                json!({ "account": account }),
                0,
            )
            .await
    }

    pub(super) async fn revoke_token(
        &self,
        account: &AccountId,
        token_id: &str,
        now: UnixMillis,
    ) -> Result<bool, DbError> {
        let hit: Vec<serde_json::Value> = self
            .db
            .rows(
                "UPDATE enrol_token SET revoked_at = $now \
                 WHERE account = $account AND token_id = $tid AND revoked_at = NONE RETURN token_id",
                json!({ "account": account, "tid": token_id, "now": now }),
                0,
            )
            .await?;
        Ok(!hit.is_empty())
    }

    pub(super) async fn claim(&self, peer: NodeId) -> Result<Option<ClaimRow>, DbError> {
        Ok(self
            .db
            .rows(
                "SELECT * FROM type::record('claim', $peer)",
                json!({ "peer": peer }),
                0,
            )
            .await?
            .into_iter()
            .next())
    }

    /// Uses the token once and binds the node, both or neither: the token
    /// must still be live (and unused, if single-use) and the node
    /// unclaimed when the transaction runs. Returns whether it did.
    pub(super) async fn bind(
        &self,
        token_hash: &str,
        claim: &ClaimRow,
        now: UnixMillis,
    ) -> Result<bool, DbError> {
        let done: Result<Vec<serde_json::Value>, DbError> = self
            .db
            .rows(
                "BEGIN TRANSACTION; \
                 LET $used = (UPDATE type::record('enrol_token', $hash) SET uses += 1 \
                     WHERE revoked_at = NONE AND expires_at > $now AND (reusable OR uses = 0) \
                     RETURN uses); \
                 LET $held = (SELECT VALUE peer_id FROM type::record('claim', $peer)); \
                 IF array::len($used) = 0 OR array::len($held) > 0 { \
                     THROW 'the token was used or the node claimed meanwhile'; \
                 }; \
                 CREATE type::record('claim', $peer) CONTENT $claim RETURN peer_id; \
                 COMMIT TRANSACTION;",
                json!({ "hash": token_hash, "peer": claim.peer_id, "claim": claim, "now": now }),
                4,
            )
            .await;
        match done {
            Ok(rows) => Ok(!rows.is_empty()),
            // The THROW: someone else got there first.
            Err(DbError::Surreal(e)) if e.to_string().contains("claimed meanwhile") => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn release(&self, account: &AccountId, peer: NodeId) -> Result<bool, DbError> {
        let gone: Vec<serde_json::Value> = self
            .db
            .rows(
                "DELETE type::record('claim', $peer) WHERE account = $account RETURN BEFORE",
                json!({ "peer": peer, "account": account }),
                0,
            )
            .await?;
        Ok(!gone.is_empty())
    }

    pub(super) async fn claims_of(&self, account: &AccountId) -> Result<Vec<ClaimRow>, DbError> {
        self.db
            .rows(
                "SELECT * FROM claim WHERE account = $account ORDER BY enrolled_at",
                json!({ "account": account }),
                0,
            )
            .await
    }
}

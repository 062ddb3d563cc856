//! The `api_key` table: keys stored by the SHA-256 of their secret, their
//! scopes, use, revocation and spending caps.

use serde::{Deserialize, Serialize};
use serde_json::json;
use wire::accounts::{ApiKeyView, KeyCaps, Scope};
use wire::{AccountId, MilliSats, UnixMillis};

use super::{first, AccountStore};
use crate::db::DbError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(in crate::accounts) struct ApiKeyRow {
    pub(in crate::accounts) key_id: String,
    pub(in crate::accounts) account: AccountId,
    pub(in crate::accounts) name: String,
    pub(in crate::accounts) prefix: String,
    pub(in crate::accounts) scopes: Vec<Scope>,
    pub(in crate::accounts) created_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(in crate::accounts) last_used: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(in crate::accounts) revoked_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(in crate::accounts) daily_cap_msat: Option<MilliSats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(in crate::accounts) total_cap_msat: Option<MilliSats>,
}

impl ApiKeyRow {
    pub(in crate::accounts) fn view(&self) -> ApiKeyView {
        ApiKeyView {
            id: self.key_id.clone(),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            scopes: self.scopes.clone(),
            created_at: self.created_at,
            last_used: self.last_used,
            revoked_at: self.revoked_at,
            caps: KeyCaps {
                daily_cap_msat: self.daily_cap_msat,
                total_cap_msat: self.total_cap_msat,
            },
            spent_today_msat: MilliSats(0),
            spent_total_msat: MilliSats(0),
        }
    }
}

impl AccountStore {
    pub(in crate::accounts) async fn insert_key(
        &self,
        hash: &str,
        k: &ApiKeyRow,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "CREATE type::record('api_key', $hash) CONTENT $key",
                json!({ "hash": hash, "key": k }),
            )
            .await
    }

    pub(in crate::accounts) async fn key(&self, hash: &str) -> Result<Option<ApiKeyRow>, DbError> {
        Ok(first(
            self.db
                .rows(
                    "SELECT * FROM type::record('api_key', $hash)",
                    json!({ "hash": hash }),
                    0,
                )
                .await?,
        ))
    }

    pub(in crate::accounts) async fn touch_key(
        &self,
        hash: &str,
        now: UnixMillis,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "UPDATE type::record('api_key', $hash) SET last_used = $now",
                json!({ "hash": hash, "now": now }),
            )
            .await
    }

    /// Revokes one of the account's keys. Returns whether it had it.
    pub(in crate::accounts) async fn revoke_key(
        &self,
        account: &AccountId,
        key_id: &str,
        now: UnixMillis,
    ) -> Result<bool, DbError> {
        let hit: Vec<serde_json::Value> = self
            .db
            .rows(
                "UPDATE api_key SET revoked_at = $now \
                 WHERE account = $account AND key_id = $kid AND revoked_at = NONE RETURN key_id",
                json!({ "account": account, "kid": key_id, "now": now }),
                0,
            )
            .await?;
        Ok(!hit.is_empty())
    }

    pub(in crate::accounts) async fn keys_of(
        &self,
        account: &AccountId,
    ) -> Result<Vec<ApiKeyView>, DbError> {
        let rows: Vec<ApiKeyRow> = self
            .db
            .rows(
                "SELECT * FROM api_key WHERE account = $account ORDER BY created_at DESC",
                json!({ "account": account }),
                0,
            )
            .await?;
        Ok(rows.iter().map(ApiKeyRow::view).collect())
    }

    /// Sets the caps of one of the account's live keys. Returns whether
    /// it had it.
    pub(in crate::accounts) async fn set_key_caps(
        &self,
        account: &AccountId,
        key_id: &str,
        caps: &KeyCaps,
    ) -> Result<bool, DbError> {
        let hit: Vec<serde_json::Value> = self
            .db
            .rows(
                "UPDATE api_key SET daily_cap_msat = $daily ?? NONE, total_cap_msat = $total ?? NONE \
                 WHERE account = $account AND key_id = $kid AND revoked_at = NONE RETURN key_id",
                json!({
                    "account": account,
                    "kid": key_id,
                    "daily": caps.daily_cap_msat,
                    "total": caps.total_cap_msat,
                }),
                0,
            )
            .await?;
        Ok(!hit.is_empty())
    }

    /// The caps of a key, by its id.
    pub(in crate::accounts) async fn key_caps(&self, key_id: &str) -> Result<KeyCaps, DbError> {
        #[derive(Deserialize)]
        struct Row {
            #[serde(default)]
            daily_cap_msat: Option<MilliSats>,
            #[serde(default)]
            total_cap_msat: Option<MilliSats>,
        }
        let rows: Vec<Row> = self
            .db
            .rows(
                "SELECT daily_cap_msat, total_cap_msat FROM api_key WHERE key_id = $kid",
                json!({ "kid": key_id }),
                0,
            )
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .map(|r| KeyCaps {
                daily_cap_msat: r.daily_cap_msat,
                total_cap_msat: r.total_cap_msat,
            })
            .unwrap_or_default())
    }
}

//! The accounts' tables (`account`, `passkey`, `ln_key`, `session`,
//! `api_key`, `challenge`) and all their SurrealQL. Whatever creates an
//! account creates its first way in and its session in the same
//! transaction: there is never an account nobody can sign in to. API keys
//! are in `keys`.

mod keys;

pub(super) use keys::ApiKeyRow;

use serde::{Deserialize, Serialize};
use serde_json::json;
use wire::accounts::{Account, LightningKeyView, PasskeyView, SessionView};
use wire::{AccountId, MilliSats, UnixMillis};

use crate::db::{Db, DbError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct AccountRow {
    pub(super) account_id: AccountId,
    pub(super) display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) public_name: Option<String>,
    /// The WebAuthn user handle (a UUID) that passkeys carry back.
    pub(super) user_handle: String,
    pub(super) created_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) local: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) default_max_price_msat: Option<MilliSats>,
}

impl AccountRow {
    pub(super) fn view(&self) -> Account {
        Account {
            id: self.account_id.clone(),
            display_name: self.display_name.clone(),
            public_name: self.public_name.clone(),
            created_at: self.created_at,
            default_max_price_msat: self.default_max_price_msat,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PasskeyRow {
    /// The credential id, base64url: also the record's key.
    pub(super) cred_id: String,
    pub(super) account: AccountId,
    pub(super) name: String,
    /// webauthn-rs's `Passkey` (public key, counter), as its JSON.
    pub(super) passkey: serde_json::Value,
    pub(super) created_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) last_used: Option<UnixMillis>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LnKeyRow {
    /// The linking key, compressed secp256k1 in hex: also the record's key.
    pub(super) pubkey: String,
    pub(super) account: AccountId,
    pub(super) created_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) last_used: Option<UnixMillis>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SessionRow {
    pub(super) session_id: String,
    pub(super) account: AccountId,
    pub(super) method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) user_agent: Option<String>,
    pub(super) created_at: UnixMillis,
    pub(super) last_seen: UnixMillis,
    pub(super) expires_at: UnixMillis,
}

/// A ceremony in progress: a WebAuthn registration or authentication, or
/// a Lightning login. Taken (deleted) exactly once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct ChallengeRow {
    pub(super) kind: String,
    pub(super) expires_at: UnixMillis,
    /// webauthn-rs's ceremony state, as its JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) state: Option<serde_json::Value>,
    /// The signed-in account adding a way in; `None` for sign-up and sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) account: Option<AccountId>,
    /// For a sign-up: the new account's display name and user handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) user_handle: Option<String>,
    /// The name of the passkey being registered; for a Lightning login,
    /// `login` or `link`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) label: Option<String>,
    /// For a Lightning login: the hash of the page's poll token, and the
    /// account the wallet's key signed in to, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) poll_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) signed_account: Option<AccountId>,
}

#[derive(Clone)]
pub(super) struct AccountStore {
    db: Db,
}

fn first<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

impl AccountStore {
    pub(super) fn new(db: Db) -> Self {
        AccountStore { db }
    }

    pub(super) async fn account(&self, id: &AccountId) -> Result<Option<AccountRow>, DbError> {
        Ok(first(
            self.db
                .rows(
                    "SELECT * FROM type::record('account', $id)",
                    json!({ "id": id }),
                    0,
                )
                .await?,
        ))
    }

    /// The account `scripts/up.sh` signs in with, if one was made.
    pub(super) async fn local_account(&self) -> Result<Option<AccountRow>, DbError> {
        Ok(first(
            self.db
                .rows(
                    "SELECT * FROM account WHERE local = true ORDER BY created_at LIMIT 1",
                    json!({}),
                    0,
                )
                .await?,
        ))
    }

    pub(super) async fn create_local_account(&self, a: &AccountRow) -> Result<(), DbError> {
        self.db
            .execute(
                "CREATE type::record('account', $id) CONTENT $account",
                json!({ "id": a.account_id, "account": a }),
            )
            .await
    }

    pub(super) async fn set_public_name(
        &self,
        id: &AccountId,
        name: Option<&str>,
    ) -> Result<(), DbError> {
        let sql = if name.is_some() {
            "UPDATE type::record('account', $id) SET public_name = $name"
        } else {
            "UPDATE type::record('account', $id) SET public_name = NONE"
        };
        self.db
            .execute(sql, json!({ "id": id, "name": name }))
            .await
    }

    pub(super) async fn set_default_max_price(
        &self,
        id: &AccountId,
        max: Option<MilliSats>,
    ) -> Result<(), DbError> {
        let sql = if max.is_some() {
            "UPDATE type::record('account', $id) SET default_max_price_msat = $max"
        } else {
            "UPDATE type::record('account', $id) SET default_max_price_msat = NONE"
        };
        self.db.execute(sql, json!({ "id": id, "max": max })).await
    }

    /// A new account with its first passkey and session, all or nothing.
    pub(super) async fn create_with_passkey(
        &self,
        account: &AccountRow,
        passkey: &PasskeyRow,
        session_hash: &str,
        session: &SessionRow,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "BEGIN TRANSACTION; \
                 CREATE type::record('account', $id) CONTENT $account; \
                 CREATE type::record('passkey', $cred) CONTENT $passkey; \
                 CREATE type::record('session', $hash) CONTENT $row; \
                 COMMIT TRANSACTION;",
                json!({
                    "id": account.account_id, "account": account,
                    "cred": passkey.cred_id, "passkey": passkey,
                    "hash": session_hash, "row": session,
                }),
            )
            .await
    }

    /// A new account with its first Lightning key, both or neither.
    pub(super) async fn create_with_ln_key(
        &self,
        account: &AccountRow,
        key: &LnKeyRow,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "BEGIN TRANSACTION; \
                 CREATE type::record('account', $id) CONTENT $account; \
                 CREATE type::record('ln_key', $pubkey) CONTENT $key; \
                 COMMIT TRANSACTION;",
                json!({
                    "id": account.account_id, "account": account,
                    "pubkey": key.pubkey, "key": key,
                }),
            )
            .await
    }

    pub(super) async fn passkey(&self, cred_id: &str) -> Result<Option<PasskeyRow>, DbError> {
        Ok(first(
            self.db
                .rows(
                    "SELECT * FROM type::record('passkey', $cred)",
                    json!({ "cred": cred_id }),
                    0,
                )
                .await?,
        ))
    }

    pub(super) async fn add_passkey(&self, p: &PasskeyRow) -> Result<(), DbError> {
        self.db
            .execute(
                "CREATE type::record('passkey', $cred) CONTENT $passkey",
                json!({ "cred": p.cred_id, "passkey": p }),
            )
            .await
    }

    /// After a sign-in: the credential's new counter and when it was used.
    pub(super) async fn touch_passkey(
        &self,
        cred_id: &str,
        passkey: &serde_json::Value,
        now: UnixMillis,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "UPDATE type::record('passkey', $cred) SET passkey = $passkey, last_used = $now",
                json!({ "cred": cred_id, "passkey": passkey, "now": now }),
            )
            .await
    }

    pub(super) async fn ln_key(&self, pubkey: &str) -> Result<Option<LnKeyRow>, DbError> {
        Ok(first(
            self.db
                .rows(
                    "SELECT * FROM type::record('ln_key', $pubkey)",
                    json!({ "pubkey": pubkey }),
                    0,
                )
                .await?,
        ))
    }

    pub(super) async fn add_ln_key(&self, k: &LnKeyRow) -> Result<(), DbError> {
        self.db
            .execute(
                "CREATE type::record('ln_key', $pubkey) CONTENT $key",
                json!({ "pubkey": k.pubkey, "key": k }),
            )
            .await
    }

    pub(super) async fn touch_ln_key(&self, pubkey: &str, now: UnixMillis) -> Result<(), DbError> {
        self.db
            .execute(
                "UPDATE type::record('ln_key', $pubkey) SET last_used = $now",
                json!({ "pubkey": pubkey, "now": now }),
            )
            .await
    }

    /// Removes one of the account's passkeys or Lightning keys, unless it
    /// is its last way in. Returns `None` if it has no such credential,
    /// `Some(false)` if it is the last one.
    pub(super) async fn remove_credential(
        &self,
        account: &AccountId,
        table: &'static str,
        id: &str,
    ) -> Result<Option<bool>, DbError> {
        #[derive(Deserialize)]
        struct Outcome {
            found: bool,
            removed: bool,
        }
        let rows: Vec<Outcome> = self
            .db
            .rows(
                "BEGIN TRANSACTION; \
                 LET $mine = (SELECT VALUE id FROM type::record($table, $key) WHERE account = $account); \
                 LET $ways = array::len((SELECT id FROM passkey WHERE account = $account)) \
                     + array::len((SELECT id FROM ln_key WHERE account = $account)); \
                 IF array::len($mine) > 0 AND $ways > 1 { DELETE type::record($table, $key); }; \
                 RETURN { found: array::len($mine) > 0, removed: array::len($mine) > 0 AND $ways > 1 }; \
                 COMMIT TRANSACTION;",
                json!({ "table": table, "key": id, "account": account }),
                4,
            )
            .await?;
        Ok(first(rows).and_then(|o| o.found.then_some(o.removed)))
    }

    pub(super) async fn passkeys_of(
        &self,
        account: &AccountId,
    ) -> Result<Vec<PasskeyView>, DbError> {
        #[derive(Deserialize)]
        struct Row {
            cred_id: String,
            name: String,
            created_at: UnixMillis,
            #[serde(default)]
            last_used: Option<UnixMillis>,
        }
        let rows: Vec<Row> = self
            .db
            .rows(
                "SELECT cred_id, name, created_at, last_used FROM passkey \
                 WHERE account = $account ORDER BY created_at",
                json!({ "account": account }),
                0,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| PasskeyView {
                id: r.cred_id,
                name: r.name,
                created_at: r.created_at,
                last_used: r.last_used,
            })
            .collect())
    }

    pub(super) async fn passkey_ids_of(&self, account: &AccountId) -> Result<Vec<String>, DbError> {
        self.db
            .rows(
                "SELECT VALUE cred_id FROM passkey WHERE account = $account",
                json!({ "account": account }),
                0,
            )
            .await
    }

    pub(super) async fn ln_keys_of(
        &self,
        account: &AccountId,
    ) -> Result<Vec<LightningKeyView>, DbError> {
        let rows: Vec<LnKeyRow> = self
            .db
            .rows(
                "SELECT * FROM ln_key WHERE account = $account ORDER BY created_at",
                json!({ "account": account }),
                0,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| LightningKeyView {
                id: r.pubkey.clone(),
                pubkey: r.pubkey,
                created_at: r.created_at,
                last_used: r.last_used,
            })
            .collect())
    }

    pub(super) async fn insert_session(&self, hash: &str, s: &SessionRow) -> Result<(), DbError> {
        self.db
            .execute(
                "CREATE type::record('session', $hash) CONTENT $row",
                json!({ "hash": hash, "row": s }),
            )
            .await
    }

    pub(super) async fn session(&self, hash: &str) -> Result<Option<SessionRow>, DbError> {
        Ok(first(
            self.db
                .rows(
                    "SELECT * FROM type::record('session', $hash)",
                    json!({ "hash": hash }),
                    0,
                )
                .await?,
        ))
    }

    /// Slides a session's expiry forward.
    pub(super) async fn renew_session(
        &self,
        hash: &str,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "UPDATE type::record('session', $hash) SET last_seen = $now, expires_at = $expires",
                json!({ "hash": hash, "now": now, "expires": expires_at }),
            )
            .await
    }

    pub(super) async fn delete_session_by_hash(&self, hash: &str) -> Result<(), DbError> {
        self.db
            .execute(
                "DELETE type::record('session', $hash)",
                json!({ "hash": hash }),
            )
            .await
    }

    /// Ends one of the account's sessions. Returns whether it had it.
    pub(super) async fn delete_session(
        &self,
        account: &AccountId,
        session_id: &str,
    ) -> Result<bool, DbError> {
        let gone: Vec<serde_json::Value> = self
            .db
            .rows(
                "DELETE session WHERE account = $account AND session_id = $sid RETURN BEFORE",
                json!({ "account": account, "sid": session_id }),
                0,
            )
            .await?;
        Ok(!gone.is_empty())
    }

    /// Ends every session of the account. Returns how many.
    pub(super) async fn delete_sessions(&self, account: &AccountId) -> Result<usize, DbError> {
        let gone: Vec<serde_json::Value> = self
            .db
            .rows(
                "DELETE session WHERE account = $account RETURN BEFORE",
                json!({ "account": account }),
                0,
            )
            .await?;
        Ok(gone.len())
    }

    pub(super) async fn sessions_of(
        &self,
        account: &AccountId,
        current: Option<&str>,
        now: UnixMillis,
    ) -> Result<Vec<SessionView>, DbError> {
        let rows: Vec<SessionRow> = self
            .db
            .rows(
                "SELECT * FROM session WHERE account = $account AND expires_at > $now \
                 ORDER BY last_seen DESC",
                json!({ "account": account, "now": now }),
                0,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| SessionView {
                current: current == Some(r.session_id.as_str()),
                id: r.session_id,
                created_at: r.created_at,
                last_seen: r.last_seen,
                expires_at: r.expires_at,
                method: r.method,
                user_agent: r.user_agent,
            })
            .collect())
    }

    pub(super) async fn insert_challenge(&self, id: &str, c: &ChallengeRow) -> Result<(), DbError> {
        self.db
            .execute(
                "CREATE type::record('challenge', $id) CONTENT $challenge",
                json!({ "id": id, "challenge": c }),
            )
            .await
    }

    /// Takes a challenge of `kind`: whoever takes it first gets it, and
    /// nobody gets it again. Expired ones are taken too (and refused by
    /// the caller).
    pub(super) async fn take_challenge(
        &self,
        id: &str,
        kind: &str,
    ) -> Result<Option<ChallengeRow>, DbError> {
        Ok(first(
            self.db
                .rows(
                    "DELETE type::record('challenge', $id) WHERE kind = $kind RETURN BEFORE",
                    json!({ "id": id, "kind": kind }),
                    0,
                )
                .await?,
        ))
    }

    pub(super) async fn challenge(&self, id: &str) -> Result<Option<ChallengeRow>, DbError> {
        Ok(first(
            self.db
                .rows(
                    "SELECT * FROM type::record('challenge', $id)",
                    json!({ "id": id }),
                    0,
                )
                .await?,
        ))
    }

    /// Marks a Lightning login as signed by `account`, once, while it is
    /// live. Returns whether this call did it.
    pub(super) async fn sign_lnurl(
        &self,
        k1: &str,
        account: &AccountId,
        now: UnixMillis,
    ) -> Result<bool, DbError> {
        let hit: Vec<serde_json::Value> = self
            .db
            .rows(
                "UPDATE type::record('challenge', $k1) SET signed_account = $account \
                 WHERE kind = 'lnurl' AND signed_account = NONE AND expires_at > $now \
                 RETURN kind",
                json!({ "k1": k1, "account": account, "now": now }),
                0,
            )
            .await?;
        Ok(!hit.is_empty())
    }

    /// Takes a signed Lightning login for the page holding its poll token.
    pub(super) async fn take_signed_lnurl(
        &self,
        k1: &str,
        poll_hash: &str,
    ) -> Result<Option<ChallengeRow>, DbError> {
        Ok(first(
            self.db
                .rows(
                    "DELETE type::record('challenge', $k1) \
                     WHERE kind = 'lnurl' AND poll_hash = $poll AND signed_account != NONE \
                     RETURN BEFORE",
                    json!({ "k1": k1, "poll": poll_hash }),
                    0,
                )
                .await?,
        ))
    }

    /// Forgets ceremonies and sessions that expired before `cutoff`.
    pub(super) async fn forget_expired(&self, cutoff: UnixMillis) -> Result<(), DbError> {
        self.db
            .execute(
                "DELETE challenge WHERE expires_at < $cutoff; \
                 DELETE session WHERE expires_at < $cutoff;",
                json!({ "cutoff": cutoff }),
            )
            .await
    }

    /// Moves a ceremony's expiry: tests age challenges without waiting.
    #[cfg(test)]
    pub(super) async fn set_expiry(&self, id: &str, at: UnixMillis) -> Result<(), DbError> {
        self.db
            .execute(
                "UPDATE type::record('challenge', $id) SET expires_at = $at",
                json!({ "id": id, "at": at }),
            )
            .await
    }
}

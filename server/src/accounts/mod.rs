//! Accounts: who may call what. Nobody types a password: an account signs
//! in with a passkey (WebAuthn) or a Lightning wallet (LNURL-auth), gets a
//! session cookie, and makes API keys for programs.
//!
//! - `site`: the public URL, and the relying party and origin it implies;
//! - `secrets`: random tokens, stored only as hashes;
//! - `store`: the tables and all their SurrealQL;
//! - `auth`: the middleware that turns a cookie or a bearer key into a
//!   [`Caller`], the CSRF check, and the extractors handlers use;
//! - `passkeys`, `lnurl`: the two ways in;
//! - `limits`: rate limits on signing in and making keys;
//! - `http`: the routes under `/api/v1/auth` and `/api/v1/account`.

mod auth;
mod http;
mod limits;
mod lnurl;
mod passkeys;
mod secrets;
mod site;
mod store;

pub(crate) use auth::{
    authenticate, require, still_signed_in, OaiCaller, SignedIn, SESSION_COOKIE,
};
pub(crate) use http::{router, ClientIp, Session};
pub(crate) use limits::Limits;
pub(crate) use secrets::{hash as hash_secret, new_id, new_secret, random_bytes};
pub(crate) use site::Site;
pub use site::SiteError;

use std::sync::Arc;
use std::time::Duration;

use wire::accounts::{
    Account, AccountSettings, ApiKeyView, CreatedApiKey, KeyCaps, NewApiKey, Scope,
};
use wire::{AccountId, Caller, MilliSats, UnixMillis};

use crate::db::{Db, DbError};
use store::{AccountRow, AccountStore, ApiKeyRow, SessionRow};

/// How long a session lasts without being used; each use slides it on.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a sign-in ceremony (WebAuthn challenge, LNURL `k1`) is valid.
pub(crate) const CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);
/// A session's expiry is pushed forward at most this often.
const RENEW_EVERY: Duration = Duration::from_secs(10 * 60);
/// An API key's last use is written at most this often.
const KEY_TOUCH_EVERY: Duration = Duration::from_secs(60);
const API_KEY_PREFIX: &str = "sk-inf-";
const MAX_KEYS: usize = 100;
const MAX_NAME: usize = 64;
/// The largest cap or default maximum price: 1 BTC.
const MAX_CAP_MSAT: u64 = 100_000_000_000;

/// What a job runs under: see [`Accounts::spending_limits`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SpendingLimits {
    /// The account's default maximum price per job.
    pub(crate) default_max_price: Option<MilliSats>,
    /// The key the job came with, and its caps (none for a session).
    pub(crate) caps: Option<(String, KeyCaps)>,
}

/// A default maximum price per job is 1 msat to the caps' maximum.
fn check_default_max_price(max: Option<MilliSats>) -> Result<(), AuthError> {
    if max.is_some_and(|m| m.0 == 0 || m.0 > MAX_CAP_MSAT) {
        return Err(AuthError::BadRequest(format!(
            "default_max_price_msat must be 1 to {MAX_CAP_MSAT}"
        )));
    }
    Ok(())
}

fn check_caps(caps: &KeyCaps) -> Result<(), AuthError> {
    for (name, cap) in [
        ("daily_cap_msat", caps.daily_cap_msat),
        ("total_cap_msat", caps.total_cap_msat),
    ] {
        if cap.is_some_and(|c| c.0 > MAX_CAP_MSAT) {
            return Err(AuthError::BadRequest(format!(
                "{name} must be at most {MAX_CAP_MSAT}"
            )));
        }
    }
    Ok(())
}

/// Why signing in, or a signed-in request, was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("sign in, or send an API key as `Authorization: Bearer sk-inf-…`")]
    NotSignedIn,
    #[error("the API key is unknown or revoked")]
    InvalidApiKey,
    #[error("the session has expired or was signed out; sign in again")]
    SessionExpired,
    #[error(
        "a signed-in request that changes something must come from this site's own pages \
         (its Origin header is missing or is another site)"
    )]
    Csrf,
    #[error("this API key lacks the `{}` scope", .0.as_str())]
    MissingScope(Scope),
    #[error("the sign-in challenge is unknown or was already used")]
    UnknownChallenge,
    #[error("the sign-in challenge has expired; start again")]
    ChallengeExpired,
    #[error("the passkey response was refused: {0}")]
    WebAuthn(String),
    #[error("this passkey is not registered here")]
    UnknownCredential,
    #[error("the signature does not verify against the key and k1")]
    BadSignature,
    #[error("{0}")]
    BadRequest(String),
    #[error("that is the account's last way to sign in; add another first")]
    LastWayIn,
    #[error("this Lightning key already belongs to another account")]
    KeyTaken,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("too many requests; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] DbError),
}

/// The account service; cheap to clone.
#[derive(Clone)]
pub(crate) struct Accounts {
    store: AccountStore,
    site: Arc<Site>,
    webauthn: Arc<webauthn_rs::Webauthn>,
    limits: Arc<Limits>,
    /// The `k1` of each Lightning login as its wallet signs it, for the
    /// pages waiting on one.
    lnurl_signed: tokio::sync::broadcast::Sender<String>,
}

/// A session just made: the cookie to set.
pub(crate) struct NewSession {
    pub(crate) cookie: String,
    pub(crate) account: Account,
}

impl Accounts {
    pub(crate) fn new(db: Db, site: Site, limits: Limits) -> Result<Self, SiteError> {
        let webauthn = site.webauthn()?;
        let (lnurl_signed, _) = tokio::sync::broadcast::channel(64);
        Ok(Accounts {
            store: AccountStore::new(db),
            site: Arc::new(site),
            webauthn: Arc::new(webauthn),
            limits: Arc::new(limits),
            lnurl_signed,
        })
    }

    pub(crate) fn site(&self) -> &Site {
        &self.site
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) async fn account(&self, id: &AccountId) -> Result<Account, AuthError> {
        Ok(self
            .store
            .account(id)
            .await?
            .ok_or(AuthError::NotFound("account"))?
            .view())
    }

    /// A new session for `account`, stored by its token's hash.
    async fn start_session(
        &self,
        account: &AccountId,
        method: &str,
        user_agent: Option<&str>,
    ) -> Result<(String, String, SessionRow), AuthError> {
        let (token, hash, row) = self.session_row(account, method, user_agent);
        self.store.insert_session(&hash, &row).await?;
        Ok((token, hash, row))
    }

    fn session_row(
        &self,
        account: &AccountId,
        method: &str,
        user_agent: Option<&str>,
    ) -> (String, String, SessionRow) {
        let now = UnixMillis::now();
        let token = new_secret("");
        let hash = hash_secret(&token);
        let row = SessionRow {
            session_id: new_id("sess_"),
            account: account.clone(),
            method: method.to_owned(),
            user_agent: user_agent.map(|ua| ua.chars().take(200).collect()),
            created_at: now,
            last_seen: now,
            expires_at: now.plus(SESSION_TTL),
        };
        (token, hash, row)
    }

    /// Signs out the session holding `token`.
    pub(crate) async fn sign_out(&self, token: &str) -> Result<(), AuthError> {
        Ok(self
            .store
            .delete_session_by_hash(&hash_secret(token))
            .await?)
    }

    /// Ends every session of the caller's account, the caller's own too.
    pub(crate) async fn sign_out_everywhere(&self, caller: &Caller) -> Result<usize, AuthError> {
        Ok(self.store.delete_sessions(&caller.account).await?)
    }

    pub(crate) async fn end_session(&self, caller: &Caller, id: &str) -> Result<(), AuthError> {
        if self.store.delete_session(&caller.account, id).await? {
            Ok(())
        } else {
            Err(AuthError::NotFound("session"))
        }
    }

    pub(crate) async fn settings(&self, caller: &Caller) -> Result<AccountSettings, AuthError> {
        let id = &caller.account;
        Ok(AccountSettings {
            account: self.account(id).await?,
            passkeys: self.store.passkeys_of(id).await?,
            lightning_keys: self.store.ln_keys_of(id).await?,
            sessions: self
                .store
                .sessions_of(id, caller.session_id(), UnixMillis::now())
                .await?,
            api_keys: self.store.keys_of(id).await?,
            enrol_tokens: Vec::new(),
        })
    }

    pub(crate) async fn set_public_name(
        &self,
        caller: &Caller,
        name: Option<String>,
    ) -> Result<Account, AuthError> {
        let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        if let Some(n) = &name {
            check_name(n, "public name")?;
        }
        self.store
            .set_public_name(&caller.account, name.as_deref())
            .await?;
        self.account(&caller.account).await
    }

    /// Sets the most a job of the caller's may cost when it names no
    /// maximum; `None`: the input's worst case on the chosen model.
    pub(crate) async fn set_default_max_price(
        &self,
        caller: &Caller,
        max: Option<MilliSats>,
    ) -> Result<Account, AuthError> {
        check_default_max_price(max)?;
        self.store
            .set_default_max_price(&caller.account, max)
            .await?;
        self.account(&caller.account).await
    }

    /// Checks a whole `PATCH /account` before any of it is written: a
    /// change refused leaves the account as it was.
    pub(crate) fn check_patch(
        name: Option<&Option<String>>,
        max: Option<Option<MilliSats>>,
    ) -> Result<(), AuthError> {
        if let Some(Some(n)) = name {
            let n = n.trim();
            if !n.is_empty() {
                check_name(n, "public name")?;
            }
        }
        if let Some(max) = max {
            check_default_max_price(max)?;
        }
        Ok(())
    }

    /// Sets a key's spending caps (per UTC day and in all).
    pub(crate) async fn set_key_caps(
        &self,
        caller: &Caller,
        key_id: &str,
        caps: KeyCaps,
    ) -> Result<(), AuthError> {
        check_caps(&caps)?;
        if self
            .store
            .set_key_caps(&caller.account, key_id, &caps)
            .await?
        {
            tracing::info!(account = %caller.account, key = key_id, ?caps, "API key caps set");
            Ok(())
        } else {
            Err(AuthError::NotFound("key"))
        }
    }

    /// What limits a job of `caller` runs under: the account's default
    /// maximum, and the caps of the key it came with.
    pub(crate) async fn spending_limits(
        &self,
        caller: &Caller,
    ) -> Result<SpendingLimits, AuthError> {
        let default_max_price = self
            .store
            .account(&caller.account)
            .await?
            .and_then(|a| a.default_max_price_msat);
        let caps = match &caller.auth {
            wire::accounts::CallerAuth::ApiKey { key_id, .. } => {
                Some((key_id.clone(), self.store.key_caps(key_id).await?))
            }
            wire::accounts::CallerAuth::Session { .. } => None,
        };
        Ok(SpendingLimits {
            default_max_price,
            caps,
        })
    }

    pub(crate) async fn keys(&self, caller: &Caller) -> Result<Vec<ApiKeyView>, AuthError> {
        Ok(self.store.keys_of(&caller.account).await?)
    }

    /// Makes an API key; its secret is in this answer and nowhere else.
    pub(crate) async fn create_key(
        &self,
        caller: &Caller,
        new: NewApiKey,
    ) -> Result<CreatedApiKey, AuthError> {
        self.limits.key_creation(&caller.account)?;
        let name = new.name.trim().to_owned();
        check_name(&name, "key name")?;
        if new.scopes.is_empty() {
            return Err(AuthError::BadRequest(
                "a key needs at least one scope".into(),
            ));
        }
        let live = self
            .store
            .keys_of(&caller.account)
            .await?
            .iter()
            .filter(|k| k.revoked_at.is_none())
            .count();
        if live >= MAX_KEYS {
            return Err(AuthError::BadRequest(format!(
                "an account may hold {MAX_KEYS} live keys; revoke one first"
            )));
        }
        let caps = KeyCaps {
            daily_cap_msat: new.daily_cap_msat,
            total_cap_msat: new.total_cap_msat,
        };
        check_caps(&caps)?;
        let mut scopes = new.scopes;
        scopes.sort();
        scopes.dedup();
        self.insert_key(&caller.account, name, scopes, caps).await
    }

    async fn insert_key(
        &self,
        account: &AccountId,
        name: String,
        scopes: Vec<Scope>,
        caps: KeyCaps,
    ) -> Result<CreatedApiKey, AuthError> {
        let secret = new_secret(API_KEY_PREFIX);
        let row = ApiKeyRow {
            key_id: new_id("key_"),
            account: account.clone(),
            name,
            prefix: secret[..API_KEY_PREFIX.len() + 4].to_owned(),
            scopes,
            created_at: UnixMillis::now(),
            last_used: None,
            revoked_at: None,
            daily_cap_msat: caps.daily_cap_msat,
            total_cap_msat: caps.total_cap_msat,
        };
        self.store.insert_key(&hash_secret(&secret), &row).await?;
        tracing::info!(account = %account, key = %row.key_id, "API key created");
        Ok(CreatedApiKey {
            key: row.view(),
            secret,
        })
    }

    pub(crate) async fn revoke_key(&self, caller: &Caller, key_id: &str) -> Result<(), AuthError> {
        if self
            .store
            .revoke_key(&caller.account, key_id, UnixMillis::now())
            .await?
        {
            tracing::info!(account = %caller.account, key = key_id, "API key revoked");
            Ok(())
        } else {
            Err(AuthError::NotFound("key"))
        }
    }

    pub(crate) async fn remove_passkey(&self, caller: &Caller, id: &str) -> Result<(), AuthError> {
        self.remove_credential(caller, "passkey", id).await
    }

    pub(crate) async fn remove_ln_key(&self, caller: &Caller, id: &str) -> Result<(), AuthError> {
        self.remove_credential(caller, "ln_key", id).await
    }

    async fn remove_credential(
        &self,
        caller: &Caller,
        table: &'static str,
        id: &str,
    ) -> Result<(), AuthError> {
        match self
            .store
            .remove_credential(&caller.account, table, id)
            .await?
        {
            None => Err(AuthError::NotFound("credential")),
            Some(false) => Err(AuthError::LastWayIn),
            Some(true) => Ok(()),
        }
    }

    /// The single-user deployment's account and a working key for it: the
    /// key in `path` if it still works, else a new one written there (0600).
    pub(crate) async fn ensure_local_key(
        &self,
        path: &std::path::Path,
    ) -> Result<AccountId, LocalKeyError> {
        let account = match self.store.local_account().await? {
            Some(a) => a,
            None => {
                let row = AccountRow {
                    account_id: AccountId::from_random(secrets::random_bytes()),
                    display_name: "Local".into(),
                    public_name: None,
                    user_handle: uuid::Uuid::new_v4().to_string(),
                    created_at: UnixMillis::now(),
                    local: Some(true),
                    default_max_price_msat: None,
                };
                self.store.create_local_account(&row).await?;
                row
            }
        };
        if let Ok(existing) = std::fs::read_to_string(path) {
            let existing = existing.trim();
            if let Some(k) = self.store.key(&hash_secret(existing)).await? {
                if k.revoked_at.is_none() && k.account == account.account_id {
                    return Ok(account.account_id);
                }
            }
        }
        let created = self
            .insert_key(
                &account.account_id,
                "local".into(),
                Scope::ALL.to_vec(),
                KeyCaps::default(),
            )
            .await
            .map_err(|e| LocalKeyError::Key(e.to_string()))?;
        write_private(path, &created.secret).map_err(|source| LocalKeyError::Write {
            path: path.display().to_string(),
            source,
        })?;
        Ok(account.account_id)
    }

    /// Forgets expired ceremonies and sessions, now and then.
    pub(crate) async fn sweep_forever(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            self.limits.shrink();
            if let Err(e) = self.store.forget_expired(UnixMillis::now()).await {
                tracing::warn!(error = %e, "could not sweep expired sign-ins");
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalKeyError {
    #[error("could not set up the local account: {0}")]
    Store(#[from] DbError),
    #[error("could not make the local API key: {0}")]
    Key(String),
    #[error("could not write the local API key to {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

fn write_private(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Names people type (display names, key names): 1 to 64 characters, no
/// control characters.
pub(crate) fn check_name(name: &str, what: &str) -> Result<(), AuthError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME || name.chars().any(char::is_control) {
        return Err(AuthError::BadRequest(format!(
            "{what} must be 1 to {MAX_NAME} characters, without control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::ChallengeRow;

    async fn accounts(tag: &str) -> Accounts {
        let site = Site::new(None, std::net::SocketAddr::from(([127, 0, 0, 1], 8080))).unwrap();
        Accounts::new(Db::temp(tag).await, site, Limits::standard()).unwrap()
    }

    fn past() -> UnixMillis {
        UnixMillis(UnixMillis::now().0 - 1)
    }

    #[tokio::test]
    async fn a_challenge_is_taken_once_and_refused_once_expired() {
        let a = accounts("challenge").await;
        let live = ChallengeRow {
            kind: "passkey_sign_in".into(),
            expires_at: UnixMillis::now().plus(CHALLENGE_TTL),
            ..Default::default()
        };
        a.store.insert_challenge("chal_live", &live).await.unwrap();
        assert!(a
            .take_challenge("chal_live", "passkey_sign_in")
            .await
            .is_ok());
        assert!(matches!(
            a.take_challenge("chal_live", "passkey_sign_in").await,
            Err(AuthError::UnknownChallenge)
        ));
        // Of another kind: not taken.
        a.store.insert_challenge("chal_kind", &live).await.unwrap();
        assert!(matches!(
            a.take_challenge("chal_kind", "passkey_register").await,
            Err(AuthError::UnknownChallenge)
        ));
        let old = ChallengeRow {
            expires_at: past(),
            ..live
        };
        a.store.insert_challenge("chal_old", &old).await.unwrap();
        assert!(matches!(
            a.take_challenge("chal_old", "passkey_sign_in").await,
            Err(AuthError::ChallengeExpired)
        ));
    }

    #[tokio::test]
    async fn a_wallet_signature_over_an_expired_k1_is_refused_and_signs_nobody_in() {
        use secp256k1::{ecdsa, Message, PublicKey, SecretKey};
        let a = accounts("k1").await;
        let login = a.lnurl_start(None).await.unwrap();
        a.store.set_expiry(&login.id, past()).await.unwrap();
        let key = SecretKey::from_secret_bytes([5; 32]).unwrap();
        let k1: [u8; 32] = hex::decode(&login.id).unwrap().try_into().unwrap();
        let sig = ecdsa::sign(Message::from_digest(k1), &key);
        let callback = lnurl::Callback {
            tag: Some("login".into()),
            k1: login.id.clone(),
            sig: hex::encode(sig.serialize_der()),
            key: hex::encode(PublicKey::from_secret_key(&key).serialize()),
            action: Some("login".into()),
        };
        assert!(matches!(
            a.lnurl_callback(callback).await,
            Err(AuthError::ChallengeExpired)
        ));
        let waited = a
            .lnurl_collect(&login.id, &login.poll_token, Duration::ZERO, None)
            .await
            .unwrap();
        assert!(matches!(waited, lnurl::Collected::Expired));
    }

    #[tokio::test]
    async fn the_local_key_is_made_once_kept_private_and_remade_if_revoked() {
        let a = accounts("local").await;
        let dir = std::env::temp_dir().join(format!("infernet-local-key-{}", std::process::id()));
        let path = dir.join("local.key");
        let _ = std::fs::remove_file(&path);
        let account = a.ensure_local_key(&path).await.unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(a.ensure_local_key(&path).await.unwrap(), account);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first, "reused");
        let key = a
            .store
            .key(&hash_secret(first.trim()))
            .await
            .unwrap()
            .unwrap();
        let caller = Caller {
            account: account.clone(),
            auth: wire::CallerAuth::Session {
                session_id: "s".into(),
            },
        };
        a.revoke_key(&caller, &key.key_id).await.unwrap();
        assert_eq!(a.ensure_local_key(&path).await.unwrap(), account);
        assert_ne!(std::fs::read_to_string(&path).unwrap(), first, "remade");
    }
}

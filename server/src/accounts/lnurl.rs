//! Lightning login (LNURL-auth, LUD-04; keys derived per LUD-05 by the
//! wallet). The page asks for a login and shows its `lnurl` as a QR code;
//! the wallet calls the callback with `k1` signed by its linking key for
//! this domain; the page, waiting on its poll token, gets the session.
//!
//! `k1` is public (it is in the QR code), so it alone never yields a
//! session: only the page holding the poll token collects it. Each `k1`
//! signs in once and expires after five minutes.

use std::time::Duration;

use qrcode::render::svg;
use qrcode::QrCode;
use secp256k1::{ecdsa, Message, PublicKey};
use wire::accounts::{LnurlLogin, LnurlState, LnurlStatus};
use wire::{AccountId, Caller, UnixMillis};

use super::auth::session_cookie;
use super::store::{AccountRow, ChallengeRow, LnKeyRow};
use super::{hash_secret, new_secret, secrets, Accounts, AuthError, NewSession, CHALLENGE_TTL};

const KIND: &str = "lnurl";
/// How long a page's wait for its wallet is held open.
pub(crate) const LONG_POLL: Duration = Duration::from_secs(20);

/// What the wallet's callback carries (LUD-04).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Callback {
    pub(crate) tag: Option<String>,
    pub(crate) k1: String,
    pub(crate) sig: String,
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) action: Option<String>,
}

/// The outcome of a page's wait.
pub(crate) enum Collected {
    Pending,
    Expired,
    SignedIn(NewSession),
    Linked,
}

fn parse_k1(k1: &str) -> Result<[u8; 32], AuthError> {
    let bytes = hex::decode(k1).map_err(|_| AuthError::UnknownChallenge)?;
    bytes.try_into().map_err(|_| AuthError::UnknownChallenge)
}

/// Checks `sig` (DER, hex) over `k1` by `key` (compressed secp256k1, hex).
pub(crate) fn verify(k1: &[u8; 32], sig: &str, key: &str) -> Result<PublicKey, AuthError> {
    let key_bytes = hex::decode(key)
        .map_err(|_| AuthError::BadRequest("`key` must be a hex-encoded secp256k1 key".into()))?;
    let key = PublicKey::from_slice(&key_bytes)
        .map_err(|_| AuthError::BadRequest("`key` is not a valid secp256k1 public key".into()))?;
    let sig_bytes = hex::decode(sig)
        .map_err(|_| AuthError::BadRequest("`sig` must be a hex-encoded DER signature".into()))?;
    let mut sig = ecdsa::Signature::from_der(&sig_bytes)
        .map_err(|_| AuthError::BadRequest("`sig` is not a DER-encoded signature".into()))?;
    sig.normalize_s();
    ecdsa::verify(&sig, Message::from_digest(*k1), &key).map_err(|_| AuthError::BadSignature)?;
    Ok(key)
}

impl Accounts {
    /// Starts a Lightning login; signed in, it links the wallet's key to
    /// the caller's account instead.
    pub(crate) async fn lnurl_start(&self, link: Option<&Caller>) -> Result<LnurlLogin, AuthError> {
        let k1 = hex::encode(secrets::random_bytes::<32>());
        let action = if link.is_some() { "link" } else { "login" };
        let callback = self.site.absolute(&format!(
            "/api/v1/auth/lnurl/callback?tag=login&k1={k1}&action={action}"
        ));
        let lnurl = bech32::encode_upper::<bech32::Bech32>(
            bech32::Hrp::parse_unchecked("lnurl"),
            callback.as_bytes(),
        )
        .map_err(|e| AuthError::BadRequest(format!("could not encode the LNURL: {e}")))?;
        let qr_svg = QrCode::new(lnurl.as_bytes())
            .map_err(|e| AuthError::BadRequest(format!("could not draw the QR code: {e}")))?
            .render::<svg::Color<'_>>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .build();
        let poll_token = new_secret("");
        let expires_at = UnixMillis::now().plus(CHALLENGE_TTL);
        let row = ChallengeRow {
            kind: KIND.into(),
            expires_at,
            account: link.map(|c| c.account.clone()),
            label: Some(action.into()),
            poll_hash: Some(hash_secret(&poll_token)),
            ..Default::default()
        };
        self.store.insert_challenge(&k1, &row).await?;
        Ok(LnurlLogin {
            id: k1,
            uri: format!("lightning:{lnurl}"),
            lnurl,
            qr_svg,
            poll_token,
            expires_at,
        })
    }

    /// The wallet's callback: a valid signature over a live, unused `k1`
    /// signs the login in to the key's account (made on first use), or
    /// links the key to the account that asked.
    pub(crate) async fn lnurl_callback(&self, cb: Callback) -> Result<(), AuthError> {
        if cb.tag.as_deref().is_some_and(|t| t != "login") {
            return Err(AuthError::BadRequest("`tag` must be `login`".into()));
        }
        let k1 = parse_k1(&cb.k1)?;
        let key = verify(&k1, &cb.sig, &cb.key)?;
        let pubkey = hex::encode(key.serialize());
        let now = UnixMillis::now();
        let challenge = self
            .store
            .challenge(&cb.k1)
            .await?
            .filter(|c| c.kind == KIND)
            .ok_or(AuthError::UnknownChallenge)?;
        if challenge.signed_account.is_some() {
            return Err(AuthError::UnknownChallenge);
        }
        if challenge.expires_at <= now {
            return Err(AuthError::ChallengeExpired);
        }
        if let Some(action) = cb.action.as_deref() {
            if Some(action) != challenge.label.as_deref() {
                return Err(AuthError::BadRequest(
                    "`action` differs from the login's".into(),
                ));
            }
        }
        let existing = self.store.ln_key(&pubkey).await?;
        let account = match (&challenge.account, existing) {
            // Linking to the signed-in account that asked.
            (Some(owner), Some(k)) if &k.account != owner => return Err(AuthError::KeyTaken),
            (Some(owner), Some(_)) => owner.clone(),
            (Some(owner), None) => {
                self.store
                    .add_ln_key(&LnKeyRow {
                        pubkey: pubkey.clone(),
                        account: owner.clone(),
                        created_at: now,
                        last_used: Some(now),
                    })
                    .await?;
                owner.clone()
            }
            // Signing in: the key's account, or a new one for a new key.
            (None, Some(k)) => {
                self.store.touch_ln_key(&pubkey, now).await?;
                k.account
            }
            (None, None) => self.create_for_ln_key(&pubkey, now).await?,
        };
        if !self.store.sign_lnurl(&cb.k1, &account, now).await? {
            return Err(AuthError::UnknownChallenge);
        }
        let _ = self.lnurl_signed.send(cb.k1.clone());
        tracing::info!(account = %account, "Lightning login signed");
        Ok(())
    }

    async fn create_for_ln_key(
        &self,
        pubkey: &str,
        now: UnixMillis,
    ) -> Result<AccountId, AuthError> {
        let account = AccountRow {
            account_id: AccountId::from_random(secrets::random_bytes()),
            display_name: format!("Lightning {}", &pubkey[2..10]),
            public_name: None,
            user_handle: webauthn_rs::prelude::Uuid::new_v4().to_string(),
            created_at: now,
            local: None,
            default_max_price_msat: None,
        };
        let key = LnKeyRow {
            pubkey: pubkey.to_owned(),
            account: account.account_id.clone(),
            created_at: now,
            last_used: Some(now),
        };
        self.store.create_with_ln_key(&account, &key).await?;
        tracing::info!(account = %account.account_id, "account created with a Lightning key");
        Ok(account.account_id)
    }

    /// The page's wait: answers at once if the wallet has signed (with the
    /// session, for a login), else waits up to `wait` for it.
    pub(crate) async fn lnurl_collect(
        &self,
        k1: &str,
        poll_token: &str,
        wait: Duration,
        user_agent: Option<&str>,
    ) -> Result<Collected, AuthError> {
        let mut signed = self.lnurl_signed.subscribe();
        let poll_hash = hash_secret(poll_token);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.try_collect(k1, &poll_hash, user_agent).await? {
                Collected::Pending => {}
                done => return Ok(done),
            }
            // Wait for this login's signature, or give up at the deadline.
            let ours = async {
                loop {
                    match signed.recv().await {
                        Ok(k) if k == k1 => return,
                        Ok(_) => {}
                        // Missed some: check the database again.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            if tokio::time::timeout_at(deadline, ours).await.is_err() {
                return Ok(Collected::Pending);
            }
        }
    }

    async fn try_collect(
        &self,
        k1: &str,
        poll_hash: &str,
        user_agent: Option<&str>,
    ) -> Result<Collected, AuthError> {
        let Some(challenge) = self.store.challenge(k1).await?.filter(|c| c.kind == KIND) else {
            return Err(AuthError::UnknownChallenge);
        };
        if challenge.poll_hash.as_deref() != Some(poll_hash) {
            return Err(AuthError::UnknownChallenge);
        }
        if challenge.signed_account.is_none() {
            return Ok(if challenge.expires_at <= UnixMillis::now() {
                Collected::Expired
            } else {
                Collected::Pending
            });
        }
        let Some(taken) = self.store.take_signed_lnurl(k1, poll_hash).await? else {
            return Err(AuthError::UnknownChallenge);
        };
        let Some(account) = taken.signed_account else {
            return Err(AuthError::UnknownChallenge);
        };
        if taken.label.as_deref() == Some("link") {
            return Ok(Collected::Linked);
        }
        let (token, _, _) = self
            .start_session(&account, "lightning", user_agent)
            .await?;
        Ok(Collected::SignedIn(NewSession {
            cookie: session_cookie(&token, self.site.secure()),
            account: self.account(&account).await?,
        }))
    }
}

impl Collected {
    pub(crate) fn state(&self) -> LnurlStatus {
        LnurlStatus {
            state: match self {
                Collected::Pending => LnurlState::Pending,
                Collected::Expired => LnurlState::Expired,
                Collected::SignedIn(_) | Collected::Linked => LnurlState::Done,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secp256k1::SecretKey;

    #[test]
    fn a_signature_over_k1_by_the_key_verifies_and_any_other_does_not() {
        let k1 = [9u8; 32];
        let sk = SecretKey::from_secret_bytes([3u8; 32]).unwrap();
        let pk = PublicKey::from_secret_key(&sk);
        let sig = ecdsa::sign(Message::from_digest(k1), &sk);
        let der = hex::encode(sig.serialize_der());
        let key = hex::encode(pk.serialize());
        assert_eq!(verify(&k1, &der, &key).unwrap(), pk);
        assert!(matches!(
            verify(&[8u8; 32], &der, &key),
            Err(AuthError::BadSignature)
        ));
        let other = PublicKey::from_secret_key(&SecretKey::from_secret_bytes([4u8; 32]).unwrap());
        assert!(matches!(
            verify(&k1, &der, &hex::encode(other.serialize())),
            Err(AuthError::BadSignature)
        ));
        assert!(matches!(
            verify(&k1, "zz", &key),
            Err(AuthError::BadRequest(_))
        ));
    }
}

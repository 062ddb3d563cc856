//! Passkeys (WebAuthn) with webauthn-rs: sign up (a new account and its
//! first passkey), sign in with a discoverable credential (no username),
//! and add another passkey while signed in. Each ceremony's state waits in
//! the `challenge` table, is taken once, and expires after five minutes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid, WebauthnError,
};
use wire::accounts::{Account, PasskeyCeremony, PasskeyFinish, PasskeyStart};
use wire::{AccountId, Caller, UnixMillis};

use super::auth::session_cookie;
use super::store::{AccountRow, ChallengeRow, PasskeyRow};
use super::{check_name, new_id, secrets, Accounts, AuthError, NewSession, CHALLENGE_TTL};

const REGISTER: &str = "passkey_register";
const SIGN_IN: &str = "passkey_sign_in";

fn refused(e: WebauthnError) -> AuthError {
    AuthError::WebAuthn(e.to_string())
}

fn internal(e: serde_json::Error) -> AuthError {
    AuthError::Store(crate::db::DbError::Decode(e))
}

impl Accounts {
    /// Starts a registration: signed out, of a new account named
    /// `display_name`; signed in, of another passkey for the caller.
    pub(crate) async fn passkey_register_start(
        &self,
        caller: Option<&Caller>,
        start: PasskeyStart,
    ) -> Result<PasskeyCeremony, AuthError> {
        let label = start
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "Passkey".to_owned());
        check_name(&label, "passkey name")?;
        let (handle, display_name, account, exclude) = match caller {
            Some(c) => {
                let a = self
                    .store
                    .account(&c.account)
                    .await?
                    .ok_or(AuthError::NotFound("account"))?;
                let handle = Uuid::parse_str(&a.user_handle)
                    .map_err(|e| AuthError::WebAuthn(format!("bad stored user handle: {e}")))?;
                let exclude = self
                    .store
                    .passkey_ids_of(&c.account)
                    .await?
                    .iter()
                    .filter_map(|id| B64URL.decode(id).ok())
                    .collect();
                (
                    handle,
                    a.display_name,
                    Some(c.account.clone()),
                    Some(exclude),
                )
            }
            None => {
                let name = start.display_name.unwrap_or_default().trim().to_owned();
                check_name(&name, "display name")?;
                (Uuid::new_v4(), name, None, None)
            }
        };
        let (ccr, state) = self
            .webauthn
            .start_passkey_registration(handle, &display_name, &display_name, exclude)
            .map_err(refused)?;
        let mut options = serde_json::to_value(&ccr).map_err(internal)?;
        // Sign-in finds the account from the passkey alone, so the passkey
        // must be discoverable (a resident key).
        if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection") {
            selection["residentKey"] = "required".into();
            selection["requireResidentKey"] = true.into();
        }
        let id = new_id("chal_");
        let row = ChallengeRow {
            kind: REGISTER.into(),
            expires_at: UnixMillis::now().plus(CHALLENGE_TTL),
            state: Some(serde_json::to_value(&state).map_err(internal)?),
            account,
            display_name: Some(display_name),
            user_handle: Some(handle.to_string()),
            label: Some(label),
            ..Default::default()
        };
        self.store.insert_challenge(&id, &row).await?;
        Ok(PasskeyCeremony {
            challenge_id: id,
            options: options["publicKey"].take(),
        })
    }

    /// Finishes a registration. A sign-up creates the account, its passkey
    /// and its session in one transaction, and answers the session.
    pub(crate) async fn passkey_register_finish(
        &self,
        caller: Option<&Caller>,
        finish: PasskeyFinish,
        user_agent: Option<&str>,
    ) -> Result<(Account, Option<NewSession>), AuthError> {
        let credential: RegisterPublicKeyCredential = serde_json::from_value(finish.credential)
            .map_err(|e| AuthError::BadRequest(format!("malformed passkey response: {e}")))?;
        let row = self.take_challenge(&finish.challenge_id, REGISTER).await?;
        // Adding a passkey is finished by the account that started it.
        if let Some(owner) = &row.account {
            if caller.map(|c| &c.account) != Some(owner) {
                return Err(AuthError::UnknownChallenge);
            }
        }
        let state: PasskeyRegistration =
            serde_json::from_value(row.state.unwrap_or_default()).map_err(internal)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(refused)?;
        let cred_id = B64URL.encode(passkey.cred_id());
        if self.store.passkey(&cred_id).await?.is_some() {
            return Err(AuthError::BadRequest(
                "this passkey is already registered".into(),
            ));
        }
        let now = UnixMillis::now();
        let stored = |account: &AccountId| -> Result<PasskeyRow, AuthError> {
            Ok(PasskeyRow {
                cred_id: cred_id.clone(),
                account: account.clone(),
                name: row.label.clone().unwrap_or_else(|| "Passkey".into()),
                passkey: serde_json::to_value(&passkey).map_err(internal)?,
                created_at: now,
                last_used: Some(now),
            })
        };
        if let Some(owner) = &row.account {
            self.store.add_passkey(&stored(owner)?).await?;
            tracing::info!(account = %owner, "passkey added");
            return Ok((self.account(owner).await?, None));
        }
        let account = AccountRow {
            account_id: AccountId::from_random(secrets::random_bytes()),
            display_name: row.display_name.clone().unwrap_or_default(),
            public_name: None,
            user_handle: row.user_handle.clone().unwrap_or_default(),
            created_at: now,
            local: None,
            default_max_price_msat: None,
        };
        let (token, hash, session) = self.session_row(&account.account_id, "passkey", user_agent);
        self.store
            .create_with_passkey(&account, &stored(&account.account_id)?, &hash, &session)
            .await?;
        tracing::info!(account = %account.account_id, "account created with a passkey");
        let view = account.view();
        Ok((
            view.clone(),
            Some(NewSession {
                cookie: session_cookie(&token, self.site.secure()),
                account: view,
            }),
        ))
    }

    /// Starts a sign-in with any passkey of this site (discoverable).
    pub(crate) async fn passkey_sign_in_start(&self) -> Result<PasskeyCeremony, AuthError> {
        let (rcr, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(refused)?;
        let mut options = serde_json::to_value(&rcr).map_err(internal)?;
        let id = new_id("chal_");
        let row = ChallengeRow {
            kind: SIGN_IN.into(),
            expires_at: UnixMillis::now().plus(CHALLENGE_TTL),
            state: Some(serde_json::to_value(&state).map_err(internal)?),
            ..Default::default()
        };
        self.store.insert_challenge(&id, &row).await?;
        Ok(PasskeyCeremony {
            challenge_id: id,
            // A button press, not conditional mediation: only the options.
            options: options["publicKey"].take(),
        })
    }

    /// Finishes a sign-in: the passkey must be registered here, belong to
    /// the account its user handle names, and sign this challenge.
    pub(crate) async fn passkey_sign_in_finish(
        &self,
        finish: PasskeyFinish,
        user_agent: Option<&str>,
    ) -> Result<NewSession, AuthError> {
        let credential: PublicKeyCredential = serde_json::from_value(finish.credential)
            .map_err(|e| AuthError::BadRequest(format!("malformed passkey response: {e}")))?;
        let row = self.take_challenge(&finish.challenge_id, SIGN_IN).await?;
        let state: DiscoverableAuthentication =
            serde_json::from_value(row.state.unwrap_or_default()).map_err(internal)?;
        let (handle, cred_id) = self
            .webauthn
            .identify_discoverable_authentication(&credential)
            .map_err(|_| AuthError::UnknownCredential)?;
        let cred_id = B64URL.encode(cred_id);
        let stored = self
            .store
            .passkey(&cred_id)
            .await?
            .ok_or(AuthError::UnknownCredential)?;
        let account = self
            .store
            .account(&stored.account)
            .await?
            .ok_or(AuthError::UnknownCredential)?;
        if account.user_handle != handle.to_string() {
            return Err(AuthError::UnknownCredential);
        }
        let mut passkey: Passkey = serde_json::from_value(stored.passkey).map_err(internal)?;
        let result = self
            .webauthn
            .finish_discoverable_authentication_v2(&credential, state, &passkey)
            .map_err(refused)?;
        passkey.update_credential(&result);
        let now = UnixMillis::now();
        self.store
            .touch_passkey(
                &cred_id,
                &serde_json::to_value(&passkey).map_err(internal)?,
                now,
            )
            .await?;
        let (token, _, _) = self
            .start_session(&account.account_id, "passkey", user_agent)
            .await?;
        tracing::info!(account = %account.account_id, "signed in with a passkey");
        Ok(NewSession {
            cookie: session_cookie(&token, self.site.secure()),
            account: account.view(),
        })
    }

    /// Takes a ceremony of `kind` once; an expired one is refused.
    pub(super) async fn take_challenge(
        &self,
        id: &str,
        kind: &str,
    ) -> Result<ChallengeRow, AuthError> {
        if id.len() > 64 {
            return Err(AuthError::UnknownChallenge);
        }
        let row = self
            .store
            .take_challenge(id, kind)
            .await?
            .ok_or(AuthError::UnknownChallenge)?;
        if row.expires_at <= UnixMillis::now() {
            return Err(AuthError::ChallengeExpired);
        }
        Ok(row)
    }
}

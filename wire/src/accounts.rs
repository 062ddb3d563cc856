//! Accounts and what belongs to them, as the HTTP API and the app show them:
//! the signed-in account, its passkeys, Lightning linking keys, sessions,
//! API keys and enrolment tokens, and the signed enrolment a node sends to
//! bind itself to an operator's account.
//!
//! Secrets (session tokens, API keys, enrolment tokens) appear here only in
//! the one answer that creates them; the server keeps their hashes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::jobs::JobStatus;
use crate::signing::Signable;
use crate::{JobId, MilliSats, ModelHash, NodeId, SignedEnvelope, UnixMillis};

/// An account's id: `acct_` and 26 lowercase base32 characters (128 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub const PREFIX: &'static str = "acct_";

    /// Wraps an id made from 16 random bytes.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        AccountId(format!("{}{}", Self::PREFIX, base32_lower(&bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lowercase RFC 4648 base32 without padding: ids that read well in URLs.
pub fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an account id")]
pub struct BadAccountId(String);

impl FromStr for AccountId {
    type Err = BadAccountId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| BadAccountId(s.to_owned()))?;
        let ok = body.len() == 26
            && body
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
        if !ok {
            return Err(BadAccountId(s.to_owned()));
        }
        Ok(AccountId(s.to_owned()))
    }
}

impl TryFrom<String> for AccountId {
    type Error = BadAccountId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> String {
        id.0
    }
}

/// What an API key may do. Later issues give the fleet and billing scopes
/// their routes; keys can hold them already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    /// Run jobs and read one's own.
    #[serde(rename = "jobs")]
    Jobs,
    #[serde(rename = "fleet:read")]
    FleetRead,
    #[serde(rename = "fleet:write")]
    FleetWrite,
    #[serde(rename = "billing")]
    Billing,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::Jobs,
        Scope::FleetRead,
        Scope::FleetWrite,
        Scope::Billing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Jobs => "jobs",
            Scope::FleetRead => "fleet:read",
            Scope::FleetWrite => "fleet:write",
            Scope::Billing => "billing",
        }
    }

    /// What holding the scope allows, for the app's key form.
    pub fn describe(self) -> &'static str {
        match self {
            Scope::Jobs => "run jobs and read your own",
            Scope::FleetRead => "read your fleet",
            Scope::FleetWrite => "manage your fleet",
            Scope::Billing => "read and move your balance",
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope `{s}`"))
    }
}

/// Who is calling, once the server has checked their session or API key.
/// The server hands it to its handlers and to the app's server functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: AccountId,
    pub auth: CallerAuth,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerAuth {
    /// Signed in in a browser: may do anything the account may.
    Session { session_id: String },
    /// An API key: only what its scopes allow.
    ApiKey { key_id: String, scopes: Vec<Scope> },
}

impl Caller {
    pub fn may(&self, scope: Scope) -> bool {
        match &self.auth {
            CallerAuth::Session { .. } => true,
            CallerAuth::ApiKey { scopes, .. } => scopes.contains(&scope),
        }
    }

    pub fn session_id(&self) -> Option<&str> {
        match &self.auth {
            CallerAuth::Session { session_id } => Some(session_id),
            CallerAuth::ApiKey { .. } => None,
        }
    }
}

/// The signed-in account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    pub id: AccountId,
    pub display_name: String,
    /// Shown next to the account's nodes on `/nodes` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_name: Option<String>,
    pub created_at: UnixMillis,
    /// The most a job may cost when it names no maximum itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_price_msat: Option<MilliSats>,
}

/// Everything the Settings page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountSettings {
    pub account: Account,
    pub passkeys: Vec<PasskeyView>,
    pub lightning_keys: Vec<LightningKeyView>,
    pub sessions: Vec<SessionView>,
    pub api_keys: Vec<ApiKeyView>,
    pub enrol_tokens: Vec<EnrolTokenView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: UnixMillis,
    #[serde(default)]
    pub last_used: Option<UnixMillis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LightningKeyView {
    pub id: String,
    /// The linking key (compressed secp256k1, hex).
    pub pubkey: String,
    pub created_at: UnixMillis,
    #[serde(default)]
    pub last_used: Option<UnixMillis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionView {
    pub id: String,
    pub created_at: UnixMillis,
    pub last_seen: UnixMillis,
    pub expires_at: UnixMillis,
    /// How the session signed in: `passkey`, `lightning` or `local`.
    pub method: String,
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The session this request came with.
    pub current: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// The key's first characters (`sk-inf-` and four more), to tell keys apart.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub created_at: UnixMillis,
    #[serde(default)]
    pub last_used: Option<UnixMillis>,
    #[serde(default)]
    pub revoked_at: Option<UnixMillis>,
    /// What the key's jobs may cost in one UTC day, and in all.
    #[serde(default, flatten)]
    pub caps: KeyCaps,
    /// What its jobs cost (or hold, while they run) today (UTC) and in all.
    #[serde(default)]
    pub spent_today_msat: MilliSats,
    #[serde(default)]
    pub spent_total_msat: MilliSats,
}

/// A key's spending caps; none: no cap. `PUT /api/v1/account/keys/{id}/caps`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyCaps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_cap_msat: Option<MilliSats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cap_msat: Option<MilliSats>,
}

/// `POST /api/v1/account/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_cap_msat: Option<MilliSats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cap_msat: Option<MilliSats>,
}

/// The answer that creates a key: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedApiKey {
    pub key: ApiKeyView,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolTokenView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    /// Reusable tokens enrol any number of nodes (a whole farm) until they
    /// expire or are revoked; the others enrol one.
    pub reusable: bool,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub uses: u32,
    #[serde(default)]
    pub revoked_at: Option<UnixMillis>,
}

/// `POST /api/v1/account/enrol-tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEnrolToken {
    pub name: String,
    #[serde(default)]
    pub reusable: bool,
    /// How long the token lasts [default: a day; at most 90 days].
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedEnrolToken {
    pub token: EnrolTokenView,
    pub secret: String,
}

/// What a node signs to bind itself to the account that made `token`, on
/// the server whose libp2p peer id is `server`. `POST /api/v1/enrolments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enrolment {
    pub node_id: NodeId,
    pub server: NodeId,
    pub token: String,
    pub timestamp: UnixMillis,
}

impl Signable for Enrolment {
    const DOMAIN: &'static str = "infernet/enrol/v1";
    fn signer(&self) -> NodeId {
        self.node_id
    }
}

/// The server's answer to an enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enrolled {
    pub node_id: NodeId,
    /// The server the node is now bound to: the node pins it.
    pub server: NodeId,
    pub account: AccountId,
    pub account_name: String,
}

/// A node enrolled to the signed-in operator ("My nodes").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MyNode {
    pub node_id: NodeId,
    pub enrolled_at: UnixMillis,
    /// The registry's view of it; `None` once the registry forgot it.
    #[serde(default)]
    pub info: Option<crate::registry::NodeInfo>,
}

/// `POST /api/v1/auth/passkey/register/start`: a display name to sign up
/// with; signed in, a name for the extra passkey instead.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasskeyStart {
    #[serde(default)]
    pub display_name: Option<String>,
    /// What to call this passkey in Settings [default: "Passkey"].
    #[serde(default)]
    pub name: Option<String>,
}

/// A WebAuthn ceremony to run in the browser: `options` go to
/// `navigator.credentials.create` or `.get` (base64url-encoded binary, as
/// `PublicKeyCredential.parse…OptionsFromJSON` reads it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyCeremony {
    pub challenge_id: String,
    pub options: serde_json::Value,
}

/// The browser's answer to a ceremony: the credential's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasskeyFinish {
    pub challenge_id: String,
    pub credential: serde_json::Value,
}

/// A Lightning login in progress: show `lnurl` as a QR code and a link,
/// then wait on `GET /api/v1/auth/lnurl/{id}?poll=<poll_token>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LnurlLogin {
    pub id: String,
    /// The bech32 `LNURL1…` text (uppercase, as QR codes want it).
    pub lnurl: String,
    /// `lightning:LNURL1…`, for a link that opens a wallet.
    pub uri: String,
    /// The QR code of `lnurl`, as an SVG document.
    pub qr_svg: String,
    /// Only the page that started the login may collect it.
    pub poll_token: String,
    pub expires_at: UnixMillis,
}

/// Where a Lightning login stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LnurlState {
    /// No wallet has signed yet.
    Pending,
    /// Signed: this answer carries the session cookie (or the key was linked).
    Done,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LnurlStatus {
    pub state: LnurlState,
}

/// `GET /api/v1/receipts/{job_id}`: what anyone may check about a job,
/// without its input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReceiptCheck {
    pub job_id: JobId,
    pub node_id: NodeId,
    pub model: String,
    pub model_hash: ModelHash,
    pub status: JobStatus,
    pub price_msat: MilliSats,
    #[serde(default)]
    pub max_price_msat: Option<MilliSats>,
    pub created_at: UnixMillis,
    #[serde(default)]
    pub finished_at: Option<UnixMillis>,
    /// The node's signed receipt (hashes of model, input and output, price,
    /// usage, timings); `None` while the job has not succeeded.
    #[serde(default)]
    pub receipt: Option<SignedEnvelope>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_round_trip_and_reject_anything_else() {
        let id = AccountId::from_random([7; 16]);
        assert_eq!(id.as_str().len(), 5 + 26);
        assert_eq!(id.as_str().parse::<AccountId>().unwrap(), id);
        for bad in [
            "",
            "acct_",
            "acct_ABC",
            "user_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "acct_1aaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(bad.parse::<AccountId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_have_the_names_the_api_uses() {
        let json = serde_json::to_string(&Scope::ALL).unwrap();
        assert_eq!(json, r#"["jobs","fleet:read","fleet:write","billing"]"#);
        assert_eq!("fleet:write".parse::<Scope>().unwrap(), Scope::FleetWrite);
        assert!("admin".parse::<Scope>().is_err());
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32_lower(b"f"), "my");
    }
}

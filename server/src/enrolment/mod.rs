//! Enrolment: nodes belong to operators. An operator makes an enrolment
//! token (single-use, or reusable across a farm until it expires or is
//! revoked); a node started with `--enroll <token>` signs an
//! [`Enrolment`] with its own key naming this server's peer id; the server
//! binds that peer id to the token's account. A node that nobody enrolled
//! still works and is listed as unclaimed; a claimed node must be released
//! by its operator before another account can enrol it.
//!
//! - `store`: the `enrol_token` and `claim` tables;
//! - `http`: the routes.

mod http;
mod store;

pub(crate) use http::router;

use std::time::Duration;

use wire::accounts::{CreatedEnrolToken, EnrolTokenView, Enrolled, Enrolment, NewEnrolToken};
use wire::{Caller, NodeId, SignedEnvelope, SigningError, UnixMillis};

use crate::accounts::{check_name, hash_secret, new_id, new_secret, AuthError};
use crate::db::{Db, DbError};
use crate::registry::{check_fresh, RegistryError};
use store::{ClaimRow, EnrolStore, TokenRow};

const TOKEN_PREFIX: &str = "enr-inf-";
const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
const MAX_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub(crate) enum EnrolError {
    #[error("enrolment signature rejected: {0}")]
    BadSignature(#[from] SigningError),
    #[error(transparent)]
    Stale(RegistryError),
    #[error("this enrolment is for server {0}, not this one")]
    WrongServer(NodeId),
    #[error("unknown enrolment token")]
    UnknownToken,
    #[error("this enrolment token was revoked")]
    Revoked,
    #[error("this enrolment token has expired")]
    Expired,
    #[error("this single-use enrolment token was already used")]
    Used,
    #[error("node {0} is enrolled to another account; its operator must release it first")]
    ClaimedElsewhere(NodeId),
    #[error("the token was used, or the node enrolled, at the same moment; try again")]
    Raced,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] DbError),
}

/// The enrolment service; cheap to clone.
#[derive(Clone)]
pub(crate) struct Enrolments {
    store: EnrolStore,
    /// This server's libp2p peer id: what enrolments must name.
    server: NodeId,
}

impl Enrolments {
    pub(crate) fn new(db: Db, server: NodeId) -> Self {
        Enrolments {
            store: EnrolStore::new(db),
            server,
        }
    }

    pub(crate) async fn tokens(&self, caller: &Caller) -> Result<Vec<EnrolTokenView>, EnrolError> {
        Ok(self
            .store
            .tokens_of(&caller.account)
            .await?
            .iter()
            .map(TokenRow::view)
            .collect())
    }

    /// Makes a token; its secret is in this answer and nowhere else.
    pub(crate) async fn create_token(
        &self,
        caller: &Caller,
        new: NewEnrolToken,
    ) -> Result<CreatedEnrolToken, EnrolError> {
        let name = new.name.trim().to_owned();
        check_name(&name, "token name")?;
        let ttl = match new.expires_in_secs {
            None => DEFAULT_TTL,
            Some(s) if s == 0 || s > MAX_TTL.as_secs() => {
                return Err(EnrolError::BadRequest(format!(
                    "expires_in_secs must be 1 to {}",
                    MAX_TTL.as_secs()
                )))
            }
            Some(s) => Duration::from_secs(s),
        };
        let secret = new_secret(TOKEN_PREFIX);
        let now = UnixMillis::now();
        let row = TokenRow {
            token_id: new_id("enr_"),
            account: caller.account.clone(),
            name,
            prefix: secret[..TOKEN_PREFIX.len() + 4].to_owned(),
            reusable: new.reusable,
            created_at: now,
            expires_at: now.plus(ttl),
            uses: 0,
            revoked_at: None,
        };
        self.store.insert_token(&hash_secret(&secret), &row).await?;
        tracing::info!(account = %caller.account, token = %row.token_id, reusable = row.reusable, "enrolment token created");
        Ok(CreatedEnrolToken {
            token: row.view(),
            secret,
        })
    }

    pub(crate) async fn revoke_token(&self, caller: &Caller, id: &str) -> Result<(), EnrolError> {
        if self
            .store
            .revoke_token(&caller.account, id, UnixMillis::now())
            .await?
        {
            Ok(())
        } else {
            Err(EnrolError::NotFound("enrolment token"))
        }
    }

    /// A node's signed enrolment: signed by the node it names, fresh, for
    /// this server, with a live token. Enrolling again into the account
    /// that holds it already changes nothing and uses no token.
    pub(crate) async fn enrol(
        &self,
        envelope: &SignedEnvelope,
        now: UnixMillis,
    ) -> Result<(Enrolled, wire::AccountId), EnrolError> {
        let enrolment: Enrolment = envelope.open()?;
        check_fresh(enrolment.timestamp, now).map_err(EnrolError::Stale)?;
        if enrolment.server != self.server {
            return Err(EnrolError::WrongServer(enrolment.server));
        }
        if enrolment.token.len() > 128 {
            return Err(EnrolError::UnknownToken);
        }
        let hash = hash_secret(&enrolment.token);
        let token = self
            .store
            .token(&hash)
            .await?
            .ok_or(EnrolError::UnknownToken)?;
        let node = enrolment.node_id;
        let enrolled = |account: wire::AccountId| Enrolled {
            node_id: node,
            server: self.server,
            account,
            account_name: String::new(),
        };
        // A node that restarts with the token it enrolled with (e.g. from
        // its environment) starts, even once the token has ended: ending a
        // token stops new enrolments, it does not release nodes.
        match self.store.claim(node).await? {
            Some(c) if c.account == token.account => {
                return Ok((enrolled(c.account.clone()), c.account))
            }
            Some(_) => return Err(EnrolError::ClaimedElsewhere(node)),
            None => {}
        }
        if token.revoked_at.is_some() {
            return Err(EnrolError::Revoked);
        }
        if token.expires_at <= now {
            return Err(EnrolError::Expired);
        }
        if !token.reusable && token.uses > 0 {
            return Err(EnrolError::Used);
        }
        let claim = ClaimRow {
            peer_id: node,
            account: token.account.clone(),
            token_id: token.token_id.clone(),
            enrolled_at: now,
        };
        if !self.store.bind(&hash, &claim, now).await? {
            return Err(EnrolError::Raced);
        }
        tracing::info!(peer_id = %node, account = %token.account, "node enrolled");
        Ok((enrolled(token.account.clone()), token.account))
    }

    /// Releases one of the caller's nodes: unclaimed again, free to be
    /// enrolled by anyone's token.
    pub(crate) async fn release(&self, caller: &Caller, node: NodeId) -> Result<(), EnrolError> {
        if self.store.release(&caller.account, node).await? {
            tracing::info!(peer_id = %node, account = %caller.account, "node released");
            Ok(())
        } else {
            Err(EnrolError::NotFound("node"))
        }
    }

    /// The account a node is enrolled to, if any: who its jobs pay.
    pub(crate) async fn operator_of(
        &self,
        node: NodeId,
    ) -> Result<Option<wire::AccountId>, EnrolError> {
        Ok(self.store.claim(node).await?.map(|c| c.account))
    }

    /// The caller's nodes and when each was enrolled.
    pub(crate) async fn nodes_of(
        &self,
        caller: &Caller,
    ) -> Result<Vec<(NodeId, UnixMillis)>, EnrolError> {
        Ok(self
            .store
            .claims_of(&caller.account)
            .await?
            .into_iter()
            .map(|c| (c.peer_id, c.enrolled_at))
            .collect())
    }
}

//! Team access: an owner lets another account see (viewer) or run
//! (manager) their fleet, and takes it back. A member acts on the owner's
//! fleet by adding `?fleet=<owner>` to any fleet route: the request then
//! runs as the owner's account with at most the member's role's scopes
//! (and never more than the member's own key allows), so every check and
//! every audit line the owner's own requests get applies, naming the
//! member. Alert settings and the team itself stay the owner's alone.

use wire::accounts::Scope;
use wire::fleet::TeamRole;
use wire::{AccountId, Caller, CallerAuth, UnixMillis};

use super::store::MemberRow;
use super::{Fleet, FleetError};

impl Fleet {
    /// Who the caller acts as on the fleet `fleet` (an owner's account id;
    /// none: their own).
    pub(crate) async fn acting(
        &self,
        caller: &Caller,
        fleet: Option<&str>,
    ) -> Result<Caller, FleetError> {
        let owner: AccountId = match fleet {
            None => return Ok(caller.clone()),
            Some(text) => text
                .parse()
                .map_err(|e: wire::accounts::BadAccountId| FleetError::BadRequest(e.to_string()))?,
        };
        if owner == caller.account {
            return Ok(caller.clone());
        }
        // Not a member: the fleet does not exist, as far as they can tell.
        let role = self
            .inner
            .store
            .role(&owner, &caller.account)
            .await?
            .ok_or(FleetError::NotFound("fleet"))?;
        let granted: &[Scope] = match role {
            TeamRole::Viewer => &[Scope::FleetRead],
            TeamRole::Manager => &[Scope::FleetRead, Scope::FleetWrite],
        };
        let (how, scopes) = match &caller.auth {
            CallerAuth::Session { .. } => ("session".to_owned(), granted.to_vec()),
            CallerAuth::ApiKey { key_id, scopes } => (
                format!("API key {key_id}"),
                granted
                    .iter()
                    .copied()
                    .filter(|s| scopes.contains(s))
                    .collect(),
            ),
        };
        Ok(Caller {
            account: owner,
            auth: CallerAuth::ApiKey {
                key_id: format!(
                    "team member {} as {}, by {how}",
                    caller.account,
                    match role {
                        TeamRole::Viewer => "viewer",
                        TeamRole::Manager => "manager",
                    }
                ),
                scopes,
            },
        })
    }

    /// The owner's team and the fleets the caller belongs to.
    pub(super) async fn team(
        &self,
        caller: &Caller,
    ) -> Result<(Vec<MemberRow>, Vec<MemberRow>), FleetError> {
        super::require_any(caller)?;
        Ok(self.inner.store.team(&caller.account).await?)
    }

    /// Lets `member` into the caller's fleet as `role` (or changes it).
    pub(crate) async fn grant(
        &self,
        owner: &Caller,
        member: &AccountId,
        role: TeamRole,
    ) -> Result<(), FleetError> {
        if member == &owner.account {
            return Err(FleetError::BadRequest(
                "an owner is always in their own fleet".into(),
            ));
        }
        self.inner
            .store
            .put_member(&owner.account, member, role, UnixMillis::now())
            .await?;
        tracing::info!(owner = %owner.account, %member, ?role, "team member added");
        Ok(())
    }

    /// Takes `member` out of the caller's fleet.
    pub(crate) async fn revoke(
        &self,
        owner: &Caller,
        member: &AccountId,
    ) -> Result<(), FleetError> {
        if self
            .inner
            .store
            .remove_member(&owner.account, member)
            .await?
        {
            tracing::info!(owner = %owner.account, %member, "team member removed");
            Ok(())
        } else {
            Err(FleetError::NotFound("team member"))
        }
    }
}

//! Team access: who else may see or run an owner's fleet.

use serde::{Deserialize, Serialize};

use crate::ids::UnixMillis;

/// What a team member may do in someone else's fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TeamRole {
    /// Sees everything the fleet pages show.
    Viewer,
    /// Also sends commands.
    Manager,
}

/// `PUT /api/v1/fleet/team/{account}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TeamGrant {
    pub role: TeamRole,
}

/// One membership, from either side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamMember {
    /// The other account: the member (in one's team) or the owner (a fleet
    /// one belongs to).
    pub account: crate::AccountId,
    pub name: String,
    pub role: TeamRole,
    pub added_at: UnixMillis,
}

/// `GET /api/v1/fleet/team`: who is in one's team, and whose fleets one
/// is in (pass `?fleet=<owner>` to any fleet route to act there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Team {
    pub members: Vec<TeamMember>,
    pub fleets: Vec<TeamMember>,
}

//! What the server functions need from the server. The server crate
//! implements [`Backend`] and provides a [`BackendHandle`] as context; this
//! keeps the app free of SurrealDB and libp2p.
//!
//! Who is calling comes from the server's authentication middleware, as a
//! [`Caller`] in the request's extensions; the server functions pass it on.

use std::sync::Arc;

use wire::accounts::{
    Account, AccountSettings, CreatedApiKey, CreatedEnrolToken, NewApiKey, NewEnrolToken,
};
use wire::api::ErrorBody;
use wire::billing::{BillingSummary, HistoryPage};
use wire::catalog::ModelListing;
use wire::fleet::{AlertView, CommandView, FleetNode, FleetStats, Team, TelemetrySeries};
use wire::jobs::{JobCursor, JobPage, JobRecord, SubmitJob};
use wire::registry::{NodeInfo, NodeList, NodeQuery};
use wire::{Caller, JobId, NodeId, UnixMillis};

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn list_nodes(&self, query: NodeQuery) -> Result<NodeList, ErrorBody>;
    async fn get_node(&self, id: NodeId) -> Result<Option<NodeInfo>, ErrorBody>;
    /// The model catalogue ([`wire::catalog`]), as `GET /v1/models` lists it.
    async fn list_models(&self) -> Result<Vec<ModelListing>, ErrorBody>;
    async fn submit_job(&self, caller: &Caller, job: SubmitJob) -> Result<JobRecord, ErrorBody>;
    /// The caller's newest jobs.
    /// A page of the caller's jobs, newest first.
    async fn list_jobs(
        &self,
        caller: &Caller,
        limit: u32,
        after: Option<JobCursor>,
    ) -> Result<JobPage, ErrorBody>;
    /// One of the caller's jobs; anyone else's is `None`.
    async fn get_job(&self, caller: &Caller, id: JobId) -> Result<Option<JobRecord>, ErrorBody>;

    async fn account(&self, caller: &Caller) -> Result<Account, ErrorBody>;
    async fn settings(&self, caller: &Caller) -> Result<AccountSettings, ErrorBody>;
    async fn create_api_key(
        &self,
        caller: &Caller,
        new: NewApiKey,
    ) -> Result<CreatedApiKey, ErrorBody>;
    async fn revoke_api_key(&self, caller: &Caller, id: String) -> Result<(), ErrorBody>;
    async fn end_session(&self, caller: &Caller, id: String) -> Result<(), ErrorBody>;
    async fn remove_passkey(&self, caller: &Caller, id: String) -> Result<(), ErrorBody>;
    async fn remove_lightning_key(&self, caller: &Caller, id: String) -> Result<(), ErrorBody>;
    async fn set_public_name(
        &self,
        caller: &Caller,
        name: Option<String>,
    ) -> Result<Account, ErrorBody>;
    async fn create_enrol_token(
        &self,
        caller: &Caller,
        new: NewEnrolToken,
    ) -> Result<CreatedEnrolToken, ErrorBody>;
    async fn revoke_enrol_token(&self, caller: &Caller, id: String) -> Result<(), ErrorBody>;
    /// Who the caller acts as on `fleet` (an owner's account id whose team
    /// they are in; none: their own fleet).
    async fn fleet_acting(
        &self,
        caller: &Caller,
        fleet: Option<String>,
    ) -> Result<Caller, ErrorBody>;
    /// The caller's team, and the fleets they are in.
    async fn fleet_team(&self, caller: &Caller) -> Result<Team, ErrorBody>;
    /// The caller's fleet, live: each node with its link's state and last
    /// telemetry.
    async fn fleet_nodes(&self, caller: &Caller) -> Result<Vec<FleetNode>, ErrorBody>;
    /// The caller's newest fleet commands (the audit log).
    async fn fleet_log(&self, caller: &Caller, limit: u32) -> Result<Vec<CommandView>, ErrorBody>;
    /// The caller's newest alerts.
    async fn fleet_alerts(&self, caller: &Caller, limit: u32) -> Result<Vec<AlertView>, ErrorBody>;
    /// Each of the caller's nodes' record over the last `days` days.
    async fn fleet_stats(&self, caller: &Caller, days: u32) -> Result<FleetStats, ErrorBody>;
    /// One of the caller's nodes' telemetry since `since`.
    async fn fleet_telemetry(
        &self,
        caller: &Caller,
        node: NodeId,
        since: UnixMillis,
    ) -> Result<TelemetrySeries, ErrorBody>;
    /// One of the caller's nodes' jobs over time since `since`.
    async fn fleet_activity(
        &self,
        caller: &Caller,
        node: NodeId,
        since: UnixMillis,
    ) -> Result<wire::fleet::NodeActivity, ErrorBody>;
    async fn release_node(&self, caller: &Caller, id: NodeId) -> Result<(), ErrorBody>;
    /// The caller's balances (the `billing` scope).
    async fn billing(&self, caller: &Caller) -> Result<BillingSummary, ErrorBody>;
    /// The caller's postings, newest first: the newest `limit`, or those
    /// before `before` (the `next` of the page before).
    async fn billing_history(
        &self,
        caller: &Caller,
        limit: u32,
        before: Option<String>,
    ) -> Result<HistoryPage, ErrorBody>;
}

#[derive(Clone)]
pub struct BackendHandle(pub Arc<dyn Backend>);

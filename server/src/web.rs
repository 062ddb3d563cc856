//! The web app's side of the server: the [`app::backend::Backend`] that its
//! server functions call, implemented over the registry and the job service.

use app::backend::Backend;
use wire::accounts::{
    Account, AccountSettings, CreatedApiKey, CreatedEnrolToken, NewApiKey, NewEnrolToken, Scope,
};
use wire::api::ErrorBody;
use wire::billing::{BillingSummary, HistoryPage};
use wire::catalog::ModelListing;
use wire::fleet::{AlertView, CommandView, FleetNode, FleetStats, Team, TelemetrySeries};
use wire::jobs::{JobCursor, JobPage, JobRecord, SubmitJob};
use wire::registry::{NodeInfo, NodeList, NodeQuery};
use wire::{Caller, JobId, NodeId, UnixMillis};

use crate::error::ApiError;
use crate::AppState;

fn body(e: impl Into<ApiError>) -> ErrorBody {
    e.into().body()
}

#[async_trait::async_trait]
impl Backend for AppState {
    async fn list_nodes(&self, query: NodeQuery) -> Result<NodeList, ErrorBody> {
        self.registry
            .list(&query, UnixMillis::now())
            .await
            .map_err(body)
    }

    async fn get_node(&self, id: NodeId) -> Result<Option<NodeInfo>, ErrorBody> {
        self.registry.get(id, UnixMillis::now()).await.map_err(body)
    }

    async fn list_models(&self) -> Result<Vec<ModelListing>, ErrorBody> {
        self.catalog(UnixMillis::now()).await.map_err(body)
    }

    async fn submit_job(&self, caller: &Caller, job: SubmitJob) -> Result<JobRecord, ErrorBody> {
        crate::accounts::require(caller, Scope::Jobs).map_err(body)?;
        self.jobs.submit(caller, job).await.map_err(body)
    }

    async fn list_jobs(
        &self,
        caller: &Caller,
        limit: u32,
        after: Option<JobCursor>,
    ) -> Result<JobPage, ErrorBody> {
        self.jobs
            .list(&caller.account, limit, after.as_ref())
            .await
            .map_err(body)
    }

    async fn get_job(&self, caller: &Caller, id: JobId) -> Result<Option<JobRecord>, ErrorBody> {
        self.jobs.get(&caller.account, &id).await.map_err(body)
    }

    async fn account(&self, caller: &Caller) -> Result<Account, ErrorBody> {
        self.accounts.account(&caller.account).await.map_err(body)
    }

    async fn settings(&self, caller: &Caller) -> Result<AccountSettings, ErrorBody> {
        AppState::settings(self, caller).await.map_err(body)
    }

    async fn create_api_key(
        &self,
        caller: &Caller,
        new: NewApiKey,
    ) -> Result<CreatedApiKey, ErrorBody> {
        self.accounts.create_key(caller, new).await.map_err(body)
    }

    async fn revoke_api_key(&self, caller: &Caller, id: String) -> Result<(), ErrorBody> {
        self.accounts.revoke_key(caller, &id).await.map_err(body)
    }

    async fn end_session(&self, caller: &Caller, id: String) -> Result<(), ErrorBody> {
        self.accounts.end_session(caller, &id).await.map_err(body)
    }

    async fn remove_passkey(&self, caller: &Caller, id: String) -> Result<(), ErrorBody> {
        self.accounts
            .remove_passkey(caller, &id)
            .await
            .map_err(body)
    }

    async fn remove_lightning_key(&self, caller: &Caller, id: String) -> Result<(), ErrorBody> {
        self.accounts.remove_ln_key(caller, &id).await.map_err(body)
    }

    async fn set_public_name(
        &self,
        caller: &Caller,
        name: Option<String>,
    ) -> Result<Account, ErrorBody> {
        let account = self
            .accounts
            .set_public_name(caller, name)
            .await
            .map_err(body)?;
        self.registry.claims_changed();
        Ok(account)
    }

    async fn create_enrol_token(
        &self,
        caller: &Caller,
        new: NewEnrolToken,
    ) -> Result<CreatedEnrolToken, ErrorBody> {
        AppState::create_enrol_token(self, caller, new)
            .await
            .map_err(body)
    }

    async fn revoke_enrol_token(&self, caller: &Caller, id: String) -> Result<(), ErrorBody> {
        self.enrolments
            .revoke_token(caller, &id)
            .await
            .map_err(body)
    }

    async fn fleet_nodes(&self, caller: &Caller) -> Result<Vec<FleetNode>, ErrorBody> {
        self.fleet.nodes(caller).await.map_err(body)
    }

    async fn fleet_log(&self, caller: &Caller, limit: u32) -> Result<Vec<CommandView>, ErrorBody> {
        self.fleet
            .log(caller, None, None, limit)
            .await
            .map_err(body)
    }

    async fn fleet_acting(
        &self,
        caller: &Caller,
        fleet: Option<String>,
    ) -> Result<Caller, ErrorBody> {
        self.fleet
            .acting(caller, fleet.as_deref())
            .await
            .map_err(body)
    }

    async fn fleet_team(&self, caller: &Caller) -> Result<Team, ErrorBody> {
        crate::fleet::team_view(self, caller).await.map_err(body)
    }

    async fn fleet_alerts(&self, caller: &Caller, limit: u32) -> Result<Vec<AlertView>, ErrorBody> {
        self.fleet.alerts(caller, limit).await.map_err(body)
    }

    async fn fleet_stats(&self, caller: &Caller, days: u32) -> Result<FleetStats, ErrorBody> {
        self.fleet.stats(caller, days).await.map_err(body)
    }

    async fn fleet_telemetry(
        &self,
        caller: &Caller,
        node: NodeId,
        since: UnixMillis,
    ) -> Result<TelemetrySeries, ErrorBody> {
        self.fleet
            .telemetry(caller, node, since, UnixMillis::now())
            .await
            .map_err(body)
    }

    async fn fleet_activity(
        &self,
        caller: &Caller,
        node: NodeId,
        since: UnixMillis,
    ) -> Result<wire::fleet::NodeActivity, ErrorBody> {
        self.fleet
            .activity(caller, node, since, UnixMillis::now())
            .await
            .map_err(body)
    }

    async fn release_node(&self, caller: &Caller, id: NodeId) -> Result<(), ErrorBody> {
        self.enrolments.release(caller, id).await.map_err(body)?;
        self.registry.claims_changed();
        Ok(())
    }

    async fn billing(&self, caller: &Caller) -> Result<BillingSummary, ErrorBody> {
        crate::accounts::require(caller, Scope::Billing).map_err(body)?;
        self.ledger.summary(&caller.account).await.map_err(body)
    }

    async fn billing_history(
        &self,
        caller: &Caller,
        limit: u32,
        before: Option<String>,
    ) -> Result<HistoryPage, ErrorBody> {
        crate::accounts::require(caller, Scope::Billing).map_err(body)?;
        self.ledger
            .history(&caller.account, before.as_deref(), limit.clamp(1, 200))
            .await
            .map_err(body)
    }
}

//! Server functions: thin calls into the server's [`Backend`](crate::backend::Backend).
//!
//! Each has a fixed endpoint (`/api/<name>`) rather than Leptos's default,
//! which hashes the crate's absolute path: a site built in one checkout (or
//! Docker stage) then still talks to a server built in another.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};
use wire::accounts::{
    Account, AccountSettings, CreatedApiKey, CreatedEnrolToken, NewApiKey, NewEnrolToken,
};
use wire::catalog::ModelListing;
use wire::jobs::{JobPage, JobRecord, SubmitJob};
use wire::registry::{NodeInfo, NodeList, NodeQuery};
use wire::UnixMillis;

/// A page of nodes and the server's clock when it was read, so that "seen
/// 3 s ago" renders the same on the server and in the browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodesView {
    pub list: NodeList,
    pub now: UnixMillis,
}

#[cfg(feature = "ssr")]
fn backend() -> Result<crate::backend::BackendHandle, ServerFnError> {
    use_context::<crate::backend::BackendHandle>()
        .ok_or_else(|| ServerFnError::new("the server provides no backend"))
}

#[cfg(feature = "ssr")]
fn err(e: wire::api::ErrorBody) -> ServerFnError {
    ServerFnError::new(e.error.message)
}

/// What a server function answers when nobody is signed in; pages that
/// need an account send the visitor to sign in instead of showing it.
pub const NOT_SIGNED_IN: &str = "not signed in";

/// Whether a server function failed because nobody is signed in.
pub fn is_signed_out(e: &ServerFnError) -> bool {
    e.to_string().contains(NOT_SIGNED_IN)
}

/// Whether this request comes from someone signed in: on the server, from
/// the request; in the browser, `false` (the page's first answer says it).
pub fn signed_in_now() -> bool {
    #[cfg(feature = "ssr")]
    {
        caller().is_ok()
    }
    #[cfg(not(feature = "ssr"))]
    {
        false
    }
}

/// The signed-in caller of this request, as the server's authentication
/// middleware found it.
#[cfg(feature = "ssr")]
fn caller() -> Result<wire::Caller, ServerFnError> {
    use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<wire::Caller>().cloned())
        .ok_or_else(|| ServerFnError::new(NOT_SIGNED_IN))
}

#[server(input = Json, endpoint = "list_nodes")]
pub async fn list_nodes(query: NodeQuery) -> Result<NodesView, ServerFnError> {
    let list = backend()?.0.list_nodes(query).await.map_err(err)?;
    Ok(NodesView {
        list,
        now: UnixMillis::now(),
    })
}

#[server(input = Json, endpoint = "get_node")]
pub async fn get_node(id: String) -> Result<Option<(NodeInfo, UnixMillis)>, ServerFnError> {
    let id = id
        .parse()
        .map_err(|e: wire::ids::ParseIdError| ServerFnError::new(e))?;
    let node = backend()?.0.get_node(id).await.map_err(err)?;
    Ok(node.map(|n| (n, UnixMillis::now())))
}

/// The models that available nodes offer, by name: the same catalogue
/// as the OpenAI API's `GET /v1/models`.
#[server(input = Json, endpoint = "list_models")]
pub async fn list_models() -> Result<Vec<ModelListing>, ServerFnError> {
    backend()?.0.list_models().await.map_err(err)
}

#[server(input = Json, endpoint = "run_job")]
pub async fn run_job(job: SubmitJob) -> Result<JobRecord, ServerFnError> {
    backend()?.0.submit_job(&caller()?, job).await.map_err(err)
}

/// A page of the signed-in account's jobs, newest first: the first, or
/// the one after `cursor` (the `next_cursor` of the page before).
/// A page of one's jobs and the server's clock when it was read (what an
/// offline copy of the page says it shows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobsView {
    pub page: JobPage,
    pub now: UnixMillis,
}

#[server(input = Json, endpoint = "list_jobs")]
pub async fn list_jobs(cursor: Option<String>) -> Result<JobsView, ServerFnError> {
    let after = cursor
        .as_deref()
        .map(str::parse::<wire::jobs::JobCursor>)
        .transpose()
        .map_err(ServerFnError::new)?;
    let page = backend()?
        .0
        .list_jobs(&caller()?, JOBS_PER_PAGE, after)
        .await
        .map_err(err)?;
    Ok(JobsView {
        page,
        now: UnixMillis::now(),
    })
}

/// How many jobs the Jobs page shows at a time.
pub const JOBS_PER_PAGE: u32 = 25;

#[server(input = Json, endpoint = "get_job")]
pub async fn get_job(id: String) -> Result<Option<JobRecord>, ServerFnError> {
    let id = id
        .parse()
        .map_err(|e: wire::ids::ParseIdError| ServerFnError::new(e))?;
    backend()?.0.get_job(&caller()?, id).await.map_err(err)
}

/// The signed-in account, or `None` for a visitor.
#[server(input = Json, endpoint = "me")]
pub async fn me() -> Result<Option<Account>, ServerFnError> {
    let Ok(caller) = caller() else {
        return Ok(None);
    };
    backend()?.0.account(&caller).await.map(Some).map_err(err)
}

#[server(input = Json, endpoint = "account_settings")]
pub async fn load_settings() -> Result<(AccountSettings, UnixMillis), ServerFnError> {
    let settings = backend()?.0.settings(&caller()?).await.map_err(err)?;
    Ok((settings, UnixMillis::now()))
}

#[server(input = Json, endpoint = "create_api_key")]
pub async fn create_api_key(new: NewApiKey) -> Result<CreatedApiKey, ServerFnError> {
    backend()?
        .0
        .create_api_key(&caller()?, new)
        .await
        .map_err(err)
}

#[server(input = Json, endpoint = "revoke_api_key")]
pub async fn revoke_api_key(id: String) -> Result<(), ServerFnError> {
    backend()?
        .0
        .revoke_api_key(&caller()?, id)
        .await
        .map_err(err)
}

#[server(input = Json, endpoint = "end_session")]
pub async fn end_session(id: String) -> Result<(), ServerFnError> {
    backend()?.0.end_session(&caller()?, id).await.map_err(err)
}

#[server(input = Json, endpoint = "remove_passkey")]
pub async fn remove_passkey(id: String) -> Result<(), ServerFnError> {
    backend()?
        .0
        .remove_passkey(&caller()?, id)
        .await
        .map_err(err)
}

#[server(input = Json, endpoint = "remove_lightning_key")]
pub async fn remove_lightning_key(id: String) -> Result<(), ServerFnError> {
    backend()?
        .0
        .remove_lightning_key(&caller()?, id)
        .await
        .map_err(err)
}

#[server(input = Json, endpoint = "set_public_name")]
pub async fn set_public_name(name: Option<String>) -> Result<Account, ServerFnError> {
    backend()?
        .0
        .set_public_name(&caller()?, name)
        .await
        .map_err(err)
}

#[server(input = Json, endpoint = "create_enrol_token")]
pub async fn create_enrol_token(new: NewEnrolToken) -> Result<CreatedEnrolToken, ServerFnError> {
    backend()?
        .0
        .create_enrol_token(&caller()?, new)
        .await
        .map_err(err)
}

#[server(input = Json, endpoint = "revoke_enrol_token")]
pub async fn revoke_enrol_token(id: String) -> Result<(), ServerFnError> {
    backend()?
        .0
        .revoke_enrol_token(&caller()?, id)
        .await
        .map_err(err)
}

/// The signed-in operator's fleet (each node live), its newest commands and
/// alerts, and the server's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetPage {
    /// Whose fleet this is: the caller's own (`None`) or an owner's whose
    /// team they are in, with their role there.
    pub acting: Option<wire::fleet::TeamMember>,
    pub team: wire::fleet::Team,
    pub nodes: Vec<wire::fleet::FleetNode>,
    pub log: Vec<wire::fleet::CommandView>,
    pub alerts: Vec<wire::fleet::AlertView>,
    pub now: UnixMillis,
}

#[server(input = Json, endpoint = "fleet_view")]
pub async fn fleet_view(fleet: Option<String>) -> Result<FleetPage, ServerFnError> {
    let me = caller()?;
    let backend = backend()?;
    let team = backend.0.fleet_team(&me).await.map_err(err)?;
    let caller = backend.0.fleet_acting(&me, fleet).await.map_err(err)?;
    let acting = (caller.account != me.account)
        .then(|| {
            team.fleets
                .iter()
                .find(|f| f.account == caller.account)
                .cloned()
        })
        .flatten();
    Ok(FleetPage {
        acting,
        team,
        nodes: backend.0.fleet_nodes(&caller).await.map_err(err)?,
        log: backend.0.fleet_log(&caller, 20).await.map_err(err)?,
        alerts: backend.0.fleet_alerts(&caller, 20).await.map_err(err)?,
        now: UnixMillis::now(),
    })
}

/// Each of the signed-in operator's nodes' record (uptime, completion,
/// latency, earnings) over the last `days` days.
#[server(input = Json, endpoint = "fleet_stats")]
pub async fn fleet_stats(
    days: u32,
    fleet: Option<String>,
) -> Result<wire::fleet::FleetStats, ServerFnError> {
    let backend = backend()?;
    let caller = backend
        .0
        .fleet_acting(&caller()?, fleet)
        .await
        .map_err(err)?;
    backend.0.fleet_stats(&caller, days).await.map_err(err)
}

/// One of the signed-in operator's nodes, live, with its telemetry of the
/// last `minutes`, and the server's clock.
#[server(input = Json, endpoint = "fleet_node")]
pub async fn fleet_node(
    id: String,
    minutes: u32,
    fleet: Option<String>,
) -> Result<
    (
        Option<wire::fleet::FleetNode>,
        wire::fleet::TelemetrySeries,
        Option<wire::fleet::NodeActivity>,
        UnixMillis,
    ),
    ServerFnError,
> {
    let node: wire::NodeId = id
        .parse()
        .map_err(|e: wire::ids::ParseIdError| ServerFnError::new(e))?;
    let backend = backend()?;
    let caller = backend
        .0
        .fleet_acting(&caller()?, fleet)
        .await
        .map_err(err)?;
    let now = UnixMillis::now();
    let Some(live) = backend
        .0
        .fleet_nodes(&caller)
        .await
        .map_err(err)?
        .into_iter()
        .find(|n| n.node_id == node)
    else {
        return Ok((
            None,
            wire::fleet::TelemetrySeries {
                step_ms: 0,
                points: Vec::new(),
            },
            None,
            now,
        ));
    };
    let since = UnixMillis(
        now.0
            .saturating_sub(u64::from(minutes.min(30 * 24 * 60)) * 60_000),
    );
    let points = backend
        .0
        .fleet_telemetry(&caller, node, since)
        .await
        .map_err(err)?;
    let activity = backend
        .0
        .fleet_activity(&caller, node, since)
        .await
        .map_err(err)?;
    Ok((Some(live), points, Some(activity), now))
}

#[server(input = Json, endpoint = "release_node")]
pub async fn release_node(id: String) -> Result<(), ServerFnError> {
    let id = id
        .parse()
        .map_err(|e: wire::ids::ParseIdError| ServerFnError::new(e))?;
    backend()?.0.release_node(&caller()?, id).await.map_err(err)
}

/// The signed-in account's balances and a page of its postings (the
/// newest, or those before `before`), with the server's clock.
#[server(input = Json, endpoint = "billing_view")]
pub async fn billing_view(
    limit: u32,
    before: Option<String>,
) -> Result<
    (
        wire::billing::BillingSummary,
        wire::billing::HistoryPage,
        UnixMillis,
    ),
    ServerFnError,
> {
    let caller = caller()?;
    let backend = backend()?;
    let summary = backend.0.billing(&caller).await.map_err(err)?;
    let history = backend
        .0
        .billing_history(&caller, limit, before)
        .await
        .map_err(err)?;
    Ok((summary, history, UnixMillis::now()))
}

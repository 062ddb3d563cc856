//! Server functions: thin calls into the server's [`Backend`](crate::backend::Backend).
//!
//! Each has a fixed endpoint (`/api/<name>`) rather than Leptos's default,
//! which hashes the crate's absolute path: a site built in one checkout (or
//! Docker stage) then still talks to a server built in another.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};
use wire::catalog::ModelListing;
use wire::jobs::{JobRecord, JobSummary, SubmitJob};
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
    backend()?.0.submit_job(job).await.map_err(err)
}

#[server(input = Json, endpoint = "list_jobs")]
pub async fn list_jobs() -> Result<Vec<JobSummary>, ServerFnError> {
    backend()?.0.list_jobs(100).await.map_err(err)
}

#[server(input = Json, endpoint = "get_job")]
pub async fn get_job(id: String) -> Result<Option<JobRecord>, ServerFnError> {
    let id = id
        .parse()
        .map_err(|e: wire::ids::ParseIdError| ServerFnError::new(e))?;
    backend()?.0.get_job(id).await.map_err(err)
}

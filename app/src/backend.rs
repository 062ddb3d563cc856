//! What the server functions need from the server. The server crate
//! implements [`Backend`] and provides a [`BackendHandle`] as context; this
//! keeps the app free of SurrealDB and libp2p.

use std::sync::Arc;

use wire::api::ErrorBody;
use wire::catalog::ModelListing;
use wire::jobs::{JobRecord, JobSummary, SubmitJob};
use wire::registry::{NodeInfo, NodeList, NodeQuery};
use wire::{JobId, NodeId};

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn list_nodes(&self, query: NodeQuery) -> Result<NodeList, ErrorBody>;
    async fn get_node(&self, id: NodeId) -> Result<Option<NodeInfo>, ErrorBody>;
    /// The model catalogue ([`wire::catalog`]), as `GET /v1/models` lists it.
    async fn list_models(&self) -> Result<Vec<ModelListing>, ErrorBody>;
    async fn submit_job(&self, job: SubmitJob) -> Result<JobRecord, ErrorBody>;
    async fn list_jobs(&self, limit: u32) -> Result<Vec<JobSummary>, ErrorBody>;
    async fn get_job(&self, id: JobId) -> Result<Option<JobRecord>, ErrorBody>;
}

#[derive(Clone)]
pub struct BackendHandle(pub Arc<dyn Backend>);

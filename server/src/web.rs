//! The web app's side of the server: the [`app::backend::Backend`] that its
//! server functions call, implemented over the registry and the job service.

use app::backend::Backend;
use wire::api::ErrorBody;
use wire::catalog::ModelListing;
use wire::jobs::{JobRecord, JobSummary, SubmitJob};
use wire::registry::{NodeInfo, NodeList, NodeQuery};
use wire::{JobId, NodeId, UnixMillis};

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

    async fn submit_job(&self, job: SubmitJob) -> Result<JobRecord, ErrorBody> {
        self.jobs.submit(job).await.map_err(body)
    }

    async fn list_jobs(&self, limit: u32) -> Result<Vec<JobSummary>, ErrorBody> {
        self.jobs.list(limit).await.map_err(body)
    }

    async fn get_job(&self, id: JobId) -> Result<Option<JobRecord>, ErrorBody> {
        self.jobs.get(&id).await.map_err(body)
    }
}

//! The Infernet server: the node registry, the job API, a libp2p seed peer,
//! and the web app (Leptos SSR + hydration), over SurrealDB.

pub mod config;
mod db;
mod error;
mod jobs;
mod network;
mod openai;
mod registry;
mod startup;
mod web;

pub use config::Config;
pub use startup::{Application, StartupError};

use leptos::config::LeptosOptions;
use wire::api::NetworkInfo;
use wire::catalog::ModelListing;
use wire::UnixMillis;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    registry: registry::Registry,
    jobs: jobs::Jobs,
    network_info: NetworkInfo,
    leptos: LeptosOptions,
}

impl axum::extract::FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

impl AppState {
    /// Every model that some available node offers: what `GET /v1/models`
    /// and the app's model picker show.
    pub(crate) async fn catalog(
        &self,
        now: UnixMillis,
    ) -> Result<Vec<ModelListing>, registry::RegistryError> {
        Ok(wire::catalog::catalog(&self.registry.all(now).await?))
    }
}

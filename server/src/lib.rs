//! The Infernet server: the node registry, the job API, a libp2p seed peer,
//! and the web app (Leptos SSR + hydration), over SurrealDB.

mod accounts;
pub mod admin;
pub mod config;
mod db;
mod enrolment;
mod error;
mod fleet;
mod jobs;
mod ledger;
mod lightning;
mod listen;
mod metrics;
mod network;
mod openai;
mod openapi;
mod payouts;
mod registry;
mod reputation;
mod site;
mod startup;
mod topups;
mod validators;
mod verify;
mod web;

pub use accounts::{LocalKeyError, SiteError};
pub use config::{AdminCommand, Command, Config, JobRates, LightningBackend};
pub use lightning::LightningStartError;
pub use network::probe_health;
pub use startup::{Application, StartupError};

/// Benchmarks' entry points (`cargo bench -p server`): not an API.
#[doc(hidden)]
pub use jobs::bench;
#[doc(hidden)]
pub use registry::bench as registry_bench;

use leptos::config::LeptosOptions;
use wire::accounts::{AccountSettings, CreatedEnrolToken, MyNode, NewEnrolToken};
use wire::api::NetworkInfo;
use wire::catalog::ModelListing;
use wire::{Caller, UnixMillis};

/// Shared by every handler. Cloned for every request (axum's `State`,
/// each layer that takes it), so it is one `Arc`: a clone is one counter
/// increment, not one per service handle (measured: cloning and dropping
/// the handles field by field was ~45% of the server's CPU per `/healthz`).
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What every handler may use, behind [`AppState`].
pub struct Services {
    registry: registry::Registry,
    jobs: jobs::Jobs,
    ledger: ledger::Ledger,
    topups: topups::Topups,
    payouts: payouts::Payouts,
    accounts: accounts::Accounts,
    enrolments: enrolment::Enrolments,
    fleet: fleet::Fleet,
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
        Ok(self.registry.catalog(now))
    }
}

impl AppState {
    /// The Settings page: the account's ways in, sessions, keys and
    /// enrolment tokens.
    pub(crate) async fn settings(
        &self,
        caller: &Caller,
    ) -> Result<AccountSettings, error::ApiError> {
        let mut settings = self.accounts.settings(caller).await?;
        settings.enrol_tokens = self.enrolments.tokens(caller).await?;
        self.with_spending(&mut settings.api_keys).await?;
        Ok(settings)
    }

    /// The caller's API keys, each with what its jobs spent.
    pub(crate) async fn api_keys(
        &self,
        caller: &Caller,
    ) -> Result<Vec<wire::accounts::ApiKeyView>, error::ApiError> {
        let mut keys = self.accounts.keys(caller).await?;
        self.with_spending(&mut keys).await?;
        Ok(keys)
    }

    /// Fills in what each key's jobs spent today (UTC) and in all.
    async fn with_spending(
        &self,
        keys: &mut [wire::accounts::ApiKeyView],
    ) -> Result<(), error::ApiError> {
        let now = UnixMillis::now();
        let today = UnixMillis(now.0 - now.0 % (24 * 3600 * 1000));
        for key in keys.iter_mut().filter(|k| k.revoked_at.is_none()) {
            key.spent_today_msat = self.jobs.spent_by_key(&key.id, today).await?;
            key.spent_total_msat = self.jobs.spent_by_key(&key.id, UnixMillis(0)).await?;
        }
        Ok(())
    }

    /// Makes an enrolment token, within the caller's limit on making keys
    /// and tokens: the one way in for the API and the app.
    pub(crate) async fn create_enrol_token(
        &self,
        caller: &Caller,
        new: NewEnrolToken,
    ) -> Result<CreatedEnrolToken, error::ApiError> {
        self.accounts.limits().key_creation(&caller.account)?;
        Ok(self.enrolments.create_token(caller, new).await?)
    }

    /// The caller's enrolled nodes, with what the registry knows of each.
    pub(crate) async fn my_nodes(&self, caller: &Caller) -> Result<Vec<MyNode>, error::ApiError> {
        let mine = self.enrolments.nodes_of(caller).await?;
        if mine.is_empty() {
            return Ok(Vec::new());
        }
        // One read of the registry, not one per node.
        let ids: Vec<wire::NodeId> = mine.iter().map(|(id, _)| *id).collect();
        let mut known: std::collections::HashMap<_, _> = self
            .registry
            .nodes(&ids, UnixMillis::now())
            .await?
            .into_iter()
            .map(|n| (n.peer_id, n))
            .collect();
        Ok(mine
            .into_iter()
            .map(|(node_id, enrolled_at)| MyNode {
                node_id,
                enrolled_at,
                info: known.remove(&node_id),
            })
            .collect())
    }
}

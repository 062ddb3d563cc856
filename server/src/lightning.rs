//! Lightning's plumbing shared by top-ups and payouts: which backend the
//! server runs (`--lightning`: none, the Breez SDK worker, or the test
//! stand-in), waiting on a payment until it settles, and the queries of
//! their HTTP routes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use payments::test_backend::TestLightning;
use payments::Lightning;
use serde::Deserialize;
use tokio::sync::Notify;
use wire::billing::PaymentStatus;

use crate::config::{Config, LightningBackend};
use crate::error::ApiError;

/// The backend, and the test stand-in's handle for `admin test-pay`.
pub(crate) struct LightningSetup {
    pub(crate) backend: Option<Arc<dyn Lightning>>,
    pub(crate) test: Option<TestLightning>,
}

#[derive(Debug, thiserror::Error)]
pub enum LightningStartError {
    #[error("the Breez worker could not start: {0}")]
    Breez(String),
}

pub(crate) async fn start(config: &Config) -> Result<LightningSetup, LightningStartError> {
    match config.lightning {
        LightningBackend::None => Ok(LightningSetup {
            backend: None,
            test: None,
        }),
        LightningBackend::Test => {
            tracing::warn!(
                "Lightning: the TEST backend: invoices are settled by `admin test-pay`, no real money moves"
            );
            let test = TestLightning::new();
            Ok(LightningSetup {
                backend: Some(Arc::new(test.clone())),
                test: Some(test),
            })
        }
        LightningBackend::Breez => {
            let storage_dir = config.data_dir.join("breez");
            let breez = payments::breez::BreezConfig {
                python: config.breez_python.clone(),
                network: config.lightning_network.clone(),
                api_key: config.breez_api_key.clone(),
                seed_file: config
                    .breez_seed_file
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join("breez.seed")),
                storage_dir,
            };
            let (worker, ready) = payments::breez::BreezWorker::start(breez)
                .await
                .map_err(|e| LightningStartError::Breez(e.to_string()))?;
            tracing::info!(
                network = %config.lightning_network,
                pubkey = ?ready.pubkey,
                balance_sat = ?ready.balance_sat,
                "Lightning: the Breez SDK (Spark) worker is connected"
            );
            Ok(LightningSetup {
                backend: Some(Arc::new(worker)),
                test: None,
            })
        }
    }
}

/// The longest a caller may wait for a payment (a top-up, a payout) to
/// change.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(60);

/// Wakes whoever waits on a payment when one changes; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct PaymentChanges(Arc<Notify>);

impl PaymentChanges {
    /// Some payment changed: waiters look again.
    pub(crate) fn notify(&self) {
        self.0.notify_waiters();
    }

    /// Reads a payment with `read` until it is no longer pending, or until
    /// `wait` (at most [`MAX_WAIT`]) is over; without `wait`, reads once.
    pub(crate) async fn read_until_settled<T, E, Fut>(
        &self,
        wait: Option<Duration>,
        mut read: impl FnMut() -> Fut,
        status: impl Fn(&T) -> PaymentStatus,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let deadline = tokio::time::Instant::now() + wait.unwrap_or_default().min(MAX_WAIT);
        loop {
            // Listening before looking: a change between the two wakes us.
            let changed = self.0.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let current = read().await?;
            if status(&current) != PaymentStatus::Pending || tokio::time::Instant::now() >= deadline
            {
                return Ok(current);
            }
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// `?wait_secs=` on one payment's `GET`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    #[param(maximum = 60)]
    wait_secs: Option<u64>,
}

impl WaitQuery {
    pub(crate) fn wait(&self) -> Result<Option<Duration>, ApiError> {
        match self.wait_secs.map(Duration::from_secs) {
            Some(w) if w > MAX_WAIT => Err(ApiError::BadRequest(format!(
                "wait_secs must be at most {}",
                MAX_WAIT.as_secs()
            ))),
            wait => Ok(wait),
        }
    }
}

/// `?limit=` on a list of payments.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

impl ListQuery {
    pub(crate) fn limit(&self) -> Result<u32, ApiError> {
        match self.limit.unwrap_or(50) {
            l @ 1..=500 => Ok(l),
            _ => Err(ApiError::BadRequest("limit must be 1 to 500".into())),
        }
    }
}

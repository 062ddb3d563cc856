//! Which Lightning backend the server runs (`--lightning`): none, the
//! Breez SDK worker, or the test stand-in.

use std::sync::Arc;

use payments::test_backend::TestLightning;
use payments::Lightning;

use crate::config::{Config, LightningBackend};

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

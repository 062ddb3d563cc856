//! The Breez worker as far as it runs here: the real SDK (PyPI
//! `breez-sdk-spark`) in the real worker process, on regtest without an
//! API key, offline. A gated test runs against Breez's network when
//! `INFERNET_BREEZ_API_KEY` is set.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::test_backend::TestLightning;

/// The Python that has `breez-sdk-spark` (scripts/env.sh sets it); tests
/// run without it only outside scripts/test.sh, and say so.
fn python() -> Option<PathBuf> {
    match std::env::var_os("INFERNET_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!("SKIPPED: INFERNET_PYTHON is not set (run through scripts/test.sh)");
            None
        }
    }
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "infernet-breez-{tag}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(python: PathBuf, dir: &Path, network: &str, api_key: Option<String>) -> BreezConfig {
    BreezConfig {
        python,
        network: network.into(),
        api_key,
        seed_file: dir.join("breez.seed"),
        storage_dir: dir.join("breez"),
    }
}

#[tokio::test]
async fn the_worker_connects_offline_parses_and_says_the_network_is_unreachable() {
    let Some(python) = python() else { return };
    let dir = temp("offline");
    let (worker, ready) = BreezWorker::start(config(python.clone(), &dir, "regtest", None))
        .await
        .expect("the worker starts on regtest without a key");
    assert_eq!(ready.balance_sat, Some(0));
    let pubkey = ready.pubkey.clone().expect("an identity key");
    assert_eq!(pubkey.len(), 66);

    // The seed was made, 0600, and is the same wallet next time.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("breez.seed"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let words = std::fs::read_to_string(dir.join("breez.seed")).unwrap();
    assert_eq!(words.split_whitespace().count(), 12);

    // The SDK reads our invoices as we do.
    let issuer = TestLightning::new();
    let invoice = issuer
        .create_invoice(MilliSats(21_000), "parse me", 600)
        .await
        .unwrap();
    let parsed = worker.parse(&invoice.bolt11).await.unwrap();
    assert_eq!(parsed["kind"], "bolt11_invoice", "{parsed}");
    assert_eq!(parsed["payment_hash"], invoice.payment_hash.as_str());
    assert_eq!(parsed["amount_msat"], 21_000);
    assert!(matches!(
        worker.parse("not an invoice").await,
        Err(LightningError::InvalidInvoice(_))
    ));

    // Receiving and sending need Breez's operators: a clear error, soon,
    // not a hang.
    let started = Instant::now();
    let err = worker
        .create_invoice(MilliSats(10_000), "offline", 600)
        .await
        .unwrap_err();
    assert!(matches!(err, LightningError::Unreachable(_)), "{err:?}");
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let err = worker.pay_invoice(&invoice.bolt11, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            LightningError::Unreachable(_) | LightningError::PaymentFailed(_)
        ),
        "{err:?}"
    );
    // Nothing received: the invoice is not paid.
    assert!(matches!(
        worker.invoice_state(&invoice.payment_hash).await,
        Ok(InvoiceState::Pending) | Err(LightningError::Unreachable(_))
    ));
    drop(worker);

    // Started again on the same seed: the same wallet.
    let (_again, ready) = BreezWorker::start(config(python, &dir, "regtest", None))
        .await
        .unwrap();
    assert_eq!(ready.pubkey, Some(pubkey));
}

#[tokio::test]
async fn a_worker_that_dies_is_restarted() {
    let Some(python) = python() else { return };
    let dir = temp("restart");
    let (worker, _) = BreezWorker::start(config(python, &dir, "regtest", None))
        .await
        .unwrap();
    assert_eq!(worker.info().await.unwrap().balance_sat, Some(0));
    // Kill the process behind the handle (found by its script path).
    let script = dir.join("breez").join("breez_worker.py");
    let status = std::process::Command::new("pkill")
        .arg("-KILL")
        .arg("-f")
        .arg(script.to_str().unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    // Calls fail as unreachable while it is down, then work again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refused = 0;
    loop {
        match worker.info().await {
            Ok(info) if refused > 0 => {
                assert_eq!(info.balance_sat, Some(0));
                break;
            }
            Ok(_) => {}
            Err(LightningError::Unreachable(_)) => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
        assert!(Instant::now() < deadline, "the worker never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_missing_python_or_a_bad_seed_fails_at_start() {
    let dir = temp("bad");
    let err = BreezWorker::start(config(
        PathBuf::from("/nonexistent/python"),
        &dir,
        "regtest",
        None,
    ))
    .await
    .err()
    .expect("no python, no worker");
    assert!(err.to_string().contains("/nonexistent/python"), "{err}");
    std::fs::write(dir.join("breez.seed"), "not twelve words").unwrap();
    let err = load_or_create_seed(&dir.join("breez.seed")).unwrap_err();
    assert!(err.to_string().contains("BIP39"), "{err}");
}

/// Against Breez's real network: only with `INFERNET_BREEZ_API_KEY` (and
/// the internet); prints SKIPPED otherwise.
#[tokio::test]
async fn live_mainnet_invoice_when_a_key_is_given() {
    let Some(key) = std::env::var("INFERNET_BREEZ_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
    else {
        eprintln!("SKIPPED: live Breez test (set INFERNET_BREEZ_API_KEY to run it)");
        return;
    };
    let Some(python) = python() else { return };
    let dir = temp("live");
    let (worker, ready) = BreezWorker::start(config(python, &dir, "bitcoin", Some(key)))
        .await
        .expect("connects to Breez's mainnet");
    assert!(ready.pubkey.is_some());
    let invoice = worker
        .create_invoice(MilliSats(1_000_000), "Infernet live test", 600)
        .await
        .expect("a real invoice");
    let parsed = crate::parse_invoice(&invoice.bolt11).unwrap();
    assert_eq!(parsed.payment_hash, invoice.payment_hash);
    assert_eq!(parsed.amount, Some(MilliSats(1_000_000)));
    assert_eq!(
        worker.invoice_state(&invoice.payment_hash).await.unwrap(),
        InvoiceState::Pending
    );
}

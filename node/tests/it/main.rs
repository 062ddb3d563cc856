//! The node's tests that need the real models (exported by
//! `scripts/setup.sh` into `$INFERNET_MODELS_DIR`) or the Python reference;
//! `cargo test -p node --lib` needs neither.

mod admission;
mod bids;
mod discovery;
mod engine;
mod generation;
mod jobs;
mod tensor;

use std::path::PathBuf;

/// Where `scripts/setup.sh` exported the models.
pub(crate) fn models_dir() -> PathBuf {
    PathBuf::from(
        std::env::var_os("INFERNET_MODELS_DIR")
            .expect("INFERNET_MODELS_DIR is not set: run scripts/setup.sh, source scripts/env.sh"),
    )
}

/// A models directory of its own holding just `models` (links to the
/// exported ones), so that a test's engine loads only what it is about.
pub(crate) fn store_of(tag: &str, models: &[&str]) -> PathBuf {
    let root = std::env::temp_dir().join(format!("infernet-node-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    for m in models {
        std::os::unix::fs::symlink(models_dir().join(m), root.join(m)).unwrap();
    }
    root
}

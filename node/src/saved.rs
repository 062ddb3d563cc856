//! Settings the operator changed over the fleet link (schedule, pools),
//! kept as JSON next to the node key so that they outlive restarts. A file
//! is replaced whole (written aside, then renamed), never half-written.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The value kept in `path`, or `None` if there is no file.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Keeps `value` in `path`; `None` removes the file.
pub fn save<T: Serialize>(path: &Path, value: Option<&T>) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let Some(value) = value else {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail(&e)),
            _ => Ok(()),
        };
    };
    let text = serde_json::to_string_pretty(value).map_err(|e| fail(&e))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| fail(&e))
}

/// A setting that the operator may change while the node runs: kept in a
/// file when it has one, and watched by whoever acts on it. Cheap to clone.
#[derive(Clone)]
pub struct Setting<T> {
    value: std::sync::Arc<tokio::sync::watch::Sender<T>>,
    file: Option<std::path::PathBuf>,
}

impl<T: Clone + Serialize + DeserializeOwned> Setting<T> {
    /// `value`, kept nowhere.
    pub fn fixed(value: T) -> Self {
        Setting {
            value: std::sync::Arc::new(tokio::sync::watch::Sender::new(value)),
            file: None,
        }
    }

    /// The value saved in `file` (the operator's last word), else
    /// `initial` (from the command line); kept in `file` from then on.
    pub fn keep_in(file: std::path::PathBuf, initial: T) -> Result<Self, String> {
        let value = load(&file)?.unwrap_or(initial);
        Ok(Setting {
            value: std::sync::Arc::new(tokio::sync::watch::Sender::new(value)),
            file: Some(file),
        })
    }

    /// Saves `value`, then makes it current.
    pub fn set(&self, value: T) -> Result<(), String> {
        if let Some(file) = &self.file {
            save(file, Some(&value))?;
        }
        self.value.send_replace(value);
        Ok(())
    }

    pub fn get(&self) -> T {
        self.value.borrow().clone()
    }

    pub fn watch(&self) -> tokio::sync::watch::Receiver<T> {
        self.value.subscribe()
    }
}

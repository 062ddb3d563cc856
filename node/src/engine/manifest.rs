//! A model directory: one sub-directory per model, each with a
//! `manifest.json` beside its TorchScript file (and tokenizer, for text).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use wire::jobs::Role;
use wire::registry::{Task, TokenPrice};
use wire::MilliSats;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub task: Task,
    /// TorchScript file, relative to the manifest.
    pub file: PathBuf,
    /// `tokenizer.json` (Hugging Face format), relative to the manifest.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Per job.
    pub price_msat: MilliSats,
    /// Per metered token, on top of the job's price.
    #[serde(default)]
    pub token_price: TokenPrice,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub embedding: Option<EmbeddingSpec>,
    #[serde(default)]
    pub generation: Option<GenerationSpec>,
    #[serde(default)]
    pub tensor: Option<TensorSpec>,
}

/// A raw-tensor model's interface: `forward` takes `inputs` in this order
/// and returns `outputs` (one tensor, or a tuple in this order).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub inputs: Vec<TensorInputSpec>,
    pub outputs: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorInputSpec {
    pub name: String,
    /// `f32` or `i64`.
    pub dtype: String,
    /// -1 where any size is accepted.
    pub shape: Vec<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSpec {
    /// The token that ends a text (and starts one whose prompt is empty).
    #[serde(default)]
    pub eos_token: Option<String>,
    /// How a chat becomes a prompt; without it the model takes prompts only.
    #[serde(default)]
    pub chat_template: Option<ChatTemplate>,
}

/// Each message becomes its role's line with `{content}` replaced; then
/// `assistant_start` cues the model's answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatTemplate {
    pub system: String,
    pub user: String,
    pub assistant: String,
    pub assistant_start: String,
}

impl ChatTemplate {
    pub fn render(&self, messages: &[wire::jobs::ChatMessage]) -> String {
        let mut out = String::new();
        for m in messages {
            let line = match m.role {
                Role::System => &self.system,
                Role::User => &self.user,
                Role::Assistant => &self.assistant,
            };
            out.push_str(&line.replace("{content}", &m.content));
        }
        out.push_str(&self.assistant_start);
        out
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSpec {
    /// Length of each output vector.
    pub dim: u32,
    /// Texts are truncated to this many tokens.
    pub max_tokens: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("could not read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// A manifest with its paths made absolute.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub manifest: Manifest,
    pub model: PathBuf,
    pub tokenizer: Option<PathBuf>,
}

impl ModelFiles {
    pub fn read(manifest_path: &Path) -> Result<Self, ManifestError> {
        let shown = manifest_path.display().to_string();
        let text =
            std::fs::read_to_string(manifest_path).map_err(|source| ManifestError::Read {
                path: shown.clone(),
                source,
            })?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|source| ManifestError::Parse {
                path: shown.clone(),
                source,
            })?;
        let invalid = |reason: &str| ManifestError::Invalid {
            path: shown.clone(),
            reason: reason.to_owned(),
        };
        if manifest.name.is_empty() || manifest.name.len() > 128 {
            return Err(invalid("name must be 1 to 128 bytes"));
        }
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let model = dir.join(&manifest.file);
        if !model.is_file() {
            return Err(invalid(&format!(
                "model file {} does not exist",
                model.display()
            )));
        }
        let tokenizer = manifest.tokenizer.as_ref().map(|t| dir.join(t));
        match manifest.task {
            Task::Embedding => {
                if tokenizer.as_ref().is_none_or(|t| !t.is_file()) {
                    return Err(invalid(
                        "an embedding model needs an existing `tokenizer` file",
                    ));
                }
                let spec = manifest.embedding.as_ref().ok_or_else(|| {
                    invalid("an embedding model needs `embedding: {dim, max_tokens}`")
                })?;
                if spec.dim == 0 || spec.max_tokens == 0 {
                    return Err(invalid("embedding dim and max_tokens must be positive"));
                }
            }
            Task::Tensor => {
                let spec = manifest.tensor.as_ref().ok_or_else(|| {
                    invalid("a tensor model needs `tensor: {inputs: [...], outputs: [...]}`")
                })?;
                if spec.inputs.is_empty() || spec.outputs.is_empty() {
                    return Err(invalid("a tensor model needs inputs and outputs"));
                }
                if let Some(i) = spec.inputs.iter().find(|i| {
                    !matches!(i.dtype.as_str(), "f32" | "i64")
                        || i.shape.iter().any(|&d| d < -1 || d == 0)
                }) {
                    return Err(invalid(&format!(
                        "input {}: dtype must be f32 or i64 and each dimension -1 or positive",
                        i.name
                    )));
                }
            }
            Task::TextGeneration => {
                if tokenizer.as_ref().is_none_or(|t| !t.is_file()) {
                    return Err(invalid(
                        "a text generation model needs an existing `tokenizer` file",
                    ));
                }
                if let Some(t) = manifest
                    .generation
                    .as_ref()
                    .and_then(|g| g.chat_template.as_ref())
                {
                    if [&t.system, &t.user, &t.assistant]
                        .iter()
                        .any(|line| !line.contains("{content}"))
                    {
                        return Err(invalid(
                            "each chat_template line (system, user, assistant) needs `{content}`",
                        ));
                    }
                }
            }
        }
        Ok(ModelFiles {
            manifest,
            model,
            tokenizer,
        })
    }

    /// Every model under `dir`: each sub-directory holding a `manifest.json`.
    /// Sub-directories without one are skipped; a broken manifest is an error.
    pub fn scan(dir: &Path) -> Result<Vec<Self>, ManifestError> {
        let entries = std::fs::read_dir(dir).map_err(|source| ManifestError::Read {
            path: dir.display().to_string(),
            source,
        })?;
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join("manifest.json").is_file())
            .collect();
        dirs.sort();
        dirs.iter()
            .map(|d| Self::read(&d.join("manifest.json")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_dir(tag: &str, manifest: &str, files: &[&str]) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("infernet-manifest-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("m");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("manifest.json"), manifest).unwrap();
        for f in files {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        std::fs::create_dir_all(root.join("not-a-model")).unwrap();
        root
    }

    const GOOD: &str = r#"{"name": "m", "task": "embedding", "file": "model.pt",
        "tokenizer": "tokenizer.json", "price_msat": 5, "embedding": {"dim": 4, "max_tokens": 8}}"#;

    #[test]
    fn directories_with_a_manifest_are_models_and_others_are_skipped() {
        let root = model_dir("good", GOOD, &["model.pt", "tokenizer.json"]);
        let found = ModelFiles::scan(&root).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].manifest.price_msat, MilliSats(5));
        assert!(found[0].model.ends_with("m/model.pt"));
    }

    #[test]
    fn missing_files_and_unknown_keys_are_reported() {
        let root = model_dir("nofile", GOOD, &["tokenizer.json"]);
        assert!(matches!(
            ModelFiles::scan(&root),
            Err(ManifestError::Invalid { .. })
        ));
        let root = model_dir("notok", GOOD, &["model.pt"]);
        assert!(matches!(
            ModelFiles::scan(&root),
            Err(ManifestError::Invalid { .. })
        ));
        let typo = GOOD.replace("\"price_msat\"", "\"price\"");
        let root = model_dir("typo", &typo, &["model.pt", "tokenizer.json"]);
        assert!(matches!(
            ModelFiles::scan(&root),
            Err(ManifestError::Parse { .. })
        ));
    }

    #[test]
    fn a_chat_renders_through_the_template() {
        let t = ChatTemplate {
            system: "S: {content}\n".into(),
            user: "U: {content}\n".into(),
            assistant: "A: {content}\n".into(),
            assistant_start: "A:".into(),
        };
        let msg = |role, content: &str| wire::jobs::ChatMessage {
            role,
            content: content.into(),
        };
        assert_eq!(
            t.render(&[
                msg(Role::System, "be brief"),
                msg(Role::User, "hi"),
                msg(Role::Assistant, "hello"),
                msg(Role::User, "bye")
            ]),
            "S: be brief\nU: hi\nA: hello\nU: bye\nA:"
        );
    }
}

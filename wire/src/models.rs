//! Model distribution ([`MODEL_PROTOCOL`](crate::MODEL_PROTOCOL)): a node
//! that lacks a model fetches it by hash from a peer that has it.
//!
//! A model travels as a package of flat files: its TorchScript file (whose
//! SHA-256 is the model's hash), its `manifest.json` and its tokenizer. On
//! one stream the fetcher writes one [`ModelRequest`] and reads one
//! [`ModelReply`]; a `Data` reply is followed by exactly `len` raw bytes.
//! Reading from an offset is what makes a fetch resumable.

use serde::{Deserialize, Serialize};

use crate::{ModelHash, Sha256Digest};

/// Most files in one package, and the longest file name.
pub const MAX_PACKAGE_FILES: usize = 16;
pub const MAX_FILE_NAME: usize = 128;
/// The largest file a fetcher accepts (a 70B model in fp16 is ~140 GB).
pub const MAX_FILE_BYTES: u64 = 512 << 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum ModelRequest {
    /// Which files make up the model.
    Describe { model: ModelHash },
    /// A file's bytes from `offset` to its end.
    Read {
        model: ModelHash,
        file: String,
        offset: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum ModelReply {
    Package {
        files: Vec<PackageFile>,
    },
    /// `len` raw bytes of the file, starting at `offset`, follow this frame.
    Data {
        offset: u64,
        len: u64,
    },
    NotFound {
        message: String,
    },
}

/// One file of a model package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageFile {
    pub name: String,
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// A file name that is safe to create in a model directory: no path
/// separators, not hidden, not a partial download, not too long.
pub fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FILE_NAME
        && !name.starts_with('.')
        && !name.ends_with(".part")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Why a package listing is not the model it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    #[error("a package has 1 to {MAX_PACKAGE_FILES} files, this one {0}")]
    FileCount(usize),
    #[error("unsafe file name {0:?}")]
    UnsafeName(String),
    #[error("{name} is {size} bytes; at most {MAX_FILE_BYTES}")]
    TooLarge { name: String, size: u64 },
    #[error("{0} is listed twice")]
    Duplicate(String),
    #[error("the package has no manifest.json")]
    NoManifest,
    #[error("no file in the package hashes to {0}")]
    NoModelFile(ModelHash),
}

/// Checks a package listing against the model it claims to be: safe names,
/// bounded sizes, a manifest, and exactly the model file hashing to `model`.
pub fn check_package(model: &ModelHash, files: &[PackageFile]) -> Result<(), PackageError> {
    if files.is_empty() || files.len() > MAX_PACKAGE_FILES {
        return Err(PackageError::FileCount(files.len()));
    }
    for (i, f) in files.iter().enumerate() {
        if !is_safe_file_name(&f.name) {
            return Err(PackageError::UnsafeName(f.name.clone()));
        }
        if f.size > MAX_FILE_BYTES {
            return Err(PackageError::TooLarge {
                name: f.name.clone(),
                size: f.size,
            });
        }
        if files[..i].iter().any(|g| g.name == f.name) {
            return Err(PackageError::Duplicate(f.name.clone()));
        }
    }
    if !files.iter().any(|f| f.name == "manifest.json") {
        return Err(PackageError::NoManifest);
    }
    if !files.iter().any(|f| &f.sha256 == model) {
        return Err(PackageError::NoModelFile(*model));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, body: &[u8]) -> PackageFile {
        PackageFile {
            name: name.into(),
            size: body.len() as u64,
            sha256: Sha256Digest::of(body),
        }
    }

    #[test]
    fn packages_must_hold_the_model_and_a_manifest_under_safe_names() {
        let model = Sha256Digest::of(b"weights");
        let good = vec![file("model.pt", b"weights"), file("manifest.json", b"{}")];
        assert_eq!(check_package(&model, &good), Ok(()));
        assert!(check_package(&Sha256Digest::of(b"other"), &good).is_err());
        assert!(check_package(&model, &good[..1]).is_err());
        for bad in ["../etc/passwd", "a/b", ".hidden", "x.part", "", "ü"] {
            let mut files = good.clone();
            files.push(file(bad, b"x"));
            assert!(check_package(&model, &files).is_err(), "{bad:?}");
        }
        let mut twice = good.clone();
        twice.push(file("model.pt", b"x"));
        assert!(check_package(&model, &twice).is_err());
    }
}

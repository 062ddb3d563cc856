//! Model distribution over [`wire::MODEL_PROTOCOL`]: serving the models a
//! process has, and fetching one by hash into a directory: file by file, in
//! bounded reads, resumable from a `.part` file, each file checked against
//! its SHA-256 before it takes its final name.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use sha2::{Digest, Sha256};
use wire::models::{check_package, ModelReply, ModelRequest, PackageFile};
use wire::{ModelHash, Sha256Digest};

use crate::framing;
use crate::NetworkError;

const FRAME_BYTES: u64 = 64 * 1024;
const CHUNK: usize = 256 * 1024;
/// A stream that moves no byte for this long is given up (resumable).
const STALL: Duration = Duration::from_secs(30);
const MAX_SERVING: usize = 32;

fn protocol() -> StreamProtocol {
    StreamProtocol::new(wire::MODEL_PROTOCOL)
}

/// What a process can hand out.
pub trait ModelSource: Send + Sync + 'static {
    /// The files of `model`, if this process has it.
    fn describe(&self, model: &ModelHash) -> Option<Vec<PackageFile>>;
    /// A reader at `offset` of one of those files.
    fn open(
        &self,
        model: &ModelHash,
        file: &str,
        offset: u64,
    ) -> std::io::Result<Box<dyn Read + Send>>;
}

/// Models that live as flat files in directories: each model's hash maps
/// to its directory and the files in it that make up its package.
#[derive(Debug, Default)]
pub struct DirSource {
    models: Vec<(ModelHash, PathBuf, Vec<PackageFile>)>,
}

impl DirSource {
    /// Adds the model whose TorchScript file `model_file` (already hashed:
    /// its digest is `model`) and other files `others` sit in `dir`; only
    /// the others are hashed here.
    pub fn add(
        &mut self,
        model: ModelHash,
        dir: &Path,
        model_file: &str,
        others: &[&str],
    ) -> std::io::Result<()> {
        let entry = |name: &str, sha256: Option<Sha256Digest>| {
            let path = dir.join(name);
            Ok::<_, std::io::Error>(PackageFile {
                name: name.to_owned(),
                size: std::fs::metadata(&path)?.len(),
                sha256: match sha256 {
                    Some(digest) => digest,
                    None => hash_file(&path)?,
                },
            })
        };
        let mut files = vec![entry(model_file, Some(model))?];
        for name in others {
            files.push(entry(name, None)?);
        }
        check_package(&model, &files)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.models.push((model, dir.to_owned(), files));
        Ok(())
    }
}

impl ModelSource for DirSource {
    fn describe(&self, model: &ModelHash) -> Option<Vec<PackageFile>> {
        self.models
            .iter()
            .find(|(m, _, _)| m == model)
            .map(|(_, _, f)| f.clone())
    }

    fn open(
        &self,
        model: &ModelHash,
        file: &str,
        offset: u64,
    ) -> std::io::Result<Box<dyn Read + Send>> {
        let (_, dir, _) = self
            .models
            .iter()
            .find(|(m, _, files)| m == model && files.iter().any(|f| f.name == file))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        let mut f = std::fs::File::open(dir.join(file))?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(f))
    }
}

pub(crate) fn serve(
    mut control: libp2p_stream::Control,
    source: Arc<dyn ModelSource>,
) -> Result<(), NetworkError> {
    let mut incoming = control
        .accept(protocol())
        .map_err(|e| NetworkError::Transport(e.to_string()))?;
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_SERVING));
    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "too many model transfers; closing one");
                continue;
            };
            let source = source.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, source).await {
                    tracing::debug!(%peer, error = %e, "model transfer ended early");
                }
                drop(permit);
            });
        }
    });
    Ok(())
}

async fn answer(
    mut stream: libp2p::Stream,
    source: Arc<dyn ModelSource>,
) -> Result<(), NetworkError> {
    let request = tokio::time::timeout(
        STALL,
        framing::read::<ModelRequest, _>(&mut stream, FRAME_BYTES),
    )
    .await
    .map_err(|_| NetworkError::Timeout)?
    .map_err(|e| NetworkError::Protocol(e.to_string()))?;
    match request {
        None => return Ok(()),
        Some(ModelRequest::Describe { model }) => {
            let r = match source.describe(&model) {
                Some(files) => ModelReply::Package { files },
                None => ModelReply::NotFound {
                    message: format!("no model {model} here"),
                },
            };
            write(&mut stream, &r).await?;
        }
        Some(ModelRequest::Read {
            model,
            file,
            offset,
        }) => {
            let size = source
                .describe(&model)
                .and_then(|files| files.into_iter().find(|f| f.name == file))
                .map(|f| f.size);
            let opened = match size {
                Some(size) if offset <= size => source
                    .open(&model, &file, offset)
                    .map(|r| (r, size - offset))
                    .map_err(|e| e.to_string()),
                Some(size) => Err(format!("offset {offset} is past the end ({size})")),
                None => Err(format!("no file {file:?} in model {model}")),
            };
            let (mut reader, len) = match opened {
                Ok(o) => o,
                Err(message) => {
                    return write(&mut stream, &ModelReply::NotFound { message }).await;
                }
            };
            write(&mut stream, &ModelReply::Data { offset, len }).await?;
            let mut left = len;
            let mut buf = vec![0u8; CHUNK];
            while left > 0 {
                let (r, b, n) = tokio::task::spawn_blocking(move || {
                    let n = reader.read(&mut buf);
                    (reader, buf, n)
                })
                .await
                .map_err(|e| NetworkError::Transport(e.to_string()))?;
                (reader, buf) = (r, b);
                let n = match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n.min(usize::try_from(left).unwrap_or(usize::MAX)),
                };
                tokio::time::timeout(STALL, stream.write_all(&buf[..n]))
                    .await
                    .map_err(|_| NetworkError::Timeout)?
                    .map_err(|_| NetworkError::ConnectionClosed)?;
                left -= n as u64;
            }
        }
    }
    let _ = stream.close().await;
    Ok(())
}

async fn write(stream: &mut libp2p::Stream, reply: &ModelReply) -> Result<(), NetworkError> {
    framing::write(stream, reply, FRAME_BYTES)
        .await
        .map_err(|e| NetworkError::Protocol(e.to_string()))
}

/// How a fetch is going, for progress bars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchProgress {
    pub file: String,
    /// Bytes of all files on disk so far, and in total.
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("{0}")]
    NotFound(String),
    #[error("bad package: {0}")]
    BadPackage(#[from] wire::models::PackageError),
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
    #[error("{file} does not match its hash (expected {expected}, got {actual}); the download was discarded")]
    HashMismatch {
        file: String,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error("the transfer of {file} stopped at byte {at} of {size}; fetching again resumes there")]
    Interrupted { file: String, at: u64, size: u64 },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Fetches `model` from `peer` into `dir` (created if need be): each file
/// lands as `<name>.part`, resumes from there, and is renamed to `<name>`
/// only once its SHA-256 matches. Files already complete are kept. With
/// `max_rate` (bytes per second) the download is paced to stay under it.
pub(crate) async fn fetch(
    control: libp2p_stream::Control,
    peer: PeerId,
    model: ModelHash,
    dir: &Path,
    max_rate: Option<u64>,
    mut progress: impl FnMut(FetchProgress),
) -> Result<Vec<PackageFile>, FetchError> {
    let paced_from = std::time::Instant::now();
    let mut paced_bytes = 0u64;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| FetchError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let files = match request(control.clone(), peer, &ModelRequest::Describe { model }).await? {
        (ModelReply::Package { files }, _) => files,
        (ModelReply::NotFound { message }, _) => return Err(FetchError::NotFound(message)),
        (other, _) => {
            return Err(FetchError::UnexpectedReply(format!(
                "expected a package, got {other:?}"
            )))
        }
    };
    check_package(&model, &files)?;
    let total: u64 = files.iter().map(|f| f.size).sum();
    let mut done_before = 0u64;
    for f in &files {
        let target = dir.join(&f.name);
        if target.is_file() && hash_file(&target).map_err(io(&target))? == f.sha256 {
            done_before += f.size;
            progress(FetchProgress {
                file: f.name.clone(),
                done: done_before,
                total,
            });
            continue;
        }
        let part = dir.join(format!("{}.part", f.name));
        let mut have = std::fs::metadata(&part).map_or(0, |m| m.len());
        if have > f.size {
            have = 0;
        }
        if have < f.size {
            let read = ModelRequest::Read {
                model,
                file: f.name.clone(),
                offset: have,
            };
            let (reply, mut stream) = request(control.clone(), peer, &read).await?;
            let len = match reply {
                ModelReply::Data { offset, len } if offset == have && have + len == f.size => len,
                ModelReply::NotFound { message } => return Err(FetchError::NotFound(message)),
                other => {
                    return Err(FetchError::UnexpectedReply(format!(
                        "asked for {} from byte {have}, got {other:?}",
                        f.name
                    )))
                }
            };
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&part)
                .map_err(io(&part))?;
            out.set_len(have).map_err(io(&part))?;
            let mut left = len;
            let mut buf = vec![0u8; CHUNK];
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = match tokio::time::timeout(STALL, stream.read(&mut buf[..want])).await {
                    Ok(Ok(n)) if n > 0 => n,
                    _ => break,
                };
                out.write_all(&buf[..n]).map_err(io(&part))?;
                left -= n as u64;
                have += n as u64;
                if let Some(rate) = max_rate.filter(|r| *r > 0) {
                    paced_bytes += n as u64;
                    let due = Duration::from_secs_f64(paced_bytes as f64 / rate as f64);
                    let ahead = due.saturating_sub(paced_from.elapsed());
                    if !ahead.is_zero() {
                        tokio::time::sleep(ahead).await;
                    }
                }
                progress(FetchProgress {
                    file: f.name.clone(),
                    done: done_before + have,
                    total,
                });
            }
            out.flush().map_err(io(&part))?;
            let _ = stream.close().await;
            if have < f.size {
                return Err(FetchError::Interrupted {
                    file: f.name.clone(),
                    at: have,
                    size: f.size,
                });
            }
        }
        let actual = hash_file(&part).map_err(io(&part))?;
        if actual != f.sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(FetchError::HashMismatch {
                file: f.name.clone(),
                expected: f.sha256,
                actual,
            });
        }
        std::fs::rename(&part, &target).map_err(io(&target))?;
        done_before += f.size;
    }
    Ok(files)
}

/// Opens a stream, writes `req`, reads the reply frame; the stream stays
/// open for the raw bytes of a `Data` reply.
async fn request(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    req: &ModelRequest,
) -> Result<(ModelReply, libp2p::Stream), NetworkError> {
    let exchange = async {
        let mut stream = crate::open_stream(&mut control, peer, protocol()).await?;
        framing::write(&mut stream, req, FRAME_BYTES)
            .await
            .map_err(|e| NetworkError::Protocol(e.to_string()))?;
        let reply = framing::read::<ModelReply, _>(&mut stream, FRAME_BYTES)
            .await
            .map_err(|e| NetworkError::Protocol(e.to_string()))?
            .ok_or(NetworkError::ConnectionClosed)?;
        Ok((reply, stream))
    };
    tokio::time::timeout(STALL, exchange)
        .await
        .map_err(|_| NetworkError::Timeout)?
}

/// SHA-256 of a file, read in chunks.
pub fn hash_file(path: &Path) -> std::io::Result<Sha256Digest> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Sha256Digest::from_bytes(hasher.finalize().into()))
}

//! Model distribution: resumable, hash-checked fetches, with faults.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::*;
use crate::models::{DirSource, FetchError, ModelSource};
use wire::models::PackageFile;

/// Real files, served with faults on demand: a transfer of one file cut
/// short, or a flipped byte. Records the offsets it was asked for.
struct Faulty {
    inner: DirSource,
    cut: Mutex<Option<(String, u64)>>,
    flip: Mutex<Option<String>>,
    reads: Mutex<Vec<(String, u64)>>,
}

struct Flip(Box<dyn Read + Send>, bool);

impl Read for Flip {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        if n > 0 && !self.1 {
            buf[0] ^= 0xff;
            self.1 = true;
        }
        Ok(n)
    }
}

impl ModelSource for Faulty {
    fn describe(&self, model: &wire::ModelHash) -> Option<Vec<PackageFile>> {
        self.inner.describe(model)
    }
    fn open(
        &self,
        model: &wire::ModelHash,
        file: &str,
        offset: u64,
    ) -> std::io::Result<Box<dyn Read + Send>> {
        self.reads.lock().unwrap().push((file.to_owned(), offset));
        let r = self.inner.open(model, file, offset)?;
        let mut cut = self.cut.lock().unwrap();
        if cut.as_ref().is_some_and(|(f, _)| f == file) {
            let (_, n) = cut.take().unwrap();
            return Ok(Box::new(r.take(n)));
        }
        if self.flip.lock().unwrap().as_deref() == Some(file) {
            return Ok(Box::new(Flip(r, false)));
        }
        Ok(r)
    }
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("infernet-fetch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A model of three files, the weights 3 MiB of varied bytes.
fn model_files(dir: &Path) -> (wire::ModelHash, Vec<u8>) {
    let weights: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("model.pt"), &weights).unwrap();
    std::fs::write(dir.join("manifest.json"), br#"{"name": "m"}"#).unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
    (Sha256Digest::of(&weights), weights)
}

async fn provider(source: Arc<Faulty>) -> (Peer, Multiaddr) {
    let provider = spawn(false, vec![]).await;
    provider.client.serve_models(source).unwrap();
    let addr = addr_with(&provider.client.listen_addrs().await.unwrap(), "tcp");
    (provider, addr)
}

fn faulty(dir: &Path, model: wire::ModelHash) -> Arc<Faulty> {
    let mut inner = DirSource::default();
    inner
        .add(model, dir, "model.pt", &["manifest.json", "tokenizer.json"])
        .unwrap();
    Arc::new(Faulty {
        inner,
        cut: Mutex::new(None),
        flip: Mutex::new(None),
        reads: Mutex::new(Vec::new()),
    })
}

#[tokio::test]
async fn an_interrupted_fetch_resumes_where_it_stopped_and_is_verified() {
    let src = temp("src");
    let (model, weights) = model_files(&src);
    let source = faulty(&src, model);
    *source.cut.lock().unwrap() = Some(("model.pt".into(), 1 << 20));
    let (provider, addr) = provider(source.clone()).await;
    let fetcher = spawn(false, vec![]).await;
    let peer = provider.key.public().to_peer_id();
    let dest = temp("dest");

    let first = fetcher
        .client
        .fetch_model(peer, vec![addr.clone()], model, &dest, None, |_| {})
        .await;
    match first {
        Err(FetchError::Interrupted { file, at, size }) => {
            assert_eq!(file, "model.pt");
            assert_eq!(at, 1 << 20);
            assert_eq!(size, 3 << 20);
        }
        other => panic!("expected an interrupted transfer, got {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(dest.join("model.pt.part")).unwrap().len(),
        1 << 20
    );
    assert!(
        !dest.join("model.pt").exists(),
        "no final name before the hash is checked"
    );

    let mut last = None;
    let files = fetcher
        .client
        .fetch_model(peer, vec![addr], model, &dest, None, |p| last = Some(p))
        .await
        .unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(std::fs::read(dest.join("model.pt")).unwrap(), weights);
    assert!(!dest.join("model.pt.part").exists());
    let last = last.unwrap();
    assert_eq!(last.done, last.total);
    let model_reads: Vec<u64> = source
        .reads
        .lock()
        .unwrap()
        .iter()
        .filter(|(f, _)| f == "model.pt")
        .map(|(_, o)| *o)
        .collect();
    assert_eq!(model_reads, vec![0, 1 << 20], "the second transfer resumed");
}

#[tokio::test]
async fn a_corrupted_chunk_fails_the_hash_check_and_is_discarded() {
    let src = temp("src-corrupt");
    let (model, weights) = model_files(&src);
    let source = faulty(&src, model);
    *source.flip.lock().unwrap() = Some("model.pt".into());
    let (provider, addr) = provider(source.clone()).await;
    let fetcher = spawn(false, vec![]).await;
    let peer = provider.key.public().to_peer_id();
    let dest = temp("dest-corrupt");

    let bad = fetcher
        .client
        .fetch_model(peer, vec![addr.clone()], model, &dest, None, |_| {})
        .await;
    match bad {
        Err(FetchError::HashMismatch { file, expected, .. }) => {
            assert_eq!(file, "model.pt");
            assert_eq!(expected, model);
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    assert!(!dest.join("model.pt").exists());
    assert!(
        !dest.join("model.pt.part").exists(),
        "corrupt bytes are not kept"
    );

    // An honest transfer afterwards succeeds; unknown models are refused.
    *source.flip.lock().unwrap() = None;
    fetcher
        .client
        .fetch_model(peer, vec![addr.clone()], model, &dest, None, |_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(dest.join("model.pt")).unwrap(), weights);
    let unknown = fetcher
        .client
        .fetch_model(
            peer,
            vec![addr],
            Sha256Digest::of(b"nope"),
            &dest,
            None,
            |_| {},
        )
        .await;
    assert!(
        matches!(unknown, Err(FetchError::NotFound(_))),
        "{unknown:?}"
    );
}

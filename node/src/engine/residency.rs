//! Which models are in memory: a least-recently-used set under a byte
//! budget per device. Loading a model takes seconds to minutes, so it runs
//! outside the lock: while one model loads, jobs on every loaded model go
//! on, and a second caller of the same model waits for the same load.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OnceCell;
use wire::ModelHash;

/// One model: loaded (its cell is set) or loading (being set).
struct Entry<T> {
    hash: ModelHash,
    device: usize,
    bytes: u64,
    cell: Arc<OnceCell<Arc<T>>>,
    last_used: u64,
}

struct State<T> {
    entries: Vec<Entry<T>>,
    clock: u64,
}

/// The models in memory, each worth `bytes` on its `device`.
pub(crate) struct Residency<T> {
    state: Mutex<State<T>>,
    /// Bytes each device may hold.
    budget: u64,
}

impl<T> Residency<T> {
    pub(crate) fn new(budget: u64) -> Self {
        Residency {
            state: Mutex::new(State {
                entries: Vec::new(),
                clock: 0,
            }),
            budget,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding it; if something did, the list of
        // entries is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a model loaded before serving began.
    pub(crate) fn insert_loaded(&self, hash: ModelHash, device: usize, bytes: u64, model: T) {
        let mut state = self.lock();
        state.clock += 1;
        let last_used = state.clock;
        state.entries.push(Entry {
            hash,
            device,
            bytes,
            cell: Arc::new(OnceCell::new_with(Some(Arc::new(model)))),
            last_used,
        });
    }

    /// The model `hash`, loading it with `load` first if it is not in
    /// memory. Room is made on its device by forgetting the least recently
    /// used loaded models (a forgotten model that still runs jobs finishes
    /// them first: it lives as long as its callers hold it). The lock is
    /// not held while `load` runs.
    pub(crate) async fn get_or_load<E, F, Fut>(
        &self,
        hash: ModelHash,
        device: usize,
        bytes: u64,
        load: F,
    ) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let cell = {
            let mut state = self.lock();
            state.clock += 1;
            let now = state.clock;
            match state.entries.iter_mut().find(|e| e.hash == hash) {
                Some(entry) => {
                    entry.last_used = now;
                    entry.cell.clone()
                }
                None => {
                    self.make_room(&mut state, device, bytes);
                    let cell = Arc::new(OnceCell::new());
                    state.entries.push(Entry {
                        hash,
                        device,
                        bytes,
                        cell: cell.clone(),
                        last_used: now,
                    });
                    cell
                }
            }
        };
        match cell
            .get_or_try_init(|| async { load().await.map(Arc::new) })
            .await
        {
            Ok(model) => Ok(model.clone()),
            Err(e) => {
                // Forget the failed load, unless a later caller loaded it.
                self.lock()
                    .entries
                    .retain(|e| !Arc::ptr_eq(&e.cell, &cell) || e.cell.initialized());
                Err(e)
            }
        }
    }

    /// Forgets loaded models on `device`, least recently used first, until
    /// `bytes` more fit. Models still loading are never forgotten.
    fn make_room(&self, state: &mut State<T>, device: usize, bytes: u64) {
        loop {
            let used: u64 = state
                .entries
                .iter()
                .filter(|e| e.device == device)
                .map(|e| e.bytes)
                .sum();
            if used.saturating_add(bytes) <= self.budget {
                return;
            }
            let Some(victim) = state
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.device == device && e.cell.initialized())
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
            else {
                return;
            };
            let gone = state.entries.swap_remove(victim);
            tracing::info!(model = %gone.hash, "model unloaded to make room");
        }
    }

    /// Hashes of the loaded models, most recently used first.
    pub(crate) fn resident(&self) -> Vec<ModelHash> {
        let state = self.lock();
        let mut loaded: Vec<&Entry<T>> = state
            .entries
            .iter()
            .filter(|e| e.cell.initialized())
            .collect();
        loaded.sort_by_key(|e| std::cmp::Reverse(e.last_used));
        loaded.iter().map(|e| e.hash).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use tokio::sync::oneshot;
    use wire::Sha256Digest;

    use super::*;

    fn hash(name: &str) -> ModelHash {
        Sha256Digest::of(name.as_bytes())
    }

    async fn within<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("blocked behind another model's load")
    }

    #[tokio::test]
    async fn a_model_loading_does_not_hold_up_the_loaded_ones() {
        let residency = Arc::new(Residency::<&str>::new(100));
        residency.insert_loaded(hash("a"), 0, 10, "a");
        let (started_tx, started) = oneshot::channel();
        let (release, released) = oneshot::channel::<()>();
        let slow = {
            let residency = residency.clone();
            tokio::spawn(async move {
                residency
                    .get_or_load(hash("b"), 0, 10, || async move {
                        let _ = started_tx.send(());
                        let _ = released.await;
                        Ok::<_, ()>("b")
                    })
                    .await
            })
        };
        started.await.unwrap();
        // B is loading now; A answers at once, and so does a third model.
        let a = within(residency.get_or_load(hash("a"), 0, 10, || async {
            Err::<&str, _>("a is loaded: nothing may load it")
        }))
        .await;
        assert_eq!(*a.unwrap(), "a");
        let c =
            within(residency.get_or_load(hash("c"), 0, 10, || async { Ok::<_, ()>("c") })).await;
        assert_eq!(*c.unwrap(), "c");
        assert_eq!(residency.resident(), vec![hash("c"), hash("a")]);
        release.send(()).unwrap();
        assert_eq!(*within(slow).await.unwrap().unwrap(), "b");
        assert_eq!(residency.resident(), vec![hash("c"), hash("a"), hash("b")]);
    }

    #[tokio::test]
    async fn callers_of_a_model_that_is_loading_share_one_load() {
        let residency = Arc::new(Residency::<u32>::new(100));
        let loads = Arc::new(AtomicU32::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let residency = residency.clone();
                let loads = loads.clone();
                let mut released = released.clone();
                tokio::spawn(async move {
                    residency
                        .get_or_load(hash("m"), 0, 10, || async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            let _ = released.wait_for(|r| *r).await;
                            Ok::<_, ()>(7)
                        })
                        .await
                })
            })
            .collect();
        release.send(true).unwrap();
        for caller in callers {
            assert_eq!(*within(caller).await.unwrap().unwrap(), 7);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_least_recently_used_model_on_the_same_device_makes_room() {
        let residency = Residency::<&str>::new(10);
        let load = |v: &'static str| move || async move { Ok::<_, ()>(v) };
        residency
            .get_or_load(hash("a"), 0, 6, load("a"))
            .await
            .unwrap();
        // Another device has a budget of its own.
        residency
            .get_or_load(hash("b"), 1, 6, load("b"))
            .await
            .unwrap();
        residency
            .get_or_load(hash("c"), 0, 4, load("c"))
            .await
            .unwrap();
        assert_eq!(residency.resident(), vec![hash("c"), hash("b"), hash("a")]);
        // A is used again, so C is now the least recently used on device 0.
        residency
            .get_or_load(hash("a"), 0, 6, load("x"))
            .await
            .unwrap();
        residency
            .get_or_load(hash("d"), 0, 4, load("d"))
            .await
            .unwrap();
        assert_eq!(residency.resident(), vec![hash("d"), hash("a"), hash("b")]);
    }

    #[tokio::test]
    async fn a_failed_load_leaves_nothing_behind_and_can_be_retried() {
        let residency = Residency::<&str>::new(10);
        let failed = residency
            .get_or_load(hash("a"), 0, 6, || async { Err::<&str, _>("no such file") })
            .await;
        assert_eq!(failed.unwrap_err(), "no such file");
        assert!(residency.resident().is_empty());
        // Its bytes were not kept: another model still fits beside a retry.
        residency
            .get_or_load(hash("b"), 0, 4, || async { Ok::<_, &str>("b") })
            .await
            .unwrap();
        let a = residency
            .get_or_load(hash("a"), 0, 6, || async { Ok::<_, &str>("a") })
            .await;
        assert_eq!(*a.unwrap(), "a");
        assert_eq!(residency.resident(), vec![hash("a"), hash("b")]);
    }
}

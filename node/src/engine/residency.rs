//! Which models are in memory: a least-recently-used set under a byte
//! budget per device. Loading a model takes seconds to minutes, so it runs
//! on a task of its own, outside the lock: while one model loads, jobs on
//! every loaded model go on; every caller of that model waits for the same
//! load, and a caller that gives up (a job past its deadline) does not stop
//! it. The budget holds while models load: a model that needs room taken
//! by a model still loading waits for that load to end.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use wire::ModelHash;

/// Why a model could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResidencyError {
    /// The load failed; every caller waiting for it gets the reason.
    #[error("{0}")]
    LoadFailed(String),
}

/// A load's outcome as its waiters see it: `None` while it runs.
type Outcome<T> = Option<Result<Arc<T>, ResidencyError>>;

enum Slot<T> {
    Loading(watch::Receiver<Outcome<T>>),
    Ready(Arc<T>),
}

struct Entry<T> {
    hash: ModelHash,
    device: usize,
    bytes: u64,
    slot: Slot<T>,
    last_used: u64,
    /// Tells this entry from a later one for the same model.
    id: u64,
}

struct State<T> {
    entries: Vec<Entry<T>>,
    clock: u64,
}

/// The models in memory, each worth `bytes` on its `device`; cheap to
/// clone (clones share the set).
pub(crate) struct Residency<T> {
    state: Arc<Mutex<State<T>>>,
    /// Bytes each device may hold.
    budget: u64,
}

impl<T> Clone for Residency<T> {
    fn clone(&self) -> Self {
        Residency {
            state: self.state.clone(),
            budget: self.budget,
        }
    }
}

/// What a caller does next, decided under the lock.
enum Next<T> {
    Have(Arc<T>),
    Wait(watch::Receiver<Outcome<T>>),
    /// Room is held by models still loading: wait for one, then look again.
    WaitForRoom(watch::Receiver<Outcome<T>>),
    Load(watch::Sender<Outcome<T>>, u64),
}

impl<T: Send + Sync + 'static> Residency<T> {
    pub(crate) fn new(budget: u64) -> Self {
        Residency {
            state: Arc::new(Mutex::new(State {
                entries: Vec::new(),
                clock: 0,
            })),
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
        let (last_used, id) = (state.clock, state.clock);
        state.entries.push(Entry {
            hash,
            device,
            bytes,
            slot: Slot::Ready(Arc::new(model)),
            last_used,
            id,
        });
    }

    /// The model `hash`, loading it with `load` (on a task of its own)
    /// first if it is not in memory. Room is made on its device by
    /// forgetting the least recently used loaded models (a forgotten model
    /// that still runs jobs finishes them first: it lives as long as its
    /// callers hold it). No lock is held while a model loads, and dropping
    /// this future does not stop the load.
    pub(crate) async fn get_or_load<E, F, Fut>(
        &self,
        hash: ModelHash,
        device: usize,
        bytes: u64,
        load: F,
    ) -> Result<Arc<T>, ResidencyError>
    where
        E: std::fmt::Display,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let mut load = Some(load);
        loop {
            match self.next(hash, device, bytes) {
                Next::Have(model) => return Ok(model),
                Next::Wait(rx) => return wait(rx).await,
                Next::WaitForRoom(rx) => {
                    let _ = wait(rx).await;
                }
                Next::Load(tx, id) => {
                    let Some(load) = load.take() else {
                        return Err(ResidencyError::LoadFailed("loaded twice".into()));
                    };
                    let rx = tx.subscribe();
                    let loading = load();
                    let residency = self.clone();
                    tokio::spawn(async move {
                        let outcome = loading
                            .await
                            .map(Arc::new)
                            .map_err(|e| ResidencyError::LoadFailed(e.to_string()));
                        residency.finish(hash, id, &outcome);
                        let _ = tx.send(Some(outcome));
                    });
                    return wait(rx).await;
                }
            }
        }
    }

    /// Decides, under the lock, what a caller of `hash` does next.
    fn next(&self, hash: ModelHash, device: usize, bytes: u64) -> Next<T> {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        if let Some(entry) = state.entries.iter_mut().find(|e| e.hash == hash) {
            entry.last_used = now;
            return match &entry.slot {
                Slot::Ready(model) => Next::Have(model.clone()),
                Slot::Loading(rx) => Next::Wait(rx.clone()),
            };
        }
        if let Err(rx) = self.make_room(&mut state, device, bytes) {
            return Next::WaitForRoom(rx);
        }
        let (tx, rx) = watch::channel(None);
        state.entries.push(Entry {
            hash,
            device,
            bytes,
            slot: Slot::Loading(rx),
            last_used: now,
            id: now,
        });
        Next::Load(tx, now)
    }

    /// Forgets loaded models on `device`, least recently used first, until
    /// `bytes` more fit. If models still loading hold the room, answers one
    /// of their loads to wait for instead.
    fn make_room(
        &self,
        state: &mut State<T>,
        device: usize,
        bytes: u64,
    ) -> Result<(), watch::Receiver<Outcome<T>>> {
        loop {
            let used: u64 = state
                .entries
                .iter()
                .filter(|e| e.device == device)
                .map(|e| e.bytes)
                .sum();
            if used.saturating_add(bytes) <= self.budget {
                return Ok(());
            }
            let victim = state
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.device == device && matches!(e.slot, Slot::Ready(_)))
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    let gone = state.entries.swap_remove(i);
                    tracing::info!(model = %gone.hash, "model unloaded to make room");
                }
                None => {
                    // Only loading models are left on the device (a model
                    // larger than the whole budget is refused before this).
                    return match state.entries.iter().find_map(|e| match &e.slot {
                        Slot::Loading(rx) if e.device == device => Some(rx.clone()),
                        _ => None,
                    }) {
                        Some(rx) => Err(rx),
                        None => Ok(()),
                    };
                }
            }
        }
    }

    /// Publishes a load's outcome: the model is ready, or its entry goes.
    fn finish(&self, hash: ModelHash, id: u64, outcome: &Result<Arc<T>, ResidencyError>) {
        let mut state = self.lock();
        let Some(i) = state
            .entries
            .iter()
            .position(|e| e.hash == hash && e.id == id)
        else {
            return;
        };
        match outcome {
            Ok(model) => state.entries[i].slot = Slot::Ready(model.clone()),
            Err(_) => {
                state.entries.swap_remove(i);
            }
        }
    }

    /// Forgets the loaded models `which` picks (a model still running jobs
    /// finishes them: it lives as long as its callers hold it); models
    /// still loading are left alone. Answers the hashes forgotten.
    pub(crate) fn forget(&self, which: impl Fn(&ModelHash) -> bool) -> Vec<ModelHash> {
        let mut state = self.lock();
        let mut gone = Vec::new();
        state.entries.retain(|e| {
            let drop = matches!(e.slot, Slot::Ready(_)) && which(&e.hash);
            if drop {
                gone.push(e.hash);
            }
            !drop
        });
        gone
    }

    /// Hashes of the loaded models, most recently used first.
    pub(crate) fn resident(&self) -> Vec<ModelHash> {
        let state = self.lock();
        let mut loaded: Vec<&Entry<T>> = state
            .entries
            .iter()
            .filter(|e| matches!(e.slot, Slot::Ready(_)))
            .collect();
        loaded.sort_by_key(|e| std::cmp::Reverse(e.last_used));
        loaded.iter().map(|e| e.hash).collect()
    }
}

/// The outcome of a load, once it has one.
async fn wait<T>(mut rx: watch::Receiver<Outcome<T>>) -> Result<Arc<T>, ResidencyError> {
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome
            .clone()
            .unwrap_or_else(|| Err(ResidencyError::LoadFailed("no outcome".into()))),
        Err(_) => Err(ResidencyError::LoadFailed(
            "the loading task stopped without an outcome".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    impl<T: Send + Sync + 'static> Residency<T> {
        /// Bytes held on `device`, loading models included.
        fn used(&self, device: usize) -> u64 {
            self.lock()
                .entries
                .iter()
                .filter(|e| e.device == device)
                .map(|e| e.bytes)
                .sum()
        }
    }
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

    type Loading = std::pin::Pin<Box<dyn Future<Output = Result<&'static str, String>> + Send>>;

    /// A load that tells when it starts and ends when released.
    fn gated(
        value: &'static str,
    ) -> (
        impl FnOnce() -> Loading,
        oneshot::Receiver<()>,
        oneshot::Sender<()>,
    ) {
        let (started_tx, started) = oneshot::channel();
        let (release, released) = oneshot::channel::<()>();
        let load = move || -> Loading {
            Box::pin(async move {
                let _ = started_tx.send(());
                let _ = released.await;
                Ok(value)
            })
        };
        (load, started, release)
    }

    fn ready(
        value: &'static str,
    ) -> impl FnOnce() -> std::future::Ready<Result<&'static str, String>> {
        move || std::future::ready(Ok(value))
    }

    fn never() -> impl FnOnce() -> std::future::Ready<Result<&'static str, String>> {
        || std::future::ready(Err("this model is loaded: nothing may load it".to_owned()))
    }

    #[tokio::test]
    async fn a_model_loading_does_not_hold_up_the_loaded_ones() {
        let residency = Residency::<&str>::new(100);
        residency.insert_loaded(hash("a"), 0, 10, "a");
        let (load_b, started, release) = gated("b");
        let slow = {
            let residency = residency.clone();
            tokio::spawn(async move { residency.get_or_load(hash("b"), 0, 10, load_b).await })
        };
        started.await.unwrap();
        // B is loading now; A answers at once, and a third model loads.
        let a = within(residency.get_or_load(hash("a"), 0, 10, never())).await;
        assert_eq!(*a.unwrap(), "a");
        let c = within(residency.get_or_load(hash("c"), 0, 10, ready("c"))).await;
        assert_eq!(*c.unwrap(), "c");
        assert_eq!(residency.resident(), vec![hash("c"), hash("a")]);
        release.send(()).unwrap();
        assert_eq!(*within(slow).await.unwrap().unwrap(), "b");
        assert_eq!(residency.resident(), vec![hash("c"), hash("a"), hash("b")]);
    }

    #[tokio::test]
    async fn callers_of_a_model_that_is_loading_share_one_load() {
        let residency = Residency::<u32>::new(100);
        let loads = Arc::new(AtomicU32::new(0));
        let (release, released) = watch::channel(false);
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
                            Ok::<_, String>(7)
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
    async fn a_caller_that_gives_up_does_not_stop_the_load() {
        let residency = Residency::<&str>::new(100);
        let (load, started, release) = gated("m");
        let caller = {
            let residency = residency.clone();
            tokio::spawn(async move { residency.get_or_load(hash("m"), 0, 10, load).await })
        };
        started.await.unwrap();
        caller.abort();
        let _ = caller.await;
        release.send(()).unwrap();
        // The next caller gets the model that load made, not a new load.
        let m = within(residency.get_or_load(hash("m"), 0, 10, || async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err::<&str, _>("loaded a second time")
        }))
        .await;
        assert_eq!(*m.unwrap(), "m");
        assert_eq!(residency.resident(), vec![hash("m")]);
    }

    #[tokio::test]
    async fn the_budget_holds_while_models_load() {
        let residency = Residency::<&str>::new(10);
        let (load_a, started, release) = gated("a");
        let first = {
            let residency = residency.clone();
            tokio::spawn(async move { residency.get_or_load(hash("a"), 0, 6, load_a).await })
        };
        started.await.unwrap();
        // B does not fit beside A, which is still loading: it waits for A,
        // then A (now the least recently used) makes room.
        let most = Arc::new(AtomicU64::new(0));
        let second = {
            let residency = residency.clone();
            let most = most.clone();
            tokio::spawn(async move {
                let counted = residency.clone();
                residency
                    .get_or_load(hash("b"), 0, 6, || async move {
                        most.store(counted.used(0), Ordering::SeqCst);
                        Ok::<_, String>("b")
                    })
                    .await
            })
        };
        release.send(()).unwrap();
        assert_eq!(*within(first).await.unwrap().unwrap(), "a");
        assert_eq!(*within(second).await.unwrap().unwrap(), "b");
        assert_eq!(
            most.load(Ordering::SeqCst),
            6,
            "while B loaded, the device held B alone"
        );
        assert_eq!(residency.resident(), vec![hash("b")]);
    }

    #[tokio::test]
    async fn the_least_recently_used_model_on_the_same_device_makes_room() {
        let residency = Residency::<&str>::new(10);
        residency
            .get_or_load(hash("a"), 0, 6, ready("a"))
            .await
            .unwrap();
        // Another device has a budget of its own.
        residency
            .get_or_load(hash("b"), 1, 6, ready("b"))
            .await
            .unwrap();
        residency
            .get_or_load(hash("c"), 0, 4, ready("c"))
            .await
            .unwrap();
        assert_eq!(residency.resident(), vec![hash("c"), hash("b"), hash("a")]);
        // A is used again, so C is now the least recently used on device 0.
        residency
            .get_or_load(hash("a"), 0, 6, never())
            .await
            .unwrap();
        residency
            .get_or_load(hash("d"), 0, 4, ready("d"))
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
        assert_eq!(
            failed.unwrap_err(),
            ResidencyError::LoadFailed("no such file".into())
        );
        assert!(residency.resident().is_empty());
        // Its bytes were not kept: another model still fits beside a retry.
        residency
            .get_or_load(hash("b"), 0, 4, ready("b"))
            .await
            .unwrap();
        let a = residency.get_or_load(hash("a"), 0, 6, ready("a")).await;
        assert_eq!(*a.unwrap(), "a");
        assert_eq!(residency.resident(), vec![hash("a"), hash("b")]);
    }

    #[tokio::test]
    async fn a_forgotten_model_frees_its_room_and_loads_again_on_use() {
        let r: Residency<&'static str> = Residency::new(100);
        r.insert_loaded(hash("a"), 0, 60, "a");
        r.insert_loaded(hash("b"), 0, 40, "b");
        let held = within(r.get_or_load(hash("a"), 0, 60, never()))
            .await
            .unwrap();
        assert_eq!(r.forget(|h| *h == hash("a")), vec![hash("a")]);
        assert_eq!(r.resident(), vec![hash("b")]);
        assert_eq!(*held, "a", "a caller still holding it keeps it");
        assert_eq!(r.forget(|h| *h == hash("a")), Vec::<ModelHash>::new());
        let again = within(r.get_or_load(hash("a"), 0, 60, ready("a again")))
            .await
            .unwrap();
        assert_eq!(*again, "a again");
        assert_eq!(r.forget(|_| true).len(), 2);
        assert!(r.resident().is_empty());
    }
}

//! A model's queue: the jobs waiting for its worker, and how the worker
//! gathers them into batches.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use wire::jobs::JobInput;
use wire::MilliSats;

use super::{EngineError, Finished, LoadedModel};
use wire::registry::ModelOffer;

/// One job waiting for, or running on, a model's worker.
pub(crate) struct Work {
    pub(crate) input: JobInput,
    /// The most the job may cost.
    pub(crate) budget: MilliSats,
    pub(crate) enqueued: Instant,
    pub(crate) deadline: Instant,
    pub(crate) deltas: Option<mpsc::Sender<String>>,
    pub(crate) reply: oneshot::Sender<Result<Finished, EngineError>>,
}

impl Work {
    /// Nobody waits for the answer any more (cancelled, or timed out).
    pub(crate) fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    pub(crate) fn expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// Answers jobs that should not run: `None` when the job was abandoned
    /// or is past its deadline (an expired job is told so).
    pub(crate) fn keep(self, now: Instant) -> Option<Work> {
        if self.abandoned() {
            return None;
        }
        if self.expired(now) {
            let _ = self.reply.send(Err(EngineError::DeadlineExceeded));
            return None;
        }
        Some(self)
    }

    pub(crate) fn fail(self, e: EngineError) {
        let _ = self.reply.send(Err(e));
    }
}

/// Starts a model's worker thread, named `name`: `load` runs on it (tch
/// values never leave it) and gives the worker's state and the offer as
/// loading found it; then `serve` takes the queue until it closes. Returns
/// once loading has succeeded or failed.
pub(super) fn spawn_worker<M>(
    name: String,
    queue_depth: usize,
    load: impl FnOnce() -> Result<(M, ModelOffer), EngineError> + Send + 'static,
    serve: impl FnOnce(M, Receiver<Work>) + Send + 'static,
) -> Result<LoadedModel, EngineError> {
    let (queue, rx) = std::sync::mpsc::sync_channel::<Work>(queue_depth.max(1));
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || match load() {
            Ok((state, offer)) => {
                let _ = ready_tx.send(Ok(offer));
                serve(state, rx);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|e| EngineError::Load {
            path: name,
            reason: format!("could not start the worker thread: {e}"),
        })?;
    let offer = ready_rx.recv().map_err(|_| EngineError::WorkerGone)??;
    Ok(LoadedModel { offer, queue })
}

/// Gathers the next batch: blocks for the first job, then takes jobs while
/// `size` of the batch stays within `max` (a job that does not fit waits in
/// `held` for the next batch), waiting up to `wait` for more. `None` when
/// the queue is closed and empty.
pub(super) fn gather(
    rx: &Receiver<Work>,
    held: &mut Option<Work>,
    max: usize,
    wait: Duration,
    size: impl Fn(&Work) -> usize,
) -> Option<Vec<Work>> {
    let first = match held.take() {
        Some(w) => w,
        None => rx.recv().ok()?,
    };
    let mut total = size(&first);
    let mut batch = vec![first];
    let until = Instant::now() + wait;
    while total < max {
        let next = if wait.is_zero() {
            match rx.try_recv() {
                Ok(w) => w,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        } else {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(w) => w,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        };
        let n = size(&next);
        if total + n > max {
            *held = Some(next);
            break;
        }
        total += n;
        batch.push(next);
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(texts: usize) -> (Work, oneshot::Receiver<Result<Finished, EngineError>>) {
        let (reply, rx) = oneshot::channel();
        (
            Work {
                input: JobInput::Embedding {
                    texts: vec!["x".into(); texts],
                },
                budget: MilliSats(0),
                enqueued: Instant::now(),
                deadline: Instant::now() + Duration::from_secs(60),
                deltas: None,
                reply,
            },
            rx,
        )
    }

    fn texts(w: &Work) -> usize {
        match &w.input {
            JobInput::Embedding { texts } => texts.len(),
            JobInput::TextGeneration { .. } | JobInput::Tensor { .. } => 1,
        }
    }

    #[test]
    fn batches_take_what_is_queued_up_to_the_limit_and_hold_the_rest() {
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let mut keep = Vec::new();
        for n in [3, 4, 2, 1] {
            let (w, r) = work(n);
            keep.push(r);
            tx.send(w).unwrap();
        }
        let mut held = None;
        let b = gather(&rx, &mut held, 8, Duration::ZERO, texts).unwrap();
        assert_eq!(b.iter().map(texts).collect::<Vec<_>>(), vec![3, 4]);
        assert!(held.is_some(), "the job of 2 waits for the next batch");
        let b = gather(&rx, &mut held, 8, Duration::ZERO, texts).unwrap();
        assert_eq!(b.iter().map(texts).collect::<Vec<_>>(), vec![2, 1]);
        drop(tx);
        assert!(gather(&rx, &mut held, 8, Duration::ZERO, texts).is_none());
    }

    #[test]
    fn a_batch_waits_for_late_jobs_only_as_long_as_told() {
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let (w, _r1) = work(1);
        tx.send(w).unwrap();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let (w, r) = work(1);
            tx.send(w).unwrap();
            (r, tx)
        });
        let started = Instant::now();
        let mut held = None;
        let b = gather(&rx, &mut held, 2, Duration::from_secs(5), texts).unwrap();
        assert_eq!(b.len(), 2, "the late job joined the batch");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "full batches do not wait"
        );
        let _ = late.join();
    }

    #[test]
    fn cancelled_and_expired_jobs_are_dropped_before_they_run() {
        let (w, rx) = work(1);
        drop(rx);
        assert!(w.keep(Instant::now()).is_none());
        let (mut w, mut rx) = work(1);
        w.deadline = Instant::now();
        assert!(w.keep(Instant::now()).is_none());
        assert!(matches!(
            rx.try_recv(),
            Ok(Err(EngineError::DeadlineExceeded))
        ));
    }
}

//! A model's queue: the jobs waiting for its worker, highest bid first,
//! and how the worker gathers them into batches.

use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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
    /// What the job offers on top of its price to be served first.
    pub(crate) bid: MilliSats,
    /// Set when the consumer asks the job to stop early and settle: a
    /// generation ends with what it has.
    pub(crate) stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// A job waiting, in the queue's order: the highest bid first, and among
/// equal bids the one that came first.
struct Waiting {
    bid: MilliSats,
    seq: u64,
    work: Work,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.bid == other.bid && self.seq == other.seq
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // A max-heap: the larger is served first.
        self.bid
            .cmp(&other.bid)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

struct QueueState {
    waiting: BinaryHeap<Waiting>,
    next_seq: u64,
    /// The sending half is gone: the worker stops once the queue is empty.
    closed: bool,
}

struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    depth: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A worker that panicked holding the lock has failed its jobs
        // already; the state itself stays consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How a job entered the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queued {
    /// Waiting jobs with a lower bid that it went ahead of.
    pub(crate) overtook: usize,
}

/// The queue's sending half, held by the loaded model; dropping it closes
/// the queue.
pub(crate) struct QueueTx(Arc<Queue>);

/// The worker's half.
pub(crate) struct QueueRx(Arc<Queue>);

/// A queue holding at most `depth` waiting jobs.
pub(crate) fn queue(depth: usize) -> (QueueTx, QueueRx) {
    let q = Arc::new(Queue {
        state: Mutex::new(QueueState {
            waiting: BinaryHeap::new(),
            next_seq: 0,
            closed: false,
        }),
        ready: Condvar::new(),
        depth: depth.max(1),
    });
    (QueueTx(q.clone()), QueueRx(q))
}

impl QueueTx {
    /// Queues `work` in its bid's place; a full queue refuses it at once
    /// (and drops it: its caller has the answer).
    pub(crate) fn push(&self, work: Work) -> Result<Queued, EngineError> {
        let mut state = self.0.lock();
        if state.closed {
            return Err(EngineError::WorkerGone);
        }
        if state.waiting.len() >= self.0.depth {
            return Err(EngineError::Overloaded);
        }
        let overtook = state.waiting.iter().filter(|w| w.bid < work.bid).count();
        let seq = state.next_seq;
        state.next_seq += 1;
        state.waiting.push(Waiting {
            bid: work.bid,
            seq,
            work,
        });
        drop(state);
        self.0.ready.notify_one();
        Ok(Queued { overtook })
    }

    /// Jobs waiting now, and the highest bid among them.
    pub(crate) fn waiting(&self) -> (usize, Option<MilliSats>) {
        let state = self.0.lock();
        (state.waiting.len(), state.waiting.peek().map(|w| w.bid))
    }
}

impl Drop for QueueTx {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_all();
    }
}

impl QueueRx {
    /// The next job, waiting for one; `None` once the queue is closed and
    /// empty.
    pub(crate) fn recv(&self) -> Option<Work> {
        let mut state = self.0.lock();
        loop {
            if let Some(w) = state.waiting.pop() {
                return Some(w.work);
            }
            if state.closed {
                return None;
            }
            state = self.0.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The next job if one is waiting.
    pub(crate) fn try_recv(&self) -> Option<Work> {
        self.0.lock().waiting.pop().map(|w| w.work)
    }

    /// The next job, waiting at most `wait`.
    pub(crate) fn recv_timeout(&self, wait: Duration) -> Option<Work> {
        let until = Instant::now() + wait;
        let mut state = self.0.lock();
        loop {
            if let Some(w) = state.waiting.pop() {
                return Some(w.work);
            }
            let left = until.saturating_duration_since(Instant::now());
            if state.closed || left.is_zero() {
                return None;
            }
            state = self
                .0
                .ready
                .wait_timeout(state, left)
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

impl Work {
    /// Nobody waits for the answer any more (cancelled, or timed out).
    pub(crate) fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    pub(crate) fn expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// The consumer asked it to stop and answer with what it has.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
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
    serve: impl FnOnce(M, QueueRx) + Send + 'static,
) -> Result<LoadedModel, EngineError> {
    let (queue, rx) = queue(queue_depth);
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
    rx: &QueueRx,
    held: &mut Option<Work>,
    max: usize,
    wait: Duration,
    size: impl Fn(&Work) -> usize,
) -> Option<Vec<Work>> {
    let first = match held.take() {
        Some(w) => w,
        None => rx.recv()?,
    };
    let mut total = size(&first);
    let mut batch = vec![first];
    let until = Instant::now() + wait;
    while total < max {
        let next = if wait.is_zero() {
            rx.try_recv()
        } else {
            rx.recv_timeout(until.saturating_duration_since(Instant::now()))
        };
        let Some(next) = next else { break };
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
                bid: MilliSats(0),
                stop: None,
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
        let (tx, rx) = queue(16);
        let mut keep = Vec::new();
        for n in [3, 4, 2, 1] {
            let (w, r) = work(n);
            keep.push(r);
            tx.push(w).unwrap();
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
        let (tx, rx) = queue(16);
        let (w, _r1) = work(1);
        tx.push(w).unwrap();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let (w, r) = work(1);
            tx.push(w).unwrap();
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
    fn higher_bids_are_served_first_and_equal_bids_in_order() {
        let (tx, rx) = queue(3);
        let mut keep = Vec::new();
        let mut push = |texts: usize, bid: u64| {
            let (mut w, r) = work(texts);
            w.bid = MilliSats(bid);
            keep.push(r);
            tx.push(w)
        };
        assert_eq!(push(1, 0).unwrap().overtook, 0);
        assert_eq!(
            push(2, 0).unwrap().overtook,
            0,
            "an equal bid waits its turn"
        );
        assert_eq!(
            push(3, 500).unwrap().overtook,
            2,
            "a higher bid goes ahead of both"
        );
        assert!(
            matches!(push(4, 10_000), Err(EngineError::Overloaded)),
            "a full queue refuses, whatever the bid"
        );
        assert_eq!(tx.waiting(), (3, Some(MilliSats(500))));
        let order: Vec<usize> = std::iter::from_fn(|| rx.try_recv())
            .map(|w| texts(&w))
            .collect();
        assert_eq!(order, vec![3, 1, 2]);
        drop(tx);
        assert!(rx.recv().is_none(), "closed and empty: the worker stops");
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

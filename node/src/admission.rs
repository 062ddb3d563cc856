//! Whether the node takes new jobs. An operator may pause it (refuse new
//! jobs) or drain it (refuse new jobs, finish the running ones, e.g. before
//! maintenance); either way the job server refuses with `not_accepting`
//! and the node's ads say `accepting_jobs: false` at once, so that routing
//! goes elsewhere. The fleet commands drive it; until then the library
//! does ([`crate::RunningNode::admission`]).

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Takes jobs.
    Open,
    /// Refuses new jobs until resumed.
    Paused,
    /// Refuses new jobs; the running ones finish.
    Draining,
}

/// How many jobs the node holds now (running or queued): shared by the job
/// server, the advertiser, the heartbeats and the fleet link, which awaits
/// the moment a drain has nothing left to run. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ActiveJobs(Arc<watch::Sender<u32>>);

impl Default for ActiveJobs {
    fn default() -> Self {
        ActiveJobs(Arc::new(watch::Sender::new(0)))
    }
}

impl ActiveJobs {
    /// A job arrived: the number of jobs that were ahead of it.
    pub fn start(&self) -> u32 {
        let mut ahead = 0;
        self.0.send_modify(|n| {
            ahead = *n;
            *n = n.saturating_add(1);
        });
        ahead
    }

    /// A job ended.
    pub fn finish(&self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }

    pub fn count(&self) -> u32 {
        *self.0.borrow()
    }

    /// Returns once no job is held.
    pub async fn idle(&self) {
        let mut seen = self.0.subscribe();
        // The sender lives in `self`, so the wait cannot fail.
        let _ = seen.wait_for(|n| *n == 0).await;
    }
}

/// The node's admission state, shared by the job server and the
/// advertiser; cheap to clone.
#[derive(Debug, Clone)]
pub struct Gate {
    state: Arc<watch::Sender<Admission>>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new(Admission::Open)
    }
}

impl Gate {
    pub fn new(initial: Admission) -> Self {
        Gate {
            state: Arc::new(watch::Sender::new(initial)),
        }
    }

    pub fn set(&self, admission: Admission) {
        let changed = self.state.send_if_modified(|now| {
            let changed = *now != admission;
            *now = admission;
            changed
        });
        if changed {
            tracing::info!(?admission, "admission changed");
        }
    }

    pub fn get(&self) -> Admission {
        *self.state.borrow()
    }

    pub fn accepting(&self) -> bool {
        self.get() == Admission::Open
    }

    /// Sees every change.
    pub fn watch(&self) -> watch::Receiver<Admission> {
        self.state.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_returns_when_the_last_job_ends() {
        let active = ActiveJobs::default();
        active.idle().await;
        assert_eq!(active.start(), 0);
        assert_eq!(active.start(), 1);
        let waiter = tokio::spawn({
            let active = active.clone();
            async move { active.idle().await }
        });
        active.finish();
        assert!(!waiter.is_finished());
        active.finish();
        waiter.await.unwrap();
        assert_eq!(active.count(), 0);
    }

    #[tokio::test]
    async fn pausing_and_draining_stop_admission_and_are_seen_at_once() {
        let gate = Gate::default();
        let mut seen = gate.watch();
        assert!(gate.accepting());
        gate.set(Admission::Paused);
        seen.changed().await.unwrap();
        assert_eq!(*seen.borrow_and_update(), Admission::Paused);
        assert!(!gate.accepting());
        gate.set(Admission::Draining);
        assert!(!gate.clone().accepting(), "clones share the state");
        gate.set(Admission::Open);
        seen.changed().await.unwrap();
        assert_eq!(*seen.borrow_and_update(), Admission::Open);
        gate.set(Admission::Open);
        assert!(!seen.has_changed().unwrap(), "no change, no wake-up");
    }
}

//! What billing adds to a job, measured on the server's real path (for
//! `cargo bench -p server --bench billing`): the same job recorded and
//! ended with and without its money, in alternation, on an embedded
//! SurrealKV database with the server's durability settings; and how many
//! ledger movements per second the database takes, over many accounts and
//! over one busy account.
//!
//! With billing, a job's record takes its hold (under its account's book
//! lock) and its end pays its price to the node's operator, found from the
//! node's enrolment, and returns the rest. Without, the same statements
//! run with no movement: the job as it was recorded before the ledger.
//! The inference itself is the same either way and is left out.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wire::jobs::{JobEvent, JobInput, JobRecord, JobStatus};
use wire::registry::Task;
use wire::{AccountId, JobId, MilliSats, NodeId, UnixMillis};

use super::store::JobStore;
use crate::db::{Db, DbConfig};
use crate::enrolment::Enrolments;
use crate::ledger::{Ledger, Movement, Payee};

fn random_node() -> NodeId {
    p2p::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .into()
}

/// What [`billing`] measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Each job's record and end, without its money.
    pub unbilled: Vec<Duration>,
    /// The same, with its hold and capture.
    pub billed: Vec<Duration>,
    /// Movements applied by `workers` tasks, each on accounts of its own.
    pub spread: Throughput,
    /// The same number by `workers` tasks all on one account.
    pub one_account: Throughput,
}

/// Movements applied and how long they took.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub movements: usize,
    pub workers: usize,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn per_sec(&self) -> f64 {
        self.movements as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn job(now: UnixMillis, node: NodeId) -> JobRecord {
    JobRecord {
        id: JobId::from_random(uuid::Uuid::new_v4().into_bytes()),
        model: "all-minilm-l6-v2".into(),
        model_hash: wire::Sha256Digest::of(b"all-minilm-l6-v2"),
        task: Task::Embedding,
        node_id: node,
        status: JobStatus::Dispatched,
        input: JobInput::Embedding {
            texts: vec!["Infernet sells inference over a peer-to-peer network.".into()],
        },
        output: None,
        receipt: None,
        error: None,
        price_msat: MilliSats(0),
        max_price_msat: MilliSats(5_000),
        created_at: now,
        finished_at: None,
        events: vec![JobEvent {
            status: JobStatus::Dispatched,
            at: now,
            message: Some(format!("sent to {node}")),
        }],
        attempts: Vec::new(),
    }
}

fn ended(mut r: JobRecord) -> (JobRecord, JobEvent) {
    let now = UnixMillis::now();
    r.status = JobStatus::Succeeded;
    r.price_msat = MilliSats(1_000);
    r.finished_at = Some(now);
    let event = JobEvent {
        status: JobStatus::Succeeded,
        at: now,
        message: Some("12 ms compute".into()),
    };
    (r, event)
}

struct Bench {
    store: JobStore,
    ledger: Ledger,
    enrolments: Enrolments,
    owner: AccountId,
    node: NodeId,
}

impl Bench {
    async fn unbilled(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let r = job(UnixMillis::now(), self.node);
        let deadline = r.created_at.plus(Duration::from_secs(60));
        self.store
            .insert(&r, deadline, &self.owner, None, None)
            .await
            .map_err(|e| e.to_string())?;
        let (done, event) = ended(r);
        // No hold was taken: the end settles nothing.
        let nothing =
            Movement::release(&done.id, &self.owner, done.max_price_msat, done.created_at);
        self.store
            .finish(&done, &event, &nothing)
            .await
            .map_err(|e| e.to_string())?;
        Ok(started.elapsed())
    }

    async fn billed(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let r = job(UnixMillis::now(), self.node);
        let deadline = r.created_at.plus(Duration::from_secs(60));
        let hold = Movement::hold(&r.id, &self.owner, r.max_price_msat, r.created_at);
        {
            let _locked = self.ledger.lock(&[&hold]).await;
            self.store
                .insert(&r, deadline, &self.owner, None, Some(&hold))
                .await
                .map_err(|e| e.to_string())?;
        }
        let (done, event) = ended(r);
        let payee = match self
            .enrolments
            .operator_of(done.node_id)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(operator) => Payee::Operator(operator),
            None => Payee::Node(done.node_id),
        };
        let charge = Movement::charge(
            &done.id,
            &self.owner,
            done.max_price_msat,
            done.price_msat,
            &payee,
            0,
            UnixMillis::now(),
        )
        .map_err(|e| e.to_string())?;
        let _locked = self.ledger.lock(&[&charge]).await;
        self.store
            .finish(&done, &event, &charge)
            .await
            .map_err(|e| e.to_string())?;
        Ok(started.elapsed())
    }
}

/// `movements` credits by `workers` tasks; each task on its own accounts,
/// or all on `one` account.
async fn throughput(
    ledger: &Ledger,
    movements: usize,
    workers: usize,
    one: Option<AccountId>,
) -> Result<Throughput, String> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let ledger = ledger.clone();
        let one = one.clone();
        let n = movements / workers + usize::from(w < movements % workers);
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                let account = one
                    .clone()
                    .unwrap_or_else(|| AccountId::from_random(uuid::Uuid::new_v4().into_bytes()));
                ledger
                    .credit(&account, MilliSats(1_000), &format!("bench-{w}-{i}"), None)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(Throughput {
        movements,
        workers,
        elapsed: started.elapsed(),
    })
}

/// Runs the measurements on a fresh database in `dir`: `jobs` jobs each
/// way (after a warm-up), then `movements` movements by `workers` tasks.
pub async fn billing(
    dir: &Path,
    jobs: usize,
    movements: usize,
    workers: usize,
) -> Result<Report, String> {
    let db = Db::connect(&DbConfig {
        url: format!("surrealkv://{}", dir.display()),
        namespace: "bench".into(),
        database: "bench".into(),
        credentials: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    let ledger = Ledger::new(db.clone(), 0, false);
    let owner = AccountId::from_random([1; 16]);
    ledger
        .credit(&owner, MilliSats(u64::MAX / 4), "bench", None)
        .await
        .map_err(|e| e.to_string())?;
    let bench = Arc::new(Bench {
        store: JobStore::new(db.clone()),
        ledger: ledger.clone(),
        enrolments: Enrolments::new(db, random_node()),
        owner,
        node: random_node(),
    });
    for _ in 0..jobs.clamp(1, 10) {
        bench.unbilled().await?;
        bench.billed().await?;
    }
    let mut unbilled = Vec::with_capacity(jobs);
    let mut billed = Vec::with_capacity(jobs);
    for i in 0..jobs {
        // Alternating, so that neither side gets the quieter moments.
        if i % 2 == 0 {
            unbilled.push(bench.unbilled().await?);
            billed.push(bench.billed().await?);
        } else {
            billed.push(bench.billed().await?);
            unbilled.push(bench.unbilled().await?);
        }
    }
    let workers = workers.max(1);
    let spread = throughput(&ledger, movements, workers, None).await?;
    let one = AccountId::from_random([4; 16]);
    let one_account = throughput(&ledger, movements, workers, Some(one)).await?;
    Ok(Report {
        unbilled,
        billed,
        spread,
        one_account,
    })
}

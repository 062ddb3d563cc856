//! Jobs: choose a node, record the job, send it over libp2p, check the
//! node's receipt, and record how it ended.
//!
//! - `choose`: which node runs a job;
//! - `dispatch`: running a recorded job on its node;
//! - `store`: the `job` and `job_event` tables and all their SurrealQL;
//! - `http`: `POST /api/v1/jobs`, `GET /api/v1/jobs[/{id}]`.
//!
//! Every caller (the job API, the OpenAI API, the app) runs jobs through
//! one entry point, [`Jobs::start`].

#[doc(hidden)]
pub mod bench;
mod choose;
mod dispatch;
mod http;
mod limits;
mod store;

pub(crate) use http::{router, MAX_JOB_BODY};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;
use wire::accounts::ReceiptCheck;
use wire::api::ErrorBody;
use wire::jobs::{
    InputError, JobCursor, JobEvent, JobInput, JobPage, JobRecord, JobRequest, JobStatus,
    ReceiptError, RefusalCode,
};
use wire::registry::ModelOffer;
use wire::{AccountId, Caller, JobId, MilliSats, NodeId, UnixMillis};

use crate::accounts::{Accounts, SpendingLimits};
use crate::db::{Db, DbError};
use crate::enrolment::Enrolments;
use crate::ledger::{Book, Ledger, LedgerError, Movement};
use crate::registry::{Registry, RegistryError};
use choose::rank_nodes;
pub(crate) use store::JobStore;

/// Text a job may have waiting for a slow reader before the node's stream
/// waits too (and, behind it, the node's engine holds text back).
const TEXT_BUFFER: usize = 32;
/// How long after its deadline a job still dispatched counts as lost.
const LOST_AFTER: Duration = Duration::from_secs(30);
/// Rows from before deadlines were kept count as lost this long after
/// they were created: no job runs for an hour.
const LOST_WITHOUT_DEADLINE: Duration = Duration::from_secs(3600);
/// Tries of a job's final write before it is left to the reconciler.
const FINAL_WRITE_TRIES: u32 = 3;

/// Why a job could not run, or how it failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    #[error("model must be 1 to 128 bytes")]
    ModelName,
    #[error("pool: {0}")]
    Pool(String),
    #[error(transparent)]
    BadInput(#[from] InputError),
    /// The caller's balance cannot cover the job's budget.
    #[error(
        "insufficient funds: this job may cost up to {budget} and your balance is {balance}; \
         top up on the Wallet page or POST /api/v1/billing/topups, or set a lower max price"
    )]
    InsufficientFunds {
        budget: MilliSats,
        balance: MilliSats,
    },
    /// The API key's spending cap would be passed.
    #[error(
        "this API key's {period} spending cap is {cap}: {spent} is spent or held, and this job \
         may cost up to {budget}; raise the cap in Settings or set a lower max price"
    )]
    SpendingCap {
        period: &'static str,
        cap: MilliSats,
        spent: MilliSats,
        budget: MilliSats,
    },
    /// Too many jobs from one account or address: try again after this.
    #[error("too many jobs at once: try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("no node offers model `{0}`")]
    UnknownModel(String),
    #[error("{0}")]
    NoNodeAvailable(String),
    #[error("the node refused the job ({}): {message}", code.as_str())]
    NodeRefused { code: RefusalCode, message: String },
    #[error("could not reach the node: {0}")]
    NodeUnreachable(String),
    #[error("the node disconnected before finishing the job")]
    NodeDisconnected,
    #[error("the node did not answer within {0} s")]
    NodeTimeout(u64),
    /// The node broke the job protocol (e.g. output that does not add up).
    #[error("{0}")]
    NodeProtocol(String),
    #[error("the node's receipt is invalid: {0}")]
    BadReceipt(#[from] ReceiptError),
    /// A job that was recorded and then failed: its id, to read it back.
    #[error("{cause}")]
    Failed { job_id: JobId, cause: Box<JobError> },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] DbError),
    #[error(transparent)]
    Ledger(LedgerError),
    #[error("{0}")]
    Internal(String),
}

impl From<LedgerError> for JobError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Store(db) => JobError::Store(db),
            e => JobError::Ledger(e),
        }
    }
}

/// What to run a job on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Order<'a> {
    /// A model name or content hash.
    pub(crate) model: &'a str,
    /// Only this node.
    pub(crate) node: Option<NodeId>,
    /// Only nodes of this public pool.
    pub(crate) pool: Option<&'a str>,
    /// The most the consumer pays; without it, the most the input can cost
    /// on the chosen model.
    pub(crate) max_price: Option<MilliSats>,
    /// Offered on top of the price to jump a busy node's queue: held with
    /// the budget, charged only if the node says the job went ahead.
    pub(crate) bid: MilliSats,
    /// Whose job it is (only they may read it), and how they came: an API
    /// key's spending caps count its jobs.
    pub(crate) caller: &'a Caller,
}

/// A recorded job on its way: its record as dispatched, the text it
/// streams while it runs, and its end.
pub(crate) struct Started {
    pub(crate) record: JobRecord,
    text: mpsc::Receiver<String>,
    /// Whether someone reads the text as it streams: a reader that goes
    /// away then stops the job (it pays for what it got).
    streaming: Arc<AtomicBool>,
    end: JoinHandle<Result<JobRecord, JobError>>,
}

impl Started {
    /// How the job ended. (Its streamed text is not read: the record holds
    /// all of it.)
    pub(crate) async fn finish(self) -> Result<JobRecord, JobError> {
        self.streaming.store(false, Ordering::Relaxed);
        drop(self.text);
        Self::ended(self.end).await
    }

    /// The text stream and the end, for callers that forward the text.
    pub(crate) fn into_stream(
        self,
    ) -> (
        mpsc::Receiver<String>,
        impl std::future::Future<Output = Result<JobRecord, JobError>>,
    ) {
        (self.text, Self::ended(self.end))
    }

    async fn ended(end: JoinHandle<Result<JobRecord, JobError>>) -> Result<JobRecord, JobError> {
        end.await
            .map_err(|e| JobError::Internal(format!("the job's task failed: {e}")))?
    }
}

/// A job with its nodes ranked and its input built, not yet recorded.
struct Prepared {
    /// As recorded: sent to the first candidate.
    record: JobRecord,
    owner: AccountId,
    limits: SpendingLimits,
    /// Where the job may run, best first (the same model file on each):
    /// it moves to the next when one refuses, cannot be reached or sends
    /// nothing in time.
    candidates: Vec<Candidate>,
    request: JobRequest,
}

/// A node a job may run on, and where to dial it.
struct Candidate {
    node: NodeId,
    addrs: Vec<p2p::Multiaddr>,
}

/// The most nodes one job is tried on.
const MAX_ATTEMPTS: usize = 3;

/// Runs jobs and keeps their records; cheap to clone.
#[derive(Clone)]
pub(crate) struct Jobs {
    store: JobStore,
    registry: Registry,
    network: p2p::Client,
    timeout: Duration,
    /// How long a node may take to a job's first output before the job
    /// moves to the next node.
    first_output: Duration,
    ledger: Ledger,
    enrolments: Enrolments,
    accounts: Accounts,
    /// How fast jobs may come, per account and per client address.
    submissions: Arc<limits::Submissions>,
    /// Second opinions on some succeeded jobs (see `crate::verify`).
    verifier: Option<crate::verify::Verifier>,
}

/// How jobs run: how long they may take, how soon a node must answer,
/// and how fast they may come.
pub(crate) struct Pace {
    pub(crate) timeout: Duration,
    /// At most `timeout`.
    pub(crate) first_output: Duration,
    pub(crate) rates: crate::config::JobRates,
}

/// Why a job was not recorded.
enum NotRecorded {
    Ledger(LedgerError),
    Job(JobError),
}

impl Jobs {
    pub(crate) fn new(
        db: Db,
        registry: Registry,
        network: p2p::Client,
        pace: Pace,
        ledger: Ledger,
        enrolments: Enrolments,
        accounts: Accounts,
    ) -> Self {
        Jobs {
            store: JobStore::new(db),
            registry,
            network,
            timeout: pace.timeout,
            first_output: pace.first_output.min(pace.timeout),
            ledger,
            enrolments,
            accounts,
            submissions: Arc::new(limits::Submissions::new(pace.rates)),
            verifier: None,
        }
    }

    /// Succeeded jobs go to `verifier`, which checks some of them.
    pub(crate) fn checked_by(mut self, verifier: crate::verify::Verifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// One more job submitted from `ip` (the API's routes check this
    /// before anything else).
    pub(crate) fn submitted_from(&self, ip: std::net::IpAddr) -> Result<(), JobError> {
        self.submissions.ip(ip)
    }

    /// Jobs of `nodes` created from `since` to `until` (or, if `ids` is
    /// not empty, the jobs with those ids), for the fleet's statistics.
    pub(crate) async fn facts(
        &self,
        nodes: &[NodeId],
        since: UnixMillis,
        until: UnixMillis,
        ids: &[String],
    ) -> Result<Vec<JobFact>, JobError> {
        Ok(self.store.facts(nodes, since, until, ids).await?)
    }

    /// How many job records there are in each status (for `/metrics`).
    pub(crate) async fn count_by_status(&self) -> Result<Vec<(String, u64)>, JobError> {
        Ok(self.store.count_by_status().await?)
    }

    /// What jobs submitted with API key `key` since `since` cost or hold.
    pub(crate) async fn spent_by_key(
        &self,
        key: &str,
        since: UnixMillis,
    ) -> Result<MilliSats, JobError> {
        Ok(self.store.spent_by_key(key, since).await?)
    }

    /// Whether the job's budget fits its key's caps, with what the key's
    /// jobs spent (checked while the account's books are locked: the jobs
    /// of one account are recorded one at a time).
    async fn check_caps(&self, prepared: &Prepared) -> Result<(), JobError> {
        let Some((key, caps)) = &prepared.limits.caps else {
            return Ok(());
        };
        let budget = prepared.record.max_price_msat;
        let now = prepared.record.created_at;
        let today = UnixMillis(now.0 - now.0 % (24 * 3600 * 1000));
        for (period, cap, since) in [
            ("daily", caps.daily_cap_msat, today),
            ("total", caps.total_cap_msat, UnixMillis(0)),
        ] {
            let Some(cap) = cap else { continue };
            let spent = self.store.spent_by_key(key, since).await?;
            if spent.0.saturating_add(budget.0) > cap.0 {
                return Err(JobError::SpendingCap {
                    period,
                    cap,
                    spent,
                    budget,
                });
            }
        }
        Ok(())
    }

    /// Runs a job: chooses its node, builds its input for the chosen model
    /// with `input` (whose errors come back as they are, so that an API can
    /// word its own, e.g. naming the parameter), records it as dispatched
    /// and sends it. Nothing is stored when this fails.
    ///
    /// From the record on, the job lives on a task of its own: a caller who
    /// goes away (a closed connection, a closed page) cannot leave it
    /// half-recorded.
    pub(crate) async fn start<E, F>(&self, order: Order<'_>, input: F) -> Result<Started, E>
    where
        E: From<JobError>,
        F: FnOnce(&ModelOffer) -> Result<JobInput, E>,
    {
        self.submissions.account(&order.caller.account)?;
        let limits = self
            .accounts
            .spending_limits(order.caller)
            .await
            .map_err(|e| JobError::Internal(format!("reading the spending limits: {e}")))?;
        let order = Order {
            max_price: order.max_price.or(limits.default_max_price),
            ..order
        };
        let prepared = self.prepare(order, input, limits).await?;
        let budget = prepared.record.max_price_msat;
        let (recorded_tx, recorded) = oneshot::channel();
        let (text_tx, text) = mpsc::channel(TEXT_BUFFER);
        let streaming = Arc::new(AtomicBool::new(true));
        let reader_wanted = streaming.clone();
        let jobs = self.clone();
        let span = tracing::info_span!(
            "job",
            job_id = %prepared.record.id,
            peer_id = %prepared.record.node_id
        );
        let end = tokio::spawn(
            async move {
                let deadline = prepared.request.deadline;
                let hold = Movement::hold(
                    &prepared.record.id,
                    &prepared.owner,
                    prepared.record.max_price_msat,
                    prepared.record.created_at,
                );
                let locked = jobs.ledger.lock(&[&hold]).await;
                let inserted = match jobs.check_caps(&prepared).await {
                    Ok(()) => jobs
                        .store
                        .insert(
                            &prepared.record,
                            deadline,
                            &prepared.owner,
                            prepared.limits.caps.as_ref().map(|(k, _)| k.as_str()),
                            Some(&hold),
                        )
                        .await
                        .map_err(NotRecorded::Ledger),
                    Err(e) => Err(NotRecorded::Job(e)),
                };
                drop(locked);
                if let Err(e) = inserted {
                    let _ = recorded_tx.send(Err(e));
                    return Err(JobError::Internal("the job was not recorded".into()));
                }
                let _ = recorded_tx.send(Ok(prepared.record.clone()));
                jobs.run(prepared, text_tx, reader_wanted).await
            }
            .instrument(span),
        );
        let record = match recorded
            .await
            .map_err(|_| JobError::Internal("the job's task stopped".into()))?
        {
            Ok(record) => record,
            Err(NotRecorded::Job(e)) => return Err(e.into()),
            Err(NotRecorded::Ledger(LedgerError::InsufficientFunds(_))) => {
                let balance = self
                    .ledger
                    .book_balance(&Book::Balance(order.caller.account.clone()))
                    .await
                    .map_err(JobError::from)?;
                return Err(JobError::InsufficientFunds {
                    budget,
                    balance: MilliSats(u64::try_from(balance).unwrap_or(0)),
                }
                .into());
            }
            Err(NotRecorded::Ledger(e)) => return Err(JobError::from(e).into()),
        };
        Ok(Started {
            record,
            text,
            streaming,
            end,
        })
    }

    /// Chooses the node for a job and builds its input and record; stores
    /// nothing.
    async fn prepare<E, F>(
        &self,
        order: Order<'_>,
        input: F,
        limits: SpendingLimits,
    ) -> Result<Prepared, E>
    where
        E: From<JobError>,
        F: FnOnce(&ModelOffer) -> Result<JobInput, E>,
    {
        if order.model.is_empty() || order.model.len() > 128 {
            return Err(JobError::ModelName.into());
        }
        let now = UnixMillis::now();
        if let Some(pool) = order.pool {
            wire::registry::check_label(pool).map_err(JobError::Pool)?;
        }
        // A few more than the candidates: some may hold another file of
        // the model.
        let nodes = self.registry.for_job(
            order.model,
            order.node,
            order.pool,
            order.max_price,
            now,
            3 * MAX_ATTEMPTS,
        );
        let ranked = rank_nodes(&nodes, order.model, order.node, order.pool, order.max_price)?;
        let (node, offer) = ranked[0];
        let input = input(offer)?;
        input.validate().map_err(JobError::from)?;
        // The next best nodes with the same model file, for a job that
        // cannot run on the first.
        let candidates: Vec<_> = ranked
            .into_iter()
            .filter(|(_, o)| o.hash == offer.hash && o.task == offer.task)
            .take(MAX_ATTEMPTS)
            .collect();
        // Without a maximum the consumer agrees to what the input can cost
        // at most on the nodes it may go to; the receipt says what it did
        // cost.
        let budget = order.max_price.unwrap_or_else(|| {
            candidates
                .iter()
                .map(|(_, o)| o.worst_case_price(&input))
                .max()
                .unwrap_or_default()
        });
        let candidates: Vec<Candidate> = candidates
            .into_iter()
            .map(|(n, _)| Candidate {
                node: n.peer_id,
                addrs: n.multiaddrs.iter().filter_map(|a| a.parse().ok()).collect(),
            })
            .collect();
        let budget = MilliSats(budget.0.saturating_add(order.bid.0));
        let job_id = JobId::from_random(uuid::Uuid::new_v4().into_bytes());
        let record = JobRecord {
            id: job_id.clone(),
            model: offer.name.clone(),
            model_hash: offer.hash,
            task: offer.task,
            node_id: node.peer_id,
            status: JobStatus::Dispatched,
            input: input.clone(),
            output: None,
            receipt: None,
            error: None,
            price_msat: MilliSats(0),
            max_price_msat: budget,
            created_at: now,
            finished_at: None,
            events: vec![JobEvent {
                status: JobStatus::Dispatched,
                at: now,
                message: Some(format!("sent to {}", node.peer_id)),
            }],
            attempts: Vec::new(),
        };
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let request = JobRequest {
            job_id,
            model_hash: offer.hash,
            input,
            max_price_msat: budget,
            deadline: UnixMillis(now.0.saturating_add(timeout_ms)),
            bid_msat: order.bid,
        };
        Ok(Prepared {
            record,
            owner: order.caller.account.clone(),
            limits,
            candidates,
            request,
        })
    }

    /// One of `owner`'s jobs; someone else's is `None`, like a missing one.
    pub(crate) async fn get(
        &self,
        owner: &AccountId,
        id: &JobId,
    ) -> Result<Option<JobRecord>, JobError> {
        Ok(self.store.get(id, Some(owner)).await?)
    }

    /// What anyone may check about a job: its terms and signed receipt,
    /// not its input or output.
    pub(crate) async fn receipt(&self, id: &JobId) -> Result<Option<ReceiptCheck>, JobError> {
        Ok(self.store.get(id, None).await?.map(|r| ReceiptCheck {
            job_id: r.id,
            node_id: r.node_id,
            model: r.model,
            model_hash: r.model_hash,
            status: r.status,
            price_msat: r.price_msat,
            max_price_msat: Some(r.max_price_msat),
            created_at: r.created_at,
            finished_at: r.finished_at,
            receipt: r.receipt,
        }))
    }

    /// A page of `owner`'s jobs, newest first: the first `limit`, or those
    /// after `after`.
    pub(crate) async fn list(
        &self,
        owner: &AccountId,
        limit: u32,
        after: Option<&JobCursor>,
    ) -> Result<JobPage, JobError> {
        let mut jobs = self
            .store
            .list(owner, limit.saturating_add(1), after)
            .await?;
        let more = jobs.len() > limit as usize;
        jobs.truncate(limit as usize);
        let next_cursor = more
            .then(|| jobs.last().map(|j| JobCursor::after(j).to_string()))
            .flatten();
        Ok(JobPage { jobs, next_cursor })
    }

    /// Fails the jobs that are still dispatched well after their deadline:
    /// the server restarted while they ran, or could not write how they
    /// ended. Returns how many. (Leases and retries replace this guess once
    /// jobs move between nodes; until then it keeps a job from staying in
    /// flight for ever.)
    ///
    /// A job that an earlier run of this server sent (created before
    /// `started`) has nobody left to record its end: it is failed as soon
    /// as its deadline passes, without the grace a running job gets.
    pub(crate) async fn reconcile(
        &self,
        now: UnixMillis,
        started: UnixMillis,
    ) -> Result<usize, JobError> {
        let ago = |d: Duration| {
            UnixMillis(
                now.0
                    .saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            )
        };
        let error = ErrorBody::new(
            "lost",
            "the server lost track of this job (it restarted, or could not record the job's end); \
             nothing was charged",
        );
        let mut failed = 0;
        let overdue = self
            .store
            .overdue(ago(LOST_AFTER), ago(LOST_WITHOUT_DEADLINE), started, now)
            .await?;
        for job in overdue {
            // Rows from before accounts have no owner and held nothing; the
            // store releases only a hold that exists.
            let owner = job.owner.unwrap_or_else(|| AccountId::from_random([0; 16]));
            let release = Movement::release(
                &job.job_id,
                &owner,
                job.max_price_msat.unwrap_or(MilliSats(0)),
                now,
            );
            let locked = self.ledger.lock(&[&release]).await;
            let failed_now = self
                .store
                .fail_if_dispatched(&job.job_id, &error, now, &release)
                .await;
            drop(locked);
            if failed_now? {
                tracing::warn!(job_id = %job.job_id, "job lost; marked failed, its hold released");
                failed += 1;
            }
        }
        Ok(failed)
    }

    /// Reconciles at once, then every interval, until the server stops.
    pub(crate) async fn reconcile_forever(self, every: Duration) {
        let started = UnixMillis::now();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.reconcile(UnixMillis::now(), started).await {
                tracing::warn!(error = %e, "could not reconcile jobs");
            }
            self.submissions.shrink();
        }
    }
}

/// What the fleet's statistics read of a job.
#[derive(Debug, Clone)]
pub(crate) struct JobFact {
    pub(crate) job_id: String,
    pub(crate) node_id: NodeId,
    pub(crate) model: String,
    pub(crate) status: wire::jobs::JobStatus,
    pub(crate) created_at: UnixMillis,
    pub(crate) finished_at: Option<UnixMillis>,
    /// From the receipt: "cpu" or "cuda:N".
    pub(crate) device: Option<String>,
}

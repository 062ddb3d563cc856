//! The `job` and `job_event` tables: a job's record and every change of its
//! status, each written together with its event in one transaction. All of
//! the jobs' SurrealQL is here.

use serde::Deserialize;
use serde_json::json;
use wire::api::ErrorBody;
use wire::jobs::{
    JobAttempt, JobCursor, JobEvent, JobInput, JobOutput, JobRecord, JobStatus, JobSummary,
};
use wire::registry::Task;
use wire::{AccountId, JobId, MilliSats, ModelHash, NodeId, SignedEnvelope, UnixMillis};

use crate::db::{Db, DbError};
use crate::ledger::{move_sql, Applied, LedgerError, Movement};

/// A job still dispatched past its deadline, and what to release.
#[derive(Debug, Deserialize)]
pub(super) struct Overdue {
    pub(super) job_id: JobId,
    #[serde(default)]
    pub(super) owner: Option<AccountId>,
    #[serde(default)]
    pub(super) max_price_msat: Option<MilliSats>,
}

/// A job as stored in the `job` table.
#[derive(Debug, Deserialize)]
struct JobRow {
    job_id: JobId,
    model: String,
    model_hash: ModelHash,
    task: Task,
    node_id: NodeId,
    status: JobStatus,
    input: JobInput,
    #[serde(default)]
    output: Option<JobOutput>,
    #[serde(default)]
    receipt: Option<SignedEnvelope>,
    #[serde(default)]
    error: Option<ErrorBody>,
    price_msat: MilliSats,
    #[serde(default)]
    max_price_msat: Option<MilliSats>,
    created_at: UnixMillis,
    #[serde(default)]
    finished_at: Option<UnixMillis>,
    #[serde(default)]
    attempts: Vec<JobAttempt>,
}

#[derive(Clone)]
pub(crate) struct JobStore {
    db: Db,
}

fn event_row(id: &JobId, seq: usize, e: &JobEvent) -> serde_json::Value {
    let mut row = json!({ "job_id": id, "seq": seq, "status": e.status, "at": e.at });
    if let Some(m) = &e.message {
        row["message"] = json!(m);
    }
    row
}

impl JobStore {
    pub(crate) fn new(db: Db) -> Self {
        JobStore { db }
    }

    /// Records a new job and its first events and holds its budget
    /// (`hold`), all or nothing; the node gives up on it at `deadline`.
    /// (Without a hold, the job is recorded with no money moved: only the
    /// billing benchmark's baseline does that.)
    pub(super) async fn insert(
        &self,
        r: &JobRecord,
        deadline: UnixMillis,
        owner: &AccountId,
        api_key: Option<&str>,
        hold: Option<&Movement>,
    ) -> Result<(), LedgerError> {
        let mut job = json!({
            "job_id": r.id,
            "model": r.model,
            "model_hash": r.model_hash,
            "task": r.task,
            "node_id": r.node_id,
            "status": r.status,
            "input": r.input,
            "price_msat": r.price_msat,
            "max_price_msat": r.max_price_msat,
            "created_at": r.created_at,
            "deadline": deadline,
            "owner": owner,
        });
        if let Some(key) = api_key {
            job["api_key"] = json!(key);
        }
        let events: Vec<_> = r
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| event_row(&r.id, i, e))
            .collect();
        let sql = format!(
            "BEGIN TRANSACTION; \
             CREATE type::record('job', $id) CONTENT $job; \
             INSERT INTO job_event $events; \
             {} \
             COMMIT TRANSACTION;",
            if hold.is_some() {
                move_sql("hold")
            } else {
                String::new()
            }
        );
        let hold = match hold {
            Some(h) => h.to_json()?,
            None => serde_json::Value::Null,
        };
        let vars = json!({ "id": r.id, "job": job, "events": events, "hold": hold });
        match self.db.transact::<serde_json::Value>(&sql, vars, 0).await {
            Ok(_) => Ok(()),
            Err(e) => match LedgerError::from_db(e)? {
                // A new job's hold is new: its key cannot have been used.
                Applied::AlreadyDone => Err(LedgerError::Unbalanced(format!("hold:{}", r.id))),
                Applied::Moved => Ok(()),
            },
        }
    }

    /// What jobs submitted with API key `key` since `since` cost: their
    /// price once ended, their budget (held) while they run.
    pub(super) async fn spent_by_key(
        &self,
        key: &str,
        since: UnixMillis,
    ) -> Result<MilliSats, DbError> {
        #[derive(Deserialize)]
        struct Sum {
            total: i64,
        }
        let rows: Vec<Sum> = self
            .db
            .rows(
                "SELECT math::sum(IF status = 'dispatched' { max_price_msat ?? 0 } \
                 ELSE { price_msat }) AS total FROM job \
                 WHERE api_key = $key AND created_at >= $since GROUP ALL",
                json!({ "key": key, "since": since }),
                0,
            )
            .await?;
        Ok(MilliSats(
            rows.first()
                .map_or(0, |s| u64::try_from(s.total).unwrap_or(0)),
        ))
    }

    /// The jobs `node` ran on `model` and was paid for, created since
    /// `since`: each one's id, owner and price (what a ban refunds).
    pub(crate) async fn succeeded_on(
        &self,
        node: NodeId,
        model: ModelHash,
        since: UnixMillis,
    ) -> Result<Vec<(JobId, AccountId, MilliSats)>, DbError> {
        #[derive(Deserialize)]
        struct Row {
            job_id: JobId,
            owner: Option<AccountId>,
            price_msat: MilliSats,
        }
        let rows: Vec<Row> = self
            .db
            .rows(
                "SELECT job_id, owner, price_msat FROM job \
                 WHERE node_id = $node AND created_at >= $since \
                 AND model_hash = $model AND status = 'succeeded'",
                json!({ "node": node, "since": since, "model": model }),
                0,
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Some((r.job_id, r.owner?, r.price_msat)))
            .collect())
    }

    /// Refunds a job (`refund`, its money back to its owner) with its
    /// event, in one transaction. Returns false if it was refunded before.
    pub(crate) async fn refund(
        &self,
        id: &JobId,
        event: &JobEvent,
        refund: &Movement,
    ) -> Result<bool, LedgerError> {
        let sql = format!(
            "BEGIN TRANSACTION; \
             LET $seq = array::len((SELECT seq FROM job_event WHERE job_id = $id)); \
             CREATE job_event CONTENT object::extend($event, {{ seq: $seq }}); \
             {} \
             COMMIT TRANSACTION;",
            move_sql("refund")
        );
        let vars =
            json!({ "id": id, "event": event_row(id, 0, event), "refund": refund.to_json()? });
        match self.db.transact::<serde_json::Value>(&sql, vars, 0).await {
            Ok(_) => Ok(true),
            Err(e) => match LedgerError::from_db(e)? {
                Applied::AlreadyDone => Ok(false),
                Applied::Moved => Ok(true),
            },
        }
    }

    /// What the fleet's statistics need of jobs: those of `nodes` created
    /// from `since` to `until`, or those with the ids `ids`.
    pub(super) async fn facts(
        &self,
        nodes: &[NodeId],
        since: UnixMillis,
        until: UnixMillis,
        ids: &[String],
    ) -> Result<Vec<super::JobFact>, DbError> {
        #[derive(Deserialize)]
        struct Row {
            job_id: String,
            node_id: NodeId,
            model: String,
            status: JobStatus,
            created_at: UnixMillis,
            finished_at: Option<UnixMillis>,
            receipt: Option<SignedEnvelope>,
        }
        let (sql, vars) = if ids.is_empty() {
            (
                "SELECT job_id, node_id, model, status, created_at, finished_at, receipt FROM job \
                 WHERE node_id IN $nodes AND created_at >= $since AND created_at < $until",
                json!({ "nodes": nodes, "since": since, "until": until }),
            )
        } else {
            (
                "SELECT job_id, node_id, model, status, created_at, finished_at, receipt FROM job \
                 WHERE job_id IN $ids",
                json!({ "ids": ids }),
            )
        };
        let rows: Vec<Row> = self.db.rows(sql, vars, 0).await?;
        Ok(rows
            .into_iter()
            .map(|r| super::JobFact {
                device: r
                    .receipt
                    .and_then(|e| e.open::<wire::jobs::Receipt>().ok())
                    .map(|receipt| receipt.device),
                job_id: r.job_id,
                node_id: r.node_id,
                model: r.model,
                status: r.status,
                created_at: r.created_at,
                finished_at: r.finished_at,
            })
            .collect())
    }

    /// How many job records there are in each status.
    pub(super) async fn count_by_status(&self) -> Result<Vec<(String, u64)>, DbError> {
        #[derive(Deserialize)]
        struct Count {
            status: String,
            n: u64,
        }
        let rows: Vec<Count> = self
            .db
            .rows(
                "SELECT status, count() AS n FROM job GROUP BY status",
                json!({}),
                0,
            )
            .await?;
        Ok(rows.into_iter().map(|c| (c.status, c.n)).collect())
    }

    /// Writes the job's final state, its event and the settling of its
    /// hold (`settle`: charged or released) together, or none of them.
    /// Only a job still dispatched is finished: one the reconciler has
    /// already given up on stays as it says. Returns whether it was.
    pub(super) async fn finish(
        &self,
        r: &JobRecord,
        event: &JobEvent,
        settle: &Movement,
    ) -> Result<bool, LedgerError> {
        let mut patch = json!({
            "status": r.status,
            "price_msat": r.price_msat,
            "node_id": r.node_id,
            "attempts": r.attempts,
        });
        if let Some(o) = &r.output {
            patch["output"] = json!(o);
        }
        if let Some(rc) = &r.receipt {
            patch["receipt"] = json!(rc);
        }
        if let Some(e) = &r.error {
            patch["error"] = json!(e);
        }
        if let Some(f) = r.finished_at {
            patch["finished_at"] = json!(f);
        }
        self.end_if_dispatched(&r.id, patch, event_row(&r.id, 0, event), settle)
            .await
    }

    /// Moves a job that is still dispatched to its next node: the node, the
    /// failed tries so far, the new deadline and the event, in one
    /// transaction. Returns whether it did (not if the job has ended, e.g.
    /// given up on as lost).
    pub(super) async fn move_to(
        &self,
        r: &JobRecord,
        deadline: UnixMillis,
        event: &JobEvent,
    ) -> Result<bool, DbError> {
        let patch = json!({ "node_id": r.node_id, "attempts": r.attempts, "deadline": deadline });
        let moved: Vec<serde_json::Value> = self
            .db
            .transact(
                "BEGIN TRANSACTION; \
                 LET $moved = (UPDATE type::record('job', $id) MERGE $patch \
                     WHERE status = 'dispatched' RETURN job_id); \
                 IF array::len($moved) > 0 { \
                     LET $seq = array::len((SELECT seq FROM job_event WHERE job_id = $id)); \
                     CREATE job_event CONTENT object::extend($event, { seq: $seq }); \
                 }; \
                 RETURN $moved; \
                 COMMIT TRANSACTION;",
                json!({ "id": r.id, "patch": patch, "event": event_row(&r.id, 0, event) }),
                3,
            )
            .await?;
        Ok(!moved.is_empty())
    }

    /// Jobs still dispatched whose deadline passed before `cutoff`, or
    /// that were created before `orphaned_before` and whose deadline passed
    /// before `now`, or, for rows from before deadlines were kept, that
    /// were created before `created_before`.
    pub(super) async fn overdue(
        &self,
        cutoff: UnixMillis,
        created_before: UnixMillis,
        orphaned_before: UnixMillis,
        now: UnixMillis,
    ) -> Result<Vec<Overdue>, DbError> {
        self.db
            .rows(
                "SELECT job_id, owner, max_price_msat FROM job WHERE status = 'dispatched' AND \
                 ((deadline != NONE AND deadline < $cutoff) OR \
                  (deadline != NONE AND deadline < $now AND created_at < $orphaned) OR \
                  (deadline = NONE AND created_at < $created_before))",
                json!({ "cutoff": cutoff, "created_before": created_before,
                        "orphaned": orphaned_before, "now": now }),
                0,
            )
            .await
    }

    /// Fails a job that is still dispatched, with `error`, and records the
    /// event, in one transaction; nothing happens to a job that has ended
    /// meanwhile. Returns whether it was failed.
    pub(super) async fn fail_if_dispatched(
        &self,
        id: &JobId,
        error: &ErrorBody,
        now: UnixMillis,
        release: &Movement,
    ) -> Result<bool, LedgerError> {
        let patch = json!({ "status": JobStatus::Failed, "error": error, "finished_at": now });
        let event = json!({
            "job_id": id,
            "status": JobStatus::Failed,
            "at": now,
            "message": error.error.message,
        });
        self.end_if_dispatched(id, patch, event, release).await
    }

    /// Merges `patch` into a job that is still dispatched, creates `event`
    /// (its `seq` the next of the job's) and applies `settle` to its hold,
    /// in one transaction; does none of it if the job has ended. (A job
    /// from before the ledger has no hold, and nothing to settle.) Returns
    /// whether it did.
    async fn end_if_dispatched(
        &self,
        id: &JobId,
        patch: serde_json::Value,
        event: serde_json::Value,
        settle: &Movement,
    ) -> Result<bool, LedgerError> {
        let sql = format!(
            "BEGIN TRANSACTION; \
             LET $ended = (UPDATE type::record('job', $id) MERGE $patch \
                 WHERE status = 'dispatched' RETURN job_id); \
             IF array::len($ended) > 0 {{ \
                 LET $seq = array::len((SELECT seq FROM job_event WHERE job_id = $id)); \
                 CREATE job_event CONTENT object::extend($event, {{ seq: $seq }}); \
                 IF record::exists(type::record('movement', 'hold:' + $id)) {{ {} }}; \
             }}; \
             RETURN $ended; \
             COMMIT TRANSACTION;",
            move_sql("settle")
        );
        let vars = json!({ "id": id, "patch": patch, "event": event, "settle": settle.to_json()? });
        // The results of BEGIN, LET, IF, then RETURN's.
        match self.db.transact::<serde_json::Value>(&sql, vars, 3).await {
            Ok(ended) => Ok(!ended.is_empty()),
            Err(e) => match LedgerError::from_db(e)? {
                // Settled already (a retry of a write that did commit):
                // the job's end is as written then.
                Applied::AlreadyDone => Ok(false),
                Applied::Moved => Ok(true),
            },
        }
    }

    /// A job by id; with `owner`, only if it is theirs.
    pub(super) async fn get(
        &self,
        id: &JobId,
        owner: Option<&AccountId>,
    ) -> Result<Option<JobRecord>, DbError> {
        let vars = json!({ "id": id, "owner": owner });
        let sql = if owner.is_some() {
            "SELECT * FROM type::record('job', $id) WHERE owner = $owner"
        } else {
            "SELECT * FROM type::record('job', $id)"
        };
        let rows: Vec<JobRow> = self.db.rows(sql, vars.clone(), 0).await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let events: Vec<JobEvent> = self
            .db
            .rows(
                "SELECT status, at, message, seq FROM job_event WHERE job_id = $id ORDER BY seq",
                vars,
                0,
            )
            .await?;
        Ok(Some(JobRecord {
            id: row.job_id,
            model: row.model,
            model_hash: row.model_hash,
            task: row.task,
            node_id: row.node_id,
            status: row.status,
            input: row.input,
            output: row.output,
            receipt: row.receipt,
            error: row.error,
            price_msat: row.price_msat,
            // Rows from before budgets were kept: a succeeded job's price
            // was within what was agreed.
            max_price_msat: row.max_price_msat.unwrap_or(row.price_msat),
            created_at: row.created_at,
            finished_at: row.finished_at,
            events,
            attempts: row.attempts,
        }))
    }

    /// `owner`'s newest `limit` jobs, or the newest older than `after`
    /// (newest first, ties broken by id).
    pub(super) async fn list(
        &self,
        owner: &AccountId,
        limit: u32,
        after: Option<&JobCursor>,
    ) -> Result<Vec<JobSummary>, DbError> {
        const FIELDS: &str =
            "job_id AS id, model, node_id, status, price_msat, created_at, finished_at";
        match after {
            None => {
                self.db
                    .rows(
                        &format!(
                            "SELECT {FIELDS} FROM job WHERE owner = $owner \
                             ORDER BY created_at DESC, id DESC LIMIT $limit"
                        ),
                        json!({ "owner": owner, "limit": limit }),
                        0,
                    )
                    .await
            }
            Some(after) => {
                self.db
                    .rows(
                        &format!(
                            "SELECT {FIELDS} FROM job WHERE owner = $owner AND created_at <= $at \
                             AND (created_at < $at OR job_id < $id) \
                             ORDER BY created_at DESC, id DESC LIMIT $limit"
                        ),
                        json!({
                            "owner": owner,
                            "limit": limit,
                            "at": after.created_at,
                            "id": after.id,
                        }),
                        0,
                    )
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Book, Ledger, Payee};
    use testkit::fixtures::node_id;

    fn dispatched(n: u8, now: UnixMillis) -> JobRecord {
        JobRecord {
            id: JobId::from_random([n; 16]),
            model: "m".into(),
            model_hash: wire::Sha256Digest::of(b"m"),
            task: Task::Embedding,
            node_id: node_id(1),
            status: JobStatus::Dispatched,
            input: JobInput::Embedding {
                texts: vec!["x".into()],
            },
            output: None,
            receipt: None,
            error: None,
            price_msat: MilliSats(0),
            max_price_msat: MilliSats(1000),
            created_at: now,
            finished_at: None,
            events: vec![JobEvent {
                status: JobStatus::Dispatched,
                at: now,
                message: None,
            }],
            attempts: Vec::new(),
        }
    }

    fn hold(r: &JobRecord, owner: &AccountId) -> Movement {
        Movement::hold(&r.id, owner, r.max_price_msat, r.created_at)
    }

    #[tokio::test]
    async fn a_job_left_dispatched_past_its_deadline_is_failed_once_with_its_event_and_released() {
        let db = Db::temp("overdue").await;
        let store = JobStore::new(db.clone());
        let ledger = Ledger::new(db, 0, false);
        let now = UnixMillis::now();
        let lost = dispatched(1, now);
        let running = dispatched(2, now);
        let me = AccountId::from_random([1; 16]);
        ledger
            .credit(&me, MilliSats(2500), "start", None)
            .await
            .unwrap();
        store
            .insert(
                &lost,
                UnixMillis(now.0 - 1),
                &me,
                None,
                Some(&hold(&lost, &me)),
            )
            .await
            .unwrap();
        store
            .insert(
                &running,
                UnixMillis(now.0 + 60_000),
                &me,
                None,
                Some(&hold(&running, &me)),
            )
            .await
            .unwrap();
        let my_balance = Book::Balance(me.clone());
        let balance = || ledger.book_balance(&my_balance);
        assert_eq!(balance().await.unwrap(), 500, "two budgets held");
        // A third job's budget is more than what is left: not recorded.
        let broke = dispatched(3, now);
        assert!(matches!(
            store
                .insert(&broke, now, &me, None, Some(&hold(&broke, &me)))
                .await,
            Err(LedgerError::InsufficientFunds(_))
        ));
        assert!(store.get(&broke.id, None).await.unwrap().is_none());
        let overdue = store
            .overdue(now, UnixMillis(0), UnixMillis(0), now)
            .await
            .unwrap();
        assert_eq!(overdue.len(), 1);
        assert_eq!(overdue[0].job_id, lost.id);
        assert_eq!(overdue[0].owner.as_ref(), Some(&me));
        let error = ErrorBody::new("lost", "the server lost track of this job");
        let release = Movement::release(&lost.id, &me, lost.max_price_msat, now);
        assert!(store
            .fail_if_dispatched(&lost.id, &error, now, &release)
            .await
            .unwrap());
        assert_eq!(
            balance().await.unwrap(),
            1500,
            "the lost job's hold is back"
        );
        assert!(
            !store
                .fail_if_dispatched(&lost.id, &error, now, &release)
                .await
                .unwrap(),
            "a job is failed once"
        );
        assert_eq!(balance().await.unwrap(), 1500, "and released once");
        let record = store.get(&lost.id, Some(&me)).await.unwrap().unwrap();
        assert_eq!(record.status, JobStatus::Failed);
        assert_eq!(record.error, Some(error));
        assert_eq!(record.max_price_msat, MilliSats(1000), "the budget is kept");
        let statuses: Vec<JobStatus> = record.events.iter().map(|e| e.status).collect();
        assert_eq!(statuses, [JobStatus::Dispatched, JobStatus::Failed]);
        assert!(store
            .overdue(now, UnixMillis(0), UnixMillis(0), now)
            .await
            .unwrap()
            .is_empty());
        let still = store.get(&running.id, Some(&me)).await.unwrap().unwrap();
        assert_eq!(still.status, JobStatus::Dispatched, "not yet overdue");
        // The job's own end, arriving after all, leaves the record (and the
        // money) as it is.
        let mut late = lost.clone();
        late.status = JobStatus::Succeeded;
        late.price_msat = MilliSats(400);
        let event = JobEvent {
            status: JobStatus::Succeeded,
            at: now,
            message: None,
        };
        let payee = Payee::Node(node_id(1));
        let charge = |r: &JobRecord| {
            Movement::charge(&r.id, &me, r.max_price_msat, r.price_msat, &payee, 0, now).unwrap()
        };
        assert!(!store.finish(&late, &event, &charge(&late)).await.unwrap());
        let record = store.get(&lost.id, Some(&me)).await.unwrap().unwrap();
        assert_eq!(record.status, JobStatus::Failed);
        assert_eq!(record.events.len(), 2);
        assert_eq!(balance().await.unwrap(), 1500);
        // A job still running ends normally, with its event next in line,
        // and pays its price.
        let mut done = running.clone();
        done.status = JobStatus::Succeeded;
        done.price_msat = MilliSats(400);
        assert!(store.finish(&done, &event, &charge(&done)).await.unwrap());
        let record = store.get(&running.id, Some(&me)).await.unwrap().unwrap();
        assert_eq!(record.status, JobStatus::Succeeded);
        let seqs: Vec<JobStatus> = record.events.iter().map(|e| e.status).collect();
        assert_eq!(seqs, [JobStatus::Dispatched, JobStatus::Succeeded]);
        assert_eq!(balance().await.unwrap(), 2100);
        assert_eq!(
            ledger
                .book_balance(&Book::Pending(node_id(1)))
                .await
                .unwrap(),
            400
        );
        assert!(ledger.audit().await.unwrap().is_clean());
    }

    #[tokio::test]
    async fn a_job_is_read_and_listed_only_by_its_owner() {
        let db = Db::temp("owner").await;
        let store = JobStore::new(db.clone());
        let ledger = Ledger::new(db, 0, false);
        let now = UnixMillis::now();
        let mine = dispatched(1, now);
        let theirs = dispatched(2, now);
        let me = AccountId::from_random([1; 16]);
        let them = AccountId::from_random([2; 16]);
        for who in [&me, &them] {
            ledger
                .credit(who, MilliSats(1000), "start", None)
                .await
                .unwrap();
        }
        store
            .insert(&mine, now, &me, None, Some(&hold(&mine, &me)))
            .await
            .unwrap();
        store
            .insert(&theirs, now, &them, None, Some(&hold(&theirs, &them)))
            .await
            .unwrap();
        assert!(store.get(&mine.id, Some(&me)).await.unwrap().is_some());
        assert!(store.get(&theirs.id, Some(&me)).await.unwrap().is_none());
        assert!(store.get(&theirs.id, None).await.unwrap().is_some());
        let listed: Vec<JobId> = store
            .list(&me, 10, None)
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(listed, vec![mine.id]);
    }

    #[tokio::test]
    async fn pages_of_jobs_follow_each_other_without_gaps_or_repeats_even_at_the_same_millisecond()
    {
        let db = Db::temp("pages").await;
        let store = JobStore::new(db.clone());
        let ledger = Ledger::new(db, 0, false);
        let me = AccountId::from_random([1; 16]);
        let other = AccountId::from_random([2; 16]);
        for who in [&me, &other] {
            ledger
                .credit(who, MilliSats(100_000), "start", None)
                .await
                .unwrap();
        }
        // Seven jobs, three of them created in the same millisecond.
        let base = UnixMillis::now();
        let mut expected = Vec::new();
        for (n, at) in [0u64, 1, 1, 1, 2, 3, 5].into_iter().enumerate() {
            let mut job = dispatched(n as u8 + 10, UnixMillis(base.0 + at));
            job.model = format!("m{n}");
            store
                .insert(&job, job.created_at, &me, None, Some(&hold(&job, &me)))
                .await
                .unwrap();
            expected.push((job.created_at, job.id.clone()));
        }
        let theirs = dispatched(99, base);
        store
            .insert(&theirs, base, &other, None, Some(&hold(&theirs, &other)))
            .await
            .unwrap();
        // Newest first; ties by id, descending.
        expected.sort_by(|a, b| b.cmp(a));
        let expected: Vec<JobId> = expected.into_iter().map(|(_, id)| id).collect();

        let mut seen = Vec::new();
        let mut after = None::<JobCursor>;
        loop {
            let page = store.list(&me, 2, after.as_ref()).await.unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2);
            after = page.last().map(JobCursor::after);
            seen.extend(page.into_iter().map(|j| j.id));
        }
        assert_eq!(seen, expected);
    }
}

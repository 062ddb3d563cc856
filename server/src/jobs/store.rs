//! The `job` and `job_event` tables: a job's record and every change of its
//! status, each written together with its event in one transaction. All of
//! the jobs' SurrealQL is here.

use serde::Deserialize;
use serde_json::json;
use wire::api::ErrorBody;
use wire::jobs::{JobEvent, JobInput, JobOutput, JobRecord, JobStatus, JobSummary};
use wire::registry::Task;
use wire::{AccountId, JobId, MilliSats, ModelHash, NodeId, SignedEnvelope, UnixMillis};

use crate::db::{Db, DbError};

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
}

#[derive(Clone)]
pub(super) struct JobStore {
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
    pub(super) fn new(db: Db) -> Self {
        JobStore { db }
    }

    /// Records a new job and its first events; the node gives up on it at
    /// `deadline`.
    pub(super) async fn insert(
        &self,
        r: &JobRecord,
        deadline: UnixMillis,
        owner: &AccountId,
    ) -> Result<(), DbError> {
        let job = json!({
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
        let events: Vec<_> = r
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| event_row(&r.id, i, e))
            .collect();
        self.db
            .execute(
                "BEGIN TRANSACTION; \
                 CREATE type::record('job', $id) CONTENT $job; \
                 INSERT INTO job_event $events; \
                 COMMIT TRANSACTION;",
                json!({ "id": r.id, "job": job, "events": events }),
            )
            .await
    }

    /// Writes the job's final state and its event together, or neither.
    /// Only a job still dispatched is finished: one the reconciler has
    /// already given up on stays as it says. Returns whether it was.
    pub(super) async fn finish(&self, r: &JobRecord, event: &JobEvent) -> Result<bool, DbError> {
        let mut patch = json!({ "status": r.status, "price_msat": r.price_msat });
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
        self.end_if_dispatched(&r.id, patch, event_row(&r.id, 0, event))
            .await
    }

    /// Jobs still dispatched whose deadline passed before `cutoff`, or,
    /// for rows from before deadlines were kept, that were created before
    /// `created_before`.
    pub(super) async fn overdue(
        &self,
        cutoff: UnixMillis,
        created_before: UnixMillis,
    ) -> Result<Vec<JobId>, DbError> {
        #[derive(Deserialize)]
        struct Id {
            job_id: JobId,
        }
        let rows: Vec<Id> = self
            .db
            .rows(
                "SELECT job_id FROM job WHERE status = 'dispatched' AND \
                 ((deadline != NONE AND deadline < $cutoff) OR \
                  (deadline = NONE AND created_at < $created_before))",
                json!({ "cutoff": cutoff, "created_before": created_before }),
                0,
            )
            .await?;
        Ok(rows.into_iter().map(|r| r.job_id).collect())
    }

    /// Fails a job that is still dispatched, with `error`, and records the
    /// event, in one transaction; nothing happens to a job that has ended
    /// meanwhile. Returns whether it was failed.
    pub(super) async fn fail_if_dispatched(
        &self,
        id: &JobId,
        error: &ErrorBody,
        now: UnixMillis,
    ) -> Result<bool, DbError> {
        let patch = json!({ "status": JobStatus::Failed, "error": error, "finished_at": now });
        let event = json!({
            "job_id": id,
            "status": JobStatus::Failed,
            "at": now,
            "message": error.error.message,
        });
        self.end_if_dispatched(id, patch, event).await
    }

    /// Merges `patch` into a job that is still dispatched and creates
    /// `event` (its `seq` the next of the job's), in one transaction; does
    /// neither if the job has ended. Returns whether it did.
    async fn end_if_dispatched(
        &self,
        id: &JobId,
        patch: serde_json::Value,
        event: serde_json::Value,
    ) -> Result<bool, DbError> {
        let ended: Vec<serde_json::Value> = self
            .db
            .rows(
                "BEGIN TRANSACTION; \
                 LET $ended = (UPDATE type::record('job', $id) MERGE $patch \
                     WHERE status = 'dispatched' RETURN job_id); \
                 IF array::len($ended) > 0 { \
                     LET $seq = array::len((SELECT seq FROM job_event WHERE job_id = $id)); \
                     CREATE job_event CONTENT object::extend($event, { seq: $seq }); \
                 }; \
                 RETURN $ended; \
                 COMMIT TRANSACTION;",
                json!({ "id": id, "patch": patch, "event": event }),
                // The results of BEGIN, LET, IF, then RETURN's.
                3,
            )
            .await?;
        Ok(!ended.is_empty())
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
        }))
    }

    /// `owner`'s newest `limit` jobs.
    pub(super) async fn list(
        &self,
        owner: &AccountId,
        limit: u32,
    ) -> Result<Vec<JobSummary>, DbError> {
        self.db
            .rows(
                "SELECT job_id AS id, model, node_id, status, price_msat, created_at, finished_at \
                 FROM job WHERE owner = $owner ORDER BY created_at DESC LIMIT $limit",
                json!({ "owner": owner, "limit": limit }),
                0,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        }
    }

    #[tokio::test]
    async fn a_job_left_dispatched_past_its_deadline_is_failed_once_with_its_event() {
        let store = JobStore::new(Db::temp("overdue").await);
        let now = UnixMillis::now();
        let lost = dispatched(1, now);
        let running = dispatched(2, now);
        let me = AccountId::from_random([1; 16]);
        store
            .insert(&lost, UnixMillis(now.0 - 1), &me)
            .await
            .unwrap();
        store
            .insert(&running, UnixMillis(now.0 + 60_000), &me)
            .await
            .unwrap();
        assert_eq!(
            store.overdue(now, UnixMillis(0)).await.unwrap(),
            vec![lost.id.clone()]
        );
        let error = ErrorBody::new("lost", "the server lost track of this job");
        assert!(store
            .fail_if_dispatched(&lost.id, &error, now)
            .await
            .unwrap());
        assert!(
            !store
                .fail_if_dispatched(&lost.id, &error, now)
                .await
                .unwrap(),
            "a job is failed once"
        );
        let record = store.get(&lost.id, Some(&me)).await.unwrap().unwrap();
        assert_eq!(record.status, JobStatus::Failed);
        assert_eq!(record.error, Some(error));
        assert_eq!(record.max_price_msat, MilliSats(1000), "the budget is kept");
        let statuses: Vec<JobStatus> = record.events.iter().map(|e| e.status).collect();
        assert_eq!(statuses, [JobStatus::Dispatched, JobStatus::Failed]);
        assert!(store.overdue(now, UnixMillis(0)).await.unwrap().is_empty());
        let still = store.get(&running.id, Some(&me)).await.unwrap().unwrap();
        assert_eq!(still.status, JobStatus::Dispatched, "not yet overdue");
        // The job's own end, arriving after all, leaves the record as it is.
        let mut late = lost.clone();
        late.status = JobStatus::Succeeded;
        let event = JobEvent {
            status: JobStatus::Succeeded,
            at: now,
            message: None,
        };
        assert!(!store.finish(&late, &event).await.unwrap());
        let record = store.get(&lost.id, Some(&me)).await.unwrap().unwrap();
        assert_eq!(record.status, JobStatus::Failed);
        assert_eq!(record.events.len(), 2);
        // A job still running ends normally, with its event next in line.
        let mut done = running.clone();
        done.status = JobStatus::Succeeded;
        assert!(store.finish(&done, &event).await.unwrap());
        let record = store.get(&running.id, Some(&me)).await.unwrap().unwrap();
        assert_eq!(record.status, JobStatus::Succeeded);
        let seqs: Vec<JobStatus> = record.events.iter().map(|e| e.status).collect();
        assert_eq!(seqs, [JobStatus::Dispatched, JobStatus::Succeeded]);
    }

    #[tokio::test]
    async fn a_job_is_read_and_listed_only_by_its_owner() {
        let store = JobStore::new(Db::temp("owner").await);
        let now = UnixMillis::now();
        let mine = dispatched(1, now);
        let theirs = dispatched(2, now);
        let me = AccountId::from_random([1; 16]);
        let them = AccountId::from_random([2; 16]);
        store.insert(&mine, now, &me).await.unwrap();
        store.insert(&theirs, now, &them).await.unwrap();
        assert!(store.get(&mine.id, Some(&me)).await.unwrap().is_some());
        assert!(store.get(&theirs.id, Some(&me)).await.unwrap().is_none());
        assert!(store.get(&theirs.id, None).await.unwrap().is_some());
        let listed: Vec<JobId> = store
            .list(&me, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(listed, vec![mine.id]);
    }
}

//! Jobs: choose a node, send the job over libp2p, check the node's receipt,
//! and record the job and each status change in SurrealDB.

use std::cmp::Reverse;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::Instrument;
use wire::api::ErrorBody;
use wire::jobs::{
    verify_receipt, JobEvent, JobInput, JobOutput, JobRecord, JobRequest, JobResponse, JobStatus,
    JobSummary, OutputPart, Receipt, ReceiptError, SubmitJob,
};
use wire::registry::{ModelOffer, NodeInfo, NodeStatus, Task};
use wire::{JobId, MilliSats, ModelHash, NodeId, SignedEnvelope, UnixMillis};

use crate::db::Db;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::registry::Registry;
use crate::AppState;

/// Body limit of a job submission.
pub(crate) const MAX_JOB_BODY: usize = 1024 * 1024;
pub(crate) const MAX_LIST: u32 = 200;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", post(submit).get(list))
        .route("/jobs/{id}", get(fetch))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JOB_BODY))
}

async fn submit(
    State(state): State<AppState>,
    ApiJson(job): ApiJson<SubmitJob>,
) -> Result<Json<JobRecord>, ApiError> {
    state.jobs.submit_detached(job).await.map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JobList {
    pub jobs: Vec<JobSummary>,
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIST}"
        )));
    }
    Ok(Json(JobList {
        jobs: state.jobs.list(limit).await?,
    }))
}

async fn fetch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    let id: JobId = id
        .parse()
        .map_err(|e: wire::ids::ParseIdError| ApiError::BadRequest(e.to_string()))?;
    state
        .jobs
        .get(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("job {id}")))
}

/// Picks the node to run a job on: online, offering the model (by name or
/// hash), on the requested node if one is named, at or under the maximum
/// price. The cheapest wins; then the least busy; then the freshest.
pub(crate) fn choose_node<'a>(
    nodes: &'a [NodeInfo],
    model: &str,
    only: Option<NodeId>,
    max_price: Option<MilliSats>,
) -> Result<(&'a NodeInfo, &'a ModelOffer), ApiError> {
    let offering: Vec<(&NodeInfo, &ModelOffer)> = nodes
        .iter()
        .filter_map(|n| n.offer(model).map(|o| (n, o)))
        .collect();
    if offering.is_empty() {
        return Err(ApiError::UnknownModel(model.to_owned()));
    }
    let chosen: Vec<_> = offering
        .into_iter()
        .filter(|(n, _)| only.is_none_or(|id| n.peer_id == id))
        .collect();
    if let (Some(id), true) = (only, chosen.is_empty()) {
        return Err(ApiError::NoNodeAvailable(format!(
            "node {id} does not offer model `{model}`"
        )));
    }
    let online: Vec<_> = chosen
        .into_iter()
        .filter(|(n, _)| n.status == NodeStatus::Online)
        .collect();
    if online.is_empty() {
        return Err(ApiError::NoNodeAvailable(match only {
            Some(id) => format!("node {id} is offline"),
            None => format!("no online node offers model `{model}`"),
        }));
    }
    let cheapest = online.iter().map(|(_, o)| o.price_msat).min();
    online
        .into_iter()
        .filter(|(_, o)| max_price.is_none_or(|max| o.price_msat <= max))
        .min_by_key(|(n, o)| (o.price_msat, n.active_jobs, Reverse(n.last_seen), n.peer_id))
        .ok_or_else(|| {
            ApiError::NoNodeAvailable(format!(
                "no online node offers `{model}` at or below {} msat (cheapest: {} msat)",
                max_price.unwrap_or_default().0,
                cheapest.unwrap_or_default().0
            ))
        })
}

/// A job chosen a node and recorded, ready to send.
pub(crate) struct Prepared {
    pub(crate) record: JobRecord,
    addrs: Vec<p2p::Multiaddr>,
    request: JobRequest,
}

/// Runs jobs and keeps their records.
#[derive(Clone)]
pub(crate) struct Jobs {
    db: Db,
    registry: Registry,
    network: p2p::Client,
    timeout: Duration,
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
    created_at: UnixMillis,
    #[serde(default)]
    finished_at: Option<UnixMillis>,
}

impl Jobs {
    pub(crate) fn new(db: Db, registry: Registry, network: p2p::Client, timeout: Duration) -> Self {
        Jobs {
            db,
            registry,
            network,
            timeout,
        }
    }

    /// [`Jobs::submit`] on a task of its own, so that a caller who goes away
    /// (a closed connection, a closed page) cannot leave a job half-recorded.
    pub(crate) async fn submit_detached(&self, req: SubmitJob) -> Result<JobRecord, ApiError> {
        let jobs = self.clone();
        tokio::spawn(async move { jobs.submit(req).await })
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    }

    /// [`Jobs::run`] on a task of its own, for the same reason.
    pub(crate) async fn run_detached(&self, prepared: Prepared) -> Result<JobRecord, ApiError> {
        let jobs = self.clone();
        tokio::spawn(async move { jobs.run(prepared, None).await })
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    }

    pub(crate) async fn submit(&self, req: SubmitJob) -> Result<JobRecord, ApiError> {
        let prepared = self
            .prepare(&req.model, req.node, req.max_price_msat, |offer| {
                JobInput::parse(offer.task, req.input).map_err(ApiError::from)
            })
            .await?;
        self.run(prepared, None).await
    }

    /// Chooses the node for a job, builds its input for the chosen model
    /// with `input`, and records it as dispatched. Nothing is stored when
    /// this fails. `input`'s errors come back as they are, so an API can
    /// give its own (e.g. naming the offending parameter).
    pub(crate) async fn prepare<E, F>(
        &self,
        model: &str,
        node: Option<NodeId>,
        max_price: Option<MilliSats>,
        input: F,
    ) -> Result<Prepared, E>
    where
        E: From<ApiError>,
        F: FnOnce(&ModelOffer) -> Result<JobInput, E>,
    {
        if model.is_empty() || model.len() > 128 {
            return Err(ApiError::BadRequest("model must be 1 to 128 bytes".into()).into());
        }
        let now = UnixMillis::now();
        let nodes = self.registry.all(now).await?;
        let (node, offer) = choose_node(&nodes, model, node, max_price)?;
        let input = input(offer)?;
        input.validate().map_err(ApiError::from)?;
        let addrs: Vec<p2p::Multiaddr> = node
            .multiaddrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        // Without a maximum the consumer agrees to what the input can cost
        // at most on this model; the receipt says what it did cost.
        let budget = max_price.unwrap_or_else(|| offer.worst_case_price(&input));
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
            price_msat: offer.price_msat,
            created_at: now,
            finished_at: None,
            events: vec![JobEvent {
                status: JobStatus::Dispatched,
                at: now,
                message: Some(format!("sent to {}", node.peer_id)),
            }],
        };
        self.insert(&record).await?;
        let request = JobRequest {
            job_id,
            model_hash: offer.hash,
            input,
            max_price_msat: budget,
            deadline: UnixMillis(now.0 + self.timeout.as_millis() as u64),
        };
        Ok(Prepared {
            record,
            addrs,
            request,
        })
    }

    /// Runs a prepared job and records how it ended. Generated text goes to
    /// `text` as it streams in.
    pub(crate) async fn run(
        &self,
        prepared: Prepared,
        text: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<JobRecord, ApiError> {
        let span = tracing::info_span!(
            "job",
            job_id = %prepared.record.id,
            peer_id = %prepared.record.node_id
        );
        let Prepared {
            record,
            addrs,
            request,
        } = prepared;
        self.run_recorded(record, addrs, request, text)
            .instrument(span)
            .await
    }

    /// Runs a job that is already recorded as dispatched, and records how it
    /// ended.
    async fn run_recorded(
        &self,
        mut record: JobRecord,
        addrs: Vec<p2p::Multiaddr>,
        request: JobRequest,
        text: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<JobRecord, ApiError> {
        tracing::info!(model = %record.model, "job dispatched");
        let outcome = self.dispatch(record.node_id, addrs, request, text).await;
        let finished = UnixMillis::now();
        match outcome {
            Ok((output, receipt_envelope, receipt)) => {
                record.status = JobStatus::Succeeded;
                record.output = Some(output);
                record.receipt = Some(receipt_envelope);
                record.price_msat = receipt.price_msat;
                record.finished_at = Some(finished);
                let event = JobEvent {
                    status: JobStatus::Succeeded,
                    at: finished,
                    message: Some(format!("{} ms compute", receipt.compute_ms)),
                };
                self.finish(&record, &event).await?;
                record.events.push(event);
                tracing::info!(compute_ms = receipt.compute_ms, "job succeeded");
                Ok(record)
            }
            Err(error) => {
                record.status = JobStatus::Failed;
                record.error = Some(error.body());
                record.finished_at = Some(finished);
                let event = JobEvent {
                    status: JobStatus::Failed,
                    at: finished,
                    message: Some(error.to_string()),
                };
                self.finish(&record, &event).await?;
                tracing::warn!(%error, "job failed");
                Err(ApiError::Job {
                    job_id: record.id,
                    source: Box::new(error),
                })
            }
        }
    }

    async fn dispatch(
        &self,
        peer: NodeId,
        addrs: Vec<p2p::Multiaddr>,
        request: JobRequest,
        text: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<(JobOutput, SignedEnvelope, Receipt), ApiError> {
        let job_id = request.job_id.clone();
        let model_hash = request.model_hash;
        let input = request.input.clone();
        let agreed = request.max_price_msat;
        let network_err = |e| match e {
            p2p::NetworkError::Timeout => ApiError::NodeTimeout(self.timeout.as_secs()),
            p2p::NetworkError::ConnectionClosed => ApiError::NodeDisconnected,
            e => ApiError::NodeUnreachable(e.to_string()),
        };
        let call = async {
            let mut call = self
                .network
                .call_job(peer.peer_id(), addrs, request)
                .await
                .map_err(network_err)?;
            loop {
                match call.next().await.map_err(network_err)? {
                    Some(p2p::JobUpdate::Output(OutputPart::Text { delta, .. })) => {
                        if let Some(tx) = &text {
                            let _ = tx.send(delta);
                        }
                    }
                    Some(p2p::JobUpdate::Finished(response)) => return Ok(response),
                    Some(_) => {}
                    None => return Err(ApiError::NodeDisconnected),
                }
            }
        };
        let response = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ApiError::NodeTimeout(self.timeout.as_secs()))??;
        match response {
            JobResponse::Refused { code, message } => Err(ApiError::NodeRefused { code, message }),
            JobResponse::Done { output, receipt } => {
                let checked = verify_receipt(&receipt, &job_id, peer, model_hash, &input, &output)?;
                if checked.price_msat > agreed {
                    return Err(ReceiptError::Overcharged {
                        charged: checked.price_msat,
                        max: agreed,
                    }
                    .into());
                }
                Ok((output, receipt, checked))
            }
        }
    }

    fn event_row(id: &JobId, seq: usize, e: &JobEvent) -> serde_json::Value {
        let mut row = json!({ "job_id": id, "seq": seq, "status": e.status, "at": e.at });
        if let Some(m) = &e.message {
            row["message"] = json!(m);
        }
        row
    }

    async fn insert(&self, r: &JobRecord) -> Result<(), ApiError> {
        let job = json!({
            "job_id": r.id,
            "model": r.model,
            "model_hash": r.model_hash,
            "task": r.task,
            "node_id": r.node_id,
            "status": r.status,
            "input": r.input,
            "price_msat": r.price_msat,
            "created_at": r.created_at,
        });
        let events: Vec<_> = r
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| Self::event_row(&r.id, i, e))
            .collect();
        self.db
            .execute(
                "BEGIN TRANSACTION; \
                 CREATE type::record('job', $id) CONTENT $job; \
                 INSERT INTO job_event $events; \
                 COMMIT TRANSACTION;",
                json!({ "id": r.id, "job": job, "events": events }),
            )
            .await?;
        Ok(())
    }

    /// Writes the final state and its event together, or neither.
    async fn finish(&self, r: &JobRecord, event: &JobEvent) -> Result<(), ApiError> {
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
        let event = Self::event_row(&r.id, r.events.len(), event);
        self.db
            .execute(
                "BEGIN TRANSACTION; \
                 UPDATE type::record('job', $id) MERGE $patch; \
                 CREATE job_event CONTENT $event; \
                 COMMIT TRANSACTION;",
                json!({ "id": r.id, "patch": patch, "event": event }),
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, ApiError> {
        let vars = json!({ "id": id });
        let rows: Vec<JobRow> = self
            .db
            .rows("SELECT * FROM type::record('job', $id)", vars.clone(), 0)
            .await?;
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
            created_at: row.created_at,
            finished_at: row.finished_at,
            events,
        }))
    }

    pub(crate) async fn list(&self, limit: u32) -> Result<Vec<JobSummary>, ApiError> {
        Ok(self
            .db
            .rows(
                "SELECT job_id AS id, model, node_id, status, price_msat, created_at, finished_at \
                 FROM job ORDER BY created_at DESC LIMIT $limit",
                json!({ "limit": limit }),
                0,
            )
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::registry::Hardware;
    use wire::Sha256Digest;

    fn node(seed: u8, model: &str, price: u64, online: bool, active_jobs: u32) -> NodeInfo {
        let key = p2p::Keypair::ed25519_from_bytes([seed; 32]).unwrap();
        NodeInfo {
            peer_id: key.public().to_peer_id().into(),
            multiaddrs: vec![],
            hardware: Hardware {
                cpu_model: "cpu".into(),
                cpu_cores: 2,
                ram_mb: 1024,
                gpus: vec![],
                os: "linux".into(),
                arch: "x86_64".into(),
            },
            models: vec![ModelOffer {
                name: model.into(),
                task: Task::Embedding,
                hash: Sha256Digest::of(model.as_bytes()),
                price_msat: MilliSats(price),
                device: "cpu".into(),
                description: None,
                embedding_dim: Some(384),
                token_price: Default::default(),
                context_tokens: None,
            }],
            status: if online {
                NodeStatus::Online
            } else {
                NodeStatus::Offline
            },
            last_seen: UnixMillis(seed as u64),
            registered_at: UnixMillis(0),
            version: "0".into(),
            heartbeat_interval_ms: 1000,
            active_jobs,
            fetching: Vec::new(),
        }
    }

    #[test]
    fn cheapest_online_node_with_the_model_is_chosen() {
        let nodes = vec![
            node(1, "m", 300, true, 0),
            node(2, "m", 100, false, 0),
            node(3, "m", 200, true, 0),
            node(4, "other", 1, true, 0),
        ];
        let (n, o) = choose_node(&nodes, "m", None, None).unwrap();
        assert_eq!(n.peer_id, nodes[2].peer_id);
        assert_eq!(o.price_msat, MilliSats(200));
    }

    #[test]
    fn model_can_be_named_by_hash() {
        let nodes = vec![node(1, "m", 300, true, 0)];
        let hash = Sha256Digest::of(b"m").to_string();
        assert!(choose_node(&nodes, &hash, None, None).is_ok());
    }

    #[test]
    fn equal_prices_go_to_the_least_busy_node() {
        let nodes = vec![node(1, "m", 100, true, 3), node(2, "m", 100, true, 1)];
        let (n, _) = choose_node(&nodes, "m", None, None).unwrap();
        assert_eq!(n.peer_id, nodes[1].peer_id);
    }

    #[test]
    fn max_price_excludes_dearer_nodes_and_says_what_the_cheapest_costs() {
        let nodes = vec![node(1, "m", 300, true, 0), node(2, "m", 200, true, 0)];
        assert!(choose_node(&nodes, "m", None, Some(MilliSats(200))).is_ok());
        let err = choose_node(&nodes, "m", None, Some(MilliSats(199))).unwrap_err();
        assert!(matches!(err, ApiError::NoNodeAvailable(_)));
        assert!(err.to_string().contains("cheapest: 200 msat"), "{err}");
    }

    #[test]
    fn unknown_model_and_offline_nodes_are_told_apart() {
        let nodes = vec![node(1, "m", 300, false, 0)];
        assert!(matches!(
            choose_node(&nodes, "nope", None, None),
            Err(ApiError::UnknownModel(_))
        ));
        assert!(matches!(
            choose_node(&nodes, "m", None, None),
            Err(ApiError::NoNodeAvailable(_))
        ));
    }

    #[test]
    fn a_named_node_is_used_even_when_dearer() {
        let nodes = vec![node(1, "m", 300, true, 0), node(2, "m", 100, true, 0)];
        let (n, _) = choose_node(&nodes, "m", Some(nodes[0].peer_id), None).unwrap();
        assert_eq!(n.peer_id, nodes[0].peer_id);
        let stranger = NodeId::from(
            p2p::Keypair::ed25519_from_bytes([9; 32])
                .unwrap()
                .public()
                .to_peer_id(),
        );
        assert!(matches!(
            choose_node(&nodes, "m", Some(stranger), None),
            Err(ApiError::NoNodeAvailable(_))
        ));
    }
}

//! Verification: catching nodes that answer wrong.
//!
//! - **Canaries**: inputs whose answers are known (`--canaries`, made by
//!   `infernet-node --make-canaries` from the same model files, by hash)
//!   go to each node that serves their model, `--canaries-per-hour` times
//!   an hour on average, at random moments, as ordinary jobs from this
//!   server (paid like any job: a node cannot tell them apart).
//! - **Second opinions**: a fraction (`--redundancy`) of consumers' jobs
//!   whose answers can be compared (embeddings, tensors, greedy
//!   generation) runs again on another node with the same model file.
//! - **Verdicts**: answers are compared with [`wire::verify::compare`]
//!   (tolerances for another device's rounding). When two answers
//!   disagree, a third node decides: a node is caught only when two others
//!   (the known answer counts as one, a referee's answer must agree with
//!   it) agree against it. One wrong answer with nobody to decide bans
//!   nobody, except against a canary's known answer for embeddings and
//!   tensors, whose tolerance already allows any device's rounding.
//! - **Bans**: a caught node is banned (`Registry::ban`: a [`Ban`] signed
//!   with this server's key, with the receipts and answers as evidence),
//!   its disputes lost counted, and every job it ran on that model in the
//!   day before is refunded to its consumer from the `checks` book; what
//!   the node earned for them is clawed back from its earnings as far as
//!   they go.
//!
//! `call`: one check job on one node.

mod call;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use wire::jobs::{JobEvent, JobInput, JobOutput, JobRecord, JobStatus};
use wire::registry::{NodeInfo, Task};
use wire::verify::{comparable, compare, Ban, CanarySet, Exhibit, ExhibitRole, Published};
use wire::{ModelHash, NodeId, SignedEnvelope, UnixMillis};

use crate::enrolment::Enrolments;
use crate::jobs::JobStore;
use crate::ledger::{Book, Ledger, LedgerError, Movement};
use crate::registry::Registry;
use crate::reputation::Outcome;
use call::Answer;

/// How far back a ban refunds the caught node's jobs on the model.
const REFUND_WINDOW_MS: u64 = 24 * 3600 * 1000;

/// What the operator chose: the known answers and how often to check.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub(crate) canaries: Vec<CanarySet>,
    /// Canaries per node and model an hour, on average.
    pub(crate) canaries_per_hour: f64,
    /// The fraction of consumers' jobs that get a second opinion.
    pub(crate) redundancy: f64,
}

/// What a verifier needs of the rest of the server.
pub(crate) struct Parts {
    pub(crate) network: p2p::Client,
    pub(crate) registry: Registry,
    pub(crate) ledger: Ledger,
    pub(crate) enrolments: Enrolments,
    pub(crate) jobs: JobStore,
    /// The server's key: bans are signed with it.
    pub(crate) keypair: p2p::Keypair,
    /// How long a check job may take.
    pub(crate) timeout: Duration,
}

/// Sends canaries and second opinions and bans the nodes they catch;
/// cheap to clone.
#[derive(Clone)]
pub(crate) struct Verifier(Arc<Inner>);

struct Inner {
    canaries: HashMap<ModelHash, CanarySet>,
    canaries_per_hour: f64,
    redundancy: f64,
    network: p2p::Client,
    registry: Registry,
    ledger: Ledger,
    enrolments: Enrolments,
    jobs: JobStore,
    keypair: p2p::Keypair,
    server: NodeId,
    timeout: Duration,
    /// Nodes with a check on its way: one at a time each.
    checking: Mutex<HashSet<NodeId>>,
}

/// Who was caught, and by what.
struct Verdict {
    node: NodeId,
    reason: String,
    /// The input, when it is the server's to show (a canary's).
    input: Option<JobInput>,
    exhibits: Vec<Exhibit>,
}

fn exhibit(role: ExhibitRole, answer: &Answer, show: bool, suspect: &JobOutput) -> Exhibit {
    Exhibit {
        role,
        job_id: Some(answer.job_id.clone()),
        node_id: Some(answer.node),
        receipt: Some(answer.receipt.clone()),
        output: show.then(|| answer.output.clone()),
        against_suspect: (role != ExhibitRole::Suspect).then(|| compare(suspect, &answer.output)),
    }
}

impl Verifier {
    pub(crate) fn new(settings: Settings, parts: Parts) -> Self {
        let server = NodeId::from(parts.keypair.public().to_peer_id());
        Verifier(Arc::new(Inner {
            canaries: settings
                .canaries
                .into_iter()
                .map(|set| (set.model_hash, set))
                .collect(),
            canaries_per_hour: settings.canaries_per_hour,
            redundancy: settings.redundancy.clamp(0.0, 1.0),
            network: parts.network,
            registry: parts.registry,
            ledger: parts.ledger,
            enrolments: parts.enrolments,
            jobs: parts.jobs,
            keypair: parts.keypair,
            server,
            timeout: parts.timeout,
            checking: Mutex::new(HashSet::new()),
        }))
    }

    /// Takes a node for a check; `None` if one is on its way there.
    fn claim(&self, node: NodeId) -> Option<Claimed> {
        let mut checking = self.0.checking.lock().unwrap_or_else(|e| e.into_inner());
        checking.insert(node).then(|| Claimed {
            verifier: self.clone(),
            node,
        })
    }

    /// Another node that serves `model` and can take a job now, not one
    /// of `not`: chosen at random, so that nobody knows who checks whom.
    fn other_node(&self, model: ModelHash, not: &[NodeId]) -> Option<NodeInfo> {
        let now = UnixMillis::now();
        let mut ids = self.0.registry.available_for(&model.to_string(), now);
        ids.retain(|id| !not.contains(id));
        if ids.is_empty() {
            return None;
        }
        let pick = ids[rand::rng().random_range(0..ids.len())];
        self.0.registry.listed(pick, now)
    }

    /// What a node would charge at most for `input` on `model`.
    fn budget(node: &NodeInfo, model: ModelHash, input: &JobInput) -> Option<wire::MilliSats> {
        let offer = node.models.iter().find(|m| m.hash == model)?;
        Some(offer.worst_case_price(input))
    }

    async fn ask(&self, node: &NodeInfo, model: ModelHash, input: &JobInput) -> Option<Answer> {
        let budget = Self::budget(node, model, input)?;
        match self.call(node, model, input, budget).await {
            Ok(answer) => Some(answer),
            Err(e) => {
                tracing::info!(node = %node.peer_id, error = %e, "a check got no answer");
                None
            }
        }
    }

    /// A consumer's job succeeded: with the published probability, and if
    /// its answer can be compared, it gets a second opinion (on a task of
    /// its own; the consumer has their answer already).
    pub(crate) fn after_job(&self, record: &JobRecord) {
        if self.0.redundancy <= 0.0
            || record.status != JobStatus::Succeeded
            || !comparable(&record.input)
            || !rand::rng().random_bool(self.0.redundancy)
        {
            return;
        }
        let (Some(output), Some(receipt)) = (record.output.clone(), record.receipt.clone()) else {
            return;
        };
        let first = Answer {
            job_id: record.id.clone(),
            node: record.node_id,
            output,
            receipt,
        };
        let verifier = self.clone();
        let model = record.model_hash;
        let input = record.input.clone();
        tokio::spawn(async move { verifier.second_opinion(model, input, first).await });
    }

    /// Runs `input` again on another node and, if the answers differ, on
    /// a third to decide.
    async fn second_opinion(&self, model: ModelHash, input: JobInput, first: Answer) {
        let Some(node) = self.other_node(model, &[first.node]) else {
            return;
        };
        let Some(_claimed) = self.claim(node.peer_id) else {
            return;
        };
        let Some(second) = self.ask(&node, model, &input).await else {
            return;
        };
        let agreement = compare(&first.output, &second.output);
        if agreement.agrees() {
            tracing::debug!(job_id = %first.job_id, "a second opinion agrees");
            return;
        }
        tracing::warn!(job_id = %first.job_id, first = %first.node, second = %second.node, ?agreement, "two nodes disagree: asking a third");
        let Some(referee) = self.other_node(model, &[first.node, second.node]) else {
            tracing::warn!(job_id = %first.job_id, "no third node to decide; nobody is banned");
            return;
        };
        let Some(third) = self.ask(&referee, model, &input).await else {
            return;
        };
        let job = first.job_id.clone();
        let (suspect, witness) = match (
            compare(&first.output, &third.output).agrees(),
            compare(&second.output, &third.output).agrees(),
        ) {
            (false, true) => (first, second),
            (true, false) => (second, first),
            _ => {
                tracing::warn!(job_id = %job, "three nodes, no two agreeing; nobody is banned");
                return;
            }
        };
        let verdict = Verdict {
            node: suspect.node,
            reason: format!(
                "two other nodes agreed on job {job}'s answer and this node's differed"
            ),
            input: None,
            exhibits: vec![
                exhibit(ExhibitRole::Suspect, &suspect, false, &suspect.output),
                exhibit(ExhibitRole::Witness, &witness, false, &suspect.output),
                exhibit(ExhibitRole::Witness, &third, false, &suspect.output),
            ],
        };
        self.convict(model, verdict).await;
    }

    /// Sends canaries until the server stops: each second, each node that
    /// serves a model with canaries gets one with the probability that
    /// makes `canaries_per_hour` an hour.
    pub(crate) async fn canaries_forever(self) {
        if self.0.canaries.is_empty() || self.0.canaries_per_hour <= 0.0 {
            return;
        }
        let p = (self.0.canaries_per_hour / 3600.0).min(1.0);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = UnixMillis::now();
            for set in self.0.canaries.values() {
                let nodes = self
                    .0
                    .registry
                    .available_for(&set.model_hash.to_string(), now);
                for node in nodes {
                    if !rand::rng().random_bool(p) {
                        continue;
                    }
                    let Some(claimed) = self.claim(node) else {
                        continue;
                    };
                    let verifier = self.clone();
                    let model = set.model_hash;
                    tokio::spawn(async move {
                        verifier.canary(node, model).await;
                        drop(claimed);
                    });
                }
            }
        }
    }

    /// Sends one canary of `model` to `node` and judges its answer.
    pub(crate) async fn canary(&self, node: NodeId, model: ModelHash) {
        let Some(set) = self.0.canaries.get(&model) else {
            return;
        };
        let Some(info) = self.0.registry.listed(node, UnixMillis::now()) else {
            return;
        };
        let case = &set.cases[rand::rng().random_range(0..set.cases.len())];
        let Some(answer) = self.ask(&info, model, &case.input).await else {
            return;
        };
        let reputations = self.0.registry.reputations();
        let agreement = compare(&case.output, &answer.output);
        if agreement.agrees() {
            reputations.job(node, Outcome::CanaryPassed, UnixMillis::now());
            return;
        }
        reputations.job(node, Outcome::CanaryFailed, UnixMillis::now());
        tracing::warn!(%node, ?agreement, "a canary came back wrong");
        let reference = Exhibit {
            role: ExhibitRole::Reference,
            job_id: None,
            node_id: None,
            receipt: None,
            output: Some(case.output.clone()),
            against_suspect: Some(agreement),
        };
        let mut exhibits = vec![
            exhibit(ExhibitRole::Suspect, &answer, true, &answer.output),
            reference,
        ];
        // Another node must agree with the known answer: a known answer
        // that a second node does not give is not trusted.
        match self.other_node(model, &[node]) {
            Some(referee) => {
                let Some(third) = self.ask(&referee, model, &case.input).await else {
                    return;
                };
                if !compare(&case.output, &third.output).agrees() {
                    tracing::warn!(model = %model, "a second node does not give the canary's known answer either: nobody is banned (are the canaries of another build of the model?)");
                    return;
                }
                reputations.job(third.node, Outcome::CanaryPassed, UnixMillis::now());
                exhibits.push(exhibit(ExhibitRole::Witness, &third, true, &answer.output));
            }
            // Nobody to ask: the known answer decides where its tolerance
            // covers any device (greedy text can differ by a rounding).
            None if set.task != Task::TextGeneration => {}
            None => {
                tracing::warn!(%node, "a generation canary differs and no other node can decide; nobody is banned");
                return;
            }
        }
        let verdict = Verdict {
            node,
            reason: format!("answered a canary of {} wrong", set.model),
            input: Some(case.input.clone()),
            exhibits,
        };
        self.convict(model, verdict).await;
    }

    /// Bans the node a verdict caught and refunds its consumers.
    async fn convict(&self, model: ModelHash, verdict: Verdict) {
        let now = UnixMillis::now();
        let ban = Ban {
            node_id: verdict.node,
            server: self.0.server,
            model_hash: model,
            at: now,
            reason: verdict.reason,
            input: verdict.input,
            exhibits: verdict.exhibits,
        };
        let signed = match SignedEnvelope::seal(&self.0.keypair, &ban) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "could not sign a ban");
                return;
            }
        };
        match self.0.registry.ban(&ban, signed).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(node = %ban.node_id, error = %e, "could not store a ban");
                return;
            }
        }
        tracing::warn!(node = %ban.node_id, reason = %ban.reason, "node banned");
        self.0
            .registry
            .reputations()
            .job(ban.node_id, Outcome::DisputeLost, now);
        let since = UnixMillis(now.0.saturating_sub(REFUND_WINDOW_MS));
        match self.refund(ban.node_id, model, since, now).await {
            Ok((jobs, msat)) => {
                tracing::info!(node = %ban.node_id, jobs, msat, "jobs of a banned node refunded")
            }
            Err(e) => {
                tracing::error!(node = %ban.node_id, error = %e, "could not refund a banned node's jobs")
            }
        }
    }

    /// Refunds every job `node` ran on `model` since `since` to its owner,
    /// and takes back what the node earned for them as far as its
    /// earnings go. Returns how many jobs and how much. Each refund and
    /// the clawback move once (their idempotency keys), so a second run
    /// refunds nothing twice.
    pub(crate) async fn refund(
        &self,
        node: NodeId,
        model: ModelHash,
        since: UnixMillis,
        now: UnixMillis,
    ) -> Result<(usize, u64), LedgerError> {
        let jobs = self.0.jobs.succeeded_on(node, model, since).await?;
        let (mut count, mut total) = (0, 0u64);
        for (job, owner, price) in jobs {
            if price.0 == 0 {
                continue;
            }
            let movement = Movement::refund(&job, &owner, price, now);
            let event = JobEvent {
                status: JobStatus::Succeeded,
                at: now,
                message: Some(format!(
                    "refunded {} msat: node {node} was caught answering wrong (GET /nodes/{node}/ban)",
                    price.0
                )),
            };
            let locked = self.0.ledger.lock(&[&movement]).await;
            let refunded = self.0.jobs.refund(&job, &event, &movement).await;
            drop(locked);
            if refunded? {
                count += 1;
                total += price.0;
            }
        }
        self.claw_back(node, model, total, now).await?;
        Ok((count, total))
    }

    /// Takes back up to `amount` (less the platform's fee it kept) of
    /// what `node` earned, from its operator's earnings or its pending
    /// book.
    async fn claw_back(
        &self,
        node: NodeId,
        model: ModelHash,
        amount: u64,
        now: UnixMillis,
    ) -> Result<(), LedgerError> {
        let earned =
            amount - crate::ledger::fee_of(wire::MilliSats(amount), self.0.ledger.fee_bps()).0;
        let from = match self.0.enrolments.operator_of(node).await {
            Ok(Some(operator)) => Book::Earnings(operator),
            _ => Book::Pending(node),
        };
        let balance = self.0.ledger.book_balance(&from).await?;
        let take = i64::try_from(earned).unwrap_or(i64::MAX).min(balance);
        if take <= 0 {
            return Ok(());
        }
        let key = format!("{node}:{model}");
        match self
            .0
            .ledger
            .apply(&Movement::clawback(&key, from, take, now))
            .await
        {
            Ok(_) => Ok(()),
            // Paid out meanwhile: what is left stays the platform's cost.
            Err(LedgerError::InsufficientFunds(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// What this server publishes of its checks (`GET /api/v1/network`).
    pub(crate) fn published(&self) -> Published {
        let mut models: Vec<ModelHash> = self.0.canaries.keys().copied().collect();
        models.sort();
        Published {
            canaries_per_hour: if models.is_empty() {
                0.0
            } else {
                self.0.canaries_per_hour
            },
            canary_models: models,
            redundancy: self.0.redundancy,
        }
    }
}

/// A node taken for a check, let go when dropped.
struct Claimed {
    verifier: Verifier,
    node: NodeId,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        self.verifier
            .0
            .checking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.node);
    }
}

/// Reads a canaries file (`infernet-node --make-canaries`), checking each
/// set.
pub(crate) fn read_canaries(path: &std::path::Path) -> Result<Vec<CanarySet>, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sets: Vec<CanarySet> =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for set in &sets {
        set.check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(sets)
}

//! Checking providers against known answers: a canaries file (made by
//! `infernet-node --make-canaries` from the same model files, as a server
//! sends them) run as ordinary jobs, each answer compared with the known
//! one by the rules servers use ([`wire::verify::compare`]: cosine for
//! embeddings, a tolerance for tensors, the same tokens for greedy text).
//!
//! An operator checks a node before it goes live (on another device, say);
//! anyone can audit a provider with a server's published canaries.

use std::time::Duration;

use p2p::PeerId;
use serde::Serialize;
use wire::registry::Task;
use wire::verify::{compare, Agreement, CanarySet};
use wire::ModelHash;

use crate::{Consumer, ConsumerError, JobSpec};

/// How one known answer came back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseCheck {
    /// Its place in the set.
    pub case: usize,
    /// Who answered (or was tried last, when the job failed).
    pub provider: Option<String>,
    /// The device its signed receipt names (`cpu`, `cuda:0`).
    pub device: Option<String>,
    #[serde(flatten)]
    pub outcome: CaseOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CaseOutcome {
    Agree,
    Disagree {
        detail: String,
    },
    /// No answer to compare: the job failed.
    Failed {
        error: String,
    },
}

/// One model's known answers, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetCheck {
    pub model: String,
    pub model_hash: ModelHash,
    pub task: Task,
    /// The device the known answers were computed on.
    pub made_on: String,
    /// Why no case was run (nobody serves the model, or not the provider
    /// asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub cases: Vec<CaseCheck>,
}

impl SetCheck {
    pub fn count(&self, f: impl Fn(&CaseOutcome) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.outcome)).count()
    }
}

impl Consumer {
    /// Runs every case of `set` as a job (on `provider` alone when given,
    /// else on the best provider of the model's hash, failing over as any
    /// job does) and compares each answer with the known one. Cases run
    /// one after another: a node is checked as it serves, not flooded.
    pub async fn check_canaries(
        &self,
        set: &CanarySet,
        provider: Option<PeerId>,
        timeout: Duration,
    ) -> SetCheck {
        let mut check = SetCheck {
            model: set.model.clone(),
            model_hash: set.model_hash,
            task: set.task,
            made_on: set.device.clone(),
            skipped: None,
            cases: Vec::with_capacity(set.cases.len()),
        };
        for (i, canary) in set.cases.iter().enumerate() {
            let spec = JobSpec {
                model: set.model_hash.to_string(),
                input: canary.input.clone(),
                max_price: None,
                pool: None,
                provider,
                timeout,
            };
            let mut tried = None;
            let ran = self
                .run(&spec, |p| {
                    if let crate::Progress::Trying { provider, .. } = p {
                        tried = Some(provider.to_string());
                    }
                })
                .await;
            let case = match ran {
                Ok(done) => CaseCheck {
                    case: i,
                    provider: Some(done.provider.to_string()),
                    device: Some(done.receipt.device.clone()),
                    outcome: match compare(&canary.output, &done.output) {
                        Agreement::Agree => CaseOutcome::Agree,
                        Agreement::Disagree { detail } => CaseOutcome::Disagree { detail },
                    },
                },
                // Nobody to ask: the same for every case.
                Err(
                    e @ (ConsumerError::NoProviders(_)
                    | ConsumerError::ProviderNotFound { .. }
                    | ConsumerError::TooExpensive { .. }
                    | ConsumerError::NotInPool { .. }),
                ) if check.cases.is_empty() => {
                    check.skipped = Some(e.to_string());
                    return check;
                }
                Err(e) => CaseCheck {
                    case: i,
                    provider: tried,
                    device: None,
                    outcome: CaseOutcome::Failed {
                        error: e.to_string(),
                    },
                },
            };
            check.cases.push(case);
        }
        check
    }
}

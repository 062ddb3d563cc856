//! `GET /nodes`: a page of the nodes a query selects, from the index,
//! with their claims and reputation; each answer kept a second while no
//! node changed what it offers, and made once however many ask for it at
//! the same moment.

use std::collections::HashMap;

use wire::registry::{NodeList, NodeQuery};
use wire::{NodeId, UnixMillis};

use super::{claimed, query, Registry, RegistryError};

/// The turn to make one query's answer.
pub(super) type Gate = std::sync::Arc<tokio::sync::Mutex<()>>;

/// A `GET /nodes` answer as sent: good while the index's generation is
/// the same, for at most [`ANSWER_TTL`].
pub(super) struct Answer {
    generation: u64,
    at: std::time::Instant,
    etag: String,
    body: axum::body::Bytes,
}

/// How long a `GET /nodes` answer is sent again unchanged while no node
/// changed what it offers (its liveness and load may be this old; the
/// answer says `max-age=2`).
const ANSWER_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Answers kept at most (distinct queries); then they start again.
const ANSWERS_KEPT: usize = 1024;

impl Registry {
    /// `GET /nodes?{raw}`: the JSON of [`Registry::list`] and its ETag,
    /// the same answer again while no node changed what it offers, for at
    /// most a second. (A node's load and last beat change all the time:
    /// a list that waits for none of them to change would never be kept.)
    /// Asked many times at once, a query is answered once.
    pub(crate) async fn list_json(
        &self,
        raw: &str,
        q: &NodeQuery,
        now: UnixMillis,
    ) -> Result<(String, axum::body::Bytes), RegistryError> {
        let generation = self.index.generation();
        let kept = |answers: &HashMap<String, Answer>| {
            answers
                .get(raw)
                .filter(|a| a.generation == generation && a.at.elapsed() < ANSWER_TTL)
                .map(|a| (a.etag.clone(), a.body.clone()))
        };
        if let Some(hit) = kept(&self.answers.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(hit);
        }
        // One answer made at a time per query: the others wait and send it.
        let gate = {
            let mut answering = self.answering.lock().unwrap_or_else(|e| e.into_inner());
            if answering.len() >= ANSWERS_KEPT {
                answering.retain(|_, gate| std::sync::Arc::strong_count(gate) > 1);
            }
            answering.entry(raw.to_owned()).or_default().clone()
        };
        let _turn = gate.lock().await;
        if let Some(hit) = kept(&self.answers.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(hit);
        }
        let list = self.list(q, now).await?;
        self.answers_made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = axum::body::Bytes::from(serde_json::to_vec(&list)?);
        let etag = format!("\"{}\"", &wire::Sha256Digest::of(&body).to_string()[..32]);
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if answers.len() >= ANSWERS_KEPT {
            answers.clear();
        }
        answers.insert(
            raw.to_owned(),
            Answer {
                generation,
                at: std::time::Instant::now(),
                etag: etag.clone(),
                body: body.clone(),
            },
        );
        Ok((etag, body))
    }

    /// A claim or an operator's public name changed (through this
    /// server): listings show it at once.
    pub(crate) fn claims_changed(&self) {
        self.claims.changed();
        // Answers being made meanwhile are not kept either.
        self.index.changed();
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// A page of the nodes that `q` selects.
    pub(crate) async fn list(
        &self,
        q: &NodeQuery,
        now: UnixMillis,
    ) -> Result<NodeList, RegistryError> {
        let (limit, after) = query::page_of(q)?;
        let mut list = {
            let scores = self.reputations.scores();
            self.index
                .list(q, after.as_ref(), limit, now, &|id| scores.get(id, now).0)
        };
        let ids: Vec<NodeId> = list.nodes.iter().map(|n| n.peer_id).collect();
        let claims = self.claims.of(&self.store, &ids).await?;
        list.nodes = list
            .nodes
            .into_iter()
            .map(|n| self.reputed(claimed(n, &claims), now))
            .collect();
        Ok(list)
    }
}

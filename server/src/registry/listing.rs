//! `GET /nodes`: a page of the nodes a query selects, from the index,
//! with their claims and reputation; each answer kept a second while no
//! node changed what it offers (then sent a few seconds more while a
//! fresh one is made in the background), and made once however many ask
//! for it at the same moment.

use wire::registry::{NodeList, NodeQuery};
use wire::{NodeId, UnixMillis};

use super::{claimed, query, Registry, RegistryError};

/// The turn to make one query's answer.
pub(super) type Gate = std::sync::Arc<tokio::sync::Mutex<()>>;

/// How fresh the kept answer to a query is.
enum Kept {
    /// Good to send.
    Fresh((String, axum::body::Bytes)),
    /// Past [`ANSWER_TTL`], within [`ANSWER_STALE`], no node changed.
    Stale((String, axum::body::Bytes)),
    /// None, another generation's, or too old.
    None,
}

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
/// How long past [`ANSWER_TTL`] an answer is still sent while a fresh
/// one is made in the background; older, a request waits for the new one.
const ANSWER_STALE: std::time::Duration = std::time::Duration::from_secs(5);
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
        match self.kept(raw, generation) {
            Kept::Fresh(hit) => return Ok(hit),
            // Only older than a second, no node changed: sent as it is
            // while one refresh is made in the background, so that no
            // request waits on the database (the claims' read) for
            // liveness and load that moved a second on.
            Kept::Stale(hit) => {
                if let Ok(turn) = self.gate(raw).try_lock_owned() {
                    let registry = self.clone();
                    let (raw, q) = (raw.to_owned(), q.clone());
                    tokio::spawn(async move {
                        let _turn = turn;
                        let generation = registry.index.generation();
                        if let Kept::Fresh(_) = registry.kept(&raw, generation) {
                            return;
                        }
                        if let Err(e) = registry
                            .answer(&raw, &q, UnixMillis::now(), generation)
                            .await
                        {
                            tracing::warn!(error = %e, "could not refresh a /nodes answer");
                        }
                    });
                }
                return Ok(hit);
            }
            Kept::None => {}
        }
        // One answer made at a time per query: the others wait and send it.
        let gate = self.gate(raw);
        let _turn = gate.lock().await;
        if let Kept::Fresh(hit) = self.kept(raw, generation) {
            return Ok(hit);
        }
        self.answer(raw, q, now, generation).await
    }

    /// The kept answer to `raw`, if any, and how fresh it is.
    fn kept(&self, raw: &str, generation: u64) -> Kept {
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(a) = answers.get(raw).filter(|a| a.generation == generation) else {
            return Kept::None;
        };
        let hit = (a.etag.clone(), a.body.clone());
        match a.at.elapsed() {
            age if age < ANSWER_TTL => Kept::Fresh(hit),
            age if age < ANSWER_STALE => Kept::Stale(hit),
            _ => Kept::None,
        }
    }

    /// The turn to make `raw`'s answer.
    fn gate(&self, raw: &str) -> Gate {
        let mut answering = self.answering.lock().unwrap_or_else(|e| e.into_inner());
        if answering.len() >= ANSWERS_KEPT {
            answering.retain(|_, gate| std::sync::Arc::strong_count(gate) > 1);
        }
        answering.entry(raw.to_owned()).or_default().clone()
    }

    /// Makes `raw`'s answer as of `now` and keeps it (as of `generation`).
    async fn answer(
        &self,
        raw: &str,
        q: &NodeQuery,
        now: UnixMillis,
        generation: u64,
    ) -> Result<(String, axum::body::Bytes), RegistryError> {
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

    /// Waits for an answer to `raw` being made now (tests).
    #[cfg(test)]
    pub(super) async fn answered(&self, raw: &str) {
        let gate = self.gate(raw);
        let _turn = gate.lock().await;
    }

    /// Makes every kept answer `by` older (tests).
    #[cfg(test)]
    pub(super) fn age_answers(&self, by: std::time::Duration) {
        for a in self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values_mut()
        {
            a.at = a.at.checked_sub(by).unwrap_or(a.at);
        }
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

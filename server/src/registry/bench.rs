//! A job's choice of node among many, in process (for `cargo bench -p
//! server --bench registry`): the index's choice (a model's nodes read
//! cheapest first, stopping once no dearer node could win) against the
//! same choice made by weighing every node that offers the model (what it
//! did before), on the same index, in alternation.

use std::time::{Duration, Instant};

use wire::registry::NodeInfo;
use wire::{NodeId, UnixMillis};

use super::index::{Index, Wanted};
use super::store::NodeRow;
use crate::reputation::evidence::routing_cost;

/// A score from 50 to 99 that is the same for the same node in every run,
/// and no recent failure.
fn score(node: &NodeId) -> (u8, u32) {
    let bytes = node.to_string().into_bytes();
    let sum: u32 = bytes.iter().map(|b| u32::from(*b)).sum();
    (50 + (sum % 50) as u8, 0)
}

/// Times `rounds` choices of the best three nodes for `model` among
/// `nodes`, each way: (the index's choice, every node weighed).
pub fn choices(nodes: Vec<NodeInfo>, model: &str, rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    let index = Index::default();
    let now = nodes
        .iter()
        .map(|n| n.last_seen)
        .max()
        .unwrap_or(UnixMillis(0));
    for node in &nodes {
        index.put(NodeRow::of(node));
    }
    // Scores as the registry keeps them: a map read per node.
    let scores: std::collections::HashMap<NodeId, (u8, u32)> = nodes
        .iter()
        .map(|n| (n.peer_id, score(&n.peer_id)))
        .collect();
    let score = |id: &NodeId| scores.get(id).copied().unwrap_or((86, 0));
    let wanted = Wanted {
        model,
        only: None,
        pool: None,
        max_price: None,
    };
    let mut fast = Vec::with_capacity(rounds);
    let mut full = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let chosen = index.for_job(&wanted, now, 3, &score);
        fast.push(started.elapsed());
        let started = Instant::now();
        let weighed = weigh_all(&nodes, model, 3, &score);
        full.push(started.elapsed());
        // Both ways choose the same nodes.
        let ids: Vec<NodeId> = chosen.iter().map(|n| n.peer_id).collect();
        assert_eq!(ids, weighed, "the two choices differ");
    }
    (fast, full)
}

/// Every available node offering `model` weighed, the best `keep`.
fn weigh_all(
    nodes: &[NodeInfo],
    model: &str,
    keep: usize,
    score: &dyn Fn(&NodeId) -> (u8, u32),
) -> Vec<NodeId> {
    let mut weighed: Vec<(u64, u32, std::cmp::Reverse<UnixMillis>, String, NodeId)> = nodes
        .iter()
        .filter(|n| n.is_available())
        .filter_map(|n| {
            let offer = n.offer(model)?;
            let (s, f) = score(&n.peer_id);

            Some((
                routing_cost(offer.price_msat, s, f),
                n.active_jobs,
                std::cmp::Reverse(n.last_seen),
                n.peer_id.to_string(),
                n.peer_id,
            ))
        })
        .collect();
    let keep = keep.min(weighed.len());
    if keep > 0 && weighed.len() > keep {
        weighed.select_nth_unstable(keep - 1);
    }
    weighed.truncate(keep);
    weighed.sort();
    weighed.into_iter().map(|w| w.4).collect()
}

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

/// Heartbeat batch writes, in process, on an embedded database in `dir`
/// holding `nodes`, two rounds each way (the first creates what the
/// second updates; the second is what a server does all day): logged
/// (one record a batch: what the registry does each second), folded
/// into the nodes' `live` rows (what it does every half minute, one row
/// per node however often it beat), and written into their whole node
/// rows (what it did before, the baseline). Beats per second, each way,
/// of the second round.
pub async fn beat_writes(nodes: Vec<NodeInfo>, dir: &std::path::Path) -> (f64, f64, f64) {
    use super::store::{NodeStore, StoredBeat};
    let db = crate::db::Db::connect(&crate::db::DbConfig {
        url: format!("surrealkv://{}?sync=never", dir.display()),
        namespace: "b".into(),
        database: "b".into(),
        credentials: None,
    })
    .await
    .expect("an embedded database opens");
    for batch in nodes.chunks(1000) {
        let rows: Vec<serde_json::Value> = batch
            .iter()
            .map(|n| {
                let mut row = serde_json::to_value(NodeRow::of(n)).expect("a row");
                row["id"] = serde_json::json!(n.peer_id.to_string());
                if let Some(row) = row.as_object_mut() {
                    row.retain(|_, v| !v.is_null());
                }
                row
            })
            .collect();
        db.execute(
            "INSERT INTO node $rows RETURN NONE",
            serde_json::json!({ "rows": rows }),
        )
        .await
        .expect("rows inserted");
    }
    let store = NodeStore::new(db.clone());
    let start = UnixMillis::now().0;
    let beats = |round: u64| -> Vec<StoredBeat> {
        nodes
            .iter()
            .map(|n| StoredBeat {
                id: n.peer_id.to_string(),
                seen: UnixMillis(start + round),
                signed: UnixMillis(start + round),
                active: (round % 3) as u32,
            })
            .collect()
    };
    let mut logged = 0.0;
    for round in 1..=2 {
        let beats = beats(round);
        let started = Instant::now();
        store
            .append_log("bench", UnixMillis(start + round), &beats, &[])
            .await
            .expect("beats logged");
        logged = nodes.len() as f64 / started.elapsed().as_secs_f64();
    }
    let mut live = 0.0;
    for round in 1..=2 {
        let beats = beats(round);
        let started = Instant::now();
        store.fold_beats(&beats).await.expect("beats written");
        live = nodes.len() as f64 / started.elapsed().as_secs_f64();
    }
    let mut whole = 0.0;
    for round in 3..=4 {
        let beats = beats(round);
        let started = Instant::now();
        for batch in beats.chunks(1000) {
            db.execute(
                "FOR $b IN $beats { \
                   UPDATE type::record('node', $b.id) \
                   SET last_seen = $b.seen, last_signed = $b.signed, active_jobs = $b.active \
                   WHERE last_signed < $b.signed RETURN NONE; \
                 };",
                serde_json::json!({ "beats": batch }),
            )
            .await
            .expect("beats written");
        }
        whole = nodes.len() as f64 / started.elapsed().as_secs_f64();
    }
    (logged, live, whole)
}

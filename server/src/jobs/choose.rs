//! Choosing the node for a job, from the registry's view of the network.

use std::cmp::Reverse;

use wire::registry::{ModelOffer, NodeInfo, NodeStatus, ReachState};
use wire::{MilliSats, NodeId};

use super::JobError;
use crate::reputation::evidence::routing_cost;

/// The nodes a job may run on, best first: available (online, accepting
/// jobs and inside its schedule), offering the model (by name or hash),
/// the named node if there is one, in the pool if one is asked for, at or
/// under the maximum price, not found unreachable. Nodes this server has
/// reached first (then those not dialled yet); the cheapest first, as
/// weighed by reputation and recent failures; then the least busy; then
/// the freshest. Never empty: no node is an error that says why.
pub(crate) fn rank_nodes<'a>(
    nodes: &'a [NodeInfo],
    model: &str,
    only: Option<NodeId>,
    pool: Option<&str>,
    max_price: Option<MilliSats>,
) -> Result<Vec<(&'a NodeInfo, &'a ModelOffer)>, JobError> {
    let offering: Vec<(&NodeInfo, &ModelOffer)> = nodes
        .iter()
        .filter_map(|n| n.offer(model).map(|o| (n, o)))
        .collect();
    if offering.is_empty() {
        return Err(JobError::UnknownModel(model.to_owned()));
    }
    let chosen: Vec<_> = offering
        .into_iter()
        .filter(|(n, _)| only.is_none_or(|id| n.peer_id == id))
        .collect();
    if let (Some(id), true) = (only, chosen.is_empty()) {
        return Err(JobError::NoNodeAvailable(format!(
            "node {id} does not offer model `{model}`"
        )));
    }
    let chosen: Vec<_> = chosen
        .into_iter()
        .filter(|(n, _)| pool.is_none_or(|p| n.in_pool(p)))
        .collect();
    if let (Some(p), true) = (pool, chosen.is_empty()) {
        return Err(JobError::NoNodeAvailable(format!(
            "no node in pool `{p}` offers model `{model}`"
        )));
    }
    let available: Vec<_> = chosen
        .into_iter()
        .filter(|(n, _)| n.is_available())
        .collect();
    if available.is_empty() {
        let online = |id: NodeId| {
            nodes
                .iter()
                .find(|n| n.peer_id == id && n.status == NodeStatus::Online)
        };
        return Err(JobError::NoNodeAvailable(
            match only.map(|id| (id, online(id))) {
                Some((id, Some(n))) if !n.accepting_jobs => {
                    format!("node {id} is paused by its operator")
                }
                Some((id, Some(n))) => match n.schedule.and_then(|s| s.opens_at) {
                    Some(at) => format!(
                        "node {id} is outside its schedule; it opens again at {}",
                        wire::schedule::utc_text(at)
                    ),
                    None => format!("node {id} is outside its schedule"),
                },
                Some((id, None)) => format!("node {id} is offline"),
                None => format!("no online node takes jobs for model `{model}` now"),
            },
        ));
    }
    let cheapest = available.iter().map(|(_, o)| o.price_msat).min();
    let mut ranked: Vec<_> = available
        .into_iter()
        .filter(|(_, o)| max_price.is_none_or(|max| o.price_msat <= max))
        .collect();
    if ranked.is_empty() {
        return Err(JobError::NoNodeAvailable(format!(
            "no online node offers `{model}` at or below {} msat (cheapest: {} msat)",
            max_price.unwrap_or_default().0,
            cheapest.unwrap_or_default().0
        )));
    }
    // Nodes this server has reached before nodes it has not dialled yet;
    // then by price weighed by reputation (`reputation::evidence`).
    ranked.sort_by_key(|(n, o)| {
        let cost = match &n.reputation {
            Some(r) => routing_cost(o.price_msat, r.score, r.recent_failures),
            None => o.price_msat.0,
        };
        (
            n.reach.state != ReachState::Reached,
            cost,
            n.active_jobs,
            Reverse(n.last_seen),
            n.peer_id,
        )
    });
    Ok(ranked)
}

/// The best node of [`rank_nodes`].
#[cfg(test)]
fn choose_node<'a>(
    nodes: &'a [NodeInfo],
    model: &str,
    only: Option<NodeId>,
    pool: Option<&str>,
    max_price: Option<MilliSats>,
) -> Result<(&'a NodeInfo, &'a ModelOffer), JobError> {
    Ok(rank_nodes(nodes, model, only, pool, max_price)?[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::fixtures::{node_id, node_info, offer};
    use wire::registry::Task;
    use wire::{Sha256Digest, UnixMillis};

    fn node(seed: u8, model: &str, price: u64, online: bool, active_jobs: u32) -> NodeInfo {
        let mut n = node_info(seed, vec![offer(model, Task::Embedding, price)]);
        if !online {
            n.status = NodeStatus::Offline;
        }
        n.active_jobs = active_jobs;
        n.last_seen = UnixMillis(u64::from(seed));
        n
    }

    #[test]
    fn price_is_weighed_by_reputation_and_recent_failures() {
        let reputation = |score, recent_failures| wire::reputation::Reputation {
            score,
            uptime_pct: None,
            jobs: 0,
            failed: 0,
            completion_pct: None,
            recent_failures,
            latency: vec![],
            canaries_passed: 0,
            canaries_failed: 0,
            disputes_lost: 0,
            gpus_backed: vec![],
        };
        let mut nodes = vec![node(1, "m", 100, true, 0), node(2, "m", 300, true, 0)];
        nodes[0].reputation = Some(reputation(86, 0));
        nodes[1].reputation = Some(reputation(86, 0));
        let best =
            |nodes: &[NodeInfo]| choose_node(nodes, "m", None, None, None).unwrap().0.peer_id;
        assert_eq!(best(&nodes), nodes[0].peer_id);
        nodes[0].reputation = Some(reputation(86, 2));
        assert_eq!(best(&nodes), nodes[1].peer_id);
        nodes[0].reputation = Some(reputation(25, 0));
        assert_eq!(best(&nodes), nodes[1].peer_id);
    }

    #[test]
    fn cheapest_online_node_with_the_model_is_chosen() {
        let nodes = vec![
            node(1, "m", 300, true, 0),
            node(2, "m", 100, false, 0),
            node(3, "m", 200, true, 0),
            node(4, "other", 1, true, 0),
        ];
        let (n, o) = choose_node(&nodes, "m", None, None, None).unwrap();
        assert_eq!(n.peer_id, nodes[2].peer_id);
        assert_eq!(o.price_msat, MilliSats(200));
    }

    #[test]
    fn a_paused_node_is_passed_over_however_cheap() {
        let mut nodes = vec![node(1, "m", 300, true, 0), node(2, "m", 1, true, 0)];
        nodes[1].accepting_jobs = false;
        let (n, _) = choose_node(&nodes, "m", None, None, None).unwrap();
        assert_eq!(n.peer_id, nodes[0].peer_id);
        let err = choose_node(&nodes, "m", Some(nodes[1].peer_id), None, None).unwrap_err();
        assert!(err.to_string().contains("paused"), "{err}");
    }

    #[test]
    fn model_can_be_named_by_hash() {
        let nodes = vec![node(1, "m", 300, true, 0)];
        let hash = Sha256Digest::of(b"m").to_string();
        assert!(choose_node(&nodes, &hash, None, None, None).is_ok());
    }

    #[test]
    fn every_node_that_may_take_the_job_is_ranked_best_first() {
        let nodes = vec![
            node(1, "m", 300, true, 0),
            node(2, "m", 100, true, 2),
            node(3, "m", 100, true, 0),
            node(4, "m", 50, false, 0),
            node(5, "m", 900, true, 0),
        ];
        let ranked: Vec<_> = rank_nodes(&nodes, "m", None, None, Some(MilliSats(300)))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n.peer_id)
            .collect();
        assert_eq!(
            ranked,
            vec![nodes[2].peer_id, nodes[1].peer_id, nodes[0].peer_id],
            "cheapest, then least busy; offline and too dear left out"
        );
    }

    #[test]
    fn equal_prices_go_to_the_least_busy_node() {
        let nodes = vec![node(1, "m", 100, true, 3), node(2, "m", 100, true, 1)];
        let (n, _) = choose_node(&nodes, "m", None, None, None).unwrap();
        assert_eq!(n.peer_id, nodes[1].peer_id);
    }

    #[test]
    fn max_price_excludes_dearer_nodes_and_says_what_the_cheapest_costs() {
        let nodes = vec![node(1, "m", 300, true, 0), node(2, "m", 200, true, 0)];
        assert!(choose_node(&nodes, "m", None, None, Some(MilliSats(200))).is_ok());
        let err = choose_node(&nodes, "m", None, None, Some(MilliSats(199))).unwrap_err();
        assert!(matches!(err, JobError::NoNodeAvailable(_)));
        assert!(err.to_string().contains("cheapest: 200 msat"), "{err}");
    }

    #[test]
    fn unknown_model_and_offline_nodes_are_told_apart() {
        let nodes = vec![node(1, "m", 300, false, 0)];
        assert!(matches!(
            choose_node(&nodes, "nope", None, None, None),
            Err(JobError::UnknownModel(_))
        ));
        assert!(matches!(
            choose_node(&nodes, "m", None, None, None),
            Err(JobError::NoNodeAvailable(_))
        ));
    }

    #[test]
    fn a_named_node_is_used_even_when_dearer() {
        let nodes = vec![node(1, "m", 300, true, 0), node(2, "m", 100, true, 0)];
        let (n, _) = choose_node(&nodes, "m", Some(nodes[0].peer_id), None, None).unwrap();
        assert_eq!(n.peer_id, nodes[0].peer_id);
        assert!(matches!(
            choose_node(&nodes, "m", Some(node_id(9)), None, None),
            Err(JobError::NoNodeAvailable(_))
        ));
    }

    #[test]
    fn a_node_outside_its_schedule_is_passed_over_and_says_when_it_opens() {
        let mut nodes = vec![node(1, "m", 300, true, 0), node(2, "m", 1, true, 0)];
        nodes[1].schedule = Some(wire::schedule::ScheduleStatus {
            open: false,
            opens_at: Some(UnixMillis(1_800_000_000_000)),
            closes_at: None,
        });
        let (n, _) = choose_node(&nodes, "m", None, None, None).unwrap();
        assert_eq!(n.peer_id, nodes[0].peer_id);
        let err = choose_node(&nodes, "m", Some(nodes[1].peer_id), None, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("outside its schedule; it opens again at 2027-01-15 08:00 UTC"),
            "{err}"
        );
    }

    #[test]
    fn a_job_for_a_pool_goes_only_to_its_nodes() {
        let mut nodes = vec![node(1, "m", 100, true, 0), node(2, "m", 300, true, 0)];
        nodes[1].pools = vec!["eu-west".into()];
        let (n, _) = choose_node(&nodes, "m", None, Some("eu-west"), None).unwrap();
        assert_eq!(
            n.peer_id, nodes[1].peer_id,
            "the cheaper node is not in the pool"
        );
        let err = choose_node(&nodes, "m", None, Some("us-east"), None).unwrap_err();
        assert!(
            err.to_string().contains("no node in pool `us-east`"),
            "{err}"
        );
    }
}

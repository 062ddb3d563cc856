//! The registry's rules, without storage: when a node counts as online,
//! which signed messages are fresh, what a registration may hold, which
//! nodes a `GET /nodes` query selects, and how its pages are cut.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use wire::registry::{
    ModelOffer, NodeInfo, NodeQuery, NodeSort, NodeStatus, Registration, MAX_HEARTBEAT_MS,
    MAX_MODELS_PER_NODE, MAX_MULTIADDRS, MIN_HEARTBEAT_MS, MISSED_HEARTBEATS_OFFLINE,
};
use wire::{NodeId, UnixMillis};

use super::RegistryError;

/// Signed messages more than this far from the server's clock are refused.
pub(crate) const MAX_CLOCK_SKEW_MS: u64 = 60_000;
pub(crate) const DEFAULT_PAGE: u32 = 100;
pub(crate) const MAX_PAGE: u32 = 500;

/// Refuses signed messages too far from our clock; together with the
/// strictly-increasing timestamp per node this bounds replays.
pub(crate) fn check_fresh(timestamp: UnixMillis, now: UnixMillis) -> Result<(), RegistryError> {
    let skew_ms = timestamp.abs_diff(now);
    if skew_ms > MAX_CLOCK_SKEW_MS {
        return Err(RegistryError::ClockSkew {
            skew_ms,
            max_ms: MAX_CLOCK_SKEW_MS,
        });
    }
    Ok(())
}

pub(crate) fn validate_registration(r: &Registration) -> Result<(), RegistryError> {
    let bad = |m: String| Err(RegistryError::InvalidRegistration(m));
    if r.multiaddrs.len() > MAX_MULTIADDRS {
        return bad(format!("at most {MAX_MULTIADDRS} multiaddrs"));
    }
    for a in &r.multiaddrs {
        if a.parse::<p2p::Multiaddr>().is_err() {
            return bad(format!("`{a}` is not a multiaddr"));
        }
    }
    if r.models.len() > MAX_MODELS_PER_NODE {
        return bad(format!("at most {MAX_MODELS_PER_NODE} models"));
    }
    if let Some(address) = &r.payout_address {
        wire::billing::check_lightning_address(address)
            .map_err(RegistryError::InvalidRegistration)?;
    }
    for m in &r.models {
        if m.name.is_empty() || m.name.len() > 128 {
            return bad("model names must be 1 to 128 bytes".into());
        }
        if m.device.len() > 32 {
            return bad("device names must be at most 32 bytes".into());
        }
    }
    if !(MIN_HEARTBEAT_MS..=MAX_HEARTBEAT_MS).contains(&r.heartbeat_interval_ms) {
        return bad(format!(
            "heartbeat_interval_ms must be {MIN_HEARTBEAT_MS} to {MAX_HEARTBEAT_MS}"
        ));
    }
    if r.version.len() > 64 || r.hardware.cpu_model.len() > 256 || r.hardware.gpus.len() > 64 {
        return bad("version, cpu model or GPU list too long".into());
    }
    Ok(())
}

/// A node is online until it has missed [`MISSED_HEARTBEATS_OFFLINE`] beats.
pub(crate) fn status_at(
    last_seen: UnixMillis,
    heartbeat_interval_ms: u64,
    now: UnixMillis,
) -> NodeStatus {
    let allowed = heartbeat_interval_ms.saturating_mul(MISSED_HEARTBEATS_OFFLINE);
    if now.0.saturating_sub(last_seen.0) <= allowed {
        NodeStatus::Online
    } else {
        NodeStatus::Offline
    }
}

/// Where a page of `GET /nodes` starts: after a peer id (the default
/// order), or after a score and peer id (best reputation first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cursor {
    Peer(String),
    Ranked(u8, String),
}

/// The query's page size and cursor, checked.
pub(crate) fn page_of(q: &NodeQuery) -> Result<(usize, Option<Cursor>), RegistryError> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(RegistryError::InvalidQuery(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    if q.min_vram_gb.is_some_and(|g| !g.is_finite() || g < 0.0) {
        return Err(RegistryError::InvalidQuery(
            "min_vram_gb must be a non-negative number".into(),
        ));
    }
    if q.min_reputation.is_some_and(|r| r > 100) {
        return Err(RegistryError::InvalidQuery(
            "min_reputation must be 0 to 100".into(),
        ));
    }
    if let Some(pool) = &q.pool {
        wire::registry::check_label(pool).map_err(RegistryError::InvalidQuery)?;
    }
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let ranked = q.sort == Some(NodeSort::Reputation);
    if after
        .as_ref()
        .is_some_and(|c| matches!(c, Cursor::Ranked(..)) != ranked)
    {
        return Err(RegistryError::InvalidQuery(
            "this cursor is from a list in another order".into(),
        ));
    }
    Ok((limit as usize, after))
}

/// Whether `node` passes every filter of `q` (pagination aside). Model,
/// task and price filters must all hold for one and the same offer.
#[cfg(test)]
pub(crate) fn matches(q: &NodeQuery, node: &NodeInfo) -> bool {
    matches_at(q, node, node.status)
}

/// [`matches`] for a node whose status is `status` (the index keeps nodes
/// as stored, and works their status out when read).
pub(crate) fn matches_at(q: &NodeQuery, node: &NodeInfo, status: NodeStatus) -> bool {
    if let Some(online) = q.online {
        if online != (status == NodeStatus::Online) {
            return false;
        }
    }
    if q.pool.as_deref().is_some_and(|p| !node.in_pool(p)) {
        return false;
    }
    if let Some(gpu) = q.gpu {
        if gpu == node.hardware.gpus.is_empty() {
            return false;
        }
    }
    if let Some(gb) = q.min_vram_gb {
        let need_mb = (gb * 1024.0).ceil() as u64;
        if node.hardware.max_vram_mb() < need_mb {
            return false;
        }
    }
    if q.model.is_some() || q.task.is_some() || q.max_price.is_some() {
        let offer_ok = |m: &ModelOffer| {
            q.model
                .as_deref()
                .is_none_or(|name| m.name == name || m.hash.to_string() == name)
                && q.task.is_none_or(|t| m.task == t)
                && q.max_price.is_none_or(|p| m.price_msat.0 <= p)
        };
        if !node.models.iter().any(offer_ok) {
            return false;
        }
    }
    true
}

pub(crate) fn encode_cursor(last: NodeId) -> String {
    B64URL.encode(format!("v1:{last}"))
}

/// The cursor after `last`, whose score was `score`, in a list by
/// reputation.
pub(crate) fn encode_ranked_cursor(score: u8, last: NodeId) -> String {
    B64URL.encode(format!("r1:{score}:{last}"))
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<Cursor, RegistryError> {
    let invalid = || RegistryError::InvalidQuery("invalid cursor".into());
    let bytes = B64URL.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let peer = |id: &str| -> Result<String, RegistryError> {
        id.parse::<NodeId>().map_err(|_| invalid())?;
        Ok(id.to_owned())
    };
    if let Some(id) = text.strip_prefix("v1:") {
        return Ok(Cursor::Peer(peer(id)?));
    }
    let (score, id) = text
        .strip_prefix("r1:")
        .and_then(|rest| rest.split_once(':'))
        .ok_or_else(invalid)?;
    let score: u8 = score.parse().map_err(|_| invalid())?;
    Ok(Cursor::Ranked(score, peer(id)?))
}

/// One page of `nodes` (sorted by peer id) after `cursor` (what the
/// index does without the copies).
#[cfg(test)]
pub(crate) fn paginate(
    nodes: Vec<NodeInfo>,
    after: Option<&str>,
    limit: usize,
) -> wire::registry::NodeList {
    let mut rest = nodes
        .into_iter()
        .skip_while(|n| after.is_some_and(|a| n.peer_id.to_string().as_str() <= a));
    let page: Vec<NodeInfo> = rest.by_ref().take(limit).collect();
    let next_cursor = match (page.last(), rest.next()) {
        (Some(last), Some(_)) => Some(encode_cursor(last.peer_id)),
        _ => None,
    };
    wire::registry::NodeList {
        nodes: page,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::fixtures::{gpu, node_info, offer};
    use wire::registry::{GpuInfo, Task};
    use wire::Sha256Digest;

    fn node(seed: u8, price: u64, gpus: Vec<GpuInfo>, online: bool) -> NodeInfo {
        let model = format!("model-{}", seed % 2);
        let mut n = node_info(seed, vec![offer(&model, Task::Embedding, price)]);
        n.hardware.gpus = gpus;
        if !online {
            n.status = NodeStatus::Offline;
        }
        n
    }

    fn peer_after(cursor: &str) -> String {
        match decode_cursor(cursor).unwrap() {
            Cursor::Peer(peer) => peer,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn node_goes_offline_after_three_missed_heartbeats() {
        assert_eq!(
            status_at(UnixMillis(0), 1000, UnixMillis(3000)),
            NodeStatus::Online
        );
        assert_eq!(
            status_at(UnixMillis(0), 1000, UnixMillis(3001)),
            NodeStatus::Offline
        );
        // A clock that went backwards is not "offline".
        assert_eq!(
            status_at(UnixMillis(5000), 1000, UnixMillis(0)),
            NodeStatus::Online
        );
    }

    #[test]
    fn filters_select_by_status_gpu_vram_model_task_and_price() {
        let cpu = node(1, 500, vec![], true);
        let mut small = node(2, 2000, vec![gpu(8 * 1024)], true);
        small.pools = vec!["eu-west".into(), "llama".into()];
        let big = node(3, 1000, vec![gpu(80 * 1024)], false);
        let all = [&cpu, &small, &big];
        let pick = |q: NodeQuery| -> Vec<u8> {
            all.iter()
                .enumerate()
                .filter(|(_, n)| matches(&q, n))
                .map(|(i, _)| i as u8)
                .collect()
        };
        let q = |f: fn(&mut NodeQuery)| {
            let mut q = NodeQuery::default();
            f(&mut q);
            q
        };
        assert_eq!(pick(NodeQuery::default()), vec![0, 1, 2]);
        assert_eq!(pick(q(|q| q.online = Some(true))), vec![0, 1]);
        assert_eq!(pick(q(|q| q.online = Some(false))), vec![2]);
        assert_eq!(pick(q(|q| q.gpu = Some(true))), vec![1, 2]);
        assert_eq!(pick(q(|q| q.gpu = Some(false))), vec![0]);
        assert_eq!(pick(q(|q| q.min_vram_gb = Some(24.0))), vec![2]);
        assert_eq!(pick(q(|q| q.min_vram_gb = Some(7.5))), vec![1, 2]);
        assert_eq!(pick(q(|q| q.model = Some("model-1".into()))), vec![0, 2]);
        assert_eq!(
            pick(q(
                |q| q.model = Some(Sha256Digest::of(b"model-0").to_string())
            )),
            vec![1]
        );
        assert_eq!(pick(q(|q| q.task = Some(Task::Embedding))), vec![0, 1, 2]);
        assert_eq!(pick(q(|q| q.max_price = Some(1000))), vec![0, 2]);
        assert_eq!(pick(q(|q| q.pool = Some("eu-west".into()))), vec![1]);
        // Price and model must hold for the same offer.
        assert_eq!(
            pick(q(|q| {
                q.model = Some("model-0".into());
                q.max_price = Some(1000);
            })),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn pages_cover_every_node_once_in_order() {
        let mut nodes: Vec<NodeInfo> = (1..=7).map(|s| node(s, 1, vec![], true)).collect();
        nodes.sort_by_key(|n| n.peer_id.to_string());
        let mut seen = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let after = cursor.as_deref().map(peer_after);
            let page = paginate(nodes.clone(), after.as_deref(), 3);
            assert!(page.nodes.len() <= 3);
            seen.extend(page.nodes.iter().map(|n| n.peer_id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, nodes.iter().map(|n| n.peer_id).collect::<Vec<_>>());
    }

    #[test]
    fn last_full_page_has_no_next_cursor() {
        let mut nodes: Vec<NodeInfo> = (1..=4).map(|s| node(s, 1, vec![], true)).collect();
        nodes.sort_by_key(|n| n.peer_id.to_string());
        let first = paginate(nodes.clone(), None, 2);
        let after = peer_after(first.next_cursor.as_deref().unwrap());
        let second = paginate(nodes, Some(&after), 2);
        assert_eq!(second.nodes.len(), 2);
        assert_eq!(second.next_cursor, None);
    }

    #[test]
    fn forged_cursors_and_bad_limits_are_rejected() {
        assert!(decode_cursor("!!!").is_err());
        assert!(decode_cursor(&B64URL.encode("v1:not-a-peer")).is_err());
        assert!(decode_cursor(&B64URL.encode("v2:x")).is_err());
        assert!(decode_cursor(&B64URL.encode("r1:101:x")).is_err());
        assert!(decode_cursor(&B64URL.encode("r1:999:x")).is_err());
        let peer = testkit::fixtures::node_id(1);
        assert_eq!(
            decode_cursor(&encode_ranked_cursor(42, peer)).unwrap(),
            Cursor::Ranked(42, peer.to_string())
        );
        // A cursor of one order is refused in the other.
        let ranked = NodeQuery {
            sort: Some(NodeSort::Reputation),
            cursor: Some(encode_cursor(peer)),
            ..Default::default()
        };
        assert!(matches!(
            page_of(&ranked),
            Err(RegistryError::InvalidQuery(_))
        ));
        let by_peer = NodeQuery {
            cursor: Some(encode_ranked_cursor(1, peer)),
            ..Default::default()
        };
        assert!(matches!(
            page_of(&by_peer),
            Err(RegistryError::InvalidQuery(_))
        ));
        for bad in [
            NodeQuery {
                limit: Some(0),
                ..Default::default()
            },
            NodeQuery {
                limit: Some(MAX_PAGE + 1),
                ..Default::default()
            },
            NodeQuery {
                min_vram_gb: Some(f64::NAN),
                ..Default::default()
            },
            NodeQuery {
                pool: Some("Not A Pool".into()),
                ..Default::default()
            },
            NodeQuery {
                min_reputation: Some(101),
                ..Default::default()
            },
        ] {
            assert!(matches!(page_of(&bad), Err(RegistryError::InvalidQuery(_))));
        }
    }

    #[test]
    fn timestamps_more_than_a_minute_off_are_refused() {
        let now = UnixMillis(1_000_000);
        assert!(check_fresh(UnixMillis(now.0 - 60_000), now).is_ok());
        assert!(check_fresh(UnixMillis(now.0 + 60_000), now).is_ok());
        assert!(matches!(
            check_fresh(UnixMillis(now.0 - 60_001), now),
            Err(RegistryError::ClockSkew { .. })
        ));
        assert!(matches!(
            check_fresh(UnixMillis(now.0 + 60_001), now),
            Err(RegistryError::ClockSkew { .. })
        ));
    }
}

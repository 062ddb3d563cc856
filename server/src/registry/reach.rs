//! Whether this server can reach each node: anyone can register a node or
//! publish an ad naming any addresses, so a node is dialled (its peer id
//! confirmed by the connection's handshake) before jobs count on it. A
//! node found unreachable stays listed, with the reason, and is not routed
//! to; it is tried again later, and at once when it names new addresses.
//! A job that could not reach its node is evidence too (see `jobs`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use wire::registry::{NodeReach, ReachState};
use wire::{NodeId, UnixMillis};

use super::{Registry, RegistryError};

/// How long one dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Dials at once.
const PARALLEL: usize = 32;
/// Nodes waiting to be dialled; more wait for the next sweep.
const QUEUE: usize = 4096;
/// How often the sweep looks for nodes due a try.
const SWEEP: Duration = Duration::from_secs(15);
/// An unreachable node is tried again after this long…
const RETRY_MS: u64 = 5 * 60_000;
/// …and a reached one that holds no connection to us after this long.
const RECHECK_MS: u64 = 30 * 60_000;

impl Registry {
    /// Asks for `node` to be dialled soon (dropped when the queue is full:
    /// the sweep finds it).
    pub(super) fn reach_soon(&self, node: NodeId) {
        if let Some(tx) = self.probes.get() {
            let _ = tx.try_send(node);
        }
    }

    /// Records what reaching `node` found (or a job's failure to).
    pub(crate) async fn set_reach(&self, node: NodeId, reach: NodeReach) {
        if let Err(e) = self.store.set_reach(node, &reach).await {
            tracing::warn!(error = %e, %node, "could not record whether the node is reachable");
        }
        self.index.set_reach(&node.to_string(), reach);
    }

    /// What a job found: its node answered, or could not be reached.
    pub(crate) async fn job_reached(&self, node: NodeId, reached: Result<(), String>) {
        let reach = NodeReach {
            state: if reached.is_ok() {
                ReachState::Reached
            } else {
                ReachState::Unreachable
            },
            checked_at: Some(UnixMillis::now()),
            reason: reached
                .err()
                .map(|e| format!("a job could not reach it: {e}")),
        };
        let unchanged = self.index.reach_state(&node.to_string()) == Some(reach.state);
        let failed = reach.state == ReachState::Unreachable;
        if !unchanged {
            self.set_reach(node, reach).await;
        }
        // One job's failure is not the last word (the node may have just
        // restarted): it is dialled again at once.
        if failed {
            self.reach_soon(node);
        }
    }

    /// Dials the nodes asked for and, every sweep, those due another try,
    /// until the network stops.
    pub(crate) async fn reach_forever(self, network: p2p::Client) -> Result<(), RegistryError> {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        if self.probes.set(tx).is_err() {
            return Ok(());
        }
        let slots = Arc::new(Semaphore::new(PARALLEL));
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let node = tokio::select! {
                node = rx.recv() => match node {
                    Some(node) => node,
                    None => return Ok(()),
                },
                _ = sweep.tick() => {
                    for node in self.index.due(UnixMillis::now(), RETRY_MS, RECHECK_MS) {
                        self.reach_soon(node);
                    }
                    continue;
                }
            };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return Ok(());
            };
            let registry = self.clone();
            let network = network.clone();
            tokio::spawn(async move {
                let reach = registry.dial(&network, node).await;
                tracing::debug!(%node, state = ?reach.state, reason = ?reach.reason, "reach checked");
                registry.set_reach(node, reach).await;
                drop(slot);
            });
        }
    }

    /// Dials `node` at the addresses it names (or finds it connected).
    async fn dial(&self, network: &p2p::Client, node: NodeId) -> NodeReach {
        let now = || Some(UnixMillis::now());
        let unreachable = |reason: String| NodeReach {
            state: ReachState::Unreachable,
            checked_at: now(),
            reason: Some(reason),
        };
        let reached = NodeReach {
            state: ReachState::Reached,
            checked_at: now(),
            reason: None,
        };
        let peer = node.peer_id();
        if network
            .connected_peers()
            .await
            .is_ok_and(|peers| peers.contains(&peer))
        {
            return reached;
        }
        let Some(info) = self.index.get(&node.to_string(), UnixMillis::now()) else {
            return unreachable("no longer listed".into());
        };
        let addrs: Vec<p2p::Multiaddr> = info
            .multiaddrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        if addrs.is_empty() {
            return unreachable("it names no address to dial".into());
        }
        match tokio::time::timeout(DIAL_TIMEOUT, network.connect(peer, addrs)).await {
            Ok(Ok(())) => reached,
            Ok(Err(e)) => unreachable(format!("dialling its addresses failed: {e}")),
            Err(_) => unreachable(format!(
                "no answer at its addresses within {} s",
                DIAL_TIMEOUT.as_secs()
            )),
        }
    }
}

//! The registry as a follower of the network: every ad the network layer
//! accepted updates its node, and nodes silent for longer than the
//! retention are forgotten. With a database shared with other servers, it
//! also follows what they write (see [`Registry::follow_others`]).

use std::time::Duration;

use wire::UnixMillis;

use super::Registry;

impl Registry {
    /// Runs until the network stops. Silent nodes are swept by a task of
    /// its own (a sweep writes and folds the heartbeat log first, which
    /// takes seconds at 100 000 nodes: ads must not wait on it).
    pub(crate) async fn follow_network(self, network: p2p::Client, retention: Duration) {
        let mut events = network.subscribe();
        let sweeper = tokio::spawn(self.clone().sweep_forever(retention));
        loop {
            match events.recv().await {
                Ok(p2p::NetworkEvent::AdAccepted { ad, .. }) => {
                    match self.ingest_ad(&ad.ad, UnixMillis::now()).await {
                        Ok(true) => {
                            tracing::debug!(node = %ad.ad.node_id, seq = ad.ad.seq, "ad stored")
                        }
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "could not store an ad"),
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "registry fell behind the network's ads");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
        sweeper.abort();
    }

    /// Forgets nodes silent for longer than `retention`, every tenth of
    /// it (200 ms to a minute), for ever.
    async fn sweep_forever(self, retention: Duration) {
        let sweep_every =
            (retention / 10).clamp(Duration::from_millis(200), Duration::from_secs(60));
        let mut sweep = tokio::time::interval(sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            sweep.tick().await;
            let ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
            let cutoff = UnixMillis(UnixMillis::now().0.saturating_sub(ms));
            match self.forget_silent(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(nodes = n, "forgot silent nodes"),
                Err(e) => tracing::warn!(error = %e, "could not sweep silent nodes"),
            }
        }
    }
}

impl Registry {
    /// Reads the node rows other servers sharing the database wrote (and
    /// this one's own, which change nothing) every `every`, into the
    /// index: a node that registered with, or beat to, another server is
    /// listed and routed to here too, within `every` and that server's
    /// batching of beats.
    pub(crate) async fn follow_others(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Rows seen up to here; a little overlap, for writes that were
        // still in flight at the last read.
        let mut since = UnixMillis::now();
        let overlap = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        loop {
            tick.tick().await;
            let started = UnixMillis::now();
            match self
                .catch_up(UnixMillis(since.0.saturating_sub(overlap)))
                .await
            {
                Ok(newest) => since = next_since(since, newest, started),
                Err(e) => tracing::warn!(error = %e, "could not read other servers' nodes"),
            }
        }
    }
}

/// How long a row may take from the time it names (`last_seen`: when its
/// beat was taken) to its commit: a server writes beats in batches every
/// second, longer under load.
const COMMIT_DELAY: Duration = Duration::from_secs(5);

/// Where the next catch-up reads from: the newest row seen, but never
/// further back than a read that started at `started` needs (rows named
/// more than [`COMMIT_DELAY`] before it were committed by then). Without
/// that floor, once writes stop, the last rows written stay inside the
/// window and are read again on every tick for good: thousands of rows
/// every 2 s after a burst of heartbeats at 100 000 nodes, which stalled
/// `/nodes` for half a second at a time.
fn next_since(since: UnixMillis, newest: UnixMillis, started: UnixMillis) -> UnixMillis {
    let floor = started
        .0
        .saturating_sub(u64::try_from(COMMIT_DELAY.as_millis()).unwrap_or(u64::MAX));
    UnixMillis(since.0.max(newest.0).max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_the_newest_row_and_moves_on_once_writes_stop() {
        let t = |s: u64| UnixMillis(1_000_000 + s * 1000);
        // Writes flowing: the newest row seen.
        assert_eq!(next_since(t(10), t(19), t(20)), t(19));
        // A row named long before its commit moves nothing back.
        assert_eq!(next_since(t(19), t(3), t(22)), t(19));
        // Writes stopped at 19: the window leaves them behind.
        assert_eq!(next_since(t(19), t(19), t(30)), t(25));
        assert_eq!(next_since(t(25), t(0), t(32)), t(27));
    }
}

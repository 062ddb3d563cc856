//! The registry as a follower of the network: every ad the network layer
//! accepted updates its node, and nodes silent for longer than the
//! retention are forgotten. With a database shared with other servers, it
//! also follows what they write (see [`Registry::follow_others`]).

use std::time::Duration;

use wire::UnixMillis;

use super::Registry;

impl Registry {
    /// Runs until the network stops.
    pub(crate) async fn follow_network(self, network: p2p::Client, retention: Duration) {
        let mut events = network.subscribe();
        let sweep_every =
            (retention / 10).clamp(Duration::from_millis(200), Duration::from_secs(60));
        let mut sweep = tokio::time::interval(sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(p2p::NetworkEvent::AdAccepted { ad, .. }) => {
                        match self.ingest_ad(&ad.ad, UnixMillis::now()).await {
                            Ok(true) => tracing::debug!(node = %ad.ad.node_id, seq = ad.ad.seq, "ad stored"),
                            Ok(false) => {}
                            Err(e) => tracing::warn!(error = %e, "could not store an ad"),
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "registry fell behind the network's ads");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = sweep.tick() => {
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
            match self
                .catch_up(UnixMillis(since.0.saturating_sub(overlap)))
                .await
            {
                Ok(newest) => since = since.max(newest),
                Err(e) => tracing::warn!(error = %e, "could not read other servers' nodes"),
            }
        }
    }
}

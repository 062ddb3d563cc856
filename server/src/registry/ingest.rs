//! What nodes send the registry: signed registrations and heartbeats over
//! HTTP, ads from the network, and other servers' rows on a shared
//! database. What changes a node is written at once (database, then
//! index); what changes only its liveness and load is taken in the index
//! and written once a second in batches.

use std::collections::HashMap;
use std::sync::Mutex;

use wire::ads::CapabilityAd;
use wire::registry::{Heartbeat, NodeInfo, Registration};
use wire::{NodeId, SignedEnvelope, UnixMillis};

use super::store::{Beat, Logged, StoredAd, StoredBeat};
use super::{index, query, Registry, RegistryError, BEAT_WRITES, FOLD_EVERY, FOLD_LAG_MS};

/// Beats and ads logged and not folded into `live` yet: the latest of
/// each node, and the newest of this server's log records they came from.
#[derive(Default)]
pub(super) struct Unfolded {
    beats: HashMap<NodeId, StoredBeat>,
    ads: HashMap<NodeId, StoredAd>,
    upto: UnixMillis,
}

/// Every pending write of `pending`, taken out: the nodes and the writes.
fn take<T>(pending: &Mutex<HashMap<NodeId, T>>) -> (Vec<NodeId>, Vec<T>) {
    std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()))
        .into_iter()
        .unzip()
}

/// Writes that failed, back in `pending` (again at the next write), unless
/// a newer one for the same node came meanwhile.
fn put_back<T>(pending: &Mutex<HashMap<NodeId, T>>, nodes: Vec<NodeId>, writes: Vec<T>) {
    let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
    for (node, write) in nodes.into_iter().zip(writes) {
        pending.entry(node).or_insert(write);
    }
}

impl Registry {
    /// Logs the heartbeats and ads taken since the last write: one
    /// record, however many nodes beat. Returns how many.
    pub(crate) async fn write_beats(&self) -> Result<usize, RegistryError> {
        let _one = self.writing.lock().await;
        let (ad_nodes, ads) = take(&self.ad_beats);
        let (beat_nodes, beats) = take(&self.beats);
        if ads.is_empty() && beats.is_empty() {
            return Ok(0);
        }
        // Each record of this server later than its last.
        let at = {
            let unfolded = self.unfolded.lock().unwrap_or_else(|e| e.into_inner());
            UnixMillis::now().max(UnixMillis(unfolded.upto.0 + 1))
        };
        if let Err(e) = self.store.append_log(&self.server, at, &beats, &ads).await {
            put_back(&self.ad_beats, ad_nodes, ads);
            put_back(&self.beats, beat_nodes, beats);
            return Err(e.into());
        }
        let written = ads.len() + beats.len();
        let mut unfolded = self.unfolded.lock().unwrap_or_else(|e| e.into_inner());
        unfolded.beats.extend(beat_nodes.into_iter().zip(beats));
        unfolded.ads.extend(ad_nodes.into_iter().zip(ads));
        unfolded.upto = at;
        Ok(written)
    }

    /// Folds the logged beats and ads into the nodes' `live` rows (one row
    /// write per node, however often it beat since the last fold), then
    /// deletes this server's log records they came from. Returns how many
    /// nodes.
    pub(crate) async fn fold_log(&self) -> Result<usize, RegistryError> {
        let _one = self.writing.lock().await;
        let (beats, ads, upto) = {
            let mut unfolded = self.unfolded.lock().unwrap_or_else(|e| e.into_inner());
            (
                std::mem::take(&mut unfolded.beats),
                std::mem::take(&mut unfolded.ads),
                unfolded.upto,
            )
        };
        let folded = beats.len() + ads.len();
        if folded == 0 {
            // Records folded before, still kept for followers, go now.
            if upto.0 > 0 {
                self.store
                    .drop_log(&self.server, upto, UnixMillis::now())
                    .await?;
            }
            return Ok(0);
        }
        let ads_written = {
            let ads: Vec<StoredAd> = ads.values().cloned().collect();
            self.store.fold_ads(&ads).await
        };
        let written = match ads_written {
            Ok(()) => {
                let beats: Vec<StoredBeat> = beats.values().cloned().collect();
                self.store.fold_beats(&beats).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            // Again at the next fold (the log still holds them).
            let mut unfolded = self.unfolded.lock().unwrap_or_else(|e| e.into_inner());
            for (node, beat) in beats {
                unfolded.beats.entry(node).or_insert(beat);
            }
            for (node, ad) in ads {
                unfolded.ads.entry(node).or_insert(ad);
            }
            return Err(e.into());
        }
        self.store
            .drop_log(&self.server, upto, UnixMillis::now())
            .await?;
        Ok(folded)
    }

    /// Reads the log records written after `since` into the index: at
    /// start-up (`to_fold`) every server's, into what this server folds
    /// too; following the database, the other servers'. The newest
    /// record's time.
    pub(super) async fn read_log(
        &self,
        since: UnixMillis,
        to_fold: bool,
    ) -> Result<UnixMillis, RegistryError> {
        let mut newest = since;
        for Logged {
            at,
            server,
            beats,
            ads,
        } in self
            .store
            // Following, this server's own records are what it already
            // holds (at 10 000 beats/s, megabytes of JSON every read).
            .log_since(since, (!to_fold).then_some(self.server.as_str()))
            .await?
        {
            newest = newest.max(at);
            for beat in &beats {
                self.index.logged(Some(beat), None);
            }
            for ad in &ads {
                self.index.logged(None, Some(ad));
            }
            if to_fold {
                let mut unfolded = self.unfolded.lock().unwrap_or_else(|e| e.into_inner());
                for beat in beats {
                    if let Ok(node) = beat.id.parse::<NodeId>() {
                        unfolded.beats.insert(node, beat);
                    }
                }
                for ad in ads {
                    if let Ok(node) = ad.id.parse::<NodeId>() {
                        unfolded.ads.insert(node, ad);
                    }
                }
                if server == self.server {
                    unfolded.upto = unfolded.upto.max(at);
                }
            }
        }
        Ok(newest)
    }

    /// Logs heartbeats every [`BEAT_WRITES`] and folds the log every
    /// [`FOLD_EVERY`] of those, for ever.
    pub(crate) async fn write_beats_forever(self) {
        let mut every = tokio::time::interval(BEAT_WRITES);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u32;
        loop {
            every.tick().await;
            if let Err(e) = self.write_beats().await {
                tracing::warn!(error = %e, "could not write heartbeats; trying again");
            }
            ticks += 1;
            if ticks.is_multiple_of(FOLD_EVERY) {
                if let Err(e) = self.fold_log().await {
                    tracing::warn!(error = %e, "could not fold the heartbeat log; trying again");
                }
            }
        }
    }

    /// Writes what is kept in memory only (heartbeats, evidence): when the
    /// server stops.
    pub(crate) async fn flush(&self) {
        if let Err(e) = self.write_beats().await {
            tracing::warn!(error = %e, "could not write the latest heartbeats");
        }
        if let Err(e) = self.fold_log().await {
            tracing::warn!(error = %e, "could not fold the heartbeat log");
        }
        if let Err(e) = self.reputations.flush().await {
            tracing::warn!(error = %e, "could not write the nodes' latest evidence");
        }
    }

    /// Takes a node's signed registration: signed by the node it names,
    /// fresh, within limits, and newer than anything taken from it before.
    pub(crate) async fn register_signed(
        &self,
        envelope: &SignedEnvelope,
        now: UnixMillis,
    ) -> Result<NodeInfo, RegistryError> {
        let registration: Registration = envelope.open()?;
        query::check_fresh(registration.timestamp, now)?;
        query::validate_registration(&registration)?;
        // Beats taken in memory may be newer than the table knows.
        if self
            .index
            .last_signed(&registration.node_id.to_string())
            .is_some_and(|t| registration.timestamp <= t)
        {
            return Err(RegistryError::Replay);
        }
        let info = self.register(&registration, now).await?;
        tracing::info!(peer_id = %registration.node_id, models = registration.models.len(), "node registered");
        Ok(info)
    }

    /// Stores a verified registration.
    pub(crate) async fn register(
        &self,
        r: &Registration,
        now: UnixMillis,
    ) -> Result<NodeInfo, RegistryError> {
        let row = self
            .store
            .register(r, now)
            .await?
            .ok_or(RegistryError::Replay)?;
        let node = row.peer_id();
        self.reputations.heard(node, now);
        let moved = self.index.put(row);
        let info = self
            .index
            .get(&node.to_string(), now)
            .ok_or(RegistryError::Replay)?;
        // New, at new addresses, or found unreachable before: dialled
        // (again).
        if moved || info.reach.state == wire::registry::ReachState::Unreachable {
            self.reach_soon(node);
        }
        Ok(info)
    }

    /// Takes a node's signed heartbeat, on the same terms as registrations.
    pub(crate) async fn heartbeat_signed(
        &self,
        envelope: &SignedEnvelope,
        now: UnixMillis,
    ) -> Result<(), RegistryError> {
        let beat: Heartbeat = envelope.open()?;
        query::check_fresh(beat.timestamp, now)?;
        // Most beats say only that the node is alive and how busy: taken in
        // memory, written within a second, in batches. One that changes
        // what the node is (paused, resumed), or of a node this server has
        // not seen (another server's), goes to the table at once.
        let id = beat.node_id.to_string();
        match self.index.beat(
            &id,
            beat.timestamp,
            now,
            beat.active_jobs,
            beat.accepting_jobs,
        ) {
            index::Beat::Taken => {
                self.reputations.heard(beat.node_id, now);
                self.beats.lock().unwrap_or_else(|e| e.into_inner()).insert(
                    beat.node_id,
                    StoredBeat {
                        id,
                        seen: now,
                        signed: beat.timestamp,
                        active: beat.active_jobs,
                    },
                );
                return Ok(());
            }
            index::Beat::Stale => return Err(RegistryError::Replay),
            index::Beat::ToStore => {}
        }
        match self.store.heartbeat(&beat, now).await? {
            Beat::Taken(row) => {
                let node = row.peer_id();
                self.reputations.heard(node, now);
                if self.index.put(*row) {
                    self.reach_soon(node);
                }
                Ok(())
            }
            Beat::Stale => Err(RegistryError::Replay),
            Beat::UnknownNode => Err(RegistryError::NotRegistered(beat.node_id)),
        }
    }

    /// Stores a node's capability ad (already verified by the network
    /// layer: signature, signer, freshness). Ads older than the newest one
    /// taken for this node are ignored. Returns whether it was stored.
    pub(crate) async fn ingest_ad(
        &self,
        ad: &CapabilityAd,
        now: UnixMillis,
    ) -> Result<bool, RegistryError> {
        // A banned node's ads say nothing anyone believes.
        if self.index.is_banned(&ad.node_id.to_string()) {
            return Ok(false);
        }
        // An ad that changes only the node's load: taken in memory,
        // written within a second (its row is not rewritten).
        match self.index.ad(ad, now) {
            index::Beat::Taken => {
                self.reputations.heard(ad.node_id, now);
                self.ad_beats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        ad.node_id,
                        StoredAd {
                            id: ad.node_id.to_string(),
                            seen: now,
                            seq: ad.seq,
                            active: ad.load.active_jobs,
                            queued: ad.load.queued_jobs,
                            top_bid: ad.load.top_bid_msat.unwrap_or_default(),
                        },
                    );
                return Ok(true);
            }
            index::Beat::Stale => return Ok(false),
            index::Beat::ToStore => {}
        }
        match self.store.ingest_ad(ad, now).await? {
            Some(row) => {
                self.reputations.heard(ad.node_id, now);
                if self.index.put(row) {
                    self.reach_soon(ad.node_id);
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Forgets nodes not heard from since `cutoff`. Returns how many.
    pub(crate) async fn forget_silent(&self, cutoff: UnixMillis) -> Result<usize, RegistryError> {
        // What this server heard is in the table first; what others heard
        // may be in their logs for up to a fold's interval: the table
        // forgets a node only once it is silent that much longer.
        self.write_beats().await?;
        self.fold_log().await?;
        let mut gone = self
            .store
            .forget_silent(UnixMillis(cutoff.0.saturating_sub(FOLD_LAG_MS)))
            .await?;
        // Deleted by another server sharing the database, or heard from
        // only in memory: silent here too.
        gone.extend(self.index.silent_since(cutoff));
        gone.sort();
        gone.dedup();
        self.index.remove(gone.iter().map(String::as_str));
        Ok(gone.len())
    }

    /// Puts the node rows written since `since` (by any server) into the
    /// index; the newest `last_seen` among them.
    pub(crate) async fn catch_up(&self, since: UnixMillis) -> Result<UnixMillis, RegistryError> {
        let mut newest = since;
        for row in self.store.seen_since(since).await? {
            newest = newest.max(row.last_seen());
            let node = row.peer_id();
            if self.index.put(row) {
                self.reach_soon(node);
            }
        }
        // Liveness logged since (its nodes' rows are in the index now).
        newest = newest.max(self.read_log(since, false).await?);
        // And the bans other servers found.
        self.load_bans().await?;
        Ok(newest)
    }
}

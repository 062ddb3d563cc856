//! Telling the network about this node without any server: signed
//! capability ads on gossip (and on the ad protocol), and provider records
//! in the DHT under each model's hash, its CID (as IPFS and every libp2p
//! implementation key it) and its name.

use std::time::Duration;

use p2p::NetworkEvent;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use wire::ads::{CapabilityAd, Load};
use wire::registry::{Hardware, ModelFetch, ModelOffer};
use wire::{NodeId, SignedEnvelope, UnixMillis};

use crate::admission::Gate;

/// An ad lives this many publishing intervals.
pub const AD_TTL_INTERVALS: u64 = 3;

/// What the node has to offer right now: its models once loaded, and the
/// models it is still downloading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub models: Vec<ModelOffer>,
    pub fetching: Vec<ModelFetch>,
}

pub struct Advertiser {
    pub network: p2p::Client,
    pub keypair: p2p::Keypair,
    pub node_id: NodeId,
    pub hardware: Hardware,
    /// Every change is advertised at once.
    pub catalog: watch::Receiver<Catalog>,
    /// When the node takes jobs; every opening and close is advertised.
    pub hours: crate::schedule::Hours,
    /// The public pools it has joined.
    pub pools: crate::saved::Setting<Vec<String>>,
    /// Where earnings go while nobody has enrolled the node.
    pub payout_address: Option<String>,
    pub interval: Duration,
    pub active: crate::admission::ActiveJobs,
    /// Whether the node takes jobs; every change is advertised at once.
    pub admission: Gate,
    /// The bids of the jobs it holds: the highest is advertised.
    pub bids: crate::jobs::Bids,
    pub(crate) last_seq: u64,
}

impl Advertiser {
    /// Puts provider records for the catalog's models in the DHT.
    pub async fn provide(&self) -> Result<(), p2p::NetworkError> {
        let keys: Vec<Vec<u8>> = self
            .catalog
            .borrow()
            .models
            .iter()
            .flat_map(|m| {
                [
                    p2p::model_key(&m.hash),
                    // The key other implementations look a CID up by.
                    p2p::model_cid_key(&m.hash),
                    p2p::model_name_key(&m.name),
                ]
            })
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.network.start_providing(keys).await
    }

    /// The next ad: current addresses and load, a larger sequence number.
    pub async fn next_ad(&mut self) -> Result<CapabilityAd, p2p::NetworkError> {
        let mut addrs = self.network.external_addrs().await?;
        if addrs.is_empty() {
            // Not yet confirmed reachable: offer what we listen on; dialers
            // that cannot use it will find us once relays or AutoNAT answer.
            addrs = self.network.listen_addrs().await?;
        }
        let now = UnixMillis::now();
        // The clock, bumped past the last ad: increasing even across restarts.
        self.last_seq = now.0.max(self.last_seq + 1);
        let active = self.active.count();
        let catalog = self.catalog.borrow().clone();
        // Jobs the node runs at once: one worker per model.
        let capacity = u32::try_from(catalog.models.len()).unwrap_or(u32::MAX);
        Ok(CapabilityAd {
            node_id: self.node_id,
            seq: self.last_seq,
            issued_at: now,
            ttl_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX / AD_TTL_INTERVALS)
                * AD_TTL_INTERVALS,
            multiaddrs: addrs
                .iter()
                .take(wire::registry::MAX_MULTIADDRS)
                .map(|a| a.to_string())
                .collect(),
            hardware: self.hardware.clone(),
            models: catalog.models,
            version: wire::VERSION.to_owned(),
            availability: self.hours.current().availability,
            pools: self.pools.get(),
            load: Load {
                active_jobs: active.min(capacity),
                queued_jobs: active.saturating_sub(capacity),
                capacity,
                top_bid_msat: self.bids.top(),
            },
            accepting_jobs: self.admission.accepting(),
            fetching: catalog
                .fetching
                .into_iter()
                .take(wire::registry::MAX_FETCHING)
                .collect(),
            payout_address: self.payout_address.clone(),
        })
    }

    async fn publish(&mut self) {
        let result = async {
            let ad = self.next_ad().await?;
            let envelope = SignedEnvelope::seal(&self.keypair, &ad)
                .map_err(|e| p2p::NetworkError::Transport(e.to_string()))?;
            self.network.publish_ad(envelope).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not publish our ad");
        }
    }

    /// Publishes an ad every interval, and at once when our addresses
    /// change (a confirmed address, a relay reservation), the catalog does,
    /// the node is paused or resumed, opens or closes by its schedule, or
    /// joins or leaves pools; puts provider records for new models.
    pub async fn run(mut self) {
        let mut events = self.network.subscribe();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Err(e) = self.provide().await {
            tracing::warn!(error = %e, "could not put provider records in the DHT yet");
        }
        let mut provided = self.catalog.borrow().models.len();
        let mut catalog_open = true;
        let mut admission = self.admission.watch();
        let mut hours = self.hours.watch();
        let mut pools = self.pools.watch();
        loop {
            tokio::select! {
                _ = tick.tick() => self.publish().await,
                Ok(()) = admission.changed() => {
                    admission.borrow_and_update();
                    self.publish().await;
                }
                Ok(()) = hours.changed() => {
                    hours.borrow_and_update();
                    self.publish().await;
                }
                Ok(()) = pools.changed() => {
                    pools.borrow_and_update();
                    self.publish().await;
                }
                changed = self.catalog.changed(), if catalog_open => {
                    if changed.is_err() {
                        // Nothing changes it any more; keep advertising it.
                        catalog_open = false;
                        continue;
                    }
                    let models = self.catalog.borrow_and_update().models.len();
                    if models != provided {
                        provided = models;
                        if let Err(e) = self.provide().await {
                            tracing::warn!(error = %e, "could not put provider records in the DHT yet");
                        }
                    }
                    self.publish().await;
                }
                event = events.recv() => match event {
                    Ok(NetworkEvent::ExternalAddrConfirmed(_) | NetworkEvent::RelayReservation { .. }) => {
                        self.publish().await;
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

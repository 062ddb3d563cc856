//! Capability ads: what a node offers right now (hardware, models, prices,
//! schedule, load), signed by its key, numbered, and valid for a short time.
//!
//! Nodes gossip them on [`ADS_TOPIC`] and answer them on
//! [`AD_PROTOCOL`](crate::AD_PROTOCOL). Every receiver checks them the same
//! way, with [`AdBook::accept`]: a forged ad (bad signature, or signed by
//! someone other than the node it describes), an expired one, one from the
//! future, or a replay of an older one is dropped.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::registry::{Hardware, ModelOffer, MAX_MODELS_PER_NODE, MAX_MULTIADDRS};
use crate::schedule::Availability;
use crate::signing::{Signable, SignedEnvelope, SigningError};
use crate::{MilliSats, ModelHash, NodeId, UnixMillis};

/// The gossipsub topic that carries ads.
pub const ADS_TOPIC: &str = "/infernet/ads/1";
/// Largest encoded ad (the signed envelope's JSON) accepted.
pub const MAX_AD_BYTES: usize = 64 * 1024;
/// Bounds on an ad's time to live.
pub const MIN_AD_TTL_MS: u64 = 1_000;
pub const MAX_AD_TTL_MS: u64 = 60 * 60 * 1_000;
/// How far an ad's issue time may be ahead of the receiver's clock.
pub const MAX_AD_CLOCK_SKEW_MS: u64 = 60_000;
/// An [`AdBook`] holds at most this many nodes by default.
pub const DEFAULT_AD_BOOK_CAPACITY: usize = 100_000;

/// How busy a node is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Load {
    /// Jobs running now.
    pub active_jobs: u32,
    /// Jobs waiting for a worker.
    pub queued_jobs: u32,
    /// Jobs the node runs at once before it queues.
    pub capacity: u32,
    /// The highest bid among the jobs it holds: what a job must outbid to
    /// go ahead of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_bid_msat: Option<MilliSats>,
}

impl Load {
    /// Waiting and running jobs per unit of capacity; 0 when idle.
    pub fn utilisation(&self) -> f64 {
        f64::from(self.active_jobs + self.queued_jobs) / f64::from(self.capacity.max(1))
    }
}

/// What a node signs and gossips about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CapabilityAd {
    pub node_id: NodeId,
    /// Grows with every ad the node issues (the node uses its clock in
    /// milliseconds, bumped when needed, so it survives restarts).
    pub seq: u64,
    pub issued_at: UnixMillis,
    /// The ad is void `ttl_ms` after `issued_at`.
    pub ttl_ms: u64,
    /// Where to dial the node, relay circuits included.
    pub multiaddrs: Vec<String>,
    pub hardware: Hardware,
    pub models: Vec<ModelOffer>,
    pub version: String,
    /// When the node takes jobs over the week ahead; absent: always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<Availability>,
    /// The public pools the node has joined (a region, a model family).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
    pub load: Load,
    /// False while the operator has paused or is draining the node.
    pub accepting_jobs: bool,
    /// Models the node is downloading, with their progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fetching: Vec<crate::registry::ModelFetch>,
    /// A Lightning address (LUD-16) its earnings are paid to while no
    /// operator has enrolled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout_address: Option<String>,
}

impl Signable for CapabilityAd {
    const DOMAIN: &'static str = "infernet/ad/v1";
    fn signer(&self) -> NodeId {
        self.node_id
    }
}

impl CapabilityAd {
    pub fn expires_at(&self) -> UnixMillis {
        UnixMillis(self.issued_at.0.saturating_add(self.ttl_ms))
    }

    pub fn is_expired(&self, now: UnixMillis) -> bool {
        now >= self.expires_at()
    }

    /// The offer for a model given by name or content hash.
    pub fn offer(&self, model: &str) -> Option<&ModelOffer> {
        self.models
            .iter()
            .find(|m| m.name == model || m.hash.to_string() == model)
    }

    pub fn offers_hash(&self, hash: &ModelHash) -> Option<&ModelOffer> {
        self.models.iter().find(|m| &m.hash == hash)
    }

    /// Takes jobs now: accepting, and inside its schedule.
    pub fn is_open(&self, now: UnixMillis) -> bool {
        self.accepting_jobs && self.availability.as_ref().is_none_or(|a| a.is_open(now))
    }

    /// Whether the node has joined `pool`.
    pub fn in_pool(&self, pool: &str) -> bool {
        self.pools.iter().any(|p| p == pool)
    }

    fn validate(&self) -> Result<(), AdError> {
        let invalid = |m: String| Err(AdError::Invalid(m));
        if !(MIN_AD_TTL_MS..=MAX_AD_TTL_MS).contains(&self.ttl_ms) {
            return invalid(format!(
                "ttl {} ms is outside {MIN_AD_TTL_MS}..={MAX_AD_TTL_MS}",
                self.ttl_ms
            ));
        }
        if self.models.len() > MAX_MODELS_PER_NODE {
            return invalid(format!(
                "{} models; at most {MAX_MODELS_PER_NODE}",
                self.models.len()
            ));
        }
        if self.multiaddrs.len() > MAX_MULTIADDRS {
            return invalid(format!(
                "{} addresses; at most {MAX_MULTIADDRS}",
                self.multiaddrs.len()
            ));
        }
        if let Some(address) = &self.payout_address {
            crate::billing::check_lightning_address(address).map_err(AdError::Invalid)?;
        }
        if self.fetching.len() > crate::registry::MAX_FETCHING
            || self.fetching.iter().any(|f| f.done_bytes > f.total_bytes)
        {
            return invalid(format!(
                "{} downloads reported; at most {}, each with done <= total",
                self.fetching.len(),
                crate::registry::MAX_FETCHING
            ));
        }
        if let Some(availability) = &self.availability {
            availability.check().map_err(AdError::Invalid)?;
        }
        crate::registry::check_pools(&self.pools).map_err(AdError::Invalid)?;
        Ok(())
    }
}

/// Why an ad was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdError {
    #[error("ad is {bytes} bytes; at most {MAX_AD_BYTES}")]
    TooLarge { bytes: usize },
    #[error("ad is not a signed envelope: {0}")]
    Malformed(String),
    #[error("ad signature: {0}")]
    Signature(#[from] SigningError),
    #[error("ad for {node} was published by {publisher}")]
    WrongPublisher { node: String, publisher: String },
    #[error("ad is invalid: {0}")]
    Invalid(String),
    #[error("ad expired {ago_ms} ms ago")]
    Expired { ago_ms: u64 },
    #[error("ad is issued {ahead_ms} ms in the future")]
    FromTheFuture { ahead_ms: u64 },
    #[error("ad {seq} is not newer than ad {latest} already held")]
    Replayed { seq: u64, latest: u64 },
    #[error("the ad book is full")]
    Full,
}

impl AdError {
    /// Whether the ad proves its sender misbehaves (a forgery or garbage),
    /// as opposed to being merely stale, which honest relaying can cause.
    pub fn is_forgery(&self) -> bool {
        matches!(
            self,
            AdError::TooLarge { .. }
                | AdError::Malformed(_)
                | AdError::Signature(_)
                | AdError::WrongPublisher { .. }
                | AdError::Invalid(_)
                | AdError::FromTheFuture { .. }
        )
    }
}

/// Checks an ad on its own: size, signature, signer, limits and time. Does
/// not know about earlier ads (see [`AdBook`] for replays).
pub fn verify_ad(envelope: &SignedEnvelope, now: UnixMillis) -> Result<CapabilityAd, AdError> {
    let size = envelope.public_key.len() + envelope.payload.len() + envelope.signature.len();
    if size > MAX_AD_BYTES {
        return Err(AdError::TooLarge { bytes: size });
    }
    let ad: CapabilityAd = envelope.open()?;
    ad.validate()?;
    if ad.issued_at.0 > now.0.saturating_add(MAX_AD_CLOCK_SKEW_MS) {
        return Err(AdError::FromTheFuture {
            ahead_ms: ad.issued_at.0 - now.0,
        });
    }
    if ad.is_expired(now) {
        return Err(AdError::Expired {
            ago_ms: now.0 - ad.expires_at().0,
        });
    }
    Ok(ad)
}

/// Decodes an ad from the bytes of a gossip message or an ad stream.
pub fn decode_ad(bytes: &[u8]) -> Result<SignedEnvelope, AdError> {
    if bytes.len() > MAX_AD_BYTES {
        return Err(AdError::TooLarge { bytes: bytes.len() });
    }
    serde_json::from_slice(bytes).map_err(|e| AdError::Malformed(e.to_string()))
}

/// Encodes an ad for gossip or an ad stream.
pub fn encode_ad(envelope: &SignedEnvelope) -> Vec<u8> {
    // Serialising a struct of strings cannot fail.
    serde_json::to_vec(envelope).unwrap_or_default()
}

/// A verified ad and the envelope it came in (kept to pass on as is).
#[derive(Debug, Clone, PartialEq)]
pub struct HeldAd {
    pub ad: CapabilityAd,
    pub envelope: SignedEnvelope,
}

/// The newest valid ad of each node.
#[derive(Debug, Clone)]
pub struct AdBook {
    ads: HashMap<NodeId, HeldAd>,
    capacity: usize,
}

impl Default for AdBook {
    fn default() -> Self {
        AdBook::with_capacity(DEFAULT_AD_BOOK_CAPACITY)
    }
}

impl AdBook {
    pub fn with_capacity(capacity: usize) -> Self {
        AdBook {
            ads: HashMap::new(),
            capacity,
        }
    }

    /// Verifies `envelope` and keeps it if it is the node's newest ad.
    /// `publisher` is who put the ad on the network (gossip's author, or
    /// the peer that answered on the ad protocol); it must be the node.
    pub fn accept(
        &mut self,
        envelope: SignedEnvelope,
        publisher: Option<NodeId>,
        now: UnixMillis,
    ) -> Result<&HeldAd, AdError> {
        let ad = verify_ad(&envelope, now)?;
        if let Some(publisher) = publisher {
            if publisher != ad.node_id {
                return Err(AdError::WrongPublisher {
                    node: ad.node_id.to_string(),
                    publisher: publisher.to_string(),
                });
            }
        }
        let node = ad.node_id;
        match self.ads.get(&node) {
            Some(held) if held.ad.seq >= ad.seq => {
                return Err(AdError::Replayed {
                    seq: ad.seq,
                    latest: held.ad.seq,
                });
            }
            None if self.ads.len() >= self.capacity => {
                self.expire(now);
                if self.ads.len() >= self.capacity {
                    return Err(AdError::Full);
                }
            }
            _ => {}
        }
        self.ads.insert(node, HeldAd { ad, envelope });
        Ok(&self.ads[&node])
    }

    /// Drops expired ads and returns the nodes they were for.
    pub fn expire(&mut self, now: UnixMillis) -> Vec<NodeId> {
        let gone: Vec<NodeId> = self
            .ads
            .iter()
            .filter(|(_, h)| h.ad.is_expired(now))
            .map(|(n, _)| *n)
            .collect();
        for n in &gone {
            self.ads.remove(n);
        }
        gone
    }

    /// The node's ad, if it holds one that has not expired.
    pub fn get(&self, node: &NodeId, now: UnixMillis) -> Option<&HeldAd> {
        self.ads.get(node).filter(|h| !h.ad.is_expired(now))
    }

    /// Unexpired ads whose node offers `model` (name or hash).
    pub fn offering<'a>(
        &'a self,
        model: &'a str,
        now: UnixMillis,
    ) -> impl Iterator<Item = &'a HeldAd> + 'a {
        self.ads
            .values()
            .filter(move |h| !h.ad.is_expired(now) && h.ad.offer(model).is_some())
    }

    pub fn len(&self) -> usize {
        self.ads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ads.is_empty()
    }
}

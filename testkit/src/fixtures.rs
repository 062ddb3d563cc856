//! Sample hardware, model offers, registry entries and capability ads, each
//! valid as it is; tests change the one field they are about.

use libp2p_identity::Keypair;
use wire::ads::{CapabilityAd, Load};
use wire::registry::{GpuInfo, Hardware, ModelOffer, NodeInfo, NodeStatus, Task};
use wire::{MilliSats, NodeId, Sha256Digest, UnixMillis};

/// A fixed clock for tests that must not depend on the real one (a
/// Wednesday in 2027, 08:00 UTC).
pub const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

/// The key whose every byte is `seed`: the same node in every run.
pub fn keypair(seed: u8) -> Keypair {
    Keypair::ed25519_from_bytes([seed; 32]).expect("32 bytes make an ed25519 key")
}

pub fn node_id(seed: u8) -> NodeId {
    keypair(seed).public().to_peer_id().into()
}

/// A two-core CPU machine with 1 GiB and no GPU.
pub fn hardware() -> Hardware {
    Hardware {
        cpu_model: "test cpu".into(),
        cpu_cores: 2,
        ram_mb: 1024,
        gpus: vec![],
        os: "linux".into(),
        arch: "x86_64".into(),
    }
}

pub fn gpu(vram_mb: u64) -> GpuInfo {
    GpuInfo {
        name: "test gpu".into(),
        vram_mb,
        compute_capability: Some("8.9".into()),
    }
}

/// An offer of `name` for `task` at `price_msat` a job, on the CPU, whose
/// hash is the SHA-256 of the name.
pub fn offer(name: &str, task: Task, price_msat: u64) -> ModelOffer {
    ModelOffer {
        name: name.into(),
        task,
        hash: Sha256Digest::of(name.as_bytes()),
        price_msat: MilliSats(price_msat),
        token_price: Default::default(),
        device: "cpu".into(),
        description: None,
        embedding_dim: (task == Task::Embedding).then_some(384),
        context_tokens: (task == Task::TextGeneration).then_some(1024),
    }
}

/// A registry entry: node `seed`, online, idle, heard from at `NOW`,
/// offering `models`.
pub fn node_info(seed: u8, models: Vec<ModelOffer>) -> NodeInfo {
    NodeInfo {
        peer_id: node_id(seed),
        multiaddrs: vec![],
        hardware: hardware(),
        models,
        status: NodeStatus::Online,
        last_seen: NOW,
        registered_at: NOW,
        version: "0".into(),
        heartbeat_interval_ms: 1000,
        active_jobs: 0,
        queued_jobs: 0,
        top_bid_msat: None,
        accepting_jobs: true,
        fetching: Vec::new(),
        schedule: None,
        pools: Vec::new(),
        claimed: false,
        operator: None,
        payout_address: None,
        // Reached: what most choices are made among.
        reach: wire::registry::NodeReach {
            state: wire::registry::ReachState::Reached,
            checked_at: Some(UnixMillis(0)),
            reason: None,
        },
        reputation: None,
        banned: None,
    }
}

/// An ad of `key`'s node: issued at `issued_at`, living `ttl_ms`, idle and
/// accepting, offering one embedding model `m` at 1 sat.
pub fn ad(key: &Keypair, seq: u64, issued_at: UnixMillis, ttl_ms: u64) -> CapabilityAd {
    CapabilityAd {
        node_id: key.public().to_peer_id().into(),
        seq,
        issued_at,
        ttl_ms,
        multiaddrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
        hardware: hardware(),
        models: vec![offer("m", Task::Embedding, 1000)],
        version: "0".into(),
        availability: None,
        pools: vec![],
        load: Load {
            active_jobs: 0,
            queued_jobs: 0,
            capacity: 1,
            top_bid_msat: None,
        },
        accepting_jobs: true,
        fetching: Vec::new(),
        payout_address: None,
    }
}

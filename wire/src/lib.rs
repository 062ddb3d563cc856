//! What crosses a process boundary in Infernet: the JSON of the HTTP API, the
//! messages of the libp2p job protocol, and the signed envelopes that nodes
//! attach to registrations, heartbeats and receipts.
//!
//! This crate has no runtime (no tokio, no axum, no tch) so that the browser
//! app can use the same types and verify the same signatures in wasm32.

pub mod accounts;
pub mod ads;
pub mod api;
pub mod billing;
pub mod catalog;
pub mod fleet;
pub mod ids;
pub mod jobs;
pub mod models;
pub mod pricing;
pub mod registry;
pub mod reputation;
pub mod schedule;
pub mod signing;
pub mod verify;

pub use accounts::{AccountId, Caller, CallerAuth};
pub use ids::{JobId, MilliSats, ModelHash, NodeId, Sha256Digest, UnixMillis};
pub use signing::{SignedEnvelope, SigningError};

/// The software version every Infernet process reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// libp2p protocol id of the job protocol: a stream of length-prefixed CBOR
/// frames ([`jobs::ConsumerFrame`] one way, [`jobs::ProviderFrame`] back).
pub const JOB_PROTOCOL: &str = "/infernet/job/2.0.0";
/// libp2p protocol id on which a node answers its current signed ad.
pub const AD_PROTOCOL: &str = "/infernet/ad/1.0.0";
/// libp2p protocol id on which nodes hand out the models they have.
pub const MODEL_PROTOCOL: &str = "/infernet/model/1.0.0";
/// libp2p protocol id of Infernet's Kademlia DHT.
pub const KAD_PROTOCOL: &str = "/infernet/kad/1.0.0";
/// Protocol version announced over identify.
pub const IDENTIFY_PROTOCOL: &str = "/infernet/1.0.0";

/// Largest job request accepted over the job protocol.
pub const MAX_JOB_REQUEST_BYTES: u64 = 1024 * 1024;
/// Largest job output (all its parts together) accepted over the job protocol.
pub const MAX_JOB_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest single frame a provider may send on a job stream.
pub const MAX_JOB_FRAME_BYTES: u64 = 1024 * 1024;

//! The libp2p side of Infernet, shared by the server, the node and the
//! consumer.
//!
//! [`start`] builds the swarm, starts listening, and hands back three parts in
//! the manner of rust-libp2p's file-sharing example:
//! - a [`Client`]: cloneable, turns each call into a command sent over a
//!   bounded channel to the event loop, with a oneshot for the answer;
//! - a receiver of [`InboundJob`]s, the jobs peers send us;
//! - the [`EventLoop`], which owns the `Swarm` and must be spawned on one task.
//!   Only that task touches the `Swarm`.
//!
//! Job and ad streams are opened and accepted through `libp2p_stream`'s
//! `Control`, itself a handle on the swarm's stream behaviour, so that long
//! outputs stream without passing through the event loop.
//!
//! What runs on the swarm:
//! - identify, ping, Kademlia (`/infernet/kad/1.0.0`): discovery; nodes put
//!   provider records under each model's content hash and name
//!   ([`model_key`], [`model_cid_key`], [`model_name_key`]);
//! - gossipsub: signed capability ads on [`wire::ads::ADS_TOPIC`], checked by
//!   an [`AdBook`](wire::ads::AdBook) before they are passed on;
//! - AutoNAT v2, circuit relay v2 (server and client), DCUtR: reachability;
//! - the job protocol ([`wire::JOB_PROTOCOL`]), the ad protocol
//!   ([`wire::AD_PROTOCOL`]) and the fleet link
//!   ([`wire::fleet::FLEET_PROTOCOL`]).

mod ads;
mod behaviour;
mod client;
mod event_loop;
pub mod fleet;
pub mod framing;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
mod jobs;
pub mod models;

pub use client::{Client, NetworkEvent, Reachability};
pub use event_loop::EventLoop;
pub use jobs::{CancelSignal, InboundJob, JobCall, JobResponse, JobUpdate, Responder, StopSignal};
pub use libp2p::identity::Keypair;
pub use libp2p::multiaddr::Protocol;
pub use libp2p::{Multiaddr, PeerId};

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc, watch};

/// How a process joins the network.
#[derive(Debug, Clone)]
pub struct Config {
    /// e.g. `/ip4/0.0.0.0/tcp/4001` and `/ip4/0.0.0.0/udp/4001/quic-v1`.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial and seed the DHT with; each must end in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Whether this process runs jobs for others (nodes do, the server does not).
    pub serve_jobs: bool,
    /// Longest a job may take from request to answer, whatever its deadline.
    pub request_timeout: Duration,
    /// Connections with nothing to do are closed after this long.
    pub idle_timeout: Duration,
    /// Sent over identify, e.g. `infernet-node/0.1.0`.
    pub agent_version: String,
    /// Whether others can dial us directly.
    pub reachability: Reachability,
    /// Addresses others can dial us at that we cannot see ourselves (e.g. a
    /// port forwarded on a router). Confirmed as external at start.
    pub external_addrs: Vec<Multiaddr>,
    /// Relays to reserve a slot on when we turn out to be unreachable; each
    /// ends in `/p2p/<peer id>`. Empty: the bootstrap peers.
    pub relays: Vec<Multiaddr>,
    /// Serve as a circuit relay v2 for peers that cannot be dialled.
    pub relay_server: bool,
    /// With [`Reachability::Auto`]: how long AutoNAT has to confirm an
    /// address before we fall back to relays.
    pub nat_probe_timeout: Duration,
}

impl Config {
    /// A configuration with the usual defaults for the given role.
    pub fn new(listen: Vec<Multiaddr>, agent_version: impl Into<String>) -> Self {
        Config {
            listen,
            bootstrap: Vec::new(),
            serve_jobs: false,
            request_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(300),
            agent_version: agent_version.into(),
            reachability: Reachability::Auto,
            external_addrs: Vec::new(),
            relays: Vec::new(),
            relay_server: true,
            nat_probe_timeout: Duration::from_secs(30),
        }
    }

    /// Listen on `ip` at `port` over TCP and QUIC (port 0: each picks a free one).
    pub fn listen_on(ip: std::net::IpAddr, port: u16) -> Vec<Multiaddr> {
        let ip = match ip {
            std::net::IpAddr::V4(v4) => Protocol::Ip4(v4),
            std::net::IpAddr::V6(v6) => Protocol::Ip6(v6),
        };
        let tcp = Multiaddr::empty()
            .with(ip.clone())
            .with(Protocol::Tcp(port));
        let quic = Multiaddr::empty()
            .with(ip)
            .with(Protocol::Udp(port))
            .with(Protocol::QuicV1);
        vec![tcp, quic]
    }

    /// Listen on loopback only, on ports chosen by the OS.
    pub fn listen_loopback() -> Vec<Multiaddr> {
        Self::listen_on(std::net::IpAddr::from([127, 0, 0, 1]), 0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("the network task has stopped")]
    EventLoopClosed,
    #[error("could not set up the transport: {0}")]
    Transport(String),
    #[error("could not listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("could not dial {0}")]
    Dial(String),
    #[error("bootstrap address {0} does not end in /p2p/<peer id>")]
    BootstrapWithoutPeerId(String),
    #[error("the peer disconnected before answering")]
    ConnectionClosed,
    #[error("the peer did not answer in time")]
    Timeout,
    #[error("the peer does not speak {0}")]
    UnsupportedProtocol(String),
    #[error("the peer broke the protocol: {0}")]
    Protocol(String),
    #[error("the peer's output does not add up: {0}")]
    BadOutput(#[from] wire::jobs::AssemblyError),
    #[error("the request was already answered or dropped")]
    ResponseDropped,
    #[error("ad: {0}")]
    Ad(#[from] wire::ads::AdError),
    #[error("DHT: {0}")]
    Dht(String),
}

/// The capacity of the command and inbound-job channels.
const CHANNEL_CAPACITY: usize = 64;
/// The capacity of the event broadcast; slow subscribers miss old events.
const EVENT_CAPACITY: usize = 1024;

/// Builds the swarm, starts listening, waits until every listener has an
/// address, dials the bootstrap peers (without waiting for them), and
/// starts accepting job and ad streams.
pub async fn start(
    keypair: Keypair,
    config: Config,
) -> Result<(Client, mpsc::Receiver<InboundJob>, EventLoop), NetworkError> {
    let local_peer_id = keypair.public().to_peer_id();
    let (command_tx, command_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (inbound_tx, inbound_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (events_tx, _) = broadcast::channel(EVENT_CAPACITY);
    let (own_ad_tx, own_ad_rx) = watch::channel(None);
    let mut event_loop =
        EventLoop::build(keypair, &config, command_rx, events_tx.clone(), own_ad_tx)?;
    event_loop.listen(&config.listen).await?;
    for addr in &config.bootstrap {
        event_loop.add_bootstrap(addr.clone())?;
    }
    let control = event_loop.stream_control();
    if config.serve_jobs {
        jobs::serve(control.clone(), inbound_tx)?;
    }
    ads::serve(control.clone(), own_ad_rx)?;
    let client = Client::new(
        local_peer_id,
        command_tx,
        events_tx,
        control,
        config.request_timeout,
    );
    Ok((client, inbound_rx, event_loop))
}

/// Opens a stream for `protocol` to `peer` (dialling it if need be).
pub(crate) async fn open_stream(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    protocol: libp2p::StreamProtocol,
) -> Result<libp2p::Stream, NetworkError> {
    control
        .open_stream(peer, protocol)
        .await
        .map_err(|e| match e {
            libp2p_stream::OpenStreamError::UnsupportedProtocol(p) => {
                NetworkError::UnsupportedProtocol(p.to_string())
            }
            other => NetworkError::Dial(format!("{peer}: {other}")),
        })
}

/// Splits `/…/p2p/<id>` into the peer id and the address before it.
pub fn split_peer_id(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) => Some((peer, base)),
        _ => None,
    }
}

/// The DHT key under which providers of a model (by content hash) are found.
pub fn model_key(hash: &wire::ModelHash) -> Vec<u8> {
    let mut key = b"/infernet/model/".to_vec();
    key.extend_from_slice(hash.as_bytes());
    key
}

/// The DHT key under which providers of a model are found by any IPFS or
/// libp2p implementation: the multihash of the model file's CIDv1 (raw,
/// sha2-256), as their `provide(cid)` and `findProviders(cid)` use it.
pub fn model_cid_key(hash: &wire::ModelHash) -> Vec<u8> {
    hash.multihash()
}

/// The DHT key under which providers of a model (by name) are found.
pub fn model_name_key(name: &str) -> Vec<u8> {
    let mut key = b"/infernet/model-name/".to_vec();
    key.extend_from_slice(&Sha256::digest(name.as_bytes()));
    key
}

#[cfg(test)]
mod tests;

//! The libp2p side of Infernet, shared by the server and the node.
//!
//! [`start`] builds the swarm, starts listening, and hands back three parts in
//! the manner of rust-libp2p's file-sharing example:
//! - a [`Client`]: cloneable, turns each call into a [`Command`] sent over a
//!   bounded channel to the event loop, with a oneshot for the answer;
//! - a receiver of [`InboundJob`]s, the job requests peers send us;
//! - the [`EventLoop`], which owns the `Swarm` and must be spawned on one task.
//!   Only that task touches the `Swarm`.

mod behaviour;
mod client;
mod event_loop;
pub mod identity;

pub use client::{Client, InboundJob, Responder};
pub use event_loop::EventLoop;
pub use libp2p::identity::Keypair;
pub use libp2p::multiaddr::Protocol;
pub use libp2p::{Multiaddr, PeerId};

use std::time::Duration;

use tokio::sync::mpsc;

/// How a process joins the network.
#[derive(Debug, Clone)]
pub struct Config {
    /// e.g. `/ip4/0.0.0.0/tcp/4001` and `/ip4/0.0.0.0/udp/4001/quic-v1`.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial and seed the DHT with; each must end in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Whether this process runs jobs for others (nodes do, the server does not).
    pub serve_jobs: bool,
    /// Longest a job request may wait for its answer.
    pub request_timeout: Duration,
    /// Connections with nothing to do are closed after this long.
    pub idle_timeout: Duration,
    /// Sent over identify, e.g. `infernet-node/0.1.0`.
    pub agent_version: String,
}

impl Config {
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
    #[error("the peer does not speak the job protocol")]
    UnsupportedProtocol,
    #[error("the request was already answered or dropped")]
    ResponseDropped,
}

/// The capacity of the command and inbound-job channels.
const CHANNEL_CAPACITY: usize = 64;

/// Builds the swarm, starts listening, waits until every listener has an
/// address, and dials the bootstrap peers (without waiting for them).
pub async fn start(
    keypair: Keypair,
    config: Config,
) -> Result<(Client, mpsc::Receiver<InboundJob>, EventLoop), NetworkError> {
    let local_peer_id = keypair.public().to_peer_id();
    let (command_tx, command_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (inbound_tx, inbound_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let mut event_loop = EventLoop::build(keypair, &config, command_rx, inbound_tx)?;
    event_loop.listen(&config.listen).await?;
    for addr in &config.bootstrap {
        event_loop.add_bootstrap(addr.clone())?;
    }
    let client = Client::new(local_peer_id, command_tx);
    Ok((client, inbound_rx, event_loop))
}

/// Splits `/…/p2p/<id>` into the peer id and the address before it.
pub fn split_peer_id(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) => Some((peer, base)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

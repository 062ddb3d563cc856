//! The handle the rest of a program uses to talk to the swarm.

use std::collections::HashSet;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};
use wire::ads::{AdError, HeldAd};
use wire::jobs::JobRequest;
use wire::{SignedEnvelope, UnixMillis};

use crate::jobs::{JobCall, JobResponse};
use crate::NetworkError;

/// Whether others can dial this peer directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// Let AutoNAT find out; fall back to relays if nothing is confirmed.
    Auto,
    /// Our listen addresses can be dialled as they are (a public host, or
    /// a test on one machine).
    Public,
    /// Not dialable: go through relays right away.
    Private,
    /// Only dials out (a consumer): no reservations on relays, and the DHT
    /// in client mode.
    Client,
}

impl std::str::FromStr for Reachability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Reachability::Auto),
            "public" => Ok(Reachability::Public),
            "private" => Ok(Reachability::Private),
            "client" => Ok(Reachability::Client),
            other => Err(format!(
                "reachability must be auto, public, private or client, got `{other}`"
            )),
        }
    }
}

/// Things that happen on the network that the rest of a program may want.
#[derive(Debug, Clone)]
pub enum NetworkEvent {
    /// A new, valid ad arrived over gossip (or the ad protocol).
    AdAccepted { ad: Box<HeldAd>, via: PeerId },
    /// An ad was dropped; `forged` when it proves misbehaviour.
    AdRejected {
        via: PeerId,
        error: AdError,
        forged: bool,
    },
    /// An address of ours was confirmed reachable (AutoNAT, configuration,
    /// or a relay reservation).
    ExternalAddrConfirmed(Multiaddr),
    /// A relay accepted our reservation; we can be reached through it.
    RelayReservation { relay: PeerId },
    /// AutoNAT found nothing reachable; we now rely on relays.
    BehindNat,
    /// A peer joined the ads topic: ads we publish now reach it.
    GossipPeer { peer: PeerId },
    /// A relayed connection was upgraded to a direct one (or not).
    HolePunch { peer: PeerId, ok: bool },
}

/// What the event loop is asked to do. Each carries a oneshot for the answer.
#[derive(Debug)]
pub(crate) enum Command {
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    ExternalAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetworkError>>,
    },
    Connect {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    PublishAd {
        envelope: Box<SignedEnvelope>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    RecordAd {
        envelope: Box<SignedEnvelope>,
        from: PeerId,
        reply: oneshot::Sender<Result<HeldAd, NetworkError>>,
    },
    AdsOffering {
        model: String,
        reply: oneshot::Sender<Vec<HeldAd>>,
    },
    StartProviding {
        keys: Vec<Vec<u8>>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    FindProviders {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<HashSet<PeerId>, NetworkError>>,
    },
    Rtt {
        peer: PeerId,
        reply: oneshot::Sender<Option<Duration>>,
    },
}

/// A cloneable handle on the swarm's event loop.
#[derive(Clone)]
pub struct Client {
    local_peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NetworkEvent>,
    control: libp2p_stream::Control,
    request_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("local_peer_id", &self.local_peer_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(
        local_peer_id: PeerId,
        commands: mpsc::Sender<Command>,
        events: broadcast::Sender<NetworkEvent>,
        control: libp2p_stream::Control,
        request_timeout: Duration,
    ) -> Self {
        Client {
            local_peer_id,
            commands,
            events,
            control,
            request_timeout,
        }
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Events from now on. A subscriber that falls behind misses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<NetworkEvent> {
        self.events.subscribe()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetworkError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetworkError::EventLoopClosed)?;
        rx.await.map_err(|_| NetworkError::EventLoopClosed)
    }

    /// The addresses we listen on, each without the `/p2p/` suffix.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetworkError> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }

    /// The addresses others can reach us at, as far as we know: confirmed
    /// direct addresses and relay circuits. Without the `/p2p/` suffix.
    pub async fn external_addrs(&self) -> Result<Vec<Multiaddr>, NetworkError> {
        self.ask(|reply| Command::ExternalAddrs { reply }).await
    }

    /// Dials `addr` (which must end in `/p2p/<id>`) and waits until the
    /// connection is up.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetworkError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Makes sure we are connected to `peer`, dialling `addrs` and any
    /// address we already know for it.
    pub async fn connect(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), NetworkError> {
        let asked = self.ask(|reply| Command::Connect { peer, addrs, reply });
        tokio::time::timeout(Duration::from_secs(20), asked)
            .await
            .map_err(|_| NetworkError::Dial(format!("{peer}: timed out")))??
    }

    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetworkError> {
        self.ask(|reply| Command::ConnectedPeers { reply }).await
    }

    /// Publishes an ad on gossip, as it is: every receiver checks it. If it
    /// is a valid ad of ours, it is also what we answer on the ad protocol.
    pub async fn publish_ad(&self, envelope: SignedEnvelope) -> Result<(), NetworkError> {
        self.ask(|reply| Command::PublishAd {
            envelope: Box::new(envelope),
            reply,
        })
        .await?
    }

    /// Unexpired ads we hold for nodes that offer `model` (name or hash).
    pub async fn ads_offering(&self, model: &str) -> Result<Vec<HeldAd>, NetworkError> {
        let model = model.to_owned();
        self.ask(|reply| Command::AdsOffering { model, reply })
            .await
    }

    /// Hands out `source`'s models to peers that ask (once per process).
    pub fn serve_models(
        &self,
        source: std::sync::Arc<dyn crate::models::ModelSource>,
    ) -> Result<(), NetworkError> {
        crate::models::serve(self.control.clone(), source)
    }

    /// Fetches `model` from `peer` into `dir`, resuming any partial files
    /// there and checking every file's hash, at most `max_rate` bytes per
    /// second if given; see [`crate::models`].
    pub async fn fetch_model(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        model: wire::ModelHash,
        dir: &std::path::Path,
        max_rate: Option<u64>,
        progress: impl FnMut(crate::models::FetchProgress),
    ) -> Result<Vec<wire::models::PackageFile>, crate::models::FetchError> {
        self.connect(peer, addrs).await?;
        crate::models::fetch(self.control.clone(), peer, model, dir, max_rate, progress).await
    }

    /// Asks `peer` for its current ad over the ad protocol, checks it, and
    /// keeps it (it then also shows in [`Client::ads_offering`]).
    pub async fn fetch_ad(&self, peer: PeerId) -> Result<HeldAd, NetworkError> {
        let envelope = crate::ads::fetch(self.control.clone(), peer).await?;
        let checked = self
            .ask(|reply| Command::RecordAd {
                envelope: Box::new(envelope.clone()),
                from: peer,
                reply,
            })
            .await?;
        match checked {
            Ok(held) => Ok(held),
            // We already hold this ad (or a newer one): it is still valid.
            Err(NetworkError::Ad(AdError::Replayed { .. })) => {
                let ad = wire::ads::verify_ad(&envelope, UnixMillis::now())?;
                Ok(HeldAd { ad, envelope })
            }
            Err(e) => Err(e),
        }
    }

    /// Puts provider records for `keys` into the DHT (and keeps them fresh).
    pub async fn start_providing(&self, keys: Vec<Vec<u8>>) -> Result<(), NetworkError> {
        self.ask(|reply| Command::StartProviding { keys, reply })
            .await?
    }

    /// Every provider of `key` the DHT knows.
    pub async fn find_providers(&self, key: Vec<u8>) -> Result<HashSet<PeerId>, NetworkError> {
        self.ask(|reply| Command::FindProviders { key, reply })
            .await?
    }

    /// The last ping round trip to `peer`, if connected.
    pub async fn rtt(&self, peer: PeerId) -> Result<Option<Duration>, NetworkError> {
        self.ask(|reply| Command::Rtt { peer, reply }).await
    }

    /// Opens a fleet link to `peer` (a node to its pinned server), over the
    /// connection we have or one we dial.
    pub async fn open_fleet_link(
        &self,
        peer: PeerId,
    ) -> Result<crate::fleet::FleetLink, NetworkError> {
        crate::fleet::open(self.control.clone(), peer).await
    }

    /// The fleet links peers open to us from now on (a server; once per
    /// process).
    pub fn accept_fleet_links(
        &self,
    ) -> Result<mpsc::Receiver<crate::fleet::FleetLink>, NetworkError> {
        crate::fleet::accept(self.control.clone())
    }

    /// Opens a job stream to `peer` and sends `request`; read the answer
    /// from the returned [`JobCall`] as it streams in.
    pub async fn call_job(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: JobRequest,
    ) -> Result<JobCall, NetworkError> {
        self.connect(peer, addrs).await?;
        JobCall::open(self.control.clone(), peer, request, self.request_timeout).await
    }

    /// Sends a job to `peer` and waits for the whole answer.
    pub async fn send_job(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: JobRequest,
    ) -> Result<JobResponse, NetworkError> {
        self.call_job(peer, addrs, request).await?.finish().await
    }
}

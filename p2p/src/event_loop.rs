//! The one task that owns the `Swarm`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{
    autonat, dcutr, gossipsub, identify, identity, noise, ping, relay, tcp, yamux, Multiaddr,
    PeerId, Swarm,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use wire::ads::{AdBook, AdError};
use wire::{NodeId, SignedEnvelope, UnixMillis};

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::client::{Command, NetworkEvent, Reachability};
use crate::{split_peer_id, Config, NetworkError};

type Reply<T> = oneshot::Sender<Result<T, NetworkError>>;

/// Addresses remembered per peer, and peers remembered in all.
const MAX_ADDRS_PER_PEER: usize = 8;
const MAX_ADDRESS_BOOK_PEERS: usize = 10_000;

pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<NetworkEvent>,
    own_ad: watch::Sender<Option<SignedEnvelope>>,
    ads_topic: gossipsub::IdentTopic,
    ads: AdBook,
    reachability: Reachability,
    relays: Vec<Multiaddr>,
    relays_requested: bool,
    /// Relays to listen through once we are connected to them.
    relays_waiting: HashSet<PeerId>,
    /// Our circuit listeners, by the relay they go through.
    relay_listeners: HashMap<ListenerId, PeerId>,
    nat_probe_timeout: Duration,
    listen_addrs: HashMap<ListenerId, Vec<Multiaddr>>,
    /// Addresses learnt from ads, identify and callers, newest first.
    address_book: HashMap<PeerId, VecDeque<Multiaddr>>,
    rtts: HashMap<PeerId, Duration>,
    pending_dials: HashMap<ConnectionId, Reply<PeerId>>,
    pending_connects: HashMap<PeerId, Vec<Reply<()>>>,
    pending_providers: HashMap<QueryId, (HashSet<PeerId>, Reply<HashSet<PeerId>>)>,
    /// DHT lookups of a peer's addresses, for a connect that knew none.
    pending_lookups: HashMap<QueryId, PeerId>,
    provided: HashSet<Vec<u8>>,
}

impl EventLoop {
    pub(crate) fn build(
        keypair: identity::Keypair,
        config: &Config,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<NetworkEvent>,
        own_ad: watch::Sender<Option<SignedEnvelope>>,
    ) -> Result<Self, NetworkError> {
        let transport_err = |e: &dyn std::fmt::Display| NetworkError::Transport(e.to_string());
        let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| transport_err(&e))?
            .with_quic()
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| transport_err(&e))?
            .with_behaviour(|key, relay_client| {
                Behaviour::new(key, relay_client, config)
                    .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .map_err(|e| transport_err(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
            .build();
        let ads_topic = gossipsub::IdentTopic::new(wire::ads::ADS_TOPIC);
        let relays = if config.relays.is_empty() {
            config.bootstrap.clone()
        } else {
            config.relays.clone()
        };
        let mut event_loop = EventLoop {
            swarm,
            commands,
            events,
            own_ad,
            ads_topic,
            ads: AdBook::default(),
            reachability: config.reachability,
            relays,
            relays_requested: false,
            relays_waiting: HashSet::new(),
            relay_listeners: HashMap::new(),
            nat_probe_timeout: config.nat_probe_timeout,
            listen_addrs: HashMap::new(),
            address_book: HashMap::new(),
            rtts: HashMap::new(),
            pending_dials: HashMap::new(),
            pending_connects: HashMap::new(),
            pending_providers: HashMap::new(),
            pending_lookups: HashMap::new(),
            provided: HashSet::new(),
        };
        event_loop
            .swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&event_loop.ads_topic)
            .map_err(|e| NetworkError::Transport(e.to_string()))?;
        for addr in &config.external_addrs {
            event_loop.swarm.add_external_address(addr.clone());
        }
        Ok(event_loop)
    }

    pub(crate) fn stream_control(&self) -> libp2p_stream::Control {
        self.swarm.behaviour().streams.new_control()
    }

    /// Starts every listener and drives the swarm until each has reported at
    /// least one address, so that callers can read real ports right away.
    pub(crate) async fn listen(&mut self, addrs: &[Multiaddr]) -> Result<(), NetworkError> {
        let mut waiting = HashSet::new();
        for addr in addrs {
            let id = self
                .swarm
                .listen_on(addr.clone())
                .map_err(|e| NetworkError::Listen {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?;
            waiting.insert(id);
        }
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        while !waiting.is_empty() {
            tokio::select! {
                event = self.swarm.select_next_some() => match event {
                    SwarmEvent::NewListenAddr { listener_id, address } => {
                        waiting.remove(&listener_id);
                        self.on_new_listen_addr(listener_id, address);
                    }
                    SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                        if waiting.contains(&listener_id) {
                            return Err(NetworkError::Listen {
                                addr: format!("{listener_id:?}"),
                                reason: format!("{reason:?}"),
                            });
                        }
                    }
                    SwarmEvent::ListenerError { error, .. } => {
                        return Err(NetworkError::Listen { addr: "?".into(), reason: error.to_string() });
                    }
                    other => tracing::debug!(?other, "swarm event while starting"),
                },
                () = &mut deadline => {
                    return Err(NetworkError::Listen {
                        addr: format!("{addrs:?}"),
                        reason: "no address reported within 10 s".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Seeds the DHT with a bootstrap peer and dials it.
    pub(crate) fn add_bootstrap(&mut self, addr: Multiaddr) -> Result<(), NetworkError> {
        let (peer, base) = split_peer_id(&addr)
            .ok_or_else(|| NetworkError::BootstrapWithoutPeerId(addr.to_string()))?;
        self.swarm
            .behaviour_mut()
            .kad
            .add_address(&peer, base.clone());
        self.remember(peer, [base]);
        if let Err(e) = self.swarm.dial(addr.clone()) {
            tracing::warn!(%addr, error = %e, "could not dial bootstrap peer");
        }
        Ok(())
    }

    /// Runs until every [`Client`](crate::Client) is dropped.
    pub async fn run(mut self) {
        if self.swarm.behaviour_mut().kad.bootstrap().is_err() {
            tracing::debug!("no bootstrap peers; the DHT starts empty");
        }
        if self.reachability == Reachability::Private {
            self.use_relays();
        }
        let nat_probe = tokio::time::sleep(self.nat_probe_timeout);
        tokio::pin!(nat_probe);
        let mut nat_probe_done = self.reachability != Reachability::Auto;
        let mut expiry = tokio::time::interval(Duration::from_secs(1));
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                () = &mut nat_probe, if !nat_probe_done => {
                    nat_probe_done = true;
                    if self.swarm.external_addresses().next().is_none() {
                        tracing::info!("no address confirmed reachable; using relays");
                        let _ = self.events.send(NetworkEvent::BehindNat);
                        self.use_relays();
                    }
                }
                _ = expiry.tick() => {
                    self.ads.expire(UnixMillis::now());
                }
            }
        }
        tracing::debug!("network event loop stopped");
    }

    /// Listens through each relay: a reservation makes us reachable at
    /// `<relay addr>/p2p/<relay>/p2p-circuit/p2p/<us>`. The relay client
    /// needs a connection to the relay first, so relays we are not yet
    /// connected to are dialled and listened through once connected.
    fn use_relays(&mut self) {
        if self.relays_requested {
            return;
        }
        self.relays_requested = true;
        for relay in self.relays.clone() {
            if let Some((peer, _)) = split_peer_id(&relay) {
                self.relays_waiting.insert(peer);
                if self.swarm.is_connected(&peer) {
                    self.listen_through(peer);
                } else if let Err(e) = self.swarm.dial(relay.clone()) {
                    tracing::debug!(%relay, error = %e, "dialling relay");
                }
            }
        }
    }

    fn listen_through(&mut self, peer: PeerId) {
        if !self.relays_waiting.remove(&peer) {
            return;
        }
        let Some(relay) = self
            .relays
            .iter()
            .find(|a| split_peer_id(a).is_some_and(|(p, _)| p == peer))
            .cloned()
        else {
            return;
        };
        match self
            .swarm
            .listen_on(relay.clone().with(Protocol::P2pCircuit))
        {
            Ok(id) => {
                tracing::info!(%relay, "asking relay for a reservation");
                self.relay_listeners.insert(id, peer);
            }
            Err(e) => tracing::warn!(%relay, error = %e, "cannot listen through relay"),
        }
    }

    fn remember(&mut self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        if !self.address_book.contains_key(&peer)
            && self.address_book.len() >= MAX_ADDRESS_BOOK_PEERS
        {
            // Forget some peer we are not connected to.
            let victim = self
                .address_book
                .keys()
                .find(|p| !self.swarm.is_connected(p))
                .copied();
            if let Some(v) = victim {
                self.address_book.remove(&v);
            } else {
                return;
            }
        }
        let book = self.address_book.entry(peer).or_default();
        for addr in addrs {
            let addr = match split_peer_id(&addr) {
                Some((p, base)) if p == peer => base,
                Some(_) => continue,
                None => addr,
            };
            book.retain(|a| a != &addr);
            book.push_front(addr);
            book.truncate(MAX_ADDRS_PER_PEER);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs { reply } => {
                let addrs = self
                    .listen_addrs
                    .values()
                    .flatten()
                    .filter(|a| !a.iter().any(|p| p == Protocol::P2pCircuit))
                    .cloned()
                    .collect();
                let _ = reply.send(addrs);
            }
            Command::ExternalAddrs { reply } => {
                let mut addrs: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
                for a in self.listen_addrs.values().flatten() {
                    if a.iter().any(|p| p == Protocol::P2pCircuit) && !addrs.contains(a) {
                        addrs.push(a.clone());
                    }
                }
                let me = *self.swarm.local_peer_id();
                let addrs = addrs
                    .into_iter()
                    .map(|a| match a.iter().last() {
                        Some(Protocol::P2p(p)) if p == me => {
                            let mut a = a;
                            a.pop();
                            a
                        }
                        _ => a,
                    })
                    .collect();
                let _ = reply.send(addrs);
            }
            Command::Dial { addr, reply } => {
                let Some((peer, base)) = split_peer_id(&addr) else {
                    let _ = reply.send(Err(NetworkError::Dial(format!(
                        "{addr} has no /p2p/ suffix"
                    ))));
                    return;
                };
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(peer));
                    return;
                }
                self.remember(peer, [base]);
                let opts = DialOpts::from(addr.clone());
                let connection_id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending_dials.insert(connection_id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetworkError::Dial(format!("{addr}: {e}"))));
                    }
                }
            }
            Command::Connect { peer, addrs, reply } => {
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(()));
                    return;
                }
                self.remember(peer, addrs);
                let first = !self.pending_connects.contains_key(&peer);
                self.pending_connects.entry(peer).or_default().push(reply);
                if !first {
                    return;
                }
                if self.address_book.get(&peer).is_none_or(VecDeque::is_empty) {
                    // Nothing known: ask the DHT where the peer is.
                    let id = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                    self.pending_lookups.insert(id, peer);
                } else {
                    self.dial_known(peer);
                }
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::PublishAd { envelope, reply } => {
                let _ = reply.send(self.publish_ad(*envelope));
            }
            Command::RecordAd {
                envelope,
                from,
                reply,
            } => {
                let result = self
                    .ads
                    .accept(*envelope, Some(NodeId::from(from)), UnixMillis::now())
                    .cloned()
                    .map_err(NetworkError::Ad);
                if let Ok(held) = &result {
                    let addrs = parse_addrs(&held.ad.multiaddrs);
                    self.remember(from, addrs);
                }
                let _ = reply.send(result);
            }
            Command::AdsOffering { model, reply } => {
                let now = UnixMillis::now();
                let _ = reply.send(self.ads.offering(&model, now).cloned().collect());
            }
            Command::StartProviding { keys, reply } => {
                let mut result = Ok(());
                for key in keys {
                    if let Err(e) = self
                        .swarm
                        .behaviour_mut()
                        .kad
                        .start_providing(RecordKey::new(&key))
                    {
                        result = Err(NetworkError::Dht(e.to_string()));
                    }
                    self.provided.insert(key);
                }
                let _ = reply.send(result);
            }
            Command::FindProviders { key, reply } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(RecordKey::new(&key));
                self.pending_providers.insert(id, (HashSet::new(), reply));
            }
            Command::Rtt { peer, reply } => {
                let _ = reply.send(self.rtts.get(&peer).copied());
            }
        }
    }

    /// Gossips `envelope` as it is (receivers check it), and serves it on
    /// the ad protocol if it is a valid ad of ours.
    /// Dials `peer` at every address we know for it, and those behaviours
    /// (Kademlia, identify) know; answers the pending connects on failure.
    fn dial_known(&mut self, peer: PeerId) {
        let known: Vec<Multiaddr> = self
            .address_book
            .get(&peer)
            .map(|b| b.iter().cloned().collect())
            .unwrap_or_default();
        let opts = DialOpts::peer_id(peer)
            .addresses(known)
            .extend_addresses_through_behaviour()
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => {}
            // Already dialling it (a bootstrap dial, another caller): the
            // outcome of that dial answers the pending connects.
            Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {}
            Err(e) => {
                for reply in self.pending_connects.remove(&peer).unwrap_or_default() {
                    let _ = reply.send(Err(NetworkError::Dial(format!("{peer}: {e}"))));
                }
            }
        }
    }

    fn publish_ad(&mut self, envelope: SignedEnvelope) -> Result<(), NetworkError> {
        let me = NodeId::from(*self.swarm.local_peer_id());
        if matches!(wire::ads::verify_ad(&envelope, UnixMillis::now()), Ok(ad) if ad.node_id == me)
        {
            self.own_ad.send_replace(Some(envelope.clone()));
        }
        let bytes = wire::ads::encode_ad(&envelope);
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.ads_topic.clone(), bytes)
        {
            Ok(_) => Ok(()),
            // Nobody to tell yet; peers that join will ask for it directly.
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(()),
            Err(gossipsub::PublishError::Duplicate) => Ok(()),
            Err(e) => Err(NetworkError::Transport(format!("publishing the ad: {e}"))),
        }
    }

    fn on_new_listen_addr(&mut self, listener_id: ListenerId, address: Multiaddr) {
        tracing::info!(%address, "listening");
        let is_circuit = address.iter().any(|p| p == Protocol::P2pCircuit);
        if self.reachability == Reachability::Public && !is_circuit {
            self.swarm.add_external_address(address.clone());
        }
        self.listen_addrs
            .entry(listener_id)
            .or_default()
            .push(address);
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.on_identify_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.on_kad_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.on_ping_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.on_gossip_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::AutonatClient(e)) => {
                self.on_autonat_event(e);
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(e)) => self.on_relay_client_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(e)) => self.on_dcutr_event(e),
            SwarmEvent::Behaviour(other) => tracing::trace!(?other, "behaviour event"),
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => self.on_new_listen_addr(listener_id, address),
            SwarmEvent::ExpiredListenAddr {
                listener_id,
                address,
            } => {
                if let Some(addrs) = self.listen_addrs.get_mut(&listener_id) {
                    addrs.retain(|a| a != &address);
                }
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "reachable at");
                let _ = self
                    .events
                    .send(NetworkEvent::ExternalAddrConfirmed(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                tracing::debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
                if self.relays_waiting.contains(&peer_id) && !endpoint.is_relayed() {
                    self.listen_through(peer_id);
                }
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                for reply in self.pending_connects.remove(&peer_id).unwrap_or_default() {
                    let _ = reply.send(Ok(()));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                tracing::debug!(?peer_id, %error, "outgoing connection failed");
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetworkError::Dial(error.to_string())));
                }
                if let Some(peer) = peer_id {
                    if !self.swarm.is_connected(&peer) {
                        for reply in self.pending_connects.remove(&peer).unwrap_or_default() {
                            let _ = reply.send(Err(NetworkError::Dial(format!("{peer}: {error}"))));
                        }
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                cause,
                num_established,
                ..
            } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
                if num_established == 0 {
                    self.rtts.remove(&peer_id);
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                self.listen_addrs.remove(&listener_id);
                if let Some(relay) = self.relay_listeners.remove(&listener_id) {
                    // Lost the relay (or its reservation): listen through
                    // it again once we are back in touch.
                    tracing::info!(%relay, ?reason, "relay listener closed");
                    self.relays_waiting.insert(relay);
                    if self.swarm.is_connected(&relay) {
                        self.listen_through(relay);
                    }
                }
            }
            other => tracing::trace!(?other, "swarm event"),
        }
    }

    fn on_gossip_event(&mut self, event: gossipsub::Event) {
        let (propagation_source, message_id, message) = match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => (propagation_source, message_id, message),
            gossipsub::Event::Subscribed { peer_id, topic } if topic == self.ads_topic.hash() => {
                let _ = self.events.send(NetworkEvent::GossipPeer { peer: peer_id });
                return;
            }
            other => {
                tracing::trace!(?other, "gossipsub");
                return;
            }
        };
        let now = UnixMillis::now();
        let author = message.source.map(NodeId::from);
        let verdict = if message.topic != self.ads_topic.hash() {
            Err(AdError::Malformed("not an ad topic".into()))
        } else {
            wire::ads::decode_ad(&message.data)
                .and_then(|envelope| self.ads.accept(envelope, author, now).cloned())
        };
        let acceptance = match verdict {
            Ok(held) => {
                let addrs = parse_addrs(&held.ad.multiaddrs);
                self.remember(held.ad.node_id.peer_id(), addrs);
                let _ = self.events.send(NetworkEvent::AdAccepted {
                    ad: Box::new(held),
                    via: propagation_source,
                });
                gossipsub::MessageAcceptance::Accept
            }
            Err(error) => {
                let forged = error.is_forgery();
                tracing::debug!(peer = %propagation_source, %error, forged, "ad dropped");
                let _ = self.events.send(NetworkEvent::AdRejected {
                    via: propagation_source,
                    error,
                    forged,
                });
                if forged {
                    gossipsub::MessageAcceptance::Reject
                } else {
                    gossipsub::MessageAcceptance::Ignore
                }
            }
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &propagation_source, acceptance);
    }

    fn on_identify_event(&mut self, event: identify::Event) {
        if let identify::Event::Received { peer_id, info, .. } = event {
            tracing::debug!(%peer_id, agent = %info.agent_version, "identified");
            // Only peers that speak our DHT go into the routing table, and
            // only with addresses others could dial.
            let speaks_kad = info
                .protocols
                .iter()
                .any(|p| p.as_ref() == wire::KAD_PROTOCOL);
            let addrs: Vec<Multiaddr> = info
                .listen_addrs
                .into_iter()
                .filter(|a| !is_unspecified(a))
                .collect();
            if speaks_kad {
                for addr in &addrs {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, addr.clone());
                }
            }
            self.remember(peer_id, addrs);
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        let kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        } = event
        else {
            tracing::trace!(?event, "kad");
            return;
        };
        match result {
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                if let Some((found, _)) = self.pending_providers.get_mut(&id) {
                    found.extend(providers);
                }
            }
            QueryResult::GetProviders(Ok(GetProvidersOk::FinishedWithNoAdditionalRecord {
                ..
            })) => {}
            QueryResult::GetProviders(Err(e)) => {
                tracing::debug!(error = %e, "provider lookup ended early");
            }
            QueryResult::Bootstrap(Ok(_)) if step.last => {
                // The routing table has grown: make sure the peers now
                // closest to our keys hold our provider records too.
                for key in self.provided.clone() {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .kad
                        .start_providing(RecordKey::new(&key));
                }
            }
            QueryResult::GetClosestPeers(result) => {
                let peers = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                if let Some(target) = self.pending_lookups.get(&id).copied() {
                    if let Some(info) = peers.into_iter().find(|p| p.peer_id == target) {
                        self.remember(target, info.addrs);
                    }
                }
            }
            QueryResult::StartProviding(Err(e)) => {
                tracing::debug!(error = %e, "provider record not stored on the network yet");
            }
            other => tracing::trace!(?other, "kad query"),
        }
        if step.last {
            if let Some(target) = self.pending_lookups.remove(&id) {
                if self.swarm.is_connected(&target) {
                    for reply in self.pending_connects.remove(&target).unwrap_or_default() {
                        let _ = reply.send(Ok(()));
                    }
                } else {
                    self.dial_known(target);
                }
            }
            if let Some((mut found, reply)) = self.pending_providers.remove(&id) {
                found.remove(self.swarm.local_peer_id());
                let _ = reply.send(Ok(found));
            }
        }
    }

    fn on_ping_event(&mut self, event: ping::Event) {
        if let Ok(rtt) = event.result {
            tracing::trace!(peer = %event.peer, ?rtt, "ping");
            self.rtts.insert(event.peer, rtt);
        }
    }

    fn on_autonat_event(&mut self, event: autonat::v2::client::Event) {
        match event.result {
            Ok(()) => {
                tracing::info!(addr = %event.tested_addr, server = %event.server, "AutoNAT: reachable")
            }
            Err(e) => {
                tracing::debug!(addr = %event.tested_addr, server = %event.server, error = %e, "AutoNAT: not reachable");
            }
        }
    }

    fn on_relay_client_event(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted { relay_peer_id, .. } => {
                tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
                let _ = self.events.send(NetworkEvent::RelayReservation {
                    relay: relay_peer_id,
                });
            }
            other => tracing::debug!(?other, "relay client"),
        }
    }

    fn on_dcutr_event(&mut self, event: dcutr::Event) {
        let ok = event.result.is_ok();
        tracing::info!(peer = %event.remote_peer_id, ok, "hole punch");
        let _ = self.events.send(NetworkEvent::HolePunch {
            peer: event.remote_peer_id,
            ok,
        });
    }
}

fn parse_addrs(addrs: &[String]) -> Vec<Multiaddr> {
    addrs.iter().filter_map(|a| a.parse().ok()).collect()
}

fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

//! The one task that owns the `Swarm`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{identify, identity, kad, noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use wire::jobs::{JobRequest, JobResponse};

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::client::{Command, InboundJob, Respond, Responder};
use crate::{split_peer_id, Config, NetworkError};

type Reply<T> = oneshot::Sender<Result<T, NetworkError>>;

pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    responses: mpsc::Receiver<Respond>,
    /// Cloned into each [`Responder`].
    responses_tx: mpsc::Sender<Respond>,
    inbound: mpsc::Sender<InboundJob>,
    listen_addrs: HashMap<ListenerId, Vec<Multiaddr>>,
    pending_dials: HashMap<ConnectionId, Reply<PeerId>>,
    pending_jobs: HashMap<OutboundRequestId, Reply<JobResponse>>,
}

impl EventLoop {
    pub(crate) fn build(
        keypair: identity::Keypair,
        config: &Config,
        commands: mpsc::Receiver<Command>,
        inbound: mpsc::Sender<InboundJob>,
    ) -> Result<Self, NetworkError> {
        let transport_err = |e: &dyn std::fmt::Display| NetworkError::Transport(e.to_string());
        let agent = config.agent_version.clone();
        let serve_jobs = config.serve_jobs;
        let request_timeout = config.request_timeout;
        let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| transport_err(&e))?
            .with_quic()
            .with_behaviour(|key| Behaviour::new(key, agent, serve_jobs, request_timeout))
            .map_err(|e| transport_err(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
            .build();
        let (responses_tx, responses) = mpsc::channel(crate::CHANNEL_CAPACITY);
        Ok(EventLoop {
            swarm,
            commands,
            responses,
            responses_tx,
            inbound,
            listen_addrs: HashMap::new(),
            pending_dials: HashMap::new(),
            pending_jobs: HashMap::new(),
        })
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
                        self.listen_addrs.entry(listener_id).or_default().push(address);
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
        self.swarm.behaviour_mut().kad.add_address(&peer, base);
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
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                Some(respond) = self.responses.recv() => self.on_respond(respond),
            }
        }
        tracing::debug!("network event loop stopped");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs { reply } => {
                let addrs = self.listen_addrs.values().flatten().cloned().collect();
                let _ = reply.send(addrs);
            }
            Command::Dial { addr, reply } => {
                let Some((peer, _)) = split_peer_id(&addr) else {
                    let _ = reply.send(Err(NetworkError::Dial(format!(
                        "{addr} has no /p2p/ suffix"
                    ))));
                    return;
                };
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(peer));
                    return;
                }
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
            Command::SendJob {
                peer,
                addrs,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .jobs
                    .send_request_with_addresses(&peer, *request, addrs);
                self.pending_jobs.insert(id, reply);
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
        }
    }

    fn on_respond(&mut self, respond: Respond) {
        let result = self
            .swarm
            .behaviour_mut()
            .jobs
            .send_response(respond.channel, *respond.response)
            .map_err(|_| NetworkError::ResponseDropped);
        let _ = respond.reply.send(result);
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Jobs(e)) => self.on_jobs_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.on_identify_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.on_kad_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.on_ping_event(e),
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::info!(%address, "listening");
                self.listen_addrs
                    .entry(listener_id)
                    .or_default()
                    .push(address);
            }
            SwarmEvent::ExpiredListenAddr {
                listener_id,
                address,
            } => {
                if let Some(addrs) = self.listen_addrs.get_mut(&listener_id) {
                    addrs.retain(|a| a != &address);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                tracing::debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
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
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
            }
            other => tracing::trace!(?other, "swarm event"),
        }
    }

    fn on_jobs_event(&mut self, event: request_response::Event<JobRequest, JobResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let job = InboundJob {
                        from: peer,
                        request,
                        responder: Responder {
                            channel,
                            responses: self.responses_tx.clone(),
                        },
                    };
                    // Never block the event loop: a full queue answers "busy"
                    // by dropping the channel, which the peer sees at once.
                    if let Err(e) = self.inbound.try_send(job) {
                        tracing::warn!(%peer, "inbound job queue full or closed; dropping request: {e}");
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending_jobs.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, %error, "job request failed");
                if let Some(reply) = self.pending_jobs.remove(&request_id) {
                    let _ = reply.send(Err(match error {
                        OutboundFailure::Timeout => NetworkError::Timeout,
                        // A stream that breaks mid-request (the peer died, the
                        // link dropped) is a disconnection as far as callers care.
                        OutboundFailure::ConnectionClosed | OutboundFailure::Io(_) => {
                            NetworkError::ConnectionClosed
                        }
                        OutboundFailure::UnsupportedProtocols => NetworkError::UnsupportedProtocol,
                        OutboundFailure::DialFailure => {
                            NetworkError::Dial(format!("could not reach {peer}"))
                        }
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound job failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_identify_event(&mut self, event: identify::Event) {
        if let identify::Event::Received { peer_id, info, .. } = event {
            tracing::debug!(%peer_id, agent = %info.agent_version, "identified");
            // Only peers that speak our DHT go into the routing table.
            let speaks_kad = info
                .protocols
                .iter()
                .any(|p| p.as_ref() == wire::KAD_PROTOCOL);
            if speaks_kad {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        tracing::trace!(?event, "kad");
    }

    fn on_ping_event(&mut self, event: ping::Event) {
        if let Ok(rtt) = event.result {
            tracing::trace!(peer = %event.peer, ?rtt, "ping");
        }
    }
}

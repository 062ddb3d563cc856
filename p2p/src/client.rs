//! The handle the rest of a program uses to talk to the swarm.

use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use wire::jobs::{JobRequest, JobResponse};

use crate::NetworkError;

/// What the event loop is asked to do. Each carries a oneshot for the answer.
#[derive(Debug)]
pub(crate) enum Command {
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetworkError>>,
    },
    SendJob {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: Box<JobRequest>,
        reply: oneshot::Sender<Result<JobResponse, NetworkError>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
}

/// An answer to an inbound job. Travels on its own channel so that the event
/// loop can hold a sender for new [`Responder`]s and still stop once every
/// [`Client`] is gone.
#[derive(Debug)]
pub(crate) struct Respond {
    pub(crate) channel: ResponseChannel<JobResponse>,
    pub(crate) response: Box<JobResponse>,
    pub(crate) reply: oneshot::Sender<Result<(), NetworkError>>,
}

/// A cloneable handle on the swarm's event loop.
#[derive(Clone, Debug)]
pub struct Client {
    local_peer_id: PeerId,
    commands: mpsc::Sender<Command>,
}

impl Client {
    pub(crate) fn new(local_peer_id: PeerId, commands: mpsc::Sender<Command>) -> Self {
        Client {
            local_peer_id,
            commands,
        }
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
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

    /// Dials `addr` (which must end in `/p2p/<id>`) and waits until the
    /// connection is up.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetworkError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Sends a job to `peer`, dialling one of `addrs` if not yet connected,
    /// and waits for the answer.
    pub async fn send_job(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: JobRequest,
    ) -> Result<JobResponse, NetworkError> {
        self.ask(|reply| Command::SendJob {
            peer,
            addrs,
            request: Box::new(request),
            reply,
        })
        .await?
    }

    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetworkError> {
        self.ask(|reply| Command::ConnectedPeers { reply }).await
    }
}

/// A job request a peer sent us. Answer it through `responder`.
#[derive(Debug)]
pub struct InboundJob {
    pub from: PeerId,
    pub request: JobRequest,
    pub responder: Responder,
}

/// Sends the one answer to an [`InboundJob`].
#[derive(Debug)]
pub struct Responder {
    pub(crate) channel: ResponseChannel<JobResponse>,
    pub(crate) responses: mpsc::Sender<Respond>,
}

impl Responder {
    pub async fn send(self, response: JobResponse) -> Result<(), NetworkError> {
        let (tx, rx) = oneshot::channel();
        self.responses
            .send(Respond {
                channel: self.channel,
                response: Box::new(response),
                reply: tx,
            })
            .await
            .map_err(|_| NetworkError::EventLoopClosed)?;
        rx.await.map_err(|_| NetworkError::EventLoopClosed)?
    }
}

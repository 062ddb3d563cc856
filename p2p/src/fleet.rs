//! The fleet link ([`wire::fleet::FLEET_PROTOCOL`]): one long-lived stream an
//! enrolled node opens to its server and keeps open, on the connection it
//! already has, carrying frames both ways (telemetry and results up,
//! commands down). So a server reaches a node behind NAT without an inbound
//! port or a relay reservation of its own.
//!
//! The far end of a link is whoever the Noise handshake authenticated: a
//! node opens its link only to the server peer id it pinned, and a server
//! takes a link only as coming from the node whose peer id it carries.

use std::marker::PhantomData;
use std::time::Duration;

use futures::io::{ReadHalf, WriteHalf};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use wire::fleet::MAX_FLEET_FRAME_BYTES;

use crate::{framing, NetworkError};

/// How long opening a link may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// How many accepted links may wait for the server to take them.
const ACCEPT_BACKLOG: usize = 64;

fn protocol() -> StreamProtocol {
    StreamProtocol::new(wire::fleet::FLEET_PROTOCOL)
}

/// One end of a fleet link.
pub struct FleetLink {
    peer: PeerId,
    stream: Stream,
}

impl std::fmt::Debug for FleetLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetLink")
            .field("peer", &self.peer)
            .finish()
    }
}

impl FleetLink {
    /// The authenticated peer at the other end.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Splits the link into a reader of `In` frames and a writer of `Out`
    /// frames, which may live on different tasks.
    pub fn split<In, Out>(self) -> (LinkReader<In>, LinkWriter<Out>) {
        let (read, write) = self.stream.split();
        (
            LinkReader {
                io: read,
                _frames: PhantomData,
            },
            LinkWriter {
                io: write,
                _frames: PhantomData,
            },
        )
    }
}

/// Reads typed frames from a link.
pub struct LinkReader<T> {
    io: ReadHalf<Stream>,
    _frames: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> LinkReader<T> {
    /// The next frame; `None` when the other end closed the link.
    pub async fn next(&mut self) -> Result<Option<T>, NetworkError> {
        framing::read(&mut self.io, MAX_FLEET_FRAME_BYTES)
            .await
            .map_err(|e| NetworkError::Protocol(e.to_string()))
    }
}

/// Writes typed frames to a link.
pub struct LinkWriter<T> {
    io: WriteHalf<Stream>,
    _frames: PhantomData<fn(T)>,
}

impl<T: Serialize> LinkWriter<T> {
    pub async fn send(&mut self, frame: &T) -> Result<(), NetworkError> {
        framing::write(&mut self.io, frame, MAX_FLEET_FRAME_BYTES)
            .await
            .map_err(|e| match e {
                framing::FrameError::Io(_) => NetworkError::ConnectionClosed,
                other => NetworkError::Protocol(other.to_string()),
            })
    }

    /// Closes our side; the other end reads the end of the link.
    pub async fn close(mut self) {
        let _ = self.io.close().await;
    }
}

/// Opens a link to `peer`.
pub(crate) async fn open(
    mut control: libp2p_stream::Control,
    peer: PeerId,
) -> Result<FleetLink, NetworkError> {
    let stream = tokio::time::timeout(
        OPEN_TIMEOUT,
        crate::open_stream(&mut control, peer, protocol()),
    )
    .await
    .map_err(|_| NetworkError::Timeout)??;
    Ok(FleetLink { peer, stream })
}

/// Takes the links peers open to us, from now on (once per process).
pub(crate) fn accept(
    mut control: libp2p_stream::Control,
) -> Result<mpsc::Receiver<FleetLink>, NetworkError> {
    let mut incoming = control
        .accept(protocol())
        .map_err(|e| NetworkError::Transport(e.to_string()))?;
    let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            match tx.try_send(FleetLink { peer, stream }) {
                Ok(()) => {}
                // Dropped: the node sees its link end and opens another.
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(%peer, "too many fleet links waiting; dropped one");
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    });
    Ok(rx)
}

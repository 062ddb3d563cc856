//! The ad protocol ([`wire::AD_PROTOCOL`]): open a stream to a peer and it
//! writes its current signed ad as one frame, then closes. This is how a
//! consumer that just joined learns prices and load without waiting for the
//! next round of gossip.

use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::watch;
use wire::SignedEnvelope;

use crate::framing;
use crate::NetworkError;

const AD_FRAME_BYTES: u64 = wire::ads::MAX_AD_BYTES as u64 + 1024;
const AD_TIMEOUT: Duration = Duration::from_secs(10);
/// Asks again after a stream that ended without an ad, from this pause,
/// doubling.
const RETRIES: u32 = 4;
const RETRY_PAUSE: Duration = Duration::from_millis(10);

fn protocol() -> StreamProtocol {
    StreamProtocol::new(wire::AD_PROTOCOL)
}

pub(crate) fn serve(
    mut control: libp2p_stream::Control,
    own_ad: watch::Receiver<Option<SignedEnvelope>>,
) -> Result<(), NetworkError> {
    let mut incoming = control
        .accept(protocol())
        .map_err(|e| NetworkError::Transport(e.to_string()))?;
    tokio::spawn(async move {
        while let Some((peer, mut stream)) = incoming.next().await {
            let ad = own_ad.borrow().clone();
            tokio::spawn(async move {
                // No ad yet (a server, or a node still starting): just close.
                if let Some(ad) = ad {
                    let write = framing::write(&mut stream, &ad, AD_FRAME_BYTES);
                    if let Ok(Err(e)) = tokio::time::timeout(AD_TIMEOUT, write).await {
                        tracing::debug!(%peer, error = %e, "could not send our ad");
                    }
                }
                let _ = stream.close().await;
            });
        }
    });
    Ok(())
}

/// Asks `peer` for its ad. A stream that ends without one is asked again
/// a few times: libp2p-stream drops inbound streams that arrive while it
/// hands over another (see `jobs::JobCall::next_frame`), and a peer that has
/// no ad closes the stream the same way.
pub(crate) async fn fetch(
    control: libp2p_stream::Control,
    peer: PeerId,
) -> Result<SignedEnvelope, NetworkError> {
    let fetch = async {
        let mut pause = RETRY_PAUSE;
        for _ in 0..RETRIES {
            if let Some(ad) = fetch_once(control.clone(), peer).await? {
                return Ok(ad);
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        fetch_once(control.clone(), peer)
            .await?
            .ok_or_else(|| NetworkError::Protocol(format!("{peer} has no ad to give")))
    };
    tokio::time::timeout(AD_TIMEOUT, fetch)
        .await
        .map_err(|_| NetworkError::Timeout)?
}

/// The peer's ad, or `None` when the stream ends without one.
async fn fetch_once(
    mut control: libp2p_stream::Control,
    peer: PeerId,
) -> Result<Option<SignedEnvelope>, NetworkError> {
    let mut stream = crate::open_stream(&mut control, peer, protocol()).await?;
    let ad = framing::read::<SignedEnvelope, _>(&mut stream, AD_FRAME_BYTES)
        .await
        .map_err(|e| NetworkError::Protocol(e.to_string()))?;
    let _ = stream.close().await;
    Ok(ad)
}

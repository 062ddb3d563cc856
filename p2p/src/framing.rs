//! Frames on a libp2p stream: an unsigned-varint length (as libp2p's own
//! protocols use) followed by that many bytes of CBOR. Every read is bounded
//! before any buffer is allocated.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: u64, max: u64 },
    #[error("frame is not valid CBOR for this protocol: {0}")]
    Decode(String),
    #[error("the stream ended in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Encodes `value` as one frame. Fails (without writing) above `max` bytes.
pub fn encode<T: Serialize>(value: &T, max: u64) -> Result<Vec<u8>, FrameError> {
    let body = cbor4ii::serde::to_vec(Vec::new(), value)
        .map_err(|e| FrameError::Decode(format!("encoding: {e}")))?;
    let len = body.len() as u64;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut frame = Vec::with_capacity(body.len() + 10);
    let mut n = len;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            frame.push(byte);
            break;
        }
        frame.push(byte | 0x80);
    }
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Writes one frame and flushes it.
pub async fn write<T, W>(io: &mut W, value: &T, max: u64) -> Result<(), FrameError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let frame = encode(value, max)?;
    io.write_all(&frame).await?;
    io.flush().await?;
    Ok(())
}

/// Reads one frame. `Ok(None)` when the stream ends cleanly before a frame.
pub async fn read<T, R>(io: &mut R, max: u64) -> Result<Option<T>, FrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let mut len: u64 = 0;
    let mut shift = 0u32;
    let mut byte = [0u8; 1];
    loop {
        let n = io.read(&mut byte).await?;
        if n == 0 {
            return if shift == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        len |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return Err(FrameError::Decode("length prefix is too long".into()));
        }
    }
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len as usize];
    io.read_exact(&mut body).await.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    cbor4ii::serde::from_slice(&body)
        .map(Some)
        .map_err(|e| FrameError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use wire::jobs::{JobOutput, OutputPart, ProviderFrame};

    #[tokio::test]
    async fn frames_round_trip_back_to_back() {
        let frames = vec![
            ProviderFrame::Accepted { queue_position: 3 },
            ProviderFrame::Output {
                part: OutputPart::Embedding {
                    dim: 2,
                    first: 0,
                    vectors: vec![vec![0.6, 0.8]],
                },
            },
        ];
        let mut bytes = Vec::new();
        for f in &frames {
            bytes.extend(encode(f, 1024).unwrap());
        }
        let mut cur = Cursor::new(bytes);
        for f in &frames {
            let got: ProviderFrame = read(&mut cur, 1024).await.unwrap().unwrap();
            assert_eq!(&got, f);
        }
        assert!(read::<ProviderFrame, _>(&mut cur, 1024)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn oversized_truncated_and_garbage_frames_are_errors() {
        let big = encode(&vec![0u8; 5000], 10_000).unwrap();
        assert!(matches!(
            encode(&vec![0u8; 5000], 100),
            Err(FrameError::TooLarge { .. })
        ));
        let mut cur = Cursor::new(big.clone());
        assert!(matches!(
            read::<Vec<u8>, _>(&mut cur, 100).await,
            Err(FrameError::TooLarge { .. })
        ));
        let mut cur = Cursor::new(big[..big.len() - 1].to_vec());
        assert!(matches!(
            read::<Vec<u8>, _>(&mut cur, 10_000).await,
            Err(FrameError::Truncated)
        ));
        let mut cur = Cursor::new(vec![3u8, 0xff, 0xff, 0xff]);
        assert!(matches!(
            read::<ProviderFrame, _>(&mut cur, 100).await,
            Err(FrameError::Decode(_))
        ));
        let mut cur = Cursor::new(vec![0xffu8; 11]);
        assert!(read::<Vec<u8>, _>(&mut cur, 100).await.is_err());
    }

    #[test]
    fn output_parts_fit_the_frame_limit_in_cbor() {
        let output = JobOutput::Embedding {
            dim: 384,
            vectors: vec![vec![0.123_456_78; 384]; 64],
        };
        let limit = 32 * 1024;
        let parts = output.into_parts(limit);
        assert!(parts.len() > 1);
        for part in parts {
            let frame = ProviderFrame::Output { part };
            let len = encode(&frame, u64::MAX).unwrap().len();
            assert!(len <= limit, "frame of {len} bytes");
        }
    }
}

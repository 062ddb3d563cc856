//! The job protocol ([`wire::JOB_PROTOCOL`]) on libp2p streams.
//!
//! The consumer opens a stream and writes one [`ConsumerFrame::Request`];
//! the provider answers `Accepted`, the output in bounded `Output` parts,
//! then `Done` with the signed receipt, or `Refused`. The consumer may write
//! `Cancel`, or simply close the stream, to cancel.

use std::sync::Arc;
use std::time::Duration;

use futures::io::{ReadHalf, WriteHalf};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::{mpsc, watch, Semaphore};
use wire::jobs::{
    ConsumerFrame, JobOutput, JobRequest, OutputAssembler, OutputPart, ProviderFrame, RefusalCode,
};

use crate::framing::{self, FrameError};
use crate::NetworkError;

/// How long a peer has to send its request after opening a job stream.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Job streams handled at once; more are closed at once.
const MAX_INBOUND_STREAMS: usize = 512;
/// Output parts are cut to about this size.
const OUTPUT_PART_BYTES: usize = 256 * 1024;
/// The most numbers a whole output may hold (16 MiB of f32s).
const MAX_OUTPUT_VALUES: usize = (wire::MAX_JOB_RESPONSE_BYTES / 4) as usize;
/// Times a request is sent again when its stream ends before any answer
/// (see [`JobCall::next`]), and the pause before the first resend, which
/// doubles each time.
const RESENDS: u32 = 4;
const RESEND_PAUSE: Duration = Duration::from_millis(10);

fn protocol() -> StreamProtocol {
    StreamProtocol::new(wire::JOB_PROTOCOL)
}

fn frame_err(e: FrameError) -> NetworkError {
    match e {
        FrameError::Io(_) | FrameError::Truncated => NetworkError::ConnectionClosed,
        other => NetworkError::Protocol(other.to_string()),
    }
}

/// A job's answer as one value: what the provider's `Done` or `Refused`
/// frame says, with the output put back together from its parts. Never
/// sent as such: [`Responder::send`] cuts it into frames, [`JobCall`]
/// reassembles it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobResponse {
    Done {
        output: JobOutput,
        /// A [`wire::SignedEnvelope`] around a [`wire::jobs::Receipt`].
        receipt: wire::SignedEnvelope,
    },
    Refused {
        code: RefusalCode,
        message: String,
    },
}

/// Resolves once the consumer has cancelled (or gone away).
#[derive(Debug, Clone)]
pub struct CancelSignal(watch::Receiver<bool>);

impl CancelSignal {
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    pub async fn cancelled(&mut self) {
        // An error means the watcher is gone, which only happens once the
        // stream has ended: as good as cancelled.
        let _ = self.0.wait_for(|c| *c).await;
    }
}

/// Resolves once the consumer asks the job to stop early and answer with
/// what it has (a consumer whose reader went away).
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    pub async fn stopped(&mut self) {
        // The watcher ends with the stream: the job is cancelled then,
        // which its own signal says; a stop never comes.
        if self.0.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A job a peer sent us. Answer it through `responder`.
#[derive(Debug)]
pub struct InboundJob {
    pub from: PeerId,
    pub request: JobRequest,
    pub responder: Responder,
}

/// Writes the answer to one [`InboundJob`].
pub struct Responder {
    writer: WriteHalf<Stream>,
    cancel: CancelSignal,
    stop: StopSignal,
    /// Text already sent with [`Responder::stream_text`], and its parts.
    streamed: String,
    parts: u32,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("cancelled", &self.cancel.is_cancelled())
            .finish()
    }
}

impl Responder {
    /// Resolves when the consumer cancels the job.
    pub fn cancel_signal(&self) -> CancelSignal {
        self.cancel.clone()
    }

    /// Resolves when the consumer asks the job to stop and settle.
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }

    /// Tells the consumer the job is taken, and its place in the queue.
    pub async fn accepted(&mut self, queue_position: u32) -> Result<(), NetworkError> {
        framing::write(
            &mut self.writer,
            &ProviderFrame::Accepted { queue_position },
            wire::MAX_JOB_FRAME_BYTES,
        )
        .await
        .map_err(frame_err)
    }

    /// Sends a piece of generated text before the answer is known.
    pub async fn stream_text(&mut self, delta: String) -> Result<(), NetworkError> {
        if delta.is_empty() {
            return Ok(());
        }
        let part = OutputPart::Text {
            seq: self.parts,
            delta,
            finish_reason: None,
        };
        framing::write(
            &mut self.writer,
            &ProviderFrame::Output { part: part.clone() },
            wire::MAX_JOB_FRAME_BYTES,
        )
        .await
        .map_err(frame_err)?;
        if let OutputPart::Text { delta, .. } = part {
            self.streamed.push_str(&delta);
        }
        self.parts += 1;
        Ok(())
    }

    /// Sends the final answer: the output in parts (after any text already
    /// streamed, which must begin the output) then the receipt, or the
    /// refusal. Closes the stream.
    pub async fn send(mut self, response: JobResponse) -> Result<(), NetworkError> {
        let frames: Vec<ProviderFrame> = match response {
            JobResponse::Done {
                output:
                    JobOutput::TextGeneration {
                        text,
                        finish_reason,
                    },
                receipt,
            } if self.parts > 0 => match text.strip_prefix(self.streamed.as_str()) {
                Some(rest) => JobOutput::TextGeneration {
                    text: rest.to_owned(),
                    finish_reason,
                }
                .into_parts(OUTPUT_PART_BYTES)
                .into_iter()
                .map(|part| match part {
                    OutputPart::Text {
                        seq,
                        delta,
                        finish_reason,
                    } => OutputPart::Text {
                        seq: seq + self.parts,
                        delta,
                        finish_reason,
                    },
                    other => other,
                })
                .map(|part| ProviderFrame::Output { part })
                .chain(std::iter::once(ProviderFrame::Done { receipt }))
                .collect(),
                None => vec![ProviderFrame::Refused {
                    code: RefusalCode::EngineFailed,
                    message: "the streamed text is not the start of the output".into(),
                }],
            },
            JobResponse::Done { output, receipt } => output
                .into_parts(OUTPUT_PART_BYTES)
                .into_iter()
                .map(|part| ProviderFrame::Output { part })
                .chain(std::iter::once(ProviderFrame::Done { receipt }))
                .collect(),
            JobResponse::Refused { code, message } => {
                vec![ProviderFrame::Refused { code, message }]
            }
        };
        for frame in &frames {
            framing::write(&mut self.writer, frame, wire::MAX_JOB_FRAME_BYTES)
                .await
                .map_err(frame_err)?;
        }
        self.writer
            .close()
            .await
            .map_err(|_| NetworkError::ConnectionClosed)
    }
}

/// Accepts job streams and hands each request to `inbound`.
pub(crate) fn serve(
    mut control: libp2p_stream::Control,
    inbound: mpsc::Sender<InboundJob>,
) -> Result<(), NetworkError> {
    let mut incoming = control
        .accept(protocol())
        .map_err(|e| NetworkError::Transport(e.to_string()))?;
    let permits = Arc::new(Semaphore::new(MAX_INBOUND_STREAMS));
    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "too many job streams; closing one");
                continue;
            };
            let inbound = inbound.clone();
            tokio::spawn(async move {
                take_request(peer, stream, inbound).await;
                drop(permit);
            });
        }
    });
    Ok(())
}

async fn take_request(peer: PeerId, stream: Stream, inbound: mpsc::Sender<InboundJob>) {
    let (mut reader, writer) = stream.split();
    let first = tokio::time::timeout(
        REQUEST_READ_TIMEOUT,
        framing::read::<ConsumerFrame, _>(&mut reader, wire::MAX_JOB_REQUEST_BYTES),
    )
    .await;
    let request = match first {
        Ok(Ok(Some(ConsumerFrame::Request { request }))) => request,
        Ok(Ok(Some(ConsumerFrame::Cancel | ConsumerFrame::Stop) | None)) => return,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "bad job request");
            let mut writer = writer;
            let _ = framing::write(
                &mut writer,
                &ProviderFrame::Refused {
                    code: RefusalCode::BadInput,
                    message: e.to_string(),
                },
                wire::MAX_JOB_FRAME_BYTES,
            )
            .await;
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no job request within {REQUEST_READ_TIMEOUT:?}");
            return;
        }
    };
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(watch_for_cancel(reader, cancel_tx, stop_tx));
    let job = InboundJob {
        from: peer,
        request,
        responder: Responder {
            writer,
            cancel: CancelSignal(cancel_rx),
            stop: StopSignal(stop_rx),
            streamed: String::new(),
            parts: 0,
        },
    };
    if let Err(e) = inbound.try_send(job) {
        let job = match e {
            mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => job,
        };
        tracing::warn!(%peer, "job queue full; refusing");
        let _ = job
            .responder
            .send(JobResponse::Refused {
                code: RefusalCode::Overloaded,
                message: "the node's job queue is full".into(),
            })
            .await;
    }
}

/// Reads what else the consumer sends: a `Stop`, a `Cancel`, or the end of
/// the stream.
async fn watch_for_cancel(
    mut reader: ReadHalf<Stream>,
    cancel: watch::Sender<bool>,
    stop: watch::Sender<bool>,
) {
    loop {
        match framing::read::<ConsumerFrame, _>(&mut reader, wire::MAX_JOB_REQUEST_BYTES).await {
            Ok(Some(ConsumerFrame::Request { .. })) => continue,
            Ok(Some(ConsumerFrame::Stop)) => {
                let _ = stop.send(true);
            }
            Ok(Some(ConsumerFrame::Cancel)) | Ok(None) | Err(_) => {
                let _ = cancel.send(true);
                return;
            }
        }
    }
}

/// What a consumer sees of a running job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobUpdate {
    Accepted {
        queue_position: u32,
    },
    /// A part of the output, as it streams in.
    Output(OutputPart),
    /// The answer: the whole output and the provider's signed receipt (not
    /// yet checked against the job: see [`wire::jobs::verify_receipt`]), or
    /// the refusal.
    Finished(JobResponse),
}

/// A job in flight on a stream to one provider.
pub struct JobCall {
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    assembler: Option<OutputAssembler>,
    deadline: tokio::time::Instant,
    finished: bool,
    /// Until the provider's first frame: how to send the request again.
    resend: Option<Resend>,
}

/// What sending a request again takes.
struct Resend {
    control: libp2p_stream::Control,
    peer: PeerId,
    request: JobRequest,
    left: u32,
    pause: Duration,
}

impl std::fmt::Debug for JobCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCall")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// Opens a job stream to `peer` and writes `request` on it.
async fn send_request(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    request: JobRequest,
) -> Result<(ReadHalf<Stream>, WriteHalf<Stream>), NetworkError> {
    let stream = crate::open_stream(control, peer, protocol()).await?;
    let (reader, mut writer) = stream.split();
    framing::write(
        &mut writer,
        &ConsumerFrame::Request { request },
        wire::MAX_JOB_REQUEST_BYTES,
    )
    .await
    .map_err(frame_err)?;
    Ok((reader, writer))
}

impl Resend {
    /// Sends the request on a new stream, again while the peer drops the
    /// stream before taking the request; `None` when no try is left.
    async fn send(
        &mut self,
    ) -> Option<Result<(ReadHalf<Stream>, WriteHalf<Stream>), NetworkError>> {
        while self.left > 0 {
            self.left -= 1;
            match send_request(&mut self.control, self.peer, self.request.clone()).await {
                Err(NetworkError::ConnectionClosed) => self.wait().await,
                other => return Some(other),
            }
        }
        None
    }

    async fn wait(&mut self) {
        tracing::debug!(peer = %self.peer, "job stream ended unanswered; sending the request again");
        tokio::time::sleep(self.pause).await;
        self.pause *= 2;
    }
}

impl JobCall {
    pub(crate) async fn open(
        control: libp2p_stream::Control,
        peer: PeerId,
        request: JobRequest,
        max_wait: Duration,
    ) -> Result<JobCall, NetworkError> {
        let until_deadline = Duration::from_millis(
            request
                .deadline
                .0
                .saturating_sub(wire::UnixMillis::now().0)
                // Give the provider's refusal time to arrive.
                .saturating_add(2_000),
        );
        let deadline = tokio::time::Instant::now() + until_deadline.min(max_wait);
        let mut resend = Resend {
            control,
            peer,
            request,
            left: RESENDS + 1,
            pause: RESEND_PAUSE,
        };
        let (reader, writer) = resend
            .send()
            .await
            .unwrap_or(Err(NetworkError::ConnectionClosed))?;
        Ok(JobCall {
            reader,
            writer,
            assembler: Some(OutputAssembler::new(MAX_OUTPUT_VALUES)),
            deadline,
            finished: false,
            resend: Some(resend),
        })
    }

    async fn read_frame(&mut self) -> Result<ProviderFrame, NetworkError> {
        let read = framing::read::<ProviderFrame, _>(&mut self.reader, wire::MAX_JOB_FRAME_BYTES);
        match tokio::time::timeout_at(self.deadline, read).await {
            Err(_) => Err(NetworkError::Timeout),
            Ok(Err(e)) => Err(frame_err(e)),
            Ok(Ok(None)) => Err(NetworkError::ConnectionClosed),
            Ok(Ok(Some(frame))) => Ok(frame),
        }
    }

    /// The provider's next frame. A stream that ends before the first one
    /// was most likely never read: libp2p-stream drops inbound streams that
    /// arrive while its hand-over channel (of one) is full, as happens when
    /// many consumers open jobs at once. A provider answers every request
    /// it reads at once (`Accepted` or `Refused`) and runs nothing before,
    /// so the request is sent again, a few times, while the peer is there.
    async fn next_frame(&mut self) -> Result<ProviderFrame, NetworkError> {
        loop {
            let closed = match self.read_frame().await {
                Ok(frame) => {
                    self.resend = None;
                    return Ok(frame);
                }
                Err(NetworkError::ConnectionClosed) => NetworkError::ConnectionClosed,
                Err(e) => return Err(e),
            };
            let Some(resend) = self.resend.as_mut().filter(|r| r.left > 0) else {
                return Err(closed);
            };
            resend.wait().await;
            match resend.send().await {
                Some(Ok((reader, writer))) => {
                    self.reader = reader;
                    self.writer = writer;
                }
                // No try left, or the peer is gone: the stream's end is the
                // answer.
                None | Some(Err(_)) => return Err(closed),
            }
        }
    }

    /// The next update; `None` after [`JobUpdate::Finished`].
    pub async fn next(&mut self) -> Result<Option<JobUpdate>, NetworkError> {
        if self.finished {
            return Ok(None);
        }
        let frame = self.next_frame().await?;
        Ok(Some(match frame {
            ProviderFrame::Accepted { queue_position } => JobUpdate::Accepted { queue_position },
            ProviderFrame::Output { part } => {
                let assembler = self
                    .assembler
                    .as_mut()
                    .ok_or_else(|| NetworkError::Protocol("output after the end".into()))?;
                assembler.push(part.clone())?;
                JobUpdate::Output(part)
            }
            ProviderFrame::Done { receipt } => {
                self.finished = true;
                let output = self
                    .assembler
                    .take()
                    .ok_or_else(|| NetworkError::Protocol("two answers".into()))?
                    .finish()?;
                let _ = self.writer.close().await;
                JobUpdate::Finished(JobResponse::Done { output, receipt })
            }
            ProviderFrame::Refused { code, message } => {
                self.finished = true;
                let _ = self.writer.close().await;
                JobUpdate::Finished(JobResponse::Refused { code, message })
            }
        }))
    }

    /// Reads updates until the answer.
    pub async fn finish(mut self) -> Result<JobResponse, NetworkError> {
        loop {
            match self.next().await? {
                Some(JobUpdate::Finished(response)) => return Ok(response),
                Some(_) => {}
                None => return Err(NetworkError::Protocol("the job has no answer".into())),
            }
        }
    }

    /// Asks the provider to stop early and answer with what it has (and a
    /// receipt for it); keep reading for the answer.
    pub async fn stop(&mut self) -> Result<(), NetworkError> {
        framing::write(
            &mut self.writer,
            &ConsumerFrame::Stop,
            wire::MAX_JOB_REQUEST_BYTES,
        )
        .await
        .map_err(frame_err)
    }

    /// Tells the provider to stop, and closes the stream.
    pub async fn cancel(mut self) {
        let _ = framing::write(
            &mut self.writer,
            &ConsumerFrame::Cancel,
            wire::MAX_JOB_REQUEST_BYTES,
        )
        .await;
        let _ = self.writer.close().await;
    }
}

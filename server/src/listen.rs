//! Accepting HTTP connections, with the cut-offs `axum::serve` lacks: a
//! client gets `header_read` to send a request's headers (else hyper
//! closes the connection), and `body_read` in all to send its body
//! (else the route's body extractor fails with `408 body_timeout` in the
//! project's error shape). A slow client therefore holds a connection for
//! a bounded time, however it trickles its bytes. Bodies are bounded in
//! size by the routes (`DefaultBodyLimit`, 2 MiB at most).
//!
//! Each request carries `ConnectInfo<SocketAddr>` as with axum's own
//! server; shutting down stops accepting and lets open requests finish.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a client may take to send a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cutoffs {
    /// From the connection (or the previous response) to the end of the
    /// request's headers.
    pub(crate) header_read: Duration,
    /// From the headers to the end of the body.
    pub(crate) body_read: Duration,
}

/// A request body that was not all sent in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub(crate) struct BodyTimedOut(pub(crate) Duration);

/// A body that fails once its deadline passes, however its bytes trickle.
struct Deadline {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(self.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits
/// for the requests in flight.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    cutoffs: Cutoffs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cutoffs.header_read);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: the connection is
                // lost, the server goes on.
                Err(e) => {
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let (mut parts, body) = request.into_parts();
            parts.extensions.insert(ConnectInfo(addr));
            let body = Body::new(Deadline {
                inner: body,
                sleep: Box::pin(tokio::time::sleep(cutoffs.body_read)),
                limit: cutoffs.body_read,
            });
            let request = axum::http::Request::from_parts(parts, body);
            let router = router.clone();
            async move { Ok::<_, Infallible>(always(router.oneshot(request).await)) }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(error = %e, %addr, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The value of a result that cannot fail.
fn always<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(t) => t,
        Err(never) => match never {},
    }
}

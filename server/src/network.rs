//! How to reach this server's libp2p peer, and a health check.

use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::api::NetworkInfo;

use crate::AppState;

/// `GET /api/v1/network`: nodes bootstrap from these addresses.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(network_info))
}

/// The server's libp2p peer: its id, addresses, version, and how it checks
/// nodes' answers.
#[utoipa::path(
    get,
    path = "/network",
    operation_id = "get_network",
    tag = "network",
    responses((status = 200, description = "How to reach the server's peer.", body = NetworkInfo)),
    security(()),
)]
async fn network_info(State(state): State<AppState>) -> Json<NetworkInfo> {
    Json(state.network_info.clone())
}

/// What a health check or load balancer asks: the server answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
    /// The server's version.
    version: &'static str,
}

/// `GET /healthz`: anyone may call it.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "network",
    responses((status = 200, description = "The server is up.", body = Health)),
    security(()),
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: wire::VERSION,
    })
}

/// Whether the server listening on `listen` answers `GET /healthz` with
/// 200 within `timeout` (`server healthcheck`, a container's health
/// check: the images carry no HTTP client). An unspecified address
/// (`0.0.0.0`, `::`) is asked on loopback.
pub async fn probe_health(
    listen: std::net::SocketAddr,
    timeout: std::time::Duration,
) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("cannot ask {addr}: {e}"))?;
        let mut head = [0u8; 12];
        stream
            .read_exact(&mut head)
            .await
            .map_err(|e| format!("no answer from {addr}: {e}"))?;
        match &head[..] {
            b"HTTP/1.1 200" => Ok(()),
            other => Err(format!(
                "{addr} answered {}",
                String::from_utf8_lossy(other).trim()
            )),
        }
    };
    tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| format!("no answer from {addr} within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-request HTTP server on loopback that answers `status`.
    async fn answering(status: &'static str) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = socket.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /healthz HTTP/1.1\r\n"));
            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn the_health_probe_passes_only_on_a_200() {
        let second = Duration::from_secs(5);
        let up = answering("200 OK").await;
        probe_health(
            std::net::SocketAddr::from(([0, 0, 0, 0], up.port())),
            second,
        )
        .await
        .unwrap();
        let down = answering("503 Service Unavailable").await;
        let refused = probe_health(down, second).await.unwrap_err();
        assert!(refused.contains("503"), "{refused}");
        // Nobody listening.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(probe_health(closed, second).await.is_err());
    }
}

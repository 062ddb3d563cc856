//! Telling the registry about this node: a signed registration at start-up,
//! then signed heartbeats. Registers again if the server forgets us.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wire::api::{ErrorBody, NetworkInfo};
use wire::registry::{Heartbeat, HeartbeatAck, NodeInfo, Registration};
use wire::{SignedEnvelope, UnixMillis};

#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error("could not reach the server at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the server refused ({status}): {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the server: {0}")]
    BadAnswer(String),
    #[error("could not sign: {0}")]
    Sign(#[from] wire::SigningError),
}

impl AnnounceError {
    fn is_unknown_node(&self) -> bool {
        matches!(self, AnnounceError::Refused { status: 404, .. })
    }
}

pub struct Announcer {
    http: reqwest::Client,
    server: reqwest::Url,
    keypair: p2p::Keypair,
    registration: Registration,
    /// Signed timestamps must strictly increase, even within one millisecond.
    last_signed: AtomicU64,
}

impl Announcer {
    pub fn new(server: reqwest::Url, keypair: p2p::Keypair, registration: Registration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent(format!("infernet-node/{}", wire::VERSION))
            .build()
            .unwrap_or_default();
        Announcer {
            http,
            server,
            keypair,
            registration,
            last_signed: AtomicU64::new(0),
        }
    }

    fn next_timestamp(&self) -> UnixMillis {
        let now = UnixMillis::now().0;
        let prev = self
            .last_signed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        UnixMillis(now.max(prev + 1))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.as_str().trim_end_matches('/'), path)
    }

    /// The server's HTTP address.
    pub fn server_url(&self) -> &str {
        self.server.as_str()
    }

    pub(crate) async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &SignedEnvelope,
    ) -> Result<T, AnnounceError> {
        let url = self.url(path);
        let response = self
            .http
            .post(&url)
            .json(body)
            .send()
            .await
            .map_err(|source| AnnounceError::Unreachable { url, source })?;
        read_answer(response).await
    }

    pub async fn register(&self) -> Result<NodeInfo, AnnounceError> {
        let mut registration = self.registration.clone();
        registration.timestamp = self.next_timestamp();
        let envelope = SignedEnvelope::seal(&self.keypair, &registration)?;
        self.post("/api/v1/nodes/register", &envelope).await
    }

    pub async fn heartbeat(
        &self,
        active_jobs: u32,
        accepting_jobs: bool,
    ) -> Result<HeartbeatAck, AnnounceError> {
        let beat = Heartbeat {
            node_id: self.registration.node_id,
            timestamp: self.next_timestamp(),
            active_jobs,
            accepting_jobs,
        };
        let envelope = SignedEnvelope::seal(&self.keypair, &beat)?;
        self.post("/api/v1/nodes/heartbeat", &envelope).await
    }

    /// Sends heartbeats forever; re-registers when the server does not know us.
    pub async fn heartbeat_loop(
        self: Arc<Self>,
        every: Duration,
        active: crate::admission::ActiveJobs,
        admission: crate::admission::Gate,
    ) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let beat = self.heartbeat(active.count(), admission.accepting());
            match beat.await {
                Ok(ack) => {
                    let skew = ack.server_time.abs_diff(UnixMillis::now());
                    if skew > 10_000 {
                        tracing::warn!(
                            skew_ms = skew,
                            "this machine's clock is off; fix it before the server refuses us"
                        );
                    }
                }
                Err(e) if e.is_unknown_node() => {
                    tracing::warn!("the server does not know this node; registering again");
                    if let Err(e) = self.register().await {
                        tracing::warn!(error = %e, "registration failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
            }
        }
    }
}

async fn read_answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, AnnounceError> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| AnnounceError::BadAnswer(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| AnnounceError::BadAnswer(e.to_string()));
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => Err(AnnounceError::Refused {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
        }),
        Err(_) => Err(AnnounceError::BadAnswer(format!(
            "{status}: {}",
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(200)
                .collect::<String>()
        ))),
    }
}

/// Reads the server's libp2p addresses from `GET /api/v1/network`, retrying
/// for up to `patience` while the server starts.
pub async fn server_network(
    server: &reqwest::Url,
    patience: Duration,
) -> Result<NetworkInfo, AnnounceError> {
    let url = format!("{}/api/v1/network", server.as_str().trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let deadline = tokio::time::Instant::now() + patience;
    let mut backoff = Duration::from_millis(200);
    loop {
        match http.get(&url).send().await {
            Ok(response) => return read_answer(response).await,
            Err(source) if tokio::time::Instant::now() + backoff > deadline => {
                return Err(AnnounceError::Unreachable { url, source })
            }
            Err(e) => {
                tracing::info!(error = %e, "server not reachable yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

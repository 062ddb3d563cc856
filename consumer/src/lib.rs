//! Running jobs on Infernet without the server: join the network through any
//! peer, find the providers of a model in the DHT, learn their prices and
//! load from their signed ads, choose, and run the job directly over libp2p,
//! failing over to the next provider when one goes away.
//!
//! A job completes at most once: the consumer stops at the first answer whose
//! receipt checks out, and never sends the job again after that.

pub mod canaries;
pub mod choice;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use p2p::{JobResponse, Multiaddr, NetworkError, PeerId};
use wire::ads::HeldAd;
use wire::jobs::{verify_receipt, JobInput, JobOutput, JobRequest, JobTerms, Receipt};
use wire::registry::ModelOffer;
use wire::{JobId, MilliSats, ModelHash, UnixMillis};

pub use choice::{rank, Candidate};

/// Providers asked for their ads at once.
const AD_FETCH_CONCURRENCY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("network: {0}")]
    Network(#[from] NetworkError),
    #[error("no provider of `{0}` was found")]
    NoProviders(String),
    #[error("{found} provider(s) of `{model}` found, none in pool `{pool}`")]
    NotInPool {
        model: String,
        found: usize,
        pool: String,
    },
    #[error("{found} provider(s) of `{model}` found, none at or under {max_price}")]
    TooExpensive {
        model: String,
        found: usize,
        max_price: MilliSats,
    },
    #[error("every provider failed: {}", summary(.0))]
    AllFailed(Vec<Attempt>),
    #[error("{found} provider(s) of `{model}` found, not {provider}")]
    ProviderNotFound {
        model: String,
        found: usize,
        provider: PeerId,
    },
    #[error("bad input: {0}")]
    BadInput(String),
}

fn summary(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|a| format!("{}: {}", a.provider, a.outcome))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why one try of a job on one provider failed.
#[derive(Debug, thiserror::Error)]
enum TryError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("refused ({}): {message}", code.as_str())]
    Refused {
        code: wire::jobs::RefusalCode,
        message: String,
    },
    #[error("bad receipt: {0}")]
    BadReceipt(#[from] wire::jobs::ReceiptError),
    #[error("the provider ended the job without an answer")]
    NoAnswer,
}

/// One try of a job on one provider.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Attempt {
    pub provider: String,
    pub outcome: String,
    pub ms: u64,
}

/// A finished job: the output and the provider's checked receipt.
#[derive(Debug, Clone)]
pub struct Completed {
    pub job_id: JobId,
    pub provider: PeerId,
    pub offer: ModelOffer,
    pub output: JobOutput,
    pub receipt: Receipt,
    pub receipt_envelope: wire::SignedEnvelope,
    /// Earlier tries that failed, in order, before the one that completed.
    pub failed_attempts: Vec<Attempt>,
}

/// What a caller sees while a job runs.
#[derive(Debug, Clone)]
pub enum Progress {
    Trying {
        provider: PeerId,
        price: MilliSats,
    },
    Accepted {
        provider: PeerId,
        queue_position: u32,
    },
    /// Vectors received so far.
    Output {
        provider: PeerId,
        items: u32,
    },
    /// The next piece of generated text.
    Text {
        provider: PeerId,
        delta: String,
    },
    Failed(Attempt),
}

/// A job to run.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// A model name or content hash.
    pub model: String,
    pub input: JobInput,
    pub max_price: Option<MilliSats>,
    /// Only providers that joined this public pool.
    pub pool: Option<String>,
    /// Only this provider (to check one node, say).
    pub provider: Option<PeerId>,
    pub timeout: Duration,
}

/// A consumer on the network: a libp2p peer that does not serve jobs.
#[derive(Clone, Debug)]
pub struct Consumer {
    network: p2p::Client,
}

impl Consumer {
    /// Joins the network through `peers` (each `/…/p2p/<id>`).
    pub async fn join(
        peers: Vec<Multiaddr>,
        listen: Vec<Multiaddr>,
    ) -> Result<(Consumer, tokio::task::JoinHandle<()>), ConsumerError> {
        let mut config = p2p::Config::new(listen, format!("infernet-consumer/{}", wire::VERSION));
        config.bootstrap = peers.clone();
        config.relay_server = false;
        // A consumer dials out; it does not need to be reachable.
        config.reachability = p2p::Reachability::Client;
        let (network, _inbound, event_loop) =
            p2p::start(p2p::Keypair::generate_ed25519(), config).await?;
        let task = tokio::spawn(event_loop.run());
        for peer in peers {
            network.dial(peer).await?;
        }
        Ok((Consumer { network }, task))
    }

    /// Uses an existing network handle (e.g. the server's).
    pub fn with_network(network: p2p::Client) -> Self {
        Consumer { network }
    }

    pub fn network(&self) -> &p2p::Client {
        &self.network
    }

    /// Every provider of `model` (name or content hash) that the DHT or
    /// gossip knows, with its current ad and a measured round trip.
    pub async fn discover(&self, model: &str) -> Result<Vec<Candidate>, ConsumerError> {
        let key = match model.parse::<ModelHash>() {
            Ok(hash) => p2p::model_key(&hash),
            Err(_) => p2p::model_name_key(model),
        };
        let mut peers: HashSet<PeerId> = self.network.find_providers(key).await?;
        let known = self.network.ads_offering(model).await?;
        peers.extend(known.iter().map(|held| held.ad.node_id.peer_id()));
        let candidates = stream::iter(peers)
            .map(|peer| {
                let addrs = addrs_of(&known, peer);
                self.probe(peer, addrs, model)
            })
            .buffer_unordered(AD_FETCH_CONCURRENCY)
            .filter_map(|c| async move { c })
            .collect::<Vec<_>>()
            .await;
        Ok(candidates)
    }

    /// Connects to a provider, fetches its ad (timing the round trip) and
    /// checks that it offers the model.
    async fn probe(&self, peer: PeerId, addrs: Vec<Multiaddr>, model: &str) -> Option<Candidate> {
        if let Err(e) = self.network.connect(peer, addrs).await {
            tracing::debug!(%peer, error = %e, "provider unreachable");
            return None;
        }
        let started = Instant::now();
        let held = match self.network.fetch_ad(peer).await {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "no ad from provider");
                return None;
            }
        };
        let measured = started.elapsed();
        let rtt = self
            .network
            .rtt(peer)
            .await
            .ok()
            .flatten()
            .map_or(measured, |ping| ping.min(measured));
        let offer = held.ad.offer(model)?.clone();
        Some(Candidate {
            peer,
            ad: held.ad,
            offer,
            rtt,
        })
    }

    /// Finds providers, ranks them, and runs the job on the best one,
    /// moving on to the next when one refuses, fails or disconnects.
    pub async fn run(
        &self,
        spec: &JobSpec,
        mut progress: impl FnMut(Progress),
    ) -> Result<Completed, ConsumerError> {
        spec.input
            .validate()
            .map_err(|e| ConsumerError::BadInput(e.to_string()))?;
        let mut found = self.discover(&spec.model).await?;
        if found.is_empty() {
            return Err(ConsumerError::NoProviders(spec.model.clone()));
        }
        if let Some(pool) = &spec.pool {
            let all = found.len();
            found.retain(|c| c.ad.in_pool(pool));
            if found.is_empty() {
                return Err(ConsumerError::NotInPool {
                    model: spec.model.clone(),
                    found: all,
                    pool: pool.clone(),
                });
            }
        }
        if let Some(provider) = spec.provider {
            let all = found.len();
            found.retain(|c| c.peer == provider);
            if found.is_empty() {
                return Err(ConsumerError::ProviderNotFound {
                    model: spec.model.clone(),
                    found: all,
                    provider,
                });
            }
        }
        let total = found.len();
        let ranked = rank(found, spec.input.task(), spec.max_price, UnixMillis::now());
        if ranked.is_empty() {
            return Err(ConsumerError::TooExpensive {
                model: spec.model.clone(),
                found: total,
                max_price: spec.max_price.unwrap_or_default(),
            });
        }
        let job_id = JobId::from_random(uuid::Uuid::new_v4().into_bytes());
        let deadline = UnixMillis(
            UnixMillis::now()
                .0
                .saturating_add(u64::try_from(spec.timeout.as_millis()).unwrap_or(u64::MAX)),
        );
        let mut failed = Vec::new();
        for candidate in ranked {
            if UnixMillis::now() >= deadline {
                break;
            }
            let provider = candidate.peer;
            progress(Progress::Trying {
                provider,
                price: candidate.offer.price_msat,
            });
            let started = Instant::now();
            let request = JobRequest {
                job_id: job_id.clone(),
                model_hash: candidate.offer.hash,
                input: spec.input.clone(),
                max_price_msat: spec
                    .max_price
                    .unwrap_or_else(|| candidate.offer.worst_case_price(&spec.input)),
                deadline,
                bid_msat: wire::MilliSats(0),
            };
            let outcome = self.try_provider(&candidate, request, &mut progress).await;
            match outcome {
                Ok((output, receipt, envelope)) => {
                    return Ok(Completed {
                        job_id,
                        provider,
                        offer: candidate.offer,
                        output,
                        receipt,
                        receipt_envelope: envelope,
                        failed_attempts: failed,
                    })
                }
                Err(reason) => {
                    let attempt = Attempt {
                        provider: provider.to_string(),
                        outcome: reason.to_string(),
                        ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    };
                    tracing::info!(%provider, outcome = %attempt.outcome, "provider failed; trying the next");
                    progress(Progress::Failed(attempt.clone()));
                    failed.push(attempt);
                }
            }
        }
        Err(ConsumerError::AllFailed(failed))
    }

    /// Runs the job on one provider. A receipt that does not verify (wrong
    /// job, wrong output, or a price above `request.max_price_msat`) fails
    /// the attempt like a refusal does.
    async fn try_provider(
        &self,
        candidate: &Candidate,
        request: JobRequest,
        progress: &mut impl FnMut(Progress),
    ) -> Result<(JobOutput, Receipt, wire::SignedEnvelope), TryError> {
        let provider = candidate.peer;
        let addrs = candidate
            .ad
            .multiaddrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let mut call = self
            .network
            .call_job(provider, addrs, request.clone())
            .await?;
        let mut items = 0u32;
        loop {
            match call.next().await? {
                Some(p2p::JobUpdate::Accepted { queue_position }) => {
                    progress(Progress::Accepted {
                        provider,
                        queue_position,
                    });
                }
                Some(p2p::JobUpdate::Output(part)) => match part {
                    wire::jobs::OutputPart::Embedding { vectors, .. } => {
                        items += u32::try_from(vectors.len()).unwrap_or(u32::MAX);
                        progress(Progress::Output { provider, items });
                    }
                    wire::jobs::OutputPart::Tensor { data, .. } => {
                        items += u32::try_from(data.len()).unwrap_or(u32::MAX);
                        progress(Progress::Output { provider, items });
                    }
                    wire::jobs::OutputPart::Text { delta, .. } => {
                        progress(Progress::Text { provider, delta });
                    }
                },
                Some(p2p::JobUpdate::Finished(JobResponse::Done { output, receipt })) => {
                    let checked = verify_receipt(
                        &receipt,
                        &JobTerms::of(&request, provider.into()),
                        &output,
                    )?;
                    return Ok((output, checked, receipt));
                }
                Some(p2p::JobUpdate::Finished(JobResponse::Refused { code, message })) => {
                    return Err(TryError::Refused { code, message });
                }
                None => return Err(TryError::NoAnswer),
            }
        }
    }
}

fn addrs_of(known: &[HeldAd], peer: PeerId) -> Vec<Multiaddr> {
    known
        .iter()
        .filter(|h| h.ad.node_id.peer_id() == peer)
        .flat_map(|h| h.ad.multiaddrs.iter().filter_map(|a| a.parse().ok()))
        .collect()
}

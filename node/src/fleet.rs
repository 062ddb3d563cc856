//! The node's end of the fleet link: an enrolled node opens one stream to
//! the server it pinned (over the connection it keeps, so it needs no
//! inbound port), sends its telemetry every `--telemetry-ms`, and runs the
//! commands its operator sends down the same stream, answering each with an
//! acknowledgement and a result. Commands arrive on no other path: a peer
//! that is not the pinned server cannot even open the protocol here.
//!
//! A broken link is opened again with backoff; commands sent while the
//! node was away wait on the server and arrive when it is back.

use std::sync::Arc;
use std::time::Duration;

use p2p::fleet::{LinkReader, LinkWriter};
use p2p::PeerId;
use tokio::sync::mpsc;
use wire::fleet::{Action, Command, NodeFrame, Outcome, ServerFrame};
use wire::UnixMillis;

use crate::admission::Admission;
use crate::advertise::Catalog;
use crate::engine::Pricing;
use crate::telemetry::{NodeState, Sampler};

/// Frames waiting to go up the link (acknowledgements and results).
const OUTBOX: usize = 64;
/// The longest pause between two tries to open the link.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the link reports and drives.
pub struct FleetAgent {
    pub state: NodeState,
    /// The pinned server's peer id: the only peer commands come from.
    pub server: PeerId,
    /// What the node advertises: new prices go out in its next ad, at once.
    pub catalog: Arc<tokio::sync::watch::Sender<Catalog>>,
    /// Where fetched models go.
    pub models_dir: std::path::PathBuf,
    /// `--fetch-max-mbit`, in bytes per second.
    pub fetch_max_rate: Option<u64>,
}

impl FleetAgent {
    /// Keeps the link open for as long as the node runs.
    pub async fn run(self) {
        let agent = Arc::new(self);
        let mut sampler = Sampler::new();
        let mut backoff = Duration::from_millis(250);
        loop {
            match agent.state.network.open_fleet_link(agent.server).await {
                Ok(link) => {
                    tracing::info!(server = %agent.server, "fleet link open");
                    backoff = Duration::from_millis(250);
                    let (reader, writer) = link.split::<ServerFrame, NodeFrame>();
                    let ended = agent.clone().serve(reader, writer, &mut sampler).await;
                    tracing::warn!(reason = %ended, "fleet link closed; opening it again");
                }
                Err(e) => tracing::warn!(error = %e, "could not open the fleet link"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Serves one link until it breaks; why it ended.
    async fn serve(
        self: Arc<Self>,
        mut reader: LinkReader<ServerFrame>,
        mut writer: LinkWriter<NodeFrame>,
        sampler: &mut Sampler,
    ) -> String {
        let (outbox, mut pending) = mpsc::channel::<NodeFrame>(OUTBOX);
        let mut ticker = tokio::time::interval(self.state.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let telemetry = self.state.telemetry(sampler).await;
                    if let Err(e) = writer.send(&NodeFrame::Telemetry(Box::new(telemetry))).await {
                        return e.to_string();
                    }
                }
                Some(frame) = pending.recv() => {
                    if let Err(e) = writer.send(&frame).await {
                        return e.to_string();
                    }
                }
                frame = reader.next() => match frame {
                    Ok(Some(ServerFrame::Command(command))) => {
                        self.clone().obey(command, outbox.clone());
                    }
                    Ok(None) => return "the server closed it".into(),
                    Err(e) => return e.to_string(),
                },
            }
        }
    }

    /// Acknowledges `command` and runs it on a task of its own, so that a
    /// drain's wait never holds up the link.
    fn obey(self: Arc<Self>, command: Command, outbox: mpsc::Sender<NodeFrame>) {
        tokio::spawn(async move {
            let id = command.id.clone();
            let outcome = if command.expires_at < UnixMillis::now() {
                Outcome::Failed {
                    reason: "the command expired before it reached the node".into(),
                }
            } else {
                if outbox
                    .send(NodeFrame::Ack { id: id.clone() })
                    .await
                    .is_err()
                {
                    return;
                }
                tracing::info!(command = %id, action = %command.action.describe(), "operator's command");
                self.run_action(&command.action).await
            };
            // A link that broke meanwhile loses the result; the server then
            // shows the command as acknowledged, not finished.
            let _ = outbox.send(NodeFrame::Result { id, outcome }).await;
        });
    }

    async fn run_action(&self, action: &Action) -> Outcome {
        match action {
            Action::Pause => {
                self.state.admission.set(Admission::Paused);
                Outcome::Succeeded {
                    detail: "paused: taking no new jobs".into(),
                }
            }
            Action::Resume => {
                self.state.admission.set(Admission::Open);
                Outcome::Succeeded {
                    detail: "taking jobs".into(),
                }
            }
            Action::SetPrices { prices } => {
                let changes: Vec<_> = prices
                    .iter()
                    .map(|p| {
                        (
                            p.model,
                            Pricing {
                                price_msat: p.price_msat,
                                token_price: p.token_price,
                            },
                        )
                    })
                    .collect();
                match self.state.engine.set_prices(&changes) {
                    Ok(()) => {
                        self.offer_models();
                        Outcome::Succeeded {
                            detail: format!(
                                "new prices for {} model(s), advertised",
                                changes.len()
                            ),
                        }
                    }
                    Err(e) => Outcome::Failed {
                        reason: e.to_string(),
                    },
                }
            }
            Action::SetSchedule { schedule } => {
                match self.state.hours.set(Some(schedule.clone())) {
                    Ok(()) => {
                        let now = UnixMillis::now();
                        Outcome::Succeeded {
                            detail: match self.state.hours.status(now) {
                                None => "always open".into(),
                                Some(s) if s.open => "schedule set: open now".into(),
                                Some(s) => match s.opens_at {
                                    Some(at) => format!(
                                        "schedule set: closed now, open again in {} min",
                                        at.0.saturating_sub(now.0).div_ceil(60_000)
                                    ),
                                    None => "schedule set: closed for the coming week".into(),
                                },
                            },
                        }
                    }
                    Err(reason) => Outcome::Failed { reason },
                }
            }
            Action::SetPools { pools } => match self.state.pools.set(pools.clone()) {
                Ok(()) => Outcome::Succeeded {
                    detail: format!("in {} pool(s), advertised", pools.len()),
                },
                Err(reason) => Outcome::Failed { reason },
            },
            Action::SetTags { .. } => Outcome::Failed {
                reason: "tags are kept by the server, not the node".into(),
            },
            Action::LoadModel { model } => {
                let started = std::time::Instant::now();
                match self.state.engine.get(model).await {
                    Ok(loaded) => Outcome::Succeeded {
                        detail: format!(
                            "{} loaded on {} ({} ms)",
                            loaded.offer.name,
                            loaded.offer.device,
                            started.elapsed().as_millis()
                        ),
                    },
                    Err(e) => Outcome::Failed {
                        reason: e.to_string(),
                    },
                }
            }
            Action::UnloadModel { model } => match self.state.engine.unload(model) {
                Ok(true) => Outcome::Succeeded {
                    detail: "unloaded; it loads again on its next job".into(),
                },
                Ok(false) => Outcome::Succeeded {
                    detail: "it was not loaded".into(),
                },
                Err(e) => Outcome::Failed {
                    reason: e.to_string(),
                },
            },
            Action::FetchModel { model } => self.fetch(*model).await,
            Action::RestartEngine => {
                let engine = self.state.engine.clone();
                let started = std::time::Instant::now();
                match tokio::task::spawn_blocking(move || engine.restart()).await {
                    Ok(Ok(added)) => {
                        self.offer_models();
                        Outcome::Succeeded {
                            detail: format!(
                                "restarted in {} ms; {} model(s) loaded, {} new",
                                started.elapsed().as_millis(),
                                self.state.engine.resident().len(),
                                added.len()
                            ),
                        }
                    }
                    Ok(Err(e)) => Outcome::Failed {
                        reason: e.to_string(),
                    },
                    Err(_) => Outcome::Failed {
                        reason: "the engine crashed while restarting".into(),
                    },
                }
            }
            Action::Drain => {
                self.state.admission.set(Admission::Draining);
                let mut admission = self.state.admission.watch();
                // Resumed (or paused) before the last job ended: the drain is over.
                tokio::select! {
                    () = self.state.active.idle() => Outcome::Succeeded {
                        detail: "drained: no job is running".into(),
                    },
                    _ = admission.wait_for(|a| *a != Admission::Draining) => Outcome::Failed {
                        reason: "the drain was called off by a later command".into(),
                    },
                }
            }
        }
    }

    /// Advertises the engine's models as they are now, and hands them to
    /// nodes that fetch them.
    fn offer_models(&self) {
        let offers = self.state.engine.offers();
        self.catalog.send_modify(|c| c.models = offers);
        if let Err(e) = crate::distribute::serve(&self.state.network, &self.state.engine) {
            tracing::warn!(error = %e, "could not hand out the models");
        }
    }

    /// Fetches `model` from the nodes that have it (progress in telemetry
    /// and ads), verifies it and offers it.
    async fn fetch(&self, model: wire::ModelHash) -> Outcome {
        if self.state.engine.offer(&model).is_some() {
            return Outcome::Succeeded {
                detail: "the node has this model already".into(),
            };
        }
        let started = std::time::Instant::now();
        if let Err(e) = crate::fetch_model(
            &self.state.network,
            model,
            &self.models_dir,
            self.fetch_max_rate,
            Some(&self.catalog),
        )
        .await
        {
            return Outcome::Failed {
                reason: e.to_string(),
            };
        }
        let engine = self.state.engine.clone();
        match tokio::task::spawn_blocking(move || engine.rescan()).await {
            Ok(Ok(_)) if self.state.engine.offer(&model).is_some() => {
                self.offer_models();
                let name = self
                    .state
                    .engine
                    .offer(&model)
                    .map(|o| o.name)
                    .unwrap_or_default();
                Outcome::Succeeded {
                    detail: format!(
                        "fetched and verified {name} in {} s; offered",
                        started.elapsed().as_secs()
                    ),
                }
            }
            Ok(Ok(_)) => Outcome::Failed {
                reason: "fetched, but the models directory does not hold it".into(),
            },
            Ok(Err(e)) => Outcome::Failed {
                reason: e.to_string(),
            },
            Err(_) => Outcome::Failed {
                reason: "the engine crashed while adding the model".into(),
            },
        }
    }
}

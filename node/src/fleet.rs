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
use p2p::{NetworkEvent, PeerId};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
use tokio::sync::{mpsc, watch};
use wire::fleet::{
    Action, AdmissionState, Command, Download, GpuTelemetry, NodeFrame, Outcome, Reachability,
    ReachabilityKind, ServerFrame, Telemetry,
};
use wire::UnixMillis;

use crate::admission::{ActiveJobs, Admission, Gate};
use crate::advertise::Catalog;
use crate::engine::Engine;

/// Frames waiting to go up the link (acknowledgements and results).
const OUTBOX: usize = 64;
/// The longest pause between two tries to open the link.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the link reports and drives.
pub struct FleetAgent {
    pub network: p2p::Client,
    /// The pinned server's peer id: the only peer commands come from.
    pub server: PeerId,
    pub interval: Duration,
    pub admission: Gate,
    pub active: ActiveJobs,
    pub engine: Arc<Engine>,
    pub catalog: watch::Receiver<Catalog>,
    /// Started with the network, so that it saw every event.
    pub nat: NatWatch,
}

impl FleetAgent {
    /// Keeps the link open for as long as the node runs.
    pub async fn run(self) {
        let agent = Arc::new(self);
        let mut sampler = Sampler::new();
        let mut backoff = Duration::from_millis(250);
        loop {
            match agent.network.open_fleet_link(agent.server).await {
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
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let telemetry = self.telemetry(sampler).await;
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
                self.admission.set(Admission::Paused);
                Outcome::Succeeded {
                    detail: "paused: taking no new jobs".into(),
                }
            }
            Action::Resume => {
                self.admission.set(Admission::Open);
                Outcome::Succeeded {
                    detail: "taking jobs".into(),
                }
            }
            Action::Drain => {
                self.admission.set(Admission::Draining);
                let mut admission = self.admission.watch();
                // Resumed (or paused) before the last job ended: the drain is over.
                tokio::select! {
                    () = self.active.idle() => Outcome::Succeeded {
                        detail: "drained: no job is running".into(),
                    },
                    _ = admission.wait_for(|a| *a != Admission::Draining) => Outcome::Failed {
                        reason: "the drain was called off by a later command".into(),
                    },
                }
            }
        }
    }

    async fn telemetry(&self, sampler: &mut Sampler) -> Telemetry {
        let active = self.active.count();
        let catalog = self.catalog.borrow().clone();
        let capacity = u32::try_from(catalog.models.len()).unwrap_or(u32::MAX);
        let admission = match self.admission.get() {
            Admission::Open => AdmissionState::Open,
            Admission::Paused => AdmissionState::Paused,
            Admission::Draining if active == 0 => AdmissionState::Drained,
            Admission::Draining => AdmissionState::Draining,
        };
        let loaded_models = self
            .engine
            .resident()
            .iter()
            .filter_map(|h| self.engine.offer(h).map(|o| o.name.clone()))
            .collect();
        let mut t = sampler.sample();
        t.queued_jobs = active.saturating_sub(capacity);
        t.running_jobs = active;
        t.loaded_models = loaded_models;
        t.downloads = catalog
            .fetching
            .iter()
            .map(|f| Download {
                model: f.model,
                done_bytes: f.done_bytes,
                total_bytes: f.total_bytes,
            })
            .collect();
        t.admission = admission;
        t.interval_ms = u32::try_from(self.interval.as_millis()).unwrap_or(u32::MAX);
        let addrs = self.network.external_addrs().await.unwrap_or_default();
        t.reachability = self.nat.reachability(&addrs);
        t
    }
}

/// Whether AutoNAT gave up on a direct address (an event that comes once,
/// so it is watched from the network's start).
pub struct NatWatch {
    behind_nat: watch::Receiver<bool>,
}

impl NatWatch {
    pub fn start(network: &p2p::Client) -> NatWatch {
        let (tx, behind_nat) = watch::channel(false);
        let mut events = network.subscribe();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(NetworkEvent::BehindNat) => {
                        tx.send_replace(true);
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        NatWatch { behind_nat }
    }

    /// How peers reach us, given the addresses the network confirmed.
    fn reachability(&self, confirmed: &[p2p::Multiaddr]) -> Reachability {
        let relayed = |a: &p2p::Multiaddr| a.iter().any(|p| matches!(p, p2p::Protocol::P2pCircuit));
        let (kind, reason) = if confirmed.iter().any(|a| !relayed(a)) {
            (ReachabilityKind::Public, None)
        } else if confirmed.iter().any(relayed) {
            (
                ReachabilityKind::Relayed,
                Some("no address of this node can be dialled directly, so peers reach it through a relay: forward a port (or set --external-addr) for direct connections"),
            )
        } else if *self.behind_nat.borrow() {
            (
                ReachabilityKind::Unreachable,
                Some("behind NAT, and no relay has given this node a slot: check that the server (or --relay) can be reached, or forward a port"),
            )
        } else {
            (
                ReachabilityKind::Unknown,
                Some("still finding out whether peers can dial this node (AutoNAT)"),
            )
        };
        Reachability {
            kind,
            reason: reason.map(str::to_owned),
        }
    }
}

/// CPU, RAM and GPU gauges.
struct Sampler {
    sys: System,
    nvml: Option<nvml_wrapper::Nvml>,
}

impl Sampler {
    fn new() -> Sampler {
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_memory(MemoryRefreshKind::nothing().with_ram())
                .with_cpu(CpuRefreshKind::nothing().with_cpu_usage()),
        );
        Sampler {
            sys,
            nvml: nvml_wrapper::Nvml::init().ok(),
        }
    }

    /// Gauges now; the caller fills in the node's own state.
    fn sample(&mut self) -> Telemetry {
        // CPU use is measured between two refreshes: the previous tick's
        // and this one.
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        let mib = |b: u64| b / (1024 * 1024);
        Telemetry {
            at: UnixMillis::now(),
            gpus: self.gpus(),
            cpu_pct: self.sys.global_cpu_usage(),
            ram_used_mib: mib(self.sys.used_memory()),
            ram_total_mib: mib(self.sys.total_memory()),
            queued_jobs: 0,
            running_jobs: 0,
            loaded_models: Vec::new(),
            downloads: Vec::new(),
            admission: AdmissionState::Open,
            reachability: Reachability {
                kind: ReachabilityKind::Unknown,
                reason: None,
            },
            version: wire::VERSION.to_owned(),
            interval_ms: 0,
        }
    }

    fn gpus(&self) -> Vec<GpuTelemetry> {
        let Some(nvml) = &self.nvml else {
            return Vec::new();
        };
        let count = nvml.device_count().unwrap_or(0);
        (0..count)
            .filter_map(|i| {
                let d = nvml.device_by_index(i).ok()?;
                let memory = d.memory_info().ok();
                Some(GpuTelemetry {
                    index: i,
                    name: d.name().unwrap_or_else(|_| format!("GPU {i}")),
                    util_pct: d.utilization_rates().map_or(0.0, |u| u.gpu as f32),
                    mem_used_mib: memory.as_ref().map_or(0, |m| m.used / (1024 * 1024)),
                    mem_total_mib: memory.as_ref().map_or(0, |m| m.total / (1024 * 1024)),
                    temp_c: d
                        .temperature(nvml_wrapper::enum_wrappers::device::TemperatureSensor::Gpu)
                        .map_or(0.0, |t| t as f32),
                    // NVML reports milliwatts.
                    power_w: d.power_usage().map_or(0.0, |mw| mw as f32 / 1000.0),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_measures_this_machine() {
        let mut s = Sampler::new();
        let t = s.sample();
        assert!(t.ram_total_mib > 0);
        assert!(t.ram_used_mib <= t.ram_total_mib);
        assert!((0.0..=100.0).contains(&t.cpu_pct), "{}", t.cpu_pct);
        assert_eq!(t.version, wire::VERSION);
    }
}

//! What a node reports about itself: CPU and RAM (sysinfo), each NVIDIA
//! GPU (NVML, named as DCGM names them), its jobs, loaded models, downloads,
//! admission and reachability. The fleet link sends it to the server; the
//! `/metrics` endpoint shows it to Prometheus.

use std::sync::Arc;
use std::time::Duration;

use p2p::NetworkEvent;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
use tokio::sync::watch;
use wire::fleet::{
    AdmissionState, Download, GpuTelemetry, Reachability, ReachabilityKind, Telemetry,
};
use wire::UnixMillis;

use crate::admission::{ActiveJobs, Admission, Gate};
use crate::advertise::Catalog;
use crate::engine::Engine;

/// The node's state that telemetry reads; cheap to clone.
#[derive(Clone)]
pub struct NodeState {
    pub network: p2p::Client,
    pub admission: Gate,
    pub active: ActiveJobs,
    pub engine: Arc<Engine>,
    pub catalog: watch::Receiver<Catalog>,
    /// Started with the network, so that it saw every event.
    pub nat: Arc<NatWatch>,
    /// How often telemetry goes to the server.
    pub interval: Duration,
    pub hours: crate::schedule::Hours,
    pub pools: crate::saved::Setting<Vec<String>>,
    /// The operating system's time zone.
    pub time_zone: Option<String>,
}

impl NodeState {
    /// Telemetry now.
    pub async fn telemetry(&self, sampler: &mut Sampler) -> Telemetry {
        let active = self.active.count();
        let catalog = self.catalog.borrow().clone();
        let capacity = u32::try_from(catalog.models.len()).unwrap_or(u32::MAX);
        let now = UnixMillis::now();
        let admission = match self.admission.get() {
            Admission::Open if !self.hours.is_open(now) => AdmissionState::OffSchedule,
            Admission::Open => AdmissionState::Open,
            Admission::Paused => AdmissionState::Paused,
            Admission::Draining if active == 0 => AdmissionState::Drained,
            Admission::Draining => AdmissionState::Draining,
        };
        let loaded_models = self
            .engine
            .resident()
            .iter()
            .filter_map(|h| self.engine.offer(h).map(|o| o.name))
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
        t.time_zone = self.time_zone.clone();
        t.schedule = self.hours.current().schedule;
        t.schedule_status = self.hours.status(now);
        t.pools = self.pools.get();
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
pub struct Sampler {
    sys: System,
    nvml: Option<nvml_wrapper::Nvml>,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler::new()
    }
}

impl Sampler {
    pub fn new() -> Sampler {
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
    pub fn sample(&mut self) -> Telemetry {
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
            time_zone: None,
            schedule: None,
            schedule_status: None,
            pools: Vec::new(),
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

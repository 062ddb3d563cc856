//! What a node reports about itself, and what is kept of it for charts.

use serde::{Deserialize, Serialize};

use crate::ids::{ModelHash, UnixMillis};

/// Whether the node takes jobs, as its operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AdmissionState {
    Open,
    Paused,
    Draining,
    /// Draining, and nothing is running any more.
    Drained,
    /// Outside its schedule (or in its drain lead before a close).
    OffSchedule,
}

/// How others reach the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReachabilityKind {
    /// Dialled directly at a confirmed address.
    Public,
    /// Through a relay's reservation.
    Relayed,
    /// Neither: only its own outbound connections work.
    Unreachable,
    /// Not known yet (start-up).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reachability {
    pub kind: ReachabilityKind,
    /// What to fix, when it is not public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One GPU's gauges (NVML), with the DCGM exporter's names alongside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuTelemetry {
    pub index: u32,
    pub name: String,
    /// `DCGM_FI_DEV_GPU_UTIL`, percent.
    pub util_pct: f32,
    /// `DCGM_FI_DEV_FB_USED`, MiB.
    pub mem_used_mib: u64,
    /// `DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE`, MiB.
    pub mem_total_mib: u64,
    /// `DCGM_FI_DEV_GPU_TEMP`, °C.
    pub temp_c: f32,
    /// `DCGM_FI_DEV_POWER_USAGE`, W.
    pub power_w: f32,
}

/// A model being fetched from the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Download {
    pub model: ModelHash,
    pub done_bytes: u64,
    pub total_bytes: u64,
}

/// What a node reports every few seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Telemetry {
    /// The node's clock when it measured.
    pub at: UnixMillis,
    pub gpus: Vec<GpuTelemetry>,
    /// All cores together, percent.
    pub cpu_pct: f32,
    pub ram_used_mib: u64,
    pub ram_total_mib: u64,
    /// Jobs waiting for a worker.
    pub queued_jobs: u32,
    /// Jobs the node is running (queued ones included).
    pub running_jobs: u32,
    /// Models loaded in memory now, by name.
    pub loaded_models: Vec<String>,
    pub downloads: Vec<Download>,
    pub admission: AdmissionState,
    pub reachability: Reachability,
    pub version: String,
    /// How often the node sends telemetry: a link silent for three of
    /// these is taken as broken.
    pub interval_ms: u32,
    /// The node's own time zone (IANA), the default for its schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Its schedule as set; absent: always open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<crate::schedule::Schedule>,
    /// Where it stands with that schedule now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_status: Option<crate::schedule::ScheduleStatus>,
    /// The public pools it has joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
}

/// One GPU's gauges in a stored sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuGauges {
    pub util_pct: f32,
    pub mem_used_mib: f32,
    pub mem_total_mib: f32,
    pub temp_c: f32,
    pub power_w: f32,
}

/// What is kept of a telemetry frame for charts: the numbers only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Gauges {
    pub cpu_pct: f32,
    pub ram_used_mib: f32,
    pub ram_total_mib: f32,
    pub running_jobs: f32,
    pub queued_jobs: f32,
    #[serde(default)]
    pub gpus: Vec<GpuGauges>,
}

impl Gauges {
    pub fn of(t: &Telemetry) -> Gauges {
        Gauges {
            cpu_pct: t.cpu_pct,
            ram_used_mib: t.ram_used_mib as f32,
            ram_total_mib: t.ram_total_mib as f32,
            running_jobs: t.running_jobs as f32,
            queued_jobs: t.queued_jobs as f32,
            gpus: t
                .gpus
                .iter()
                .map(|g| GpuGauges {
                    util_pct: g.util_pct,
                    mem_used_mib: g.mem_used_mib as f32,
                    mem_total_mib: g.mem_total_mib as f32,
                    temp_c: g.temp_c,
                    power_w: g.power_w,
                })
                .collect(),
        }
    }

    /// The numbers in a flat list, for storage: CPU, RAM used, RAM in all,
    /// running, queued, then five per GPU (utilisation, memory used,
    /// memory in all, temperature, power).
    pub fn to_vec(&self) -> Vec<f32> {
        let mut v = vec![
            self.cpu_pct,
            self.ram_used_mib,
            self.ram_total_mib,
            self.running_jobs,
            self.queued_jobs,
        ];
        for g in &self.gpus {
            v.extend([
                g.util_pct,
                g.mem_used_mib,
                g.mem_total_mib,
                g.temp_c,
                g.power_w,
            ]);
        }
        v
    }

    /// [`Gauges::to_vec`] read back; missing numbers are 0.
    pub fn from_vec(v: &[f32]) -> Gauges {
        let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
        Gauges {
            cpu_pct: at(0),
            ram_used_mib: at(1),
            ram_total_mib: at(2),
            running_jobs: at(3),
            queued_jobs: at(4),
            gpus: v
                .get(5..)
                .unwrap_or_default()
                .chunks(5)
                .map(|g| {
                    let at = |i: usize| g.get(i).copied().unwrap_or(0.0);
                    GpuGauges {
                        util_pct: at(0),
                        mem_used_mib: at(1),
                        mem_total_mib: at(2),
                        temp_c: at(3),
                        power_w: at(4),
                    }
                })
                .collect(),
        }
    }

    /// The mean of `samples` (GPUs matched by position).
    pub fn mean(samples: &[Gauges]) -> Gauges {
        let n = samples.len().max(1) as f32;
        let gpus = samples.iter().map(|s| s.gpus.len()).max().unwrap_or(0);
        let avg = |f: &dyn Fn(&Gauges) -> f32| samples.iter().map(f).sum::<f32>() / n;
        Gauges {
            cpu_pct: avg(&|s| s.cpu_pct),
            ram_used_mib: avg(&|s| s.ram_used_mib),
            ram_total_mib: avg(&|s| s.ram_total_mib),
            running_jobs: avg(&|s| s.running_jobs),
            queued_jobs: avg(&|s| s.queued_jobs),
            gpus: (0..gpus)
                .map(|i| {
                    let of: Vec<GpuGauges> = samples
                        .iter()
                        .filter_map(|s| s.gpus.get(i).copied())
                        .collect();
                    let m = of.len().max(1) as f32;
                    let avg = |f: &dyn Fn(&GpuGauges) -> f32| of.iter().map(f).sum::<f32>() / m;
                    GpuGauges {
                        util_pct: avg(&|g| g.util_pct),
                        mem_used_mib: avg(&|g| g.mem_used_mib),
                        mem_total_mib: avg(&|g| g.mem_total_mib),
                        temp_c: avg(&|g| g.temp_c),
                        power_w: avg(&|g| g.power_w),
                    }
                })
                .collect(),
        }
    }
}

/// A point of a node's telemetry series: one frame at full resolution, or
/// the mean of the frames in a coarser bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TelemetryPoint {
    /// The server's clock when it arrived (a bucket: when it began).
    pub at: UnixMillis,
    pub gauges: Gauges,
}

/// `GET /api/v1/fleet/nodes/{id}/telemetry`: the series and its resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TelemetrySeries {
    /// Milliseconds between points (0: each frame as it came).
    pub step_ms: u64,
    pub points: Vec<TelemetryPoint>,
}

#[cfg(test)]
mod gauge_tests {
    use super::*;

    #[test]
    fn the_mean_of_samples_averages_each_gauge_and_each_gpu() {
        let g = |cpu: f32, temps: &[f32]| Gauges {
            cpu_pct: cpu,
            gpus: temps
                .iter()
                .map(|t| GpuGauges {
                    temp_c: *t,
                    ..GpuGauges::default()
                })
                .collect(),
            ..Gauges::default()
        };
        let m = Gauges::mean(&[g(10.0, &[60.0, 70.0]), g(30.0, &[80.0, 90.0])]);
        assert_eq!(m.cpu_pct, 20.0);
        assert_eq!(m.gpus.len(), 2);
        assert_eq!((m.gpus[0].temp_c, m.gpus[1].temp_c), (70.0, 80.0));
        assert_eq!(Gauges::mean(&[]), Gauges::default());
        let two_gpus = g(12.5, &[61.0, 70.5]);
        assert_eq!(two_gpus.to_vec().len(), 5 + 2 * 5);
        assert_eq!(Gauges::from_vec(&two_gpus.to_vec()), two_gpus);
    }
}

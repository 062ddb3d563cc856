//! What this machine has: CPU and RAM always, NVIDIA GPUs through NVML when
//! a driver is present. A machine without a GPU is normal, not an error.

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
use wire::registry::{GpuInfo, Hardware};

pub fn detect() -> Hardware {
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_memory(MemoryRefreshKind::everything())
            .with_cpu(CpuRefreshKind::everything()),
    );
    let cpu_model = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_owned())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let logical = sys.cpus().len();
    let cpu_cores = if logical > 0 {
        logical
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    Hardware {
        cpu_model,
        cpu_cores: u32::try_from(cpu_cores).unwrap_or(u32::MAX),
        ram_mb: sys.total_memory() / (1024 * 1024),
        gpus: nvidia_gpus(),
        os: System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_owned()),
        arch: std::env::consts::ARCH.to_owned(),
    }
}

/// NVIDIA GPUs as NVML sees them; empty when there is no driver.
fn nvidia_gpus() -> Vec<GpuInfo> {
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(n) => n,
        Err(e) => {
            tracing::debug!(error = %e, "no NVML; assuming no NVIDIA GPU");
            return Vec::new();
        }
    };
    let count = nvml.device_count().unwrap_or(0);
    (0..count)
        .filter_map(|i| {
            let device = nvml.device_by_index(i).ok()?;
            let name = device.name().unwrap_or_else(|_| format!("GPU {i}"));
            let vram_mb = device
                .memory_info()
                .map(|m| m.total / (1024 * 1024))
                .unwrap_or(0);
            let compute_capability = device
                .cuda_compute_capability()
                .ok()
                .map(|c| format!("{}.{}", c.major, c.minor));
            Some(GpuInfo {
                name,
                vram_mb,
                compute_capability,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn detects_at_least_one_core_and_some_ram() {
        let hw = super::detect();
        assert!(hw.cpu_cores >= 1);
        assert!(hw.ram_mb > 0);
        assert!(!hw.arch.is_empty());
    }
}

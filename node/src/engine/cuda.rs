//! Loading libtorch's CUDA backend.
//!
//! `libtorch_cuda.so` registers CUDA with libtorch from its static
//! initialisers; nothing calls into it by name. The linker's default
//! `--as-needed` therefore drops it from the binary (Cargo has no stable way
//! to say otherwise for one library), and libtorch then reports no CUDA even
//! on a GPU machine. So the node opens it itself, from the directory of the
//! `libtorch_cpu.so` it was started with, before asking libtorch about CUDA.
//! On a CPU-only libtorch the file is absent and that is not an error.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What happened when the node tried to load the CUDA backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaBackend {
    /// Loaded from this file.
    Loaded(PathBuf),
    /// This libtorch has no CUDA backend (a CPU build).
    Absent,
    /// The file is there but could not be opened (e.g. no CUDA runtime).
    Failed(String),
}

/// Loads the backend once per process; later calls return the first result.
pub fn ensure_loaded() -> &'static CudaBackend {
    static STATE: OnceLock<CudaBackend> = OnceLock::new();
    STATE.get_or_init(|| {
        let state = match torch_lib_dir() {
            None => CudaBackend::Failed("libtorch_cpu.so is not mapped in this process".into()),
            Some(dir) => load_from(&dir),
        };
        match &state {
            CudaBackend::Loaded(p) => {
                tracing::debug!(path = %p.display(), "loaded libtorch CUDA backend")
            }
            CudaBackend::Absent => tracing::debug!("libtorch has no CUDA backend"),
            CudaBackend::Failed(e) => {
                tracing::warn!(error = %e, "could not load libtorch CUDA backend")
            }
        }
        state
    })
}

/// The directory of the `libtorch_cpu.so` this process has mapped.
fn torch_lib_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.ends_with("/libtorch_cpu.so"))
        .and_then(|path| Path::new(path).parent().map(Path::to_path_buf))
}

fn load_from(dir: &Path) -> CudaBackend {
    let path = dir.join("libtorch_cuda.so");
    if !path.exists() {
        return CudaBackend::Absent;
    }
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return CudaBackend::Failed(format!("path {} contains a NUL byte", path.display()));
    };
    // SAFETY: `c_path` is a valid NUL-terminated string. The handle is never
    // closed: the library must stay loaded for the life of the process, as it
    // would had it been linked. Its initialisers only register the CUDA
    // backend with the libtorch already loaded.
    #[allow(unsafe_code)]
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns NULL or a valid C string owned by libc,
        // copied out before any further dl* call on this thread.
        #[allow(unsafe_code)]
        let msg = unsafe {
            let err = libc::dlerror();
            if err.is_null() {
                "dlopen failed".to_owned()
            } else {
                std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned()
            }
        };
        return CudaBackend::Failed(msg);
    }
    CudaBackend::Loaded(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(name: &str) -> bool {
        std::fs::read_to_string("/proc/self/maps")
            .map(|m| m.lines().any(|l| l.ends_with(name)))
            .unwrap_or(false)
    }

    #[test]
    fn backend_is_mapped_after_loading_when_libtorch_has_one() {
        // Touch libtorch so that libtorch_cpu.so is mapped, as in the node.
        let _ = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
        let dir = torch_lib_dir().expect("libtorch_cpu.so mapped");
        let has_backend = dir.join("libtorch_cuda.so").exists();
        match ensure_loaded() {
            CudaBackend::Loaded(path) => {
                assert!(has_backend);
                assert_eq!(path, &dir.join("libtorch_cuda.so"));
                assert!(mapped("/libtorch_cuda.so"), "loaded but not mapped");
            }
            CudaBackend::Absent => assert!(!has_backend),
            CudaBackend::Failed(e) => panic!("libtorch_cuda.so present but failed to load: {e}"),
        }
        // Once per process: the second call gives the same answer.
        assert_eq!(ensure_loaded(), ensure_loaded());
    }

    #[test]
    fn a_directory_without_the_backend_is_absent_not_an_error() {
        let dir = std::env::temp_dir();
        assert_eq!(load_from(&dir.join("no-such-torch")), CudaBackend::Absent);
    }
}

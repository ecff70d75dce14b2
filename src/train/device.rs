//! Choosing where tensors live: `--device cpu | cuda[:K] | vulkan[:K]`.
//!
//! burn 0.22 dispatches every tensor operation on a runtime [`Device`], so the model and the
//! training loop are the same code for every backend; this module only turns the user's choice
//! into a device and checks that it works. The CPU backend (burn's pure-Rust `flex`) is always
//! compiled in. CUDA (burn-cuda) and Vulkan (wgpu) are cargo features, `cuda` and `vulkan`; asking
//! for one that this build lacks, or for a GPU the machine does not have, is an error that says
//! so, never a panic.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, Tensor};

/// A device as the user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
    Vulkan(usize),
}

/// A device that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--device {spec}: {reason}")]
pub struct DeviceError {
    pub spec: String,
    pub reason: String,
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| DeviceError { spec: s.to_string(), reason: reason.to_string() };
        let (kind, index) = match s.split_once(':') {
            Some((k, i)) => (k, Some(i.parse::<usize>().map_err(|_| bad("the index after ':' must be a number, e.g. cuda:0"))?)),
            None => (s, None),
        };
        match kind {
            "cpu" if index.is_none() => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(index.unwrap_or(0))),
            "vulkan" => Ok(DeviceSpec::Vulkan(index.unwrap_or(0))),
            _ => Err(bad("expected cpu, cuda, cuda:K, vulkan or vulkan:K")),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceSpec::Vulkan(i) => write!(f, "vulkan:{i}"),
        }
    }
}

impl DeviceSpec {
    pub fn is_gpu(&self) -> bool {
        !matches!(self, DeviceSpec::Cpu)
    }

    /// The same kind of device with another index (one worker per GPU).
    pub fn with_index(&self, index: usize) -> Self {
        match self {
            DeviceSpec::Cpu => DeviceSpec::Cpu,
            DeviceSpec::Cuda(_) => DeviceSpec::Cuda(index),
            DeviceSpec::Vulkan(_) => DeviceSpec::Vulkan(index),
        }
    }

    /// Opens the device and runs one tiny operation on it, so that a missing GPU or driver shows
    /// up here as an error rather than as a panic in the middle of training.
    pub fn open(&self) -> Result<Device, DeviceError> {
        let device = self.device()?;
        if let DeviceSpec::Vulkan(_) = self {
            // Without the loader wgpu sees no Vulkan at all and burn reports only "no adapter":
            // name the missing library instead.
            vulkan_loader(VULKAN_LOADER).map_err(|reason| DeviceError { spec: self.to_string(), reason })?;
        }
        probe(&device).map_err(|reason| {
            let hint = match self {
                DeviceSpec::Cpu => "",
                DeviceSpec::Cuda(_) => " Is there an NVIDIA GPU with this index and a working driver (nvidia-smi)? Use --device cpu otherwise.",
                DeviceSpec::Vulkan(_) => {
                    " The Vulkan loader is installed, but no Vulkan driver reports a discrete GPU with this index: install the GPU's Vulkan \
                     driver (NVIDIA's driver ships nvidia_icd.json; `vulkaninfo --summary` lists what the loader finds, and \
                     VK_DRIVER_FILES=/path/to/icd.json names a driver installed elsewhere), or use --device cpu."
                }
            };
            DeviceError { spec: self.to_string(), reason: format!("{reason}.{hint}") }
        })?;
        Ok(device)
    }

    fn device(&self) -> Result<Device, DeviceError> {
        #[cfg(not(all(feature = "cuda", feature = "vulkan")))]
        let missing = |feature: &str| DeviceError {
            spec: self.to_string(),
            reason: format!("this build has no {feature} support; rebuild with `cargo build --release --features {feature}`"),
        };
        match *self {
            DeviceSpec::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(i) => Ok(Device::cuda(i)),
            #[cfg(not(feature = "cuda"))]
            DeviceSpec::Cuda(_) => Err(missing("cuda")),
            #[cfg(feature = "vulkan")]
            DeviceSpec::Vulkan(i) => Ok(Device::vulkan(burn::tensor::DeviceKind::DiscreteGpu(i))),
            #[cfg(not(feature = "vulkan"))]
            DeviceSpec::Vulkan(_) => Err(missing("vulkan")),
        }
    }
}

/// The Vulkan loader's library name on this system (what wgpu opens at run time).
#[cfg(target_os = "macos")]
const VULKAN_LOADER: &str = "libvulkan.1.dylib";
#[cfg(not(target_os = "macos"))]
const VULKAN_LOADER: &str = "libvulkan.so.1";

/// Checks that the Vulkan loader `library` can be loaded, as wgpu will load it.
fn vulkan_loader(library: &str) -> Result<(), String> {
    #[cfg(unix)]
    {
        let name = std::ffi::CString::new(library).map_err(|_| format!("{library:?} is not a library name"))?;
        // SAFETY: dlopen takes a NUL-terminated name; a loaded library is closed again at once
        // (the Vulkan loader runs no code of consequence on load or unload).
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!(
                "the Vulkan loader {library} is not installed (Debian and Ubuntu: apt-get install libvulkan1; Fedora: dnf install \
                 vulkan-loader), and the GPU's Vulkan driver is needed beside it; or use --device cpu"
            ));
        }
        // SAFETY: `handle` came from dlopen above and is closed once.
        unsafe { libc::dlclose(handle) };
    }
    #[cfg(not(unix))]
    let _ = library;
    Ok(())
}

/// Runs `1 + 1` on the device, turning a backend panic (no adapter, no driver) into a message.
fn probe(device: &Device) -> Result<(), String> {
    let device = device.clone();
    let result = quiet_catch_unwind(move || {
        let t = Tensor::<1>::from_floats([1.0f32], &device).add_scalar(1.0);
        t.into_data().iter::<f32>().next().unwrap_or(f32::NAN)
    });
    match result {
        Ok(2.0) => Ok(()),
        Ok(v) => Err(format!("the device computed 1 + 1 = {v}")),
        Err(msg) => Err(format!("the device could not be started: {msg}")),
    }
}

/// Runs `f`, returning a panic's message as an error without printing the panic.
///
/// A GPU backend starts its device on a thread of its own: when that thread panics (no adapter,
/// no driver), `f` sees only a closed channel. The first panic of any thread while `f` runs is
/// the cause, so that is the message returned.
pub fn quiet_catch_unwind<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, String> {
    let first = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let previous = std::panic::take_hook();
    let seen = first.clone();
    std::panic::set_hook(Box::new(move |info| {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get_or_insert_with(|| panic_message(info.payload()));
    }));
    let result = std::panic::catch_unwind(f);
    std::panic::set_hook(previous);
    let first = first.lock().unwrap_or_else(|e| e.into_inner()).take();
    result.map_err(|payload| first.unwrap_or_else(|| panic_message(&*payload)))
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Sets the number of CPU threads tensor operations use (rayon's global pool, which burn's CPU
/// backend and `train::ops` run on). Takes effect only before the first parallel operation of
/// the process.
///
/// The calling thread (the one that trains) is made one of the pool's threads: its parallel
/// operations then start on it directly, where from outside the pool each of the hundreds per
/// training step would hand its work to a pool thread and sleep until woken (with one thread,
/// all of the work and none of the wake-ups). Call it from the thread that will train, and keep
/// rayon calls on that thread: a pool of one has no other thread to run work sent from elsewhere.
///
/// It also has the allocator keep freed memory for reuse ([`keep_freed_memory`]).
pub fn set_cpu_threads(threads: usize) {
    keep_freed_memory();
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).use_current_thread().build_global();
}

/// Has glibc's allocator serve the activations of a training step from memory the previous step
/// freed. By default it maps each block of more than a few MiB afresh and unmaps it on free, and
/// gives the top of the heap back to the system: every step then faults in and zeroes its pages
/// again (about a tenth of a one-thread step at the main job's shape). Blocks up to 32 MiB (the
/// largest threshold glibc takes) now come from the heap, which keeps up to 1 GiB free at its
/// top. The peak, which the largest step sets, does not change.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; both values are within glibc's ranges.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        assert_eq!("vulkan:2".parse::<DeviceSpec>().unwrap(), DeviceSpec::Vulkan(2));
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().unwrap_err().to_string().contains("cuda:0"));
    }

    #[test]
    fn a_missing_vulkan_loader_is_named_with_the_package_to_install() {
        let err = vulkan_loader("libvulkan-not-here.so.9").unwrap_err();
        assert!(err.contains("libvulkan-not-here.so.9") && err.contains("apt-get install libvulkan1"), "{err}");
        // A library every Linux process has loads, so the check passes where the loader is there.
        #[cfg(target_os = "linux")]
        vulkan_loader("libc.so.6").unwrap();
    }

    #[test]
    fn a_panic_on_the_backends_own_thread_is_the_message_not_the_closed_channel() {
        let err = quiet_catch_unwind(|| {
            let (tx, rx) = std::sync::mpsc::channel::<u32>();
            std::thread::spawn(move || {
                let _tx = tx;
                panic!("No possible adapter available for backend");
            });
            rx.recv().unwrap()
        })
        .unwrap_err();
        assert_eq!(err, "No possible adapter available for backend");
        assert_eq!(quiet_catch_unwind(|| 2 + 2), Ok(4));
    }

    #[test]
    fn cpu_opens_and_missing_gpu_features_are_errors_not_panics() {
        DeviceSpec::Cpu.open().unwrap();
        #[cfg(not(feature = "cuda"))]
        assert!(DeviceSpec::Cuda(0).open().unwrap_err().to_string().contains("--features cuda"));
        #[cfg(not(feature = "vulkan"))]
        assert!(DeviceSpec::Vulkan(0).open().unwrap_err().to_string().contains("--features vulkan"));
    }
}

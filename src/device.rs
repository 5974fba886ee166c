//! Where the network runs, as the command line spells it: `cpu` (burn's pure-Rust flex backend),
//! `cuda:N` (burn's CUDA backend, Cargo feature `cuda`) and `wgpu` / `wgpu:N` (burn's wgpu backend,
//! Cargo feature `wgpu`: Vulkan, Metal or DirectX, whichever the machine has).
//!
//! [`DeviceSpec`]'s `FromStr` checks only the spelling, so every build understands every name;
//! [`DeviceSpec::to_device`] says when this binary was built without the backend a name needs, or
//! when the machine lacks what the CUDA backend loads at run time ([`crate::cuda_probe`]).
//! [`parse_available`] and [`parse_device_list`] do both, for clap's `--device` and `--devices`.

use std::fmt;
use std::str::FromStr;

use burn::prelude::Device;

/// One device, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    /// burn-flex on the CPU: all cores, no feature needed.
    Cpu,
    /// A CUDA GPU by its index (as `nvidia-smi` counts, after `CUDA_VISIBLE_DEVICES`).
    Cuda(usize),
    /// wgpu: its preferred adapter (`None`) or the N-th discrete GPU.
    Wgpu(Option<usize>),
}

/// A device name that is misspelt, or that this binary cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// A device name that is none of `cpu`, `cuda:N` or `wgpu[:N]`.
    #[error("unknown device `{0}`: expected cpu, cuda:N or wgpu[:N] (N = 0, 1, ...)")]
    Unknown(String),
    /// A device index that is not a number.
    #[error("device `{spec}`: `{index}` is not a device index (0, 1, ...)")]
    BadIndex {
        /// The device name as given.
        spec: String,
        /// The part after the colon that is not a number.
        index: String,
    },
    /// A backend this binary was compiled without.
    #[error(
        "device `{spec}`: this binary was built without the {feature} feature; rebuild with \
         `cargo build --release --features {feature}`"
    )]
    NotBuilt {
        /// The device name as given.
        spec: String,
        /// The cargo feature that enables its backend: `cuda` or `wgpu`.
        feature: &'static str,
    },
    /// An empty device list.
    #[error("no device given: expected a comma-separated list such as cuda:0,cuda:1")]
    EmptyList,
    /// A GPU named twice in a device list.
    #[error(
        "device `{0}` is listed twice: each GPU replica needs a device of its own (only `cpu` may \
         repeat, its replicas sharing the cores)"
    )]
    Duplicate(String),
    /// A device list mixing backends.
    #[error(
        "devices `{first}` and `{other}` are on different backends: data-parallel replicas must \
         all be cuda, all wgpu or all cpu"
    )]
    MixedBackends {
        /// The list's first device, whose backend the others must share.
        first: String,
        /// The first device on another backend.
        other: String,
    },
    /// A CUDA device on a machine that lacks part of what CUDA needs.
    #[error("device `{spec}` cannot run on this machine:{missing}")]
    CudaMissing {
        /// The device name as given.
        spec: String,
        /// What the machine lacks: driver, NVRTC or headers.
        missing: crate::cuda_probe::CudaMissing,
    },
}

impl DeviceSpec {
    /// The Cargo feature the device's backend needs (`None` for the CPU, always built).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            DeviceSpec::Cpu => None,
            DeviceSpec::Cuda(_) => Some("cuda"),
            DeviceSpec::Wgpu(_) => Some("wgpu"),
        }
    }

    /// Whether this binary was built with the device's backend.
    pub fn is_built(self) -> bool {
        match self {
            DeviceSpec::Cpu => true,
            DeviceSpec::Cuda(_) => cfg!(feature = "cuda"),
            DeviceSpec::Wgpu(_) => cfg!(feature = "wgpu"),
        }
    }

    /// The burn device (without autodiff: training calls `.autodiff()` on it), or
    /// [`DeviceError::NotBuilt`], or for CUDA [`DeviceError::CudaMissing`] when the driver, the GPU,
    /// NVRTC or the headers are missing. Those are only looked up: burn opens a device on its first
    /// tensor.
    pub fn to_device(self) -> Result<Device, DeviceError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::flex()),
            DeviceSpec::Cuda(index) => cuda_device(self, index),
            DeviceSpec::Wgpu(index) => wgpu_device(self, index),
        }
    }

    fn same_backend(self, other: DeviceSpec) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

/// burn's CUDA device, after [`crate::cuda_probe::check`] found the driver, the GPU, NVRTC and the
/// headers it loads at run time (burn panics when one is missing).
#[cfg(feature = "cuda")]
fn cuda_device(spec: DeviceSpec, index: usize) -> Result<Device, DeviceError> {
    crate::cuda_probe::check(index).map_err(|missing| DeviceError::CudaMissing {
        spec: spec.to_string(),
        missing,
    })?;
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(spec: DeviceSpec, _index: usize) -> Result<Device, DeviceError> {
    Err(not_built(spec))
}

#[cfg(feature = "wgpu")]
fn wgpu_device(_spec: DeviceSpec, index: Option<usize>) -> Result<Device, DeviceError> {
    use burn::tensor::DeviceKind;
    Ok(Device::wgpu(match index {
        Some(n) => DeviceKind::DiscreteGpu(n),
        None => DeviceKind::DefaultDevice,
    }))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device(spec: DeviceSpec, _index: Option<usize>) -> Result<Device, DeviceError> {
    Err(not_built(spec))
}

#[cfg(not(all(feature = "cuda", feature = "wgpu")))]
fn not_built(spec: DeviceSpec) -> DeviceError {
    DeviceError::NotBuilt {
        spec: spec.to_string(),
        feature: spec.feature().unwrap_or("default"),
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Wgpu(None) => write!(f, "wgpu"),
            DeviceSpec::Wgpu(Some(n)) => write!(f, "wgpu:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    /// `cpu`, `cuda` (= `cuda:0`), `cuda:N`, `wgpu`, `wgpu:N`; case and surrounding spaces ignored.
    fn from_str(text: &str) -> Result<Self, DeviceError> {
        let spec = text.trim().to_ascii_lowercase();
        let (backend, index) = match spec.split_once(':') {
            Some((backend, index)) => (backend, Some(index)),
            None => (spec.as_str(), None),
        };
        let index = index
            .map(|i| {
                i.parse::<usize>().map_err(|_| DeviceError::BadIndex {
                    spec: text.trim().to_string(),
                    index: i.to_string(),
                })
            })
            .transpose()?;
        match (backend, index) {
            ("cpu", None) => Ok(DeviceSpec::Cpu),
            ("cuda", index) => Ok(DeviceSpec::Cuda(index.unwrap_or(0))),
            ("wgpu", index) => Ok(DeviceSpec::Wgpu(index)),
            _ => Err(DeviceError::Unknown(text.trim().to_string())),
        }
    }
}

/// clap's value parser for `--device`: a well-spelt name whose backend this binary has.
pub fn parse_available(text: &str) -> Result<DeviceSpec, DeviceError> {
    let spec: DeviceSpec = text.parse()?;
    spec.to_device()?;
    Ok(spec)
}

/// `--devices cuda:0,cuda:1,...`: one replica per device, all on one backend, no GPU twice, each
/// built into this binary and present (checked in that order). `cpu` may repeat (`cpu,cpu`): its replicas
/// share the cores, which tests data-parallel training without a GPU but does not speed it up.
pub fn parse_device_list(text: &str) -> Result<Vec<DeviceSpec>, DeviceError> {
    let specs = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(DeviceSpec::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    let first = *specs.first().ok_or(DeviceError::EmptyList)?;
    for (i, spec) in specs.iter().enumerate() {
        if !spec.same_backend(first) {
            return Err(DeviceError::MixedBackends {
                first: first.to_string(),
                other: spec.to_string(),
            });
        }
        if *spec != DeviceSpec::Cpu && specs[..i].contains(spec) {
            return Err(DeviceError::Duplicate(spec.to_string()));
        }
    }
    for spec in &specs {
        spec.to_device()?;
    }
    Ok(specs)
}

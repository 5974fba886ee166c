//! What burn's CUDA backend loads at run time, checked before it opens a device, so that a
//! machine without it gets a message that names what is missing and how to provide it instead of
//! a panic deep inside the backend.
//!
//! The CUDA binary links no CUDA library (docs/gpu.md). When a device is first used, cudarc
//! `dlopen`s the driver (`libcuda.so`) and NVRTC (`libnvrtc.so`), and cubecl compiles each kernel
//! from CUDA C++ with NVRTC, which reads the CUDA headers from `$CUDA_PATH/include` (else
//! `/usr/local/cuda`, `/opt/cuda`, or `/usr` when `/usr/bin/nvcc` exists). Each is looked up here
//! the same way and by the same names (cudarc's `get_lib_name_candidates`, cubecl-cuda's
//! `install::cuda_path`).

use std::ffi::{CStr, CString, OsString, c_char, c_int, c_uint, c_void};
use std::fmt;
use std::path::{Path, PathBuf};

/// One thing the CUDA backend needs that this machine lacks, and how to provide it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// What is missing, e.g. "NVIDIA driver (libcuda)".
    pub what: &'static str,
    /// What was looked for and what happened.
    pub detail: String,
    /// How to provide it.
    pub fix: String,
}

/// Everything missing for a CUDA device, one line each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaMissing(pub Vec<Missing>);

impl fmt::Display for CudaMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.0 {
            write!(f, "\n  - {}: {}.\n    Fix: {}.", m.what, m.detail, m.fix)?;
        }
        write!(f, "\n  See docs/gpu.md for what a GPU machine needs.")
    }
}

/// What is missing when the NVIDIA driver library cannot be loaded.
pub const DRIVER: &str = "NVIDIA driver (libcuda)";
/// What is missing when the driver finds no CUDA GPU.
pub const GPU: &str = "CUDA GPU";
/// What is missing when CUDA's run-time compiler cannot be loaded.
pub const NVRTC: &str = "NVRTC, CUDA's run-time compiler (libnvrtc)";
/// What is missing when NCCL, NVIDIA's collective library, cannot be loaded.
pub const NCCL: &str = "NCCL, NVIDIA's collective communication library (libnccl)";
/// What is missing when the CUDA headers the kernels compile against are not found.
pub const HEADERS: &str = "CUDA headers";

/// The headers cubecl's generated kernels include (`cuda_fp16.h`, `cuda_bf16.h`, `mma.h` for the
/// tensor-core matrix multiply, `cuda/barrier` for asynchronous copies; the last one lives in
/// `include/cccl` from CUDA 13 on, which cubecl also puts on NVRTC's include path).
pub const REQUIRED_HEADERS: [&str; 4] = ["cuda_fp16.h", "cuda_bf16.h", "mma.h", "cuda/barrier"];

/// Checks the driver, GPU `index`, NVRTC and the headers; every problem found, or `Ok`.
pub fn check(index: usize) -> Result<(), CudaMissing> {
    let missing: Vec<Missing> = [
        check_driver(index, &library_names("cuda")).err(),
        check_nvrtc(&library_names("nvrtc")).err(),
        check_headers(cuda_root(std::env::var_os("CUDA_PATH"), |p| p.exists()).as_deref()).err(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CudaMissing(missing))
    }
}

/// The file names cudarc tries for a CUDA library on Linux, for the CUDA 12 and 13 releases.
pub fn library_names(name: &str) -> Vec<String> {
    ["", ".13", ".12", ".11", ".1"]
        .iter()
        .map(|suffix| format!("lib{name}.so{suffix}"))
        .collect()
}

/// Loads the driver, initialises it and counts its GPUs: `index` must be one of them.
pub fn check_driver(index: usize, names: &[String]) -> Result<(), Missing> {
    let fix_driver = "install the NVIDIA driver (`nvidia-smi` must list the GPU); in a container, \
                      start it with the GPU passed through (`docker run --gpus all`)";
    let (lib, name) = Library::open_first(names).map_err(|detail| Missing {
        what: DRIVER,
        detail,
        fix: fix_driver.to_string(),
    })?;
    let not_driver = |symbol: &str| Missing {
        what: DRIVER,
        detail: format!("{name} has no `{symbol}`: it is not the NVIDIA driver library"),
        fix: fix_driver.to_string(),
    };
    type CuInit = unsafe extern "C" fn(c_uint) -> c_int;
    type CuDeviceGetCount = unsafe extern "C" fn(*mut c_int) -> c_int;
    // SAFETY: the driver API's signatures: `CUresult cuInit(unsigned int)` and
    // `CUresult cuDeviceGetCount(int *)`.
    let init: CuInit = unsafe { lib.symbol(c"cuInit") }.ok_or_else(|| not_driver("cuInit"))?;
    let count: CuDeviceGetCount =
        unsafe { lib.symbol(c"cuDeviceGetCount") }.ok_or_else(|| not_driver("cuDeviceGetCount"))?;
    // SAFETY: cuInit takes flags 0; cuDeviceGetCount writes one int into `n`, which outlives it.
    let code = unsafe { init(0) };
    if code != 0 {
        return Err(Missing {
            what: GPU,
            detail: format!(
                "{name} loaded, but cuInit failed with {}",
                driver_error_name(&lib, code)
            ),
            fix: "check that `nvidia-smi` lists a GPU and that CUDA_VISIBLE_DEVICES does not hide \
                  it; CUDA_ERROR_INSUFFICIENT_DRIVER means the driver is older than the CUDA \
                  version this binary was built for (docs/gpu.md: CUDARC_CUDA_VERSION)"
                .to_string(),
        });
    }
    let mut n: c_int = 0;
    let code = unsafe { count(&mut n) };
    if code != 0 || index >= n.max(0) as usize {
        return Err(Missing {
            what: GPU,
            detail: format!("cuda:{index} asked for, but the driver sees {n} GPU(s)"),
            fix: "name a GPU from cuda:0 up to the count `nvidia-smi -L` shows (after \
                  CUDA_VISIBLE_DEVICES)"
                .to_string(),
        });
    }
    Ok(())
}

/// Loads NVRTC and looks for its compile entry point.
pub fn check_nvrtc(names: &[String]) -> Result<(), Missing> {
    let fix = "install the CUDA toolkit and put its lib64 folder on LD_LIBRARY_PATH, or `pip install \
               nvidia-cuda-nvrtc` and put its site-packages/nvidia/cu13/lib on LD_LIBRARY_PATH";
    check_library(names, NVRTC, "NVRTC", c"nvrtcVersion", fix, |detail| detail)
}

/// Loads the first of `names` that loads and looks for `symbol` in it: `what` is missing
/// (fixed by `fix`) when none loads, with `absent` amending the loader's reason, or when the
/// library lacks `symbol` (it is then not `kind`).
fn check_library(
    names: &[String],
    what: &'static str,
    kind: &str,
    symbol: &CStr,
    fix: &str,
    absent: impl FnOnce(String) -> String,
) -> Result<(), Missing> {
    let (lib, name) = Library::open_first(names).map_err(|detail| Missing {
        what,
        detail: absent(detail),
        fix: fix.to_string(),
    })?;
    // SAFETY: the symbol is only looked up, never called, so any function pointer type fits.
    match unsafe { lib.symbol::<unsafe extern "C" fn()>(symbol) } {
        Some(_) => Ok(()),
        None => Err(Missing {
            what,
            detail: format!(
                "{name} has no `{}`: it is not {kind}",
                symbol.to_string_lossy()
            ),
            fix: fix.to_string(),
        }),
    }
}

/// The file names cudarc tries for NCCL: [`library_names`]'s, which lack NCCL's own soname
/// (`libnccl.so.2`).
pub fn nccl_library_names() -> Vec<String> {
    library_names("nccl")
}

/// Loads NCCL by `names` (cudarc's: [`nccl_library_names`]) and looks for its entry points;
/// where only NCCL's soname `libnccl.so.2` loads, says which link cudarc needs.
pub fn check_nccl(names: &[String]) -> Result<(), Missing> {
    let fix = "`pip install nvidia-nccl-cu13` (or Debian's libnccl2) and put the folder of \
               libnccl.so.2 on LD_LIBRARY_PATH, with a link libnccl.so -> libnccl.so.2 in it \
               (Debian's libnccl-dev has one): cudarc loads libnccl.so";
    check_library(
        names,
        NCCL,
        "NCCL",
        c"ncclGetVersion",
        fix,
        |detail| match Library::open("libnccl.so.2") {
            Ok(_) => format!("{detail}; libnccl.so.2 loads, but cudarc does not look for it"),
            Err(_) => detail,
        },
    )
}

/// The CUDA installation cubecl-cuda reads headers from: `CUDA_PATH` when set (whether or not it
/// exists), else the first of `/usr/local/cuda`, `/opt/cuda` and `/usr` (when `/usr/bin/nvcc`
/// exists) that `exists` accepts.
pub fn cuda_root(cuda_path: Option<OsString>, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    if let Some(path) = cuda_path {
        return Some(PathBuf::from(path));
    }
    [
        ("/usr/local/cuda", "/usr/local/cuda"),
        ("/opt/cuda", "/opt/cuda"),
        ("/usr/bin/nvcc", "/usr"),
    ]
    .into_iter()
    .find(|(probe, _)| exists(Path::new(probe)))
    .map(|(_, root)| PathBuf::from(root))
}

/// Whether `root/include` holds [`REQUIRED_HEADERS`] (`cuda/barrier` also in `include/cccl`).
pub fn check_headers(root: Option<&Path>) -> Result<(), Missing> {
    let fix = "set CUDA_PATH to a CUDA installation whose include/ has them: the CUDA toolkit \
               (/usr/local/cuda), or `pip install nvidia-cuda-runtime nvidia-cuda-crt \
               nvidia-cuda-cccl` and CUDA_PATH=<site-packages>/nvidia/cu13";
    let Some(root) = root else {
        return Err(Missing {
            what: HEADERS,
            detail: "CUDA_PATH is not set and none of /usr/local/cuda, /opt/cuda, /usr/bin/nvcc \
                     exists"
                .to_string(),
            fix: fix.to_string(),
        });
    };
    let include = root.join("include");
    let absent: Vec<&str> = REQUIRED_HEADERS
        .into_iter()
        .filter(|h| !include.join(h).is_file() && !include.join("cccl").join(h).is_file())
        .collect();
    if absent.is_empty() {
        return Ok(());
    }
    Err(Missing {
        what: HEADERS,
        detail: format!("{} not found in {}", absent.join(", "), include.display()),
        fix: fix.to_string(),
    })
}

/// `cuGetErrorName` of `code`, or the number when the driver cannot name it.
fn driver_error_name(lib: &Library, code: c_int) -> String {
    type CuGetErrorName = unsafe extern "C" fn(c_int, *mut *const c_char) -> c_int;
    let mut name: *const c_char = std::ptr::null();
    // SAFETY: `CUresult cuGetErrorName(CUresult, const char **)` stores a pointer to a static
    // string, or leaves `name` null.
    let named = unsafe { lib.symbol::<CuGetErrorName>(c"cuGetErrorName") }
        .is_some_and(|f| unsafe { f(code, &mut name) } == 0 && !name.is_null());
    match named {
        // SAFETY: checked non-null; the driver's error names are NUL-terminated static strings.
        true => format!(
            "{} ({code})",
            unsafe { CStr::from_ptr(name) }.to_string_lossy()
        ),
        false => format!("error {code}"),
    }
}

/// A shared library opened with `dlopen`. Never closed: the backend loads the same libraries next,
/// and unloading the driver after `cuInit` is not safe.
struct Library(*mut c_void);

impl Library {
    /// The first of `names` that loads, with its name; else one line naming each and the loader's
    /// reason for the first.
    fn open_first(names: &[String]) -> Result<(Library, String), String> {
        let mut first_error = None;
        for name in names {
            match Library::open(name) {
                Ok(lib) => return Ok((lib, name.clone())),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(format!(
            "none of {} could be loaded ({})",
            names.join(", "),
            first_error.unwrap_or_default()
        ))
    }

    fn open(name: &str) -> Result<Library, String> {
        let c_name = CString::new(name).map_err(|_| format!("{name}: NUL in the name"))?;
        // SAFETY: a NUL-terminated name; dlerror's string is copied before the next dl call.
        unsafe {
            let handle = libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if handle.is_null() {
                let err = libc::dlerror();
                return Err(match err.is_null() {
                    true => format!("{name}: not found"),
                    false => CStr::from_ptr(err).to_string_lossy().into_owned(),
                });
            }
            Ok(Library(handle))
        }
    }

    /// The function `name` as `F`.
    ///
    /// # Safety
    /// `F` must be an `extern "C"` function pointer type matching the symbol's real signature,
    /// and the pointer must not be used after `self` is dropped.
    unsafe fn symbol<F: Copy>(&self, name: &CStr) -> Option<F> {
        assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
        // SAFETY: a live handle and a NUL-terminated name; the caller vouches for `F`.
        let ptr = unsafe { libc::dlsym(self.0, name.as_ptr()) };
        (!ptr.is_null()).then(|| unsafe { std::mem::transmute_copy::<*mut c_void, F>(&ptr) })
    }
}

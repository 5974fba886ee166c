//! The CUDA run-time probe's findings and messages, on a machine without a GPU: libraries that are
//! absent or are not what they are named for, header folders with some headers missing, and the
//! installation lookup cubecl-cuda uses.

use std::fs;
use std::path::{Path, PathBuf};

use googlenet::cuda_probe::{
    CudaMissing, DRIVER, GPU, HEADERS, Missing, NCCL, NVRTC, REQUIRED_HEADERS, check_driver,
    check_headers, check_nccl, check_nvrtc, cuda_root, library_names, nccl_library_names,
};
use googlenet::device::DeviceError;

const ABSENT: &str = "libgooglenet-test-absent.so";
/// A library every glibc system has, with neither the driver's nor NVRTC's symbols.
const NOT_CUDA: &str = "libm.so.6";

#[test]
fn library_names_are_cudarcs() {
    let names = library_names("nvrtc");
    for name in [
        "libnvrtc.so",
        "libnvrtc.so.13",
        "libnvrtc.so.12",
        "libnvrtc.so.1",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    assert_eq!(library_names("cuda")[0], "libcuda.so");
}

#[test]
fn an_absent_driver_is_named_with_the_fix() {
    let err =
        check_driver(0, &[ABSENT.to_string(), "libgooglenet-absent.so.1".into()]).unwrap_err();
    assert_eq!(err.what, DRIVER);
    assert!(
        err.detail.starts_with(&format!(
            "none of {ABSENT}, libgooglenet-absent.so.1 could be loaded ({ABSENT}"
        )),
        "{}",
        err.detail
    );
    assert!(err.fix.contains("install the NVIDIA driver"), "{}", err.fix);
    assert!(err.fix.contains("--gpus all"), "{}", err.fix);
}

#[test]
fn a_library_without_cu_init_is_not_the_driver() {
    let err = check_driver(0, &[ABSENT.to_string(), NOT_CUDA.into()]).unwrap_err();
    assert_eq!(err.what, DRIVER);
    assert_eq!(
        err.detail,
        "libm.so.6 has no `cuInit`: it is not the NVIDIA driver library"
    );
}

#[test]
fn an_absent_nvrtc_is_named_with_the_wheel_that_has_it() {
    let err = check_nvrtc(&[ABSENT.to_string()]).unwrap_err();
    assert_eq!(err.what, NVRTC);
    assert!(
        err.detail
            .starts_with(&format!("none of {ABSENT} could be loaded"))
    );
    assert!(
        err.fix.contains("pip install nvidia-cuda-nvrtc"),
        "{}",
        err.fix
    );
    assert!(err.fix.contains("LD_LIBRARY_PATH"), "{}", err.fix);
    let err = check_nvrtc(&[NOT_CUDA.to_string()]).unwrap_err();
    assert_eq!(
        err.detail,
        "libm.so.6 has no `nvrtcVersion`: it is not NVRTC"
    );
}

/// `--allreduce nccl` looks for NCCL under cudarc's names before cudarc does (cudarc panics on
/// a missing library), and says how to provide it: cudarc does not try NCCL's soname.
#[test]
fn an_absent_nccl_is_named_with_the_link_cudarc_needs() {
    let names = nccl_library_names();
    assert_eq!(names[0], "libnccl.so");
    assert!(!names.iter().any(|n| n == "libnccl.so.2"), "{names:?}");
    let err = check_nccl(&[ABSENT.to_string()]).unwrap_err();
    assert_eq!(err.what, NCCL);
    assert!(
        err.detail
            .starts_with(&format!("none of {ABSENT} could be loaded")),
        "{}",
        err.detail
    );
    for text in [
        "pip install nvidia-nccl-cu13",
        "libnccl.so -> libnccl.so.2",
        "LD_LIBRARY_PATH",
    ] {
        assert!(err.fix.contains(text), "{text} in {}", err.fix);
    }
    let err = check_nccl(&[NOT_CUDA.to_string()]).unwrap_err();
    assert_eq!(
        err.detail,
        "libm.so.6 has no `ncclGetVersion`: it is not NCCL"
    );
}

/// A CUDA_PATH-like folder holding `headers` under include/.
fn cuda_tree(name: &str, headers: &[&str]) -> PathBuf {
    let root = std::env::temp_dir().join(format!(
        "googlenet-cuda-probe-{name}-{}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&root);
    for header in headers {
        let path = root.join("include").join(header);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "// header\n").unwrap();
    }
    fs::create_dir_all(root.join("include")).unwrap();
    root
}

#[test]
fn missing_headers_are_listed_with_the_folder_searched() {
    let root = cuda_tree("partial", &["cuda_fp16.h"]);
    let err = check_headers(Some(&root)).unwrap_err();
    assert_eq!(err.what, HEADERS);
    assert_eq!(
        err.detail,
        format!(
            "cuda_bf16.h, mma.h, cuda/barrier not found in {}",
            root.join("include").display()
        )
    );
    assert!(
        err.fix.contains("CUDA_PATH=<site-packages>/nvidia/cu13"),
        "{}",
        err.fix
    );
    assert!(err.fix.contains("nvidia-cuda-cccl"), "{}", err.fix);
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn headers_are_found_in_include_and_cccl_in_include_cccl() {
    // CUDA 13's layout (and the nvidia-cuda-* wheels'): libcu++ under include/cccl.
    let root = cuda_tree(
        "cuda13",
        &["cuda_fp16.h", "cuda_bf16.h", "mma.h", "cccl/cuda/barrier"],
    );
    assert_eq!(check_headers(Some(&root)), Ok(()));
    fs::remove_dir_all(root).unwrap();
    // CUDA 12's: everything under include.
    let root = cuda_tree("cuda12", &REQUIRED_HEADERS);
    assert_eq!(check_headers(Some(&root)), Ok(()));
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn no_installation_at_all_says_cuda_path_is_unset() {
    let err = check_headers(None).unwrap_err();
    assert_eq!(
        err.detail,
        "CUDA_PATH is not set and none of /usr/local/cuda, /opt/cuda, /usr/bin/nvcc exists"
    );
}

#[test]
fn cuda_root_follows_cubecl_cuda() {
    let nothing = |_: &Path| false;
    // CUDA_PATH wins, even when it does not exist (cubecl-cuda then reads headers from it).
    assert_eq!(
        cuda_root(Some("/nowhere/cuda".into()), |_| true),
        Some(PathBuf::from("/nowhere/cuda"))
    );
    assert_eq!(cuda_root(None, nothing), None);
    assert_eq!(
        cuda_root(None, |_| true),
        Some(PathBuf::from("/usr/local/cuda"))
    );
    assert_eq!(
        cuda_root(None, |p| p == Path::new("/opt/cuda")),
        Some(PathBuf::from("/opt/cuda"))
    );
    assert_eq!(
        cuda_root(None, |p| p == Path::new("/usr/bin/nvcc")),
        Some(PathBuf::from("/usr"))
    );
}

#[test]
fn the_device_error_lists_every_missing_piece() {
    let missing = CudaMissing(vec![
        Missing {
            what: DRIVER,
            detail: "none of libcuda.so could be loaded (no such file)".into(),
            fix: "install the driver".into(),
        },
        Missing {
            what: GPU,
            detail: "cuda:2 asked for, but the driver sees 1 GPU(s)".into(),
            fix: "name another".into(),
        },
    ]);
    let err = DeviceError::CudaMissing {
        spec: "cuda:2".into(),
        missing,
    };
    assert_eq!(
        err.to_string(),
        "device `cuda:2` cannot run on this machine:\n  - NVIDIA driver (libcuda): none of \
         libcuda.so could be loaded (no such file).\n    Fix: install the driver.\n  - CUDA GPU: \
         cuda:2 asked for, but the driver sees 1 GPU(s).\n    Fix: name another.\n  See \
         docs/gpu.md for what a GPU machine needs."
    );
}

//! Device names as `--device` and `--devices` take them, and the errors a build without a
//! backend gives.

use googlenet::device::{DeviceError, DeviceSpec, parse_available, parse_device_list};

#[test]
fn names_parse_in_every_build() {
    let cases = [
        ("cpu", DeviceSpec::Cpu),
        (" CPU ", DeviceSpec::Cpu),
        ("cuda", DeviceSpec::Cuda(0)),
        ("cuda:0", DeviceSpec::Cuda(0)),
        ("cuda:3", DeviceSpec::Cuda(3)),
        ("wgpu", DeviceSpec::Wgpu(None)),
        ("wgpu:1", DeviceSpec::Wgpu(Some(1))),
    ];
    for (text, want) in cases {
        assert_eq!(text.parse::<DeviceSpec>(), Ok(want), "{text:?}");
    }
    for spec in [
        DeviceSpec::Cpu,
        DeviceSpec::Cuda(2),
        DeviceSpec::Wgpu(None),
        DeviceSpec::Wgpu(Some(0)),
    ] {
        assert_eq!(
            spec.to_string().parse::<DeviceSpec>(),
            Ok(spec),
            "round trip of {spec}"
        );
    }
}

#[test]
fn misspelt_names_say_what_is_expected() {
    for text in ["gpu", "cpu:0", "cuda0", "tpu:1", ""] {
        let err = text.parse::<DeviceSpec>().unwrap_err();
        assert!(matches!(err, DeviceError::Unknown(_)), "{text:?}: {err:?}");
        assert!(
            err.to_string().contains("expected cpu, cuda:N or wgpu[:N]"),
            "{err}"
        );
    }
    let err = "cuda:x".parse::<DeviceSpec>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "device `cuda:x`: `x` is not a device index (0, 1, ...)"
    );
    assert!(matches!(
        "cuda:-1".parse::<DeviceSpec>(),
        Err(DeviceError::BadIndex { .. })
    ));
}

#[test]
fn cpu_is_always_available() {
    assert_eq!(parse_available("cpu"), Ok(DeviceSpec::Cpu));
    let device = DeviceSpec::Cpu.to_device().unwrap();
    assert_eq!(device, burn::prelude::Device::flex());
    assert!(!device.is_autodiff());
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_says_how_to_rebuild() {
    let err = parse_available("cuda:1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "device `cuda:1`: this binary was built without the cuda feature; rebuild with \
         `cargo build --release --features cuda`"
    );
    assert!(!DeviceSpec::Cuda(0).is_built());
    assert!(DeviceSpec::Cuda(0).to_device().is_err());
}

/// With the feature, `cuda:0` is burn's CUDA device where the probe finds what it needs, and the
/// probe's findings otherwise.
#[cfg(feature = "cuda")]
#[test]
fn cuda_with_the_feature_is_a_cuda_device_or_says_what_is_missing() {
    match googlenet::cuda_probe::check(0) {
        Ok(()) => {
            let device = parse_available("cuda:0").unwrap().to_device().unwrap();
            assert_eq!(device, burn::prelude::Device::cuda(0));
        }
        Err(missing) => assert_eq!(
            parse_available("cuda:0"),
            Err(DeviceError::CudaMissing {
                spec: "cuda:0".into(),
                missing
            })
        ),
    }
}

#[cfg(not(feature = "wgpu"))]
#[test]
fn wgpu_without_the_feature_says_how_to_rebuild() {
    let err = parse_available("wgpu").unwrap_err();
    assert_eq!(
        err.to_string(),
        "device `wgpu`: this binary was built without the wgpu feature; rebuild with \
         `cargo build --release --features wgpu`"
    );
}

#[test]
fn device_lists() {
    assert_eq!(parse_device_list("cpu"), Ok(vec![DeviceSpec::Cpu]));
    assert_eq!(parse_device_list(" cpu , "), Ok(vec![DeviceSpec::Cpu]));
    assert_eq!(parse_device_list(""), Err(DeviceError::EmptyList));
    assert_eq!(parse_device_list(" , "), Err(DeviceError::EmptyList));
    // CPU replicas share the cores: allowed, so data parallelism is testable without a GPU.
    assert_eq!(
        parse_device_list("cpu,cpu"),
        Ok(vec![DeviceSpec::Cpu, DeviceSpec::Cpu])
    );
    let err = parse_device_list("cpu,gpu").unwrap_err();
    assert_eq!(err, DeviceError::Unknown("gpu".into()));
    // Spelling, then one backend, then no duplicate, then whether the backend is built.
    assert_eq!(
        parse_device_list("cpu,cuda:0"),
        Err(DeviceError::MixedBackends {
            first: "cpu".into(),
            other: "cuda:0".into()
        })
    );
    assert_eq!(
        parse_device_list("cuda:0,cuda:0"),
        Err(DeviceError::Duplicate("cuda:0".into()))
    );
    #[cfg(feature = "cuda")]
    if googlenet::cuda_probe::check(1).is_ok() {
        assert_eq!(
            parse_device_list("cuda:0,cuda:1"),
            Ok(vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)])
        );
    } else {
        assert!(matches!(
            parse_device_list("cuda:0,cuda:1"),
            Err(DeviceError::CudaMissing { .. })
        ));
    }
    #[cfg(not(feature = "cuda"))]
    assert!(matches!(
        parse_device_list("cuda:0,cuda:1"),
        Err(DeviceError::NotBuilt {
            feature: "cuda",
            ..
        })
    ));
}

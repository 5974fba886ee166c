//! int8 inference on the fast engine, calibrated on real images (../shared's hymenoptera): its
//! logits differ from f32's as ONNX Runtime's own int8 quantization of our export does, and its
//! two kernels give the same numbers.

use crate::common::*;

use burn::prelude::*;
use googlenet::data::image::PixelBudget;
use googlenet::engine::{InferenceNet, Int8Kernel};
use googlenet::eval::calibration::calibrate_on_folder;

/// ONNX Runtime 1.32's `quantize_static` (QDQ, u8 activations, i8 weights per channel, MinMax
/// calibration) of our ONNX export of the calibrated torchvision state, calibrated on the same
/// 32 hymenoptera training images (each 8th of the sorted 245, resized to 256 and center-cropped
/// by PIL): its logits on the 4 reference images against f32's, max abs and relative L2.
const ONNX_RUNTIME_INT8: (f32, f32) = (0.1003, 0.1795);

/// The calibrated torchvision state with its f32 network calibrated on 32 of hymenoptera's
/// training images (none of them among the reference images).
fn calibrated_net() -> (InferenceNet, Vec<f32>) {
    let model = torchvision_reference(&Device::flex());
    let net = InferenceNet::from_model(&model).unwrap();
    let dir = shared("data/hymenoptera/train");
    let calibration = calibrate_on_folder(&net, &dir, 224, 32, PixelBudget::default()).unwrap();
    assert_eq!((calibration.images, calibration.skipped.len()), (32, 0));
    let io = reference("reference/torchvision/calibrated_eval_io.safetensors");
    (net, values(&io, "input_nchw_imagenet"))
}

#[test]
fn int8_logits_differ_from_f32_like_onnx_runtimes_int8() {
    let (net, input) = calibrated_net();
    let want = net.forward(&input, [4, 3, 224, 224]).unwrap();
    let net = net.into_int8(Int8Kernel::detect()).unwrap();
    assert_eq!(net.int8_kernel(), Some(Int8Kernel::detect()));
    let got = net.forward(&input, [4, 3, 224, 224]).unwrap();
    let (diff, l2) = (max_abs_diff(&got, &want), relative_l2(&got, &want));
    eprintln!("int8 logits against f32: max abs {diff:.4}, relative L2 {l2:.4}");
    let (ort_max, ort_l2) = ONNX_RUNTIME_INT8;
    assert!(
        diff < 1.25 * ort_max,
        "max abs {diff}, ONNX Runtime's {ort_max}"
    );
    assert!(
        l2 < 1.25 * ort_l2,
        "relative L2 {l2}, ONNX Runtime's {ort_l2}"
    );
    // Quantization does change the numbers: about as much as ONNX Runtime's does.
    assert!(
        l2 > 0.5 * ort_l2,
        "relative L2 {l2}, ONNX Runtime's {ort_l2}"
    );
}

/// The VNNI kernel and the portable one sum the same integers and scale them alike: the same
/// logits to the bit.
#[test]
fn int8_kernels_agree_to_the_bit() {
    if Int8Kernel::detect() == Int8Kernel::Portable {
        eprintln!("this CPU has no AVX512-VNNI: only the portable int8 kernel runs here");
        return;
    }
    let (net, input) = calibrated_net();
    let (portable, _) = calibrated_net();
    let (one, shape) = (&input[..3 * 224 * 224], [1, 3, 224, 224]);
    let want = portable
        .into_int8(Int8Kernel::Portable)
        .unwrap()
        .forward(one, shape)
        .unwrap();
    let got = net
        .into_int8(Int8Kernel::Avx512Vnni)
        .unwrap()
        .forward(one, shape)
        .unwrap();
    assert_eq!(got, want);
}

#[test]
fn int8_needs_an_f32_network_calibrated_first() {
    let model = torchvision_reference(&Device::flex());
    let uncalibrated = InferenceNet::from_model(&model).unwrap();
    let err = uncalibrated.into_int8(Int8Kernel::detect()).err().unwrap();
    assert_eq!(
        err.to_string(),
        "the fast inference path does not support int8 before calibration (no image has passed \
         through the network)"
    );
    let bf16 = InferenceNet::from_model(&model)
        .unwrap()
        .in_bf16(googlenet::engine::Bf16Kernel::Portable)
        .unwrap();
    let err = bf16
        .calibrate(&[0.0; 3 * 64 * 64], [1, 3, 64, 64])
        .err()
        .unwrap();
    assert!(err.to_string().contains("calibrate in f32"), "{err}");
    let missing = std::path::Path::new("/no/such/calibration/folder");
    let f32_net = InferenceNet::from_model(&model).unwrap();
    let err = calibrate_on_folder(&f32_net, missing, 224, 8, PixelBudget::default()).unwrap_err();
    assert!(
        format!("{err:#}").contains("/no/such/calibration/folder"),
        "{err:#}"
    );
}

/// Calibration folders without a usable image are refused naming the folder; an unreadable image
/// among readable ones is skipped and counted.
#[test]
fn calibration_folders_without_usable_images_are_refused_and_bad_images_counted() {
    let model = torchvision_reference(&Device::flex());
    let net = InferenceNet::from_model(&model).unwrap();
    let calibrate = |dir: &std::path::Path, limit| {
        calibrate_on_folder(&net, dir, 64, limit, PixelBudget::default())
    };
    let dir = fresh_dir("int8-calibration");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    let err = calibrate(&dir, 8).unwrap_err();
    let want = format!("{}: no image files to calibrate int8 on", dir.display());
    assert_eq!(err.to_string(), want);
    std::fs::write(dir.join("broken.jpg"), b"\xff\xd8\xff\xe0 truncated").unwrap();
    let err = calibrate(&dir, 8).unwrap_err();
    let want = format!(
        "{}: none of the 1 images chosen for calibration could be read",
        dir.display()
    );
    assert!(err.to_string().starts_with(&want), "{err}");
    assert!(err.to_string().contains("broken.jpg"), "{err}");
    let err = calibrate(&dir, 0).unwrap_err();
    assert_eq!(err.to_string(), "calibration needs at least one image");
    std::fs::copy(
        shared("reference/inputs/2_hymenoptera_val_ant.png"),
        dir.join("ant.png"),
    )
    .unwrap();
    let calibration = calibrate(&dir, 8).unwrap();
    assert_eq!(calibration.images, 1);
    assert_eq!(calibration.skipped.len(), 1);
    assert!(
        calibration.skipped[0].contains("broken.jpg"),
        "{:?}",
        calibration.skipped
    );
    assert!(net.into_int8(Int8Kernel::detect()).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

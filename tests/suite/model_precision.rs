//! bf16 and f16: BatchNorm stays f32, the converted network's logits and `autocast`'s gradients
//! (f32, on the f32 weights) differ from f32's about as much as PyTorch autocast's do, on the
//! torchvision reference (flex computes in both precisions).

use crate::common;

use burn::module::ParamId;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use common::*;
use googlenet::engine::{Bf16Kernel, DropoutSeed, InferenceNet, TrainNet, TrainNetError};
use googlenet::model::precision::{self, Precision};
use googlenet::model::{GoogLeNet, GoogLeNetConfig, Variant};

#[test]
fn flex_computes_in_bf16_and_f16() {
    let device = Device::flex();
    for p in [Precision::F32, Precision::Bf16, Precision::F16] {
        assert_eq!(p.check(&device), Ok(()), "{p}");
    }
}

#[test]
fn apply_casts_everything_but_batch_norm() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new(Variant::Torchvision)
        .with_num_classes(3)
        .with_input_size(64)
        .init(&device)
        .unwrap();
    let model = precision::apply(model, Precision::Bf16).unwrap();
    assert_eq!(model.conv1.conv.weight.val().dtype(), DType::BF16);
    assert_eq!(model.fc.weight.val().dtype(), DType::BF16);
    let aux = model.aux1.as_ref().unwrap();
    assert_eq!(aux.fc2.bias.as_ref().unwrap().val().dtype(), DType::BF16);
    let bn = model.inception4e.branch2[1].bn.as_ref().unwrap();
    assert_eq!(bn.weight.val().dtype(), DType::F32);
    assert_eq!(bn.bias.val().dtype(), DType::F32);
    let (mean, var) = bn.running_stats();
    assert_eq!((mean.dtype(), var.dtype()), (DType::F32, DType::F32));
    let x = precision::cast_input(Tensor::<4>::ones([2, 3, 64, 64], &device), Precision::Bf16);
    assert_eq!(model.forward(x).dtype(), DType::BF16);
}

/// PyTorch 2.15's own errors with CPU autocast on the same weights and inputs
/// (tests/fixtures/make_reduced_precision_errors.py): (precision, logits max abs, logits relative
/// L2, gradient relative L2 of fc.weight, aux1.fc2.weight, inception4e.branch1.conv.weight,
/// conv1.conv.weight). The deep gradients are ill-conditioned through 4-image BatchNorm, hence
/// their large errors in both frameworks.
const PYTORCH_ERRORS: [(Precision, f32, f32, [f32; 4]); 2] = [
    (
        Precision::Bf16,
        0.03655,
        0.06975,
        [0.05229, 0.02333, 0.5747, 0.6769],
    ),
    (
        Precision::F16,
        0.005451,
        0.009924,
        [0.007226, 0.002905, 0.2129, 0.3447],
    ),
];

/// The gradients whose errors [`PYTORCH_ERRORS`] quotes, in its order: name, parameter, rank.
fn quoted_gradients(model: &GoogLeNet) -> [(&'static str, ParamId, usize); 4] {
    [
        ("fc.weight", model.fc.weight.id, 2),
        (
            "aux1.fc2.weight",
            model.aux1.as_ref().unwrap().fc2.weight.id,
            2,
        ),
        (
            "inception4e.branch1.conv.weight",
            model.inception4e.branch1.conv.weight.id,
            4,
        ),
        ("conv1.conv.weight", model.conv1.conv.weight.id, 4),
    ]
}

/// The gradient of the parameter `id` of rank `rank` (2 or 4) in `grads`, as a matrix.
fn gradient_2d(grads: &GradientsParams, id: ParamId, rank: usize) -> Tensor<2> {
    if rank == 2 {
        grads.get::<2>(id).unwrap()
    } else {
        grads.get::<4>(id).unwrap().flatten(1, 3)
    }
}

/// Ours is within 1.5x PyTorch's error, and at least a quarter of it (so that the reduced
/// precision really was used).
fn assert_like_pytorch(what: &str, ours: f32, pytorch: f32) {
    eprintln!("{what}: {ours:.4e} (PyTorch {pytorch:.4e})");
    assert!(
        ours <= 1.5 * pytorch && ours >= 0.25 * pytorch,
        "{what}: {ours:e}, PyTorch's is {pytorch:e}"
    );
}

/// The calibrated torchvision state on the 4 reference images: bf16 and f16 logits against f32,
/// with errors like PyTorch's, and the same top-1 wherever f32's top two are further apart than
/// twice the error (PyTorch's bf16 changes image 1's top-1 too: its margin is 0.017).
#[test]
fn reduced_precision_logits_agree_with_f32() {
    let device = Device::flex();
    let io = reference("reference/torchvision/calibrated_eval_io.safetensors");
    let input = tensor4(&io, "input_nchw_imagenet", &device);
    let model = torchvision_reference(&device);
    let want = to_vec(model.forward(input.clone()));
    for (p, pytorch_max, pytorch_l2, _) in PYTORCH_ERRORS {
        let reduced = precision::apply(model.clone(), p).unwrap();
        let logits = reduced.forward(precision::cast_input(input.clone(), p));
        assert_eq!(logits.dtype(), DType::from(p.dtype()));
        let got = to_vec(logits.cast(FloatDType::F32));
        let diff = max_abs_diff(&got, &want);
        assert_like_pytorch(&format!("{p} logits max abs"), diff, pytorch_max);
        assert_like_pytorch(
            &format!("{p} logits relative L2"),
            relative_l2(&got, &want),
            pytorch_l2,
        );
        assert_clear_top1_kept(&got, &want, diff, &p.to_string());
    }
}

/// Every image whose top two f32 logits lie further apart than twice the error `diff` keeps its
/// top-1 in `got`, and there is at least one such image.
fn assert_clear_top1_kept(got: &[f32], want: &[f32], diff: f32, what: &str) {
    let mut compared = 0;
    for (row_got, row_want) in got.chunks(1000).zip(want.chunks(1000)) {
        let mut sorted = row_want.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted[0] - sorted[1] > 2.0 * diff {
            assert_eq!(argmax(row_got), argmax(row_want), "{what}: top-1 changed");
            compared += 1;
        }
    }
    assert!(compared >= 1, "{what}: no image had a clear top-1");
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
        .unwrap()
}

/// One training step through `autocast`: the gradients belong to the f32 weights (all 187
/// trainable tensors), are f32, and are as close to the f32 step's as PyTorch autocast's are.
#[test]
fn autocast_gradients_are_f32_and_like_pytorch_autocast() {
    let device = Device::flex().autodiff();
    let model = torchvision_reference(&device).without_dropout();
    let r = reference("reference/torchvision/calibrated_train_nodropout.safetensors");
    let input = tensor4(&r, "input_nchw_imagenet", &device);
    let labels: Vec<i64> = values(&r, "labels").iter().map(|&x| x as i64).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [4]), &device);
    let ce = CrossEntropyLossConfig::new().init(&device);

    let grads_of = |p: Precision| {
        let view = precision::autocast(&model, p);
        let out = view.forward_with_aux(precision::cast_input(input.clone(), p));
        let f32 = |t: Tensor<2>| t.cast(FloatDType::F32);
        let loss = ce.forward(f32(out.main), labels.clone())
            + (ce.forward(f32(out.aux1.unwrap()), labels.clone())
                + ce.forward(f32(out.aux2.unwrap()), labels.clone()))
            .mul_scalar(0.3);
        GradientsParams::from_grads(loss.backward(), &model)
    };
    let reference = grads_of(Precision::F32);
    // Every trainable tensor of torchvision's GoogLeNet with aux heads (187, ../shared info.json).
    assert_eq!(reference.len(), 187);
    for (p, _, _, pytorch) in PYTORCH_ERRORS {
        let reduced = grads_of(p);
        assert_eq!(reduced.len(), 187, "{p}");
        for ((name, id, rank), pytorch) in quoted_gradients(&model).into_iter().zip(pytorch) {
            let got = gradient_2d(&reduced, id, rank);
            assert_eq!(got.dtype(), DType::F32, "{p} {name}");
            let want = gradient_2d(&reference, id, rank);
            let err = relative_l2(&to_vec(got), &to_vec(want));
            assert_like_pytorch(
                &format!("{p} gradient of {name}, relative L2"),
                err,
                pytorch,
            );
        }
    }
}

/// The fast engine in bf16 (folded BatchNorm rounded once, bf16 products summed in f32) on the
/// same reference: its logits differ from f32's like PyTorch autocast's, on every kernel this CPU
/// has (the portable one always, AMX tiles where the CPU and OS allow them), and keep every clear
/// top-1.
#[test]
fn fast_engine_bf16_logits_agree_with_f32() {
    let device = Device::flex();
    let io = reference("reference/torchvision/calibrated_eval_io.safetensors");
    let input = tensor4(&io, "input_nchw_imagenet", &device);
    let shape = input.dims();
    let pixels = to_vec(input.clone());
    let model = torchvision_reference(&device);
    let want = to_vec(model.forward(input));
    let (_, pytorch_max, pytorch_l2, _) = PYTORCH_ERRORS[0];
    let mut kernels = vec![Bf16Kernel::Portable];
    if Bf16Kernel::Avx512Bf16.runs_here() {
        kernels.push(Bf16Kernel::Avx512Bf16);
    } else {
        eprintln!("this CPU has no AVX512-BF16: its dot-product kernel is not checked");
    }
    if Bf16Kernel::Amx.runs_here() {
        kernels.push(Bf16Kernel::Amx);
    } else {
        eprintln!("this CPU or OS has no AMX: its tiles are not checked");
        let refused = InferenceNet::from_model(&model)
            .unwrap()
            .in_bf16(Bf16Kernel::Amx);
        assert_eq!(
            refused.err().unwrap().to_string(),
            "the fast inference path does not support the amx bf16 kernel on this CPU or OS"
        );
    }
    let (mut portable, mut portable_diff) = (Vec::new(), 0.0);
    for kernel in kernels {
        let net = InferenceNet::from_model(&model)
            .unwrap()
            .in_bf16(kernel)
            .unwrap();
        assert_eq!(net.precision(), (Precision::Bf16, Some(kernel)));
        let got = net.forward(&pixels, shape).unwrap();
        let diff = max_abs_diff(&got, &want);
        if kernel == Bf16Kernel::Portable {
            (portable, portable_diff) = (got.clone(), diff);
        } else if kernel == Bf16Kernel::Amx {
            // AMX multiplies the 3x3 convolutions directly, the other kernels on Winograd's
            // transformed operands, rounded elsewhere: compared with f32 only.
        } else {
            // The same bf16 products summed in another order: the sums differ in their last f32
            // bits, which now and then round the next layer's input to the neighbouring bf16, so
            // the kernels drift apart by a fraction of bf16's own error.
            let apart = max_abs_diff(&got, &portable);
            eprintln!("{kernel:?} vs portable, logits max abs: {apart:.3e}");
            assert!(
                apart < 0.3 * portable_diff,
                "{kernel:?} is {apart} from the portable kernel"
            );
        }
        assert_like_pytorch(
            &format!("fast {kernel:?} logits max abs"),
            diff,
            pytorch_max,
        );
        let l2 = relative_l2(&got, &want);
        assert_like_pytorch(
            &format!("fast {kernel:?} logits relative L2"),
            l2,
            pytorch_l2,
        );
        assert_clear_top1_kept(&got, &want, diff, &format!("{kernel:?}"));
    }
    let f16 = InferenceNet::with_precision(&model, Precision::F16)
        .err()
        .unwrap();
    assert_eq!(
        f16.to_string(),
        "the fast inference path does not support f16 (it computes in f32 or bf16)"
    );
}

/// The fast training path in bf16 (convolution products rounded to bf16 and summed in f32) on
/// the same reference, on each kernel that runs here (the f32 kernels on rounded operands
/// everywhere, and AMX tiles or AVX512-BF16's dot products where the CPU has them): its losses
/// agree with f32's, and its gradients differ from the f32 step's about as much as PyTorch
/// autocast's do from PyTorch's f32 step. A kernel the CPU lacks is refused plainly.
#[test]
fn fast_training_step_in_bf16_is_like_pytorch_autocast() {
    let device = Device::flex().autodiff();
    let model = torchvision_reference(&device).without_dropout();
    let r = reference("reference/torchvision/calibrated_train_nodropout.safetensors");
    let input = values(&r, "input_nchw_imagenet");
    let labels: Vec<usize> = values(&r, "labels").iter().map(|&x| x as usize).collect();
    let mut checked = 0;
    for kernel in [
        Bf16Kernel::Portable,
        Bf16Kernel::Avx512Bf16,
        Bf16Kernel::Amx,
    ] {
        let net = TrainNet::from_model(&model).unwrap();
        if !kernel.runs_here() {
            eprintln!("this CPU does not run {}: refused", kernel.name());
            assert!(matches!(
                net.with_bf16_products_on(kernel),
                Err(TrainNetError::Unsupported(_))
            ));
            continue;
        }
        // On AMX machines AVX512-BF16's kernel defers to AMX inside: one run covers both.
        if kernel == Bf16Kernel::Avx512Bf16 && Bf16Kernel::Amx.runs_here() {
            continue;
        }
        eprintln!("bf16 step on {}", kernel.name());
        check_bf16_step(
            &model,
            &input,
            &labels,
            net.with_bf16_products_on(kernel).unwrap(),
        );
        checked += 1;
    }
    assert!(checked >= 1, "the portable kernel runs everywhere");
}

fn check_bf16_step(model: &GoogLeNet, input: &[f32], labels: &[usize], bf16_net: TrainNet) {
    let step = |mut net: TrainNet| {
        let losses = net
            .forward_backward(input, [4, 3, 224, 224], labels, 0.3, DropoutSeed::new(0))
            .unwrap();
        (losses, net.gradients(model))
    };
    let (f32_losses, f32_grads) = step(TrainNet::from_model(model).unwrap());
    assert!(bf16_net.bf16_products());
    let (bf16_losses, bf16_grads) = step(bf16_net);
    let loss_err = (bf16_losses.total - f32_losses.total).abs() / f32_losses.total;
    eprintln!(
        "total loss: bf16 {} f32 {} (relative {loss_err:.3e})",
        bf16_losses.total, f32_losses.total
    );
    assert!(loss_err < 0.02, "bf16 loss is {loss_err:e} from f32's");
    let (_, _, pytorch_l2, pytorch) = PYTORCH_ERRORS[0];
    let logits_err = relative_l2(
        bf16_losses.logits[0].as_ref().unwrap(),
        f32_losses.logits[0].as_ref().unwrap(),
    );
    assert_like_pytorch(
        "fast bf16 step, main logits relative L2",
        logits_err,
        pytorch_l2,
    );
    for ((name, id, rank), pytorch) in quoted_gradients(model).into_iter().zip(pytorch) {
        let got = to_vec(gradient_2d(&bf16_grads, id, rank));
        let want = to_vec(gradient_2d(&f32_grads, id, rank));
        let err = relative_l2(&got, &want);
        assert_like_pytorch(
            &format!("fast bf16 step, gradient of {name}, relative L2"),
            err,
            pytorch,
        );
    }
}

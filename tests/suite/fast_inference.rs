//! The fast inference path gives `GoogLeNet::forward`'s logits, and PyTorch's and Keras' on their
//! reference weights (../shared/reference).

use crate::common;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use common::*;
use googlenet::engine::{InferenceError, InferenceNet, InputError};
use googlenet::model::batch_norm::BatchNorm;
use googlenet::model::conv_unit::ConvUnit;
use googlenet::model::{GoogLeNet, GoogLeNetConfig, Variant};
use googlenet::weights;

fn random(shape: [usize; 4], seed: u64) -> Vec<f32> {
    // A small xorshift keeps the inputs reproducible without a device.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..shape.iter().product::<usize>())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn batch_norms(model: &mut GoogLeNet) -> Vec<&mut BatchNorm> {
    let mut units: Vec<&mut ConvUnit> = vec![&mut model.conv1, &mut model.conv2, &mut model.conv3];
    for module in [
        &mut model.inception3a,
        &mut model.inception3b,
        &mut model.inception4a,
        &mut model.inception4b,
        &mut model.inception4c,
        &mut model.inception4d,
        &mut model.inception4e,
        &mut model.inception5a,
        &mut model.inception5b,
    ] {
        units.push(&mut module.branch1);
        units.extend(module.branch2.iter_mut());
        units.extend(module.branch3.iter_mut());
        units.push(&mut module.branch4);
    }
    for head in [&mut model.aux1, &mut model.aux2].into_iter().flatten() {
        units.push(&mut head.conv);
    }
    let mut norms: Vec<&mut BatchNorm> = units.into_iter().filter_map(|u| u.bn.as_mut()).collect();
    norms.extend(model.bn1.as_mut());
    norms.extend(model.bn2.as_mut());
    norms
}

/// A model whose BatchNorm layers have non-trivial affine parameters and running statistics taken
/// from one training-mode batch (so activations keep a sensible scale through all 57 layers).
fn calibrated_model(variant: Variant, side: usize, classes: usize) -> GoogLeNet {
    let device = Device::flex().autodiff();
    let mut model = GoogLeNetConfig::new(variant)
        .with_num_classes(classes)
        .with_input_size(side)
        .init(&device)
        .unwrap();
    for bn in batch_norms(&mut model) {
        let c = bn.channels();
        bn.weight = Param::from_tensor(Tensor::random(
            [c],
            Distribution::Uniform(0.5, 1.5),
            &device,
        ));
        bn.bias = Param::from_tensor(Tensor::random(
            [c],
            Distribution::Uniform(-0.2, 0.2),
            &device,
        ));
        bn.momentum = 1.0;
    }
    let shape = [4, 3, side, side];
    let x = Tensor::<4>::from_data(TensorData::new(random(shape, 99), shape), &device);
    let _ = model.forward_with_aux(x);
    model.valid()
}

fn burn_logits(model: &GoogLeNet, input: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let x = Tensor::<4>::from_data(TensorData::new(input.to_vec(), shape), &Device::flex());
    model.forward(x).into_data().try_to_vec::<f32>().unwrap()
}

fn assert_same_logits(variant: Variant, side: usize, batch: usize, transform_input: bool) {
    let mut model = calibrated_model(variant, side, 10);
    model.transform_input = transform_input;
    let net = InferenceNet::from_model(&model).unwrap();
    let shape = [batch, 3, side, side];
    let input = random(shape, 7);
    let want = burn_logits(&model, &input, shape);
    let got = net.forward(&input, shape).unwrap();
    assert_eq!(got.len(), batch * 10);
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(&want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        scale > 1e-2,
        "{variant}: logits too small to compare ({scale})"
    );
    assert!(
        diff < 1e-4,
        "{variant} at {side}: max |fast - burn| = {diff} (logits up to {scale})"
    );
    // A second call reuses the buffers and must give the same answer.
    assert_eq!(net.forward(&input, shape).unwrap(), got);
}

#[test]
fn torchvision_variant_matches_burn_with_batch_norm_folded() {
    assert_same_logits(Variant::Torchvision, 224, 2, false);
}

#[test]
fn torchvision_input_transform_is_applied() {
    assert_same_logits(Variant::Torchvision, 97, 1, true);
}

#[test]
fn paper_variant_matches_burn_with_local_response_norm() {
    assert_same_logits(Variant::Paper, 224, 2, false);
}

#[test]
fn keras_seed_variant_matches_burn_with_same_padding() {
    assert_same_logits(Variant::KerasSeed, 224, 2, false);
}

#[test]
fn bad_inputs_are_refused_with_a_reason() {
    let model = GoogLeNetConfig::new(Variant::Torchvision)
        .with_num_classes(3)
        .init(&Device::flex())
        .unwrap();
    let net = InferenceNet::from_model(&model).unwrap();
    assert_eq!(net.num_classes(), 3);
    assert_eq!(
        net.forward(&[0.0; 10], [1, 3, 2, 2]).unwrap_err(),
        InferenceError::Input(InputError::Length {
            got: 10,
            want: 12,
            shape: [1, 3, 2, 2]
        })
    );
    assert_eq!(
        net.forward(&[0.0; 4], [1, 1, 2, 2]).unwrap_err(),
        InferenceError::Input(InputError::Channels(1))
    );
    assert_eq!(
        net.forward(&[0.0; 3 * 16 * 16], [1, 3, 16, 16])
            .unwrap_err(),
        InferenceError::InputTooSmall {
            height: 16,
            width: 16
        }
    );
}

#[test]
fn torchvision_reference_weights_give_pytorchs_eval_logits() {
    let model = GoogLeNetConfig::new(Variant::Torchvision)
        .init(&Device::flex())
        .unwrap();
    let path = shared("reference/torchvision/torchvision_seed1234_calibrated.pth");
    let model = weights::load(model, &path).expect("reference weights load");
    let io = reference("reference/torchvision/calibrated_eval_io.safetensors");
    let input = values(&io, "input_nchw_imagenet");
    let net = InferenceNet::from_model(&model).unwrap();
    let got = net.forward(&input, [4, 3, 224, 224]).unwrap();
    let want = values(&io, "eval_logits");
    assert_close("eval logits", &got, &want, 1e-4);
    assert!(want.iter().fold(0.0f32, |m, x| m.max(x.abs())) > 0.4);
    // One image at a time: batch 1 has a classifier of its own (`engine/matvec.rs`).
    let classes = want.len() / 4;
    for (image, (input, want)) in input
        .chunks_exact(3 * 224 * 224)
        .zip(want.chunks_exact(classes))
        .enumerate()
    {
        let got = net.forward(input, [1, 3, 224, 224]).unwrap();
        assert_close(&format!("image {image} alone"), &got, want, 1e-4);
    }
}

#[test]
fn keras_seed_reference_weights_give_keras_main_logits() {
    let model = GoogLeNetConfig::new(Variant::KerasSeed)
        .init(&Device::flex())
        .unwrap();
    let path = shared("reference/keras_seed/weights.safetensors");
    let model = weights::load(model, &path).expect("Keras weights load");
    let inputs = reference("reference/inputs/inputs.safetensors");
    let nhwc = values(&inputs, "keras_input_nhwc_0to1");
    let mut nchw = vec![0.0; nhwc.len()];
    let (hw, c) = (224 * 224, 3);
    for image in 0..4 {
        for p in 0..hw {
            for ch in 0..c {
                nchw[(image * c + ch) * hw + p] = nhwc[(image * hw + p) * c + ch];
            }
        }
    }
    let got = InferenceNet::from_model(&model)
        .unwrap()
        .forward(&nchw, [4, 3, 224, 224])
        .unwrap();
    let want = values(
        &reference("reference/keras_seed/outputs_inference.safetensors"),
        "main_logits",
    );
    // Logits are small at initialisation (|x| < 0.04): compare them relative to their range.
    let rel = relative_diff(&got, &want);
    assert!(rel <= 1e-4, "main logits: relative diff {rel:e}");
}

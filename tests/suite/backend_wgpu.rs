//! The wgpu backend against the CPU (flex) on the torchvision reference: inference logits and one
//! training step. Only with `--features wgpu`, and it needs a Vulkan, Metal or DirectX 12 adapter;
//! a machine without a GPU can use Mesa's CPU Vulkan driver (Debian: mesa-vulkan-drivers, which
//! provides lavapipe). Without any adapter burn panics when it opens the device: a failure, not a skip.
#![cfg(feature = "wgpu")]

use crate::common;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::prelude::*;
use common::*;
use googlenet::device::DeviceSpec;
use googlenet::model::{GoogLeNet, GoogLeNetConfig, Variant};

fn wgpu() -> Device {
    "wgpu".parse::<DeviceSpec>().unwrap().to_device().unwrap()
}

#[test]
fn wgpu_logits_match_the_cpu() {
    let io = reference("reference/torchvision/calibrated_eval_io.safetensors");
    let cpu = Device::flex();
    let want =
        to_vec(torchvision_reference(&cpu).forward(tensor4(&io, "input_nchw_imagenet", &cpu)));
    let gpu = wgpu();
    let got =
        to_vec(torchvision_reference(&gpu).forward(tensor4(&io, "input_nchw_imagenet", &gpu)));
    assert_close("wgpu logits", &got, &want, 1e-4);
}

#[test]
fn wgpu_training_step_matches_the_cpu() {
    let r = reference("reference/torchvision/calibrated_train_nodropout.safetensors");
    let step = |device: Device| {
        let model = torchvision_reference(&device).without_dropout();
        let labels: Vec<i64> = values(&r, "labels").iter().map(|&x| x as i64).collect();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [4]), &device);
        let out = model.forward_with_aux(tensor4(&r, "input_nchw_imagenet", &device));
        let ce = CrossEntropyLossConfig::new().init(&device);
        let loss = ce.forward(out.main, labels.clone())
            + (ce.forward(out.aux1.unwrap(), labels.clone())
                + ce.forward(out.aux2.unwrap(), labels))
            .mul_scalar(0.3);
        let value = to_vec(loss.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let fc = to_vec(grads.get::<2>(model.fc.weight.id).unwrap());
        (value, fc, grads.len())
    };
    let (cpu_loss, cpu_fc, cpu_count) = step(Device::flex().autodiff());
    let (gpu_loss, gpu_fc, gpu_count) = step(wgpu().autodiff());
    assert_eq!(gpu_count, cpu_count);
    assert_close("loss", &gpu_loss, &cpu_loss, 1e-4);
    let err = relative_l2(&gpu_fc, &cpu_fc);
    assert!(err < 1e-3, "fc.weight gradient: relative L2 {err:e}");
}

/// Two data-parallel replicas on the wgpu adapter (the same one twice: the arithmetic is what is
/// checked) give the whole batch's loss and gradients.
#[test]
fn wgpu_data_parallel_replicas_sum_to_the_whole_batch() {
    use googlenet::train::data_parallel::DataParallel;
    let device = wgpu().autodiff();
    let model = GoogLeNetConfig::new(Variant::Paper)
        .with_num_classes(3)
        .with_input_size(80)
        .init(&device)
        .unwrap()
        .without_dropout();
    let loss_of = |model: &GoogLeNet, x: Tensor<4>, y: Tensor<1, Int>| {
        let ce = CrossEntropyLossConfig::new().init(&x.device());
        ce.forward(model.forward(x), y)
    };
    let pixels: Vec<f32> = (0..4 * 3 * 80 * 80)
        .map(|i| ((i % 97) as f32 / 97.0) - 0.5)
        .collect();
    let images = Tensor::<4>::from_data(TensorData::new(pixels, [4, 3, 80, 80]), &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 1], [4]), &device);

    let loss = loss_of(&model, images.clone(), labels.clone());
    let want_loss = to_vec(loss.clone());
    let want = GradientsParams::from_grads(loss.backward(), &model);
    let want_fc = to_vec(want.get::<2>(model.fc.weight.id).unwrap());

    let parallel = DataParallel::new(vec![wgpu(), wgpu()], loss_of).unwrap();
    let mut step = parallel.step(&model, images, labels).unwrap();
    assert_close("loss", &to_vec(step.loss), &want_loss, 1e-5);
    let (got_fc, _) = step.grads.remove::<2>(model.fc.weight.id).unwrap();
    let err = relative_l2(&to_vec(got_fc), &want_fc);
    assert!(err < 1e-4, "fc.weight gradient: relative L2 {err:e}");
}

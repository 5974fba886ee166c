//! BatchNorm's running statistics follow PyTorch (momentum 0.1, unbiased variance) or Keras
//! (momentum 0.99, biased variance), and only on an autodiff device.

use burn::prelude::*;
use googlenet::model::batch_norm::{BatchNorm, BatchNormStyle};

/// Two channels, a batch of 2 at 1x2: channel 0 holds 1, 2, 3, 6 and channel 1 holds 4, 4, 4, 8.
fn input(device: &Device) -> Tensor<4> {
    let data = vec![1.0, 2.0, 4.0, 4.0, 3.0, 6.0, 4.0, 8.0];
    Tensor::from_data(TensorData::new(data, [2, 2, 1, 2]), device)
}

fn stats(bn: &BatchNorm) -> (Vec<f32>, Vec<f32>) {
    let (m, v) = bn.running_stats();
    (
        m.into_data().try_to_vec().unwrap(),
        v.into_data().try_to_vec().unwrap(),
    )
}

#[test]
fn pytorch_style_update_uses_the_unbiased_variance() {
    let device = Device::flex().autodiff();
    let bn = BatchNorm::new(2, BatchNormStyle::TORCHVISION, &device);
    bn.forward(input(&device));
    let (mean, var) = stats(&bn);
    // Channel 0: mean 3, biased variance 3.5, unbiased 14/3; channel 1: mean 5, unbiased 4.
    let expect_mean = [0.9 * 0.0 + 0.1 * 3.0, 0.1 * 5.0];
    let expect_var = [0.9 + 0.1 * 14.0 / 3.0, 0.9 + 0.1 * 4.0];
    for i in 0..2 {
        assert!((mean[i] - expect_mean[i]).abs() < 1e-6, "mean {mean:?}");
        assert!((var[i] - expect_var[i]).abs() < 1e-6, "var {var:?}");
    }
}

#[test]
fn keras_style_update_uses_the_biased_variance_and_momentum_099() {
    let device = Device::flex().autodiff();
    let bn = BatchNorm::new(2, BatchNormStyle::KERAS, &device);
    bn.forward(input(&device));
    let (mean, var) = stats(&bn);
    let expect_var = [0.99 + 0.01 * 3.5, 0.99 + 0.01 * 3.0];
    assert!(
        (mean[0] - 0.03).abs() < 1e-6 && (mean[1] - 0.05).abs() < 1e-6,
        "mean {mean:?}"
    );
    for i in 0..2 {
        assert!((var[i] - expect_var[i]).abs() < 1e-6, "var {var:?}");
    }
}

#[test]
fn without_autodiff_the_running_statistics_are_used_and_left_alone() {
    let device = Device::flex();
    let bn = BatchNorm::new(2, BatchNormStyle::TORCHVISION, &device);
    let out: Vec<f32> = bn.forward(input(&device)).into_data().try_to_vec().unwrap();
    // Running mean 0, variance 1: y = x / sqrt(1 + 1e-3).
    let scale = 1.0 / (1.0f32 + 1e-3).sqrt();
    assert!(
        (out[0] - scale).abs() < 1e-6 && (out[7] - 8.0 * scale).abs() < 1e-5,
        "{out:?}"
    );
    assert_eq!(stats(&bn), (vec![0.0, 0.0], vec![1.0, 1.0]));
}

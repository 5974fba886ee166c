//! 1x1 convolutions run as matrix products (cheaper gradients on burn-flex) and must give the
//! same values and gradients as burn's convolution; constant-initialised biases must train.

use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::relu;
use googlenet::model::Variant;
use googlenet::model::conv_unit::ConvUnit;

fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn pointwise_unit_matches_burn_convolution_forward_and_backward() {
    let device = Device::flex().autodiff();
    for variant in [Variant::Paper, Variant::KerasSeed] {
        let unit = ConvUnit::new(variant, [12, 20], 1, 1, &device);
        assert!(
            unit.conv.bias.is_some(),
            "{variant}: the bias path is covered"
        );
        let x = Tensor::<4>::random([3, 12, 5, 7], Distribution::Uniform(-1.0, 1.0), &device);
        let r = Tensor::<4>::random([3, 20, 5, 7], Distribution::Uniform(-1.0, 1.0), &device);

        let run = |reference: bool| {
            let x = x.clone().detach().require_grad();
            let y = if reference {
                relu(unit.conv.forward(x.clone()))
            } else {
                unit.forward(x.clone())
            };
            let grads = (y.clone() * r.clone()).sum().backward();
            let weight = unit.conv.weight.grad(&grads).expect("weight gradient");
            let bias = unit
                .conv
                .bias
                .as_ref()
                .unwrap()
                .grad(&grads)
                .expect("bias gradient");
            let input = x.grad(&grads).expect("input gradient");
            (y.inner(), weight, bias, input)
        };
        let (y_ref, w_ref, b_ref, x_ref) = run(true);
        let (y, w, b, gx) = run(false);
        assert!(
            w_ref.clone().abs().max().into_scalar::<f32>() > 1e-3,
            "gradients are not trivial"
        );
        assert!(max_diff(y, y_ref) < 1e-5, "{variant}: output");
        assert!(max_diff(w, w_ref) < 1e-4, "{variant}: weight gradient");
        assert!(max_diff(b, b_ref) < 1e-4, "{variant}: bias gradient");
        assert!(max_diff(gx, x_ref) < 1e-5, "{variant}: input gradient");
    }
}

#[test]
fn constant_initialised_biases_receive_gradients() {
    let device = Device::flex().autodiff();
    let layer = googlenet::model::aux_head::linear(Variant::Paper, 4, 3, &device);
    let x = Tensor::<2>::random([2, 4], Distribution::Uniform(-1.0, 1.0), &device);
    let grads = layer.forward(x).sum().backward();
    let bias = layer
        .bias
        .as_ref()
        .unwrap()
        .grad(&grads)
        .expect("bias gradient");
    assert_eq!(bias.into_data().try_to_vec::<f32>().unwrap(), vec![2.0; 3]);
}

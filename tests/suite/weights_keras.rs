//! The keras-seed variant loaded from the seed's Keras weights reproduces Keras' outputs
//! (../shared/reference/keras_seed, made with Keras 3.15 on TensorFlow 2.21).

use crate::common;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use common::*;
use googlenet::model::{GoogLeNet, GoogLeNetConfig, GoogLeNetOutput, Variant};
use googlenet::weights;

fn keras_seed(device: &Device) -> GoogLeNet {
    let model = GoogLeNetConfig::new(Variant::KerasSeed)
        .init(device)
        .unwrap();
    weights::load(model, &shared("reference/keras_seed/weights.safetensors"))
        .expect("Keras weights load")
}

/// The 4 reference images as Keras saw them (NHWC in [0, 1]), in the model's NCHW layout.
fn keras_input(device: &Device) -> Tensor<4> {
    let inputs = reference("reference/inputs/inputs.safetensors");
    tensor4(&inputs, "keras_input_nhwc_0to1", device).permute([0, 3, 1, 2])
}

fn heads(out: GoogLeNetOutput) -> [(&'static str, Tensor<2>); 3] {
    [
        ("main", out.main),
        ("aux1", out.aux1.unwrap()),
        ("aux2", out.aux2.unwrap()),
    ]
}

#[test]
fn inference_outputs_match_keras_within_1e5() {
    let device = Device::flex();
    let want = reference("reference/keras_seed/outputs_inference.safetensors");
    for (name, logits) in heads(keras_seed(&device).forward_with_aux(keras_input(&device))) {
        let want_logits = values(&want, &format!("{name}_logits"));
        // Logits are small at initialisation (|x| < 0.04): compare them relative to their range.
        let rel = relative_diff(&to_vec(logits.clone()), &want_logits);
        assert!(rel <= 1e-4, "{name} logits: relative diff {rel:e}");
        assert_close(
            &format!("{name} probabilities"),
            &to_vec(softmax(logits, 1)),
            &values(&want, &format!("{name}_prob")),
            1e-5,
        );
    }
}

#[test]
fn train_mode_outputs_and_moving_statistics_match_keras() {
    let device = Device::flex().autodiff();
    let want = reference("reference/keras_seed/outputs_trainmode_nodropout.safetensors");
    let model = keras_seed(&device).without_dropout();
    for (name, logits) in heads(model.forward_with_aux(keras_input(&device))) {
        let probs = to_vec(softmax(logits, 1));
        assert_close(
            &format!("{name} train probabilities"),
            &probs,
            &values(&want, &format!("{name}_prob_train")),
            1e-5,
        );
    }
    // Keras: momentum 0.99 and the biased batch variance.
    for (bn, keras) in [
        (&model.bn1, "batch_normalization"),
        (&model.bn2, "batch_normalization_1"),
    ] {
        let (mean, var) = bn.as_ref().unwrap().running_stats();
        assert_close(
            keras,
            &to_vec(mean),
            &values(&want, &format!("{keras}.moving_mean_after")),
            1e-5,
        );
        assert_close(
            keras,
            &to_vec(var),
            &values(&want, &format!("{keras}.moving_variance_after")),
            1e-5,
        );
    }
}

//! Shapes and modes of the forward pass for every variant.

use std::path::PathBuf;

use burn::prelude::*;
use googlenet::model::input_size::min_input_size;
use googlenet::model::summary::SummaryError;
use googlenet::model::{GoogLeNetConfig, Variant};

fn input(batch: usize, side: usize, device: &Device) -> Tensor<4> {
    Tensor::random(
        [batch, 3, side, side],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        device,
    )
}

#[test]
fn inference_returns_main_logits_only_and_training_returns_three_heads() {
    let device = Device::flex();
    for variant in Variant::ALL {
        let model = GoogLeNetConfig::new(variant)
            .with_num_classes(10)
            .init(&device)
            .unwrap();
        let main = model.forward(input(2, 224, &device));
        assert_eq!(main.dims(), [2, 10], "{variant}");
        let out = model.forward_with_aux(input(2, 224, &device));
        assert_eq!(out.main.dims(), [2, 10]);
        assert_eq!(out.aux1.expect("aux1").dims(), [2, 10], "{variant}");
        assert_eq!(out.aux2.expect("aux2").dims(), [2, 10], "{variant}");
    }
}

#[test]
fn summary_shapes_match_the_forward_pass_at_other_input_sizes() {
    let device = Device::flex();
    for (variant, side) in [
        (Variant::Torchvision, 97),
        (Variant::Paper, 160),
        (Variant::KerasSeed, 225),
    ] {
        let model = GoogLeNetConfig::new(variant)
            .with_num_classes(5)
            .with_input_size(side)
            .init(&device)
            .unwrap();
        let summary = model.summary(side).unwrap();
        let fc = summary.layers.last().unwrap();
        assert_eq!(fc.output_shape, [5, 1, 1]);
        let out = model.forward_with_aux(input(1, side, &device));
        assert_eq!(out.main.dims(), [1, 5], "{variant} at {side}");
        assert_eq!(out.aux1.unwrap().dims(), [1, 5]);
    }
}

#[test]
fn smallest_inputs_are_stated_and_smaller_ones_refused_with_a_clear_error() {
    let device = Device::flex();
    // Four stride-2 stages and, for the paper and the seed, a 5x5 aux pool on the 4a map.
    // torchvision: the 2x2/2 pool before 5a needs a 2x2 map, reached from 31 pixels.
    assert_eq!(min_input_size(Variant::Torchvision), 31);
    let paper_min = min_input_size(Variant::Paper);
    let keras_min = min_input_size(Variant::KerasSeed);
    assert_eq!(
        paper_min, 79,
        "the 5x5/3 aux pool needs a 5x5 map after maxpool3"
    );
    assert_eq!(
        keras_min, 193,
        "the seed's 7x7 main pool needs a 7x7 map after maxpool4"
    );
    let err = GoogLeNetConfig::new(Variant::Paper)
        .with_input_size(paper_min - 1)
        .init(&device)
        .unwrap_err();
    assert_eq!(
        err,
        SummaryError::InputTooSmall {
            input: paper_min - 1,
            min: paper_min
        }
    );
    assert!(
        err.to_string().contains("smallest it takes is 79x79"),
        "{err}"
    );
    let model = GoogLeNetConfig::new(Variant::Paper)
        .with_input_size(paper_min)
        .init(&device)
        .unwrap();
    assert_eq!(
        model
            .forward_with_aux(input(1, paper_min, &device))
            .main
            .dims(),
        [1, 1000]
    );
    assert!(model.check_input(1, 224, 224).is_err());
}

#[test]
fn transform_input_maps_imagenet_normalisation_to_minus_one_one() {
    // Calibrated weights, so that the output depends visibly on the input.
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/reference/torchvision/torchvision_seed1234_calibrated.pth"
    ));
    assert!(
        path.exists(),
        "ground truth missing: {} (CI has ../shared)",
        path.display()
    );
    let device = Device::flex();
    let config = GoogLeNetConfig::new(Variant::Torchvision);
    let plain = googlenet::weights::load(config.clone().init(&device).unwrap(), &path).unwrap();
    let transformed = googlenet::weights::load(
        config.with_transform_input(true).init(&device).unwrap(),
        &path,
    )
    .unwrap();
    let x = input(1, 224, &device);
    // torchvision: x_c * (std_c / 0.5) + (mean_c - 0.5) / 0.5.
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    let channels = (0..3)
        .map(|c| {
            x.clone()
                .narrow(1, c, 1)
                .mul_scalar(std[c] / 0.5)
                .add_scalar((mean[c] - 0.5) / 0.5)
        })
        .collect();
    let by_hand = plain.forward(Tensor::cat(channels, 1));
    let diff: f32 = (transformed.forward(x.clone()) - by_hand)
        .abs()
        .max()
        .into_scalar();
    assert!(diff < 1e-5, "{diff}");
    let off: f32 = (plain.forward(x.clone()) - transformed.forward(x))
        .abs()
        .max()
        .into_scalar();
    assert!(off > 1e-3, "transform_input must change the output ({off})");
}

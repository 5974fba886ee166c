//! The recipes' numbers: learning-rate schedules at given epochs, each recipe's loss weighting
//! (checked by hand and, for the seed, against Keras' own loss on its reference model), Polyak
//! decay, the configuration file, and the curves image.

use crate::common;

use burn::prelude::*;
use common::*;
use googlenet::model::{GoogLeNetConfig, GoogLeNetOutput, Variant};
use googlenet::train::config::{Overrides, Recipe, TrainConfig};
use googlenet::train::loss::{LossKind, LossWeighting, cross_entropy};
use googlenet::train::metrics::{EpochRecord, EpochSums, HeadBatch};
use googlenet::train::polyak::Polyak;
use googlenet::train::schedule::{Progress, Schedule};

fn at(epoch: usize, iteration: u64, total_iterations: u64) -> Progress {
    Progress {
        epoch,
        iteration,
        total_iterations,
    }
}

#[test]
fn paper_schedule_loses_4_percent_every_8_epochs() {
    let s = TrainConfig::recipe(Recipe::Paper, Variant::Paper, 224, 1000).schedule;
    let lr = |epoch| s.learning_rate(0.01, at(epoch, 0, 1));
    assert_eq!(lr(0), 0.01);
    assert_eq!(lr(7), 0.01);
    assert!((lr(8) - 0.0096).abs() < 1e-15);
    assert!((lr(15) - 0.0096).abs() < 1e-15);
    assert!((lr(16) - 0.009216).abs() < 1e-15);
    assert!((lr(80) - 0.01 * 0.96f64.powi(10)).abs() < 1e-15);
}

#[test]
fn caffe_quick_schedule_is_poly_power_half_over_the_run() {
    let c = TrainConfig::recipe(Recipe::CaffeQuick, Variant::Paper, 224, 1000);
    assert_eq!(c.schedule, Schedule::Poly { power: 0.5 });
    assert_eq!(
        (c.base_lr, c.momentum, c.weight_decay, c.batch_size),
        (0.01, 0.9, 2e-4, 32)
    );
    let lr = |i| c.schedule.learning_rate(c.base_lr, at(0, i, 1000));
    assert_eq!(lr(0), 0.01);
    assert!((lr(750) - 0.005).abs() < 1e-15, "sqrt(0.25) of the base");
    assert!((lr(960) - 0.002).abs() < 1e-12);
    assert_eq!(lr(1000), 0.0);
}

#[test]
fn seed_recipe_is_keras_sgd() {
    let c = TrainConfig::recipe(Recipe::Seed, Variant::KerasSeed, 224, 1000);
    assert_eq!(c.schedule, Schedule::Constant);
    assert_eq!(
        (c.base_lr, c.momentum, c.weight_decay, c.epochs),
        (0.01, 0.0, 0.0, 10)
    );
    assert_eq!(c.loss, LossWeighting::keras_seed());
    assert_eq!(c.polyak_decay, None);
    for epoch in [0, 5, 9] {
        assert_eq!(c.schedule.learning_rate(0.01, at(epoch, 3, 10)), 0.01);
    }
}

#[test]
fn overrides_replace_recipe_values_and_survive_the_config_file() {
    let c = TrainConfig::recipe(Recipe::Paper, Variant::Paper, 112, 2).with_overrides(&Overrides {
        epochs: Some(3),
        base_lr: Some(0.05),
        aux_weight: Some(0.5),
        polyak_decay: Some(None),
        schedule: Some(Schedule::Step {
            every_epochs: 2,
            factor: 0.5,
        }),
        ..Overrides::default()
    });
    assert_eq!(
        (c.epochs, c.base_lr, c.loss.aux, c.polyak_decay),
        (3, 0.05, 0.5, None)
    );
    assert_eq!(c.momentum, 0.9, "not overridden");
    let dir = std::env::temp_dir().join(format!("googlenet-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    c.save(&path).unwrap();
    assert_eq!(TrainConfig::load(&path).unwrap(), c);
    assert!(c.describe().contains("x0.5 every 2 epochs"));
    std::fs::remove_dir_all(dir).unwrap();
    let mut bad = c.clone();
    bad.input_size = 64;
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("79"), "paper variant's minimum input: {err}");
}

fn logits(rows: &[[f32; 3]], device: &Device) -> Tensor<2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), 3]), device)
}

fn ce_by_hand(rows: &[[f32; 3]], labels: &[usize]) -> f64 {
    rows.iter()
        .zip(labels)
        .map(|(r, &l)| {
            let z: f64 = r.iter().map(|&x| (x as f64).exp()).sum();
            z.ln() - r[l] as f64
        })
        .sum::<f64>()
        / rows.len() as f64
}

#[test]
fn paper_and_seed_weight_the_auxiliary_losses_differently() {
    let device = Device::flex();
    let (main, aux1, aux2) = (
        [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]],
        [[0.3, 0.1, 0.2], [2.0, 0.0, 0.0]],
        [[-1.0, 1.0, 0.0], [0.5, 0.5, 0.5]],
    );
    let labels = [1usize, 0];
    let out = GoogLeNetOutput {
        main: logits(&main, &device),
        aux1: Some(logits(&aux1, &device)),
        aux2: Some(logits(&aux2, &device)),
    };
    let y = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 0], [2]), &device);
    let (m, a1, a2) = (
        ce_by_hand(&main, &labels),
        ce_by_hand(&aux1, &labels),
        ce_by_hand(&aux2, &labels),
    );
    let value = |t: Tensor<1>| to_vec(t)[0] as f64;
    let paper = LossWeighting::paper().loss(&out, y.clone());
    assert!((value(paper.total) - (m + 0.3 * (a1 + a2))).abs() < 1e-5);
    assert!((value(paper.main) - m).abs() < 1e-6);
    let caffe = TrainConfig::recipe(Recipe::CaffeQuick, Variant::Paper, 224, 3).loss;
    assert_eq!(caffe, LossWeighting::paper());
    // None of these probabilities is below 1e-7, so Keras' clipping leaves the values alone.
    let seed = LossWeighting::keras_seed().loss(&out, y);
    assert!((value(seed.total) - (m + a1 + a2)).abs() < 1e-5);
}

#[test]
fn keras_cross_entropy_clips_probabilities_at_1e7() {
    let device = Device::flex();
    // The true class has probability e^-40 / (1 + ...) ~ 4e-18: clipped to 1e-7.
    let rows = [[0.0f32, 40.0, 0.0]];
    let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
    let keras = to_vec(cross_entropy(
        logits(&rows, &device),
        y.clone(),
        LossKind::KerasClippedProbabilities,
    ))[0];
    let exact = to_vec(cross_entropy(
        logits(&rows, &device),
        y,
        LossKind::SoftmaxCrossEntropy,
    ))[0];
    assert!(
        (keras as f64 - (1e7f64).ln()).abs() < 1e-3,
        "-ln(1e-7) = 16.118, got {keras}"
    );
    assert!((exact - 40.0).abs() < 1e-3, "{exact}");
    // And the clip stops the gradient there, as in Keras.
    let device = Device::flex().autodiff();
    let x = logits(&rows, &device).require_grad();
    let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
    let grads = cross_entropy(x.clone(), y, LossKind::KerasClippedProbabilities).backward();
    let g = to_vec(x.grad(&grads).unwrap());
    assert!(g.iter().all(|v| *v == 0.0), "{g:?}");
}

/// The seed's loss on the Keras reference model in training mode without dropout equals the
/// `model(x, training=True)` loss Keras computed: CE(main) + CE(aux1) + CE(aux2) on probabilities.
#[test]
fn seed_loss_matches_keras_on_its_reference_model() {
    let device = Device::flex().autodiff();
    let model = GoogLeNetConfig::new(Variant::KerasSeed)
        .init(&device)
        .unwrap();
    let model =
        googlenet::weights::load(model, &shared("reference/keras_seed/weights.safetensors"))
            .unwrap()
            .without_dropout();
    let inputs = reference("reference/inputs/inputs.safetensors");
    let nhwc = values(&inputs, "keras_input_nhwc_0to1");
    let x = Tensor::<4>::from_data(TensorData::new(nhwc, [4, 224, 224, 3]), &device)
        .permute([0, 3, 1, 2]);
    let y = Tensor::<1, Int>::from_data(TensorData::new(vec![698i64, 985, 310, 309], [4]), &device);
    let out = model.forward_with_aux(x);
    let parts = LossWeighting::keras_seed().loss(&out, y);
    let value = |t: &Tensor<1>| to_vec(t.clone())[0];
    // ../shared/reference/keras_seed/README.md: training mode with dropout off.
    for (name, got, want) in [
        ("main", value(&parts.main), 6.959632),
        ("aux1", value(parts.aux1.as_ref().unwrap()), 6.779061),
        ("aux2", value(parts.aux2.as_ref().unwrap()), 6.878111),
        ("sum", value(&parts.total), 20.616804),
    ] {
        assert!((got - want).abs() < 1e-4, "{name}: {got} vs Keras {want}");
    }
}

#[test]
fn polyak_decay_warms_up_then_caps() {
    assert!((Polyak::decay_at(0.999, 0) - 0.1).abs() < 1e-12);
    assert!((Polyak::decay_at(0.999, 90) - 0.91).abs() < 1e-12);
    assert_eq!(Polyak::decay_at(0.999, 1_000_000), 0.999);
}

#[test]
fn epoch_sums_count_top1_and_top5_per_head() {
    let mut sums = EpochSums::default();
    // 2 images, 6 classes; main right on both, aux1 top-1 wrong on the second but within top-5.
    let main = [
        0.0f32, 9.0, 1.0, 2.0, 3.0, 4.0, 9.0, 0.0, 1.0, 2.0, 3.0, 4.0,
    ];
    let aux1 = [
        0.0f32, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 1.0, 2.0, 3.0, 9.0,
    ];
    sums.add(
        &[1, 0],
        1.5,
        [
            Some(HeadBatch {
                loss: 0.5,
                logits: &main,
            }),
            Some(HeadBatch {
                loss: 2.0,
                logits: &aux1,
            }),
            None,
        ],
    );
    let s = sums.stats();
    assert_eq!(
        (s.loss, s.main.loss, s.main.top1, s.main.top5),
        (1.5, 0.5, 1.0, 1.0)
    );
    let a = s.aux1.unwrap();
    assert_eq!((a.top1, a.top5), (0.5, 1.0));
    assert!(s.aux2.is_none());
}

#[test]
fn curves_are_a_png_of_the_history() {
    let mut sums = EpochSums::default();
    let logits = [1.0f32, 0.0];
    sums.add(
        &[0],
        0.7,
        [
            Some(HeadBatch {
                loss: 0.7,
                logits: &logits,
            }),
            None,
            None,
        ],
    );
    let stats = sums.stats();
    let history: Vec<EpochRecord> = (1..=3)
        .map(|epoch| EpochRecord {
            epoch,
            learning_rate: 0.01,
            train: stats,
            val: stats,
            images_per_second: 10.0,
            seconds: 1.0,
        })
        .collect();
    let png = googlenet::train::curves::render_png(&history).unwrap();
    let image = image::load_from_memory(&png).unwrap();
    assert_eq!((image.width(), image.height()), (1200, 450));
    // Not a blank canvas: some pixels are the curves' blue.
    let rgb = image.to_rgb8();
    assert!(
        rgb.pixels()
            .any(|p| p.0[2] > 200 && p.0[0] < 50 && p.0[1] < 50)
    );
}

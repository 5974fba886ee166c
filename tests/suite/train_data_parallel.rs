//! Data parallel over two replicas takes the same SGD step as one device on the whole batch.
//! Two flex replicas share one physical CPU, which changes nothing in the arithmetic checked here.

use crate::common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::SgdConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::prelude::*;
use common::*;
use googlenet::model::{GoogLeNet, GoogLeNetConfig, Variant};
use googlenet::train::data_parallel::{DataParallel, DataParallelError, split_sizes};

const SIDE: usize = 80;
const CLASSES: usize = 3;
const BATCH: usize = 4;

/// The paper's loss (section 5): main + 0.3 x each auxiliary classifier, mean over the images.
fn paper_loss(model: &GoogLeNet, images: Tensor<4>, labels: Tensor<1, Int>) -> Tensor<1> {
    let device = images.device();
    let ce = CrossEntropyLossConfig::new().init(&device);
    let out = model.forward_with_aux(images);
    ce.forward(out.main, labels.clone())
        + (ce.forward(out.aux1.unwrap(), labels.clone()) + ce.forward(out.aux2.unwrap(), labels))
            .mul_scalar(0.3)
}

fn batch(device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    // A deterministic, varied input: a different smooth pattern per image and channel.
    let n = BATCH * 3 * SIDE * SIDE;
    let pixels: Vec<f32> = (0..n)
        .map(|i| {
            let (img, rest) = (i / (3 * SIDE * SIDE), i % (3 * SIDE * SIDE));
            let (c, y, x) = (rest / (SIDE * SIDE), (rest / SIDE) % SIDE, rest % SIDE);
            ((x as f32 * 0.11 * (img + 1) as f32 + y as f32 * 0.07 * (c + 1) as f32).sin()) * 0.8
        })
        .collect();
    let images = Tensor::<4>::from_data(TensorData::new(pixels, [BATCH, 3, SIDE, SIDE]), device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2, 1, 2], [BATCH]), device);
    (images, labels)
}

/// Every float parameter, flattened, in visiting order.
struct Flatten(Vec<Vec<f32>>);

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(to_vec(param.val().flatten::<1>(0, D - 1)));
    }
}

fn parameters(model: &GoogLeNet) -> Vec<Vec<f32>> {
    let mut visitor = Flatten(Vec::new());
    model.visit(&mut visitor);
    visitor.0
}

fn sgd() -> burn::optim::ModuleOptimizer {
    SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
        }))
        .with_weight_decay(Some(WeightDecayConfig::new(2e-4)))
        .init()
}

#[test]
fn two_replicas_step_like_one_device_on_the_whole_batch() {
    let device = Device::flex().autodiff();
    let model = GoogLeNetConfig::new(Variant::Paper)
        .with_num_classes(CLASSES)
        .with_input_size(SIDE)
        .init(&device)
        .unwrap()
        .without_dropout();
    let (images, labels) = batch(&device);
    let before = parameters(&model);
    let lr = 0.05;

    // One device, whole batch.
    let mut single_optim = sgd();
    let loss = paper_loss(&model, images.clone(), labels.clone());
    let single_loss = to_vec(loss.clone())[0];
    let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
    let single = single_optim.step(lr, model.clone(), grads);

    // Two replicas, two images each; two steps so that momentum is exercised too.
    let parallel = DataParallel::new(vec![Device::flex(), Device::flex()], paper_loss).unwrap();
    let mut multi_optim = sgd();
    let step = parallel
        .step(&model, images.clone(), labels.clone())
        .unwrap();
    assert_eq!(step.shares, vec![2, 2]);
    let multi_loss = to_vec(step.loss.clone())[0];
    let multi = multi_optim.step_multi(lr, model.clone(), step.grads);

    assert!(
        (multi_loss - single_loss).abs() <= 1e-5 * single_loss.abs(),
        "loss: {multi_loss} vs {single_loss}"
    );
    let compare = |what: &str, a: &GoogLeNet, b: &GoogLeNet, tolerance: f32| {
        let (a, b) = (parameters(a), parameters(b));
        assert_eq!(a.len(), b.len());
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| relative_diff(x, y))
            .fold(0.0, f32::max);
        eprintln!("{what}: worst relative difference of a parameter tensor {worst:e}");
        assert!(
            worst <= tolerance,
            "{what}: worst relative difference {worst:e}"
        );
    };
    compare("after one step", &multi, &single, 1e-5);
    // The step moved the weights by far more than the tolerance (a test that cannot fail otherwise).
    let moved = parameters(&single)
        .iter()
        .zip(&before)
        .map(|(x, y)| relative_diff(x, y))
        .fold(0.0, f32::max);
    assert!(moved > 1e-3, "the step barely moved the weights: {moved:e}");

    // Second step: both start from the single-device weights, so that what differs is only each
    // optimizer's momentum (built from its own first gradients) and this step's gradients. Starting
    // from each side's own weights would compare chaos instead: a 1e-7 difference flips ReLUs and
    // grows to 1e-4 in one step of this 4-image batch at lr 0.05.
    let loss = paper_loss(&single, images.clone(), labels.clone());
    let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &single);
    let start = single.clone();
    let single = single_optim.step(lr, start.clone(), grads);
    let step = parallel.step(&start, images, labels).unwrap();
    let multi = multi_optim.step_multi(lr, start, step.grads);
    compare("after two steps", &multi, &single, 1e-5);
}

#[test]
fn uneven_batches_weight_each_replica_by_its_share() {
    let device = Device::flex().autodiff();
    let model = GoogLeNetConfig::new(Variant::Paper)
        .with_num_classes(CLASSES)
        .with_input_size(SIDE)
        .init(&device)
        .unwrap()
        .without_dropout();
    let (images, labels) = batch(&device);
    let images = images.narrow(0, 0, 3);
    let labels = labels.narrow(0, 0, 3);
    let single_loss = to_vec(paper_loss(&model, images.clone(), labels.clone()))[0];
    let parallel = DataParallel::new(vec![Device::flex(), Device::flex()], paper_loss).unwrap();
    let step = parallel.step(&model, images, labels).unwrap();
    assert_eq!(step.shares, vec![2, 1]);
    let multi_loss = to_vec(step.loss)[0];
    assert!(
        (multi_loss - single_loss).abs() <= 1e-5 * single_loss.abs(),
        "loss: {multi_loss} vs {single_loss}"
    );
}

#[test]
fn bad_batches_and_failing_replicas_are_errors() {
    assert_eq!(split_sizes(10, 3), Ok(vec![4, 3, 3]));
    assert_eq!(split_sizes(2, 2), Ok(vec![1, 1]));
    assert_eq!(
        split_sizes(1, 2),
        Err(DataParallelError::BatchTooSmall {
            batch: 1,
            replicas: 2
        })
    );
    assert!(matches!(
        DataParallel::new(vec![], paper_loss),
        Err(DataParallelError::NoDevices)
    ));

    let device = Device::flex().autodiff();
    let model = GoogLeNetConfig::new(Variant::Paper)
        .with_num_classes(CLASSES)
        .with_input_size(SIDE)
        .init(&device)
        .unwrap();
    let (images, labels) = batch(&device);
    let parallel = DataParallel::new(vec![Device::flex(), Device::flex()], paper_loss).unwrap();
    let err = parallel
        .step(&model, images.clone(), labels.clone().narrow(0, 0, 3))
        .err()
        .unwrap();
    assert_eq!(
        err,
        DataParallelError::LabelCount {
            images: 4,
            labels: 3
        }
    );

    // A loss that panics on one replica is reported with its message; the workers keep serving.
    let picky = DataParallel::new(
        vec![Device::flex(), Device::flex()],
        |m: &GoogLeNet, x, y| {
            assert!(y_len(&y) != 1, "one image is not enough for this loss");
            paper_loss(m, x, y)
        },
    )
    .unwrap();
    let err = picky
        .step(
            &model,
            images.clone().narrow(0, 0, 3),
            labels.clone().narrow(0, 0, 3),
        )
        .err()
        .unwrap();
    match err {
        DataParallelError::Replica { message, .. } => {
            assert!(message.contains("one image is not enough"), "{message}")
        }
        other => panic!("expected a replica failure, got {other:?}"),
    }
    assert!(picky.step(&model, images, labels).is_ok());
}

fn y_len(labels: &Tensor<1, Int>) -> usize {
    labels.dims()[0]
}

/// torchvision's variant has BatchNorm: each replica normalises over its own half, and the
/// replicas' running statistics are averaged. For the first BatchNorm (after conv1, whose weights
/// every replica shares) the average of the halves' running means is the whole batch's.
#[test]
fn batch_norm_running_means_are_averaged_over_replicas() {
    let device = Device::flex().autodiff();
    let model = GoogLeNetConfig::new(Variant::Torchvision)
        .with_num_classes(CLASSES)
        .with_input_size(SIDE)
        .init(&device)
        .unwrap()
        .without_dropout();
    let (images, labels) = batch(&device);
    // An independent copy: `valid().train()` gives fresh running-state cells.
    let single = model.valid().train();
    let _ = paper_loss(&single, images.clone(), labels.clone());
    let (want, _) = single.conv1.bn.as_ref().unwrap().running_stats();

    let parallel = DataParallel::new(vec![Device::flex(), Device::flex()], paper_loss).unwrap();
    parallel.step(&model, images, labels).unwrap();
    // `valid()` folds in every replica's latest update (as weights::save does).
    let (got, _) = model.valid().conv1.bn.as_ref().unwrap().running_stats();
    let (got, want) = (to_vec(got), to_vec(want));
    // torchvision's initialisation (std 0.01) keeps conv1's outputs, and so the means, near 1e-4.
    let largest = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(
        largest > 1e-5,
        "the reference step did not move the running mean"
    );
    let diff = relative_diff(&got, &want);
    eprintln!("conv1.bn.running_mean: relative difference {diff:e} (largest {largest:e})");
    assert!(
        diff <= 1e-4,
        "conv1.bn.running_mean: relative difference {diff:e}"
    );
}

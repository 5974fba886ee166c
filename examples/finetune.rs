//! Fine-tunes pretrained ImageNet weights on a folder of K classes (DATA/train/<class>/*.jpg): new
//! classifiers for K classes, a few SGD steps on the paper's loss, the result saved with its class
//! names: `cargo run --release --example finetune -- WEIGHTS DATA OUT.safetensors [STEPS]`.

use burn::optim::{GradientsParams, SgdConfig, momentum::MomentumConfig};
use burn::prelude::*;
use googlenet::model::Variant;
use googlenet::train::{Split, TrainData, folders::ImageFolders, loss::LossWeighting};
use googlenet::weights::{self, Layout, WeightsSource, load_model};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, data, out, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: finetune WEIGHTS DATA OUT.safetensors [STEPS]")
    };
    let steps: usize = rest.first().map_or(Ok(5), |s| s.parse())?;
    let device = Device::flex().autodiff(); // the model records what backward needs
    let source: WeightsSource = weights.parse()?;
    let variant = source.variant().or(Some(Variant::Torchvision));
    let pretrained = load_model(&source, variant, 224, &device)?.model;
    let data = ImageFolders::open(data.as_ref(), pretrained.variant, 224)?;
    let classes = data.class_names();
    let mut model = pretrained.with_new_classifiers(classes.len(), &device);
    let momentum = MomentumConfig::new().with_momentum(0.9).with_dampening(0.0);
    let mut optimizer = SgdConfig::new().with_momentum(Some(momentum)).init();
    let len = data.len(Split::Train);
    for step in 0..steps {
        let indices: Vec<_> = (0..8).map(|i| (step * 8 + i * 31) % len).collect();
        let batch = data.fetch(Split::Train, &indices, step as u64)?;
        let (images, labels) = batch.tensors(&device);
        let output = model.forward_with_aux(images);
        let loss = LossWeighting::paper().loss(&output, labels).total;
        println!("step {step}: loss {:.4}", loss.clone().into_scalar::<f32>());
        let gradients = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-3, model, gradients);
    }
    weights::save_with_classes(&model, out.as_ref(), Layout::Native, Some(&classes))?;
    println!("wrote {out}: {} classes {classes:?}", classes.len());
    Ok(())
}

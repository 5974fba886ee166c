//! Fine-tunes pretrained ImageNet weights on a folder of K classes (DATA/train/<class>/*.jpg): new
//! classifiers for K classes, a few SGD steps on the paper's loss, the result saved with its class
//! names: `cargo run --release --example finetune -- WEIGHTS DATA OUT.safetensors [STEPS]`.

use burn::optim::{GradientsParams, SgdConfig, momentum::MomentumConfig};
use burn::prelude::*;
use googlenet::model::Variant;
use googlenet::train::{Split, TrainData, folders::ImageFolders, loss::LossWeighting};
use googlenet::weights::{self, Layout, WeightsFile, WeightsSource};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, data, out, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: finetune WEIGHTS DATA OUT.safetensors [STEPS]")
    };
    let steps: usize = rest.first().map_or(Ok(5), |s| s.parse())?;
    let device = Device::flex().autodiff(); // the model records what backward needs
    let source: WeightsSource = weights.parse()?;
    let file = WeightsFile::open(&source.resolve(true)?)?;
    let config = file.model_config(source.variant().or(Some(Variant::Torchvision)), 224)?;
    let data = ImageFolders::open(data.as_ref(), config.variant, 224)?;
    let classes = data.class_names();
    let pretrained = file.load_into(config.init(&device)?)?;
    let mut model = pretrained.with_new_classifiers(classes.len(), &device);
    let momentum = MomentumConfig {
        momentum: 0.9,
        dampening: 0.0,
        nesterov: false,
    };
    let mut optimizer = SgdConfig::new().with_momentum(Some(momentum)).init();
    let batch_size = 8;
    for step in 0..steps {
        let indices: Vec<usize> = (0..batch_size)
            .map(|i| (step * batch_size + i * 31) % data.len(Split::Train))
            .collect();
        let batch = data.fetch(Split::Train, &indices, step as u64)?;
        let shape = [batch.len(), 3, batch.side, batch.side];
        let images = Tensor::<4>::from_data(TensorData::new(batch.images, shape), &device);
        let labels =
            Tensor::<1, Int>::from_data(TensorData::new(batch.labels, [shape[0]]), &device);
        let loss = LossWeighting::paper()
            .loss(&model.forward_with_aux(images), labels)
            .total;
        println!("step {step}: loss {:.4}", loss.clone().into_scalar::<f32>());
        let gradients = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-3, model, gradients);
    }
    weights::save_with_classes(&model, out.as_ref(), Layout::Native, Some(&classes))?;
    println!("wrote {out}: {} classes {classes:?}", classes.len());
    Ok(())
}

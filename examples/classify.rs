//! The five most probable ImageNet classes of each image, printed as `googlenet classify --json`
//! prints them: `cargo run --release --example classify -- --weights FILE|URL|NAME IMAGE...`
//! (a file without a variant of its own is taken as torchvision's).

use burn::prelude::Device;
use googlenet::data::{ClassTable, EvalTransform, image::load_rgb};
use googlenet::engine::InferenceNet;
use googlenet::eval::predict::{Prediction, probabilities, top_predictions};
use googlenet::model::Variant;
use googlenet::weights::{WeightsSource, load_model};

#[derive(serde::Serialize)]
struct ImageResult<'a> {
    path: &'a str,
    top: Vec<Prediction>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: --weights W IMAGE...";
    let [flag, weights, images @ ..] = args.as_slice() else {
        anyhow::bail!(usage)
    };
    anyhow::ensure!(flag == "--weights" && !images.is_empty(), usage);
    let source: WeightsSource = weights.parse()?;
    let variant = source.variant().or(Some(Variant::Torchvision));
    let net = InferenceNet::from_model(&load_model(&source, variant, 224, &Device::flex())?.model)?;
    let mut results = Vec::new();
    for path in images {
        let image = EvalTransform::new(256, 224).apply(&load_rgb(path.as_ref())?);
        let probs = probabilities(&net, &[image])?;
        let top = top_predictions(&probs, 5, &ClassTable::imagenet());
        results.push(ImageResult { path, top });
    }
    println!("{}", serde_json::to_string_pretty(&results)?);
    Ok(())
}

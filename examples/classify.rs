//! The five most probable ImageNet classes of each image, printed as `googlenet classify --json`
//! prints them: `cargo run --release --example classify -- --weights FILE|URL|NAME IMAGE...`
//! (a file without a variant of its own is taken as torchvision's).

use burn::prelude::Device;
use googlenet::data::image::load_rgb;
use googlenet::data::{ClassTable, EvalTransform};
use googlenet::engine::InferenceNet;
use googlenet::eval::{predict::probabilities, top_k};
use googlenet::model::Variant;
use googlenet::weights::{WeightsFile, WeightsSource};

#[derive(serde::Serialize)]
struct Prediction<'a> {
    index: usize,
    wnid: &'a str,
    name: &'a str,
    prob: f32,
}

#[derive(serde::Serialize)]
struct ImageResult<'a> {
    path: &'a str,
    top: Vec<Prediction<'a>>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [flag, weights, images @ ..] = args.as_slice() else {
        anyhow::bail!("usage: --weights W IMAGE...")
    };
    anyhow::ensure!(
        flag == "--weights" && !images.is_empty(),
        "usage: --weights W IMAGE..."
    );
    let source: WeightsSource = weights.parse()?;
    let file = WeightsFile::open(&source.resolve(true)?)?; // read once: configuration and tensors
    let mut config = file.model_config(source.variant().or(Some(Variant::Torchvision)), 224)?;
    config.transform_input |= source.transform_input();
    let net = InferenceNet::from_model(&file.load_into(config.init(&Device::flex())?)?)?;
    let classes = ClassTable::imagenet();
    let mut results = Vec::new();
    for path in images {
        let image = EvalTransform::new(256, 224).apply(&load_rgb(path.as_ref())?);
        let probs = probabilities(&net, &[image])?;
        let top = top_k(&probs, 5).into_iter().map(|index| Prediction {
            index,
            wnid: classes.wnid(index),
            name: classes.name(index),
            prob: probs[index],
        });
        results.push(ImageResult {
            path,
            top: top.collect(),
        });
    }
    println!("{}", serde_json::to_string_pretty(&results)?);
    Ok(())
}

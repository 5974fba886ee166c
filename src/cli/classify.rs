//! `googlenet classify`: the top classes of each image.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use burn::prelude::Device;
use clap::Args;
use serde::Serialize;

use crate::data::EvalTransform;
use crate::data::image::load_rgb_within;
use crate::eval::predict::{Prediction, probabilities, top_predictions};
use crate::model::Variant;
use crate::weights::WeightsSource;

/// Resizes each image's shorter side to --resize, takes the center --crop square, and prints the
/// --top most probable classes with wnid, name and probability. An image that cannot be read is
/// reported and the others are still classified (exit code 1).
#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Images to classify (JPEG, PNG, ...).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Weights: a file (.pth, .safetensors in PyTorch, Keras or native layout), an http(s) URL, or
    /// `torchvision` (also IMAGENET1K_V1, DEFAULT) for torchvision's pretrained file with its
    /// variant and transform_input; URLs and names are downloaded once into torch's cache (see
    /// `googlenet weights list`).
    #[arg(long)]
    pub weights: WeightsSource,
    /// Variant of the weights (when absent: from a native file's metadata or the name; else paper).
    #[arg(long, value_enum)]
    pub variant: Option<Variant>,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Shorter side after resizing.
    #[arg(long, default_value_t = 256)]
    pub resize: u32,
    /// Side of the center crop fed to the network.
    #[arg(long, default_value_t = 224)]
    pub crop: u32,
    /// Class names file (`LOC_synset_mapping.txt` style: "wnid name" per line, in class order).
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// torchvision's transform_input (on for torchvision's official pretrained weights).
    #[arg(long)]
    pub transform_input: bool,
    #[command(flatten)]
    pub pixels: super::pixel_budget_arg::PixelBudgetArg,
    #[command(flatten)]
    pub precision: super::precision_arg::FastPrecisionArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ImageResult {
    path: PathBuf,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    top: Vec<Prediction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs `googlenet classify`: the top predictions for each image given.
pub fn run(args: ClassifyArgs) -> Result<ExitCode> {
    let device = Device::flex();
    let loaded = super::load_model(&args.weights, args.variant, args.crop as usize, &device)?;
    let mut model = loaded.model;
    model.transform_input |= args.transform_input;
    let classes = super::class_table(
        loaded.class_names.as_deref(),
        args.classes.as_deref(),
        model.num_classes(),
    )?;
    let transform = EvalTransform::new(args.resize, args.crop);
    let net = args
        .precision
        .net(&model, args.crop, args.pixels.budget())?;
    let mut results = Vec::new();
    for path in &args.images {
        let result = match load_rgb_within(path, args.pixels.budget()) {
            Ok(image) => {
                let probs = probabilities(&net, &[transform.apply(&image)])?;
                let top = top_predictions(&probs, args.top, &classes);
                ImageResult {
                    path: path.clone(),
                    top,
                    error: None,
                }
            }
            Err(err) => ImageResult {
                path: path.clone(),
                top: vec![],
                error: Some(err.to_string()),
            },
        };
        results.push(result);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in &results {
            println!("{}", r.path.display());
            match &r.error {
                Some(err) => println!("  error: {err}"),
                None => r.top.iter().for_each(|p| {
                    println!(
                        "  {:>6.2}%  {:>4}  {}  {}",
                        p.prob * 100.0,
                        p.index,
                        p.wnid,
                        p.name
                    )
                }),
            }
        }
    }
    let failed = results.iter().any(|r| r.error.is_some());
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

//! `googlenet eval`: top-1/top-5 on a labelled image set, with the paper's multi-crop scheme.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::prelude::Device;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::image::load_rgb_within;
use crate::data::{FlatLabels, ImageFolder};
use crate::eval::predict::predict;
use crate::eval::{CropScheme, Metrics};
use crate::model::Variant;
use crate::weights::WeightsSource;

/// Evaluates one model, or an ensemble (softmax averaged over models, as the paper's 7), on a
/// folder-per-class set (ImageNet's val/<wnid>/ layout) or a flat folder with a label file.
/// `--crops 144` is section 7 of the paper: 4 scales x 3 squares x 6 crops x 2 mirrors.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Image set: DIR/<class>/*.jpg, or a flat folder with --labels.
    #[arg(long)]
    pub data: PathBuf,
    /// Weights of the model to evaluate: a file (.pth, .safetensors in PyTorch, Keras or native layout), an http(s) URL, or
    /// `torchvision` (also IMAGENET1K_V1, DEFAULT) for torchvision's pretrained file with its
    /// variant and transform_input; URLs and names are downloaded once into torch's cache (see
    /// `googlenet weights list`).
    #[arg(long)]
    pub weights: WeightsSource,
    /// More weights (files, URLs or names) of the same variant; softmax is averaged over all.
    #[arg(long, value_delimiter = ',')]
    pub ensemble: Vec<WeightsSource>,
    /// Variant of the weights (when absent: from a native file's metadata or the name; else paper).
    #[arg(long, value_enum)]
    pub variant: Option<Variant>,
    /// Crops per image: 1 (resize 256, center 224), 10 (corners, center, mirrors) or 144 (paper).
    #[arg(long, value_enum, default_value = "1")]
    pub crops: CropScheme,
    /// Side of the crops fed to the network.
    #[arg(long, default_value_t = 224)]
    pub crop: u32,
    /// Labels for a flat folder (ImageNet's 50,000 validation images in one folder): Kaggle's
    /// LOC_val_solution.csv, or the devkit's ILSVRC2012_validation_ground_truth.txt (its class
    /// ids are read through the devkit's meta.mat, found beside it or given with --devkit-meta).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// The devkit's data/meta.mat, for --labels ILSVRC2012_validation_ground_truth.txt when it
    /// is not in the same folder.
    #[arg(long, requires = "labels")]
    pub devkit_meta: Option<PathBuf>,
    /// torchvision's transform_input (on for torchvision's official pretrained weights).
    #[arg(long)]
    pub transform_input: bool,
    /// Stop at the first unreadable image instead of skipping and counting it.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub pixels: super::pixel_budget_arg::PixelBudgetArg,
    #[command(flatten)]
    pub precision: super::precision_arg::FastPrecisionArg,
    /// How many confused class pairs to list.
    #[arg(long, default_value_t = 5)]
    pub confused: usize,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Runs `googlenet eval`: top-1 and top-5 accuracy of weights on a labelled dataset.
pub fn run(args: EvalArgs) -> Result<ExitCode> {
    let device = Device::flex();
    let mut models = Vec::new();
    let mut recorded_classes = None;
    for source in std::iter::once(&args.weights).chain(&args.ensemble) {
        let loaded = super::load_model(source, args.variant, args.crop as usize, &device)?;
        let mut model = loaded.model;
        model.transform_input |= args.transform_input;
        if let Some(first) = models.first().map(|m: &crate::model::GoogLeNet| m.variant) {
            anyhow::ensure!(
                model.variant == first,
                "{source}: ensemble members must share one variant"
            );
        } else {
            recorded_classes = loaded.class_names;
        }
        models.push(model);
    }
    let classes = models[0].num_classes();
    let nets = models
        .iter()
        .map(|model| args.precision.net(model, args.crop, args.pixels.budget()))
        .collect::<Result<Vec<_>, _>>()?;
    let dataset = match &args.labels {
        Some(labels) => FlatLabels::detect(labels, args.devkit_meta.as_deref())?.open(
            &args.data,
            super::class_table(recorded_classes.as_deref(), None, classes)?,
        )?,
        None => ImageFolder::open(&args.data)?,
    };
    anyhow::ensure!(
        dataset.classes().len() == classes,
        "{} has {} classes but the model has {classes}",
        args.data.display(),
        dataset.classes().len()
    );
    let bar = ProgressBar::new(dataset.len() as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} images  {per_sec}  ETA {eta}  {msg}")
            .expect("valid template"),
    );
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let start = Instant::now();
    let mut metrics = Metrics::new(classes);
    let mut skipped = Vec::new();
    for sample in dataset.samples() {
        match load_rgb_within(&sample.path, args.pixels.budget()) {
            Ok(image) => {
                let probs = predict(&image, &nets, args.crops, args.crop)
                    .with_context(|| sample.path.display().to_string())?;
                metrics.record(sample.label, &probs)?;
                if let Some(top1) = metrics.top1_accuracy() {
                    bar.set_message(format!("top-1 {:.2}%", top1 * 100.0));
                }
            }
            Err(err) if !args.strict => {
                bar.suspend(|| eprintln!("warning: skipped {err}"));
                skipped.push(err.to_string());
            }
            Err(err) => return Err(err.into()),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let report = metrics.report(args.confused);
    if args.json {
        let json = serde_json::json!({
            "data": args.data,
            "crops": args.crops.count(),
            "models": models.len(),
            "precision": args.precision.name(),
            "skipped": skipped,
            "seconds": seconds,
            "metrics": report,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0));
    let names = dataset.classes();
    println!(
        "{} images, {} crops each, {} model(s) in {}, {:.1} images/s",
        report.images,
        args.crops.count(),
        models.len(),
        args.precision.name(),
        report.images as f64 / seconds
    );
    println!(
        "top-1 accuracy {}  (error {})",
        pct(report.top1_accuracy),
        pct(report.top1_error)
    );
    println!(
        "top-{} accuracy {}  (error {})",
        report.k,
        pct(report.top5_accuracy),
        pct(report.top5_error)
    );
    if !skipped.is_empty() {
        println!("{} unreadable file(s) skipped", skipped.len());
    }
    println!("\n{:<40} {:>7} {:>9}", "class", "images", "top-1");
    for c in &report.per_class {
        println!(
            "{:<40} {:>7} {:>9}",
            names.label(c.class),
            c.images,
            pct(c.top1_accuracy)
        );
    }
    if !report.most_confused.is_empty() {
        println!("\nmost confused (actual -> predicted: count)");
        for p in &report.most_confused {
            println!(
                "  {} -> {}: {}",
                names.label(p.actual),
                names.label(p.predicted),
                p.count
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

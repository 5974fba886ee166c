//! `googlenet convert`: weights from one format to another.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use burn::prelude::Device;
use clap::Args;

use crate::model::Variant;
use crate::weights::{self, Layout, WeightsSource};

/// Reads PyTorch .pth (zip or legacy), safetensors (PyTorch or Keras layout) or the project's own
/// files, checks every key and shape against the variant, and writes the chosen format atomically.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Weights to read: a file (.pth, .pt or .safetensors), an http(s) URL, or a name from
    /// `googlenet weights list` (downloaded once into torch's cache).
    pub input: WeightsSource,
    /// File to write: .safetensors or .pth.
    pub output: PathBuf,
    /// Variant the weights belong to (when absent: from the file's metadata or the name; else
    /// paper).
    #[arg(long, value_enum)]
    pub variant: Option<Variant>,
    /// Key names and layouts of the output (default: native for .safetensors, torchvision for .pth).
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,
    /// Input size the paper and keras-seed heads were built for.
    #[arg(long, default_value_t = 224)]
    pub input_size: usize,
}

/// Runs `googlenet convert`: reads weights in one format and writes them in another.
pub fn run(args: ConvertArgs) -> Result<ExitCode> {
    let loaded = super::load_model(&args.input, args.variant, args.input_size, &Device::flex())?;
    let model = loaded.model;
    let layout = args
        .layout
        .unwrap_or(match args.output.extension().and_then(|e| e.to_str()) {
            Some("pth" | "pt") => Layout::Torchvision,
            _ => Layout::Native,
        });
    weights::save_with_classes(&model, &args.output, layout, loaded.class_names.as_deref())
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "wrote {} ({} variant, {} classes, {layout:?} layout)",
        args.output.display(),
        model.variant,
        model.num_classes()
    );
    Ok(ExitCode::SUCCESS)
}

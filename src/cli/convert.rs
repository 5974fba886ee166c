//! `googlenet convert`: weights from one format to another.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use burn::prelude::Device;
use clap::Args;

use crate::model::{GoogLeNetConfig, Variant};
use crate::weights::{self, Layout};

/// Reads PyTorch .pth (zip or legacy), safetensors (PyTorch or Keras layout) or the project's own
/// files, checks every key and shape against the variant, and writes the chosen format atomically.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Weight file to read (.pth, .pt or .safetensors).
    pub input: PathBuf,
    /// File to write: .safetensors or .pth.
    pub output: PathBuf,
    /// Variant the weights belong to (read from the file's metadata when it has some).
    #[arg(long, value_enum)]
    pub variant: Option<Variant>,
    /// Key names and layouts of the output (default: native for .safetensors, torchvision for .pth).
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,
    /// Input size the paper and keras-seed heads were built for.
    #[arg(long, default_value_t = 224)]
    pub input_size: usize,
}

pub fn run(args: ConvertArgs) -> Result<ExitCode> {
    let model = super::load_model(&args.input, args.variant, args.input_size, &Device::flex())?;
    let layout = args
        .layout
        .unwrap_or(match args.output.extension().and_then(|e| e.to_str()) {
            Some("pth" | "pt") => Layout::Torchvision,
            _ => Layout::Native,
        });
    weights::save(&model, &args.output, layout)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "wrote {} ({} variant, {} classes, {layout:?} layout)",
        args.output.display(),
        model.variant,
        model.num_classes()
    );
    Ok(ExitCode::SUCCESS)
}

/// The configuration to build before loading `path`: from its metadata, else from `variant` and
/// the class count its classifier has.
pub fn config_for(
    path: &std::path::Path,
    variant: Option<Variant>,
    input_size: usize,
) -> Result<GoogLeNetConfig> {
    if let Some(config) = weights::read_config(path)? {
        if let Some(v) = variant
            && v != config.variant
        {
            anyhow::bail!(
                "{} holds {} weights, not {v}",
                path.display(),
                config.variant
            );
        }
        return Ok(config);
    }
    let variant = variant.unwrap_or(Variant::Paper);
    let classes = weights::num_classes(path, variant)?;
    Ok(GoogLeNetConfig::new(variant)
        .with_num_classes(classes)
        .with_input_size(input_size))
}

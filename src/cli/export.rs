//! `googlenet export`: the inference network as ONNX, or the weights in torchvision's key layout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::prelude::Device;
use clap::{Args, ValueEnum};

use crate::device::{self, DeviceSpec};
use crate::export::{export_onnx, onnx_proto::OPSET, write_reference};
use crate::model::precision::{self, Precision};
use crate::model::{GoogLeNet, GoogLeNetConfig, Variant};
use crate::weights::{self, Layout, WeightsSource};

/// Writes the inference network (main classifier, no dropout) as an ONNX model — opset 17, input
/// "input" [batch, 3, size, size] normalised as the variant expects, output "logits" [batch,
/// classes], free batch dimension — or the weights in torchvision's key layout (.safetensors, .pth).
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// File to write: .onnx, .safetensors or .pth.
    pub output: PathBuf,
    /// Weights to export: a file (.pth, .safetensors or one written by `googlenet train`), an
    /// http(s) URL, or `torchvision` (also IMAGENET1K_V1, DEFAULT), downloaded once into torch's
    /// cache. Without it the variant's random initialisation is exported, which is only useful to
    /// test a runtime.
    #[arg(long)]
    pub weights: Option<WeightsSource>,
    /// Variant the weights belong to (when absent: from the file's metadata or the name; else
    /// paper).
    #[arg(long, value_enum)]
    pub variant: Option<Variant>,
    /// Output format (default: from the output's extension).
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// Side of the square input of the ONNX graph (default: the size the weights were made for, or
    /// 224). The keras-seed graph only works at the size its classifier was built for.
    #[arg(long)]
    pub input_size: Option<usize>,
    /// Also write OUTPUT with the extension ".reference.safetensors": these images (PNG/JPEG, each
    /// exactly input-size square, not resized), normalised as the variant expects ("input"), and
    /// the logits this program computes for them ("logits"). scripts/check_onnx.py checks
    /// onnxruntime against it. Give OUTPUT before this option.
    #[arg(long, num_args = 1.., value_name = "IMAGE")]
    pub reference_images: Vec<PathBuf>,
    /// Where the reference logits of --reference-images are computed: cpu, cuda:N or wgpu[:N]
    /// (cuda and wgpu need a binary built with that feature). Comparing two devices' references
    /// checks a GPU backend against the CPU (bench/gpu/run_gpu_checks.sh). The exported file does
    /// not depend on it.
    #[arg(long, default_value = "cpu", value_parser = device::parse_available)]
    pub device: DeviceSpec,
    /// Precision of the reference logits: the network in bf16 or f16 (BatchNorm in f32); the
    /// logits are written as f32. The exported file stays f32.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// ONNX model of the inference network.
    Onnx,
    /// safetensors in torchvision's state_dict names and layouts.
    Safetensors,
    /// PyTorch `torch.save(state_dict)` zip in torchvision's names and layouts.
    Pth,
}

impl ExportFormat {
    fn from_extension(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "onnx" => Some(Self::Onnx),
            "safetensors" => Some(Self::Safetensors),
            "pth" | "pt" => Some(Self::Pth),
            _ => None,
        }
    }
}

/// Runs `googlenet export`: the inference network as ONNX, or the weights in torchvision's key
/// layout.
pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let format = match args.format {
        Some(f) => f,
        None => ExportFormat::from_extension(&args.output).with_context(|| {
            format!(
                "{}: cannot tell the format from the extension; pass --format onnx|safetensors|pth",
                args.output.display()
            )
        })?,
    };
    let device = Device::flex();
    let (model, input_size) = build_model(&args, &device)?;
    // The reference first: a bad image then stops the export before anything is written.
    if !args.reference_images.is_empty() {
        let path = args.output.with_extension("reference.safetensors");
        let computed_on = format!("{} {}", args.device, args.precision);
        let reference_model = model.clone().to_device(&args.device.to_device()?);
        let reference_model = precision::apply(reference_model, args.precision)?;
        write_reference(
            &reference_model,
            &args.reference_images,
            input_size,
            &computed_on,
            &path,
        )
        .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "wrote {}: input and logits of {} images, computed on {computed_on}",
            path.display(),
            args.reference_images.len()
        );
    }
    match format {
        ExportFormat::Onnx => {
            let written = export_onnx(&model, input_size, &args.output)
                .with_context(|| format!("exporting {}", args.output.display()))?;
            eprintln!(
                "wrote {}: ONNX opset {OPSET}, {} variant, input [batch, 3, {input_size}, {input_size}], \
                 {} classes, {} nodes, {:.2} M parameters, {:.1} MB",
                args.output.display(),
                model.variant,
                model.num_classes(),
                written.nodes,
                written.parameters as f64 / 1e6,
                written.bytes as f64 / 1e6,
            );
        }
        ExportFormat::Safetensors | ExportFormat::Pth => {
            weights::save(&model, &args.output, Layout::Torchvision)
                .with_context(|| format!("writing {}", args.output.display()))?;
            eprintln!(
                "wrote {}: {} variant, {} classes, torchvision key layout",
                args.output.display(),
                model.variant,
                model.num_classes()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The model to export and the input size to export it for.
fn build_model(args: &ExportArgs, device: &Device) -> Result<(GoogLeNet, usize)> {
    let Some(source) = &args.weights else {
        let variant = args.variant.unwrap_or(Variant::Paper);
        let input_size = args.input_size.unwrap_or(224);
        eprintln!("note: no --weights given: exporting a randomly initialised {variant} network");
        let model = GoogLeNetConfig::new(variant)
            .with_input_size(input_size)
            .init(device)?;
        return Ok((model, input_size));
    };
    let model =
        super::load_model(source, args.variant, args.input_size.unwrap_or(224), device)?.model;
    let input_size = args.input_size.unwrap_or(model.input_size);
    Ok((model, input_size))
}

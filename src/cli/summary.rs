//! `googlenet summary`: the layer table of a variant.

use std::process::ExitCode;

use anyhow::Result;
use burn::prelude::Device;
use clap::Args;

use crate::model::{GoogLeNetConfig, Variant};

#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// Which reference to reproduce.
    #[arg(long, value_enum, default_value_t = Variant::Paper)]
    pub variant: Variant,
    /// Side of the square input image in pixels.
    #[arg(long, default_value_t = 224)]
    pub input_size: usize,
    /// Number of output classes.
    #[arg(long, default_value_t = 1000)]
    pub classes: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `googlenet summary`: the layer table of a variant.
pub fn run(args: SummaryArgs) -> Result<ExitCode> {
    let model = GoogLeNetConfig::new(args.variant)
        .with_num_classes(args.classes)
        .with_input_size(args.input_size)
        .init(&Device::flex())?;
    let summary = model.summary(args.input_size)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.table());
    }
    Ok(ExitCode::SUCCESS)
}

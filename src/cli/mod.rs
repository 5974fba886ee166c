//! The `googlenet` command line: one file per subcommand.

mod bench;
mod bench_data;
mod bench_model;
mod classify;
mod convert;
mod data;
mod error_chain;
mod eval;
mod export;
mod pixel_budget_arg;
mod summary;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// GoogLeNet (Inception v1): train, evaluate, classify and convert, in the paper's, torchvision's or
/// the Keras seed's variant, on CPU (burn-flex) without Python.
#[derive(Parser, Debug)]
#[command(name = "googlenet", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Parsed once at start-up, so the size difference between subcommands' arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the layer table: output shapes, parameters and multiply-adds (Table 1 of the paper).
    Summary(summary::SummaryArgs),
    /// Convert weights between PyTorch .pth, safetensors (PyTorch or Keras layout) and the native file.
    Convert(convert::ConvertArgs),
    /// Top-1/top-5 accuracy on a labelled image set, with 1, 10 or the paper's 144 crops.
    Eval(eval::EvalArgs),
    /// Print the most probable classes of images.
    Classify(classify::ClassifyArgs),
    /// Export the inference network as ONNX (opset 17, dynamic batch), or the weights in
    /// torchvision's layout.
    Export(export::ExportArgs),
    /// Inspect datasets: `data check DIR` scans a dataset and reports what it holds and which
    /// files cannot be used.
    Data(data::DataArgs),
    /// Speed measurements (not tests): `bench data DIR` times the training input pipeline.
    Bench(bench::BenchArgs),
    /// Train a variant with the paper's, the seed's or Caffe's recipe, with resumable checkpoints.
    Train(Box<train::TrainArgs>),
}

pub use error_chain::error_chain;

/// Parses the arguments, runs the subcommand and turns an error into a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Summary(args) => summary::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Classify(args) => classify::run(args),
        Command::Export(args) => export::run(args),
        Command::Data(args) => data::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Train(args) => train::run(*args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_chain::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// Builds the model a weight file describes (see `convert::config_for`) and loads the file.
pub fn load_model(
    path: &std::path::Path,
    variant: Option<crate::model::Variant>,
    input_size: usize,
    device: &burn::prelude::Device,
) -> anyhow::Result<crate::model::GoogLeNet> {
    let config = convert::config_for(path, variant, input_size)?;
    let model = config.init(device)?;
    Ok(crate::weights::load(model, path)?)
}

/// Names for a model's classes: a names file, else the names recorded in a native weight file,
/// else ImageNet's for a 1000-class model, else "class N".
pub fn class_table(
    weights: &std::path::Path,
    names_file: Option<&std::path::Path>,
    num_classes: usize,
) -> anyhow::Result<crate::data::ClassTable> {
    use crate::data::ClassTable;
    let table = if let Some(file) = names_file {
        ClassTable::from_file(file)?
    } else if let Some(names) = crate::weights::read_class_names(weights)? {
        ClassTable::from_folder_names(&names)
    } else if num_classes == crate::model::architecture::IMAGENET_CLASSES {
        ClassTable::imagenet()
    } else {
        ClassTable::from_folder_names(
            &(0..num_classes)
                .map(|i| format!("class {i}"))
                .collect::<Vec<_>>(),
        )
    };
    anyhow::ensure!(
        table.len() == num_classes,
        "the model has {num_classes} classes but the class names list {}",
        table.len()
    );
    Ok(table)
}

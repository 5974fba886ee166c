//! The `googlenet` command line: one file per subcommand.

mod convert;
mod device;
mod export;
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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the layer table: output shapes, parameters and multiply-adds (Table 1 of the paper).
    Summary(summary::SummaryArgs),
    /// Convert weights between PyTorch .pth, safetensors (PyTorch or Keras layout) and the native file.
    Convert(convert::ConvertArgs),
    /// Export the inference network as ONNX (opset 17, dynamic batch), or the weights in
    /// torchvision's layout.
    Export(export::ExportArgs),
    /// Train a variant with the paper's, the seed's or Caffe's recipe, with resumable checkpoints.
    Train(train::TrainArgs),
}

/// Parses the arguments, runs the subcommand and turns an error into a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Summary(args) => summary::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Export(args) => export::run(args),
        Command::Train(args) => train::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the model a weight file describes (see [`convert::config_for`]) and loads the file.
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

//! The `googlenet` command line: one file per subcommand.

mod bench;
mod bench_allreduce;
mod bench_data;
mod bench_model;
pub(crate) mod classify;
mod completions;
mod convert;
mod data;
mod error_chain;
mod eval;
mod export;
mod load;
mod pixel_budget_arg;
mod precision_arg;
mod serve;
mod summary;
mod train;
mod weights;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::weights::load_model;
pub use load::class_table;

/// GoogLeNet (Inception v1): train, evaluate, classify and convert, in the paper's, torchvision's or
/// the Keras seed's variant, on CPU (burn-flex) without Python.
#[derive(Parser, Debug)]
#[command(name = "googlenet", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand and its arguments.
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
    /// Pretrained weights by name: `weights list` shows them and where they are cached,
    /// `weights download NAME|URL` fetches one ahead of use.
    ///
    /// Named weights live where torch.hub keeps them, `$TORCH_HOME/hub/checkpoints/` (default
    /// `$XDG_CACHE_HOME/torch`, then `~/.cache/torch`), so a file PyTorch downloaded is used as it
    /// is. A missing one is downloaded on first use and checked against the sha256 prefix in its
    /// name. Without network, copy the file to the path `weights list` prints.
    /// `GOOGLENET_WEIGHTS_MIRROR=URL` fetches named files from `URL/FILE_NAME` instead.
    Weights(weights::WeightsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff).
    Man(completions::ManArgs),
    /// Serve the model over HTTP: a classification API with dynamic batching, health and
    /// Prometheus metrics, and a web page to drop photos on.
    Serve(serve::ServeArgs),
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
        Command::Weights(args) => weights::run(args),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_chain::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

//! The `googlenet` command line: one file per subcommand.

mod bench_model;
mod summary;

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
    /// Images per second and peak memory of inference or a training step (temporary name: belongs
    /// under `googlenet bench model`).
    BenchModel(bench_model::BenchModelArgs),
}

/// Parses the arguments, runs the subcommand and turns an error into a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Summary(args) => summary::run(args),
        Command::BenchModel(args) => bench_model::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

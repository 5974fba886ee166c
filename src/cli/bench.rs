//! `googlenet bench ...`: speed measurements, one file per target (`bench_data.rs`, ...).

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::{bench_allreduce, bench_data, bench_model};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub target: BenchTarget,
}

#[derive(Subcommand, Debug)]
pub enum BenchTarget {
    /// Images per second of the training input pipeline: decode + random-resized crop 224 +
    /// flip + normalise into batches (the work of bench/data_pipeline.py's torchvision side).
    Data(bench_data::BenchDataArgs),
    /// Images per second and peak memory of inference or of a training step of the network.
    Model(bench_model::BenchModelArgs),
    /// Milliseconds of one all-reduce of the network's gradients over the ranks of an MPI job
    /// (a build with --features mpi, under mpirun -np N).
    Allreduce(bench_allreduce::BenchAllreduceArgs),
}

/// Runs `googlenet bench` on the target asked for.
pub fn run(args: BenchArgs) -> Result<ExitCode> {
    match args.target {
        BenchTarget::Data(args) => bench_data::run(args),
        BenchTarget::Model(args) => bench_model::run(args),
        BenchTarget::Allreduce(args) => bench_allreduce::run(args),
    }
}

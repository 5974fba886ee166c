//! `googlenet bench allreduce`: the time of one all-reduce of the network's gradients (every
//! trainable value, flattened, f32) over the ranks of the job it is launched into, as each
//! training step of a distributed run does. Run it under `mpirun -np N` with a build that has
//! the `mpi` feature; alone it measures nothing and says so.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::prelude::*;
use clap::Args;
use serde::Serialize;

use crate::model::{GoogLeNetConfig, Variant};
use crate::train::distributed::{self, flat};

#[derive(Args, Debug)]
pub struct BenchAllreduceArgs {
    /// The network whose gradients are summed (its trainable values set the size).
    #[arg(long, value_enum, default_value_t = Variant::Paper)]
    pub variant: Variant,
    /// Classes of the final layer.
    #[arg(long, default_value_t = 1000)]
    pub classes: usize,
    /// Timed all-reduces (after 2 untimed ones).
    #[arg(long, default_value_t = 20)]
    pub repeats: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct AllreduceResult {
    ranks: usize,
    library: String,
    values: usize,
    megabytes: f64,
    repeats: usize,
    median_seconds: f64,
    min_seconds: f64,
    /// Bytes each rank sends per second under a ring all-reduce (2(N-1)/N of the buffer).
    bus_gigabytes_per_second: f64,
}

/// Runs `googlenet bench allreduce`: times the gradients' all-reduce over the ranks of the run.
pub fn run(args: BenchAllreduceArgs) -> Result<ExitCode> {
    let (world, _membership) = distributed::join();
    if !world.is_distributed() {
        bail!(
            "bench allreduce measures an all-reduce over the ranks of an MPI job: build with \
             --features mpi and start it with mpirun -np 2 (or more)"
        );
    }
    let device = Device::flex().autodiff();
    let model = GoogLeNetConfig::new(args.variant)
        .with_num_classes(args.classes)
        .init(&device)?;
    let values = flat::trainable_len(&model);
    let mut buffer: Vec<f32> = (0..values).map(|i| (i % 97) as f32 * 1e-3).collect();
    for _ in 0..2 {
        world.all_reduce_sum_f32(&mut buffer);
    }
    let mut times = Vec::with_capacity(args.repeats);
    for _ in 0..args.repeats.max(1) {
        world.barrier();
        let started = Instant::now();
        world.all_reduce_sum_f32(&mut buffer);
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let ranks = world.world_size();
    let bytes = 4.0 * values as f64;
    let median = times[times.len() / 2];
    let result = AllreduceResult {
        ranks,
        library: world.describe(),
        values,
        megabytes: bytes / 1e6,
        repeats: times.len(),
        median_seconds: median,
        min_seconds: times[0],
        bus_gigabytes_per_second: 2.0 * (ranks - 1) as f64 / ranks as f64 * bytes / median / 1e9,
    };
    if world.is_root() {
        if args.json {
            println!("{}", serde_json::to_string(&result)?);
        } else {
            println!(
                "all-reduce of {} f32 ({:.1} MB) over {} ranks ({}): median {:.2} ms, min {:.2} \
                 ms over {} repeats; {:.2} GB/s per rank (ring: 2(N-1)/N of the buffer)",
                result.values,
                result.megabytes,
                ranks,
                result.library,
                1e3 * median,
                1e3 * result.min_seconds,
                result.repeats,
                result.bus_gigabytes_per_second
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

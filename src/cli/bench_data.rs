//! `googlenet bench data DIR`: images/s of the training pipeline through [`Loader`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::check::splits;
use crate::data::{ImageFolder, Loader, LoaderConfig, TrainTransform, Transform};
use crate::model::Variant;

#[derive(Args, Debug)]
pub struct BenchDataArgs {
    /// The dataset folder (its train/ split when it has one).
    pub dir: PathBuf,
    /// Decoding threads; 0 = one per core (what feeding a GPU can use).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Timed passes over the images (after one untimed warm-up pass).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Images per batch.
    #[arg(long, alias = "batch", default_value_t = 32)]
    pub batch_size: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Rates {
    min: f64,
    median: f64,
    max: f64,
}

#[derive(serde::Serialize)]
struct BenchReport {
    dir: PathBuf,
    threads: usize,
    images: usize,
    repeats: usize,
    batch_size: usize,
    skipped: usize,
    images_per_sec: Rates,
    images_per_sec_per_thread: f64,
    /// Images per second of CPU time of all the process's threads over the timed passes: the
    /// per-core figure, steadier than wall time when other work shares the machine.
    images_per_cpu_sec: f64,
}

/// Runs `googlenet bench data`: times the training input pipeline on a dataset folder.
pub fn run(args: BenchDataArgs) -> Result<ExitCode> {
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let dir = splits(&args.dir)
        .into_iter()
        .next()
        .map(|(_, path)| path)
        .unwrap_or(args.dir.clone());
    let dataset = ImageFolder::open(&dir)?;
    if dataset.is_empty() {
        bail!("{}: no images", dir.display());
    }
    let config = LoaderConfig {
        shuffle: true,
        threads,
        ..LoaderConfig::new(
            args.batch_size,
            Transform::Train(TrainTransform::new(224)),
            Variant::Torchvision,
        )
    };
    let loader = Loader::new(dataset, config)?;
    let bar = ProgressBar::new(args.repeats.max(1) as u64 + 1);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} pass {pos}/{len} {msg}",
    )?);
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut rates = Vec::new();
    let mut images = 0;
    let repeats = args.repeats.max(1);
    let (mut cpu, mut timed_images) = (0.0, 0);
    for pass in 0..=repeats {
        let start = Instant::now();
        let cpu_start = super::bench_model::cpu_seconds();
        images = 0;
        for batch in loader.epoch(pass) {
            images += batch?.indices.len();
        }
        let rate = images as f64 / start.elapsed().as_secs_f64();
        if pass > 0 {
            rates.push(rate);
            cpu += super::bench_model::cpu_seconds() - cpu_start;
            timed_images += images;
        }
        bar.set_message(format!("{rate:.0} images/s"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let report = BenchReport {
        dir,
        threads,
        images,
        repeats,
        batch_size: args.batch_size,
        skipped: loader.skipped().len(),
        images_per_sec: Rates {
            min: rates[0],
            median,
            max: rates[rates.len() - 1],
        },
        images_per_sec_per_thread: median / threads as f64,
        images_per_cpu_sec: timed_images as f64 / cpu.max(f64::MIN_POSITIVE),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} images, {} thread(s): {:.1} images/s median (min {:.1}, max {:.1}) over {} passes, \
             {:.1} images per CPU-second",
            report.images,
            report.threads,
            median,
            report.images_per_sec.min,
            report.images_per_sec.max,
            report.repeats,
            report.images_per_cpu_sec
        );
    }
    Ok(ExitCode::SUCCESS)
}

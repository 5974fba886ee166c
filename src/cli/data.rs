//! `googlenet data check DIR`: scan a dataset and report classes, counts, formats and problems.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::FlatLabels;
use crate::data::check::{CheckReport, check, open_splits};

#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Decode every image of a dataset (DIR/train/<class>/*, DIR/val/<class>/*, or DIR/<class>/*)
    /// and report the classes (in label order), images per class and split, formats found by
    /// content, and every file that cannot be used with the reason. Exits with 1 when any file
    /// cannot be used.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The dataset folder.
    pub dir: PathBuf,
    /// Labels of a flat validation folder (DIR/val, or DIR itself without train/ and val/):
    /// Kaggle's LOC_val_solution.csv or the devkit's ILSVRC2012_validation_ground_truth.txt
    /// (with the devkit's meta.mat beside it, or --devkit-meta).
    #[arg(long)]
    pub val_labels: Option<PathBuf>,
    /// The devkit's data/meta.mat, when it is not beside --val-labels.
    #[arg(long, requires = "val_labels")]
    pub devkit_meta: Option<PathBuf>,
    /// Fail with an error naming the first file that cannot be used instead of a report that
    /// lists every one.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub pixels: super::pixel_budget_arg::PixelBudgetArg,
    /// Decoding threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Runs `googlenet data` and its subcommand.
pub fn run(args: DataArgs) -> Result<ExitCode> {
    match args.command {
        DataCommand::Check(args) => run_check(args),
    }
}

fn run_check(args: CheckArgs) -> Result<ExitCode> {
    let flat_val = args
        .val_labels
        .as_deref()
        .map(|labels| FlatLabels::detect(labels, args.devkit_meta.as_deref()))
        .transpose()?;
    let folders = open_splits(&args.dir, flat_val.as_ref())?;
    let total: usize = folders.iter().map(|(_, f)| f.len()).sum();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} checking [{bar:30}] {pos}/{len} images {per_sec} ETA {eta}",
        )?
        .progress_chars("=> "),
    );
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(threads) = args.threads {
        pool = pool.num_threads(threads.max(1));
    }
    let pool = pool.build().context("starting decoding threads")?;
    let report = pool.install(|| check(&args.dir, &folders, args.pixels.budget(), &|| bar.inc(1)));
    bar.finish_and_clear();
    if args.strict
        && let Some(problem) = report.splits.iter().flat_map(|s| &s.problems).next()
    {
        bail!("{}: {}", problem.path.display(), problem.reason);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.problems() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(report: &CheckReport) {
    println!("dataset {}", report.root.display());
    for split in &report.splits {
        println!(
            "\nsplit {}: {} classes, {} images ({})",
            split.split,
            split.classes.len(),
            split.images,
            split
                .formats
                .iter()
                .map(|(f, n)| format!("{n} {f}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if split.misnamed > 0 {
            println!(
                "  {} file(s) whose content is not what their extension says (used by content)",
                split.misnamed
            );
        }
        println!("  {:>5}  {:<10}  {:>7}  name", "label", "wnid", "images");
        for (i, class) in split.classes.iter().enumerate() {
            println!(
                "  {i:>5}  {:<10}  {:>7}  {}",
                class.wnid, class.images, class.name
            );
        }
        for problem in &split.problems {
            println!(
                "  cannot use {}: {}",
                problem.path.display(),
                problem.reason
            );
        }
    }
    let problems = report.problems();
    if problems == 0 {
        println!("\nevery file is usable");
    } else {
        println!("\n{problems} file(s) cannot be used");
    }
}

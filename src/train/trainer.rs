//! The training loop: batches in an order drawn from the run's seed, the recipe's loss, SGD, the
//! Polyak average, validation, metrics, curves and checkpoints after every epoch; a clean stop
//! on Ctrl-C and a clear one on a non-finite loss. What a run is built from (its options, model
//! and optimiser) is here too.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::prelude::*;

use super::checkpoint::Checkpoints;
use super::checkpoint_schedule::{CheckpointEvery, CheckpointSchedule};
use super::config::TrainConfig;
use super::data_parallel::DataParallelError;
use super::distributed;
use super::distributed::buckets::Buckets;
use super::error::{TrainError, io_err};
use super::metrics::{EpochRecord, EpochSums, append_csv, rewrite_csv};
use super::optimizer_step::{job_step, train_step};
use super::outcome::Outcome;
use super::output::check_writable;
use super::polyak::Polyak;
use super::progress::{epoch_lines, progress_bar};
use super::run_outputs::{prune, save, write_epoch_outputs};
use super::run_start::start;
use super::schedule::Progress;
use super::seeds::{AUGMENT, DROPOUT, epoch_order};
use super::session::Session;
use super::sgd::FusedSgd;
use super::small_batch::{Dropped, smallest_trainable_batch};
use super::source::{Split, TrainData, mix};
use super::state::TrainState;
use super::step::{Stepper, TrainEngine};
use crate::engine::Bf16Kernel;
use crate::model::precision::Precision;
use crate::model::summary::SummaryError;
use crate::model::{GoogLeNet, GoogLeNetConfig};

/// Where a run writes and how it behaves, besides its hyperparameters.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The run's output folder: checkpoints, metrics, curves and weights.
    pub out: PathBuf,
    /// Continue the run in `out` from its latest checkpoint.
    pub resume: bool,
    /// Initial weights (any file [`WeightsFile`](crate::weights::WeightsFile) reads) instead of
    /// the variant's initialisation; with another number of classes, all but the classifiers.
    pub weights: Option<PathBuf>,
    /// The device that holds the model (autodiff is added here), validates and checkpoints.
    pub device: Device,
    /// Data-parallel replicas: with two or more, every batch is split over these devices (each
    /// a contiguous share, gradients summed); `device` is normally the first. Empty or one
    /// device: every step runs on `device`.
    pub replicas: Vec<Device>,
    /// The precision of the training steps' forward and backward passes (weights, optimizer
    /// state, BatchNorm and validation stay f32).
    pub precision: Precision,
    /// Which code runs the steps; `None`: the fast CPU path where it applies, else burn.
    pub engine: Option<TrainEngine>,
    /// Stop after this many optimiser steps of this invocation, with a checkpoint.
    pub max_steps: Option<u64>,
    /// Checkpoints within an epoch, besides the one at its end.
    pub checkpoint_every: CheckpointEvery,
    /// How a job of several processes splits the gradients' all-reduce
    /// ([`distributed::buckets`]).
    pub buckets: Buckets,
    /// Set (by Ctrl-C) to stop after the current step with a checkpoint.
    pub stop: Arc<AtomicBool>,
    /// No progress bars and no per-epoch lines.
    pub quiet: bool,
}

impl TrainOptions {
    /// A fresh run into `out` on `device`: f32, no replicas, no step limit, a checkpoint every
    /// 30 minutes, not quiet.
    pub fn new(out: PathBuf, device: Device) -> TrainOptions {
        TrainOptions {
            out,
            resume: false,
            weights: None,
            device,
            replicas: Vec::new(),
            precision: Precision::F32,
            engine: None,
            max_steps: None,
            checkpoint_every: CheckpointEvery::default(),
            buckets: Buckets::default(),
            stop: Arc::new(AtomicBool::new(false)),
            quiet: false,
        }
    }
}

/// The SGD optimiser of `config`: PyTorch's update (weight decay added to the gradient, then
/// momentum with dampening 0), fused on the CPU ([`FusedSgd`]).
pub fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    FusedSgd::new(config.momentum, config.weight_decay).init()
}

/// Builds the network `config` describes on `device`.
pub fn build_model(config: &TrainConfig, device: &Device) -> Result<GoogLeNet, SummaryError> {
    let model = GoogLeNetConfig::new(config.variant)
        .with_num_classes(config.num_classes)
        .with_input_size(config.input_size)
        .init(device)?;
    Ok(if config.dropout {
        model
    } else {
        model.without_dropout()
    })
}

/// Everything that changes as the run goes.
pub(super) struct Run {
    pub(super) model: GoogLeNet,
    pub(super) optimizer: ModuleOptimizer,
    pub(super) polyak: Option<Polyak>,
    pub(super) state: TrainState,
    /// The checkpoint a resumed run loaded, kept while the run lasts: its tensors are read from
    /// the files when first used.
    pub(super) _resumed_from: Option<distributed::checkpoint_copy::SharedCheckpoint>,
}

/// Trains `config` on `data`, writing into `options.out`.
pub fn train(
    config: &TrainConfig,
    data: &dyn TrainData,
    options: &TrainOptions,
) -> Result<Outcome, TrainError> {
    train_session(config, data, options).map(|(outcome, _)| outcome)
}

/// As [`train`], with what this invocation's steps did ([`Session`]).
pub fn train_session(
    config: &TrainConfig,
    data: &dyn TrainData,
    options: &TrainOptions,
) -> Result<(Outcome, Session), TrainError> {
    config.validate()?;
    check_data(config, data)?;
    // The job this process belongs to: rank 0 of 1 unless `googlenet train` joined an MPI job.
    let world = distributed::world();
    distributed::agreement::check_same_run(&world, config, data)?;
    for device in std::iter::once(&options.device).chain(&options.replicas) {
        options.precision.check(device)?;
    }
    if options.replicas.len() > config.batch_size {
        return Err(DataParallelError::BatchTooSmall {
            batch: config.batch_size,
            replicas: options.replicas.len(),
        }
        .into());
    }
    let smallest = smallest_trainable_batch(config.variant, options.replicas.len());
    if config.batch_size < smallest {
        return Err(TrainError::Mismatch(format!(
            "a batch of {} images is too small: the {} variant's BatchNorm needs at least {smallest} \
             (2 per replica)",
            config.batch_size,
            config.variant.name(),
        )));
    }
    let out = &options.out;
    let checkpoints = Checkpoints::new(out);
    let config_path = out.join("config.json");
    if world.is_root() && !options.resume && config_path.exists() {
        return Err(TrainError::AlreadyARun(out.display().to_string()));
    }
    let train_device = options.device.clone().autodiff();
    let mut run = start(config, options, &checkpoints, &world)?;
    let metrics_path = out.join("metrics.csv");
    if world.is_root() {
        let needed = super::checkpoint::estimated_bytes(&run.model, run.polyak.is_some());
        check_writable(out, needed)?;
        checkpoints.remove_leftovers().map_err(TrainError::Resume)?;
        config.save(&config_path)?;
        if options.resume {
            rewrite_csv(&metrics_path, &run.state.history).map_err(io_err(&metrics_path))?;
            // A run stopped between an epoch's checkpoint and the files written after it: written
            // now, so that they match the checkpoint.
            if run.state.batch == 0 && run.state.epoch > 0 {
                let best = run.state.best.as_ref().map(|b| b.checkpoint.as_str());
                let improved = best == Some(Checkpoints::name(run.state.step).as_str());
                let evaluated = match &run.polyak {
                    Some(p) => p.model().clone(),
                    None => run.model.valid(),
                };
                let names = data.class_names();
                write_epoch_outputs(out, &run.state.history, &evaluated, improved, &names)?;
            }
        }
    }
    let say = |line: String| {
        if !options.quiet {
            println!("{line}");
        }
    };
    say(format!("training on {}", data.describe()));
    say(format!(
        "configuration (saved to {}):",
        config_path.display()
    ));
    if !options.quiet {
        print!("{}", config.describe());
    }
    if options.resume {
        say(format!(
            "resuming at epoch {}, batch {} (step {})",
            run.state.epoch + 1,
            run.state.batch,
            run.state.step
        ));
    }

    let stepper = Stepper::new(
        &options.replicas,
        config.loss,
        options.precision,
        options.engine,
        &run.model,
        &train_device,
    )?;
    if stepper.engine() == TrainEngine::Fast {
        say("steps on the fast CPU training path (--engine burn for burn's autodiff)".into());
    }
    if stepper.replicas() > 1 {
        say(format!(
            "data parallel: each batch of {} split over {} replicas ({}); steps in {}",
            config.batch_size,
            stepper.replicas(),
            options
                .replicas
                .iter()
                .map(|d| format!("{d:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            options.precision
        ));
    } else if options.precision != Precision::F32 {
        let products = match stepper.engine() {
            TrainEngine::Fast => format!(
                ", the convolutions' products on {}",
                match Bf16Kernel::detect() {
                    Bf16Kernel::Amx => "AMX tiles",
                    Bf16Kernel::Avx512Bf16 => "AVX512-BF16's dot products",
                    Bf16Kernel::Portable => "f32 kernels, their operands rounded to bf16",
                }
            ),
            TrainEngine::Burn => String::new(),
        };
        say(format!(
            "steps in {}{products} (weights, BatchNorm and validation in f32)",
            options.precision
        ));
    }
    let mut session = Session {
        engine: Some(stepper.engine()),
        ..Session::default()
    };
    let reached_max = |session: &Session| options.max_steps.is_some_and(|m| session.steps >= m);

    let train_len = data.len(Split::Train);
    let batches_per_epoch = train_len.div_ceil(config.batch_size);
    let total_iterations = (batches_per_epoch * config.epochs) as u64;
    let mut last_checkpoint = checkpoints.latest().map_err(TrainError::Resume)?;
    let mut schedule = CheckpointSchedule::new(options.checkpoint_every, run.state.step);
    let kept = |last: &Option<PathBuf>| match last {
        Some(p) => format!("the last good checkpoint {} is intact", p.display()),
        None => "no checkpoint had been written yet".to_string(),
    };

    while run.state.epoch < config.epochs {
        let epoch = run.state.epoch;
        let epoch_start = Instant::now();
        let order = epoch_order(config.seed, epoch, train_len);
        let augment_seed = mix(config.seed ^ AUGMENT, epoch as u64);
        let lr = config.schedule.learning_rate(
            config.base_lr,
            Progress {
                epoch,
                iteration: run.state.step,
                total_iterations,
            },
        );
        let bar = progress_bar(options.quiet, batches_per_epoch, epoch, config.epochs);
        bar.set_position(run.state.batch as u64);
        let mut train_seconds = run.state.partial_seconds;
        let mut dropped = Dropped::default();
        for batch in run.state.batch..batches_per_epoch {
            let step_start = Instant::now();
            let indices =
                &order[batch * config.batch_size..((batch + 1) * config.batch_size).min(train_len)];
            let global_batch = indices.len();
            let indices = distributed::shard::shard(indices, world.world_size(), world.rank());
            let host = data.fetch(Split::Train, indices, augment_seed)?;
            let images = distributed::step::global_images(&world, host.len());
            // Too few images for BatchNorm on some rank, or none at all (every file was skipped):
            // every rank leaves the batch out.
            if images == 0 || world.any(!host.is_empty() && host.len() < smallest) {
                if images > 0 {
                    dropped.add(images);
                    session.dropped.add(images);
                }
                run.state.batch = batch + 1;
                bar.inc(1);
                continue;
            }
            let lr = config.schedule.learning_rate(
                config.base_lr,
                Progress {
                    epoch,
                    iteration: run.state.step,
                    total_iterations,
                },
            );
            let dropout_seed = mix(config.seed ^ DROPOUT, run.state.step);
            stepper.seed(
                &train_device,
                distributed::step::dropout_seed(&world, dropout_seed, global_batch),
            );
            let step = if world.steps_as_job() {
                let on = (
                    &train_device,
                    &stepper,
                    options.precision,
                    &world,
                    options.buckets,
                );
                job_step(config, &mut run, &host, images, lr, on)?.map(|(loss, [waited, busy])| {
                    session.allreduce_seconds.push(waited);
                    session.allreduce_busy_seconds.push(busy);
                    loss
                })
            } else {
                train_step(
                    config,
                    &mut run,
                    &host,
                    lr,
                    &train_device,
                    &stepper,
                    options.precision,
                )?
            };
            let loss = match step {
                Ok(loss) => loss,
                Err((value, parts)) => {
                    bar.abandon();
                    return Err(TrainError::NonFinite {
                        value,
                        step: run.state.step + 1,
                        epoch: epoch + 1,
                        batch: batch + 1,
                        parts,
                        kept: kept(&last_checkpoint),
                    });
                }
            };
            run.state.batch = batch + 1;
            run.state.step += 1;
            let step_seconds = step_start.elapsed().as_secs_f64();
            session.record(images, step_seconds, loss);
            train_seconds += step_seconds;
            run.state.partial_seconds = train_seconds;
            let stats = run.state.partial.stats();
            bar.set_message(format!(
                "loss {:.4} top-1 {:5.1}% {:6.1} img/s",
                stats.loss,
                100.0 * stats.main.top1,
                run.state.partial.images as f64 / train_seconds.max(1e-9)
            ));
            bar.inc(1);
            let interrupted = world.any(options.stop.load(Ordering::SeqCst));
            if (interrupted || reached_max(&session)) && run.state.batch < batches_per_epoch {
                bar.abandon();
                run.model = distributed::batch_norm::average_running_stats(
                    &world,
                    run.model,
                    run.polyak.as_mut(),
                );
                let checkpoint = save(&checkpoints, &run, &last_checkpoint, &world)?;
                let outcome = Outcome::stopped(
                    interrupted,
                    checkpoint,
                    epoch + 1,
                    run.state.batch,
                    run.state.step,
                );
                return Ok((outcome, session));
            }
            // Every rank takes part in a checkpoint, so they agree on when one is due (a duration
            // ends at slightly different steps on each rank's clock).
            if world.any(schedule.due(run.state.step)) && run.state.batch < batches_per_epoch {
                run.model = distributed::batch_norm::average_running_stats(
                    &world,
                    run.model,
                    run.polyak.as_mut(),
                );
                let path = save(&checkpoints, &run, &last_checkpoint, &world)?;
                last_checkpoint = Some(path);
                if world.is_root() {
                    prune(&checkpoints, config, &run, &last_checkpoint)?;
                }
                schedule.written(run.state.step);
            }
        }
        bar.finish_and_clear();
        if let Some(note) = dropped.note(epoch + 1, smallest) {
            eprintln!("{note}");
        }

        let train_stats = run.state.partial.stats();
        let images_per_second = run.state.partial.images as f64 / train_seconds.max(1e-9);
        run.model =
            distributed::batch_norm::average_running_stats(&world, run.model, run.polyak.as_mut());
        let evaluated = match &run.polyak {
            Some(p) => p.model().clone(),
            None => run.model.valid(),
        };
        let val_stats =
            distributed::validation::evaluate(&world, &evaluated, config, data, &options.device)?;
        let record = EpochRecord {
            epoch: epoch + 1,
            learning_rate: lr,
            train: train_stats,
            val: val_stats,
            images_per_second,
            seconds: epoch_start.elapsed().as_secs_f64() + run.state.partial_seconds
                - train_seconds.min(run.state.partial_seconds),
        };
        run.state.epoch += 1;
        run.state.batch = 0;
        run.state.partial = EpochSums::default();
        run.state.partial_seconds = 0.0;
        let name = Checkpoints::name(run.state.step);
        let improved = run.state.record_epoch(record, &name);
        let path = save(&checkpoints, &run, &last_checkpoint, &world)?;
        last_checkpoint = Some(path.clone());
        if world.is_root() {
            prune(&checkpoints, config, &run, &last_checkpoint)?;
            append_csv(&metrics_path, &record).map_err(io_err(&metrics_path))?;
            let names = data.class_names();
            write_epoch_outputs(out, &run.state.history, &evaluated, improved, &names)?;
        }
        schedule.written(run.state.step);
        say(epoch_lines(&record, config.epochs, improved));
        let interrupted = world.any(options.stop.load(Ordering::SeqCst));
        if (interrupted || reached_max(&session)) && run.state.epoch < config.epochs {
            let outcome =
                Outcome::stopped(interrupted, path, run.state.epoch + 1, 0, run.state.step);
            return Ok((outcome, session));
        }
    }
    let outcome = Outcome::Finished {
        epochs: config.epochs,
        best: run.state.best.clone(),
        model: out.join("model.safetensors"),
    };
    Ok((outcome, session))
}

fn check_data(config: &TrainConfig, data: &dyn TrainData) -> Result<(), TrainError> {
    let classes = data.class_names().len();
    if classes != config.num_classes {
        return Err(TrainError::Mismatch(format!(
            "the configuration has {} classes, the data {} ({})",
            config.num_classes,
            classes,
            data.describe()
        )));
    }
    if data.side() != config.input_size {
        return Err(TrainError::Mismatch(format!(
            "the configuration's input size is {} px, the data gives {} px images",
            config.input_size,
            data.side()
        )));
    }
    for split in [Split::Train, Split::Val] {
        if data.len(split) == 0 {
            return Err(TrainError::Mismatch(format!(
                "the {split:?} split of {} has no images",
                data.describe()
            )));
        }
    }
    Ok(())
}

//! `googlenet train`: train a variant with a recipe, on an ImageNet-layout folder or on the
//! embedded synthetic shapes.

mod args;
mod json_summary;
mod new_run;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};

use crate::train::distributed::buckets::Buckets;
use crate::train::distributed::{self, Collective};
use crate::train::{Outcome, TrainConfig, TrainError, TrainOptions};

pub use args::{AllReduceOn, TrainArgs};
use json_summary::Summary;
use new_run::{new_config, open_data};

/// Trains as rank r of the job this process was launched into (`mpirun`, `srun`: a build with
/// the `mpi` feature), or alone. In a job, an error that not every rank met ends the whole job
/// with a message naming this rank ([`distributed::fault`]).
pub fn run(args: TrainArgs) -> Result<ExitCode> {
    let (world, _membership) = distributed::join();
    distributed::fault::abort_on_panic(&world);
    let result = train(args, &world);
    if let Err(error) = &result
        && world.is_distributed()
    {
        let agreed = matches!(
            error.downcast_ref::<TrainError>(),
            Some(TrainError::Distributed(e)) if e.is_agreed()
        );
        if !agreed {
            distributed::fault::abort_job(&world, &format!("{error:#}"), 1);
        }
    }
    result
}

fn train(args: TrainArgs, world: &Collective) -> Result<ExitCode> {
    let specs = match &args.devices {
        Some(list) => list.0.clone(),
        None => vec![args.device],
    };
    if args.allreduce == AllReduceOn::Nccl && !cfg!(feature = "nccl") {
        bail!(NO_NCCL);
    }
    let device = specs[0].to_device()?;
    let replicas = match specs.len() {
        1 => Vec::new(),
        _ => specs
            .iter()
            .map(|s| s.to_device())
            .collect::<Result<Vec<_>, _>>()?,
    };
    if args.max_steps == Some(0) {
        bail!("--max-steps must be at least 1");
    }
    let world = &gradient_collective(args.allreduce, &specs, world)?;
    let (config, out) = match &args.resume {
        Some(dir) => {
            let flags = args.hyperparameter_flags();
            if !flags.is_empty() {
                bail!(
                    "--resume continues with the configuration saved in {}; drop {}",
                    dir.join("config.json").display(),
                    flags.join(", ")
                );
            }
            let path = dir.join("config.json");
            // Rank 0's: the output folder need not be shared between the machines of a job.
            let mut config = distributed::broadcast::broadcast_config(world, || {
                TrainConfig::load(&path)
                    .with_context(|| format!("{} does not hold a run to resume", dir.display()))
            })?;
            if let Some(epochs) = args.epochs {
                config.epochs = epochs;
            }
            if let Some(data) = &args.data
                && Some(data) != config.data.as_ref()
            {
                bail!(
                    "the run in {} was trained on {}, not {}",
                    dir.display(),
                    config
                        .data
                        .as_ref()
                        .map_or("the embedded shapes".into(), |d| d.display().to_string()),
                    data.display()
                );
            }
            (config, dir.clone())
        }
        None => (new_config(&args)?, args.out.clone()),
    };
    let data = open_data(&config, args.strict, args.pixels.budget())?;

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: stopping after the current step and writing a checkpoint...");
    })
    .context("installing the Ctrl-C handler")?;
    distributed::signals::stop_on_signals(world, stop.clone());

    let options = TrainOptions {
        out: out.clone(),
        resume: args.resume.is_some(),
        weights: args
            .weights
            .as_ref()
            .map(|source| source.resolve(!args.quiet))
            .transpose()?,
        device,
        replicas,
        precision: args.precision,
        engine: args.engine,
        max_steps: args.max_steps,
        checkpoint_every: args.checkpoint_every,
        buckets: Buckets::megabytes(args.bucket_mb),
        stop,
        quiet: args.quiet || args.json || !world.is_root(),
    };
    if world.is_distributed() && world.is_root() && !options.quiet {
        println!(
            "distributed: {} ranks ({}); each takes 1/{} of every batch of {}",
            world.world_size(),
            world.describe(),
            world.world_size(),
            config.batch_size
        );
    }
    let (outcome, session) = crate::train::train_session(&config, data.as_ref(), &options)?;
    if !world.is_root() {
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        let mut summary = Summary::new(&outcome, &session, &specs, args.precision, &config);
        summary.world_size = world.world_size();
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(ExitCode::SUCCESS);
    }
    match outcome {
        Outcome::Finished {
            epochs,
            best,
            model,
        } => {
            println!("finished {epochs} epochs; weights in {}", model.display());
            if let Some(b) = best {
                println!(
                    "best validation top-1 {:.2}% at epoch {} (checkpoint {}, weights {})",
                    100.0 * b.val_top1,
                    b.epoch,
                    b.checkpoint,
                    out.join("best.safetensors").display()
                );
            }
            println!(
                "metrics: {}  curves: {}",
                out.join("metrics.csv").display(),
                out.join("curves.png").display()
            );
        }
        Outcome::Interrupted {
            checkpoint,
            epoch,
            batch,
            step,
        } => {
            println!(
                "stopped at epoch {epoch}, batch {batch} (step {step}); checkpoint {}",
                checkpoint.display()
            );
            println!("resume with: googlenet train --resume {}", out.display());
        }
        Outcome::ReachedMaxSteps {
            checkpoint,
            epoch,
            batch,
            step,
        } => {
            println!(
                "reached --max-steps at epoch {epoch}, batch {batch} (step {step}): {:.1} img/s, \
                 loss {:.4} -> {:.4}; checkpoint {}",
                session.images_per_second(),
                session.first_mean_loss().unwrap_or(f64::NAN),
                session.last_mean_loss().unwrap_or(f64::NAN),
                checkpoint.display()
            );
            println!("continue with: googlenet train --resume {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The job whose all-reduce sums the gradients: `world` itself, or with `--allreduce nccl` the
/// job on NCCL on this process's GPU ([`distributed::nccl`]).
fn gradient_collective(
    allreduce: AllReduceOn,
    specs: &[crate::device::DeviceSpec],
    world: &Collective,
) -> Result<Collective> {
    if allreduce == AllReduceOn::Mpi {
        return Ok(world.clone());
    }
    let [crate::device::DeviceSpec::Cuda(_index)] = specs else {
        bail!(
            "--allreduce nccl sums the gradients on a CUDA GPU: give each process one with \
             --device cuda:N (one process per GPU), not {}",
            specs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
    };
    #[cfg(feature = "nccl")]
    return distributed::nccl::join(world, *_index).map_err(|e| anyhow::anyhow!("{e}"));
    #[cfg(not(feature = "nccl"))]
    bail!(NO_NCCL)
}

const NO_NCCL: &str = "--allreduce nccl: this googlenet was built without NCCL; build it with \
                       --features cuda,mpi,nccl (docs/cluster.md)";

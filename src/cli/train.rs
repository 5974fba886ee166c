//! `googlenet train`: train a variant with a recipe, on an ImageNet-layout folder or on the
//! embedded synthetic shapes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use crate::data::synthetic::SyntheticShapes;
use crate::device::{DeviceSpec, parse_available, parse_device_list};
use crate::model::Variant;
use crate::model::precision::Precision;
use crate::train::config::DEFAULT_SEED;
use crate::train::distributed::{self, Collective};
use crate::train::folders::ImageFolders;
use crate::train::loss::LossKind;
use crate::train::schedule::Schedule;
use crate::train::step::TrainEngine;
use crate::train::{
    Outcome, Overrides, Recipe, Session, Synthetic, TrainConfig, TrainData, TrainError,
    TrainOptions,
};
use crate::weights::WeightsSource;

/// Epochs of a run on the embedded shapes when `--epochs` is not given: enough to see the
/// accuracy climb well above chance in a few minutes on a laptop.
pub const DEMO_EPOCHS: usize = 6;
/// Input side of a run on the embedded shapes when `--input-size` is not given.
pub const DEMO_INPUT_SIZE: usize = 96;

/// Trains GoogLeNet. Without --data it trains the torchvision variant on a small set of shapes
/// and textures the program draws itself (4 classes, 96 px, 6 epochs), so the whole loop runs in
/// a few minutes with nothing to download.
///
/// Writes OUT/config.json, OUT/metrics.csv (a row per epoch), OUT/curves.png, checkpoints in
/// OUT/checkpoints (the last --keep-last and the best by validation top-1), and the evaluated
/// weights (Polyak average with the paper's recipe) as OUT/model.safetensors and
/// OUT/best.safetensors. Ctrl-C stops after the current step with a checkpoint; --resume OUT
/// continues exactly where it stopped.
///
/// On GPUs (a build with --features cuda or wgpu): --device cuda:0 trains on one, --devices
/// cuda:0,cuda:1,... data-parallel on several (each takes a share of every --batch, gradients
/// summed: the same step as one device with the whole batch), --precision bf16 or f16 runs the
/// steps in reduced precision (weights, optimizer and BatchNorm stay f32).
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// ImageNet-layout folder with train/ and val/ (one subfolder per class; val/ may also be
    /// ImageNet's flat folder, with LOC_val_solution.csv or the devkit's
    /// ILSVRC2012_validation_ground_truth.txt and meta.mat in this folder). Default: the
    /// embedded synthetic shapes.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Network variant (default: paper; torchvision on the embedded shapes, whose BatchNorm
    /// learns them within the demo's few minutes).
    #[arg(long, value_enum)]
    pub variant: Option<Variant>,
    /// Hyperparameter set: paper (section 6; the default), seed (the Keras seed's), caffe-quick
    /// (BVLC's quick solver).
    #[arg(long, value_enum)]
    pub recipe: Option<Recipe>,
    /// Epochs to train (paper and caffe-quick: 60, seed: 10, embedded shapes: 6).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per optimiser step (32).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// SGD momentum (paper 0.9, seed 0); dampening is always 0.
    #[arg(long)]
    pub momentum: Option<f64>,
    /// L2 weight decay added to the gradient (paper 2e-4, seed 0).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule: step, poly or constant (parameters below).
    #[arg(long, value_parser = ["step", "poly", "constant"])]
    pub schedule: Option<String>,
    /// Step schedule: epochs between decreases (paper: 8).
    #[arg(long)]
    pub step_epochs: Option<usize>,
    /// Step schedule: factor per decrease (paper: 0.96).
    #[arg(long)]
    pub step_factor: Option<f64>,
    /// Poly schedule: power (Caffe quick solver: 0.5).
    #[arg(long)]
    pub poly_power: Option<f64>,
    /// Weight of each auxiliary classifier's loss (paper 0.3, seed 1).
    #[arg(long)]
    pub aux_weight: Option<f64>,
    /// Cross-entropy on logits (softmax-cross-entropy) or Keras' on clipped probabilities.
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    /// Decay of the Polyak (exponential moving) average of the weights; 0 turns it off.
    #[arg(long)]
    pub polyak_decay: Option<f64>,
    /// Switch dropout off.
    #[arg(long)]
    pub no_dropout: bool,
    /// Initial weights without --weights: he (He et al. 2015; paper recipe) or reference (the
    /// variant's own: BVLC's xavier + bias 0.2, torchvision's, Keras' glorot; seed and
    /// caffe-quick recipes).
    #[arg(long, value_enum)]
    pub init: Option<crate::train::init::Init>,
    /// Side of the square input (default: 224 with --data, 96 on the embedded shapes).
    #[arg(long)]
    pub input_size: Option<usize>,
    /// Output folder.
    #[arg(long, default_value = "runs/googlenet")]
    pub out: PathBuf,
    /// Continue the run in this folder from its latest checkpoint, with its saved configuration.
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Initial weights instead of random initialisation: a file (.pth, .safetensors, Keras
    /// layout), an http(s) URL, or a name from `googlenet weights list` (which also sets the
    /// variant), downloaded once into torch's cache. Weights for other classes than the data's
    /// (ImageNet's for your own folders) load all but the classifiers, which start fresh:
    /// fine-tuning.
    #[arg(long)]
    pub weights: Option<WeightsSource>,
    /// Seed of the initial weights, data order, augmentation and dropout.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Checkpoints to keep besides the best one.
    #[arg(long)]
    pub keep_last: Option<usize>,
    /// Also write a checkpoint within an epoch after this much training time (90s, 30m, 2h) or
    /// this many steps (500steps); `epoch` for epoch ends only. Each is written atomically;
    /// --resume continues from the newest exactly as if the run had not stopped.
    #[arg(long, default_value = "30m", value_name = "DURATION|STEPS")]
    pub checkpoint_every: crate::train::checkpoint_schedule::CheckpointEvery,
    /// cpu, cuda:N (a build with the cuda feature) or wgpu[:N] (with the wgpu feature).
    #[arg(long, default_value = "cpu", value_parser = parse_available)]
    pub device: DeviceSpec,
    /// Stop with an error naming the file at the first image that cannot be decoded, instead of
    /// skipping it with a warning and counting it.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub pixels: super::pixel_budget_arg::PixelBudgetArg,
    /// Data-parallel training over these devices, e.g. cuda:0,cuda:1: each gets a contiguous
    /// share of every batch (--batch is the global batch), the gradients are summed, the model
    /// lives on the first, which also validates. `cpu,cpu` works (the replicas share the cores:
    /// for testing, not for speed).
    #[arg(long, conflicts_with = "device", value_parser = |s: &str| parse_device_list(s).map(DeviceList))]
    pub devices: Option<DeviceList>,
    /// Precision of the training steps: f32, bf16 or f16 (weights, optimizer state, BatchNorm
    /// and validation stay f32; no loss scaling, so f16 gradients below 6e-8 vanish).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Code that runs the steps: fast (our CPU training path: the paper and torchvision
    /// variants, f32, one CPU device, softmax cross-entropy; about 3x burn's autodiff there) or
    /// burn (burn's autodiff, everywhere). Default: fast where it applies, else burn.
    #[arg(long, value_enum)]
    pub engine: Option<TrainEngine>,
    /// Stop after this many optimiser steps (of this invocation) with a checkpoint, as Ctrl-C
    /// does; --resume continues.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
    /// Print only a JSON summary when done: outcome, steps, images/s, every step's loss, the
    /// mean loss of the first and last steps (--quiet implied).
    #[arg(long)]
    pub json: bool,
}

/// The devices of `--devices`.
#[derive(Clone, Debug)]
pub struct DeviceList(pub Vec<DeviceSpec>);

impl TrainArgs {
    fn overrides(&self) -> Result<Overrides> {
        let schedule = match self.schedule.as_deref() {
            Some("step") => Some(Schedule::Step {
                every_epochs: self.step_epochs.unwrap_or(8),
                factor: self.step_factor.unwrap_or(0.96),
            }),
            Some("poly") => Some(Schedule::Poly {
                power: self.poly_power.unwrap_or(0.5),
            }),
            Some("constant") => Some(Schedule::Constant),
            _ => None,
        };
        if self.schedule.is_none()
            && (self.step_epochs.is_some()
                || self.step_factor.is_some()
                || self.poly_power.is_some())
        {
            bail!("--step-epochs, --step-factor and --poly-power need --schedule step or poly");
        }
        Ok(Overrides {
            epochs: self.epochs,
            batch_size: self.batch,
            base_lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            schedule,
            aux_weight: self.aux_weight,
            loss_kind: self.loss,
            polyak_decay: self.polyak_decay.map(|d| (d > 0.0).then_some(d)),
            dropout: self.no_dropout.then_some(false),
            init: self.init,
            seed: self.seed,
            keep_last: self.keep_last,
        })
    }

    /// The hyperparameter flags given, which `--resume` does not accept.
    fn hyperparameter_flags(&self) -> Vec<&'static str> {
        let given = [
            ("--batch", self.batch.is_some()),
            ("--lr", self.lr.is_some()),
            ("--momentum", self.momentum.is_some()),
            ("--weight-decay", self.weight_decay.is_some()),
            ("--schedule", self.schedule.is_some()),
            ("--aux-weight", self.aux_weight.is_some()),
            ("--loss", self.loss.is_some()),
            ("--polyak-decay", self.polyak_decay.is_some()),
            ("--no-dropout", self.no_dropout),
            ("--init", self.init.is_some()),
            ("--input-size", self.input_size.is_some()),
            ("--weights", self.weights.is_some()),
            ("--seed", self.seed.is_some()),
            ("--variant", self.variant.is_some()),
            ("--recipe", self.recipe.is_some()),
        ];
        given.iter().filter(|g| g.1).map(|g| g.0).collect()
    }
}

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

/// `train --json`'s output.
#[derive(Serialize)]
struct Summary {
    /// `finished`, `interrupted` (Ctrl-C) or `max_steps`.
    outcome: &'static str,
    /// The epoch (1-based) the run stopped in, or the number of epochs when finished.
    epoch: usize,
    /// Optimiser steps of the whole run, resumed ones included.
    global_step: Option<u64>,
    checkpoint: Option<String>,
    devices: Vec<String>,
    precision: Precision,
    /// `fast` or `burn` (see `--engine`).
    engine: Option<TrainEngine>,
    batch: usize,
    variant: Variant,
    input_size: usize,
    /// Steps of this invocation and their images, seconds and losses.
    steps: u64,
    images: u64,
    seconds: f64,
    /// Training images/s of this invocation, its first step left out when there are others.
    images_per_second: f64,
    /// Steps averaged by `first_mean_loss` and `last_mean_loss`: a quarter, 1 to 10.
    window: usize,
    first_loss: Option<f64>,
    last_loss: Option<f64>,
    first_mean_loss: Option<f64>,
    last_mean_loss: Option<f64>,
    losses: Vec<f64>,
    /// Processes of the job (1 without MPI); each took its share of every batch.
    world_size: usize,
    /// Each step's seconds in the gradients' all-reduce over the ranks (empty on one process).
    allreduce_seconds: Vec<f64>,
    /// Batches left out as too small for BatchNorm, and their images.
    dropped: crate::train::small_batch::Dropped,
}

impl Summary {
    fn new(
        outcome: &Outcome,
        session: &Session,
        devices: &[DeviceSpec],
        precision: Precision,
        config: &TrainConfig,
    ) -> Summary {
        let (name, epoch, global_step, checkpoint) = match outcome {
            Outcome::Finished { epochs, .. } => ("finished", *epochs, None, None),
            Outcome::Interrupted {
                checkpoint,
                epoch,
                step,
                ..
            } => ("interrupted", *epoch, Some(*step), Some(checkpoint)),
            Outcome::ReachedMaxSteps {
                checkpoint,
                epoch,
                step,
                ..
            } => ("max_steps", *epoch, Some(*step), Some(checkpoint)),
        };
        Summary {
            outcome: name,
            epoch,
            global_step,
            checkpoint: checkpoint.map(|c| c.display().to_string()),
            devices: devices.iter().map(ToString::to_string).collect(),
            precision,
            engine: session.engine,
            batch: config.batch_size,
            variant: config.variant,
            input_size: config.input_size,
            steps: session.steps,
            images: session.images,
            seconds: session.seconds,
            images_per_second: session.images_per_second(),
            window: session.window(),
            first_loss: session.losses.first().copied(),
            last_loss: session.losses.last().copied(),
            first_mean_loss: session.first_mean_loss(),
            last_mean_loss: session.last_mean_loss(),
            losses: session.losses.clone(),
            world_size: 1,
            allreduce_seconds: session.allreduce_seconds.clone(),
            dropped: session.dropped,
        }
    }
}

/// The variant of the embedded demo when --variant is not given.
pub const DEMO_VARIANT: Variant = Variant::Torchvision;

fn new_config(args: &TrainArgs) -> Result<TrainConfig> {
    let named = args.weights.as_ref().and_then(WeightsSource::variant);
    let variant = args.variant.or(named).unwrap_or(match args.data {
        Some(_) => Variant::Paper,
        None => DEMO_VARIANT,
    });
    if args
        .weights
        .as_ref()
        .is_some_and(WeightsSource::transform_input)
    {
        eprintln!(
            "note: training does not apply torchvision's transform_input, which these weights \
             were made with: their first layer sees ImageNet-normalised input instead"
        );
    }
    let (input_size, classes) = match &args.data {
        Some(root) => {
            let size = args.input_size.unwrap_or(224);
            let data = ImageFolders::open(root, variant, size)?;
            (size, data.class_names().len())
        }
        None => {
            let min = crate::model::googlenet::min_input_size(variant);
            let size = args.input_size.unwrap_or(DEMO_INPUT_SIZE.max(min));
            (size, crate::data::synthetic::CLASSES.len())
        }
    };
    let mut overrides = args.overrides()?;
    if args.data.is_none() && overrides.epochs.is_none() {
        overrides.epochs = Some(DEMO_EPOCHS);
    }
    let mut config = TrainConfig::recipe(
        args.recipe.unwrap_or(Recipe::Paper),
        variant,
        input_size,
        classes,
    )
    .with_overrides(&overrides);
    config.data = args.data.clone();
    config.seed = args.seed.unwrap_or(DEFAULT_SEED);
    Ok(config)
}

fn open_data(
    config: &TrainConfig,
    strict: bool,
    budget: crate::data::image::PixelBudget,
) -> Result<Box<dyn TrainData>> {
    match &config.data {
        Some(root) => Ok(Box::new(
            ImageFolders::open(root, config.variant, config.input_size)?
                .with_strict(strict)
                .with_pixel_budget(budget),
        )),
        None => Ok(Box::new(Synthetic {
            set: SyntheticShapes {
                side: config.input_size,
                ..SyntheticShapes::standard()
            },
            variant: config.variant,
        })),
    }
}

//! The command line of `googlenet train`, and the hyperparameter overrides it gives.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::device::{DeviceSpec, parse_available, parse_device_list};
use crate::model::Variant;
use crate::model::precision::Precision;
use crate::train::loss::LossKind;
use crate::train::schedule::Schedule;
use crate::train::step::TrainEngine;
use crate::train::{Overrides, Recipe};
use crate::weights::WeightsSource;

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
    pub pixels: crate::cli::pixel_budget_arg::PixelBudgetArg,
    /// Data-parallel training over these devices, e.g. cuda:0,cuda:1: each gets a contiguous
    /// share of every batch (--batch is the global batch), the gradients are summed, the model
    /// lives on the first, which also validates. `cpu,cpu` works (the replicas share the cores:
    /// for testing, not for speed).
    #[arg(long, conflicts_with = "device", value_parser = |s: &str| parse_device_list(s).map(DeviceList))]
    pub devices: Option<DeviceList>,
    /// Precision of the training steps: f32, bf16 or f16 (weights, optimizer state, BatchNorm
    /// and validation stay f32; no loss scaling, so f16 gradients below 6e-8 vanish). bf16 runs
    /// on the fast engine where the CPU has AMX tiles or AVX512-BF16 (its convolution products
    /// in bf16 there).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Code that runs the steps: fast (our CPU training path: the paper and torchvision
    /// variants, f32 or bf16 with AMX, one CPU device, softmax cross-entropy; about 3x burn's
    /// autodiff there) or
    /// burn (burn's autodiff, everywhere). Default: fast where it applies, else burn.
    #[arg(long, value_enum)]
    pub engine: Option<TrainEngine>,
    /// Where the gradients are summed over the processes of a job: mpi (on the host, over the
    /// job's MPI; one process sums nothing) or nccl (on each process's GPU through NCCL, as DDP
    /// does: --device cuda:N, a build with --features cuda,mpi,nccl; one process still runs
    /// its sums through NCCL).
    #[arg(long, value_enum, default_value_t = AllReduceOn::Mpi)]
    pub allreduce: AllReduceOn,
    /// Under MPI, the fast engine's gradients are all-reduced in buckets of this many MB while
    /// its backward pass goes on (as PyTorch DDP's bucket_cap_mb, there 25); 0: one all-reduce
    /// after the backward pass. The same sums either way (to the last bit on 2 ranks; with
    /// more, MPI's order of addition may differ by message size).
    #[arg(long, default_value_t = 4.0, value_name = "MB", value_parser = parse_bucket_mb)]
    pub bucket_mb: f64,
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

/// `--bucket-mb`: a finite size of 0 MB or more.
fn parse_bucket_mb(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(mb) if mb.is_finite() && mb >= 0.0 => Ok(mb),
        _ => Err(format!(
            "`{text}` is not a bucket size: give megabytes, 0 or more (0: one all-reduce)"
        )),
    }
}

/// Where `--allreduce` sums the gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AllReduceOn {
    /// On the host, over the job's MPI.
    Mpi,
    /// On the GPUs, through NCCL.
    Nccl,
}

/// The devices of `--devices`.
#[derive(Clone, Debug)]
pub struct DeviceList(pub Vec<DeviceSpec>);

impl TrainArgs {
    pub(super) fn overrides(&self) -> Result<Overrides> {
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
    pub(super) fn hyperparameter_flags(&self) -> Vec<&'static str> {
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

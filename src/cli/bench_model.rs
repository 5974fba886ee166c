//! `googlenet bench model`: images per second and peak memory of inference or of a training step,
//! on any device this binary has, in f32, bf16 or f16.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::FloatDType;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::image::PixelBudget;
use crate::device::{DeviceSpec, parse_available};
use crate::engine::{Bf16Kernel, DropoutSeed, InferenceNet, Int8Kernel};
use crate::eval::calibration::calibrate_on_folder;
use crate::model::precision::{self, Precision};
use crate::model::{GoogLeNet, GoogLeNetConfig, Variant};
use crate::train::HostBatch;
use crate::train::loss::LossWeighting;
use crate::train::sgd::FusedSgd;
use crate::train::step::{Stepper, TrainEngine};

#[derive(Args, Debug)]
pub struct BenchModelArgs {
    /// Which reference network to time.
    #[arg(long, value_enum, default_value_t = Variant::Torchvision)]
    pub variant: Variant,
    /// Images per forward pass (or per training step).
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Inference (main logits, no auxiliary heads) or one training step (main + 0.3 x each
    /// auxiliary loss, backward pass, SGD with momentum 0.9).
    #[arg(long, value_enum, default_value_t = Mode::Infer)]
    pub mode: Mode,
    /// `fast`: our NHWC CPU paths — for inference (f32 or bf16) BatchNorm folded into fused
    /// convolutions, for training (f32) the paper's and torchvision's variants with our own
    /// backward pass and burn's optimiser (the default where it applies); `burn`: the module's
    /// own passes on --device (the default elsewhere).
    #[arg(long, value_enum)]
    pub engine: Option<Engine>,
    /// cpu, cuda:N (a build with the cuda feature) or wgpu[:N] (with the wgpu feature).
    #[arg(long, default_value = "cpu", value_parser = parse_available)]
    pub device: DeviceSpec,
    /// Precision of the network: f32, or bf16/f16 with BatchNorm in f32 (training: f32 weights,
    /// each step on a reduced-precision view, as `train --precision`).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Worker threads (rayon); 0 = one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Timed iterations after warm-up.
    #[arg(long, default_value_t = 10)]
    pub iterations: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Side of the square input.
    #[arg(long, default_value_t = 224)]
    pub input_size: usize,
    /// Number of classes of the classifier.
    #[arg(long, default_value_t = 1000)]
    pub classes: usize,
    /// Inference on the fast engine with its convolutions in int8, calibrated on the images
    /// under DIR (as `eval --int8-calibration`; f32 only).
    #[arg(long, value_name = "DIR")]
    pub int8_calibration: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Infer,
    Train,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Fast,
    Burn,
}

#[derive(Serialize, Debug)]
struct Rates {
    min: f64,
    median: f64,
    max: f64,
}

#[derive(Serialize, Debug)]
struct Report {
    variant: Variant,
    mode: Mode,
    engine: Engine,
    device: String,
    precision: Precision,
    /// The fast engine's bf16 kernel (`amx`, `avx512-bf16` or `portable`; training needs one of
    /// the first two) in bf16; else null.
    bf16_kernel: Option<&'static str>,
    /// The fast engine's int8 kernel (`avx512-vnni` or `portable`) with --int8-calibration;
    /// else null.
    int8_kernel: Option<&'static str>,
    batch: usize,
    threads: usize,
    input_size: usize,
    iterations: usize,
    images_per_sec: Rates,
    seconds_per_iteration_median: f64,
    /// CPU time (user + system, all threads) per image over the timed iterations: on a busy
    /// machine a steadier measure of the work than wall-clock time.
    cpu_seconds_per_image: f64,
    peak_rss_bytes: u64,
}

/// Runs `googlenet bench model`: times the network's inference or training steps.
pub fn run(args: BenchModelArgs) -> Result<ExitCode> {
    if args.batch == 0 || args.iterations == 0 {
        bail!("--batch and --iterations must be at least 1");
    }
    if args.mode == Mode::Train && args.batch < 2 && args.variant == Variant::Torchvision {
        bail!("training with BatchNorm needs --batch 2 or more");
    }
    let engine = engine(&args)?;
    if args.int8_calibration.is_some() {
        ensure!(
            (args.mode, engine, args.precision) == (Mode::Infer, Engine::Fast, Precision::F32),
            "--int8-calibration quantizes the fast engine's f32 inference: leave out --mode \
             train, --engine burn and --precision"
        );
    }
    args.precision.check(&args.device.to_device()?)?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .context("starting the thread pool")?;
    let threads = rayon::current_num_threads();
    let mut step = make_step(&args, engine)?;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new((args.warmup + args.iterations) as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} it, eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("warm-up");
    for _ in 0..args.warmup {
        step()?;
        bar.inc(1);
    }
    bar.set_message("timing");
    let mut seconds = Vec::with_capacity(args.iterations);
    let cpu_start = cpu_seconds();
    for _ in 0..args.iterations {
        let start = Instant::now();
        step()?;
        seconds.push(start.elapsed().as_secs_f64());
        bar.inc(1);
    }
    let cpu = cpu_seconds() - cpu_start;
    bar.finish_and_clear();
    seconds.sort_by(f64::total_cmp);
    let median = median(&seconds);
    let rate = |s: f64| args.batch as f64 / s;
    let report = Report {
        variant: args.variant,
        mode: args.mode,
        engine,
        device: args.device.to_string(),
        precision: args.precision,
        bf16_kernel: (engine == Engine::Fast && args.precision == Precision::Bf16)
            .then(|| Bf16Kernel::detect().name()),
        int8_kernel: args
            .int8_calibration
            .as_ref()
            .map(|_| Int8Kernel::detect().name()),
        batch: args.batch,
        threads,
        input_size: args.input_size,
        iterations: args.iterations,
        images_per_sec: Rates {
            min: rate(seconds[seconds.len() - 1]),
            median: rate(median),
            max: rate(seconds[0]),
        },
        seconds_per_iteration_median: median,
        cpu_seconds_per_image: cpu / (args.iterations * args.batch) as f64,
        peak_rss_bytes: peak_rss_bytes().context("reading VmHWM from /proc/self/status")?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The engine that runs: `fast` on the CPU in f32, for inference and for training the paper's
/// and torchvision's variants (its default there); `burn` everywhere.
fn engine(args: &BenchModelArgs) -> Result<Engine> {
    let fast_fits = args.device == DeviceSpec::Cpu
        && match args.mode {
            Mode::Infer => args.precision != Precision::F16,
            Mode::Train => args.precision != Precision::F16 && args.variant != Variant::KerasSeed,
        };
    match args.engine {
        Some(Engine::Fast) if !fast_fits => bail!(
            "--engine fast runs on cpu, infers in f32 or bf16 and trains the paper and torchvision \
             variants in f32 or bf16; use --engine burn for {} of {} \
             on {} in {}",
            match args.mode {
                Mode::Infer => "inference",
                Mode::Train => "training",
            },
            args.variant,
            args.device,
            args.precision
        ),
        Some(engine) => Ok(engine),
        None if fast_fits => Ok(Engine::Fast),
        None => Ok(Engine::Burn),
    }
}

/// Images that calibrate int8 for timing (the scales do not change the work).
const CALIBRATION_IMAGES: usize = 16;

/// One timed unit of work; it returns once the device has finished it.
type Step = Box<dyn FnMut() -> Result<()>>;

/// Builds the model and inputs once and returns one timed unit of work.
fn make_step(args: &BenchModelArgs, engine: Engine) -> Result<Step> {
    let config = GoogLeNetConfig::new(args.variant)
        .with_num_classes(args.classes)
        .with_input_size(args.input_size);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let side = args.input_size;
    let pixels: Vec<f32> = (0..args.batch * 3 * side * side)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let shape = [args.batch, 3, side, side];
    let device = args.device.to_device()?;
    let precision = args.precision;
    match (args.mode, engine) {
        (Mode::Infer, Engine::Fast) => {
            let model = config.init(&Device::flex())?;
            let mut net = InferenceNet::with_precision(&model, precision)?;
            if let Some(dir) = &args.int8_calibration {
                let (side, budget) = (side as u32, PixelBudget::default());
                calibrate_on_folder(&net, dir, side, CALIBRATION_IMAGES, budget)?;
                net = net.into_int8(Int8Kernel::detect())?;
            }
            Ok(Box::new(move || {
                let logits = net.forward(&pixels, shape)?;
                std::hint::black_box(logits);
                Ok(())
            }))
        }
        (Mode::Infer, Engine::Burn) => {
            let model = precision::apply(config.init(&device)?, precision)?;
            Ok(Box::new(move || {
                let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), shape), &device);
                // Reading the logits back waits for the device.
                let logits = model
                    .forward(precision::cast_input(x, precision))
                    .into_data();
                std::hint::black_box(logits);
                Ok(())
            }))
        }
        (Mode::Train, engine) => {
            let device = device.autodiff();
            let model = config.init(&device)?;
            let labels: Vec<i64> = (0..args.batch)
                .map(|_| rng.random_range(0..args.classes as i64))
                .collect();
            Ok(match engine {
                Engine::Fast => fast_train_step(model, pixels, labels, shape, device, precision)?,
                Engine::Burn => train_step(model, pixels, labels, shape, device, precision),
            })
        }
    }
}

/// One training step as the paper trains (section 6): main loss + 0.3 x each auxiliary loss
/// (section 5), backward, SGD with momentum 0.9; in `precision` on `precision::autocast`'s view
/// of the f32 weights, the loss from f32 logits. Each step waits for the device to finish.
fn train_step(
    model: GoogLeNet,
    pixels: Vec<f32>,
    labels: Vec<i64>,
    shape: [usize; 4],
    device: Device,
    precision: Precision,
) -> Step {
    let mut optim = momentum_sgd();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut model = Some(model);
    Box::new(move || {
        let m = model.take().expect("model is put back after every step");
        let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), shape), &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [shape[0]]), &device);
        let out = precision::autocast(&m, precision)
            .forward_with_aux(precision::cast_input(x, precision));
        let f32 = |t: Tensor<2>| t.cast(FloatDType::F32);
        let mut loss = loss_fn.forward(f32(out.main), y.clone());
        for aux in [out.aux1, out.aux2].into_iter().flatten() {
            loss = loss + loss_fn.forward(f32(aux), y.clone()).mul_scalar(0.3);
        }
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        let m = optim.step(0.01, m, grads);
        device
            .sync()
            .map_err(|e| anyhow::anyhow!("{device:?}: {e:?}"))?;
        model = Some(m);
        Ok(())
    })
}

/// The same step as [`train_step`] on the fast CPU path, as the trainer runs it ([`Stepper`]):
/// the weights copied in, forward and backward on [`crate::engine::TrainNet`], the running
/// statistics written back, its gradients through the trainer's SGD.
fn fast_train_step(
    model: GoogLeNet,
    pixels: Vec<f32>,
    labels: Vec<i64>,
    shape: [usize; 4],
    device: Device,
    precision: Precision,
) -> Result<Step> {
    let loss = LossWeighting::paper();
    let fast = Some(TrainEngine::Fast);
    let stepper = Stepper::new(&[], loss, precision, fast, &model, &device)?;
    let host = HostBatch {
        images: pixels,
        labels,
        side: shape[2],
    };
    let mut optim = momentum_sgd();
    let mut model = Some(model);
    let mut seed = 0;
    Ok(Box::new(move || {
        let m = model.take().expect("model is put back after every step");
        seed += 1;
        stepper.seed(&device, DropoutSeed::new(seed));
        let (_, update) = stepper.forward_backward(&m, &host, loss, precision, &device)?;
        model = Some(update.apply(0.01, &mut optim, m));
        Ok(())
    }))
}

/// SGD with momentum 0.9 and dampening 0, as the paper and PyTorch step, as the trainer runs it.
fn momentum_sgd() -> ModuleOptimizer {
    FusedSgd::new(0.9, 0.0).init()
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// User + system CPU time of the whole process (all threads) so far.
pub(super) fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The process's peak resident set size (`VmHWM`), in bytes.
fn peak_rss_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM line")?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("VmHWM is not a number")?;
    Ok(kib * 1024)
}

fn print_table(r: &Report) {
    let mode = match r.mode {
        Mode::Infer => "inference",
        Mode::Train => "training step",
    };
    let engine = match (r.engine, r.bf16_kernel) {
        (Engine::Fast, Some(kernel)) => format!("fast, bf16 on {kernel}"),
        (Engine::Fast, None) => "fast".to_string(),
        (Engine::Burn, _) => "burn".to_string(),
    };
    println!(
        "{} {mode} ({engine}) on {} in {}, batch {}, {}x{}, {} threads, {} iterations",
        r.variant,
        r.device,
        r.precision,
        r.batch,
        r.input_size,
        r.input_size,
        r.threads,
        r.iterations
    );
    println!("{:<18}{:>10}{:>10}{:>10}", "", "min", "median", "max");
    let ips = &r.images_per_sec;
    println!(
        "{:<18}{:>10.2}{:>10.2}{:>10.2}",
        "images/s", ips.min, ips.median, ips.max
    );
    println!("{:<18}{:>10.4}", "CPU s / image", r.cpu_seconds_per_image);
    println!(
        "{:<18}{:>10.1}",
        "peak RSS (MiB)",
        r.peak_rss_bytes as f64 / (1024.0 * 1024.0)
    );
}

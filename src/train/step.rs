//! One training step's forward and backward pass, on one device or data-parallel over several
//! ([`super::data_parallel`]), in f32 or a reduced precision ([`crate::model::precision`]: the
//! weights stay f32, the step runs on a bf16/f16 view of them, BatchNorm stays f32, the loss is
//! computed from f32 logits), or on the fast CPU training path ([`TrainNet`]).

use std::sync::Mutex;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::FloatDType;
use serde::{Deserialize, Serialize};

use super::data_parallel::{DataParallel, DataParallelError};
use super::loss::{LossKind, LossWeighting};
use super::source::{HostBatch, mix};
use crate::engine::{DropoutSeed, TrainLosses, TrainNet, TrainNetError};
use crate::model::precision::{self, Precision};
use crate::model::{GoogLeNet, GoogLeNetOutput, Variant};

/// What a forward pass gave, read back to the host: the total loss, each head's loss (main, aux1,
/// aux2) and each head's logits (row-major `[images, classes]`).
#[derive(Clone, Debug, Default)]
pub struct StepValues {
    /// The recipe's weighted total loss.
    pub total: f64,
    /// Each head's mean loss: main, aux1, aux2.
    pub heads: [Option<f64>; 3],
    /// Each head's logits, row-major `[images, classes]`.
    pub logits: [Option<Vec<f32>>; 3],
}

/// Which code computes the forward and backward passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TrainEngine {
    /// Our NHWC CPU training path ([`TrainNet`]): the paper and torchvision variants, f32 or
    /// bf16 products, one CPU device, softmax cross-entropy. About 3x burn-flex's autodiff on the
    /// same CPU (bench/RESULTS.md).
    Fast,
    /// burn's autodiff on any device, variant and precision.
    Burn,
}

impl std::fmt::Display for TrainEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrainEngine::Fast => "fast",
            TrainEngine::Burn => "burn",
        })
    }
}

/// Why a step could not be prepared or run.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A data-parallel step failed.
    #[error(transparent)]
    DataParallel(#[from] DataParallelError),
    /// `--engine fast` cannot train this configuration.
    #[error("--engine fast does not apply: {0} (--engine burn trains everything)")]
    FastRefused(String),
    /// The fast training path failed.
    #[error("the fast training path: {0}")]
    Fast(#[from] TrainNetError),
}

/// Where the steps run.
pub enum Stepper {
    /// The whole batch on the model's own device.
    Single,
    /// Shares of the batch on each replica's device, gradients summed by `step_multi`.
    Parallel(DataParallel<StepValues>),
    /// The whole batch on the fast CPU training path; burn's optimiser applies its gradients.
    Fast(Box<Mutex<FastStep>>),
}

/// The fast path's network and the dropout seed of the next step.
pub struct FastStep {
    net: TrainNet,
    seed: DropoutSeed,
}

/// The gradients of a forward and backward pass, not applied yet.
pub enum Update {
    /// The gradients of one model.
    Single(GradientsParams),
    /// The gradients of the data-parallel replicas.
    Multi(burn::optim::MultiGradientsParams),
}

impl Stepper {
    /// One replica per device with more than one device; else the fast CPU path where `engine`
    /// asks for it or, when `engine` is `None`, where it applies ([`fast_path_refusal`]); else
    /// [`Stepper::Single`].
    pub fn new(
        replicas: &[Device],
        loss: LossWeighting,
        precision: Precision,
        engine: Option<TrainEngine>,
        model: &GoogLeNet,
        device: &Device,
    ) -> Result<Stepper, StepError> {
        let refusal = fast_path_refusal(replicas, loss, precision, model, device);
        match (engine, refusal) {
            (Some(TrainEngine::Fast), Some(reason)) => {
                return Err(StepError::FastRefused(reason));
            }
            (Some(TrainEngine::Fast) | None, None) => {
                let net = TrainNet::from_model(model)?;
                let net = match precision {
                    Precision::Bf16 => net.with_bf16_products(),
                    _ => net,
                };
                return Ok(Stepper::Fast(Box::new(Mutex::new(FastStep {
                    net,
                    seed: DropoutSeed::default(),
                }))));
            }
            _ => {}
        }
        if replicas.len() < 2 {
            return Ok(Stepper::Single);
        }
        let parallel =
            DataParallel::with_reports(replicas.to_vec(), move |model, images, labels| {
                forward_loss(model, images, labels, loss, precision)
            })?;
        Ok(Stepper::Parallel(parallel))
    }

    /// The engine that runs the steps.
    pub fn engine(&self) -> TrainEngine {
        match self {
            Stepper::Fast(_) => TrainEngine::Fast,
            _ => TrainEngine::Burn,
        }
    }

    /// How many replicas share a batch (1 on a single device).
    pub fn replicas(&self) -> usize {
        match self {
            Stepper::Single | Stepper::Fast(_) => 1,
            Stepper::Parallel(parallel) => parallel.devices().len(),
        }
    }

    /// Seeds dropout for a step. The fast path draws each image's masks from `seed` and the
    /// image's position in the global batch ([`DropoutSeed`]), whatever the split across ranks.
    /// burn's `Dropout` draws from the device's generator, seeded here from `seed` and the first
    /// image of this process's share (and the replica's index on several devices), so that no
    /// two shares draw the same masks: there a run on N ranks matches a run on 1 in distribution
    /// only.
    pub fn seed(&self, device: &Device, seed: DropoutSeed) {
        let share_seed = mix(seed.seed, seed.first_image);
        match self {
            Stepper::Single => device.seed(share_seed),
            Stepper::Fast(fast) => lock(fast).seed = seed,
            Stepper::Parallel(parallel) => {
                for (i, replica) in parallel.devices().iter().enumerate() {
                    replica.seed(mix(share_seed, i as u64));
                }
            }
        }
    }

    /// Runs `f` on the fast path's network, holding `model`'s current weights, with the step's
    /// dropout seed; afterwards the running statistics that its forward pass moved go back into
    /// `model`. `None` on the other engines.
    pub fn with_fast_net<R>(
        &self,
        model: &GoogLeNet,
        f: impl FnOnce(&mut TrainNet, DropoutSeed) -> R,
    ) -> Result<Option<R>, StepError> {
        match self {
            Stepper::Fast(fast) => on_fast_net(fast, model, f).map(Some),
            _ => Ok(None),
        }
    }

    /// Forward and backward on `host`. A batch smaller than the number of replicas (the last
    /// one of an epoch can be) runs whole on `device`, the model's.
    pub fn forward_backward(
        &self,
        model: &GoogLeNet,
        host: &HostBatch,
        loss: LossWeighting,
        precision: Precision,
        device: &Device,
    ) -> Result<(StepValues, Update), StepError> {
        match self {
            Stepper::Fast(fast) => {
                let labels: Vec<usize> = host.labels.iter().map(|&l| l as usize).collect();
                let shape = [host.len(), 3, host.side, host.side];
                on_fast_net(fast, model, |net, seed| {
                    let losses =
                        net.forward_backward(&host.images, shape, &labels, loss.aux, seed)?;
                    let gradients = if losses.total.is_finite() {
                        net.gradients(model)
                    } else {
                        GradientsParams::new()
                    };
                    Ok((StepValues::from(losses), Update::Single(gradients)))
                })?
            }
            Stepper::Parallel(parallel) if host.len() >= self.replicas() => {
                let step = parallel.step_host(model, &host.images, &host.labels, host.side)?;
                Ok((
                    combine(&step.shares, step.reports),
                    Update::Multi(step.grads),
                ))
            }
            _ => {
                let (images, labels) = host.tensors(device);
                let (total, values) = forward_loss(model, images, labels, loss, precision);
                // Read before the backward pass: a non-finite loss is reported without a step.
                let gradients = if values.total.is_finite() {
                    GradientsParams::from_grads(total.backward(), model)
                } else {
                    GradientsParams::new()
                };
                Ok((values, Update::Single(gradients)))
            }
        }
    }
}

impl Update {
    /// Applies the gradients: `optimizer.step` or, data-parallel, `step_multi`.
    pub fn apply(self, lr: f64, optimizer: &mut ModuleOptimizer, model: GoogLeNet) -> GoogLeNet {
        match self {
            Update::Single(grads) => optimizer.step(lr, model, grads),
            Update::Multi(grads) => optimizer.step_multi(lr, model, grads),
        }
    }
}

/// Why the fast CPU training path does not apply to a run, or `None` if it does.
pub fn fast_path_refusal(
    replicas: &[Device],
    loss: LossWeighting,
    precision: Precision,
    model: &GoogLeNet,
    device: &Device,
) -> Option<String> {
    if model.variant == Variant::KerasSeed {
        Some(format!(
            "it trains the paper and torchvision variants, not {}",
            model.variant
        ))
    } else if *device != Device::flex() || replicas.len() > 1 {
        Some("it runs on one CPU device".into())
    } else if precision == Precision::F16 {
        Some(format!("it runs in f32 or bf16, not {precision}"))
    } else if loss.kind != LossKind::SoftmaxCrossEntropy {
        Some(format!("it computes softmax cross-entropy, not {loss}"))
    } else {
        None
    }
}

fn lock(fast: &Mutex<FastStep>) -> std::sync::MutexGuard<'_, FastStep> {
    fast.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `f` on the fast path's network, holding `model`'s current weights, with the step's
/// dropout seed; afterwards the running statistics that its forward pass moved go back into
/// `model`, as burn's BatchNorm does in a training forward pass, finite loss or not.
fn on_fast_net<R>(
    fast: &Mutex<FastStep>,
    model: &GoogLeNet,
    f: impl FnOnce(&mut TrainNet, DropoutSeed) -> R,
) -> Result<R, StepError> {
    let mut fast = lock(fast);
    let FastStep { net, seed } = &mut *fast;
    net.load_weights(model)?;
    let result = f(net, *seed);
    net.write_running_stats(model);
    Ok(result)
}

impl From<TrainLosses> for StepValues {
    fn from(losses: TrainLosses) -> StepValues {
        StepValues {
            total: losses.total,
            heads: losses.heads,
            logits: losses.logits,
        }
    }
}

/// The loss of `model` on a batch, in `precision` (f32 logits into the loss), and its values on
/// the host.
pub fn forward_loss(
    model: &GoogLeNet,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    loss: LossWeighting,
    precision: Precision,
) -> (Tensor<1>, StepValues) {
    let view = precision::autocast(model, precision);
    let output = view.forward_with_aux(precision::cast_input(images, precision));
    let f32 = |t: Tensor<2>| t.cast(FloatDType::F32);
    let output = GoogLeNetOutput {
        main: f32(output.main),
        aux1: output.aux1.map(f32),
        aux2: output.aux2.map(f32),
    };
    let parts = loss.loss(&output, labels);
    let scalar = |t: &Tensor<1>| t.clone().into_scalar::<f32>() as f64;
    let values = StepValues {
        total: scalar(&parts.total),
        heads: [
            Some(scalar(&parts.main)),
            parts.aux1.as_ref().map(scalar),
            parts.aux2.as_ref().map(scalar),
        ],
        logits: [
            Some(host_logits(&output.main)),
            output.aux1.as_ref().map(host_logits),
            output.aux2.as_ref().map(host_logits),
        ],
    };
    (parts.total, values)
}

/// Logits as host `f32`s.
pub fn host_logits(t: &Tensor<2>) -> Vec<f32> {
    t.clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("logits convert to f32")
}

/// The whole batch's values from the replicas': losses weighted by each share of the batch
/// (each replica's loss is its mean), logits concatenated in batch order.
fn combine(shares: &[usize], reports: Vec<StepValues>) -> StepValues {
    let batch: usize = shares.iter().sum();
    let mut all = StepValues::default();
    for (&share, report) in shares.iter().zip(reports) {
        let weight = share as f64 / batch as f64;
        all.total += weight * report.total;
        for head in 0..3 {
            if let Some(loss) = report.heads[head] {
                *all.heads[head].get_or_insert(0.0) += weight * loss;
            }
            if let Some(logits) = &report.logits[head] {
                all.logits[head]
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(logits);
            }
        }
    }
    all
}

//! Data-parallel training over several devices: each device holds a replica of the network, runs
//! forward and backward on its share of the batch, and the optimizer sums the replicas'
//! gradients ([`burn::optim::ModuleOptimizer::step_multi`] with [`MultiGradientsParams`]).
//!
//! This is burn 0.22's multi-device strategy (`burn-train`'s `MultiDevicesTrainStep`: one
//! long-lived worker thread per device, the model forked onto it each step), without burn-train's
//! `Learner`, whose loop, metrics and checkpoints this project has its own of. Each replica's loss
//! is weighted by its share of the batch, so the summed gradient is the gradient of the mean loss
//! over the whole batch: the same step as one device with the same global batch (exactly so for
//! networks without BatchNorm; with BatchNorm each replica normalises over its own share, as in
//! PyTorch's DistributedDataParallel without SyncBatchNorm).
//!
//! BatchNorm running statistics: the replicas share the master model's `RunningState`s, which
//! keep one value per worker thread and average them (burn's design for this). The average folds
//! in at each replica's next forward pass; `model.valid()` (which `weights::save` and evaluation
//! use) folds in the latest.
//!
//! ```text
//! let parallel = DataParallel::new(devices, |model: &GoogLeNet, x, y| my_mean_loss(model, x, y))?;
//! let step = parallel.step(&model, images, labels)?;
//! model = optim.step_multi(lr, model, step.grads);
//! ```
//!
//! [`DataParallel::with_reports`] also hands back what each replica reports besides its loss
//! (the training loop's per-head losses and logits, read on the replica's own thread), and
//! [`DataParallel::step_host`] builds each replica's share straight on its device from the
//! loader's host batch, so no device relays another's images.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use burn::module::Module;
use burn::optim::{GradientsParams, MultiGradientsParams};
use burn::prelude::*;

use crate::model::GoogLeNet;

/// A replica's loss: the **mean** over the images it is given (a scalar tensor), computed from
/// `model`'s forward pass, and whatever else the replica reports (`R`, e.g. its logits read back
/// to the host). The same function runs on every device, in the workers' threads.
pub type ReplicaLoss<R> =
    dyn Fn(&GoogLeNet, Tensor<4>, Tensor<1, Int>) -> (Tensor<1>, R) + Send + Sync;

/// Why a data-parallel step could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataParallelError {
    /// No device was given.
    #[error("data-parallel training needs at least one device")]
    NoDevices,
    /// The batch has fewer images than there are devices.
    #[error(
        "a batch of {batch} images cannot be split over {replicas} devices: use a batch of at least {replicas}"
    )]
    BatchTooSmall {
        /// The number of images in the batch.
        batch: usize,
        /// The number of devices.
        replicas: usize,
    },
    /// The batch has another number of labels than images.
    #[error("{images} images but {labels} labels in the batch")]
    LabelCount {
        /// The number of images.
        images: usize,
        /// The number of labels.
        labels: usize,
    },
    /// A replica's step failed.
    #[error("the replica on {device} failed: {message}")]
    Replica {
        /// The replica's device, as the command line names it.
        device: String,
        /// Why its step failed.
        message: String,
    },
    /// A replica's worker thread has stopped.
    #[error("the worker thread of {device} has stopped")]
    WorkerGone {
        /// The replica's device, as the command line names it.
        device: String,
    },
}

/// The outcome of one data-parallel forward and backward pass.
pub struct ReplicatedGradients<R = ()> {
    /// Each replica's gradients with its device, for `optim.step_multi(lr, model, grads)`.
    pub grads: MultiGradientsParams,
    /// The mean loss over the whole batch (the replicas' losses weighted by their shares),
    /// detached, on the first device. Reading it waits for the devices.
    pub loss: Tensor<1>,
    /// How many images each replica got, in device order.
    pub shares: Vec<usize>,
    /// What each replica reported besides its loss, in device order.
    pub reports: Vec<R>,
}

/// One worker thread per device, kept for the whole training run (BatchNorm's running
/// statistics are kept per thread; see the module documentation).
pub struct DataParallel<R = ()> {
    workers: Vec<Worker>,
    results: Receiver<ReplicaResult<R>>,
}

struct Worker {
    device: Device,
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

struct Job {
    model: GoogLeNet,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    /// This replica's share of the global batch: its loss is scaled by it.
    weight: f64,
}

struct ReplicaResult<R> {
    replica: usize,
    outcome: Result<ReplicaOutcome<R>, String>,
}

/// A replica's gradients, its weighted loss and its report.
type ReplicaOutcome<R> = (GradientsParams, Tensor<1>, R);

impl DataParallel<()> {
    /// Starts a worker on each device (autodiff is switched on for them). `loss` is each replica's
    /// mean loss; see [`ReplicaLoss`].
    pub fn new<L>(devices: Vec<Device>, loss: L) -> Result<Self, DataParallelError>
    where
        L: Fn(&GoogLeNet, Tensor<4>, Tensor<1, Int>) -> Tensor<1> + Send + Sync + 'static,
    {
        Self::with_reports(devices, move |model, images, labels| {
            (loss(model, images, labels), ())
        })
    }
}

impl<R: Send + 'static> DataParallel<R> {
    /// As [`DataParallel::new`], with a loss that also returns a report of the replica's
    /// (computed on the replica's thread, returned in [`ReplicatedGradients::reports`]).
    pub fn with_reports<L>(devices: Vec<Device>, loss: L) -> Result<Self, DataParallelError>
    where
        L: Fn(&GoogLeNet, Tensor<4>, Tensor<1, Int>) -> (Tensor<1>, R) + Send + Sync + 'static,
    {
        if devices.is_empty() {
            return Err(DataParallelError::NoDevices);
        }
        let loss: Arc<ReplicaLoss<R>> = Arc::new(loss);
        let (results_tx, results) = channel();
        let workers = devices
            .into_iter()
            .enumerate()
            .map(|(replica, device)| {
                let device = device.autodiff();
                let (jobs_tx, jobs) = channel();
                let thread = spawn_worker(
                    replica,
                    device.clone(),
                    jobs,
                    results_tx.clone(),
                    loss.clone(),
                );
                Worker {
                    device,
                    jobs: Some(jobs_tx),
                    thread: Some(thread),
                }
            })
            .collect();
        Ok(Self { workers, results })
    }

    /// The replicas' devices (with autodiff), in order.
    pub fn devices(&self) -> Vec<Device> {
        self.workers.iter().map(|w| w.device.clone()).collect()
    }

    /// Splits the batch into one contiguous share per device (sizes differ by at most one, the
    /// first replicas taking the larger), runs forward and backward on every replica at once, and
    /// returns their gradients. `model` (built on an autodiff device, so that its parameters
    /// require gradients) is not changed; the caller steps it with
    /// `optim.step_multi(lr, model, step.grads)`.
    pub fn step(
        &self,
        model: &GoogLeNet,
        images: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Result<ReplicatedGradients<R>, DataParallelError> {
        let batch = images.dims()[0];
        if labels.dims()[0] != batch {
            return Err(DataParallelError::LabelCount {
                images: batch,
                labels: labels.dims()[0],
            });
        }
        let shares = split_sizes(batch, self.workers.len())?;
        let mut start = 0;
        let parts = shares
            .iter()
            .map(|&share| {
                let part = (
                    images.clone().narrow(0, start, share),
                    labels.clone().narrow(0, start, share),
                );
                start += share;
                part
            })
            .collect();
        self.run(model, parts, shares)
    }

    /// As [`DataParallel::step`], from a batch in host memory (NCHW `images` of `side` x `side`,
    /// as the loader delivers them): each replica's share is uploaded straight to its device.
    pub fn step_host(
        &self,
        model: &GoogLeNet,
        images: &[f32],
        labels: &[i64],
        side: usize,
    ) -> Result<ReplicatedGradients<R>, DataParallelError> {
        let batch = labels.len();
        let per_image = 3 * side * side;
        if images.len() != batch * per_image {
            return Err(DataParallelError::LabelCount {
                images: images.len() / per_image.max(1),
                labels: batch,
            });
        }
        let shares = split_sizes(batch, self.workers.len())?;
        let mut start = 0;
        let parts = self
            .workers
            .iter()
            .zip(&shares)
            .map(|(worker, &share)| {
                let range = start..start + share;
                start += share;
                let pixels = images[range.start * per_image..range.end * per_image].to_vec();
                (
                    Tensor::<4>::from_data(
                        TensorData::new(pixels, [share, 3, side, side]),
                        &worker.device,
                    ),
                    Tensor::<1, Int>::from_data(
                        TensorData::new(labels[range].to_vec(), [share]),
                        &worker.device,
                    ),
                )
            })
            .collect();
        self.run(model, parts, shares)
    }

    /// Sends each replica its part of the batch and collects the gradients.
    fn run(
        &self,
        model: &GoogLeNet,
        parts: Vec<(Tensor<4>, Tensor<1, Int>)>,
        shares: Vec<usize>,
    ) -> Result<ReplicatedGradients<R>, DataParallelError> {
        let replicas = self.workers.len();
        let batch: usize = shares.iter().sum();
        for ((worker, (images, labels)), &share) in self.workers.iter().zip(parts).zip(&shares) {
            let job = Job {
                model: model.clone(),
                images,
                labels,
                weight: share as f64 / batch as f64,
            };
            let sent = worker
                .jobs
                .as_ref()
                .is_some_and(|jobs| jobs.send(job).is_ok());
            if !sent {
                return Err(worker.gone());
            }
        }
        let mut outcomes: Vec<Option<ReplicaOutcome<R>>> = (0..replicas).map(|_| None).collect();
        let mut failure = None;
        for _ in 0..replicas {
            let result = self.results.recv().map_err(|_| self.workers[0].gone())?;
            match result.outcome {
                Ok(outcome) => outcomes[result.replica] = Some(outcome),
                Err(message) => {
                    failure.get_or_insert(DataParallelError::Replica {
                        device: format!("{:?}", self.workers[result.replica].device),
                        message,
                    });
                }
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        let first = &self.workers[0].device;
        let mut grads = MultiGradientsParams::default();
        let mut total: Option<Tensor<1>> = None;
        let mut reports = Vec::with_capacity(replicas);
        for (worker, outcome) in self.workers.iter().zip(outcomes) {
            let (replica_grads, loss, report) = outcome.expect("every replica reported");
            reports.push(report);
            let loss = loss.to_device(first);
            total = Some(match total {
                Some(sum) => sum.add(loss),
                None => loss,
            });
            grads.grads.push((replica_grads, worker.device.clone()));
        }
        Ok(ReplicatedGradients {
            grads,
            loss: total.expect("at least one replica"),
            shares,
            reports,
        })
    }
}

impl Worker {
    fn gone(&self) -> DataParallelError {
        DataParallelError::WorkerGone {
            device: format!("{:?}", self.device),
        }
    }
}

impl<R> Drop for DataParallel<R> {
    /// Closes the job channels and waits for the workers to finish.
    fn drop(&mut self) {
        for worker in &mut self.workers {
            worker.jobs.take();
        }
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

fn spawn_worker<R: Send + 'static>(
    replica: usize,
    device: Device,
    jobs: Receiver<Job>,
    results: Sender<ReplicaResult<R>>,
    loss: Arc<ReplicaLoss<R>>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("replica-{replica}"))
        .spawn(move || {
            while let Ok(job) = jobs.recv() {
                let outcome = catch_unwind(AssertUnwindSafe(|| run_replica(&device, job, &*loss)))
                    .map_err(|payload| panic_message(payload.as_ref()));
                if results.send(ReplicaResult { replica, outcome }).is_err() {
                    break;
                }
            }
        })
        .expect("spawning a data-parallel worker thread")
}

/// Forward and backward of one replica on its share: gradients of `weight * mean loss`.
fn run_replica<R>(device: &Device, job: Job, loss: &ReplicaLoss<R>) -> ReplicaOutcome<R> {
    let model = job.model.fork(device);
    let images = job.images.to_device(device);
    let labels = job.labels.to_device(device);
    let (mean, report) = loss(&model, images, labels);
    let weighted = mean.mul_scalar(job.weight);
    let grads = GradientsParams::from_grads(weighted.backward(), &model);
    (grads, weighted.detach(), report)
}

/// Contiguous shares of `batch` over `replicas`, the first `batch % replicas` one larger.
pub fn split_sizes(batch: usize, replicas: usize) -> Result<Vec<usize>, DataParallelError> {
    if replicas == 0 {
        return Err(DataParallelError::NoDevices);
    }
    if batch < replicas {
        return Err(DataParallelError::BatchTooSmall { batch, replicas });
    }
    let (base, extra) = (batch / replicas, batch % replicas);
    Ok((0..replicas)
        .map(|i| base + usize::from(i < extra))
        .collect())
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked".to_string()
    }
}

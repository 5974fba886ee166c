//! The loader: batches of transformed, normalised images as burn tensors.
//!
//! Every random choice is drawn from a generator seeded by `(seed, epoch, sample index)` (and the
//! epoch's order from `(seed, epoch)`), so the same seed gives the same order and the same crops
//! whatever the thread timing. Images are decoded on a pool of `threads` worker threads; at most
//! `prefetch` finished batches wait in a bounded channel, so memory stays bounded. A file that
//! cannot be decoded is skipped with a warning and counted (its batch is one image shorter; other
//! labels never move); with `strict` it ends the epoch with an error instead. An image beyond the
//! pixel budget is refused from its header, so memory stays within `(prefetch + 3) x batch x 3 x
//! side² x 4` bytes of batches plus, per thread, one decode of at most about 11 bytes per pixel of
//! the budget's limit (docs/training-robustness.md).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use burn::prelude::*;
use image::RgbImage;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::image::{PixelBudget, load_rgb_within};
use super::normalize::normalized_batch;
use super::{DataError, EvalTransform, ImageFolder, TrainTransform};
use crate::model::Variant;

/// What happens to each decoded image.
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    /// Random crops, flips and distortions for training.
    Train(TrainTransform),
    /// Resize and center crop for evaluation.
    Eval(EvalTransform),
}

impl Transform {
    /// Side of the square images it produces.
    pub fn output_size(&self) -> u32 {
        match self {
            Transform::Train(t) => t.size,
            Transform::Eval(t) => t.crop,
        }
    }
}

/// How a [`Loader`] batches a dataset: batch size, order, threads, strictness and transform.
#[derive(Clone, Debug)]
pub struct LoaderConfig {
    /// Images per batch.
    pub batch_size: usize,
    /// A new order every epoch (from `seed` and the epoch), else the dataset's order.
    pub shuffle: bool,
    /// Leave out the last batch when it is shorter than `batch_size`.
    pub drop_last: bool,
    /// Seed of the shuffled order and the random transforms.
    pub seed: u64,
    /// Decoding threads (at least 1).
    pub threads: usize,
    /// Finished batches that may wait for the consumer (at least 1).
    pub prefetch: usize,
    /// An undecodable file is an error rather than a counted skip.
    pub strict: bool,
    /// Images with more pixels are skipped (or, with `strict`, an error) before decoding.
    pub pixel_budget: PixelBudget,
    /// The transform applied to each decoded image before normalisation.
    pub transform: Transform,
    /// Normalisation of the variant the batches are for ([`Variant::normalization`]).
    pub variant: Variant,
    /// Where the batch tensors are made.
    pub device: Device,
}

impl LoaderConfig {
    /// No shuffling, last batch kept, seed 0, one thread per core, 2 batches prefetched, not
    /// strict, the default pixel budget, on the CPU (flex) device.
    pub fn new(batch_size: usize, transform: Transform, variant: Variant) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: false,
            drop_last: false,
            seed: 0,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            prefetch: 2,
            strict: false,
            pixel_budget: PixelBudget::default(),
            transform,
            variant,
            device: Device::flex(),
        }
    }
}

/// One batch: NCHW normalised images, their labels, and their indices in the dataset.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Normalised images, NCHW.
    pub images: Tensor<4>,
    /// Class index of each image.
    pub labels: Tensor<1, Int>,
    /// Index of each image in the dataset.
    pub indices: Vec<usize>,
}

/// A file skipped during an epoch and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skip {
    /// Index of the file in the dataset.
    pub index: usize,
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// Decodes, transforms and batches an [`ImageFolder`] on a pool of threads, prefetching batches.
pub struct Loader {
    dataset: Arc<ImageFolder>,
    config: LoaderConfig,
    pool: Arc<rayon::ThreadPool>,
    /// The skip list of the latest epoch.
    last_skips: Mutex<Arc<Mutex<Vec<Skip>>>>,
}

impl Loader {
    /// A loader over `dataset`, or an error when the batch size is 0 or the threads cannot start.
    pub fn new(dataset: ImageFolder, config: LoaderConfig) -> Result<Self, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::Batch("batch size must be at least 1".into()));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads.max(1))
            .thread_name(|i| format!("googlenet-data-{i}"))
            .build()
            .map_err(|e| DataError::Batch(format!("cannot start decoding threads: {e}")))?;
        Ok(Loader {
            dataset: Arc::new(dataset),
            config,
            pool: Arc::new(pool),
            last_skips: Mutex::new(Arc::new(Mutex::new(Vec::new()))),
        })
    }

    /// The dataset being loaded.
    pub fn dataset(&self) -> &ImageFolder {
        &self.dataset
    }

    /// The loader's settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Batches per epoch (before any skips).
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The sample order of an epoch.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.config.shuffle {
            order.shuffle(&mut ChaCha8Rng::from_seed(seed_bytes(
                self.config.seed,
                epoch,
                u64::MAX,
            )));
        }
        order
    }

    /// The batches of one epoch, made in the background while the caller consumes them.
    /// Dropping the iterator early stops the work.
    pub fn epoch(&self, epoch: usize) -> EpochIter {
        let skips = Arc::new(Mutex::new(Vec::new()));
        self.last_skips_replace(skips.clone());
        let (sender, receiver) = sync_channel(self.config.prefetch.max(1));
        let mut batches: Vec<Vec<usize>> = self
            .order(epoch)
            .chunks(self.config.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        if self.config.drop_last
            && batches
                .last()
                .is_some_and(|b| b.len() < self.config.batch_size)
        {
            batches.pop();
        }
        let worker = Worker {
            dataset: self.dataset.clone(),
            config: self.config.clone(),
            pool: self.pool.clone(),
            skips: skips.clone(),
            epoch,
        };
        let handle = std::thread::spawn(move || worker.run(batches, sender));
        EpochIter {
            receiver: Some(receiver),
            handle: Some(handle),
            skips,
            summarised: false,
        }
    }

    /// The files skipped in the latest epoch so far.
    pub fn skipped(&self) -> Vec<Skip> {
        let current = match self.last_skips.lock() {
            Ok(last) => last.clone(),
            Err(_) => return Vec::new(),
        };
        current.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn last_skips_replace(&self, skips: Arc<Mutex<Vec<Skip>>>) {
        if let Ok(mut last) = self.last_skips.lock() {
            *last = skips;
        }
    }
}

/// The 32-byte ChaCha seed of one draw: seed, epoch, sample index (u64::MAX: the epoch's order).
fn seed_bytes(seed: u64, epoch: usize, index: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&(epoch as u64).to_le_bytes());
    bytes[16..24].copy_from_slice(&index.to_le_bytes());
    bytes
}

struct Worker {
    dataset: Arc<ImageFolder>,
    config: LoaderConfig,
    pool: Arc<rayon::ThreadPool>,
    skips: Arc<Mutex<Vec<Skip>>>,
    epoch: usize,
}

/// Batches being made on the pool at once: while the loader thread waits for one, idle decoding
/// threads start on the next, so no thread waits at the end of a batch.
const BATCHES_IN_FLIGHT: usize = 2;

/// A batch still in host memory.
struct HostBatch {
    images: Vec<f32>,
    labels: Vec<i64>,
    indices: Vec<usize>,
}

type Made = Result<Option<HostBatch>, DataError>;

impl Worker {
    fn run(self, batches: Vec<Vec<usize>>, sender: SyncSender<Result<Batch, DataError>>) {
        let worker = Arc::new(self);
        let mut batches = batches.into_iter();
        let mut in_flight: VecDeque<Receiver<Made>> = VecDeque::new();
        loop {
            while in_flight.len() < BATCHES_IN_FLIGHT {
                let Some(indices) = batches.next() else { break };
                let (done, result) = sync_channel(1);
                let job = worker.clone();
                worker.pool.spawn(move || {
                    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        job.host_batch(indices)
                    }))
                    .unwrap_or_else(|_| Err(DataError::Batch("a decoding thread panicked".into())));
                    let _ = done.send(made);
                });
                in_flight.push_back(result);
            }
            let Some(result) = in_flight.pop_front() else {
                return;
            };
            let made = result.recv().unwrap_or_else(|_| {
                Err(DataError::Batch(
                    "a decoding job ended without its batch".into(),
                ))
            });
            match made {
                Ok(None) => continue,
                Ok(Some(host)) => {
                    if sender.send(Ok(worker.to_batch(host))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = sender.send(Err(e));
                    return;
                }
            }
        }
    }

    /// One batch, `None` when every file of it was skipped. Each image is decoded, transformed
    /// and normalised by one pool thread, straight into its place in the batch.
    fn host_batch(&self, indices: Vec<usize>) -> Made {
        let samples = self.dataset.samples();
        let side = self.config.transform.output_size() as usize;
        let (images, failures) = normalized_batch(indices.len(), side, self.config.variant, |i| {
            self.image(indices[i])
        });
        let mut failed = vec![false; indices.len()];
        for (position, error) in failures {
            if self.config.strict {
                return Err(error);
            }
            failed[position] = true;
            let index = indices[position];
            eprintln!("warning: skipped {error}");
            if let Ok(mut skips) = self.skips.lock() {
                skips.push(Skip {
                    index,
                    path: samples[index].path.clone(),
                    reason: error.to_string(),
                });
            }
        }
        let kept: Vec<usize> = indices
            .into_iter()
            .zip(failed)
            .filter_map(|(index, failed)| (!failed).then_some(index))
            .collect();
        if kept.is_empty() {
            return Ok(None);
        }
        Ok(Some(HostBatch {
            images,
            labels: kept.iter().map(|&i| samples[i].label as i64).collect(),
            indices: kept,
        }))
    }

    /// The batch as tensors on the loader's device (made on the loader thread, not the pool).
    fn to_batch(&self, host: HostBatch) -> Batch {
        let side = self.config.transform.output_size() as usize;
        let device = &self.config.device;
        let n = host.labels.len();
        Batch {
            images: Tensor::<4>::from_data(
                TensorData::new(host.images, [n, 3, side, side]),
                device,
            ),
            labels: Tensor::<1, Int>::from_data(TensorData::new(host.labels, [n]), device),
            indices: host.indices,
        }
    }

    fn image(&self, index: usize) -> Result<RgbImage, DataError> {
        let path = &self.dataset.samples()[index].path;
        Ok(match &self.config.transform {
            Transform::Eval(t) => t.apply(&load_rgb_within(path, self.config.pixel_budget)?),
            Transform::Train(t) => {
                let seed = seed_bytes(self.config.seed, self.epoch, index as u64);
                let mut rng = ChaCha8Rng::from_seed(seed);
                t.load(path, self.config.pixel_budget, &mut rng)?
            }
        })
    }
}

/// The batches of one epoch, in order. At its end it prints a summary of skipped files.
pub struct EpochIter {
    receiver: Option<Receiver<Result<Batch, DataError>>>,
    handle: Option<JoinHandle<()>>,
    skips: Arc<Mutex<Vec<Skip>>>,
    summarised: bool,
}

impl EpochIter {
    /// Files skipped so far in this epoch.
    pub fn skipped(&self) -> Vec<Skip> {
        self.skips.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.receiver.as_ref()?.recv().ok();
        if item.is_none() && !self.summarised {
            self.summarised = true;
            let skipped = self.skipped().len();
            if skipped > 0 {
                eprintln!(
                    "warning: {skipped} file(s) could not be decoded and were skipped this epoch"
                );
            }
        }
        item
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Closing the channel first makes a waiting worker stop, so the join cannot hang.
        self.receiver.take();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

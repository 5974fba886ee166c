//! Dynamic batching: images from concurrent requests wait in one bounded queue; a dedicated
//! inference thread (off the async runtime) takes the first waiting image, gathers more until it
//! has `max_batch` or the first has waited `max_delay`, runs them as one network pass, and sends
//! each its own row of probabilities.
//!
//! The bound is an admission count: a request takes one permit per image before its body is
//! read and holds it until the image is answered, so waiting images, bodies being read and
//! images being decoded together never exceed `--queue`. A request that finds no permit is
//! answered 503 at once.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use image::RgbImage;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::error::ApiError;
use super::metrics::Metrics;
use super::network::ServedNetwork;

/// How the inference thread gathers and runs batches.
#[derive(Clone, Copy, Debug)]
pub struct BatchSettings {
    /// Most images run through the network at once.
    pub max_batch: usize,
    /// How long the first image of a batch waits for others.
    pub max_delay: Duration,
    /// Most images admitted and not yet answered.
    pub queue: usize,
    /// rayon threads of the network pass (0: one per core).
    pub threads: usize,
}

/// One image waiting for the network, and where its probabilities go.
struct Job {
    image: RgbImage,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Vec<f32>, String>>,
}

/// The async side of the queue: admission, submission, and the answer.
pub struct Batcher {
    sender: SyncSender<Job>,
    admission: Arc<Semaphore>,
    capacity: usize,
}

impl Batcher {
    /// Starts the inference thread that owns `net`.
    pub fn start(
        net: ServedNetwork,
        settings: BatchSettings,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Batcher> {
        let capacity = settings.queue.max(1);
        let (sender, receiver) = sync_channel(capacity);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(settings.threads)
            .thread_name(|i| format!("googlenet-infer-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        std::thread::Builder::new()
            .name("googlenet-batcher".into())
            .spawn(move || run_batches(&net, &pool, &receiver, settings, &metrics))?;
        Ok(Batcher {
            sender,
            admission: Arc::new(Semaphore::new(capacity)),
            capacity,
        })
    }

    /// A place in the queue for one image, or 503 when it is full.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::queue_full(self.capacity))
    }

    /// Images admitted and not yet answered.
    pub fn depth(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    /// The probabilities of one prepared (cropped) image; `place` is its admission, held until
    /// the answer arrives.
    pub async fn classify(
        &self,
        image: RgbImage,
        place: OwnedSemaphorePermit,
    ) -> Result<Vec<f32>, ApiError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            image,
            enqueued: Instant::now(),
            reply,
        };
        match self.sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ApiError::queue_full(self.capacity)),
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::internal("the inference thread has stopped"));
            }
        }
        let result = answer
            .await
            .map_err(|_| ApiError::internal("the inference thread dropped an image"))?;
        drop(place);
        result.map_err(ApiError::internal)
    }
}

/// The inference thread: until every sender is gone, gather a batch and run it on `pool`.
fn run_batches(
    net: &ServedNetwork,
    pool: &rayon::ThreadPool,
    receiver: &Receiver<Job>,
    settings: BatchSettings,
    metrics: &Metrics,
) {
    while let Ok(first) = receiver.recv() {
        let deadline = first.enqueued + settings.max_delay;
        let mut batch = vec![first];
        while batch.len() < settings.max_batch.max(1) {
            let wait = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(wait) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        pool.install(|| run_batch(net, batch, metrics));
    }
}

/// One network pass; a failure (or a panic) is every image's answer, and the thread goes on.
fn run_batch(net: &ServedNetwork, batch: Vec<Job>, metrics: &Metrics) {
    let (images, replies): (Vec<RgbImage>, Vec<_>) =
        batch.into_iter().map(|job| (job.image, job.reply)).unzip();
    let start = Instant::now();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| net.probabilities(&images)));
    metrics.record_batch(images.len(), start.elapsed());
    match result {
        Ok(Ok(probs)) => {
            let classes = probs.len() / images.len();
            for (reply, row) in replies.into_iter().zip(probs.chunks(classes)) {
                let _ = reply.send(Ok(row.to_vec()));
            }
        }
        Ok(Err(err)) => replies.into_iter().for_each(|reply| {
            let _ = reply.send(Err(format!("inference failed: {err}")));
        }),
        Err(_) => replies.into_iter().for_each(|reply| {
            let _ = reply.send(Err("inference panicked".to_string()));
        }),
    }
}

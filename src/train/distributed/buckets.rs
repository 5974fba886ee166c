//! Gradients summed over the ranks in buckets while the backward pass goes on, as PyTorch's
//! DistributedDataParallel does: the backward pass hands over each layer's gradients as soon as
//! they are final (the top layers first), they fill a bucket of `--bucket-mb` (4 MB by default;
//! DDP's `bucket_cap_mb` is 25), and a full bucket
//! goes to a communication thread that all-reduces it while the layers below are still being
//! computed. What is left to wait for after the backward pass is the last buckets.
//!
//! Each value is the sum of the same values over the ranks, whichever bucket carries it: on 2
//! ranks the same bits as one all-reduce of the whole vector. With 3 or more, MPI may add in
//! another order for another message size, so a different `--bucket-mb` can move the last bit
//! (every rank still receives the same bits).

use std::sync::mpsc;
use std::time::Instant;

use super::collective::Collective;

/// How the gradients' all-reduce is split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Buckets {
    /// Values per bucket; 0: one all-reduce of every gradient after the backward pass.
    pub values: usize,
}

impl Buckets {
    /// Buckets of `megabytes` of f32 values (DDP's `bucket_cap_mb`); 0: no buckets.
    pub fn megabytes(megabytes: f64) -> Buckets {
        Buckets {
            values: (megabytes.max(0.0) * 1e6 / 4.0) as usize,
        }
    }
}

impl Default for Buckets {
    /// 4 MB: it hid more of the all-reduce than DDP's 25 MB, and than 1 MB, in a 2-rank step
    /// of the paper's variant (bench/RESULTS.md, "Distributed training on MPI").
    fn default() -> Buckets {
        Buckets::megabytes(4.0)
    }
}

/// The gradients' sum over the ranks and what it cost this rank.
#[derive(Debug, Default)]
pub struct Reduced {
    /// Every value handed to [`BucketFeed::add`], in order, summed over the ranks.
    pub values: Vec<f32>,
    /// Buckets all-reduced.
    pub buckets: usize,
    /// Seconds the caller waited for the all-reduces after its last [`BucketFeed::add`].
    pub waited_seconds: f64,
    /// Seconds the all-reduces took, hidden behind the backward pass or not.
    pub allreduce_seconds: f64,
}

/// Where the backward pass hands its gradients, each block weighted by this rank's share of the
/// global batch.
pub struct BucketFeed {
    cap: usize,
    weight: f32,
    filling: Vec<f32>,
    /// To the communication thread; `None`: the buckets are all-reduced at the end, here.
    jobs: Option<mpsc::Sender<Vec<f32>>>,
    queued: Vec<Vec<f32>>,
}

impl BucketFeed {
    /// Adds `weight` times each block to the buckets; a bucket that reaches the cap goes.
    pub fn add(&mut self, blocks: &[&[f32]]) {
        for block in blocks {
            self.filling.extend(block.iter().map(|&g| self.weight * g));
            if self.cap > 0 && self.filling.len() >= self.cap {
                self.send();
            }
        }
    }

    fn send(&mut self) {
        let bucket = std::mem::take(&mut self.filling);
        match &self.jobs {
            Some(jobs) => jobs
                .send(bucket)
                .expect("the communication thread runs until the feed closes"),
            None => self.queued.push(bucket),
        }
    }
}

/// Runs `body` with a [`BucketFeed`] whose buckets `world` all-reduces (on a thread of its own
/// beside `body` where `world` allows calls from another thread, else after `body`), and returns
/// what `body` gave with the sums. `body` must make no call on `world` after its first
/// [`BucketFeed::add`]; every rank must add the same number of values in the same blocks.
pub fn all_reduce_in_buckets<R>(
    world: &Collective,
    buckets: Buckets,
    weight: f32,
    body: impl FnOnce(&mut BucketFeed) -> R,
) -> (R, Reduced) {
    let overlap = buckets.values > 0 && world.threads_may_call();
    std::thread::scope(|scope| {
        let (jobs, done) = if overlap {
            let (jobs, inbox) = mpsc::channel::<Vec<f32>>();
            let (outbox, done) = mpsc::channel();
            let world = world.clone();
            scope.spawn(move || {
                for mut bucket in inbox {
                    let started = Instant::now();
                    world.all_reduce_sum_f32(&mut bucket);
                    let seconds = started.elapsed().as_secs_f64();
                    if outbox.send((bucket, seconds)).is_err() {
                        return;
                    }
                }
            });
            (Some(jobs), Some(done))
        } else {
            (None, None)
        };
        let mut feed = BucketFeed {
            cap: buckets.values,
            weight,
            filling: Vec::new(),
            jobs,
            queued: Vec::new(),
        };
        let result = body(&mut feed);

        let started = Instant::now();
        if !feed.filling.is_empty() {
            feed.send();
        }
        let mut reduced = Reduced::default();
        drop(feed.jobs.take());
        if let Some(done) = done {
            for (bucket, seconds) in done {
                reduced.values.extend_from_slice(&bucket);
                reduced.allreduce_seconds += seconds;
                reduced.buckets += 1;
            }
        }
        for mut bucket in feed.queued {
            let started = Instant::now();
            world.all_reduce_sum_f32(&mut bucket);
            reduced.allreduce_seconds += started.elapsed().as_secs_f64();
            reduced.values.extend_from_slice(&bucket);
            reduced.buckets += 1;
        }
        reduced.waited_seconds = started.elapsed().as_secs_f64();
        (result, reduced)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_gets_its_weighted_values_back_in_order_whatever_the_buckets() {
        let blocks: Vec<Vec<f32>> = (0..7)
            .map(|b| (0..b * 3 + 1).map(|i| (b * 100 + i) as f32).collect())
            .collect();
        let expected: Vec<f32> = blocks.iter().flatten().map(|v| 0.5 * v).collect();
        // Blocks of 1, 4, 7, 10, 13, 16 and 19 values; a bucket goes once it holds the cap.
        for (values, expected_buckets) in [(0, 1), (1, 7), (4, 6), (10, 5), (1000, 1)] {
            let ((), reduced) =
                all_reduce_in_buckets(&Collective::single(), Buckets { values }, 0.5, |feed| {
                    for pair in blocks.chunks(2) {
                        let views: Vec<&[f32]> = pair.iter().map(|b| &b[..]).collect();
                        feed.add(&views);
                    }
                });
            assert_eq!(reduced.values, expected, "buckets of {values}");
            assert_eq!(reduced.buckets, expected_buckets, "buckets of {values}");
        }
    }

    #[test]
    fn megabytes_become_f32_values() {
        assert_eq!(Buckets::megabytes(25.0).values, 6_250_000);
        assert_eq!(Buckets::megabytes(0.0).values, 0);
        assert_eq!(Buckets::default().values, 1_000_000);
    }
}

//! Running a pass on the thread pool.
//!
//! A pass starts its parallel loops one after another, some 60 for an inference. Started from
//! outside the pool, each loop would wake the pool and put the calling thread to sleep until it
//! ended; so [`on_pool`] runs the whole pass on one of the pool's threads. Between two loops the
//! pool's idle threads still fall asleep, and at batch 1, where a loop lasts tens of
//! microseconds, waking them again is a cost of its own; so [`on_pool_awake`] also keeps the
//! other threads taking the pass's work while it runs, the way ONNX Runtime's and OpenMP's
//! workers spin between parallel regions. The training step, whose loops last milliseconds,
//! uses the first: there spinning gains nothing and burns the other cores.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a kept-awake thread waits without finding work before it goes back to the pool's
/// own sleep: longer than the gap between two of a pass's loops, and short, because a thread kept
/// awake on top of work of its own (another pass's, another pool user's) resumes that work only
/// once it stops.
const IDLE_LIMIT: Duration = Duration::from_micros(500);

/// Runs `pass` on one of the pool's threads.
pub(crate) fn on_pool<R: Send>(pass: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| pass())
}

/// Runs `pass` on one of the pool's threads, the others kept awake until it returns.
pub(crate) fn on_pool_awake<R: Send>(pass: impl FnOnce() -> R + Send) -> R {
    let done = AtomicBool::new(false);
    rayon::scope(|scope| {
        let home = rayon::current_thread_index();
        for _ in 1..rayon::current_num_threads() {
            let done = &done;
            scope.spawn(move |_| keep_awake(done, home));
        }
        let out = pass();
        done.store(true, Ordering::Release);
        out
    })
}

/// Takes the pool's pending work until `done`, or until none has come for [`IDLE_LIMIT`]. The
/// pass's own thread (`home`) returns at once: it has the pass to run.
fn keep_awake(done: &AtomicBool, home: Option<usize>) {
    if rayon::current_thread_index() == home {
        return;
    }
    let mut idle_since = Instant::now();
    let mut idle_rounds = 0u32;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle_rounds = 0;
            continue;
        }
        if idle_rounds == 0 {
            idle_since = Instant::now();
        }
        idle_rounds += 1;
        // The clock is read every 16 rounds: a read costs about as much as a round.
        if idle_rounds.is_multiple_of(16) && idle_since.elapsed() > IDLE_LIMIT {
            return;
        }
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    use super::{on_pool, on_pool_awake};

    /// A pass of many short parallel loops, as an inference at batch 1 runs: Σ (i + loop).
    fn short_loops(loops: u64) -> u64 {
        (0..loops)
            .map(|l| (0..20_000u64).into_par_iter().map(|i| i + l).sum::<u64>())
            .sum()
    }

    fn want(loops: u64) -> u64 {
        (0..loops).map(|l| 20_000 * l + 19_999 * 20_000 / 2).sum()
    }

    #[test]
    fn both_give_the_pass_its_result() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(on_pool(|| short_loops(60)), want(60));
            assert_eq!(on_pool_awake(|| short_loops(60)), want(60));
        });
    }

    #[test]
    fn passes_at_once_and_nested_ones_all_finish() {
        // Kept-awake threads take each other's passes' work and stack on top of one another:
        // each pass still gets its own result, whether it starts outside the pool or inside a
        // parallel loop.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let pool = &pool;
        let outside: Vec<u64> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..8u64)
                .map(|t| s.spawn(move || pool.install(|| on_pool_awake(|| short_loops(200 + t)))))
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(outside, (0..8).map(|t| want(200 + t)).collect::<Vec<_>>());
        let nested: Vec<u64> = pool.install(|| {
            (0..6u64)
                .into_par_iter()
                .map(|t| on_pool_awake(|| short_loops(t)))
                .collect()
        });
        assert_eq!(nested, (0..6).map(want).collect::<Vec<_>>());
    }
}

//! The collective operations data-parallel training needs from the processes of a job, and the
//! job of one process that needs none of them.

use std::fmt;
use std::sync::Arc;

/// What the ranks of a job can do together. Every rank calls the same operations in the same
/// order (MPI's rule for collectives); a rank that leaves the sequence stops the job with
/// [`Communicator::abort`].
pub trait Communicator: Send + Sync {
    /// Ranks in the job.
    fn world_size(&self) -> usize;
    /// This process's rank, `0..world_size`.
    fn rank(&self) -> usize;
    /// Replaces `values` on every rank by their element-wise sum over the ranks; every rank
    /// receives the same bits.
    fn all_reduce_sum_f32(&self, values: &mut [f32]);
    /// As [`Communicator::all_reduce_sum_f32`], in f64 (losses and counts).
    fn all_reduce_sum_f64(&self, values: &mut [f64]);
    /// Replaces `bytes` on every rank by rank 0's (of any length).
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>);
    /// Returns once every rank has called it.
    fn barrier(&self);
    /// Whether a thread other than the one that joined the job may make these calls while that
    /// one makes none (MPI's `MPI_THREAD_SERIALIZED` or above).
    fn threads_may_call(&self) -> bool;
    /// Whether a job of one process still sums its gradients through this communicator (NCCL
    /// does, so that one GPU exercises the path).
    fn reduces_alone(&self) -> bool {
        false
    }
    /// Ends every process of the job with `code`, without waiting for the others.
    fn abort(&self, code: i32) -> !;
    /// Where the job runs, for messages: `MPI (Open MPI v4.1.4)`.
    fn describe(&self) -> String;
}

/// A handle on the job this process is part of.
#[derive(Clone)]
pub struct Collective(Arc<dyn Communicator>);

impl Collective {
    /// Collectives over `communicator`.
    pub fn new(communicator: Arc<dyn Communicator>) -> Collective {
        Collective(communicator)
    }

    /// The job of this process alone: rank 0 of 1, every operation a no-op.
    pub fn single() -> Collective {
        Collective(Arc::new(SingleProcess))
    }

    /// Number of processes in the run.
    pub fn world_size(&self) -> usize {
        self.0.world_size()
    }

    /// This process's rank, 0 for the root.
    pub fn rank(&self) -> usize {
        self.0.rank()
    }

    /// Whether this rank writes the run's files and prints its progress (rank 0).
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Whether more than one process takes part.
    pub fn is_distributed(&self) -> bool {
        self.world_size() > 1
    }

    /// Whether each step's figures and gradients go through the job's sums
    /// ([`super::step`]): with more than one process, or with a communicator that
    /// [reduces alone](Communicator::reduces_alone).
    pub fn steps_as_job(&self) -> bool {
        self.is_distributed() || self.0.reduces_alone()
    }

    /// Replaces `values` on every rank with their sum over all ranks.
    pub fn all_reduce_sum_f32(&self, values: &mut [f32]) {
        if self.steps_as_job() {
            self.0.all_reduce_sum_f32(values);
        }
    }

    /// Replaces `values` on every rank with their sum over all ranks.
    pub fn all_reduce_sum_f64(&self, values: &mut [f64]) {
        if self.is_distributed() {
            self.0.all_reduce_sum_f64(values);
        }
    }

    /// Replaces `bytes` on every rank with rank 0's.
    pub fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        if self.is_distributed() {
            self.0.broadcast_bytes(bytes);
        }
    }

    /// Waits until every rank reaches this point.
    pub fn barrier(&self) {
        if self.is_distributed() {
            self.0.barrier();
        }
    }

    /// Whether another thread may make the calls while this one makes none
    /// ([`Communicator::threads_may_call`]).
    pub fn threads_may_call(&self) -> bool {
        self.0.threads_may_call()
    }

    /// Whether `flag` is set on any rank (one small all-reduce), so that every rank takes the
    /// same decision.
    pub fn any(&self, flag: bool) -> bool {
        let mut value = [f64::from(u8::from(flag))];
        self.all_reduce_sum_f64(&mut value);
        value[0] > 0.0
    }

    /// Ends every process of the run with exit code `code`.
    pub fn abort(&self, code: i32) -> ! {
        self.0.abort(code)
    }

    /// A line saying how the processes communicate and how many there are.
    pub fn describe(&self) -> String {
        self.0.describe()
    }
}

impl fmt::Debug for Collective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rank {} of {} ({})",
            self.rank(),
            self.world_size(),
            self.describe()
        )
    }
}

/// One process on its own: rank 0 of 1.
struct SingleProcess;

impl Communicator for SingleProcess {
    fn world_size(&self) -> usize {
        1
    }

    fn rank(&self) -> usize {
        0
    }

    fn all_reduce_sum_f32(&self, _values: &mut [f32]) {}

    fn all_reduce_sum_f64(&self, _values: &mut [f64]) {}

    fn broadcast_bytes(&self, _bytes: &mut Vec<u8>) {}

    fn barrier(&self) {}

    fn threads_may_call(&self) -> bool {
        true
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }

    fn describe(&self) -> String {
        "one process".into()
    }
}

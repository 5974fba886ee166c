//! Why a distributed run could not start or go on.

use std::path::{Path, PathBuf};

/// Why ranks of a distributed run cannot agree or communicate.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// The ranks were started with different configurations or data.
    #[error(
        "the ranks of this job were started with different configurations or data: rank(s) \
         {ranks:?} differ from rank 0 (the recipe, variant, hyperparameters, --data listing and \
         image size must be the same on every rank)"
    )]
    Mismatch {
        /// The ranks whose configuration differs from rank 0's.
        ranks: Vec<usize>,
    },
    /// The batch has fewer images than there are ranks.
    #[error(
        "--batch {batch} cannot be split over {world_size} ranks: use a batch of at least \
         {world_size}"
    )]
    BatchTooSmall {
        /// The global batch size asked for.
        batch: usize,
        /// The number of ranks.
        world_size: usize,
    },
    /// After a step the ranks' weights are no longer identical.
    #[error(
        "after step {step} the weights of rank(s) {ranks:?} differ from rank 0's; the ranks \
         must apply identical updates (is every rank running the same build?)"
    )]
    Diverged {
        /// The ranks whose weights differ from rank 0's.
        ranks: Vec<usize>,
        /// The step after which they were compared.
        step: u64,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// Something rank 0 shares could not be sent or received.
    #[error("rank 0's {what} could not be {action}: {reason}")]
    Transfer {
        /// What was shared, e.g. `"initial weights"` or `"latest checkpoint"`.
        what: &'static str,
        /// The step that failed, e.g. `"packed"`, `"loaded"` or `"found"`.
        action: &'static str,
        /// What the communication layer reported.
        reason: String,
    },
}

impl DistributedError {
    /// Whether every rank reached this error at the same point, so that the job can end
    /// normally instead of being aborted.
    pub fn is_agreed(&self) -> bool {
        matches!(
            self,
            DistributedError::Mismatch { .. }
                | DistributedError::BatchTooSmall { .. }
                | DistributedError::Diverged { .. }
        )
    }
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DistributedError + '_ {
    move |source| DistributedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

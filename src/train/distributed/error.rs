//! Why a distributed run could not start or go on.

use std::path::{Path, PathBuf};

/// Why ranks of a distributed run cannot agree or communicate.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    #[error(
        "the ranks of this job were started with different configurations or data: rank(s) \
         {ranks:?} differ from rank 0 (the recipe, variant, hyperparameters, --data listing and \
         image size must be the same on every rank)"
    )]
    Mismatch { ranks: Vec<usize> },
    #[error(
        "--batch {batch} cannot be split over {world_size} ranks: use a batch of at least \
         {world_size}"
    )]
    BatchTooSmall { batch: usize, world_size: usize },
    #[error(
        "after step {step} the weights of rank(s) {ranks:?} differ from rank 0's; the ranks \
         must apply identical updates (is every rank running the same build?)"
    )]
    Diverged { ranks: Vec<usize>, step: u64 },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something rank 0 shares could not be sent or received.
    #[error("rank 0's {what} could not be {action}: {reason}")]
    Transfer {
        what: &'static str,
        action: &'static str,
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

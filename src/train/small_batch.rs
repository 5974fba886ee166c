//! Batches too small to train on. With BatchNorm (the torchvision variant) a step needs at least 2
//! images per replica: the statistics of one image are the image itself, PyTorch refuses it and
//! the fast path does too. A batch becomes that small when the epoch's last batch is short
//! (244 images in batches of 81 leave 1) or when undecodable files are skipped from it.
//!
//! Such a batch is dropped, and counted in a note at the epoch's end, rather than refilled from
//! the next images of the epoch's order: a refill would move every later batch's boundaries by
//! the number of skipped files, so a batch's images would depend on which files failed earlier
//! and a checkpoint's "batch N of the epoch" would no longer name the same images after a
//! file is repaired or breaks. Dropping keeps every batch a pure function of the seed and the
//! epoch (what exact resume relies on) and loses at most one image per replica and batch, which
//! later epochs' different orders put into full batches (PyTorch's `drop_last` makes the same
//! trade for the last batch).

use serde::Serialize;

use crate::model::Variant;

/// The fewest images a training step of `variant` over `replicas` data-parallel replicas takes:
/// 2 per replica with BatchNorm, else 1 per replica.
pub fn smallest_trainable_batch(variant: Variant, replicas: usize) -> usize {
    let per_replica = if variant.conv_has_batch_norm() { 2 } else { 1 };
    per_replica * replicas.max(1)
}

/// Batches of an epoch left out because they were too small.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// Batches left out.
    pub batches: u64,
    /// Images in those batches.
    pub images: u64,
}

impl Dropped {
    /// Counts one more batch of `images` images left out.
    pub fn add(&mut self, images: usize) {
        self.batches += 1;
        self.images += images as u64;
    }

    /// The note printed at the end of an epoch that dropped batches (`None` when none was).
    pub fn note(&self, epoch: usize, smallest: usize) -> Option<String> {
        (self.batches > 0).then(|| {
            format!(
                "note: epoch {epoch}: {} batch(es) of fewer than {smallest} images ({} image(s) in \
                 all) left out: a training step with BatchNorm needs at least 2 images per replica",
                self.batches, self.images
            )
        })
    }
}

//! What a run prints as it goes: the progress bar of an epoch, and the lines after it.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::metrics::EpochRecord;

/// An epoch's progress bar (batches, loss, ETA), drawn on stderr unless `quiet`.
pub(super) fn progress_bar(quiet: bool, len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len as u64),
        if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} batches  {msg}  ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {}/{epochs}", epoch + 1));
    bar
}

/// The two lines printed after an epoch.
pub(super) fn epoch_lines(r: &EpochRecord, epochs: usize, improved: bool) -> String {
    format!(
        "epoch {}/{epochs}  lr {:.6}  {:.1} img/s  {:.0} s{}\n  train  {}\n  val    {}",
        r.epoch,
        r.learning_rate,
        r.images_per_second,
        r.seconds,
        if improved { "  (best so far)" } else { "" },
        r.train.line(),
        r.val.line()
    )
}

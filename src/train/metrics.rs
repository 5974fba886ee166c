//! Per-epoch figures: each classifier's loss, top-1 and top-5 on the training and validation
//! images (the columns the seed's Keras run reported), and `OUT/metrics.csv`.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::eval::metrics::{TOP_K, top_k};

/// The three classifiers, in the order the seed's Keras model lists its outputs.
pub const HEADS: [&str; 3] = ["main", "aux1", "aux2"];

/// Running sums of one classifier over an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeadSums {
    /// Sum over images of the cross-entropy (batch mean times batch size).
    pub loss_sum: f64,
    /// Images whose top-scoring class is right.
    pub top1: usize,
    /// Images whose class is among the five top-scoring ones.
    pub top5: usize,
    /// Images counted.
    pub images: usize,
}

/// Running sums over the images of one epoch of one split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    /// Images counted.
    pub images: usize,
    /// Sum over images of the recipe's weighted loss.
    pub total_loss_sum: f64,
    /// Sums of the main classifier and the two auxiliary ones, in that order.
    pub heads: [HeadSums; 3],
}

/// One classifier's results for one batch: its mean loss and its logits, row-major.
pub struct HeadBatch<'a> {
    /// The classifier's mean loss over the batch.
    pub loss: f64,
    /// The classifier's logits, row-major `[images, classes]`.
    pub logits: &'a [f32],
}

impl EpochSums {
    /// Adds a batch with `labels`, its weighted loss and each classifier's result.
    pub fn add(&mut self, labels: &[i64], total_loss: f64, heads: [Option<HeadBatch<'_>>; 3]) {
        let n = labels.len();
        self.images += n;
        self.total_loss_sum += total_loss * n as f64;
        for (sums, head) in self.heads.iter_mut().zip(heads) {
            let Some(head) = head else { continue };
            let classes = head.logits.len() / n.max(1);
            let k = TOP_K.min(classes);
            sums.loss_sum += head.loss * n as f64;
            sums.images += n;
            for (row, &label) in head.logits.chunks_exact(classes).zip(labels) {
                let top = top_k(row, k);
                let label = label as usize;
                sums.top1 += usize::from(top[0] == label);
                sums.top5 += usize::from(top.contains(&label));
            }
        }
    }

    /// Means over the images seen so far.
    pub fn stats(&self) -> SplitStats {
        let per = |x: f64, n: usize| if n == 0 { f64::NAN } else { x / n as f64 };
        let head = |s: &HeadSums| {
            (s.images > 0).then(|| HeadStats {
                loss: per(s.loss_sum, s.images),
                top1: per(s.top1 as f64, s.images),
                top5: per(s.top5 as f64, s.images),
            })
        };
        SplitStats {
            loss: per(self.total_loss_sum, self.images),
            main: head(&self.heads[0]).unwrap_or(HeadStats::missing()),
            aux1: head(&self.heads[1]),
            aux2: head(&self.heads[2]),
        }
    }
}

/// Mean loss and accuracies of one classifier.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadStats {
    /// Mean loss over the images.
    pub loss: f64,
    /// Fraction of images whose top-scoring class is right.
    pub top1: f64,
    /// Fraction of images whose class is among the 5 (or all, with fewer classes) top scores.
    pub top5: f64,
}

impl HeadStats {
    fn missing() -> HeadStats {
        HeadStats {
            loss: f64::NAN,
            top1: f64::NAN,
            top5: f64::NAN,
        }
    }
}

/// A split's figures for one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitStats {
    /// The recipe's weighted loss.
    pub loss: f64,
    /// The main classifier.
    pub main: HeadStats,
    /// The first auxiliary classifier, when the model has one.
    pub aux1: Option<HeadStats>,
    /// The second auxiliary classifier, when the model has one.
    pub aux2: Option<HeadStats>,
}

impl SplitStats {
    /// The main classifier and the auxiliary ones, in that order.
    pub fn heads(&self) -> [Option<HeadStats>; 3] {
        [Some(self.main), self.aux1, self.aux2]
    }

    /// `loss 0.693 | main 0.690 51.0% 100.0% | aux1 ...`: the epoch line's half for one split.
    pub fn line(&self) -> String {
        let mut s = format!("loss {:.4}", self.loss);
        for (name, head) in HEADS.iter().zip(self.heads()) {
            if let Some(h) = head {
                s += &format!(
                    " | {name} {:.4} top-1 {:5.1}% top-5 {:5.1}%",
                    h.loss,
                    100.0 * h.top1,
                    100.0 * h.top5
                );
            }
        }
        s
    }
}

/// Everything recorded about one finished epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// The learning rate of the epoch's last step.
    pub learning_rate: f64,
    /// Training loss and accuracies, measured as the epoch went.
    pub train: SplitStats,
    /// Validation loss and accuracies after the epoch.
    pub val: SplitStats,
    /// Training images per second over the epoch (forward, backward and update).
    pub images_per_second: f64,
    /// Wall time of the epoch including validation.
    pub seconds: f64,
}

/// The header of `metrics.csv`.
pub fn csv_header() -> String {
    let mut cols = vec!["epoch".to_string(), "learning_rate".to_string()];
    for split in ["train", "val"] {
        cols.push(format!("{split}_loss"));
        for head in HEADS {
            for m in ["loss", "top1", "top5"] {
                cols.push(format!("{split}_{head}_{m}"));
            }
        }
    }
    cols.push("images_per_second".into());
    cols.push("seconds".into());
    cols.join(",")
}

/// One row of `metrics.csv`; missing classifiers leave empty cells.
pub fn csv_row(r: &EpochRecord) -> String {
    let mut cells = vec![r.epoch.to_string(), format!("{:e}", r.learning_rate)];
    for split in [&r.train, &r.val] {
        cells.push(format!("{:.6}", split.loss));
        for head in split.heads() {
            match head {
                Some(h) => cells.extend([
                    format!("{:.6}", h.loss),
                    format!("{:.6}", h.top1),
                    format!("{:.6}", h.top5),
                ]),
                None => cells.extend(["".into(), "".into(), "".into()]),
            }
        }
    }
    cells.push(format!("{:.2}", r.images_per_second));
    cells.push(format!("{:.2}", r.seconds));
    cells.join(",")
}

/// Appends `record` to the CSV at `path` (with a header if the file is new) and flushes it to disk.
pub fn append_csv(path: &Path, record: &EpochRecord) -> std::io::Result<()> {
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if new {
        writeln!(file, "{}", csv_header())?;
    }
    writeln!(file, "{}", csv_row(record))?;
    file.sync_data()
}

/// Replaces the CSV at `path` by the rows of `history`, atomically (on resume: the rows of the
/// epochs the checkpoint holds, whatever the file had).
pub fn rewrite_csv(path: &Path, history: &[EpochRecord]) -> std::io::Result<()> {
    let mut text = csv_header() + "\n";
    for r in history {
        text += &csv_row(r);
        text.push('\n');
    }
    super::checkpoint::write_atomically(path, text.as_bytes())
}

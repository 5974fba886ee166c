//! Classification accounting: top-k, top-1 and top-5 accuracy (the measures of the ILSVRC 2014
//! classification challenge, section 7 of the paper), per-class accuracy and the class pairs most
//! often confused.

use std::collections::BTreeMap;

use serde::Serialize;

/// The "top-5" of the paper's top-5 error (section 7): an image counts as correct when its true
/// class is among the 5 highest scores. With fewer classes, k is the number of classes.
pub const TOP_K: usize = 5;

/// The indices of the `k` highest scores, highest first. Ties go to the lower class index; NaN
/// scores rank below every number. `k` larger than the number of classes gives them all.
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let key = |i: usize| {
        let s = scores[i];
        if s.is_nan() { f32::NEG_INFINITY } else { s }
    };
    // Stable sort on descending score keeps equal scores in index order.
    order.sort_by(|&a, &b| {
        key(b)
            .total_cmp(&key(a))
            .then_with(|| scores[a].is_nan().cmp(&scores[b].is_nan()))
    });
    order.truncate(k);
    order
}

/// A label or a score row that does not fit the number of classes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricsError {
    /// A label is not one of the classes.
    #[error("label {label} is not one of the {classes} classes")]
    Label {
        /// The offending label.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
    /// A score row does not have one score per class.
    #[error("{got} scores for a {classes}-class problem")]
    Scores {
        /// The number of scores in the row.
        got: usize,
        /// The number of classes.
        classes: usize,
    },
}

/// Images and correct answers of one class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClassTally {
    /// Images of the class.
    pub images: usize,
    /// Images whose top-1 prediction is the class.
    pub top1_correct: usize,
    /// Images whose class is among the top-5 predictions.
    pub top5_correct: usize,
}

/// Images of class `actual` whose top-1 prediction was `predicted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ConfusedPair {
    /// The true class.
    pub actual: usize,
    /// The predicted class.
    pub predicted: usize,
    /// Images with this mistake.
    pub count: usize,
}

/// Running counts over an evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    classes: usize,
    per_class: Vec<ClassTally>,
    /// (actual, predicted) -> images, for wrong top-1 predictions only.
    confusion: BTreeMap<(usize, usize), usize>,
}

impl Metrics {
    /// Empty counts for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            per_class: vec![ClassTally::default(); classes],
            confusion: BTreeMap::new(),
        }
    }

    /// The k of top-k accuracy: [`TOP_K`], or the number of classes when there are fewer.
    pub fn k(&self) -> usize {
        TOP_K.min(self.classes)
    }

    /// Counts one image of class `label` with its class `scores` (probabilities or logits).
    pub fn record(&mut self, label: usize, scores: &[f32]) -> Result<(), MetricsError> {
        if scores.len() != self.classes {
            return Err(MetricsError::Scores {
                got: scores.len(),
                classes: self.classes,
            });
        }
        if label >= self.classes {
            return Err(MetricsError::Label {
                label,
                classes: self.classes,
            });
        }
        let top = top_k(scores, self.k());
        let tally = &mut self.per_class[label];
        tally.images += 1;
        if top[0] == label {
            tally.top1_correct += 1;
        } else {
            *self.confusion.entry((label, top[0])).or_default() += 1;
        }
        if top.contains(&label) {
            tally.top5_correct += 1;
        }
        Ok(())
    }

    /// Images counted so far.
    pub fn images(&self) -> usize {
        self.per_class.iter().map(|t| t.images).sum()
    }

    /// Fraction of images whose top-1 prediction is right; `None` before any image.
    pub fn top1_accuracy(&self) -> Option<f64> {
        ratio(
            self.per_class.iter().map(|t| t.top1_correct).sum(),
            self.images(),
        )
    }

    /// Fraction of images whose class is among the top [`Metrics::k`] predictions.
    pub fn top5_accuracy(&self) -> Option<f64> {
        ratio(
            self.per_class.iter().map(|t| t.top5_correct).sum(),
            self.images(),
        )
    }

    /// Counts of each class, in label order.
    pub fn per_class(&self) -> &[ClassTally] {
        &self.per_class
    }

    /// The `n` most frequent (actual, predicted) mistakes, most frequent first, ties in class order.
    pub fn most_confused(&self, n: usize) -> Vec<ConfusedPair> {
        let mut pairs: Vec<ConfusedPair> = self
            .confusion
            .iter()
            .map(|(&(actual, predicted), &count)| ConfusedPair {
                actual,
                predicted,
                count,
            })
            .collect();
        // The map iterates in (actual, predicted) order; a stable sort keeps it among equal counts.
        pairs.sort_by_key(|p| std::cmp::Reverse(p.count));
        pairs.truncate(n);
        pairs
    }

    /// Everything above as one serialisable record, with at most `confused` confused pairs.
    pub fn report(&self, confused: usize) -> MetricsReport {
        let top1 = self.top1_accuracy();
        let top5 = self.top5_accuracy();
        MetricsReport {
            images: self.images(),
            classes: self.classes,
            k: self.k(),
            top1_accuracy: top1,
            top5_accuracy: top5,
            top1_error: top1.map(|a| 1.0 - a),
            top5_error: top5.map(|a| 1.0 - a),
            per_class: self
                .per_class
                .iter()
                .enumerate()
                .map(|(class, t)| ClassAccuracy {
                    class,
                    images: t.images,
                    top1_correct: t.top1_correct,
                    top1_accuracy: ratio(t.top1_correct, t.images),
                })
                .collect(),
            most_confused: self.most_confused(confused),
        }
    }
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Accuracy of one class; `None` when the evaluation had no image of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassAccuracy {
    /// The class index.
    pub class: usize,
    /// Images of the class.
    pub images: usize,
    /// Images whose top-1 prediction is the class.
    pub top1_correct: usize,
    /// Fraction of the class's images predicted right at top-1.
    pub top1_accuracy: Option<f64>,
}

/// The results of an evaluation; accuracies are `None` (JSON null) when there were no images.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricsReport {
    /// Images evaluated.
    pub images: usize,
    /// Number of classes.
    pub classes: usize,
    /// The k of the top-5 figures (5, or the number of classes when there are fewer).
    pub k: usize,
    /// Fraction of images whose top-1 prediction is right.
    pub top1_accuracy: Option<f64>,
    /// Fraction of images whose class is among the top-k predictions.
    pub top5_accuracy: Option<f64>,
    /// 1 - top-1 accuracy, the paper's top-1 error rate (section 7).
    pub top1_error: Option<f64>,
    /// 1 - top-5 accuracy, the paper's top-5 error rate (section 7, Table 3).
    pub top5_error: Option<f64>,
    /// Accuracy of each class, in label order.
    pub per_class: Vec<ClassAccuracy>,
    /// The most frequent top-1 mistakes, most frequent first.
    pub most_confused: Vec<ConfusedPair>,
}

//! The training loss of each recipe: how the three classifiers' cross-entropies are computed and
//! weighted.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use serde::{Deserialize, Serialize};

use crate::model::GoogLeNetOutput;

/// Keras' `backend.epsilon()`: its categorical cross-entropy clips probabilities to
/// `[EPSILON, 1 - EPSILON]` before the logarithm.
pub const KERAS_EPSILON: f64 = 1e-7;

/// How a classifier's cross-entropy is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// `-log_softmax(logits)[label]`, as PyTorch's `cross_entropy` and Caffe's `SoftmaxWithLoss`.
    SoftmaxCrossEntropy,
    /// Keras' `categorical_crossentropy` on the softmax output: probabilities clipped to
    /// `[1e-7, 1 - 1e-7]`, then `-log(p[label])`. The clip zeroes the gradient of an image whose
    /// true class has a probability below 1e-7.
    KerasClippedProbabilities,
}

/// The loss of a recipe: `main + aux * (aux1 + aux2)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossWeighting {
    /// Which loss each classifier gets.
    pub kind: LossKind,
    /// Weight of each auxiliary classifier's loss.
    pub aux: f64,
}

impl LossWeighting {
    /// Section 5 of the paper: "their loss is added to the total loss of the network with a
    /// discount weight (the losses of the auxiliary classifiers were weighted by 0.3)".
    pub fn paper() -> LossWeighting {
        LossWeighting {
            kind: LossKind::SoftmaxCrossEntropy,
            aux: 0.3,
        }
    }

    /// The seed's `compile(loss='categorical_crossentropy')` with three outputs: the same loss on
    /// every output, weight 1 each, computed from probabilities.
    pub fn keras_seed() -> LossWeighting {
        LossWeighting {
            kind: LossKind::KerasClippedProbabilities,
            aux: 1.0,
        }
    }

    /// The weighted loss of the network's outputs for `labels`, and its parts.
    pub fn loss(&self, output: &GoogLeNetOutput, labels: Tensor<1, Int>) -> LossParts {
        let main = cross_entropy(output.main.clone(), labels.clone(), self.kind);
        let head = |h: &Option<Tensor<2>>| {
            h.as_ref()
                .map(|logits| cross_entropy(logits.clone(), labels.clone(), self.kind))
        };
        let (aux1, aux2) = (head(&output.aux1), head(&output.aux2));
        let mut total = main.clone();
        if self.aux > 0.0 {
            for aux in [&aux1, &aux2].into_iter().flatten() {
                total = total + aux.clone().mul_scalar(self.aux);
            }
        }
        LossParts {
            total,
            main,
            aux1,
            aux2,
        }
    }
}

impl std::fmt::Display for LossWeighting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            LossKind::SoftmaxCrossEntropy => "softmax cross-entropy",
            LossKind::KerasClippedProbabilities => "Keras cross-entropy on clipped probabilities",
        };
        write!(f, "{kind}, main + {} x (aux1 + aux2)", self.aux)
    }
}

/// The total loss and each classifier's mean cross-entropy (one-element tensors).
#[derive(Clone, Debug)]
pub struct LossParts {
    /// The recipe's weighted total.
    pub total: Tensor<1>,
    /// The main classifier's loss.
    pub main: Tensor<1>,
    /// The first auxiliary classifier's loss, when it has one.
    pub aux1: Option<Tensor<1>>,
    /// The second auxiliary classifier's loss, when it has one.
    pub aux2: Option<Tensor<1>>,
}

/// Mean cross-entropy of `logits` `[batch, classes]` against `labels` `[batch]`.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>, kind: LossKind) -> Tensor<1> {
    let [batch, _] = logits.dims();
    let log_p = match kind {
        LossKind::SoftmaxCrossEntropy => log_softmax(logits, 1),
        LossKind::KerasClippedProbabilities => softmax(logits, 1)
            .clamp(KERAS_EPSILON, 1.0 - KERAS_EPSILON)
            .log(),
    };
    log_p.gather(1, labels.reshape([batch, 1])).mean().neg()
}

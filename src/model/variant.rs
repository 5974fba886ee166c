//! What differs between the three references the model is built to match.

use serde::{Deserialize, Serialize};

/// Which reference the network reproduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Table 1 of the paper: biased convolutions, LocalRespNorm in the stem, true 5x5 branches,
    /// aux heads with FC 1024 and dropout 0.7, dropout 0.4 before the classifier.
    Paper,
    /// Layer for layer torchvision 0.29's `googlenet`: BatchNorm (eps 1e-3) after every bias-free
    /// convolution, a 3x3 kernel in the "5x5" branch, a 2x2/2 pool before 5a, adaptive pools.
    Torchvision,
    /// The seed's Keras code: TensorFlow 'same' padding, BatchNorm only in the stem, aux heads with
    /// Dense 256 and dropout 0.4, a linear Dense 256 before the classifier, (h, w, c) flatten order.
    KerasSeed,
}

impl Variant {
    /// Every variant, in the order the CLI lists them.
    pub const ALL: [Variant; 3] = [Variant::Paper, Variant::Torchvision, Variant::KerasSeed];

    /// The name used on the command line and in weight files.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Paper => "paper",
            Variant::Torchvision => "torchvision",
            Variant::KerasSeed => "keras-seed",
        }
    }

    /// Parses [`Variant::name`].
    pub fn from_name(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Convolutions carry a bias (paper, Keras) or are followed by BatchNorm instead (torchvision).
    pub fn conv_has_batch_norm(self) -> bool {
        self == Variant::Torchvision
    }

    /// Kernel of the "5x5" branch: torchvision keeps a 3x3 there (a known upstream bug kept for
    /// weight compatibility).
    pub fn branch3_kernel(self) -> usize {
        match self {
            Variant::Torchvision => 3,
            _ => 5,
        }
    }

    /// Dropout before the main classifier: 40% in the paper (section 5) and the seed, 20% in torchvision.
    pub fn main_dropout(self) -> f64 {
        match self {
            Variant::Torchvision => 0.2,
            _ => 0.4,
        }
    }

    /// Dropout inside the auxiliary heads: 70% (section 5) except the seed's 40%.
    pub fn aux_dropout(self) -> f64 {
        match self {
            Variant::KerasSeed => 0.4,
            _ => 0.7,
        }
    }

    /// Width of the auxiliary heads' hidden FC layer: 1024 (section 5) except the seed's 256.
    pub fn aux_hidden(self) -> usize {
        match self {
            Variant::KerasSeed => 256,
            _ => 1024,
        }
    }

    /// The seed's main head has a linear Dense 256 before the 1000-way classifier.
    pub fn main_bottleneck(self) -> Option<usize> {
        match self {
            Variant::KerasSeed => Some(256),
            _ => None,
        }
    }

    /// TensorFlow 'same' padding (asymmetric, extra pixel at the bottom and right).
    pub fn tf_same_padding(self) -> bool {
        self == Variant::KerasSeed
    }

    /// The mean and standard deviation the network expects its RGB input normalised with.
    /// torchvision: ImageNet statistics; Keras seed: [0, 1]; paper: mean subtraction only (section 6:
    /// "subtracting the mean"), here the ImageNet mean in [0, 1] units and unit scale.
    pub fn normalization(self) -> ([f32; 3], [f32; 3]) {
        const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
        const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
        match self {
            Variant::Torchvision => (IMAGENET_MEAN, IMAGENET_STD),
            Variant::KerasSeed => ([0.0; 3], [1.0; 3]),
            Variant::Paper => (IMAGENET_MEAN, [1.0; 3]),
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

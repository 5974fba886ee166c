//! Table 1 of the paper ("Going Deeper with Convolutions", Szegedy et al. 2014) as data.

use burn::nn::LocalResponseNormConfig;

/// One inception module's filter counts: the columns "#1x1" to "pool proj" of Table 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InceptionSpec {
    /// The module's name in Table 1 ("inception (3a)" is `inception3a`).
    pub name: &'static str,
    /// Channels of the module's input: the previous layer's output depth in Table 1.
    pub in_channels: usize,
    /// Filters of the 1x1 branch (Table 1, "#1x1").
    pub ch1x1: usize,
    /// Filters of the 1x1 reduction before the 3x3 convolution (Table 1, "#3x3 reduce").
    pub ch3x3_reduce: usize,
    /// Filters of the 3x3 convolution (Table 1, "#3x3").
    pub ch3x3: usize,
    /// Filters of the 1x1 reduction before the 5x5 convolution (Table 1, "#5x5 reduce").
    pub ch5x5_reduce: usize,
    /// Filters of the 5x5 convolution (Table 1, "#5x5").
    pub ch5x5: usize,
    /// Filters of the 1x1 projection after the 3x3 max pool (Table 1, "pool proj").
    pub pool_proj: usize,
}

impl InceptionSpec {
    /// Channels of the concatenated output: the four branches side by side (Figure 2b).
    pub const fn out_channels(&self) -> usize {
        self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj
    }
}

const fn spec(
    name: &'static str,
    in_channels: usize,
    [ch1x1, ch3x3_reduce, ch3x3, ch5x5_reduce, ch5x5, pool_proj]: [usize; 6],
) -> InceptionSpec {
    InceptionSpec {
        name,
        in_channels,
        ch1x1,
        ch3x3_reduce,
        ch3x3,
        ch5x5_reduce,
        ch5x5,
        pool_proj,
    }
}

/// The nine inception modules of Table 1, in network order.
pub const INCEPTIONS: [InceptionSpec; 9] = [
    spec("inception3a", 192, [64, 96, 128, 16, 32, 32]),
    spec("inception3b", 256, [128, 128, 192, 32, 96, 64]),
    spec("inception4a", 480, [192, 96, 208, 16, 48, 64]),
    spec("inception4b", 512, [160, 112, 224, 24, 64, 64]),
    spec("inception4c", 512, [128, 128, 256, 24, 64, 64]),
    spec("inception4d", 512, [112, 144, 288, 32, 64, 64]),
    spec("inception4e", 528, [256, 160, 320, 32, 128, 128]),
    spec("inception5a", 832, [256, 160, 320, 32, 128, 128]),
    spec("inception5b", 832, [384, 192, 384, 48, 128, 128]),
];

/// Stem channels of Table 1: conv 7x7/2 (64), conv 1x1 reduce (64), conv 3x3 (192).
pub const STEM_CHANNELS: [usize; 3] = [64, 64, 192];

/// Channels of the 1x1 convolution in each auxiliary classifier (section 5: "128 filters").
pub const AUX_CONV_CHANNELS: usize = 128;

/// Features after the final average pool (Table 1: avg pool 7x7/1 -> 1x1x1024).
pub const FEATURES: usize = 1024;

/// Number of ImageNet-1k classes (Table 1: linear 1x1x1000).
pub const IMAGENET_CLASSES: usize = 1000;

/// Index into [`INCEPTIONS`] of the modules that feed the auxiliary classifiers (4a and 4d, section 5).
pub const AUX_TAPS: [usize; 2] = [2, 5];

/// The stem's local response normalisation (Table 1's two "LocalRespNorm" rows, with the
/// parameters of the BVLC GoogLeNet the paper's results were reproduced with): a window of 5
/// channels, alpha 1e-4, beta 0.75, k 1, i.e. `x / (1 + 1e-4 / 5 * sum x^2)^0.75`.
pub const STEM_LRN: LocalResponseNormConfig = LocalResponseNormConfig {
    size: 5,
    alpha: 1e-4,
    beta: 0.75,
    k: 1.0,
};

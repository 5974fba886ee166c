//! The whole network: Table 1 of the paper, top to bottom.

use burn::nn::{Dropout, DropoutConfig, Linear, LocalResponseNorm};
use burn::prelude::*;

use super::architecture::{
    AUX_TAPS, FEATURES, IMAGENET_CLASSES, INCEPTIONS, STEM_CHANNELS, STEM_LRN,
};
use super::aux_head::{AuxHead, flatten, linear};
use super::batch_norm::{BatchNorm, BatchNormStyle};
use super::conv_unit::ConvUnit;
use super::inception::Inception;
use super::input_size::trunk_sides;
use super::pool::Pool;
use super::summary::SummaryError;
use super::variant::Variant;

/// How to build a [`GoogLeNet`].
#[derive(Clone, Debug, PartialEq)]
pub struct GoogLeNetConfig {
    /// Which GoogLeNet to build: the paper's, torchvision's or the Keras seed's.
    pub variant: Variant,
    /// Number of classes of the classifiers; 1000 for ImageNet (section 7).
    pub num_classes: usize,
    /// Side of the square input. Only the heads that pool without adapting (the paper's and the
    /// seed's) depend on it; 224 in the paper.
    pub input_size: usize,
    /// torchvision's `transform_input`: re-normalise ImageNet-normalised input to [-1, 1] as the
    /// ported TensorFlow weights (`googlenet-1378be20.pth`) expect.
    pub transform_input: bool,
}

impl GoogLeNetConfig {
    /// The variant's network for the 1000 ImageNet classes at 224x224 input (Table 1).
    pub fn new(variant: Variant) -> Self {
        Self {
            variant,
            num_classes: IMAGENET_CLASSES,
            input_size: 224,
            transform_input: false,
        }
    }

    /// The same configuration with `num_classes` classes.
    pub fn with_num_classes(mut self, num_classes: usize) -> Self {
        self.num_classes = num_classes;
        self
    }

    /// The same configuration with square inputs of side `input_size`.
    pub fn with_input_size(mut self, input_size: usize) -> Self {
        self.input_size = input_size;
        self
    }

    /// The same configuration with torchvision's `transform_input` on or off.
    pub fn with_transform_input(mut self, transform_input: bool) -> Self {
        self.transform_input = transform_input;
        self
    }

    /// Builds the network with the variant's initialisation, or says why the input is too small.
    pub fn init(&self, device: &Device) -> Result<GoogLeNet, SummaryError> {
        let v = self.variant;
        let sides = trunk_sides(v, self.input_size)?;
        let [c1, c2, c3] = STEM_CHANNELS;
        let incs: Vec<Inception> = INCEPTIONS
            .iter()
            .map(|s| Inception::new(v, s, device))
            .collect();
        let aux = |tap: usize| {
            AuxHead::new(
                v,
                INCEPTIONS[tap].out_channels(),
                sides.stage4,
                self.num_classes,
                device,
            )
        };
        let main_pool = match v {
            Variant::Paper | Variant::Torchvision => Pool::AdaptiveAvg { size: 1 },
            Variant::KerasSeed => Pool::Avg {
                kernel: 7,
                stride: 1,
            },
        };
        let pooled = main_pool.output_size(sides.stage5).ok_or_else(|| {
            SummaryError::too_small("avgpool", [FEATURES, sides.stage5, sides.stage5])
        })?;
        let features = FEATURES * pooled * pooled;
        let (fc_bottleneck, fc_in) = match v.main_bottleneck() {
            Some(width) => (Some(linear(v, features, width, device)), width),
            None => (None, features),
        };
        let stride2 = if v.tf_same_padding() {
            Pool::MaxSame {
                kernel: 3,
                stride: 2,
            }
        } else {
            Pool::MaxCeil {
                kernel: 3,
                stride: 2,
                padding: 0,
            }
        };
        let keras_bn =
            |c| (v == Variant::KerasSeed).then(|| BatchNorm::new(c, BatchNormStyle::KERAS, device));
        let mut it = incs.into_iter();
        let mut next = || it.next().expect("nine inception modules");
        Ok(GoogLeNet {
            conv1: ConvUnit::new(v, [3, c1], 7, 2, device),
            bn1: keras_bn(c1),
            conv2: ConvUnit::new(v, [c1, c2], 1, 1, device),
            conv3: ConvUnit::new(v, [c2, c3], 3, 1, device),
            bn2: keras_bn(c3),
            lrn: (v == Variant::Paper).then(|| STEM_LRN.init()),
            inception3a: next(),
            inception3b: next(),
            inception4a: next(),
            inception4b: next(),
            inception4c: next(),
            inception4d: next(),
            inception4e: next(),
            inception5a: next(),
            inception5b: next(),
            aux1: Some(aux(AUX_TAPS[0])?),
            aux2: Some(aux(AUX_TAPS[1])?),
            dropout: DropoutConfig::new(v.main_dropout()).init(),
            fc_bottleneck,
            fc: linear(v, fc_in, self.num_classes, device),
            stride2_pool: stride2,
            pool4: match v {
                Variant::Torchvision => Pool::MaxCeil {
                    kernel: 2,
                    stride: 2,
                    padding: 0,
                },
                _ => stride2,
            },
            main_pool,
            variant: v,
            transform_input: self.transform_input,
            input_size: self.input_size,
            flatten_hwc: v.tf_same_padding(),
        })
    }
}

/// GoogLeNet. Field names are torchvision's state_dict keys, so its weights map one to one
/// (`inception3a.branch2.1.conv.weight`, `aux1.fc2.bias`, ...).
#[derive(Module, Debug)]
pub struct GoogLeNet {
    /// The 7x7/2 convolution of the stem (Table 1).
    pub conv1: ConvUnit,
    /// Keras seed: BatchNorm after the first max pool, where the paper has LocalRespNorm.
    pub bn1: Option<BatchNorm>,
    /// The 1x1 reduction before the stem's 3x3 convolution (Table 1, "#3x3 reduce" 64).
    pub conv2: ConvUnit,
    /// The stem's 3x3/1 convolution with 192 filters (Table 1).
    pub conv3: ConvUnit,
    /// Keras seed: BatchNorm after the 3x3 convolution, where the paper has LocalRespNorm.
    pub bn2: Option<BatchNorm>,
    /// Paper: LocalRespNorm at the same two places (Table 1, Figure 3).
    pub lrn: Option<LocalResponseNorm>,
    /// Inception (3a) of Table 1.
    pub inception3a: Inception,
    /// Inception (3b) of Table 1.
    pub inception3b: Inception,
    /// Inception (4a) of Table 1; the first auxiliary classifier reads its output (section 5).
    pub inception4a: Inception,
    /// Inception (4b) of Table 1.
    pub inception4b: Inception,
    /// Inception (4c) of Table 1.
    pub inception4c: Inception,
    /// Inception (4d) of Table 1; the second auxiliary classifier reads its output (section 5).
    pub inception4d: Inception,
    /// Inception (4e) of Table 1.
    pub inception4e: Inception,
    /// Inception (5a) of Table 1.
    pub inception5a: Inception,
    /// Inception (5b) of Table 1.
    pub inception5b: Inception,
    /// The auxiliary classifier on inception 4a (section 5), when the model has one.
    pub aux1: Option<AuxHead>,
    /// The auxiliary classifier on inception 4d (section 5), when the model has one.
    pub aux2: Option<AuxHead>,
    /// Dropout before the classifier: 40% in the paper (Table 1).
    pub dropout: Dropout,
    /// Keras seed: the linear Dense 256 before the classifier.
    pub fc_bottleneck: Option<Linear>,
    /// The linear classifier after the average pool (Table 1).
    pub fc: Linear,
    /// The 3x3/2 max pools of the stem and after inception 3b (Table 1).
    #[module(skip)]
    pub stride2_pool: Pool,
    /// The pool before inception 5a: 3x3/2 in the paper, 2x2/2 in torchvision.
    #[module(skip)]
    pub pool4: Pool,
    /// The average pool before the classifier: 7x7/1 in the paper (Table 1).
    #[module(skip)]
    pub main_pool: Pool,
    /// Which GoogLeNet this is, deciding padding, flatten order and the heads.
    #[module(skip)]
    pub variant: Variant,
    /// torchvision's `transform_input`: re-normalise ImageNet-normalised input to [-1, 1] first.
    pub transform_input: bool,
    /// Flatten (h, w, c) like Keras' `Flatten` on NHWC tensors instead of (c, h, w).
    pub flatten_hwc: bool,
    /// The input side the heads were built for (see [`GoogLeNetConfig::input_size`]).
    #[module(skip)]
    pub input_size: usize,
}

/// The three outputs of the network; the auxiliary ones only when asked for.
#[derive(Debug, Clone)]
pub struct GoogLeNetOutput {
    /// Logits of the main classifier.
    pub main: Tensor<2>,
    /// Logits of the first auxiliary classifier (on inception 4a), when asked for.
    pub aux1: Option<Tensor<2>>,
    /// Logits of the second auxiliary classifier (on inception 4d), when asked for.
    pub aux2: Option<Tensor<2>>,
}

impl GoogLeNet {
    /// Inference: main classifier logits only; the auxiliary heads are not computed
    /// (the paper discards them at inference time, section 5).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.run(x, false).main
    }

    /// Main, aux1 (after 4a) and aux2 (after 4d) logits, for training or for references that
    /// need all three.
    pub fn forward_with_aux(&self, x: Tensor<4>) -> GoogLeNetOutput {
        self.run(x, true)
    }

    fn run(&self, x: Tensor<4>, with_aux: bool) -> GoogLeNetOutput {
        let x = if self.transform_input {
            transform_input(x)
        } else {
            x
        };
        let x = self.stride2_pool.forward(self.conv1.forward(x));
        let x = self.stem_norm(x, &self.bn1);
        let x = self.conv3.forward(self.conv2.forward(x));
        let x = self.stem_norm(x, &self.bn2);
        let x = self.stride2_pool.forward(x);
        let x = self.inception3b.forward(self.inception3a.forward(x));
        let x = self.stride2_pool.forward(x);
        let x = self.inception4a.forward(x);
        let aux1 = self
            .aux1
            .as_ref()
            .filter(|_| with_aux)
            .map(|h| h.forward(x.clone()));
        let x = self
            .inception4d
            .forward(self.inception4c.forward(self.inception4b.forward(x)));
        let aux2 = self
            .aux2
            .as_ref()
            .filter(|_| with_aux)
            .map(|h| h.forward(x.clone()));
        let x = self.pool4.forward(self.inception4e.forward(x));
        let x = self.inception5b.forward(self.inception5a.forward(x));
        let x = flatten(self.main_pool.forward(x), self.flatten_hwc);
        let x = self.dropout.forward(x);
        let x = match &self.fc_bottleneck {
            Some(fc) => fc.forward(x),
            None => x,
        };
        GoogLeNetOutput {
            main: self.fc.forward(x),
            aux1,
            aux2,
        }
    }

    fn stem_norm(&self, x: Tensor<4>, bn: &Option<BatchNorm>) -> Tensor<4> {
        match (bn, &self.lrn) {
            (Some(bn), _) => bn.forward(x),
            (None, Some(lrn)) => lrn.forward(x),
            (None, None) => x,
        }
    }

    /// The nine inception modules with their Table 1 names, in order.
    pub fn inceptions(&self) -> [(&'static str, &Inception); 9] {
        let m = [
            &self.inception3a,
            &self.inception3b,
            &self.inception4a,
            &self.inception4b,
            &self.inception4c,
            &self.inception4d,
            &self.inception4e,
            &self.inception5a,
            &self.inception5b,
        ];
        std::array::from_fn(|i| (INCEPTIONS[i].name, m[i]))
    }

    /// Number of classes of the main classifier.
    pub fn num_classes(&self) -> usize {
        self.fc.weight.dims()[1]
    }

    /// The same network with new, freshly initialised classifiers for `num_classes` classes (the
    /// main `fc` and each auxiliary head's `fc2`): the start of fine-tuning pretrained weights on
    /// another set of classes. Everything before the classifiers keeps its weights.
    pub fn with_new_classifiers(mut self, num_classes: usize, device: &Device) -> Self {
        let v = self.variant;
        self.fc = linear(v, self.fc.weight.dims()[0], num_classes, device);
        for head in [&mut self.aux1, &mut self.aux2].into_iter().flatten() {
            head.fc2 = linear(v, head.fc2.weight.dims()[0], num_classes, device);
        }
        self
    }

    /// Sets every dropout probability to zero (for comparisons with references made without dropout).
    pub fn without_dropout(mut self) -> Self {
        self.dropout.prob = 0.0;
        for head in [&mut self.aux1, &mut self.aux2].into_iter().flatten() {
            head.dropout.prob = 0.0;
        }
        self
    }

    /// Checks that an input of `height` x `width` fits the network, without running it.
    pub fn check_input(
        &self,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<(), SummaryError> {
        if channels != 3 {
            return Err(SummaryError::Channels(channels));
        }
        self.summary_for(height, width).map(|_| ())
    }
}

/// torchvision's `_transform_input` as a per-channel affine map `x * scale + shift`: from ImageNet
/// normalisation to the [-1, 1] scaling of the TensorFlow-trained weights.
pub fn transform_input_affine() -> ([f32; 3], [f32; 3]) {
    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];
    (
        std::array::from_fn(|c| STD[c] / 0.5),
        std::array::from_fn(|c| (MEAN[c] - 0.5) / 0.5),
    )
}

fn transform_input(x: Tensor<4>) -> Tensor<4> {
    let (scale, shift) = transform_input_affine();
    let channels = (0..3)
        .map(|c| {
            x.clone()
                .narrow(1, c, 1)
                .mul_scalar(scale[c])
                .add_scalar(shift[c])
        })
        .collect();
    Tensor::cat(channels, 1)
}

//! The planned network: GoogLeNet's layers (Table 1) in the order `GoogLeNet::forward` runs them.

mod int8_maps;

use std::sync::Mutex;

use half::bf16;

use super::activation::Activation;
use super::bf16::Bf16Kernel;
use super::conv::{ConvGemm, MapElement, Source, Target};
use super::int8::Int8Kernel;
use super::map::{InputAffine, Shape, View, grow, input_affine, to_nhwc};
use super::matmul::affine;
use super::norm::StemNorm;
use super::pool::{avg_pool, max_pool};
use super::threads;
use super::window::Window;
use super::{InferenceError, tensor_values};
use crate::model::inception::Inception;
use crate::model::pool::Pool;
use crate::model::precision::Precision;
use crate::model::{GoogLeNet, Variant};
use burn::nn::Linear;

/// GoogLeNet for inference on the CPU, built from a [`GoogLeNet`]'s weights (see the
/// [module documentation](super) for what makes it fast). Gives the main classifier's logits,
/// as [`GoogLeNet::forward`] does; dropout is the identity and the auxiliary heads are not run.
pub struct InferenceNet {
    variant: Variant,
    /// The bf16 kernel of the convolutions, or `None` in f32.
    bf16: Option<Bf16Kernel>,
    /// The int8 kernel of the convolutions, or `None` in f32 or bf16.
    int8: Option<Int8Kernel>,
    /// torchvision's `transform_input` (identity when off), applied while converting to NHWC.
    input_affine: InputAffine,
    conv1: ConvGemm,
    stride2_pool: Pool,
    norm1: Option<StemNorm>,
    conv2: ConvGemm,
    conv3: ConvGemm,
    norm2: Option<StemNorm>,
    inceptions: Vec<InceptionPlan>,
    main_pool: Pool,
    flatten_hwc: bool,
    /// The Keras seed's linear bottleneck (if any), then the classifier.
    dense: Vec<Dense>,
    workspace: Mutex<Workspace<f32>>,
    bf16_workspace: Mutex<Workspace<bf16>>,
    /// The u8 maps in int8 ([`int8_maps`]).
    int8_maps: Mutex<Workspace<u8>>,
}

/// One inception module: its three 1x1 convolutions on the module input fused into one product
/// (columns: branch 1, 3x3 reduction, 5x5 reduction), the two larger convolutions on the
/// reductions, and the pool projection.
struct InceptionPlan {
    /// The max pool that precedes the module (before 4a and 5a), if any.
    pool_before: Option<Pool>,
    fused_1x1: ConvGemm,
    /// Widths of branch 1, the 3x3 reduction and the 5x5 reduction.
    widths: [usize; 3],
    branch2: ConvGemm,
    branch3: ConvGemm,
    pool: Pool,
    projection: ConvGemm,
}

/// A fully connected layer: `[inputs, outputs]` weights (burn's layout) and a bias.
struct Dense {
    inputs: usize,
    outputs: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// Activation buffers kept from one call to the next: the current map, the next one, and the
/// inception modules' reductions.
struct Workspace<T> {
    current: Vec<T>,
    next: Vec<T>,
    reduced: Vec<T>,
}

impl<T> Default for Workspace<T> {
    fn default() -> Self {
        Self {
            current: Vec::new(),
            next: Vec::new(),
            reduced: Vec::new(),
        }
    }
}

impl InferenceNet {
    /// Copies and rearranges the weights of `model` (running statistics for BatchNorm).
    pub fn from_model(model: &GoogLeNet) -> Result<Self, InferenceError> {
        let stem_norm = |bn: &Option<crate::model::batch_norm::BatchNorm>| match (bn, &model.lrn) {
            (Some(bn), _) => StemNorm::batch_norm(bn).map(Some),
            (None, Some(_)) => Ok(Some(StemNorm::LocalResponse)),
            (None, None) => Ok(None),
        };
        let inceptions = model
            .inceptions()
            .into_iter()
            .map(|(name, module)| {
                let pool_before = match name {
                    "inception4a" => Some(model.stride2_pool),
                    "inception5a" => Some(model.pool4),
                    _ => None,
                };
                InceptionPlan::new(module, pool_before)
            })
            .collect::<Result<_, _>>()?;
        let dense = model
            .fc_bottleneck
            .iter()
            .chain([&model.fc])
            .map(Dense::new)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            variant: model.variant,
            bf16: None,
            int8: None,
            input_affine: input_affine(model),
            conv1: ConvGemm::from_unit(&model.conv1)?,
            stride2_pool: model.stride2_pool,
            norm1: stem_norm(&model.bn1)?,
            conv2: ConvGemm::from_unit(&model.conv2)?,
            conv3: ConvGemm::from_unit(&model.conv3)?,
            norm2: stem_norm(&model.bn2)?,
            inceptions,
            main_pool: model.main_pool,
            flatten_hwc: model.flatten_hwc,
            dense,
            workspace: Mutex::new(Workspace::default()),
            bf16_workspace: Mutex::new(Workspace::default()),
            int8_maps: Mutex::new(Workspace::default()),
        })
    }

    /// `model` computing in `precision`: f32, or bf16 products with f32 sums (the convolutions;
    /// BatchNorm folded in f32 first, the classifier in f32) on the fastest kernel this CPU has
    /// ([`Bf16Kernel::detect`]). f16 is refused: the fast engine has no f16 kernels.
    pub fn with_precision(model: &GoogLeNet, precision: Precision) -> Result<Self, InferenceError> {
        let net = Self::from_model(model)?;
        match precision {
            Precision::F32 => Ok(net),
            Precision::Bf16 => net.in_bf16(Bf16Kernel::detect()),
            Precision::F16 => Err(InferenceError::Unsupported(
                "f16 (it computes in f32 or bf16)".into(),
            )),
        }
    }

    /// The same network with its convolutions' products in bf16 on `kernel`, or an error when
    /// this CPU or OS cannot run the kernel.
    pub fn in_bf16(self, kernel: Bf16Kernel) -> Result<Self, InferenceError> {
        if !kernel.runs_here() {
            return Err(InferenceError::Unsupported(format!(
                "the {} bf16 kernel on this CPU or OS",
                kernel.name()
            )));
        }
        Ok(Self {
            bf16: Some(kernel),
            ..self.map_convs(|conv| conv.in_bf16(kernel))
        })
    }

    /// The same network with `convert` applied to every convolution.
    fn map_convs(self, convert: impl Fn(ConvGemm) -> ConvGemm) -> Self {
        Self {
            conv1: convert(self.conv1),
            conv2: convert(self.conv2),
            conv3: convert(self.conv3),
            inceptions: self
                .inceptions
                .into_iter()
                .map(|m| InceptionPlan {
                    fused_1x1: convert(m.fused_1x1),
                    branch2: convert(m.branch2),
                    branch3: convert(m.branch3),
                    projection: convert(m.projection),
                    ..m
                })
                .collect(),
            ..self
        }
    }

    /// Records the range of every convolution's input over `input` (as
    /// [`Self::forward`] takes it): int8's calibration, one batch of images at a time, before
    /// [`Self::into_int8`]. Only the f32 network calibrates.
    pub fn calibrate(&self, input: &[f32], shape: [usize; 4]) -> Result<(), InferenceError> {
        if self.bf16.is_some() || self.int8.is_some() {
            return Err(InferenceError::Unsupported(
                "int8 calibration of a network already in bf16 or int8 (calibrate in f32)".into(),
            ));
        }
        self.convs().for_each(|conv| conv.record_inputs(true));
        let result = self.forward(input, shape);
        self.convs().for_each(|conv| conv.record_inputs(false));
        result.map(drop)
    }

    /// The same network with the products of every convolution in int8 on `kernel`
    /// ([`super::int8`]), their inputs quantized over the ranges [`Self::calibrate`] recorded.
    /// The maps after the first convolution are u8 up to the last module ([`int8_maps`]); the
    /// classifier stays f32.
    pub fn into_int8(self, kernel: Int8Kernel) -> Result<Self, InferenceError> {
        if self.bf16.is_some() || self.int8.is_some() {
            return Err(InferenceError::Unsupported(
                "int8 quantization of a network already in bf16 or int8".into(),
            ));
        }
        if !self.convs().all(ConvGemm::is_calibrated) {
            return Err(InferenceError::Unsupported(
                "int8 before calibration (no image has passed through the network)".into(),
            ));
        }
        let mut net = Self {
            int8: Some(kernel),
            ..self.map_convs(|conv| conv.in_int8(kernel))
        };
        net.connect_int8_readers()?;
        Ok(net)
    }

    /// The int8 kernel of the convolutions, if they run in int8.
    pub fn int8_kernel(&self) -> Option<Int8Kernel> {
        self.int8
    }

    /// Every convolution, in the order the network runs them.
    fn convs(&self) -> impl Iterator<Item = &ConvGemm> {
        let stem = [&self.conv1, &self.conv2, &self.conv3];
        let modules = self
            .inceptions
            .iter()
            .flat_map(|m| [&m.fused_1x1, &m.branch2, &m.branch3, &m.projection]);
        stem.into_iter().chain(modules)
    }

    /// The precision of the convolutions' products, and the bf16 kernel.
    pub fn precision(&self) -> (Precision, Option<Bf16Kernel>) {
        match self.bf16 {
            Some(kernel) => (Precision::Bf16, Some(kernel)),
            None => (Precision::F32, None),
        }
    }

    /// The variant the network was built from.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Number of classes of the classifier.
    pub fn num_classes(&self) -> usize {
        self.dense.last().map_or(0, |d| d.outputs)
    }

    /// Main logits, `[batch, classes]` row-major, for `input` in NCHW layout of `shape`
    /// `[batch, 3, height, width]`, normalised as the variant expects (as for `GoogLeNet::forward`).
    /// Calls from several threads take turns (they share the activation buffers).
    pub fn forward(&self, input: &[f32], shape: [usize; 4]) -> Result<Vec<f32>, InferenceError> {
        super::check_input(input, shape)?;
        match (self.bf16, self.int8) {
            (Some(_), _) => on_pool(&self.bf16_workspace, |ws| {
                self.forward_maps(input, shape, ws, |ws, s| self.trunk(ws, s))
            }),
            (None, Some(_)) => on_pool(&self.workspace, |ws| {
                self.forward_maps(input, shape, ws, |ws, s| self.int8_trunk(ws, s))
            }),
            (None, None) => on_pool(&self.workspace, |ws| {
                self.forward_maps(input, shape, ws, |ws, s| self.trunk(ws, s))
            }),
        }
    }

    /// [`Self::forward`] with feature maps of `T`, the stem and the inception modules run by
    /// `trunk` from the input map to the last module's map.
    fn forward_maps<T: MapElement>(
        &self,
        input: &[f32],
        shape: [usize; 4],
        ws: &mut Workspace<T>,
        trunk: impl FnOnce(&mut Workspace<T>, Shape) -> Option<Shape>,
    ) -> Result<Vec<f32>, InferenceError> {
        let [n, _, h, w] = shape;
        let too_small = InferenceError::InputTooSmall {
            height: h,
            width: w,
        };
        let mut s = Shape { n, h, w, c: 3 };
        grow(&mut ws.current, s.len());
        to_nhwc(input, s, self.input_affine, &mut ws.current);
        s = trunk(ws, s).ok_or_else(|| too_small.clone())?;
        let (mut x, pooled) = avg_pool(View::dense(&ws.current, s), self.main_pool)
            .ok_or_else(|| too_small.clone())?;
        if !self.flatten_hwc && pooled.h * pooled.w > 1 {
            x = nhwc_to_nchw(&x, pooled);
        }
        let mut width = pooled.len() / n;
        for layer in &self.dense {
            if layer.inputs != width {
                return Err(InferenceError::FeatureMismatch {
                    height: h,
                    width: w,
                    features: width,
                    expected: layer.inputs,
                });
            }
            x = layer.forward(&x, n);
            width = layer.outputs;
        }
        Ok(x)
    }
}

impl InferenceNet {
    /// The stem and the inception modules on maps of `T`, from the input map of shape `s`.
    fn trunk<T: MapElement>(&self, ws: &mut Workspace<T>, s: Shape) -> Option<Shape> {
        let s = self.stem(ws, s)?;
        self.modules(ws, s)
    }

    /// The stem (Table 1's rows up to inception 3a) on maps of `T`.
    fn stem<T: MapElement>(&self, ws: &mut Workspace<T>, mut s: Shape) -> Option<Shape> {
        s = conv(&self.conv1, ws, s)?;
        s = pool(self.stride2_pool, ws, s)?;
        if let Some(norm) = &self.norm1 {
            norm.apply(&mut ws.current[..s.len()], s.c);
        }
        s = conv(&self.conv2, ws, s)?;
        s = conv(&self.conv3, ws, s)?;
        if let Some(norm) = &self.norm2 {
            norm.apply(&mut ws.current[..s.len()], s.c);
        }
        pool(self.stride2_pool, ws, s)
    }

    /// The inception modules on maps of `T`, from the current map of shape `s`.
    fn modules<T: MapElement>(&self, ws: &mut Workspace<T>, mut s: Shape) -> Option<Shape> {
        for module in &self.inceptions {
            if let Some(p) = module.pool_before {
                s = pool(p, ws, s)?;
            }
            s = module.run(ws, s)?;
        }
        Some(s)
    }
}

/// Runs `pass` on `workspace`, once the calling thread holds it, on the thread pool with its
/// other threads kept awake ([`threads::on_pool_awake`]).
fn on_pool<T: Send, R: Send>(
    workspace: &Mutex<Workspace<T>>,
    pass: impl FnOnce(&mut Workspace<T>) -> R + Send,
) -> R {
    let mut guard = workspace
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let ws = &mut *guard;
    threads::on_pool_awake(|| pass(ws))
}

/// A convolution unit from the current map into the next one.
fn conv<T: MapElement>(layer: &ConvGemm, ws: &mut Workspace<T>, s: Shape) -> Option<Shape> {
    let out = conv_output(layer, s)?;
    grow(&mut ws.next, out.len());
    let source = conv_source(layer, View::dense(&ws.current, s));
    layer.run(source, &[Target::dense(&mut ws.next, out)]);
    std::mem::swap(&mut ws.current, &mut ws.next);
    Some(out)
}

/// The shape of `layer`'s output on a map of shape `s`, if it fits.
fn conv_output(layer: &ConvGemm, s: Shape) -> Option<Shape> {
    let window = layer.window([s.h, s.w])?;
    Some(Shape {
        h: window.out[0],
        w: window.out[1],
        c: layer.out_channels,
        ..s
    })
}

/// How `layer` reads `input`: its pixels (1x1/1) or their patches.
fn conv_source<'a, T>(layer: &ConvGemm, input: View<'a, T>) -> Source<'a, T> {
    if layer.kernel == 1 && layer.stride == 1 {
        Source::Pixels(input)
    } else {
        Source::Patches(input)
    }
}

/// A max pool from the current map into the next one.
fn pool<T: Activation>(p: Pool, ws: &mut Workspace<T>, s: Shape) -> Option<Shape> {
    let window = Window::max_pool(p, [s.h, s.w])?;
    let out = Shape {
        h: window.out[0],
        w: window.out[1],
        ..s
    };
    grow(&mut ws.next, out.len());
    max_pool(View::dense(&ws.current, s), &window, &mut ws.next);
    std::mem::swap(&mut ws.current, &mut ws.next);
    Some(out)
}

impl InceptionPlan {
    fn new(module: &Inception, pool_before: Option<Pool>) -> Result<Self, InferenceError> {
        let b1 = ConvGemm::from_unit(&module.branch1)?;
        let r3 = ConvGemm::from_unit(&module.branch2[0])?;
        let r5 = ConvGemm::from_unit(&module.branch3[0])?;
        let widths = [b1.out_channels, r3.out_channels, r5.out_channels];
        let plan = Self {
            pool_before,
            fused_1x1: ConvGemm::concat(&[b1, r3, r5]),
            widths,
            branch2: ConvGemm::from_unit(&module.branch2[1])?,
            branch3: ConvGemm::from_unit(&module.branch3[1])?,
            pool: module.pool,
            projection: ConvGemm::from_unit(&module.branch4)?,
        };
        let one_by_one = [&plan.fused_1x1, &plan.projection];
        if one_by_one.iter().any(|c| c.kernel != 1 || c.stride != 1) {
            return Err(InferenceError::Unsupported(
                "an inception 1x1 convolution that is not 1x1/1".into(),
            ));
        }
        Ok(plan)
    }

    fn out_channels(&self) -> usize {
        self.widths[0]
            + self.branch2.out_channels
            + self.branch3.out_channels
            + self.projection.out_channels
    }

    /// The window of the pool projection's max pool on a map of shape `s`, if every branch keeps
    /// the map's size there.
    fn pool_window(&self, s: Shape) -> Option<Window> {
        let side = [s.h, s.w];
        let keeps_size = |w: Option<Window>| w.filter(|w| w.out == side);
        keeps_size(self.branch2.window(side))?;
        keeps_size(self.branch3.window(side))?;
        keeps_size(Window::max_pool(self.pool, side))
    }

    /// The module from the current map into the next one; every branch keeps the map's size.
    fn run<T: MapElement>(&self, ws: &mut Workspace<T>, s: Shape) -> Option<Shape> {
        let Workspace {
            current,
            next,
            reduced,
        } = ws;
        let pool = self.pool_window(s)?;
        let m = s.pixels();
        let out_c = self.out_channels();
        let [n1, r3, r5] = self.widths;
        grow(next, m * out_c);
        grow(reduced, m * (r3 + r5));
        let x = View::dense(current, s);
        self.fused_1x1.run(
            Source::Pixels(x),
            &[
                Target::new(0..n1, next, m, out_c, 0),
                Target::new(n1..n1 + r3 + r5, reduced, m, r3 + r5, 0),
            ],
        );
        let mut offset = n1;
        for (conv, channels) in [(&self.branch2, 0..r3), (&self.branch3, r3..r3 + r5)] {
            let input = View::channels(
                reduced,
                s.with_channels(channels.len()),
                r3 + r5,
                channels.start,
            );
            let width = conv.out_channels;
            conv.run(
                Source::Patches(input),
                &[Target::new(0..width, next, m, out_c, offset)],
            );
            offset += width;
        }
        let width = self.projection.out_channels;
        self.projection.run(
            Source::MaxPooled(x, pool),
            &[Target::new(0..width, next, m, out_c, offset)],
        );
        std::mem::swap(current, next);
        Some(s.with_channels(out_c))
    }
}

impl Dense {
    fn new(layer: &Linear) -> Result<Self, InferenceError> {
        let [inputs, outputs] = layer.weight.dims();
        Ok(Self {
            inputs,
            outputs,
            weight: tensor_values(layer.weight.val())?,
            bias: match &layer.bias {
                Some(b) => tensor_values(b.val())?,
                None => vec![0.0; outputs],
            },
        })
    }

    /// `x · W + b` for `batch` rows of `x`.
    fn forward(&self, x: &[f32], batch: usize) -> Vec<f32> {
        let mut out = Vec::new();
        affine(x, batch, &self.weight, &self.bias, &mut out);
        out
    }
}

/// `[n, h, w, c]` to `[n, c, h, w]` (burn's flatten order for the paper and torchvision).
fn nhwc_to_nchw(x: &[f32], s: Shape) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    let hw = s.h * s.w;
    for image in 0..s.n {
        for p in 0..hw {
            for c in 0..s.c {
                out[(image * s.c + c) * hw + p] = x[(image * hw + p) * s.c + c];
            }
        }
    }
    out
}

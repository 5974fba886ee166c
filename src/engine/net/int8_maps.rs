//! The network in int8 on u8 maps: each convolution's epilogue quantizes its output for the
//! layer that reads it (the next convolution, the next module's input, a 3x3 or 5x5 branch's
//! reduction), so no map between the first convolution and the last module is f32 and none is
//! quantized on its own. The stride-2 max pools run on the u8 maps, which gives the same bytes as
//! quantizing after the pool (quantization is monotone). A stem with LocalRespNorm or BatchNorm
//! between its convolutions (the paper's, the Keras seed's) stays on f32 maps, its output
//! quantized once for the first module. The first convolution quantizes the f32 image; the last
//! module writes f32 for the average pool and the classifier. The quantized values are those
//! each convolution would compute from an f32 map, so the logits are the same as with f32 maps.

use super::{InceptionPlan, InferenceNet, Workspace, conv_output, conv_source, pool};
use crate::engine::InferenceError;
use crate::engine::conv::{ConvGemm, Source, Target};
use crate::engine::int8::{Int8Weights, QUAD};
use crate::engine::int8_conv::{Int8Target, quantize_map};
use crate::engine::map::{Shape, View, grow};

/// Where a module's output channels go: the next module's u8 map, or the last module's f32 map.
enum ModuleOut<'a> {
    /// The next u8 map.
    U8(&'a mut Vec<u8>),
    /// The f32 workspace, whose next map it writes.
    F32(&'a mut Workspace<f32>),
}

impl ModuleOut<'_> {
    /// Product columns `cols` into channels `offset..` of a map of `pixels` pixels of `channels`.
    fn target(
        &mut self,
        cols: std::ops::Range<usize>,
        [pixels, channels, offset]: [usize; 3],
    ) -> Int8Target<'_> {
        match self {
            Self::U8(map) => Int8Target::U8(Target::new(cols, map, pixels, channels, offset)),
            Self::F32(ws) => {
                Int8Target::F32(Target::new(cols, &mut ws.next, pixels, channels, offset))
            }
        }
    }
}

/// The weights of an int8 convolution (a network in int8 has them everywhere).
fn weights(conv: &ConvGemm) -> &Int8Weights {
    conv.int8().expect("every convolution is in int8").weights()
}

/// How an int8 convolution quantizes its input: `1 / s_x` and the zero point.
fn quantization(conv: &ConvGemm) -> (f32, u8) {
    let w = weights(conv);
    (w.input_inverse(), w.zero_point())
}

fn set_readers(conv: &mut ConvGemm, inverse: Vec<f32>) {
    conv.int8_mut()
        .expect("every convolution is in int8")
        .set_readers(inverse);
}

impl InferenceNet {
    /// Tells every convolution that writes a u8 map the input scale of the layer that reads each
    /// of its output columns. Refused where the maps cannot be u8 maps as laid out here: a 1x1
    /// convolution's input whose channels are not a multiple of 4 (it reads the pixels where they
    /// lie), a reader whose zero point is not 0, or a module input that its 1x1 convolutions and
    /// its pool projection quantize differently.
    pub(super) fn connect_int8_readers(&mut self) -> Result<(), InferenceError> {
        let refuse = |what: &str| {
            Err(InferenceError::Unsupported(format!(
                "int8 maps with {what}"
            )))
        };
        let inputs: Vec<_> = self
            .inceptions
            .iter()
            .map(|m| quantization(&m.fused_1x1))
            .collect();
        for (i, module) in self.inceptions.iter_mut().enumerate() {
            if quantization(&module.projection) != inputs[i] {
                return refuse("a pool projection quantized apart from its module's input");
            }
            if !module.fused_1x1.in_channels.is_multiple_of(QUAD) {
                return refuse("a module input whose channels are not a multiple of 4");
            }
            let [b2, b3] = [&module.branch2, &module.branch3].map(quantization);
            let next = inputs.get(i + 1).copied();
            if [Some(b2), Some(b3), next]
                .into_iter()
                .flatten()
                .any(|(_, zero)| zero != 0)
            {
                return refuse("a reader of a ReLU's output whose zero point is not 0");
            }
            // Columns that go to the last module's f32 map have no reader: 0 marks them.
            let next_inverse = next.map_or(0.0, |(inverse, _)| inverse);
            let [n1, r3, r5] = module.widths;
            let mut fused_readers = vec![next_inverse; n1];
            fused_readers.extend([b2.0].repeat(r3));
            fused_readers.extend([b3.0].repeat(r5));
            set_readers(&mut module.fused_1x1, fused_readers);
            for conv in [
                &mut module.branch2,
                &mut module.branch3,
                &mut module.projection,
            ] {
                let readers = vec![next_inverse; conv.out_channels];
                set_readers(conv, readers);
            }
        }
        if !self.stem_in_u8() {
            return Ok(());
        }
        let pointwise = self.conv2.kernel == 1 && self.conv2.stride == 1;
        if pointwise && !self.conv2.in_channels.is_multiple_of(QUAD) {
            return refuse("a 1x1 stem convolution whose input channels are not a multiple of 4");
        }
        let first_module = inputs.first().copied();
        let readers = [quantization(&self.conv2), quantization(&self.conv3)];
        let readers = readers.into_iter().chain(first_module);
        if readers.clone().any(|(_, zero)| zero != 0) {
            return refuse("a reader of a ReLU's output whose zero point is not 0");
        }
        for (conv, (inverse, _)) in [&mut self.conv1, &mut self.conv2, &mut self.conv3]
            .into_iter()
            .zip(readers)
        {
            let readers = vec![inverse; conv.out_channels];
            set_readers(conv, readers);
        }
        Ok(())
    }

    /// Whether the stem runs on u8 maps: no normalisation between its convolutions.
    fn stem_in_u8(&self) -> bool {
        self.norm1.is_none() && self.norm2.is_none()
    }

    /// The stem and the inception modules in int8, from the input image's f32 map in `ws` (of
    /// shape `s`) to the last module's f32 map, in `ws` too.
    pub(super) fn int8_trunk(&self, ws: &mut Workspace<f32>, s: Shape) -> Option<Shape> {
        let mut guard = self.int8_maps.lock().unwrap_or_else(|p| p.into_inner());
        let maps = &mut *guard;
        let s = match self.stem_in_u8() {
            true => self.u8_stem(ws, maps, s)?,
            false => {
                let s = self.stem(ws, s)?;
                grow(&mut maps.current, s.len());
                let first = weights(&self.inceptions.first()?.fused_1x1);
                quantize_map(first, View::dense(&ws.current, s), s.c, &mut maps.current);
                s
            }
        };
        self.int8_modules(maps, ws, s)
    }

    /// The stem from the image's f32 map into the current u8 map.
    fn u8_stem(&self, ws: &Workspace<f32>, maps: &mut Workspace<u8>, s: Shape) -> Option<Shape> {
        let out = conv_output(&self.conv1, s)?;
        grow(&mut maps.current, out.len());
        let source = conv_source(&self.conv1, View::dense(&ws.current, s));
        let target = Int8Target::U8(Target::dense(&mut maps.current, out));
        self.conv1.run_int8(source, &[target]);
        let mut s = pool(self.stride2_pool, maps, out)?;
        for layer in [&self.conv2, &self.conv3] {
            let out = conv_output(layer, s)?;
            grow(&mut maps.next, out.len());
            let source = conv_source(layer, View::dense(&maps.current, s));
            layer.run_quantized(
                source,
                &[Int8Target::U8(Target::dense(&mut maps.next, out))],
            );
            std::mem::swap(&mut maps.current, &mut maps.next);
            s = out;
        }
        pool(self.stride2_pool, maps, s)
    }

    /// The inception modules from the current u8 map (of shape `s`) to the last module's f32
    /// map, in `ws`.
    fn int8_modules(
        &self,
        maps: &mut Workspace<u8>,
        ws: &mut Workspace<f32>,
        mut s: Shape,
    ) -> Option<Shape> {
        let last = self.inceptions.len().checked_sub(1)?;
        for (i, module) in self.inceptions.iter().enumerate() {
            if let Some(p) = module.pool_before {
                s = pool(p, maps, s)?;
            }
            s = module.run_int8(maps, s, (i == last).then_some(&mut *ws))?;
        }
        Some(s)
    }
}

impl InceptionPlan {
    /// The module from the current u8 map into the next one, or into `f32_out`'s current map.
    fn run_int8(
        &self,
        maps: &mut Workspace<u8>,
        s: Shape,
        f32_out: Option<&mut Workspace<f32>>,
    ) -> Option<Shape> {
        let pool = self.pool_window(s)?;
        let Workspace {
            current,
            next,
            reduced,
        } = maps;
        let (m, out_c) = (s.pixels(), self.out_channels());
        let [n1, r3, r5] = self.widths;
        grow(reduced, m * (r3 + r5));
        let (reduced3, reduced5) = reduced[..m * (r3 + r5)].split_at_mut(m * r3);
        let mut out = match f32_out {
            Some(ws) => {
                grow(&mut ws.next, m * out_c);
                ModuleOut::F32(ws)
            }
            None => {
                grow(next, m * out_c);
                ModuleOut::U8(next)
            }
        };
        let x = View::dense(current, s);
        self.fused_1x1.run_quantized(
            Source::Pixels(x),
            &[
                out.target(0..n1, [m, out_c, 0]),
                Int8Target::U8(Target::new(n1..n1 + r3, reduced3, m, r3, 0)),
                Int8Target::U8(Target::new(n1 + r3..n1 + r3 + r5, reduced5, m, r5, 0)),
            ],
        );
        let mut offset = n1;
        for (conv, map) in [(&self.branch2, &*reduced3), (&self.branch3, &*reduced5)] {
            let input = View::dense(map, s.with_channels(conv.in_channels));
            let width = conv.out_channels;
            let target = out.target(0..width, [m, out_c, offset]);
            conv.run_quantized(Source::Patches(input), &[target]);
            offset += width;
        }
        let width = self.projection.out_channels;
        let target = out.target(0..width, [m, out_c, offset]);
        self.projection
            .run_quantized(Source::MaxPooled(x, pool), &[target]);
        match out {
            ModuleOut::U8(next) => std::mem::swap(current, next),
            ModuleOut::F32(ws) => std::mem::swap(&mut ws.current, &mut ws.next),
        }
        Some(s.with_channels(out_c))
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::Device;

    use crate::engine::InferenceNet;
    use crate::engine::int8::Int8Kernel;
    use crate::model::{GoogLeNetConfig, Variant};

    #[test]
    fn u8_maps_give_the_logits_of_f32_maps() {
        // The paper's and the Keras seed's classifiers need their full input size; the portable
        // kernel runs on the smaller torchvision network alone.
        let cases = [
            (Variant::Torchvision, 96, Int8Kernel::Portable),
            (Variant::Torchvision, 96, Int8Kernel::detect()),
            (Variant::Paper, 224, Int8Kernel::detect()),
            (Variant::KerasSeed, 224, Int8Kernel::detect()),
        ];
        for (variant, side, kernel) in cases {
            let shape = [2, 3, side, side];
            let input: Vec<f32> = (0..2 * 3 * side * side)
                .map(|i| ((i * 7919 % 2003) as f32 / 1001.0 - 1.0) * 2.0)
                .collect();
            let model = GoogLeNetConfig::new(variant)
                .with_num_classes(10)
                .with_input_size(side)
                .init(&Device::flex())
                .unwrap();
            let net = InferenceNet::from_model(&model).unwrap();
            net.calibrate(&input, shape).unwrap();
            let net = net.into_int8(kernel).unwrap();
            let u8_maps = net.forward(&input, shape).unwrap();
            let f32_maps = super::super::on_pool(&net.workspace, |ws| {
                net.forward_maps(&input, shape, ws, |ws, s| net.trunk(ws, s))
            })
            .unwrap();
            assert_eq!(u8_maps, f32_maps, "{variant} on {kernel:?}");
            let largest = u8_maps.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
            assert!(largest > 0.0 && largest.is_finite(), "{variant}: {largest}");
        }
    }
}

//! Feature maps in NHWC layout: batch, rows, columns, channels, the channels of one pixel side by side.

use rayon::prelude::*;

use super::activation::Activation;
use crate::model::GoogLeNet;
use crate::model::googlenet::transform_input_affine;

/// Per-channel `scale` and `shift` applied to the input image on its way to NHWC.
pub(crate) type InputAffine = ([f32; 3], [f32; 3]);

/// `model`'s input transform: torchvision's `transform_input` when it is on, else the identity.
pub(crate) fn input_affine(model: &GoogLeNet) -> InputAffine {
    if model.transform_input {
        transform_input_affine()
    } else {
        ([1.0; 3], [0.0; 3])
    }
}

/// The NCHW image batch `input` of `s` (3 channels) to NHWC in `out`, with the input transform
/// `(scale, shift)` on the way.
pub(crate) fn to_nhwc<T: Activation>(
    input: &[f32],
    s: Shape,
    (scale, shift): InputAffine,
    out: &mut [T],
) {
    out[..s.len()]
        .par_chunks_mut(s.w * 3)
        .enumerate()
        .for_each(|(r, line)| {
            let (image, y) = (r / s.h, r % s.h);
            for c in 0..3 {
                let plane = &input[((image * 3 + c) * s.h + y) * s.w..][..s.w];
                for (x, &v) in plane.iter().enumerate() {
                    line[x * 3 + c] = T::from_f32(v * scale[c] + shift[c]);
                }
            }
        });
}

/// The shape of an NHWC feature map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Images.
    pub n: usize,
    /// Height in pixels.
    pub h: usize,
    /// Width in pixels.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Shape {
    /// Pixels over all images: n·h·w.
    pub fn pixels(&self) -> usize {
        self.n * self.h * self.w
    }

    /// Elements: n·h·w·c.
    pub fn len(&self) -> usize {
        self.pixels() * self.c
    }

    /// The same shape with `c` channels.
    pub fn with_channels(self, c: usize) -> Shape {
        Shape { c, ..self }
    }
}

/// Channels `offset..offset + shape.c` of an NHWC buffer whose pixels are `stride` floats apart;
/// a branch of an inception module reads its slice of a wider buffer this way.
pub(crate) struct View<'a, T = f32> {
    /// The whole buffer.
    pub data: &'a [T],
    /// Shape of the view, its channels included.
    pub shape: Shape,
    /// Floats between consecutive pixels.
    pub stride: usize,
    /// First channel of the view within each pixel.
    pub offset: usize,
}

impl<T> Clone for View<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for View<'_, T> {}

impl<'a, T> View<'a, T> {
    /// A whole, densely packed map.
    pub fn dense(data: &'a [T], shape: Shape) -> Self {
        Self::channels(data, shape, shape.c, 0)
    }

    /// Channels `offset..offset + shape.c` of pixels `stride` floats apart.
    pub fn channels(data: &'a [T], shape: Shape, stride: usize, offset: usize) -> Self {
        assert!(offset + shape.c <= stride, "channel slice past the pixel");
        assert!(
            data.len() >= shape.pixels() * stride,
            "buffer shorter than the map"
        );
        Self {
            data,
            shape,
            stride,
            offset,
        }
    }

    /// The channels of pixel (`row`, `col`) of image `image`.
    pub fn pixel(&self, image: usize, row: usize, col: usize) -> &'a [T] {
        let p = (image * self.shape.h + row) * self.shape.w + col;
        &self.data[p * self.stride + self.offset..][..self.shape.c]
    }
}

/// Grows `buffer` to at least `len` values; a buffer is only ever allocated once per size.
pub(crate) fn grow<T: Default + Clone>(buffer: &mut Vec<T>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, T::default());
    }
}

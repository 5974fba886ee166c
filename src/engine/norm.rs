//! The stem's normalisations, in place on NHWC maps: the paper's LocalRespNorm and the Keras
//! seed's BatchNorm (inference: a per-channel affine map).

use rayon::prelude::*;

use super::activation::Activation;
use super::{InferenceError, tensor_values};
use crate::model::architecture::STEM_LRN;
use crate::model::batch_norm::BatchNorm;

/// The normalisation after the stem's first pool and its 3x3 convolution: LocalRespNorm in the
/// paper (Table 1), folded BatchNorm in the Keras seed.
pub(crate) enum StemNorm {
    /// Local response normalisation across channels (burn's `LocalResponseNorm` with the paper's
    /// constants, [`STEM_LRN`]).
    LocalResponse,
    /// `x · scale + shift` per channel.
    Affine { scale: Vec<f32>, shift: Vec<f32> },
}

impl StemNorm {
    /// The inference form of `bn`: its running statistics folded into a per-channel scale and
    /// shift.
    pub fn batch_norm(bn: &BatchNorm) -> Result<Self, InferenceError> {
        let gamma = tensor_values(bn.weight.val())?;
        let beta = tensor_values(bn.bias.val())?;
        let mean = tensor_values(bn.running_mean.value())?;
        let var = tensor_values(bn.running_var.value())?;
        let scale: Vec<f32> = (0..gamma.len())
            .map(|c| (gamma[c] as f64 / (var[c] as f64 + bn.epsilon).sqrt()) as f32)
            .collect();
        let shift = (0..gamma.len())
            .map(|c| beta[c] - mean[c] * scale[c])
            .collect();
        Ok(StemNorm::Affine { scale, shift })
    }

    /// Normalises a dense map with `channels` channels in place, in f32.
    pub fn apply<T: Activation>(&self, data: &mut [T], channels: usize) {
        data.par_chunks_mut(channels * 64).for_each(|chunk| {
            let mut values = vec![0.0f32; channels];
            let mut squares = vec![0.0f32; channels];
            let mut bases = vec![0.0f32; channels];
            for pixel in chunk.chunks_exact_mut(channels) {
                values
                    .iter_mut()
                    .zip(pixel.iter())
                    .for_each(|(v, p)| *v = p.to_f32());
                match self {
                    StemNorm::Affine { scale, shift } => {
                        for ((v, s), t) in values.iter_mut().zip(scale).zip(shift) {
                            *v = *v * s + t;
                        }
                    }
                    StemNorm::LocalResponse => {
                        local_response_bases(&values, &mut squares, &mut bases);
                        for (v, &b) in values.iter_mut().zip(&bases) {
                            *v /= local_response_power(b);
                        }
                    }
                }
                super::activation::convert(&values, pixel);
            }
        })
    }
}

pub(crate) const LOCAL_RESPONSE_BEFORE: usize = (STEM_LRN.size - 1) / 2;
pub(crate) const LOCAL_RESPONSE_AFTER: usize = STEM_LRN.size / 2;

// base^0.75 is computed as sqrt(base) · sqrt(sqrt(base)), far cheaper than `powf`.
const _: () = assert!(STEM_LRN.beta == 0.75);

/// The base `k + alpha · mean of x² over `size` neighbouring channels` of every channel of one
/// pixel, the mean always divided by `size` (zero padding counted, as burn and Caffe do);
/// `squares` is scratch of the pixel's length.
pub(crate) fn local_response_bases(pixel: &[f32], squares: &mut [f32], bases: &mut [f32]) {
    let c = pixel.len();
    for (s, &v) in squares.iter_mut().zip(pixel) {
        *s = v * v;
    }
    let alpha = (STEM_LRN.alpha / STEM_LRN.size as f64) as f32;
    for (i, b) in bases.iter_mut().enumerate() {
        let window = &squares
            [i.saturating_sub(LOCAL_RESPONSE_BEFORE)..(i + LOCAL_RESPONSE_AFTER + 1).min(c)];
        *b = STEM_LRN.k as f32 + alpha * window.iter().sum::<f32>();
    }
}

/// `base^beta`, what local response normalisation divides by.
pub(crate) fn local_response_power(base: f32) -> f32 {
    let root = base.sqrt();
    root * root.sqrt()
}

//! Fully connected layers, ReLU and dropout of the classifier heads, forward and backward.
//!
//! Weights keep burn's `Linear` layout, a row-major `[inputs, outputs]` matrix, so that
//! `y = x · W + b` is one product for the whole batch. The heads are small (at batch 16 the
//! largest, the auxiliary FC 2048 → 1024, is 34 M multiply-adds) next to the convolutions.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::super::matmul::affine;
use super::super::simd::simd_kernel;
use super::super::transpose::transpose;
use crate::train::source::mix;

/// A fully connected layer with its gradients.
pub(crate) struct Dense {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// `[inputs, outputs]`, burn's layout.
    pub weight: Vec<f32>,
    /// One bias per output.
    pub bias: Vec<f32>,
    /// Gradient of the loss with respect to `weight`.
    pub weight_grad: Vec<f32>,
    /// Gradient of the loss with respect to `bias`.
    pub bias_grad: Vec<f32>,
}

impl Dense {
    /// A layer with the given weights, `[inputs, outputs]`, and zero gradients.
    pub fn new(inputs: usize, outputs: usize, weight: Vec<f32>, bias: Vec<f32>) -> Self {
        assert_eq!(weight.len(), inputs * outputs, "weight shape");
        assert_eq!(bias.len(), outputs, "bias shape");
        Self {
            inputs,
            outputs,
            weight,
            bias,
            weight_grad: vec![0.0; inputs * outputs],
            bias_grad: vec![0.0; outputs],
        }
    }

    /// `y = x · W + b` for the `batch` rows of `x`.
    pub fn forward(&self, x: &[f32], batch: usize, y: &mut Vec<f32>) {
        affine(x, batch, &self.weight, &self.bias, y);
    }

    /// Given `dy = ∂L/∂y`: the weight and bias gradients (overwritten) and, when asked,
    /// `dx = dy · Wᵀ` (overwritten).
    pub fn backward(&mut self, x: &[f32], batch: usize, dy: &[f32], dx: Option<&mut Vec<f32>>) {
        let (inputs, outputs) = (self.inputs, self.outputs);
        // ∂L/∂W[i, o] = Σ_b x[b, i] · dy[b, o]: one row of W per input feature.
        let rows = &dy[..batch * outputs];
        self.weight_grad
            .par_chunks_mut(outputs)
            .enumerate()
            .for_each(|(i, row)| weight_gradient_row(row, x, inputs, i, rows));
        self.bias_grad.fill(0.0);
        for g in dy.chunks_exact(outputs).take(batch) {
            self.bias_grad.iter_mut().zip(g).for_each(|(d, &g)| *d += g);
        }
        if let Some(dx) = dx {
            dx.resize(batch * inputs, 0.0);
            // dx[b, i] = Σ_o dy[b, o] · W[i, o]: each row of W is read once and dotted with
            // every row of dy, into dxᵀ.
            let mut columns = vec![0.0; inputs * batch];
            columns
                .par_chunks_mut(batch.max(1))
                .zip(self.weight.par_chunks(outputs.max(1)))
                .for_each(|(column, w)| input_gradient_column(column, w, rows));
            transpose(&columns, inputs, batch, dx);
        }
    }
}

simd_kernel! {
    /// Row `i` of ∂L/∂W (overwritten): `Σ_b x[b, i] · dy[b, ..]` over the rows of `dy`, skipping
    /// the inputs that are zero (ReLU's and dropout's zeros, most of the heads' inputs).
    fn weight_gradient_row(row: &mut [f32], x: &[f32], inputs: usize, i: usize, dy: &[f32]) {
        row.fill(0.0);
        for (b, g) in dy.chunks_exact(row.len()).enumerate() {
            let xi = x[b * inputs + i];
            if xi != 0.0 {
                row.iter_mut().zip(g).for_each(|(w, &g)| *w += xi * g);
            }
        }
    }
}

simd_kernel! {
    /// Column `i` of ∂L/∂x (overwritten): `dx[b, i] = Σ_o dy[b, o] · W[i, o]` for every row `b`
    /// of `dy`, given row `i` of `W`.
    fn input_gradient_column(column: &mut [f32], w: &[f32], dy: &[f32]) {
        for (d, g) in column.iter_mut().zip(dy.chunks_exact(w.len())) {
            *d = dot(w, g);
        }
    }
}

/// `Σ a[i] · b[i]` in eight lanes, so that the compiler vectorises it.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() / 8 * 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// `x = max(x, 0)` in place.
pub(crate) fn relu(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
}

/// Backward of [`relu`] given its output `y`: zeroes `dy` where `y` is not positive.
pub(crate) fn relu_backward(y: &[f32], dy: &mut [f32]) {
    dy.iter_mut()
        .zip(y)
        .for_each(|(d, &y)| *d = if y > 0.0 { *d } else { 0.0 });
}

/// Where a pass's dropout masks come from. Each image draws its masks from a generator of its
/// own, seeded by `seed`, the layer and the image's position in the global batch
/// (`first_image` + its index in this pass), so an image's masks do not depend on how the
/// global batch is split across processes: a run on N ranks draws the masks a run on 1 does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropoutSeed {
    /// The step's seed.
    pub seed: u64,
    /// Position in the global batch of this pass's first image.
    pub first_image: u64,
}

impl DropoutSeed {
    /// Masks from `seed`, the pass's images first in the global batch.
    pub fn new(seed: u64) -> Self {
        DropoutSeed {
            seed,
            first_image: 0,
        }
    }

    /// The generator of the `image`-th image of this pass in dropout layer `layer`.
    fn generator(self, layer: u64, image: usize) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(mix(mix(self.seed, layer), self.first_image + image as u64))
    }
}

/// Inverted dropout as PyTorch's `nn.Dropout` in training, on `images` rows of `x` (one per
/// image): each value is zeroed with probability `p`, the others are scaled by `1 / (1 − p)`;
/// the mask (0 or the scale) is kept for the backward pass. `p = 0` is the identity. Row `i`'s
/// mask comes from [`DropoutSeed`]'s generator of image `i` in dropout layer `layer`.
pub(crate) fn dropout(
    x: &mut [f32],
    images: usize,
    p: f64,
    (seed, layer): (DropoutSeed, u64),
    mask: &mut Vec<f32>,
) {
    mask.clear();
    if p <= 0.0 {
        mask.resize(x.len(), 1.0);
        return;
    }
    let keep = (1.0 / (1.0 - p)) as f32;
    let row = x.len() / images.max(1);
    for image in 0..images {
        let mut rng = seed.generator(layer, image);
        mask.extend((0..row).map(|_| if rng.random::<f64>() < p { 0.0 } else { keep }));
    }
    x.iter_mut().zip(mask.iter()).for_each(|(v, m)| *v *= m);
}

/// Backward of [`dropout`]: `dy *= mask`.
pub(crate) fn dropout_backward(mask: &[f32], dy: &mut [f32]) {
    dy.iter_mut().zip(mask).for_each(|(d, m)| *d *= m);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                ((i.wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn linear_gradients_match_the_naive_sums() {
        let (batch, inputs, outputs) = (3, 13, 7);
        let mut layer = Dense::new(
            inputs,
            outputs,
            values(inputs * outputs, 1),
            values(outputs, 2),
        );
        let x = values(batch * inputs, 3);
        let mut y = Vec::new();
        layer.forward(&x, batch, &mut y);
        for b in 0..batch {
            for o in 0..outputs {
                let want: f32 = layer.bias[o]
                    + (0..inputs)
                        .map(|i| x[b * inputs + i] * layer.weight[i * outputs + o])
                        .sum::<f32>();
                assert!((y[b * outputs + o] - want).abs() < 1e-5);
            }
        }
        let dy = values(batch * outputs, 4);
        let mut dx = Vec::new();
        layer.backward(&x, batch, &dy, Some(&mut dx));
        for i in 0..inputs {
            for o in 0..outputs {
                let want: f32 = (0..batch)
                    .map(|b| x[b * inputs + i] * dy[b * outputs + o])
                    .sum();
                assert!((layer.weight_grad[i * outputs + o] - want).abs() < 1e-5);
            }
        }
        for o in 0..outputs {
            let want: f32 = (0..batch).map(|b| dy[b * outputs + o]).sum();
            assert!((layer.bias_grad[o] - want).abs() < 1e-5);
        }
        for b in 0..batch {
            for i in 0..inputs {
                let want: f32 = (0..outputs)
                    .map(|o| dy[b * outputs + o] * layer.weight[i * outputs + o])
                    .sum();
                assert!((dx[b * inputs + i] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn dropout_keeps_about_one_minus_p_and_rescales() {
        let mut x = vec![1.0f32; 10_000];
        let mut mask = Vec::new();
        dropout(&mut x, 10, 0.7, (DropoutSeed::new(7), 0), &mut mask);
        let kept = x.iter().filter(|&&v| v != 0.0).count();
        assert!((2800..3200).contains(&kept), "{kept} of 10000 kept");
        assert!(x.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.3).abs() < 1e-5));
        let mut dy = vec![2.0f32; 10_000];
        dropout_backward(&mask, &mut dy);
        assert!(dy.iter().zip(&x).all(|(d, v)| (d - 2.0 * v).abs() < 1e-5));
    }

    #[test]
    fn an_image_draws_the_same_mask_whatever_pass_it_is_in() {
        let seed = DropoutSeed::new(11);
        let mut whole = vec![1.0f32; 6 * 100];
        let mut mask = Vec::new();
        dropout(&mut whole, 6, 0.5, (seed, 2), &mut mask);
        // Images 4 and 5 of the global batch, alone in a pass of their own.
        let mut part = vec![1.0f32; 2 * 100];
        let second = DropoutSeed {
            first_image: 4,
            ..seed
        };
        dropout(&mut part, 2, 0.5, (second, 2), &mut mask);
        assert_eq!(part, whole[400..]);
        // Another layer or another image draws another mask.
        dropout(&mut part, 2, 0.5, (second, 1), &mut mask);
        assert_ne!(part[..100], whole[400..500]);
        assert_ne!(whole[..100], whole[100..200]);
    }
}

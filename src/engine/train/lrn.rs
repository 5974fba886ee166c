//! The paper's local response normalisation (Table 1's two "LocalRespNorm" rows, constants in
//! [`STEM_LRN`]) in training: `y_i = x_i · b_i^(−β)` with `b_i = k + α/n · Σ_{j ∈ W(i)} x_j²`
//! over the `n` channels around `i` (zero padding counted, as burn and Caffe do), and its
//! gradient `∂L/∂x_j = g_j · b_j^(−β) − 2αβ/n · x_j · Σ_{i : j ∈ W(i)} g_i · y_i / b_i`.

use rayon::prelude::*;

use super::super::map::Shape;
use super::super::norm::{
    LOCAL_RESPONSE_AFTER as AFTER, LOCAL_RESPONSE_BEFORE as BEFORE, local_response_bases,
    local_response_power,
};
use crate::model::architecture::STEM_LRN;

/// `y` (dense, overwritten) from `x` (dense NHWC of `xs`), as the inference path normalises.
pub(crate) fn forward(x: &[f32], xs: Shape, y: &mut [f32]) {
    let c = xs.c;
    x[..xs.len()]
        .par_chunks(c * 64)
        .zip(y[..xs.len()].par_chunks_mut(c * 64))
        .for_each(|(x, y)| {
            let (mut squares, mut b) = (vec![0.0; c], vec![0.0; c]);
            for (x, y) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
                local_response_bases(x, &mut squares, &mut b);
                for ((y, &x), &b) in y.iter_mut().zip(x).zip(&b) {
                    *y = x / local_response_power(b);
                }
            }
        });
}

/// `dx` (overwritten) from `dy`, given the forward's input `x` (its output is recomputed per
/// pixel: `y_i / b_i = x_i / (b_i^β · b_i)`).
pub(crate) fn backward(x: &[f32], xs: Shape, dy: &[f32], dx: &mut [f32]) {
    let c = xs.c;
    let scale = (2.0 * STEM_LRN.alpha * STEM_LRN.beta / STEM_LRN.size as f64) as f32;
    let n = xs.len();
    x[..n]
        .par_chunks(c * 64)
        .zip(dy[..n].par_chunks(c * 64))
        .zip(dx[..n].par_chunks_mut(c * 64))
        .for_each(|((x, dy), dx)| {
            let (mut squares, mut b) = (vec![0.0; c], vec![0.0; c]);
            let (mut power, mut t) = (vec![0.0; c], vec![0.0; c]);
            for ((x, dy), dx) in x
                .chunks_exact(c)
                .zip(dy.chunks_exact(c))
                .zip(dx.chunks_exact_mut(c))
            {
                local_response_bases(x, &mut squares, &mut b);
                for i in 0..c {
                    power[i] = local_response_power(b[i]);
                    t[i] = dy[i] * x[i] / (power[i] * b[i]);
                }
                // The window is symmetric, so the channels whose windows hold j are W(j).
                for j in 0..c {
                    let around: f32 = t[j.saturating_sub(AFTER)..(j + BEFORE + 1).min(c)]
                        .iter()
                        .sum();
                    dx[j] = dy[j] / power[j] - scale * x[j] * around;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(x: &[f64], r: &[f64], c: usize) -> f64 {
        let alpha = STEM_LRN.alpha / STEM_LRN.size as f64;
        let mut total = 0.0;
        for (px, rp) in x.chunks(c).zip(r.chunks(c)) {
            for i in 0..c {
                let lo = i.saturating_sub(BEFORE);
                let hi = (i + AFTER + 1).min(c);
                let b = STEM_LRN.k + alpha * px[lo..hi].iter().map(|v| v * v).sum::<f64>();
                total += rp[i] * px[i] * b.powf(-STEM_LRN.beta);
            }
        }
        total
    }

    /// Large activations (tens to hundreds, as after the stem's ReLU convolutions) so that the
    /// normalisation is far from the identity.
    #[test]
    fn forward_and_backward_match_the_definition_and_finite_differences() {
        let xs = Shape {
            n: 2,
            h: 1,
            w: 3,
            c: 7,
        };
        let x: Vec<f32> = (0..xs.len())
            .map(|i| ((i * 53) % 97) as f32 * 3.0 - 40.0)
            .collect();
        let r: Vec<f32> = (0..xs.len())
            .map(|i| ((i * 29) % 11) as f32 / 5.0 - 1.0)
            .collect();
        let mut y = vec![0.0; xs.len()];
        forward(&x, xs, &mut y);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let r64: Vec<f64> = r.iter().map(|&v| v as f64).collect();
        let one_hot =
            |k: usize| -> Vec<f64> { (0..xs.len()).map(|i| (i == k) as u8 as f64).collect() };
        for (k, &got) in y.iter().enumerate() {
            let want = loss(&x64, &one_hot(k), xs.c);
            assert!(
                (got as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
                "y[{k}]"
            );
        }
        let mut dx = vec![f32::NAN; xs.len()];
        backward(&x, xs, &r, &mut dx);
        for k in 0..xs.len() {
            let h = 1e-3;
            let mut up = x64.clone();
            up[k] += h;
            let mut down = x64.clone();
            down[k] -= h;
            let numeric = (loss(&up, &r64, xs.c) - loss(&down, &r64, xs.c)) / (2.0 * h);
            assert!(
                (dx[k] as f64 - numeric).abs() < 1e-4 * numeric.abs().max(1.0),
                "dx[{k}] = {} vs {numeric}",
                dx[k]
            );
        }
    }
}

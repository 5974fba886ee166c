//! Max and average pooling on NHWC maps: the channels of a pixel are contiguous, so each window
//! is an element-wise maximum (or sum) of whole pixel vectors.

use rayon::prelude::*;

use super::activation::Activation;
use super::map::{Shape, View};
use super::window::Window;
use crate::model::pool::Pool;

/// The maximum over the window of output pixel `p` (in (image, row, column) order of the pool's
/// output), written to `out` (one value per channel of `v`).
pub(crate) fn max_window<T: Activation>(v: View<T>, window: &Window, p: usize, out: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bw") {
        // SAFETY: the CPU has AVX-512BW (and so AVX-512F), what the function needs.
        unsafe { max_window_avx512(v, window, p, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the only requirement of the function.
        unsafe { max_window_avx2(v, window, p, out) };
        return;
    }
    max_window_portable(v, window, p, out);
}

/// [`max_window`] compiled for 256-bit vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max_window_avx2<T: Activation>(v: View<T>, window: &Window, p: usize, out: &mut [T]) {
    max_window_portable(v, window, p, out);
}

/// [`max_window`] compiled for 512-bit vectors (32 bf16 keys or 16 floats to a register).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn max_window_avx512<T: Activation>(v: View<T>, window: &Window, p: usize, out: &mut [T]) {
    max_window_portable(v, window, p, out);
}

/// Channels in blocks of 32 so that the running maxima stay in registers across the window.
#[inline(always)]
fn max_window_portable<T: Activation>(v: View<T>, window: &Window, p: usize, out: &mut [T]) {
    const BLOCK: usize = 32;
    let [oh, ow] = window.out;
    let image = p / (oh * ow);
    let rows = window.span(0, p / ow % oh, v.shape.h);
    let cols = window.span(1, p % ow, v.shape.w);
    let blocks = v.shape.c / BLOCK * BLOCK;
    for start in (0..blocks).step_by(BLOCK) {
        let mut best = [T::LOWEST; BLOCK];
        for y in rows.clone() {
            for x in cols.clone() {
                let values = &v.pixel(image, y, x)[start..start + BLOCK];
                for (b, &value) in best.iter_mut().zip(values) {
                    let value = value.key();
                    // A select vectorises to one max instruction (`f32::max` also handles NaN).
                    *b = if value > *b { value } else { *b };
                }
            }
        }
        for (o, &b) in out[start..start + BLOCK].iter_mut().zip(&best) {
            *o = T::from_key(b);
        }
    }
    for (c, o) in (blocks..v.shape.c).zip(&mut out[blocks..]) {
        let mut best = T::LOWEST;
        for y in rows.clone() {
            for x in cols.clone() {
                let value = v.pixel(image, y, x)[c].key();
                best = if value > best { value } else { best };
            }
        }
        *o = T::from_key(best);
    }
}

/// A max pool of the dense map `input` into `out` (dense, `[n, out_h, out_w, c]`).
pub(crate) fn max_pool<T: Activation>(input: View<T>, window: &Window, out: &mut [T]) {
    let c = input.shape.c;
    let row = window.out[1] * c;
    let rows = input.shape.n * window.out[0];
    out[..rows * row]
        .par_chunks_mut(row)
        .enumerate()
        .for_each(|(r, line)| {
            for (x, pixel) in line.chunks_exact_mut(c).enumerate() {
                max_window(input, window, r * window.out[1] + x, pixel);
            }
        });
}

/// The main classifier's average pool (adaptive in torchvision and the paper, 7x7/1 'valid' in
/// the Keras seed), `[n, out_h, out_w, c]`, or `None` if the map is too small.
pub(crate) fn avg_pool<T: Activation>(input: View<T>, pool: Pool) -> Option<(Vec<f32>, Shape)> {
    let s = input.shape;
    let [oh, ow] = [pool.output_size(s.h)?, pool.output_size(s.w)?];
    // PyTorch's adaptive bins: [floor(i·n/out), ceil((i+1)·n/out)).
    let span = |o: usize, n: usize, out: usize| match pool {
        Pool::Avg { kernel, stride } => o * stride..o * stride + kernel,
        _ => o * n / out..((o + 1) * n).div_ceil(out),
    };
    let shape = Shape { h: oh, w: ow, ..s };
    let mut out = vec![0.0; shape.len()];
    for (p, pixel) in out.chunks_exact_mut(s.c).enumerate() {
        let image = p / (oh * ow);
        let rows = span(p / ow % oh, s.h, oh);
        let cols = span(p % ow, s.w, ow);
        let count = (rows.len() * cols.len()) as f32;
        for y in rows {
            for x in cols.clone() {
                for (o, &v) in pixel.iter_mut().zip(input.pixel(image, y, x)) {
                    *o += v.to_f32();
                }
            }
        }
        pixel.iter_mut().for_each(|o| *o /= count);
    }
    Some((out, shape))
}

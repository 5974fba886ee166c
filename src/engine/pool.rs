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

/// The window's pixels are looked up once, [`TAPS`] at a time, and their maximum taken by
/// [`Activation::max_taps`].
#[inline(always)]
fn max_window_portable<T: Activation>(v: View<T>, window: &Window, p: usize, out: &mut [T]) {
    let [oh, ow] = window.out;
    let image = p / (oh * ow);
    let rows = window.span(0, p / ow % oh, v.shape.h);
    let cols = window.span(1, p % ow, v.shape.w);
    let c = v.shape.c;
    let mut pixels = rows.flat_map(|y| cols.clone().map(move |x| (y, x)));
    let mut first = true;
    loop {
        let mut taps: [&[T]; TAPS] = [&[]; TAPS];
        let mut count = 0;
        for (tap, (y, x)) in taps.iter_mut().zip(pixels.by_ref()) {
            *tap = v.pixel(image, y, x);
            count += 1;
        }
        if count == 0 {
            break;
        }
        T::max_taps(&taps[..count], first, &mut out[..c]);
        first = false;
    }
    if first {
        // A window that covers no pixel of the map.
        out[..c].fill(T::from_key(T::LOWEST));
    }
}

/// Window pixels looked up at a time: a 3x3 window, every max pool of the three variants.
const TAPS: usize = 9;

/// `out[i] = max(out[i], taps[t][i] for every t)` (without `out[i]` when `first`) for the
/// channels of `out`, in blocks of 32 so that the running maxima stay in registers across the
/// taps: [`Activation::max_taps`] unless a format has a faster one.
#[inline(always)]
pub(crate) fn max_taps_by_keys<T: Activation>(taps: &[&[T]], first: bool, out: &mut [T]) {
    const BLOCK: usize = 32;
    let c = out.len();
    let blocks = c / BLOCK * BLOCK;
    for start in (0..blocks).step_by(BLOCK) {
        let out: &mut [T; BLOCK] = (&mut out[start..start + BLOCK]).try_into().unwrap();
        // Loops, not `array::map`: that call is not inlined here, and its result would come
        // back through the stack.
        let mut best = [T::LOWEST; BLOCK];
        if !first {
            for (b, &o) in best.iter_mut().zip(out.iter()) {
                *b = o.key();
            }
        }
        for tap in taps {
            let values: &[T; BLOCK] = tap[start..start + BLOCK].try_into().unwrap();
            for (b, &value) in best.iter_mut().zip(values) {
                let value = value.key();
                // A select vectorises to one max instruction (`f32::max` also handles NaN).
                *b = if value > *b { value } else { *b };
            }
        }
        for (o, &b) in out.iter_mut().zip(&best) {
            *o = T::from_key(b);
        }
    }
    for ch in blocks..c {
        let mut best = if first { T::LOWEST } else { out[ch].key() };
        for tap in taps {
            let value = tap[ch].key();
            best = if value > best { value } else { best };
        }
        out[ch] = T::from_key(best);
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

#[cfg(test)]
mod tests {
    use half::bf16;

    use super::max_window;
    use crate::engine::activation::Activation;
    use crate::engine::map::{Shape, View};
    use crate::engine::window::Window;

    /// Every output of a max pool against the maximum taken directly, for windows of more pixels
    /// than are looked up at a time, clipped at the borders, on channels past the last block.
    fn check<T: Activation + PartialEq + std::fmt::Debug>(value: impl Fn(usize) -> T) {
        let s = Shape {
            n: 2,
            h: 7,
            w: 6,
            c: 40,
        };
        let data: Vec<T> = (0..s.len()).map(|i| value(i * 7919 % 1009)).collect();
        let v = View::dense(&data, s);
        for (kernel, stride, pad) in [(3, 1, 1), (4, 2, 1), (5, 3, 2)] {
            let out = [
                (s.h + 2 * pad - kernel) / stride + 1,
                (s.w + 2 * pad - kernel) / stride + 1,
            ];
            let window = Window {
                kernel,
                stride,
                pad: [pad; 2],
                out,
            };
            for p in 0..s.n * out[0] * out[1] {
                let mut got = vec![value(0); s.c];
                max_window(v, &window, p, &mut got);
                let (image, oy, ox) = (p / (out[0] * out[1]), p / out[1] % out[0], p % out[1]);
                for (ch, &got) in got.iter().enumerate() {
                    let mut want: Option<T> = None;
                    for y in
                        (oy * stride).saturating_sub(pad)..(oy * stride + kernel - pad).min(s.h)
                    {
                        for x in
                            (ox * stride).saturating_sub(pad)..(ox * stride + kernel - pad).min(s.w)
                        {
                            let candidate = v.pixel(image, y, x)[ch];
                            if want.is_none_or(|w| candidate.key() > w.key()) {
                                want = Some(candidate);
                            }
                        }
                    }
                    // Keys, not values: bf16's -0 and +0 are equal numbers but not equal bits.
                    assert!(
                        want.is_some_and(|w| w.key() == got.key()),
                        "{kernel}x{kernel}/{stride}: pixel {p} channel {ch}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn windows_of_any_size_give_the_maximum() {
        check(|i| i as f32 / 100.0 - 5.0);
        check(|i| bf16::from_f32(i as f32 / 100.0 - 5.0));
        // Windows of negative numbers only, -0 the largest of them; -0 beside +0.
        check(|i| bf16::from_f32(-(i as f32) / 100.0));
        check(|i| bf16::from_f32(if i % 2 == 0 { 0.0 } else { -0.0 }));
    }
}

//! BatchNorm in training mode fused with the ReLU that follows it (torchvision's `BasicConv2d`:
//! convolution without bias, `BatchNorm2d(eps=0.001, momentum=0.1)`, ReLU), forward and backward,
//! on NHWC maps whose channels are contiguous.
//!
//! In training PyTorch normalises with the batch's per-channel mean and *biased* variance over
//! all `P = n·h·w` pixels, and moves the running variance with the *unbiased* one
//! (`P/(P−1)` times it). Every per-channel sum here runs over fixed chunks of pixels in parallel
//! (partial sums per chunk, in f64) and adds the chunks up in order, so results do not depend on
//! the number of threads or on how rayon schedules them.

use std::ops::Range;

use rayon::prelude::*;

/// Where a layer's output (and the gradient with respect to it) lives: channel `c` of pixel `p`
/// is at `p·stride + offset + c` (a branch of an inception module writes its channels of the
/// concatenated map this way; a dense map has stride = channels, offset 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub stride: usize,
    pub offset: usize,
}

impl Layout {
    /// The floats a buffer in this layout spans for `pixels` pixels of `channels` channels, from
    /// the first channel of the first pixel to the last channel of the last (empty for no
    /// pixels); a longer buffer is fine.
    fn span(&self, pixels: usize, channels: usize) -> Range<usize> {
        assert!(
            self.offset + channels <= self.stride,
            "channels {}..{} do not fit in a pixel of {}",
            self.offset,
            self.offset + channels,
            self.stride
        );
        match pixels {
            0 => 0..0,
            _ => self.offset..(pixels - 1) * self.stride + self.offset + channels,
        }
    }
}

/// The batch statistics of one forward pass, kept for the backward pass and the running averages.
pub(crate) struct BatchStats {
    /// Per-channel mean over the batch's pixels.
    pub mean: Vec<f32>,
    /// Per-channel *biased* variance (divided by `count`), what PyTorch normalises with.
    pub var: Vec<f32>,
    /// `1/sqrt(var + eps)`.
    pub inv_std: Vec<f32>,
    /// `gamma·inv_std` and `beta`, the affine map the forward pass applied: the backward pass
    /// recomputes each output's sign from them and the raw value, bit for bit as the forward did,
    /// instead of reading the output back (one stream of memory less in each of its passes).
    scale: Vec<f32>,
    beta: Vec<f32>,
    /// The number of pixels `P` the statistics were taken over.
    pub count: usize,
}

/// Pixels per parallel chunk for `channels` channels: about 32K floats, enough work per rayon
/// task (a few tens of microseconds) and small enough to split even the 7x7 maps over threads.
fn chunk_pixels(channels: usize) -> usize {
    (32 * 1024 / channels.max(1)).max(1)
}

/// Runs `$body` as a function compiled for AVX2 when the CPU has it (the crate is built for
/// baseline x86-64, whose SSE2 vectors are half as wide), and as plain code otherwise.
macro_rules! simd_kernel {
    ($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$attr])*
        fn $name($($arg: $ty),*) {
            /// The body, inlined into both versions so that each is compiled for its features.
            #[inline(always)]
            fn portable($($arg: $ty),*) $body
            /// The body compiled for 256-bit vectors.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($($arg: $ty),*) {
                portable($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, the only requirement of the function.
                unsafe { avx2($($arg),*) };
                return;
            }
            portable($($arg),*)
        }
    };
}

/// Channels per register block of the per-channel sums: 16 f64 sums of each of two kinds fill
/// 8 AVX2 registers, which stay there while the block walks down a tile of pixels.
const BLOCK: usize = 16;

/// Pixels per tile of the per-channel sums: every channel block walks the tile in turn, so the
/// tile's cache lines (of `raw`, `out` and `dy`) must stay in L1 until the last block is done.
const TILE: usize = 32;

/// Adds `Σd` and `Σd²` (`d = x − shift`) over the pixels of `tile` for channels
/// `start..start + W` to `first` and `second`, keeping the `W` running sums in registers.
#[inline(always)]
fn shifted_block<const W: usize>(
    tile: &[f32],
    shift: &[f32],
    start: usize,
    first: &mut [f64],
    second: &mut [f64],
) {
    let c = shift.len();
    let shift: &[f32; W] = shift[start..start + W].try_into().unwrap();
    let (mut s1, mut s2) = ([0.0f64; W], [0.0f64; W]);
    for pixel in tile.chunks_exact(c) {
        let x: &[f32; W] = pixel[start..start + W].try_into().unwrap();
        for (((s1, s2), &x), &k) in s1.iter_mut().zip(&mut s2).zip(x).zip(shift) {
            let d = x as f64 - k as f64;
            *s1 += d;
            *s2 += d * d;
        }
    }
    add(&mut first[start..start + W], &s1);
    add(&mut second[start..start + W], &s2);
}

/// `total += part`, element-wise.
#[inline(always)]
fn add(total: &mut [f64], part: &[f64]) {
    for (t, p) in total.iter_mut().zip(part) {
        *t += p;
    }
}

simd_kernel! {
    /// Adds up, per channel, `d = x − shift` and `d²` over the dense pixels of `raw` into
    /// `sums = [Σd; channels] ++ [Σd²; channels]` (overwritten), in f64: f32 sums of `d²` over
    /// 200K pixels would lose digits, and the shift (one of the batch's own values) keeps
    /// `Σd²/P − (Σd/P)²` free of cancellation when the mean is large against the spread.
    fn shifted_sums(raw: &[f32], shift: &[f32], sums: &mut [f64]) {
        let c = shift.len();
        sums.fill(0.0);
        let (first, second) = sums.split_at_mut(c);
        for tile in raw.chunks(TILE * c) {
            let mut start = 0;
            while start + BLOCK <= c {
                shifted_block::<BLOCK>(tile, shift, start, first, second);
                start += BLOCK;
            }
            for start in start..c {
                shifted_block::<1>(tile, shift, start, first, second);
            }
        }
    }
}

simd_kernel! {
    /// Writes `max(0, (x − mean)·scale + beta)` for channels `from..from + mean.len()` of the
    /// dense `[pixels, channels]` `raw` into `out`, whose pixels are `stride` floats apart
    /// starting at its first float (the caller offsets it). A NaN passes through the ReLU, as
    /// PyTorch's `relu` (`clamp_min`) lets it.
    #[allow(clippy::too_many_arguments)]
    fn normalise(
        raw: &[f32],
        channels: usize,
        from: usize,
        mean: &[f32],
        scale: &[f32],
        beta: &[f32],
        out: &mut [f32],
        stride: usize,
    ) {
        let width = mean.len();
        for (p, pixel) in raw.chunks_exact(channels).enumerate() {
            let dst = &mut out[p * stride..][..width];
            let pixel = &pixel[from..from + width];
            let per_channel = mean.iter().zip(scale).zip(beta);
            for ((o, &x), ((&m, &s), &b)) in dst.iter_mut().zip(pixel).zip(per_channel) {
                let v = (x - m) * s + b;
                *o = if v < 0.0 { 0.0 } else { v };
            }
        }
    }
}

/// The gradient through the ReLU, `dy·[out > 0]`, with the output's sign recomputed from the raw
/// value `x` exactly as [`normalise`] computed the output (a NaN output lets nothing through).
#[inline(always)]
fn relu_gradient(x: f32, mean: f32, scale: f32, beta: f32, dy: f32) -> f32 {
    let out = (x - mean) * scale + beta;
    if out > 0.0 { dy } else { 0.0 }
}

/// Adds `Σg` and `Σg·(x − mean)` (`g = dy·[out > 0]`) over the pixels of `tile` for channels
/// `start..start + W` to `first` and `second`, keeping the `W` running sums in registers; `dy` has
/// its pixels `stride` floats apart from its first float.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gradient_block<const W: usize>(
    tile: &[f32],
    stats: &BatchStats,
    dy: &[f32],
    stride: usize,
    start: usize,
    first: &mut [f64],
    second: &mut [f64],
) {
    let c = stats.mean.len();
    let span = start..start + W;
    let mean: &[f32; W] = stats.mean[span.clone()].try_into().unwrap();
    let scale: &[f32; W] = stats.scale[span.clone()].try_into().unwrap();
    let beta: &[f32; W] = stats.beta[span].try_into().unwrap();
    let affine = mean.iter().zip(scale).zip(beta);
    let (mut s1, mut s2) = ([0.0f64; W], [0.0f64; W]);
    for (p, pixel) in tile.chunks_exact(c).enumerate() {
        let x: &[f32; W] = pixel[start..start + W].try_into().unwrap();
        let d: &[f32; W] = dy[p * stride + start..][..W].try_into().unwrap();
        let sums = s1.iter_mut().zip(&mut s2);
        for (((s1, s2), (&x, &d)), ((&m, &s), &b)) in sums.zip(x.iter().zip(d)).zip(affine.clone())
        {
            let g = relu_gradient(x, m, s, b, d);
            *s1 += g as f64;
            *s2 += (g * (x - m)) as f64;
        }
    }
    add(&mut first[start..start + W], &s1);
    add(&mut second[start..start + W], &s2);
}

simd_kernel! {
    /// Adds up, per channel, `g = dy·[out > 0]` and `g·(x − mean)` over the dense pixels of `raw`
    /// into `sums = [Σg; channels] ++ [Σg·(x − mean); channels]` (overwritten), in f64; `dy` has
    /// its pixels `stride` floats apart from its first float.
    fn gradient_sums(raw: &[f32], stats: &BatchStats, dy: &[f32], stride: usize, sums: &mut [f64]) {
        let c = stats.mean.len();
        sums.fill(0.0);
        let (first, second) = sums.split_at_mut(c);
        for (t, tile) in raw.chunks(TILE * c).enumerate() {
            let dy = &dy[t * TILE * stride..];
            let mut start = 0;
            while start + BLOCK <= c {
                gradient_block::<BLOCK>(tile, stats, dy, stride, start, first, second);
                start += BLOCK;
            }
            for start in start..c {
                gradient_block::<1>(tile, stats, dy, stride, start, first, second);
            }
        }
    }
}

simd_kernel! {
    /// Overwrites the dense pixels of `raw` with `∂L/∂raw = k·(g − shift − (x − mean)·slope)`,
    /// `g = dy·[out > 0]`, per channel `k = gamma·inv_std`, `shift = Σg/P`,
    /// `slope = inv_std²·Σg·(x − mean)/P` (the closed form of BatchNorm's backward pass);
    /// `dy` has its pixels `stride` floats apart from its first float.
    #[allow(clippy::too_many_arguments)]
    fn input_gradient(
        raw: &mut [f32],
        stats: &BatchStats,
        k: &[f32],
        shift: &[f32],
        slope: &[f32],
        dy: &[f32],
        stride: usize,
    ) {
        let c = stats.mean.len();
        let affine = stats.mean.iter().zip(&stats.scale).zip(&stats.beta);
        for (p, pixel) in raw.chunks_exact_mut(c).enumerate() {
            let d = &dy[p * stride..][..c];
            let per_channel = affine.clone().zip(k).zip(shift).zip(slope);
            for ((x, &d), (((((&m, &sc), &b), &k), &t), &s)) in pixel.iter_mut().zip(d).zip(per_channel) {
                let g = relu_gradient(*x, m, sc, b, d);
                *x = k * (g - t - (*x - m) * s);
            }
        }
    }
}

/// Runs `kernel` on every chunk of [`chunk_pixels`] pixels of the dense `raw` in parallel, each
/// writing `2·channels` f64 partial sums, and returns their per-chunk total, added in chunk order.
fn chunked_sums(
    raw: &[f32],
    channels: usize,
    kernel: impl Fn(usize, &[f32], &mut [f64]) + Sync,
) -> Vec<f64> {
    let chunk = chunk_pixels(channels);
    let chunks = (raw.len() / channels).div_ceil(chunk);
    let mut partial = vec![0.0f64; chunks * 2 * channels];
    partial
        .par_chunks_mut(2 * channels)
        .zip(raw.par_chunks(chunk * channels))
        .enumerate()
        .for_each(|(i, (sums, pixels))| kernel(i * chunk, pixels, sums));
    let mut total = vec![0.0f64; 2 * channels];
    for sums in partial.chunks_exact(2 * channels) {
        for (t, s) in total.iter_mut().zip(sums) {
            *t += s;
        }
    }
    total
}

/// `raw`: dense `[P, C]` convolution outputs. Writes
/// `out[p·stride+offset+c] = max(0, gamma[c]·(raw − mean[c])·inv_std[c] + beta[c])` with the
/// batch's mean and biased variance (PyTorch's `batch_norm` in training mode, then `relu`), and
/// returns those statistics. Floats of an output outside its part's channels are left untouched.
///
/// The layer's channels go, in order, to `parts`: each is `(output, its layout, how many
/// channels)`, the counts adding up to `channels` (a part of no channels is skipped, its buffer
/// never touched). A unit writes one part; an inception module's fused 1x1 unit writes branch 1
/// straight into the concatenated map and the two reductions into their own buffers, with no fused
/// map to copy them out of.
pub(crate) fn forward_split<const N: usize>(
    raw: &[f32],
    channels: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    parts: [(&mut [f32], Layout, usize); N],
) -> BatchStats {
    let c = channels;
    assert!(c > 0 && raw.len().is_multiple_of(c), "raw is not [P, {c}]");
    assert!(
        gamma.len() == c && beta.len() == c,
        "one gamma and beta per channel"
    );
    assert_eq!(
        parts.iter().map(|(_, _, width)| width).sum::<usize>(),
        c,
        "the parts' channels add up to the layer's"
    );
    let pixels = raw.len() / c;
    for (out, layout, width) in parts.iter().filter(|(_, _, width)| *width > 0) {
        let span = layout.span(pixels, *width);
        assert!(out.len() >= span.end, "output buffer shorter than the map");
    }

    let shift = if pixels == 0 {
        vec![0.0; c]
    } else {
        raw[..c].to_vec()
    };
    let sums = chunked_sums(raw, c, |_, pixels, sums| shifted_sums(pixels, &shift, sums));
    let n = pixels.max(1) as f64;
    let mut stats = BatchStats {
        mean: Vec::with_capacity(c),
        var: Vec::with_capacity(c),
        inv_std: Vec::with_capacity(c),
        count: pixels,
        scale: Vec::new(),
        beta: beta.to_vec(),
    };
    for ch in 0..c {
        let centred = sums[ch] / n;
        let var = (sums[c + ch] / n - centred * centred).max(0.0);
        stats.mean.push((shift[ch] as f64 + centred) as f32);
        stats.var.push(var as f32);
        stats.inv_std.push((1.0 / (var + eps).sqrt()) as f32);
    }
    stats.scale = (0..c)
        .map(|ch| (gamma[ch] as f64 * stats.inv_std[ch] as f64) as f32)
        .collect();

    // One task per chunk of pixels writes that chunk's pixels of every part, so that the chunk
    // of `raw` is read from memory once, not once per part.
    let chunk = chunk_pixels(c);
    let mut tasks: Vec<_> = raw.chunks(chunk * c).map(|src| (src, Vec::new())).collect();
    let mut from = 0;
    for (out, layout, width) in parts {
        let channels = from..from + width;
        from += width;
        if width == 0 {
            continue;
        }
        let dsts = out[layout.span(pixels, width)].chunks_mut(chunk * layout.stride);
        for ((_, part), dst) in tasks.iter_mut().zip(dsts) {
            part.push((dst, layout.stride, channels.clone()));
        }
    }
    tasks.into_par_iter().for_each(|(src, parts)| {
        for (dst, stride, ch) in parts {
            let (mean, scale) = (&stats.mean[ch.clone()], &stats.scale[ch.clone()]);
            normalise(src, c, ch.start, mean, scale, &beta[ch], dst, stride);
        }
    });
    stats
}

/// Backward of [`forward_split`]. `dy`: ∂L/∂out in the forward's layout; the ReLU mask (`out > 0`) is
/// recomputed from `raw` and `stats`, bit for bit what the forward wrote. On return `raw` holds
/// ∂L/∂raw (overwritten in place — the raw values are not needed after this); `dgamma`, `dbeta`
/// overwritten. With g = dy·[out>0], x̂ = (raw−mean)·inv_std: dbeta = Σg, dgamma = Σ g·x̂,
/// draw = gamma·inv_std·(g − dbeta/P − x̂·dgamma/P) — the gradient through the batch statistics,
/// as PyTorch's `batch_norm_backward` in training mode.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    raw: &mut [f32],
    channels: usize,
    gamma: &[f32],
    stats: &BatchStats,
    dy: &[f32],
    layout: Layout,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let c = channels;
    assert!(
        c > 0 && raw.len() == stats.count * c,
        "raw is not the forward's [P, {c}]"
    );
    assert!(
        gamma.len() == c && stats.mean.len() == c,
        "one gamma per channel"
    );
    assert!(
        dgamma.len() == c && dbeta.len() == c,
        "one gradient per channel"
    );
    let span = layout.span(stats.count, c);
    assert!(dy.len() >= span.end, "gradient buffer shorter than the map");
    let dy = &dy[span];
    let stride = layout.stride;
    let chunk = chunk_pixels(c);

    let sums = chunked_sums(raw, c, |first, pixels, sums| {
        let at = first * stride;
        gradient_sums(pixels, stats, &dy[at..], stride, sums)
    });
    let n = stats.count.max(1) as f64;
    let mut k = vec![0.0f32; c];
    let mut shift = vec![0.0f32; c];
    let mut slope = vec![0.0f32; c];
    for ch in 0..c {
        let inv_std = stats.inv_std[ch] as f64;
        dbeta[ch] = sums[ch] as f32;
        dgamma[ch] = (sums[c + ch] * inv_std) as f32;
        k[ch] = (gamma[ch] as f64 * inv_std) as f32;
        shift[ch] = (sums[ch] / n) as f32;
        slope[ch] = (sums[c + ch] * inv_std * inv_std / n) as f32;
    }

    raw.par_chunks_mut(chunk * c)
        .enumerate()
        .for_each(|(i, pixels)| {
            let at = i * chunk * stride;
            input_gradient(pixels, stats, &k, &shift, &slope, &dy[at..], stride)
        });
}

/// running = (1 − momentum)·running + momentum·batch, with the unbiased variance
/// (`count/(count−1)` times the biased one) for `running_var`, as PyTorch's `BatchNorm2d` in
/// training. Panics for a batch of one value per channel, which PyTorch refuses too ("Expected
/// more than 1 value per channel when training").
pub(crate) fn update_running(
    stats: &BatchStats,
    momentum: f64,
    running_mean: &mut [f32],
    running_var: &mut [f32],
) {
    assert!(
        stats.count > 1,
        "BatchNorm needs more than 1 value per channel in training"
    );
    assert!(
        running_mean.len() == stats.mean.len() && running_var.len() == stats.var.len(),
        "one running statistic per channel"
    );
    let unbias = stats.count as f64 / (stats.count - 1) as f64;
    for (r, &m) in running_mean.iter_mut().zip(&stats.mean) {
        *r = ((1.0 - momentum) * *r as f64 + momentum * m as f64) as f32;
    }
    for (r, &v) in running_var.iter_mut().zip(&stats.var) {
        *r = ((1.0 - momentum) * *r as f64 + momentum * v as f64 * unbias) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no `rand` here): uniform floats in [-1, 1).
    struct Lcg(u64);

    impl Lcg {
        /// The next float in [-1, 1).
        fn next(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }

        /// `len` floats uniform in `centre ± spread`.
        fn vec(&mut self, len: usize, centre: f32, spread: f32) -> Vec<f32> {
            (0..len).map(|_| centre + spread * self.next()).collect()
        }
    }

    /// torchvision's BasicConv2d epsilon.
    const EPS: f64 = 1e-3;

    /// PyTorch's training-mode BatchNorm and ReLU in f64, written out plainly: the output, the
    /// per-channel mean and the biased variance.
    fn reference(
        raw: &[f64],
        c: usize,
        gamma: &[f64],
        beta: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let p = raw.len() / c;
        let mut mean = vec![0.0; c];
        let mut var = vec![0.0; c];
        for ch in 0..c {
            mean[ch] = (0..p).map(|i| raw[i * c + ch]).sum::<f64>() / p as f64;
            var[ch] = (0..p)
                .map(|i| (raw[i * c + ch] - mean[ch]).powi(2))
                .sum::<f64>()
                / p as f64;
        }
        let out = raw
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let ch = i % c;
                let v = gamma[ch] * (x - mean[ch]) / (var[ch] + EPS).sqrt() + beta[ch];
                v.max(0.0)
            })
            .collect();
        (out, mean, var)
    }

    /// The values in f64.
    fn wide(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| x as f64).collect()
    }

    /// [`forward_split`] to one map.
    fn forward(
        raw: &[f32],
        c: usize,
        gamma: &[f32],
        beta: &[f32],
        eps: f64,
        out: &mut [f32],
        layout: Layout,
    ) -> BatchStats {
        forward_split(raw, c, gamma, beta, eps, [(out, layout, c)])
    }

    /// A dense map of `c` channels.
    fn dense(c: usize) -> Layout {
        Layout {
            stride: c,
            offset: 0,
        }
    }

    /// Whether `got` is within `abs + rel·|want|` of `want`.
    fn close(got: f32, want: f64, abs: f64, rel: f64) -> bool {
        (got as f64 - want).abs() <= abs + rel * want.abs()
    }

    /// Forward on several chunks of an odd channel count against the f64 reference: the
    /// statistics (mean, biased variance, 1/sqrt(var + eps)) and every output.
    #[test]
    fn forward_matches_f64_reference() {
        let mut rng = Lcg(1);
        let (p, c) = (5000, 19);
        let raw = rng.vec(p * c, 3.0, 2.0);
        let gamma = rng.vec(c, 0.0, 1.5);
        let beta = rng.vec(c, 0.0, 0.5);
        let mut out = vec![f32::NAN; p * c];
        let stats = forward(&raw, c, &gamma, &beta, EPS, &mut out, dense(c));
        let (want, mean, var) = reference(&wide(&raw), c, &wide(&gamma), &wide(&beta));
        assert_eq!(stats.count, p);
        for ch in 0..c {
            assert!(close(stats.mean[ch], mean[ch], 1e-6, 1e-6), "mean {ch}");
            assert!(close(stats.var[ch], var[ch], 0.0, 1e-6), "var {ch}");
            let inv_std = 1.0 / (var[ch] + EPS).sqrt();
            assert!(close(stats.inv_std[ch], inv_std, 0.0, 1e-6), "inv_std {ch}");
        }
        let mut positive = 0;
        for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
            assert!(
                close(got, want, 1e-5, 1e-5),
                "out[{i}] = {got}, want {want}"
            );
            positive += (got > 0.0) as usize;
        }
        // The ReLU did cut something, and not everything.
        assert!(positive > p * c / 4 && positive < p * c * 3 / 4);
    }

    /// The variance of values far from zero (mean 1000, spread 0.01) over 200K pixels: a
    /// one-pass f32 sum of squares would lose it entirely.
    #[test]
    fn statistics_survive_a_large_mean() {
        let mut rng = Lcg(2);
        let (p, c) = (16 * 112 * 112, 2);
        let raw = rng.vec(p * c, 1000.0, 0.01);
        let ones = vec![1.0; c];
        let zeros = vec![0.0; c];
        let mut out = vec![0.0; p * c];
        let stats = forward(&raw, c, &ones, &zeros, EPS, &mut out, dense(c));
        let (_, mean, var) = reference(&wide(&raw), c, &wide(&ones), &wide(&zeros));
        for ch in 0..c {
            assert!(close(stats.mean[ch], mean[ch], 0.0, 1e-7), "mean {ch}");
            assert!(close(stats.var[ch], var[ch], 0.0, 1e-5), "var {ch}");
        }
    }

    /// The loss `L = Σ out·r` for a fixed `r`, in f64 through the reference forward.
    fn loss(raw: &[f64], c: usize, gamma: &[f64], beta: &[f64], r: &[f64]) -> f64 {
        let (out, _, _) = reference(raw, c, gamma, beta);
        out.iter().zip(r).map(|(o, r)| o * r).sum()
    }

    /// Backward with `dy = r` against central finite differences of `Σ out·r` (in f64, through
    /// the batch statistics) for every seventh input and every gamma and beta, and against the
    /// documented closed form in f64 for all of them.
    #[test]
    fn backward_matches_finite_differences_and_closed_form() {
        let mut rng = Lcg(3);
        let (p, c) = (600, 5);
        let raw = rng.vec(p * c, 0.5, 2.0);
        let gamma = rng.vec(c, 0.2, 1.0);
        let beta = rng.vec(c, 0.0, 0.5);
        let r = rng.vec(p * c, 0.0, 1.0);
        let mut out = vec![0.0; p * c];
        let stats = forward(&raw, c, &gamma, &beta, EPS, &mut out, dense(c));
        let (mut draw, mut dgamma, mut dbeta) = (raw.clone(), vec![9.0; c], vec![9.0; c]);
        backward(
            &mut draw,
            c,
            &gamma,
            &stats,
            &r,
            dense(c),
            &mut dgamma,
            &mut dbeta,
        );

        let (raw64, gamma64, beta64, r64) = (wide(&raw), wide(&gamma), wide(&beta), wide(&r));
        let h = 1e-6;
        let difference = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
        for i in (0..p * c).step_by(7) {
            let want = difference(&|d| {
                let mut x = raw64.clone();
                x[i] += d;
                loss(&x, c, &gamma64, &beta64, &r64)
            });
            assert!(
                close(draw[i], want, 1e-5, 1e-4),
                "draw[{i}] = {}, want {want}",
                draw[i]
            );
        }
        for ch in 0..c {
            let want = difference(&|d| {
                let mut g = gamma64.clone();
                g[ch] += d;
                loss(&raw64, c, &g, &beta64, &r64)
            });
            assert!(close(dgamma[ch], want, 1e-4, 1e-5), "dgamma[{ch}]");
            let want = difference(&|d| {
                let mut b = beta64.clone();
                b[ch] += d;
                loss(&raw64, c, &gamma64, &b, &r64)
            });
            assert!(close(dbeta[ch], want, 1e-4, 1e-5), "dbeta[{ch}]");
        }

        // The closed form, in f64 from the reference statistics.
        let (out64, mean, var) = reference(&raw64, c, &gamma64, &beta64);
        for ch in 0..c {
            let inv_std = 1.0 / (var[ch] + EPS).sqrt();
            let g = |i: usize| {
                if out64[i * c + ch] > 0.0 {
                    r64[i * c + ch]
                } else {
                    0.0
                }
            };
            let xhat = |i: usize| (raw64[i * c + ch] - mean[ch]) * inv_std;
            let sum_g: f64 = (0..p).map(g).sum();
            let sum_gx: f64 = (0..p).map(|i| g(i) * xhat(i)).sum();
            assert!(close(dbeta[ch], sum_g, 1e-5, 1e-5), "dbeta[{ch}]");
            assert!(close(dgamma[ch], sum_gx, 1e-5, 1e-5), "dgamma[{ch}]");
            for i in 0..p {
                let want =
                    gamma64[ch] * inv_std * (g(i) - sum_g / p as f64 - xhat(i) * sum_gx / p as f64);
                assert!(close(draw[i * c + ch], want, 1e-6, 1e-4), "draw[{i}, {ch}]");
            }
        }
    }

    /// A branch writing channels 4..9 of an 11-channel concatenation (in a buffer that ends
    /// right after its last channel): the same values as a dense layout, bit for bit, the other
    /// channels untouched, and the other channels of `dy` (NaN here) ignored.
    #[test]
    fn strided_layout_touches_only_its_channels() {
        let mut rng = Lcg(4);
        let (p, c) = (3000, 5);
        let layout = Layout {
            stride: 11,
            offset: 4,
        };
        let len = (p - 1) * 11 + 4 + c;
        let raw = rng.vec(p * c, 1.0, 1.0);
        let gamma = rng.vec(c, 0.0, 1.0);
        let beta = rng.vec(c, 0.0, 1.0);
        let dy_dense = rng.vec(p * c, 0.0, 1.0);

        let mut dense_out = vec![0.0; p * c];
        let dense_stats = forward(&raw, c, &gamma, &beta, EPS, &mut dense_out, dense(c));
        let mut out = vec![7.5; len];
        let stats = forward(&raw, c, &gamma, &beta, EPS, &mut out, layout);
        assert_eq!(stats.mean, dense_stats.mean);
        assert_eq!(stats.inv_std, dense_stats.inv_std);
        let mut dy = vec![f32::NAN; len];
        for (i, &v) in out.iter().enumerate() {
            let ch = i % 11;
            if (4..4 + c).contains(&ch) {
                let want = dense_out[i / 11 * c + ch - 4];
                assert_eq!(v.to_bits(), want.to_bits(), "out[{i}]");
                dy[i] = dy_dense[i / 11 * c + ch - 4];
            } else {
                assert_eq!(v, 7.5, "out[{i}] outside the layer's channels");
            }
        }

        let (mut draw_dense, mut dgamma_dense, mut dbeta_dense) =
            (raw.clone(), vec![0.0; c], vec![0.0; c]);
        backward(
            &mut draw_dense,
            c,
            &gamma,
            &dense_stats,
            &dy_dense,
            dense(c),
            &mut dgamma_dense,
            &mut dbeta_dense,
        );
        let (mut draw, mut dgamma, mut dbeta) = (raw.clone(), vec![0.0; c], vec![0.0; c]);
        backward(
            &mut draw,
            c,
            &gamma,
            &stats,
            &dy,
            layout,
            &mut dgamma,
            &mut dbeta,
        );
        assert_eq!(draw, draw_dense);
        assert_eq!(dgamma, dgamma_dense);
        assert_eq!(dbeta, dbeta_dense);
        assert!(draw.iter().all(|v| v.is_finite()));
    }

    /// Writing the channels to three maps (one of them strided, one part empty) gives the same
    /// statistics and, channel for channel, the same bits as writing one dense map.
    #[test]
    fn split_output_matches_dense() {
        let mut rng = Lcg(6);
        let (p, c) = (3000, 21);
        let raw = rng.vec(p * c, 0.2, 1.0);
        let gamma = rng.vec(c, 0.5, 1.0);
        let beta = rng.vec(c, 0.0, 1.0);
        let mut dense_out = vec![0.0; p * c];
        let dense_stats = forward(&raw, c, &gamma, &beta, EPS, &mut dense_out, dense(c));
        let (mut wide, mut middle, mut empty) = (vec![7.5; p * 9], vec![0.0; p * 17], vec![]);
        let wide_layout = Layout {
            stride: 9,
            offset: 2,
        };
        let stats = forward_split(
            &raw,
            c,
            &gamma,
            &beta,
            EPS,
            [
                (&mut wide[..], wide_layout, 4),
                (&mut empty[..], dense(1), 0),
                (&mut middle[..], dense(17), 17),
            ],
        );
        assert_eq!((stats.mean, stats.var), (dense_stats.mean, dense_stats.var));
        for (i, pixel) in dense_out.chunks_exact(c).enumerate() {
            assert_eq!(wide[i * 9..][..2], [7.5; 2], "pixel {i} before the part");
            assert_eq!(wide[i * 9 + 2..][..4], pixel[..4], "pixel {i}, first part");
            assert_eq!(wide[i * 9 + 6..][..3], [7.5; 3], "pixel {i} after the part");
            assert_eq!(middle[i * 17..][..17], pixel[4..], "pixel {i}, last part");
        }
    }

    /// Partial sums are added in chunk order, so one thread and the global pool agree bit for bit.
    #[test]
    fn results_do_not_depend_on_threads() {
        let mut rng = Lcg(5);
        let (p, c) = (20000, 24);
        let raw = rng.vec(p * c, 0.3, 1.0);
        let gamma = rng.vec(c, 0.5, 1.0);
        let beta = rng.vec(c, 0.0, 1.0);
        let dy = rng.vec(p * c, 0.0, 1.0);
        let run = || {
            let mut out = vec![0.0; p * c];
            let stats = forward(&raw, c, &gamma, &beta, EPS, &mut out, dense(c));
            let (mut draw, mut dgamma, mut dbeta) = (raw.clone(), vec![0.0; c], vec![0.0; c]);
            backward(
                &mut draw,
                c,
                &gamma,
                &stats,
                &dy,
                dense(c),
                &mut dgamma,
                &mut dbeta,
            );
            (out, stats.mean, stats.var, draw, dgamma, dbeta)
        };
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(run);
        assert!(one == run());
    }

    /// The running averages on numbers worked by hand: values 1, 2, 3, 4 (mean 2.5, biased
    /// variance 1.25, unbiased 5/3) and a constant channel, momentum 0.1.
    #[test]
    fn running_statistics_follow_pytorch() {
        let raw = [1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0];
        let mut out = [0.0; 8];
        let stats = forward(&raw, 2, &[1.0; 2], &[0.0; 2], EPS, &mut out, dense(2));
        assert_eq!(stats.mean, [2.5, 0.0]);
        assert_eq!(stats.var, [1.25, 0.0]);
        assert!(close(stats.inv_std[0], 1.0 / 1.251f64.sqrt(), 0.0, 1e-7));
        let (mut mean, mut var) = ([0.5, -1.0], [2.0, 1.0]);
        update_running(&stats, 0.1, &mut mean, &mut var);
        assert!(close(mean[0], 0.7, 0.0, 1e-7) && close(mean[1], -0.9, 0.0, 1e-7));
        assert!(
            close(var[0], 0.9 * 2.0 + 0.1 * 5.0 / 3.0, 0.0, 1e-7),
            "{var:?}"
        );
        assert!(close(var[1], 0.9, 0.0, 1e-7));
    }

    /// An empty batch (no pixels) writes nothing, even at an offset into an empty buffer, and
    /// has zero parameter gradients.
    #[test]
    fn empty_batch_is_harmless() {
        let layout = Layout {
            stride: 8,
            offset: 3,
        };
        let stats = forward(&[], 2, &[1.0; 2], &[0.0; 2], EPS, &mut [], layout);
        assert_eq!(stats.count, 0);
        let (mut dgamma, mut dbeta) = ([5.0; 2], [5.0; 2]);
        backward(
            &mut [],
            2,
            &[1.0; 2],
            &stats,
            &[],
            layout,
            &mut dgamma,
            &mut dbeta,
        );
        assert_eq!((dgamma, dbeta), ([0.0; 2], [0.0; 2]));
    }
}

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

use super::super::simd::simd_kernel;

/// Where a layer's output (and the gradient with respect to it) lives: channel `c` of pixel `p`
/// is at `p·stride + offset + c` (a branch of an inception module writes its channels of the
/// concatenated map this way; a dense map has stride = channels, offset 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// Floats between consecutive pixels.
    pub stride: usize,
    /// Position of the layer's first channel within each pixel.
    pub offset: usize,
}

impl Layout {
    /// A map of `channels` channels of its own: stride = channels, offset 0.
    pub(crate) fn dense(channels: usize) -> Self {
        Self {
            stride: channels,
            offset: 0,
        }
    }

    /// The floats a buffer in this layout spans for `pixels` pixels of `channels` channels, from
    /// the first channel of the first pixel to the last channel of the last (empty for no
    /// pixels); a longer buffer is fine.
    pub(crate) fn span(&self, pixels: usize, channels: usize) -> Range<usize> {
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

/// One part of a layer's output gradient in [`backward_split`]: `∂L/∂out` of channels
/// `channels` (of the layer's), whose pixels are `stride` floats apart from `dy`'s first float.
struct GradientPart<'a> {
    dy: &'a [f32],
    stride: usize,
    channels: Range<usize>,
}

impl GradientPart<'_> {
    /// `∂L/∂out` of the part's channels `start..start + width` at pixel `p`.
    #[inline(always)]
    fn at(&self, p: usize, start: usize, width: usize) -> &[f32] {
        &self.dy[p * self.stride + start - self.channels.start..][..width]
    }
}

/// Adds `Σg` and `Σg·(x − mean)` (`g = dy·[out > 0]`) over the pixels of `tile` (pixels
/// `first_pixel..` of the layer) for channels `start..start + W`, which lie in `part`, to `first`
/// and `second`, keeping the `W` running sums in registers.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gradient_block<const W: usize>(
    tile: &[f32],
    first_pixel: usize,
    stats: &BatchStats,
    part: &GradientPart,
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
        let d: &[f32; W] = part.at(first_pixel + p, start, W).try_into().unwrap();
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
    /// (pixels `first_pixel..` of the layer) into `sums = [Σg; channels] ++ [Σg·(x − mean);
    /// channels]` (overwritten), in f64, `dy` read from the part that holds each channel.
    fn gradient_sums(
        raw: &[f32],
        first_pixel: usize,
        stats: &BatchStats,
        parts: &[GradientPart],
        sums: &mut [f64],
    ) {
        let c = stats.mean.len();
        sums.fill(0.0);
        let (first, second) = sums.split_at_mut(c);
        for (t, tile) in raw.chunks(TILE * c).enumerate() {
            let tile_pixel = first_pixel + t * TILE;
            for part in parts {
                let mut start = part.channels.start;
                while start + BLOCK <= part.channels.end {
                    gradient_block::<BLOCK>(tile, tile_pixel, stats, part, start, first, second);
                    start += BLOCK;
                }
                for start in start..part.channels.end {
                    gradient_block::<1>(tile, tile_pixel, stats, part, start, first, second);
                }
            }
        }
    }
}

simd_kernel! {
    /// Overwrites the dense pixels of `raw` (pixels `first_pixel..` of the layer) with
    /// `∂L/∂raw = k·(g − shift − (x − mean)·slope)`, `g = dy·[out > 0]`, per channel
    /// `k = gamma·inv_std`, `shift = Σg/P`, `slope = inv_std²·Σg·(x − mean)/P` (the closed form
    /// of BatchNorm's backward pass), `dy` read from the part that holds each channel.
    #[allow(clippy::too_many_arguments)]
    fn input_gradient(
        raw: &mut [f32],
        first_pixel: usize,
        stats: &BatchStats,
        k: &[f32],
        shift: &[f32],
        slope: &[f32],
        parts: &[GradientPart],
    ) {
        let c = stats.mean.len();
        for (p, pixel) in raw.chunks_exact_mut(c).enumerate() {
            for part in parts {
                let ch = part.channels.clone();
                let d = part.at(first_pixel + p, ch.start, ch.len());
                let affine = stats.mean[ch.clone()].iter().zip(&stats.scale[ch.clone()]).zip(&stats.beta[ch.clone()]);
                let per_channel = affine.zip(&k[ch.clone()]).zip(&shift[ch.clone()]).zip(&slope[ch.clone()]);
                for ((x, &d), (((((&m, &sc), &b), &k), &t), &s)) in pixel[ch].iter_mut().zip(d).zip(per_channel) {
                    let g = relu_gradient(*x, m, sc, b, d);
                    *x = k * (g - t - (*x - m) * s);
                }
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

/// Backward of [`forward_split`]. `parts`: ∂L/∂out, each part `(gradient, its layout, how many
/// channels)` holding the next channels in order, as the forward's parts (an inception module's
/// fused 1x1 unit reads branch 1's gradient from the concatenated map's and the reductions' from
/// their own buffers, with no fused gradient map to copy them into). The ReLU mask (`out > 0`) is
/// recomputed from `raw` and `stats`, bit for bit what the forward wrote. On return `raw` holds
/// ∂L/∂raw (overwritten in place — the raw values are not needed after this); `dgamma`, `dbeta`
/// overwritten. With g = dy·[out>0], x̂ = (raw−mean)·inv_std: dbeta = Σg, dgamma = Σ g·x̂,
/// draw = gamma·inv_std·(g − dbeta/P − x̂·dgamma/P) — the gradient through the batch statistics,
/// as PyTorch's `batch_norm_backward` in training mode.
pub(crate) fn backward_split<const N: usize>(
    raw: &mut [f32],
    channels: usize,
    gamma: &[f32],
    stats: &BatchStats,
    parts: [(&[f32], Layout, usize); N],
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
    assert_eq!(
        parts.iter().map(|(_, _, width)| width).sum::<usize>(),
        c,
        "the parts' channels add up to the layer's"
    );
    let mut from = 0;
    let parts: Vec<GradientPart> = parts
        .into_iter()
        .filter(|(_, _, width)| *width > 0)
        .map(|(dy, layout, width)| {
            let span = layout.span(stats.count, width);
            assert!(dy.len() >= span.end, "gradient buffer shorter than the map");
            from += width;
            GradientPart {
                dy: &dy[span],
                stride: layout.stride,
                channels: from - width..from,
            }
        })
        .collect();
    let chunk = chunk_pixels(c);

    let sums = chunked_sums(raw, c, |first, pixels, sums| {
        gradient_sums(pixels, first, stats, &parts, sums)
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
            input_gradient(pixels, i * chunk, stats, &k, &shift, &slope, &parts)
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
mod tests;

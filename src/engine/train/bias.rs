//! Conv bias + ReLU, the paper's unit after every convolution (section 5: "All the convolutions
//! ... use rectified linear activation"; the paper's network has no BatchNorm), forward and
//! backward, in the same layouts as [`super::norm`].

use rayon::prelude::*;

use super::norm::Layout;

/// Pixels per parallel chunk: about 32K floats of work per rayon task.
fn chunk_pixels(channels: usize) -> usize {
    (32 * 1024 / channels.max(1)).max(1)
}

/// `raw`: dense `[P, C]` convolution outputs. Writes `max(0, raw + bias[c])` to `parts`, each
/// `(map, layout, width)` taking the next `width` channels in order (as
/// [`super::norm::forward_split`]: one unit side by side writes each branch to its own map).
pub(crate) fn forward_split<const N: usize>(
    raw: &[f32],
    bias: &[f32],
    mut parts: [(&mut [f32], Layout, usize); N],
) {
    let c = bias.len();
    assert_eq!(
        parts.iter().map(|(_, _, w)| w).sum::<usize>(),
        c,
        "parts cover every channel"
    );
    let pixels = raw.len() / c.max(1);
    let mut first = 0;
    for (out, layout, width) in &mut parts {
        let (layout, width) = (*layout, *width);
        assert!(
            out.len() >= layout.span(pixels, width).end,
            "output buffer shorter than the map"
        );
        let chunk = chunk_pixels(c);
        let bias = &bias[first..first + width];
        raw.par_chunks(chunk * c)
            .zip(out.par_chunks_mut(chunk * layout.stride))
            .for_each(|(raw, out)| {
                for (r, o) in raw.chunks_exact(c).zip(out.chunks_mut(layout.stride)) {
                    let o = &mut o[layout.offset..layout.offset + width];
                    let r = &r[first..first + width];
                    for ((o, &r), &b) in o.iter_mut().zip(r).zip(bias) {
                        *o = (r + b).max(0.0);
                    }
                }
            });
        first += width;
    }
}

/// Backward of [`forward_split`]: `parts` hold the gradient of the output, each `(gradient, its
/// layout, how many channels)` for the next channels in order, as the forward's parts; the ReLU's
/// mask is recomputed from `raw + bias`, as the forward pass computed it. On return `raw` holds
/// the gradient of the convolution's output (the raw values are not needed after this), and
/// `bias_grad` (overwritten) the bias's.
pub(crate) fn backward_split<const N: usize>(
    raw: &mut [f32],
    bias: &[f32],
    parts: [(&[f32], Layout, usize); N],
    bias_grad: &mut [f32],
) {
    let c = bias.len();
    assert_eq!(
        parts.iter().map(|(_, _, w)| w).sum::<usize>(),
        c,
        "parts cover every channel"
    );
    let pixels = raw.len() / c.max(1);
    let parts: Vec<_> = parts.into_iter().filter(|(_, _, w)| *w > 0).collect();
    for (dy, layout, width) in &parts {
        assert!(
            dy.len() >= layout.span(pixels, *width).end,
            "gradient buffer shorter than the map"
        );
    }
    let chunk = chunk_pixels(c);
    let partials: Vec<Vec<f64>> = raw
        .par_chunks_mut(chunk * c)
        .enumerate()
        .map(|(i, raw)| {
            let mut sums = vec![0.0f64; c];
            for (p, g) in raw.chunks_exact_mut(c).enumerate() {
                let pixel = i * chunk + p;
                let mut first = 0;
                for (dy, layout, width) in &parts {
                    let d = &dy[pixel * layout.stride + layout.offset..][..*width];
                    let channels = first..first + width;
                    first += width;
                    let per_channel = bias[channels.clone()]
                        .iter()
                        .zip(&mut sums[channels.clone()]);
                    for ((g, &d), (&b, s)) in g[channels].iter_mut().zip(d).zip(per_channel) {
                        *g = if *g + b > 0.0 { d } else { 0.0 };
                        *s += *g as f64;
                    }
                }
            }
            sums
        })
        .collect();
    // Chunks in order, so the sum does not depend on the threads.
    for (ch, b) in bias_grad.iter_mut().enumerate() {
        *b = partials.iter().map(|p| p[ch]).sum::<f64>() as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_backward_match_the_definition_in_a_strided_layout() {
        let (p, c) = (5000, 3);
        let raw: Vec<f32> = (0..p * c)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let bias = [0.1, -0.2, 0.3];
        let layout = Layout {
            stride: 7,
            offset: 2,
        };
        let mut out = vec![-9.0; p * 7];
        forward_split(&raw, &bias, [(&mut out, layout, c)]);
        let dy: Vec<f32> = (0..p * 7).map(|i| ((i * 13) % 17) as f32 - 8.0).collect();
        let mut grad = raw.clone();
        let mut bias_grad = vec![f32::NAN; c];
        backward_split(&mut grad, &bias, [(&dy, layout, c)], &mut bias_grad);
        let mut want_bias = [0.0f64; 3];
        for px in 0..p {
            for ch in 0..c {
                let y = (raw[px * c + ch] + bias[ch]).max(0.0);
                assert_eq!(out[px * 7 + 2 + ch], y);
                let g = if y > 0.0 { dy[px * 7 + 2 + ch] } else { 0.0 };
                assert_eq!(grad[px * c + ch], g);
                want_bias[ch] += g as f64;
            }
            for other in [0, 1, 5, 6] {
                assert_eq!(
                    out[px * 7 + other],
                    -9.0,
                    "channels of other branches untouched"
                );
            }
        }
        for ch in 0..c {
            assert!(
                (bias_grad[ch] as f64 - want_bias[ch]).abs() < 1e-3,
                "bias {ch}"
            );
        }
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn split_parts_get_their_channels() {
        let (p, c) = (10, 5);
        let raw: Vec<f32> = (0..p * c).map(|i| i as f32 - 20.0).collect();
        let bias = [0.5, -0.5, 1.0, 0.0, 2.0];
        let mut whole = vec![0.0; p * c];
        forward_split(&raw, &bias, [(&mut whole, Layout::dense(c), c)]);
        let (mut a, mut b) = (vec![-1.0; p * 4], vec![-1.0; p * 3]);
        forward_split(
            &raw,
            &bias,
            [
                (
                    &mut a,
                    Layout {
                        stride: 4,
                        offset: 1,
                    },
                    2,
                ),
                (&mut b, Layout::dense(3), 3),
            ],
        );
        for px in 0..p {
            assert_eq!(a[px * 4 + 1..px * 4 + 3], whole[px * c..px * c + 2]);
            assert_eq!(b[px * 3..px * 3 + 3], whole[px * c + 2..px * c + 5]);
            assert_eq!([a[px * 4], a[px * 4 + 3]], [-1.0, -1.0]);
        }
    }

    #[test]
    fn split_gradient_parts_give_the_dense_gradient() {
        let (p, c) = (5000, 5);
        let raw: Vec<f32> = (0..p * c)
            .map(|i| ((i * 29) % 43) as f32 / 20.0 - 1.0)
            .collect();
        let bias = [0.5, -0.5, 1.0, 0.0, -0.3];
        let dy: Vec<f32> = (0..p * c).map(|i| ((i * 13) % 17) as f32 - 8.0).collect();
        let (mut want, mut want_bias) = (raw.clone(), vec![0.0; c]);
        backward_split(
            &mut want,
            &bias,
            [(&dy, Layout::dense(c), c)],
            &mut want_bias,
        );
        let (mut a, mut b) = (vec![f32::NAN; p * 4], vec![0.0; p * 3]);
        for px in 0..p {
            a[px * 4 + 1..][..2].copy_from_slice(&dy[px * c..][..2]);
            b[px * 3..][..3].copy_from_slice(&dy[px * c + 2..][..3]);
        }
        let (mut got, mut got_bias) = (raw.clone(), vec![0.0; c]);
        let strided = Layout {
            stride: 4,
            offset: 1,
        };
        backward_split(
            &mut got,
            &bias,
            [
                (&a, strided, 2),
                (&[], Layout::dense(1), 0),
                (&b, Layout::dense(3), 3),
            ],
            &mut got_bias,
        );
        assert_eq!(got, want);
        assert_eq!(got_bias, want_bias);
        assert!(want_bias.iter().all(|g| *g != 0.0), "{want_bias:?}");
    }
}

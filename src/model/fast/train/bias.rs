//! Conv bias + ReLU, the paper's unit after every convolution (section 5: "All the convolutions
//! ... use rectified linear activation"; the paper's network has no BatchNorm), forward and
//! backward, in the same layouts as [`super::norm`].

use rayon::prelude::*;

use super::norm::Layout;

/// Pixels per parallel chunk: about 32K floats of work per rayon task.
fn chunk_pixels(channels: usize) -> usize {
    (32 * 1024 / channels.max(1)).max(1)
}

/// `raw`: dense `[P, C]` convolution outputs. Writes `out[p·stride + offset + c] =
/// max(0, raw + bias[c])`.
pub(crate) fn forward(raw: &[f32], bias: &[f32], out: &mut [f32], layout: Layout) {
    let c = bias.len();
    let pixels = raw.len() / c.max(1);
    assert!(
        layout.offset + c <= layout.stride,
        "channels past the pixel"
    );
    assert!(
        pixels == 0 || out.len() >= (pixels - 1) * layout.stride + layout.offset + c,
        "output buffer shorter than the map"
    );
    let chunk = chunk_pixels(c);
    raw.par_chunks(chunk * c)
        .zip(out.par_chunks_mut(chunk * layout.stride))
        .for_each(|(raw, out)| {
            for (r, o) in raw.chunks_exact(c).zip(out.chunks_mut(layout.stride)) {
                let o = &mut o[layout.offset..layout.offset + c];
                for ((o, &r), &b) in o.iter_mut().zip(r).zip(bias) {
                    *o = (r + b).max(0.0);
                }
            }
        });
}

/// Backward of [`forward`]: `out` is what it wrote (the ReLU mask, `out > 0`), `dy` the gradient
/// in the same layout. On return `raw` holds the gradient of the convolution's output (the raw
/// values are not needed after this), and `bias_grad` (overwritten) the bias's.
pub(crate) fn backward(
    raw: &mut [f32],
    out: &[f32],
    dy: &[f32],
    layout: Layout,
    bias_grad: &mut [f32],
) {
    let c = bias_grad.len();
    let chunk = chunk_pixels(c);
    let partials: Vec<Vec<f64>> = raw
        .par_chunks_mut(chunk * c)
        .zip(out.par_chunks(chunk * layout.stride))
        .zip(dy.par_chunks(chunk * layout.stride))
        .map(|((raw, out), dy)| {
            let mut sums = vec![0.0f64; c];
            for ((g, o), d) in raw
                .chunks_exact_mut(c)
                .zip(out.chunks(layout.stride))
                .zip(dy.chunks(layout.stride))
            {
                let o = &o[layout.offset..layout.offset + c];
                let d = &d[layout.offset..layout.offset + c];
                for (((g, &o), &d), s) in g.iter_mut().zip(o).zip(d).zip(&mut sums) {
                    *g = if o > 0.0 { d } else { 0.0 };
                    *s += *g as f64;
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
        forward(&raw, &bias, &mut out, layout);
        let dy: Vec<f32> = (0..p * 7).map(|i| ((i * 13) % 17) as f32 - 8.0).collect();
        let mut grad = raw.clone();
        let mut bias_grad = vec![f32::NAN; c];
        backward(&mut grad, &out, &dy, layout, &mut bias_grad);
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

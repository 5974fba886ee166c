//! The auxiliary heads' average pools: torchvision's adaptive 4x4 and the paper's 5x5/3
//! (section 5: "An average pooling layer with 5x5 filter size and stride 3, resulting in an
//! 4x4x512 output for the (4a), and 4x4x528 for the (4d) stage"), forward and backward.

use std::ops::Range;

use super::super::map::Shape;
use super::pool::{adaptive_avg_backward, adaptive_avg_forward};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuxPool {
    /// PyTorch's `adaptive_avg_pool2d` to `side` x `side`.
    Adaptive(usize),
    /// A `kernel` x `kernel` window every `stride` pixels, no padding.
    Window { kernel: usize, stride: usize },
}

impl AuxPool {
    /// The pooled map for `input`, or `None` if it is too small.
    pub fn output(&self, input: Shape) -> Option<Shape> {
        let side = |n: usize| match *self {
            AuxPool::Adaptive(side) => (n > 0).then_some(side),
            AuxPool::Window { kernel, stride } => Some(n.checked_sub(kernel)? / stride + 1),
        };
        Some(Shape {
            h: side(input.h)?,
            w: side(input.w)?,
            ..input
        })
    }

    /// `y` (dense [`AuxPool::output`], overwritten).
    pub fn forward(&self, x: &[f32], xs: Shape, y: &mut [f32]) {
        let ys = self.output(xs).expect("checked when planning");
        match *self {
            AuxPool::Adaptive(_) => adaptive_avg_forward(x, xs, [ys.h, ys.w], y),
            AuxPool::Window { kernel, stride } => {
                for (p, pixel) in y[..ys.len()].chunks_exact_mut(xs.c).enumerate() {
                    let (image, rows, cols) = window(p, ys, kernel, stride);
                    pixel.fill(0.0);
                    for yy in rows {
                        for xx in cols.clone() {
                            let at = ((image * xs.h + yy) * xs.w + xx) * xs.c;
                            pixel
                                .iter_mut()
                                .zip(&x[at..at + xs.c])
                                .for_each(|(o, v)| *o += v);
                        }
                    }
                    let count = (kernel * kernel) as f32;
                    pixel.iter_mut().for_each(|o| *o /= count);
                }
            }
        }
    }

    /// ACCUMULATES `∂L/∂x` into `dx` (dense `xs`).
    pub fn backward(&self, xs: Shape, dy: &[f32], dx: &mut [f32]) {
        let ys = self.output(xs).expect("checked when planning");
        match *self {
            AuxPool::Adaptive(_) => adaptive_avg_backward(xs, [ys.h, ys.w], dy, dx),
            AuxPool::Window { kernel, stride } => {
                let share = 1.0 / (kernel * kernel) as f32;
                for (p, g) in dy[..ys.len()].chunks_exact(xs.c).enumerate() {
                    let (image, rows, cols) = window(p, ys, kernel, stride);
                    for yy in rows {
                        for xx in cols.clone() {
                            let at = ((image * xs.h + yy) * xs.w + xx) * xs.c;
                            dx[at..at + xs.c]
                                .iter_mut()
                                .zip(g)
                                .for_each(|(d, g)| *d += g * share);
                        }
                    }
                }
            }
        }
    }
}

/// The image, input rows and input columns of output pixel `p` of `ys`.
fn window(
    p: usize,
    ys: Shape,
    kernel: usize,
    stride: usize,
) -> (usize, Range<usize>, Range<usize>) {
    let image = p / (ys.h * ys.w);
    let (oy, ox) = (p / ys.w % ys.h, p % ys.w);
    (
        image,
        oy * stride..oy * stride + kernel,
        ox * stride..ox * stride + kernel,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_papers_5x5_stride_3_pool_averages_and_spreads_back() {
        let pool = AuxPool::Window {
            kernel: 5,
            stride: 3,
        };
        let xs = Shape {
            n: 2,
            h: 14,
            w: 14,
            c: 3,
        };
        let ys = pool.output(xs).unwrap();
        assert_eq!((ys.h, ys.w), (4, 4), "14x14 -> 4x4 as section 5 says");
        let x: Vec<f32> = (0..xs.len()).map(|i| (i % 23) as f32).collect();
        let mut y = vec![f32::NAN; ys.len()];
        pool.forward(&x, xs, &mut y);
        // Output (image 1, row 2, column 3), channel 2: rows 6..11, columns 9..14.
        let mut want = 0.0;
        for r in 6..11 {
            for col in 9..14 {
                want += x[((14 + r) * 14 + col) * 3 + 2];
            }
        }
        let got = y[((4 + 2) * 4 + 3) * 3 + 2];
        assert!((got - want / 25.0).abs() < 1e-4, "{got} vs {}", want / 25.0);
        // Backward is the transpose of forward: Σ forward(x)·dy = Σ x·backward(dy).
        let dy: Vec<f32> = (0..ys.len()).map(|i| (i % 7) as f32 - 3.0).collect();
        let mut dx = vec![1.0; xs.len()];
        pool.backward(xs, &dy, &mut dx);
        let lhs: f64 = y.iter().zip(&dy).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&dx).map(|(a, d)| (a * (d - 1.0)) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-3 * lhs.abs(), "{lhs} vs {rhs}");
        assert!(
            AuxPool::Window {
                kernel: 5,
                stride: 3
            }
            .output(Shape { h: 4, ..xs })
            .is_none()
        );
    }
}

use super::*;

/// A small deterministic generator (no `rand` here): integers below `bound`.
struct Lcg(u64);

impl Lcg {
    /// The next integer below `bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }

    /// Uniform floats in [-1, 1).
    fn float(&mut self) -> f32 {
        self.below(1 << 24) as f32 / (1 << 23) as f32 - 1.0
    }
}

/// An NHWC shape.
fn shape(n: usize, h: usize, w: usize, c: usize) -> Shape {
    Shape { n, h, w, c }
}

/// A max pool `kernel`/`stride`/`pad`.
const fn pool(kernel: usize, stride: usize, pad: usize) -> MaxPoolShape {
    MaxPoolShape {
        kernel,
        stride,
        pad,
    }
}

/// Output sizes of PyTorch's `MaxPool2d(..., ceil_mode=True)` (worked from its
/// `pooling_output_shape`), including torchvision GoogLeNet's 112→56→28→14 (3/2/0), 14→7
/// (2/2/0) and the size-keeping 3/1/1, a ceil that adds a window (14→7 with 3/2/0), the rule
/// that drops a window starting in the right padding (5 with 2/2/1), and refusals.
#[test]
fn output_sizes_follow_ceil_mode() {
    let cases = [
        (pool(3, 2, 0), 112, Some(56)),
        (pool(3, 2, 0), 56, Some(28)),
        (pool(3, 2, 0), 28, Some(14)),
        (pool(3, 2, 0), 14, Some(7)),
        (pool(3, 2, 0), 15, Some(7)),
        (pool(3, 2, 0), 16, Some(8)),
        (pool(3, 2, 0), 3, Some(1)),
        (pool(3, 2, 0), 4, Some(2)),
        (pool(3, 2, 0), 2, None),
        (pool(2, 2, 0), 14, Some(7)),
        (pool(2, 2, 0), 7, Some(4)),
        (pool(2, 2, 1), 5, Some(3)),
        (pool(2, 2, 1), 4, Some(3)),
        (pool(3, 2, 1), 7, Some(4)),
        (pool(3, 1, 1), 28, Some(28)),
        (pool(3, 1, 1), 7, Some(7)),
        (pool(3, 1, 1), 1, Some(1)),
        (pool(3, 1, 2), 7, None),
        (pool(3, 0, 0), 7, None),
        (pool(3, 2, 0), 0, None),
    ];
    for (p, n, want) in cases {
        let got = p.output(shape(2, n, 9, 5));
        assert_eq!(got.map(|s| s.h), want, "{p:?} on {n}");
        if let Some(s) = got {
            assert_eq!((s.n, s.w, s.c), (2, p.side(9).unwrap(), 5));
        }
    }
    let s = pool(3, 2, 0).output(shape(16, 112, 112, 64)).unwrap();
    assert_eq!(s, shape(16, 56, 56, 64));
    assert_eq!(pool(3, 2, 0).output(shape(1, 15, 2, 3)), None);
}

/// PyTorch's CPU max pool written out plainly (`max_pool2d_with_indices`): −∞ and the first
/// in-bounds pixel to start, `val > max || isnan(val)` in row-major window order.
fn naive_max(p: &MaxPoolShape, x: &[f32], xs: Shape) -> (Vec<f32>, Vec<u32>) {
    let ys = p.output(xs).unwrap();
    let (mut y, mut at) = (vec![], vec![]);
    for n in 0..xs.n {
        for oy in 0..ys.h {
            for ox in 0..ys.w {
                for c in 0..xs.c {
                    let y0 = (oy * p.stride) as isize - p.pad as isize;
                    let x0 = (ox * p.stride) as isize - p.pad as isize;
                    let (y1, x1) = (y0 + p.kernel as isize, x0 + p.kernel as isize);
                    let (y0, x0) = (y0.max(0) as usize, x0.max(0) as usize);
                    let (y1, x1) = (
                        y1.min(xs.h as isize) as usize,
                        x1.min(xs.w as isize) as usize,
                    );
                    let mut best = f32::NEG_INFINITY;
                    let mut index = ((n * xs.h + y0) * xs.w + x0) * xs.c + c;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            let i = ((n * xs.h + iy) * xs.w + ix) * xs.c + c;
                            if x[i] > best || x[i].is_nan() {
                                best = x[i];
                                index = i;
                            }
                        }
                    }
                    y.push(best);
                    at.push(index as u32);
                }
            }
        }
    }
    (y, at)
}

/// Values and indices against the plain version, bit for bit, with many ties (values from
/// {−1, 0, 1}), some −∞ and NaN, on channel counts below, at and across the register block,
/// with every pool shape torchvision uses and a padded stride-2 one; then the backward pass,
/// accumulating onto what `dx` already held and overwriting it, against a plain scatter.
#[test]
fn max_pool_matches_naive() {
    let mut rng = Lcg(7);
    for c in [3, 16, 37, 64] {
        for p in [pool(3, 2, 0), pool(3, 1, 1), pool(2, 2, 0), pool(3, 2, 1)] {
            let xs = shape(2, 15, 12, c);
            let x: Vec<f32> = (0..xs.len())
                .map(|_| match rng.below(100) {
                    0 => f32::NAN,
                    1..=3 => f32::NEG_INFINITY,
                    _ => rng.below(3) as f32 - 1.0,
                })
                .collect();
            let ys = p.output(xs).unwrap();
            let (mut y, mut at) = (vec![5.0; ys.len()], vec![u32::MAX; ys.len()]);
            max_forward(&p, &x, xs, &mut y, &mut at);
            let (want_y, want_at) = naive_max(&p, &x, xs);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want_y), "values, {p:?}, {c} channels");
            assert_eq!(at, want_at, "indices, {p:?}, {c} channels");

            let dy: Vec<f32> = (0..ys.len()).map(|_| rng.float()).collect();
            let mut dx: Vec<f32> = (0..xs.len()).map(|_| rng.float()).collect();
            let mut want = dx.clone();
            for (&g, &i) in dy.iter().zip(&want_at) {
                want[i as usize] += g;
            }
            max_backward(&p, xs, &dy, &at, &mut dx, GradientWrite::Accumulate);
            assert_eq!(dx, want, "gradient, {p:?}, {c} channels");

            let mut fresh: Vec<f32> = (0..xs.len()).map(|_| rng.float()).collect();
            let mut want = vec![0.0; xs.len()];
            for (&g, &i) in dy.iter().zip(&want_at) {
                want[i as usize] += g;
            }
            max_backward(&p, xs, &dy, &at, &mut fresh, GradientWrite::Overwrite);
            assert_eq!(fresh, want, "overwritten gradient, {p:?}, {c} channels");
        }
    }
}

/// Ties go to the first pixel of the window in row-major order, also when every value is −∞;
/// a NaN beats every number.
#[test]
fn ties_take_the_first_maximum() {
    let xs = shape(1, 4, 4, 1);
    let p = pool(3, 2, 0);
    let (mut y, mut at) = (vec![0.0; 4], vec![0; 4]);
    for fill in [0.0, f32::NEG_INFINITY] {
        max_forward(&p, &[fill; 16], xs, &mut y, &mut at);
        assert_eq!(at, [0, 2, 8, 10]);
        assert_eq!(y, [fill; 4]);
    }
    let mut x = [1.0; 16];
    x[5] = f32::NAN;
    x[9] = 2.0;
    max_forward(&p, &x, xs, &mut y, &mut at);
    assert_eq!(at, [5, 2, 9, 10]);
    assert!(y[0].is_nan());
    assert_eq!(y[1..], [1.0, 2.0, 1.0]);
}

/// PyTorch's adaptive bins: 14→4 overlaps ([0,4), [3,7), [7,11), [10,14)), 7→1 is the whole
/// side, 4→4 the identity.
#[test]
fn adaptive_bins_follow_pytorch() {
    let bins: Vec<_> = (0..4).map(|o| bin(o, 14, 4)).collect();
    assert_eq!(bins, [0..4, 3..7, 7..11, 10..14]);
    assert_eq!(bin(0, 7, 1), 0..7);
    assert_eq!(
        (0..4).map(|o| bin(o, 4, 4)).collect::<Vec<_>>(),
        [0..1, 1..2, 2..3, 3..4]
    );
}

/// Adaptive average pooling 14→4 and 7→1 (and a non-square 5x9→3x2) against a plain version,
/// and its backward pass: accumulating onto `dx` and the adjoint of the forward
/// (`Σ forward(x)·dy = Σ x·backward(dy)`).
#[test]
fn adaptive_avg_matches_naive() {
    let mut rng = Lcg(8);
    for (xs, [oh, ow]) in [
        (shape(2, 14, 14, 19), [4, 4]),
        (shape(3, 7, 7, 40), [1, 1]),
        (shape(2, 5, 9, 3), [3, 2]),
    ] {
        let x: Vec<f32> = (0..xs.len()).map(|_| rng.float()).collect();
        let ys = Shape { h: oh, w: ow, ..xs };
        let mut y = vec![f32::NAN; ys.len()];
        adaptive_avg_forward(&x, xs, [oh, ow], &mut y);
        let mut want_dx = vec![0.0f64; xs.len()];
        let dy: Vec<f32> = (0..ys.len()).map(|_| rng.float()).collect();
        for n in 0..xs.n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let rows = oy * xs.h / oh..((oy + 1) * xs.h).div_ceil(oh);
                    let cols = ox * xs.w / ow..((ox + 1) * xs.w).div_ceil(ow);
                    let count = (rows.len() * cols.len()) as f64;
                    for c in 0..xs.c {
                        let o = ((n * oh + oy) * ow + ox) * xs.c + c;
                        let mut sum = 0.0f64;
                        for iy in rows.clone() {
                            for ix in cols.clone() {
                                let i = ((n * xs.h + iy) * xs.w + ix) * xs.c + c;
                                sum += x[i] as f64;
                                want_dx[i] += dy[o] as f64 / count;
                            }
                        }
                        assert!((y[o] as f64 - sum / count).abs() < 1e-6, "y[{o}]");
                    }
                }
            }
        }

        let start: Vec<f32> = (0..xs.len()).map(|_| rng.float()).collect();
        let mut dx = start.clone();
        adaptive_avg_backward(xs, [oh, ow], &dy, &mut dx);
        for i in 0..xs.len() {
            let want = start[i] as f64 + want_dx[i];
            assert!((dx[i] as f64 - want).abs() < 1e-6, "dx[{i}]");
        }
        let forward: f64 = y.iter().zip(&dy).map(|(&a, &b)| a as f64 * b as f64).sum();
        let adjoint: f64 = (0..xs.len())
            .map(|i| x[i] as f64 * (dx[i] - start[i]) as f64)
            .sum();
        assert!((forward - adjoint).abs() < 1e-4, "{forward} vs {adjoint}");
    }
}

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
fn reference(raw: &[f64], c: usize, gamma: &[f64], beta: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
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
    let stats = forward(&raw, c, &gamma, &beta, EPS, &mut out, Layout::dense(c));
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
    let stats = forward(&raw, c, &ones, &zeros, EPS, &mut out, Layout::dense(c));
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
    let stats = forward(&raw, c, &gamma, &beta, EPS, &mut out, Layout::dense(c));
    let (mut draw, mut dgamma, mut dbeta) = (raw.clone(), vec![9.0; c], vec![9.0; c]);
    backward_split(
        &mut draw,
        c,
        &gamma,
        &stats,
        [(&r, Layout::dense(c), c)],
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
    let dense_stats = forward(
        &raw,
        c,
        &gamma,
        &beta,
        EPS,
        &mut dense_out,
        Layout::dense(c),
    );
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
    backward_split(
        &mut draw_dense,
        c,
        &gamma,
        &dense_stats,
        [(&dy_dense, Layout::dense(c), c)],
        &mut dgamma_dense,
        &mut dbeta_dense,
    );
    let (mut draw, mut dgamma, mut dbeta) = (raw.clone(), vec![0.0; c], vec![0.0; c]);
    backward_split(
        &mut draw,
        c,
        &gamma,
        &stats,
        [(&dy, layout, c)],
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
    let dense_stats = forward(
        &raw,
        c,
        &gamma,
        &beta,
        EPS,
        &mut dense_out,
        Layout::dense(c),
    );
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
            (&mut empty[..], Layout::dense(1), 0),
            (&mut middle[..], Layout::dense(17), 17),
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

/// Reading the output's gradient from three maps (one of them strided, one part empty) gives,
/// channel for channel, the same bits as reading one dense map, across register blocks of
/// channels and single channels alike.
#[test]
fn split_gradient_matches_dense() {
    let mut rng = Lcg(7);
    let (p, c) = (3000, 37);
    let raw = rng.vec(p * c, 0.2, 1.0);
    let gamma = rng.vec(c, 0.5, 1.0);
    let beta = rng.vec(c, 0.5, 0.5);
    let dy_dense = rng.vec(p * c, 0.0, 1.0);
    let mut out = vec![0.0; p * c];
    let stats = forward(&raw, c, &gamma, &beta, EPS, &mut out, Layout::dense(c));
    let (mut draw_dense, mut dgamma_dense, mut dbeta_dense) =
        (raw.clone(), vec![0.0; c], vec![0.0; c]);
    backward_split(
        &mut draw_dense,
        c,
        &gamma,
        &stats,
        [(&dy_dense, Layout::dense(c), c)],
        &mut dgamma_dense,
        &mut dbeta_dense,
    );

    let wide_layout = Layout {
        stride: 29,
        offset: 5,
    };
    let (mut wide, mut last) = (vec![f32::NAN; p * 29], vec![0.0; p * 17]);
    for (i, pixel) in dy_dense.chunks_exact(c).enumerate() {
        wide[i * 29 + 5..][..20].copy_from_slice(&pixel[..20]);
        last[i * 17..][..17].copy_from_slice(&pixel[20..]);
    }
    let (mut draw, mut dgamma, mut dbeta) = (raw.clone(), vec![0.0; c], vec![0.0; c]);
    backward_split(
        &mut draw,
        c,
        &gamma,
        &stats,
        [
            (&wide, wide_layout, 20),
            (&[], Layout::dense(1), 0),
            (&last, Layout::dense(17), 17),
        ],
        &mut dgamma,
        &mut dbeta,
    );
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&draw), bits(&draw_dense));
    assert_eq!(bits(&dgamma), bits(&dgamma_dense));
    assert_eq!(bits(&dbeta), bits(&dbeta_dense));
    assert!(dbeta.iter().all(|v| *v != 0.0), "{dbeta:?}");
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
        let stats = forward(&raw, c, &gamma, &beta, EPS, &mut out, Layout::dense(c));
        let (mut draw, mut dgamma, mut dbeta) = (raw.clone(), vec![0.0; c], vec![0.0; c]);
        backward_split(
            &mut draw,
            c,
            &gamma,
            &stats,
            [(&dy, Layout::dense(c), c)],
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
    let stats = forward(
        &raw,
        2,
        &[1.0; 2],
        &[0.0; 2],
        EPS,
        &mut out,
        Layout::dense(2),
    );
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
    backward_split(
        &mut [],
        2,
        &[1.0; 2],
        &stats,
        [(&[], layout, 2)],
        &mut dgamma,
        &mut dbeta,
    );
    assert_eq!((dgamma, dbeta), ([0.0; 2], [0.0; 2]));
}

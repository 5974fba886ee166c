use super::*;

/// A deterministic pseudo-random value in [-1, 1) for index `i` of stream `seed`.
fn value(seed: u64, i: usize) -> f32 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i as u64)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 31;
    z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 29;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// `len` values of stream `seed`.
fn values(seed: u64, len: usize) -> Vec<f32> {
    (0..len).map(|i| value(seed, i)).collect()
}

/// Direct convolution in f64: for every (output pixel, weight) pair that meets an input
/// pixel, calls `visit(x index, w index, y index)`.
fn each_term(conv: &ConvShape, xs: Shape, mut visit: impl FnMut(usize, usize, usize)) {
    let ys = conv.output(xs).unwrap();
    let k = conv.kernel;
    for n in 0..xs.n {
        for oy in 0..ys.h {
            for ox in 0..ys.w {
                for ky in 0..k {
                    for kx in 0..k {
                        let iy = (oy * conv.stride + ky) as isize - conv.pad as isize;
                        let ix = (ox * conv.stride + kx) as isize - conv.pad as isize;
                        if iy < 0 || ix < 0 || iy >= xs.h as isize || ix >= xs.w as isize {
                            continue;
                        }
                        let xp = (n * xs.h + iy as usize) * xs.w + ix as usize;
                        let yp = (n * ys.h + oy) * ys.w + ox;
                        for i in 0..xs.c {
                            for o in 0..ys.c {
                                let wi = ((ky * k + kx) * xs.c + i) * ys.c + o;
                                visit(xp * xs.c + i, wi, yp * ys.c + o);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Checks `got` against f64 sums `want`, each within `relative` of the sum of its terms'
/// magnitudes (rounding grows with that, not with the possibly cancelling sum itself).
fn assert_close_within(what: &str, got: &[f32], want: &[f64], magnitude: &[f64], relative: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((&g, &w), &m)) in got.iter().zip(want).zip(magnitude).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= relative * m + 1e-7,
            "{what}[{i}]: got {g}, want {w} (terms {m})"
        );
    }
}

/// Runs forward and backward of `conv` on an `xs` map and compares y, dw and dx with the
/// direct convolution; outputs start as NaN to show that they are overwritten.
fn check(conv: ConvShape, xs: Shape, scratch: &mut ConvScratch) {
    check_with(conv, xs, scratch, Operands::F32);
}

/// The operands a check's direct convolution multiplies: as given, or rounded to bf16 first
/// (`Bf16` on bf16 kernels, `Rounded` on the f32 kernels, which also round strided `dx`'s);
/// `Bf16Winograd` where the convolution's output and input gradient (and, from
/// [`winograd::MIN_CHANNELS`] input channels, its weight gradient) go through Winograd's
/// transforms in bf16, which round the transformed operands instead.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Operands {
    F32,
    Bf16,
    Rounded,
    Bf16Winograd,
}

impl Operands {
    fn value(self, v: f32) -> f64 {
        match self {
            Operands::F32 => v as f64,
            Operands::Bf16 | Operands::Rounded | Operands::Bf16Winograd => {
                half::bf16::from_f32(v).to_f64()
            }
        }
    }

    /// The first of the three value streams (x, w, dy) the check draws.
    fn first_seed(self) -> u64 {
        match self {
            Operands::F32 => 1,
            Operands::Bf16 | Operands::Rounded | Operands::Bf16Winograd => 4,
        }
    }

    /// How far from the sums of these operands `y` and `dx` may lie, relative to their terms'
    /// magnitudes: f32's rounding, or bf16's (2^-9) on operands that Winograd's transforms
    /// combine (the measured worst is about twice that).
    fn tolerance(self) -> f64 {
        match self {
            Operands::F32 | Operands::Bf16 | Operands::Rounded => 1e-4,
            Operands::Bf16Winograd => 4.0 / 512.0,
        }
    }
}

/// [`check`] against the direct convolution of `operands`. On bf16 kernels, `dx` is compared
/// for stride 1 only, where it is itself a convolution whose products run in bf16.
fn check_with(conv: ConvShape, xs: Shape, scratch: &mut ConvScratch, operands: Operands) {
    let ys = conv.output(xs).unwrap();
    let seed = operands.first_seed();
    let x = values(seed, xs.len());
    let w = values(seed + 1, conv.weight_len());
    let dy = values(seed + 2, ys.len());
    let (mut y_want, mut y_mag) = (vec![0.0; ys.len()], vec![0.0; ys.len()]);
    let (mut dw_want, mut dw_mag) = (vec![0.0; w.len()], vec![0.0; w.len()]);
    let (mut dx_want, mut dx_mag) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    each_term(&conv, xs, |xi, wi, yi| {
        let (xv, wv, dyv) = (
            operands.value(x[xi]),
            operands.value(w[wi]),
            operands.value(dy[yi]),
        );
        y_want[yi] += xv * wv;
        y_mag[yi] += (xv * wv).abs();
        dw_want[wi] += xv * dyv;
        dw_mag[wi] += (xv * dyv).abs();
        dx_want[xi] += wv * dyv;
        dx_mag[xi] += (wv * dyv).abs();
    });
    let what = format!("{operands:?} {conv:?}");
    let mut y = vec![f32::NAN; ys.len()];
    forward(&conv, &x, xs, &w, &mut y, scratch);
    let tolerance = operands.tolerance();
    assert_close_within(&format!("{what} y"), &y, &y_want, &y_mag, tolerance);
    let mut dw = vec![f32::NAN; w.len()];
    let mut dx = vec![f32::NAN; x.len()];
    backward(&conv, &x, xs, &w, &dy, &mut dw, Some(&mut dx), scratch);
    // In bf16, `dw` goes through Winograd's transforms as well where the input has enough
    // channels.
    let dw_tolerance = match operands {
        Operands::Bf16Winograd if conv.in_channels >= winograd::MIN_CHANNELS => tolerance,
        _ => 1e-4,
    };
    assert_close_within(&format!("{what} dw"), &dw, &dw_want, &dw_mag, dw_tolerance);
    if matches!(operands, Operands::F32 | Operands::Rounded) || conv.stride == 1 {
        assert_close_within(&format!("{what} dx"), &dx, &dx_want, &dx_mag, tolerance);
    }
    let mut dw_again = vec![f32::NAN; w.len()];
    backward(&conv, &x, xs, &w, &dy, &mut dw_again, None, scratch);
    assert_eq!(dw, dw_again, "{what}: dw without dx, or not reproducible");
}

/// A convolution shape, briefly.
fn conv(kernel: usize, stride: usize, pad: usize, cin: usize, cout: usize) -> ConvShape {
    ConvShape {
        kernel,
        stride,
        pad,
        in_channels: cin,
        out_channels: cout,
    }
}

/// A map shape, briefly.
fn map(n: usize, h: usize, w: usize, c: usize) -> Shape {
    Shape { n, h, w, c }
}

#[test]
fn output_shape_and_weight_count() {
    let stem = conv(7, 2, 3, 3, 64);
    assert_eq!(stem.output(map(2, 224, 224, 3)), Some(map(2, 112, 112, 64)));
    assert_eq!(stem.output(map(1, 225, 223, 3)), Some(map(1, 113, 112, 64)));
    assert_eq!(stem.weight_len(), 7 * 7 * 3 * 64);
    assert_eq!(stem.output(map(1, 224, 224, 4)), None, "channel mismatch");
    assert_eq!(
        conv(5, 1, 0, 3, 8).output(map(1, 4, 9, 3)),
        None,
        "too small"
    );
    assert_eq!(
        conv(5, 1, 0, 3, 8).output(map(1, 5, 9, 3)),
        Some(map(1, 1, 5, 8))
    );
}

#[test]
fn empty_maps_and_channels_give_zeros() {
    let mut scratch = ConvScratch::default();
    for kernel in [1, 3] {
        let pad = kernel / 2;
        check(conv(kernel, 1, pad, 4, 5), map(0, 6, 6, 4), &mut scratch);
        check(conv(kernel, 1, pad, 0, 5), map(2, 6, 6, 0), &mut scratch);
        check(conv(kernel, 1, pad, 4, 0), map(2, 6, 6, 4), &mut scratch);
        check(conv(kernel, 2, pad, 4, 0), map(2, 6, 6, 4), &mut scratch);
    }
}

#[test]
fn pointwise_matches_the_direct_convolution() {
    let mut scratch = ConvScratch::default();
    check(conv(1, 1, 0, 7, 9), map(2, 5, 6, 7), &mut scratch);
    check(conv(1, 1, 0, 19, 5), map(3, 4, 4, 19), &mut scratch);
    check(conv(1, 1, 0, 200, 170), map(2, 3, 3, 200), &mut scratch);
    // Enough pixels per thread for the weight gradient to sum per-thread partials.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| check(conv(1, 1, 0, 6, 5), map(3, 20, 20, 6), &mut scratch));
}

#[test]
fn same_padded_kernels_match_the_direct_convolution() {
    let mut scratch = ConvScratch::default();
    check(conv(3, 1, 1, 5, 11), map(2, 6, 5, 5), &mut scratch);
    // Hundreds of pixels: many tiles, shared among the threads.
    check(conv(3, 1, 1, 13, 17), map(3, 12, 11, 13), &mut scratch);
    check(conv(5, 1, 2, 6, 3), map(1, 9, 7, 6), &mut scratch);
}

#[test]
fn strided_kernels_match_the_direct_convolution() {
    let mut scratch = ConvScratch::default();
    check(conv(7, 2, 3, 3, 6), map(2, 11, 9, 3), &mut scratch);
    check(conv(3, 2, 1, 4, 5), map(2, 7, 9, 4), &mut scratch);
    check(conv(3, 2, 0, 4, 5), map(1, 8, 10, 4), &mut scratch);
    check(conv(1, 2, 0, 6, 7), map(2, 5, 7, 6), &mut scratch);
}

#[test]
fn unpadded_and_overpadded_kernels_match_the_direct_convolution() {
    let mut scratch = ConvScratch::default();
    check(conv(3, 1, 0, 5, 7), map(2, 6, 8, 5), &mut scratch);
    check(conv(2, 1, 0, 3, 4), map(1, 5, 4, 3), &mut scratch);
    // pad >= kernel: the flipped kernel would need negative padding, col2im takes over.
    check(conv(2, 1, 2, 3, 4), map(2, 3, 4, 3), &mut scratch);
    check(conv(1, 1, 1, 3, 4), map(1, 3, 3, 3), &mut scratch);
}

#[test]
fn every_small_geometry_matches_the_direct_convolution() {
    let mut scratch = ConvScratch::default();
    for kernel in 1..=4 {
        for stride in 1..=3 {
            for pad in 0..=kernel {
                for (h, w) in [(kernel, kernel + 3), (kernel + 4, kernel + 1)] {
                    let shape = conv(kernel, stride, pad, 3, 5);
                    check(shape, map(2, h, w, 3), &mut scratch);
                }
            }
        }
    }
}

#[test]
fn scratch_is_reused_across_shapes_and_pools() {
    let mut scratch = ConvScratch::default();
    check(conv(3, 1, 1, 13, 17), map(3, 12, 11, 13), &mut scratch);
    check(conv(1, 1, 0, 7, 9), map(2, 5, 6, 7), &mut scratch);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(5)
        .build()
        .unwrap();
    pool.install(|| {
        check(conv(3, 1, 1, 5, 11), map(2, 6, 5, 5), &mut scratch);
        check(conv(3, 2, 1, 4, 5), map(3, 7, 9, 4), &mut scratch);
    });
    check(conv(3, 1, 1, 5, 11), map(2, 6, 5, 5), &mut scratch);
}

/// [`check`] for products in bf16: against the direct convolution of the bf16-rounded operands,
/// summed in f64 (3x3/1 convolutions on AVX512-BF16 through Winograd's transforms).
fn check_bf16(conv: ConvShape, xs: Shape, scratch: &mut ConvScratch) {
    let winograd = (conv.kernel, conv.stride, conv.pad) == (3, 1, 1) && bf16_winograd_runs_here();
    let operands = if winograd {
        Operands::Bf16Winograd
    } else {
        Operands::Bf16
    };
    check_with(conv, xs, scratch, operands);
}

/// On CPUs with AMX or AVX512-BF16: products on their bf16 kernel (whether or not a training
/// step picks it here) against the sums of the rounded operands, for pointwise,
/// padded, strided and 5x5 kernels; channels that fill no whole tile or several; more pixels
/// than one weight-gradient tile (several groups, each with several tiles); odd output counts
/// that leave a ragged last tile.
#[test]
fn bf16_products_are_the_sums_of_the_rounded_operands() {
    use crate::engine::Bf16Kernel;
    let Some(kernel) = [Bf16Kernel::Amx, Bf16Kernel::Avx512Bf16]
        .into_iter()
        .find(|kernel| kernel.runs_here())
    else {
        eprintln!("SKIPPED: this CPU has neither AMX nor AVX512-BF16, bf16 kernels never run here");
        return;
    };
    let mut scratch = ConvScratch::in_bf16(kernel);
    check_bf16_shapes(&mut scratch);
}

/// The f32 kernels on operands rounded to bf16, which run everywhere: every convolution's sums
/// are those of the rounded operands within f32's rounding (Winograd's F(4x4, 3x3) included),
/// `dx` of strided convolutions too.
#[test]
fn rounded_operands_give_the_sums_of_the_rounded_operands() {
    let mut scratch = ConvScratch::in_bf16(crate::engine::Bf16Kernel::Portable);
    assert!(scratch.bf16());
    let rounded = Operands::Rounded;
    check_with(
        conv(3, 1, 1, 24, 40),
        map(2, 16, 16, 24),
        &mut scratch,
        rounded,
    );
    check_with(conv(3, 2, 1, 4, 5), map(2, 7, 9, 4), &mut scratch, rounded);
    check_with(conv(7, 2, 3, 3, 6), map(2, 11, 9, 3), &mut scratch, rounded);
    check_with(
        conv(1, 1, 0, 64, 48),
        map(3, 9, 9, 64),
        &mut scratch,
        rounded,
    );
    check_with(conv(5, 1, 2, 6, 35), map(1, 9, 7, 6), &mut scratch, rounded);
    check_with(conv(3, 1, 1, 5, 11), map(0, 6, 5, 5), &mut scratch, rounded);
}

fn check_bf16_shapes(scratch: &mut ConvScratch) {
    check_bf16(conv(1, 1, 0, 7, 9), map(2, 5, 6, 7), scratch);
    check_bf16(conv(1, 1, 0, 64, 48), map(3, 9, 9, 64), scratch);
    check_bf16(conv(3, 1, 1, 13, 17), map(3, 12, 11, 13), scratch);
    check_bf16(conv(3, 1, 1, 24, 40), map(2, 14, 14, 24), scratch);
    check_bf16(conv(3, 1, 1, 70, 37), map(2, 13, 9, 70), scratch);
    check_bf16(conv(5, 1, 2, 6, 35), map(1, 9, 7, 6), scratch);
    check_bf16(conv(7, 2, 3, 3, 16), map(2, 11, 9, 3), scratch);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| check_bf16(conv(1, 1, 0, 32, 33), map(3, 40, 30, 32), scratch));
    check_bf16(conv(3, 1, 1, 5, 11), map(0, 6, 5, 5), scratch);
}

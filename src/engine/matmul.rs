//! Row-major matrix product on the `gemm` crate (the GEMM burn-flex itself uses).

use super::matvec::row_times_matrix;

/// `dst[m, n] = a[m, k] · b[k, n]` for row-major matrices whose rows are `*_stride` floats apart.
/// `parallel` lets `gemm` split the product over the rayon pool; the convolution tiles call it
/// with `false` because they are already spread over the threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    dst: &mut [f32],
    dst_stride: usize,
    a: &[f32],
    a_stride: usize,
    b: &[f32],
    b_stride: usize,
    mkn: [usize; 3],
    parallel: bool,
) {
    let lhs = Lhs::Rows(a_stride);
    product(dst, dst_stride, a, lhs, b, b_stride, mkn, false, parallel);
}

/// `dst[m, n] = aᵀ · b`, or `dst += aᵀ · b` when `accumulate`, where `a` is a row-major `[k, m]`
/// matrix read transposed through its strides (no copy) and `b` a row-major `[k, n]` one: a
/// weight gradient `inputᵀ · ∂L/∂output` sums over the pixels, the rows of both operands, and a
/// tiled convolution accumulates one tile of pixels at a time into the same `dst`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_tn(
    dst: &mut [f32],
    dst_stride: usize,
    a: &[f32],
    a_stride: usize,
    b: &[f32],
    b_stride: usize,
    mkn: [usize; 3],
    accumulate: bool,
    parallel: bool,
) {
    let lhs = Lhs::Transposed(a_stride);
    product(
        dst, dst_stride, a, lhs, b, b_stride, mkn, accumulate, parallel,
    );
}

/// How the left operand `[m, k]` lies in memory, with the distance between its stored rows.
#[derive(Clone, Copy)]
enum Lhs {
    /// Row-major `[m, k]`.
    Rows(usize),
    /// Row-major `[k, m]`, read transposed.
    Transposed(usize),
}

/// `dst (+)= lhs · b` on `gemm`, every access checked against the slices first.
#[allow(clippy::too_many_arguments)]
fn product(
    dst: &mut [f32],
    dst_stride: usize,
    a: &[f32],
    lhs: Lhs,
    b: &[f32],
    b_stride: usize,
    [m, k, n]: [usize; 3],
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_stride).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    // Element (i, p) of the lhs is `a[i * row_step + p * col_step]`.
    let (row_step, col_step, a_needed) = match lhs {
        Lhs::Rows(stride) => {
            assert!(stride >= k, "lhs rows overlap");
            (stride, 1, (m - 1) * stride + k)
        }
        Lhs::Transposed(stride) => {
            assert!(stride >= m, "lhs rows overlap");
            (1, stride, (k - 1) * stride + m)
        }
    };
    assert!(dst_stride >= n && b_stride >= n);
    assert!(dst.len() >= (m - 1) * dst_stride + n, "dst too short");
    assert!(a.len() >= a_needed, "lhs too short");
    assert!(b.len() >= (k - 1) * b_stride + n, "rhs too short");
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element gemm reads or writes inside the three slices,
    // and `dst` is borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            accumulate,
            a.as_ptr(),
            col_step as isize,
            row_step as isize,
            b.as_ptr(),
            1,
            b_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A fully connected layer on `batch` rows: `y = x · W + b`, `W` row-major `[inputs, outputs]`
/// (burn's `Linear` layout), `y` resized to `[batch, outputs]`. One row goes through
/// [`row_times_matrix`], more through `gemm`.
pub(crate) fn affine(x: &[f32], batch: usize, weight: &[f32], bias: &[f32], y: &mut Vec<f32>) {
    let outputs = bias.len();
    let inputs = weight.len() / outputs.max(1);
    if batch == 1 {
        row_times_matrix(&x[..inputs], weight, bias, y);
        return;
    }
    y.resize(batch * outputs, 0.0);
    matmul(
        y,
        outputs,
        x,
        inputs,
        weight,
        outputs,
        [batch, inputs, outputs],
        true,
    );
    for row in y.chunks_exact_mut(outputs) {
        row.iter_mut().zip(bias).for_each(|(o, b)| *o += b);
    }
}

#[cfg(test)]
mod tests {
    use super::{matmul, matmul_tn};

    #[test]
    fn strided_product_matches_the_naive_one() {
        let [m, k, n] = [5, 7, 3];
        let a: Vec<f32> = (0..m * 9).map(|i| (i % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * 4).map(|i| (i % 7) as f32 * 0.5).collect();
        let mut dst = vec![-1.0; m * 6];
        matmul(&mut dst, 6, &a, 9, &b, 4, [m, k, n], false);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * 9 + p] * b[p * 4 + j]).sum();
                assert!((dst[i * 6 + j] - want).abs() < 1e-4, "({i}, {j})");
            }
            assert_eq!(dst[i * 6 + 3..i * 6 + 6], [-1.0; 3], "untouched columns");
        }
    }

    #[test]
    fn transposed_product_overwrites_then_accumulates() {
        let [m, k, n] = [6, 5, 4];
        let a: Vec<f32> = (0..k * 8).map(|i| (i % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..k * 5).map(|i| (i % 5) as f32 * 0.25 - 0.5).collect();
        let mut dst = vec![f32::NAN; m * 7];
        matmul_tn(&mut dst, 7, &a, 8, &b, 5, [m, k, n], false, false);
        matmul_tn(&mut dst, 7, &a, 8, &b, 5, [m, k, n], true, false);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[p * 8 + i] * b[p * 5 + j]).sum::<f32>() * 2.0;
                assert!((dst[i * 7 + j] - want).abs() < 1e-4, "({i}, {j})");
            }
            assert!(
                dst[i * 7 + n..i * 7 + 7].iter().all(|v| v.is_nan()),
                "untouched columns"
            );
        }
    }
}

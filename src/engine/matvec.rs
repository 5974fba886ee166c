//! One row times a matrix: the classifier at batch 1, where the product reads each of the
//! matrix's 4 MB once (1024 × 1000 floats, Table 1's last row) and does one multiply-add per
//! float read, so its speed is the speed of reading the matrix. `gemm` reads it on one thread;
//! here the pool's threads each read their own contiguous block of the matrix's rows, a layout
//! the cores' prefetchers follow, into a partial row of their own, and the partial rows are then
//! added in order, so the result does not depend on which thread took which block.

use rayon::prelude::*;

use super::simd::simd_kernel;

/// Rows of the matrix per task: 8 tasks for the classifier's 1024 inputs, 512 KB each.
const ROWS_PER_TASK: usize = 128;

/// `y = x · W + b` for the one row `x`, `W` row-major `[x.len(), bias.len()]`.
pub(crate) fn row_times_matrix(x: &[f32], weight: &[f32], bias: &[f32], y: &mut Vec<f32>) {
    let outputs = bias.len();
    assert_eq!(
        weight.len(),
        x.len() * outputs,
        "matrix does not match the row"
    );
    y.clear();
    y.extend_from_slice(bias);
    if outputs == 0 {
        return;
    }
    let mut partials = vec![0.0; x.len().div_ceil(ROWS_PER_TASK) * outputs];
    partials
        .par_chunks_mut(outputs)
        .zip(x.par_chunks(ROWS_PER_TASK))
        .zip(weight.par_chunks(ROWS_PER_TASK * outputs))
        .for_each(|((partial, x), rows)| accumulate_rows(partial, x, rows));
    for partial in partials.chunks_exact(outputs) {
        add(y, partial);
    }
}

simd_kernel! {
    /// `partial += x · rows`, `rows` row-major `[x.len(), partial.len()]`, row after row.
    fn accumulate_rows(partial: &mut [f32], x: &[f32], rows: &[f32]) {
        for (&xk, row) in x.iter().zip(rows.chunks_exact(partial.len())) {
            for (p, &w) in partial.iter_mut().zip(row) {
                *p += xk * w;
            }
        }
    }
}

simd_kernel! {
    /// `y += partial`.
    fn add(y: &mut [f32], partial: &[f32]) {
        for (y, &p) in y.iter_mut().zip(partial) {
            *y += p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::row_times_matrix;

    #[test]
    fn row_times_matrix_matches_the_naive_sum() {
        // 300 inputs: two full tasks and a short one; 37 outputs: no whole vector register.
        let (inputs, outputs) = (300, 37);
        let x: Vec<f32> = (0..inputs)
            .map(|i| ((i * 7) % 13) as f32 * 0.25 - 1.5)
            .collect();
        let w: Vec<f32> = (0..inputs * outputs)
            .map(|i| ((i * 5) % 11) as f32 * 0.125 - 0.6)
            .collect();
        let b: Vec<f32> = (0..outputs).map(|o| o as f32 - 18.0).collect();
        let mut y = vec![f32::NAN; 3];
        row_times_matrix(&x, &w, &b, &mut y);
        assert_eq!(y.len(), outputs);
        for o in 0..outputs {
            let want: f64 = b[o] as f64
                + (0..inputs)
                    .map(|k| x[k] as f64 * w[k * outputs + o] as f64)
                    .sum::<f64>();
            assert!(
                (y[o] as f64 - want).abs() < 1e-3,
                "output {o}: {} against {want}",
                y[o]
            );
        }
    }
}

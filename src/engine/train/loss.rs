//! Softmax cross-entropy of a classifier head and its gradient with respect to the logits
//! (PyTorch's `cross_entropy` with mean reduction, Caffe's `SoftmaxWithLoss`).

/// The mean over the batch of `−log softmax(logits)[label]`, and `∂(weight · loss)/∂logits`
/// written to `grad` (`weight · (softmax − one_hot) / batch`). `logits` is row-major
/// `[batch, classes]`. Computed in f64 per row so that large logits neither overflow nor lose
/// the small probabilities.
pub(crate) fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[usize],
    classes: usize,
    weight: f64,
    grad: &mut Vec<f32>,
) -> f64 {
    let batch = labels.len();
    assert_eq!(logits.len(), batch * classes, "logits shape");
    grad.resize(logits.len(), 0.0);
    let mut total = 0.0;
    for ((row, g), &label) in logits
        .chunks_exact(classes)
        .zip(grad.chunks_exact_mut(classes))
        .zip(labels)
    {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let log_sum = max + sum.ln();
        total += log_sum - row[label] as f64;
        let scale = weight / batch as f64;
        for (c, (g, &v)) in g.iter_mut().zip(row).enumerate() {
            let p = (v as f64 - log_sum).exp();
            let target = if c == label { 1.0 } else { 0.0 };
            *g = ((p - target) * scale) as f32;
        }
    }
    total / batch as f64
}

#[cfg(test)]
mod tests {
    use super::softmax_cross_entropy;

    #[test]
    fn loss_and_gradient_match_the_definition_and_finite_differences() {
        let logits = [1.0f32, -2.0, 0.5, 3.0, 3.0, -1.0];
        let labels = [2, 0];
        let mut grad = Vec::new();
        let loss = softmax_cross_entropy(&logits, &labels, 3, 0.3, &mut grad);
        let row_loss = |r: &[f32], l: usize| {
            let s: f64 = r.iter().map(|&v| (v as f64).exp()).sum();
            s.ln() - r[l] as f64
        };
        let want = (row_loss(&logits[..3], 2) + row_loss(&logits[3..], 0)) / 2.0;
        assert!((loss - want).abs() < 1e-12, "{loss} vs {want}");
        for i in 0..6 {
            let h = 1e-3f32;
            let mut up = logits;
            up[i] += h;
            let mut down = logits;
            down[i] -= h;
            let mut scratch = Vec::new();
            let numeric = 0.3
                * (softmax_cross_entropy(&up, &labels, 3, 1.0, &mut scratch)
                    - softmax_cross_entropy(&down, &labels, 3, 1.0, &mut scratch))
                / (2.0 * h as f64);
            assert!((grad[i] as f64 - numeric).abs() < 1e-4, "logit {i}");
        }
    }

    #[test]
    fn huge_logits_stay_finite() {
        let mut grad = Vec::new();
        let loss = softmax_cross_entropy(&[1e30, 0.0], &[1], 2, 1.0, &mut grad);
        assert_eq!(loss, 1e30f32 as f64);
        assert!(grad.iter().all(|g| g.is_finite()));
    }
}

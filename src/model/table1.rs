//! The figures Table 1 of the paper publishes, to show beside the ones the network really has.
//!
//! Table 1 counts convolution and FC weights without biases in units of 1024 ("K") and multiply-adds
//! in millions. Several rows disagree with their own filter counts (conv1: 9.2K weights, not 2.7K);
//! ../shared/reference/paper_table recomputes every row.

use super::summary::Summary;

/// (row, published params in K, published ops in M). "conv3" stands for Table 1's merged
/// "convolution 3x3/1" row, which covers the 1x1 reduction (conv2) and the 3x3 (conv3).
const PUBLISHED: [(&str, f64, f64); 12] = [
    ("conv1", 2.7, 34.0),
    ("conv3", 112.0, 360.0),
    ("inception3a", 159.0, 128.0),
    ("inception3b", 380.0, 304.0),
    ("inception4a", 364.0, 73.0),
    ("inception4b", 437.0, 88.0),
    ("inception4c", 463.0, 100.0),
    ("inception4d", 580.0, 119.0),
    ("inception4e", 840.0, 170.0),
    ("inception5a", 1072.0, 54.0),
    ("inception5b", 1388.0, 71.0),
    ("fc", 1000.0, 1.0),
];

/// Our weights (K) and ops (M) for a Table 1 row, merging conv2 into conv3 as the table does.
pub fn ours(row: &str, summary: &Summary) -> Option<(f64, f64)> {
    let names: &[&str] = if row == "conv3" {
        &["conv2", "conv3"]
    } else {
        std::slice::from_ref(&row)
    };
    let rows: Vec<_> = summary
        .layers
        .iter()
        .filter(|r| names.contains(&r.name.as_str()))
        .collect();
    (!rows.is_empty()).then(|| {
        let weights: usize = rows.iter().map(|r| r.weights).sum();
        let macs: usize = rows.iter().map(|r| r.macs).sum();
        (weights as f64 / 1024.0, macs as f64 / 1e6)
    })
}

/// "2.7K 34M  differs: 9.2K 118M" for a row Table 1 lists, `None` for the others.
pub fn published_note(row: &str, summary: &Summary) -> Option<String> {
    let &(_, params_k, ops_m) = PUBLISHED.iter().find(|(name, ..)| *name == row)?;
    let (k, m) = ours(row, summary)?;
    // The reference's criterion: weights within 1K, ops within 1M of the published figure.
    let agrees = (k - params_k).abs() <= 1.0 && (m - ops_m).abs() <= 1.0;
    let merged = if row == "conv3" { " (conv2+conv3)" } else { "" };
    Some(if agrees {
        format!("{params_k}K {ops_m}M{merged}")
    } else {
        format!("{params_k}K {ops_m}M{merged}  differs: ours {k:.1}K {m:.0}M")
    })
}

/// Rows where the published table disagrees with the network its own filter counts define.
pub fn disagreements(summary: &Summary) -> Vec<&'static str> {
    PUBLISHED
        .iter()
        .filter(|(row, ..)| published_note(row, summary).is_some_and(|n| n.contains("differs")))
        .map(|(row, ..)| *row)
        .collect()
}

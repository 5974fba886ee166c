//! Combining predictions as the paper did (section 7): "the softmax probabilities are averaged
//! over multiple crops and over all the individual classifiers to obtain the final prediction".
//!
//! Scores are row-major `[rows, classes]` slices: one row per crop (of one model) or per image.

/// Scores whose length does not fit the rows or groups asked for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AverageError {
    /// The scores do not split into rows of the number of classes.
    #[error("{len} scores do not split into rows of {classes} classes")]
    Rows {
        /// The number of scores given.
        len: usize,
        /// The number of classes per row.
        classes: usize,
    },
    /// The rows do not split into groups of the number of crops.
    #[error("{rows} rows do not split into groups of {group} crops")]
    Groups {
        /// The number of rows given.
        rows: usize,
        /// The number of crops per image.
        group: usize,
    },
    /// An ensemble member has another number of scores than the first.
    #[error("ensemble member {index} has {len} scores, member 0 has {expected}")]
    Members {
        /// The member's position in the ensemble.
        index: usize,
        /// The number of scores it has.
        len: usize,
        /// The number of scores the first member has.
        expected: usize,
    },
    /// An ensemble with no member.
    #[error("an ensemble needs at least one member")]
    NoMembers,
}

/// The number of rows of a `[rows, classes]` slice, or why it is not one.
fn rows(scores: &[f32], classes: usize) -> Result<usize, AverageError> {
    if classes == 0 || !scores.len().is_multiple_of(classes) {
        return Err(AverageError::Rows {
            len: scores.len(),
            classes,
        });
    }
    Ok(scores.len() / classes)
}

/// The softmax of every row of `logits`, with the row maximum subtracted first (no overflow) and
/// the sum accumulated in f64.
pub fn softmax_rows(logits: &[f32], classes: usize) -> Result<Vec<f32>, AverageError> {
    rows(logits, classes)?;
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(classes) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f64> = row.iter().map(|&x| ((x - max) as f64).exp()).collect();
        let sum: f64 = exps.iter().sum();
        out.extend(exps.iter().map(|e| (e / sum) as f32));
    }
    Ok(out)
}

/// The mean of each run of `group` consecutive rows: the crops of one image become one row.
pub fn average_groups(
    scores: &[f32],
    classes: usize,
    group: usize,
) -> Result<Vec<f32>, AverageError> {
    let n = rows(scores, classes)?;
    if group == 0 || !n.is_multiple_of(group) {
        return Err(AverageError::Groups { rows: n, group });
    }
    Ok(scores
        .chunks(classes * group)
        .flat_map(|block| {
            (0..classes).map(move |c| {
                let sum: f64 = (0..group).map(|r| block[r * classes + c] as f64).sum();
                (sum / group as f64) as f32
            })
        })
        .collect())
}

/// Per-image class probabilities from the logits of `crops` consecutive crops per image: the
/// softmax of each crop, averaged over the image's crops.
pub fn crop_probabilities(
    logits: &[f32],
    classes: usize,
    crops: usize,
) -> Result<Vec<f32>, AverageError> {
    average_groups(&softmax_rows(logits, classes)?, classes, crops)
}

/// The element-wise mean of the ensemble members' probabilities (each `[images, classes]` for the
/// same images in the same order). With every member averaged over the same crops this is the
/// mean over all (model, crop) softmaxes, the paper's ensemble prediction.
pub fn average_members(members: &[Vec<f32>]) -> Result<Vec<f32>, AverageError> {
    let first = members.first().ok_or(AverageError::NoMembers)?;
    if let Some((index, member)) = members
        .iter()
        .enumerate()
        .find(|(_, m)| m.len() != first.len())
    {
        return Err(AverageError::Members {
            index,
            len: member.len(),
            expected: first.len(),
        });
    }
    let n = members.len() as f64;
    Ok((0..first.len())
        .map(|i| (members.iter().map(|m| m[i] as f64).sum::<f64>() / n) as f32)
        .collect())
}

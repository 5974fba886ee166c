//! Compares a file's tensors with the model's, in PyTorch names and shapes (what users have in
//! hand), and reports the first missing, unexpected or misshapen key.

use std::path::Path;

use super::error::WeightsError;
use super::tensor_map::{HostData, TensorMap};

/// `expected` and `found` in PyTorch names; `num_batches_tracked` counters are ignored.
pub fn check(expected: &TensorMap, found: &TensorMap, path: &Path) -> Result<(), WeightsError> {
    let counted = |k: &&String| !k.ends_with(".num_batches_tracked");
    let missing: Vec<&String> = expected
        .keys()
        .filter(counted)
        .filter(|k| !found.contains_key(*k))
        .collect();
    let unexpected: Vec<&String> = found
        .keys()
        .filter(counted)
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let hint = hint(&missing, &unexpected);
    if let Some(key) = missing.first() {
        let (key, more) = ((*key).clone(), missing.len() - 1);
        return Err(WeightsError::Missing {
            path: path.into(),
            key,
            more,
            hint,
        });
    }
    if let Some(key) = unexpected.first() {
        let (key, more) = ((*key).clone(), unexpected.len() - 1);
        return Err(WeightsError::Unexpected {
            path: path.into(),
            key,
            more,
            hint,
        });
    }
    for (key, want) in expected.iter().filter(|(k, _)| counted(k)) {
        let got = &found[key];
        if let HostData::I64(_) = got.data {
            return Err(WeightsError::DType {
                path: path.into(),
                key: key.clone(),
                dtype: "int64".into(),
            });
        }
        if got.shape != want.shape {
            let (file, model) = (got.shape.clone(), want.shape.clone());
            return Err(WeightsError::Shape {
                path: path.into(),
                key: key.clone(),
                file,
                model,
            });
        }
    }
    Ok(())
}

/// A guess at the cause when whole groups of keys disagree.
fn hint(missing: &[&String], unexpected: &[&String]) -> String {
    let any = |keys: &[&String], part: &str| keys.iter().any(|k| k.contains(part));
    if any(unexpected, ".bn.") && any(missing, ".conv.bias") {
        "; the file looks like torchvision weights (BatchNorm, no conv bias): use --variant torchvision".into()
    } else if any(missing, ".bn.") && any(unexpected, ".conv.bias") {
        "; the file has biased convolutions without BatchNorm: use --variant paper or keras-seed"
            .into()
    } else if any(unexpected, "fc_bottleneck") || any(unexpected, "bn1.") {
        "; the file looks like keras-seed weights: use --variant keras-seed".into()
    } else if any(missing, "fc_bottleneck") || any(missing, "bn1.") {
        "; the model is the keras-seed variant but the file is not".into()
    } else {
        String::new()
    }
}

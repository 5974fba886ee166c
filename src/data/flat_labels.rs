//! The label file of a flat ImageNet validation folder (all 50,000 images in one folder), told
//! apart by its content: Kaggle's `LOC_val_solution.csv` (`ImageId,PredictionString` rows, the
//! wnid first) or the devkit's `ILSVRC2012_validation_ground_truth.txt` (one ILSVRC2012_ID per
//! line), whose ids are read through the devkit's `meta.mat`.

use std::path::{Path, PathBuf};

use super::devkit::read_meta_mat;
use super::{ClassTable, DataError, ImageFolder};

/// The devkit keeps `meta.mat` beside the ground truth (`ILSVRC2012_devkit_t12/data/`).
pub const DEVKIT_META: &str = "meta.mat";

/// Kaggle's label file of the flat validation folder.
pub const KAGGLE_CSV: &str = "LOC_val_solution.csv";

/// The devkit's label file of the flat validation folder.
pub const DEVKIT_GROUND_TRUTH: &str = "ILSVRC2012_validation_ground_truth.txt";

/// Which label file a flat validation folder comes with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlatLabels {
    /// `LOC_val_solution.csv`.
    KaggleCsv(PathBuf),
    /// `ILSVRC2012_validation_ground_truth.txt` and the devkit's `meta.mat`.
    DevkitGroundTruth {
        /// One class number (the devkit's ILSVRC2012_ID) per line, in file-name order.
        ground_truth: PathBuf,
        /// The devkit's `meta.mat`, mapping those numbers to WordNet ids.
        meta: PathBuf,
    },
}

impl FlatLabels {
    /// Recognises `labels` by its first line. Ground truth needs the devkit's `meta.mat`:
    /// `devkit_meta` when given, else `meta.mat` beside `labels`.
    pub fn detect(labels: &Path, devkit_meta: Option<&Path>) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(labels)
            .map_err(|e| DataError::dataset(labels, e.to_string()))?;
        let first = text.lines().map(str::trim).find(|l| !l.is_empty());
        match first {
            Some(line) if line.starts_with("ImageId,") => {
                Ok(FlatLabels::KaggleCsv(labels.to_path_buf()))
            }
            Some(line) if line.parse::<u32>().is_ok() => {
                let meta = match devkit_meta {
                    Some(meta) => meta.to_path_buf(),
                    None => labels.with_file_name(DEVKIT_META),
                };
                if !meta.is_file() {
                    return Err(DataError::dataset(
                        labels,
                        format!(
                            "the devkit's class ids need its meta.mat to map them to wnids, and {} \
                             is missing (give it with --devkit-meta)",
                            meta.display()
                        ),
                    ));
                }
                Ok(FlatLabels::DevkitGroundTruth {
                    ground_truth: labels.to_path_buf(),
                    meta,
                })
            }
            _ => Err(DataError::dataset(
                labels,
                "not a label file: expected LOC_val_solution.csv (ImageId,PredictionString) or \
                 the devkit's ILSVRC2012_validation_ground_truth.txt (one class id per line)",
            )),
        }
    }

    /// The label file of the flat validation folder of the dataset at `root`, looked for where
    /// users put it: `ROOT/LOC_val_solution.csv`, `ROOT/val/LOC_val_solution.csv`, then the
    /// devkit's ground truth in the same two places (with `meta.mat` beside it or in `ROOT`).
    /// `None` when there is none.
    pub fn find(root: &Path) -> Result<Option<Self>, DataError> {
        let folders = [root.to_path_buf(), root.join("val")];
        if let Some(csv) = folders
            .iter()
            .map(|f| f.join(KAGGLE_CSV))
            .find(|p| p.is_file())
        {
            return Ok(Some(FlatLabels::KaggleCsv(csv)));
        }
        let Some(ground_truth) = folders
            .iter()
            .map(|f| f.join(DEVKIT_GROUND_TRUTH))
            .find(|p| p.is_file())
        else {
            return Ok(None);
        };
        let in_root = root.join(DEVKIT_META);
        let meta = (!ground_truth.with_file_name(DEVKIT_META).is_file() && in_root.is_file())
            .then_some(in_root);
        FlatLabels::detect(&ground_truth, meta.as_deref()).map(Some)
    }

    /// The flat folder `dir` labelled with indices of `classes` (normally
    /// [`ClassTable::imagenet`]).
    pub fn open(&self, dir: &Path, classes: ClassTable) -> Result<ImageFolder, DataError> {
        match self {
            FlatLabels::KaggleCsv(csv) => ImageFolder::flat_with_csv(dir, csv, classes),
            FlatLabels::DevkitGroundTruth { ground_truth, meta } => {
                let synsets = read_meta_mat(meta)?;
                ImageFolder::flat_with_ground_truth(dir, ground_truth, &synsets, classes)
            }
        }
    }
}

//! `data check`: what a dataset folder holds and which files cannot be used, and why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::image::{PixelBudget, decode_rgb_within, format_name, sniff_format};
use super::{ClassTable, DataError, FlatLabels, ImageFolder};

/// One class of a checked split and how many of its images decode.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClassCount {
    /// The class's name.
    pub name: String,
    /// The class's WordNet id (empty when the folders are not wnids).
    pub wnid: String,
    /// Images of the class that decode.
    pub images: usize,
}

/// A file that cannot be used, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// Why it cannot be used.
    pub reason: String,
}

/// What `googlenet data check` found in one split.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SplitReport {
    /// `train`, `val`, or `.` when the folder itself holds the class folders.
    pub split: String,
    /// The split's classes, in label order.
    pub classes: Vec<ClassCount>,
    /// Files that decode.
    pub images: usize,
    /// Decodable files by format, read from their content.
    pub formats: BTreeMap<String, usize>,
    /// Files named as images whose content is another format than their extension says.
    pub misnamed: usize,
    /// Files that cannot be used, with the reason.
    pub problems: Vec<Problem>,
}

/// What `googlenet data check` found in a dataset folder, split by split.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckReport {
    /// The dataset folder checked.
    pub root: PathBuf,
    /// One report per split found.
    pub splits: Vec<SplitReport>,
}

impl CheckReport {
    /// Number of unusable files over all splits.
    pub fn problems(&self) -> usize {
        self.splits.iter().map(|s| s.problems.len()).sum()
    }
}

/// The splits of a dataset folder: `train/` and `val/` when present, else the folder itself.
pub fn splits(dir: &Path) -> Vec<(String, PathBuf)> {
    let named: Vec<(String, PathBuf)> = ["train", "val"]
        .iter()
        .map(|s| (s.to_string(), dir.join(s)))
        .filter(|(_, p)| p.is_dir())
        .collect();
    if named.is_empty() {
        vec![(".".to_string(), dir.to_path_buf())]
    } else {
        named
    }
}

/// The folders of `dir` to scan and their file counts, before decoding anything. With
/// `flat_val`, the validation split (`val/`, or `dir` itself when it has no splits) is a flat
/// folder labelled by that file, against the classes of `train/` when there is one, else the
/// ImageNet table.
pub fn open_splits(
    dir: &Path,
    flat_val: Option<&FlatLabels>,
) -> Result<Vec<(String, ImageFolder)>, DataError> {
    let mut folders: Vec<(String, ImageFolder)> = Vec::new();
    for (name, path) in splits(dir) {
        let folder = match flat_val {
            Some(labels) if name != "train" => {
                let classes = folders
                    .iter()
                    .find(|(n, _)| n == "train")
                    .map_or_else(ClassTable::imagenet, |(_, f)| f.classes().clone());
                labels.open(&path, classes)?
            }
            _ => ImageFolder::open(&path)?,
        };
        folders.push((name, folder));
    }
    Ok(folders)
}

/// Decodes every sample of each split (on the current rayon pool); `progress` is called once per
/// file. An image beyond `budget` is a problem, found from its header without decoding it.
pub fn check(
    dir: &Path,
    folders: &[(String, ImageFolder)],
    budget: PixelBudget,
    progress: &(dyn Fn() + Sync),
) -> CheckReport {
    let splits = folders
        .iter()
        .map(|(name, folder)| check_split(name, folder, budget, progress))
        .collect();
    CheckReport {
        root: dir.to_path_buf(),
        splits,
    }
}

enum Outcome {
    Image {
        format: &'static str,
        misnamed: bool,
    },
    Problem(String),
}

fn check_file(path: &Path, budget: PixelBudget) -> Outcome {
    let bytes = match std::fs::metadata(path) {
        Ok(meta) if meta.len() > budget.max_file_bytes() => {
            return Outcome::Problem(format!(
                "file of {} bytes is larger than an image within the limit of {} pixels can be \
                 (--max-image-pixels raises it)",
                meta.len(),
                budget.limit
            ));
        }
        _ => match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => return Outcome::Problem(e.to_string()),
        },
    };
    match decode_rgb_within(&bytes, budget) {
        Err(reason) => Outcome::Problem(reason),
        Ok(_) => {
            let format = sniff_format(&bytes).map_or("unknown", format_name);
            let extension = path.extension().map(|e| e.to_string_lossy().to_lowercase());
            let misnamed = !matches!(
                (format, extension.as_deref()),
                ("JPEG", Some("jpg" | "jpeg"))
                    | ("PNG", Some("png"))
                    | ("BMP", Some("bmp"))
                    | ("WebP", Some("webp"))
            );
            Outcome::Image { format, misnamed }
        }
    }
}

fn check_split(
    name: &str,
    folder: &ImageFolder,
    budget: PixelBudget,
    progress: &(dyn Fn() + Sync),
) -> SplitReport {
    let outcomes: Vec<Outcome> = folder
        .samples()
        .par_iter()
        .map(|sample| {
            let outcome = check_file(&sample.path, budget);
            progress();
            outcome
        })
        .collect();
    let classes = folder.classes();
    let mut counts = vec![0usize; classes.len()];
    let mut formats = BTreeMap::new();
    let (mut images, mut misnamed) = (0, 0);
    let mut problems: Vec<Problem> = folder
        .ignored()
        .iter()
        .map(|i| Problem {
            path: i.path.clone(),
            reason: i.reason.clone(),
        })
        .collect();
    for (sample, outcome) in folder.samples().iter().zip(outcomes) {
        match outcome {
            Outcome::Image {
                format,
                misnamed: wrong_name,
            } => {
                images += 1;
                counts[sample.label] += 1;
                *formats.entry(format.to_string()).or_insert(0) += 1;
                misnamed += usize::from(wrong_name);
            }
            Outcome::Problem(reason) => problems.push(Problem {
                path: sample.path.clone(),
                reason,
            }),
        }
    }
    let classes = counts
        .into_iter()
        .enumerate()
        .map(|(i, images)| ClassCount {
            name: classes.name(i).to_string(),
            wnid: classes.wnid(i).to_string(),
            images,
        })
        .collect();
    SplitReport {
        split: name.to_string(),
        classes,
        images,
        formats,
        misnamed,
        problems,
    }
}

//! Datasets: the ImageNet folder layout (`ROOT/train/<wnid>/*.JPEG`, one folder per class, class
//! index = sorted folder names as torchvision's `ImageFolder`), and the flat ImageNet validation
//! folder with its labels from `LOC_val_solution.csv` or the devkit's
//! `ILSVRC2012_validation_ground_truth.txt`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{ClassTable, DataError};

/// Extensions torchvision's `ImageFolder` takes (`IMG_EXTENSIONS`, compared in lower case); other
/// files are listed in [`ImageFolder::ignored`], as torchvision leaves them out.
pub const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

/// One image file and its class index.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// The image file.
    pub path: PathBuf,
    /// Class index in the dataset's [`ClassTable`].
    pub label: usize,
}

/// A file of the dataset folder that is not a sample, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Ignored {
    /// The file.
    pub path: PathBuf,
    /// Why it is not a sample.
    pub reason: String,
}

/// A labelled list of image files.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    root: PathBuf,
    classes: ClassTable,
    samples: Vec<Sample>,
    ignored: Vec<Ignored>,
}

impl ImageFolder {
    /// One sub-folder per class; class `i` is the `i`-th folder name in sorted order, and the
    /// samples are listed as torchvision lists them (folders in sorted path order, files sorted by
    /// name, sub-folders of a class included). Folders named by ImageNet wnids get ImageNet names.
    pub fn open(dir: &Path) -> Result<Self, DataError> {
        let mut folders: Vec<String> = read_dir_sorted(dir)?
            .into_iter()
            .filter(|(path, _)| path.is_dir())
            .map(|(_, name)| name)
            .collect();
        folders.sort();
        if folders.is_empty() {
            return Err(DataError::dataset(
                dir,
                "no class folders (expected DIR/<class>/<image files>)",
            ));
        }
        let mut samples = Vec::new();
        let mut ignored = Vec::new();
        for (label, folder) in folders.iter().enumerate() {
            for path in files_under(&dir.join(folder))? {
                if has_image_extension(&path) {
                    samples.push(Sample { path, label });
                } else {
                    ignored.push(Ignored {
                        path,
                        reason:
                            "not an image extension (skipped, as torchvision's ImageFolder does)"
                                .into(),
                    });
                }
            }
        }
        // Files beside the class folders belong to no class.
        for (path, _) in read_dir_sorted(dir)? {
            if path.is_file() {
                ignored.push(Ignored {
                    path,
                    reason: "outside the class folders".into(),
                });
            }
        }
        Ok(ImageFolder {
            root: dir.to_path_buf(),
            classes: ClassTable::from_folder_names(&folders),
            samples,
            ignored,
        })
    }

    /// The flat ImageNet validation folder labelled by `LOC_val_solution.csv` (`ImageId,
    /// PredictionString` with the wnid first), indices from `classes` (normally
    /// [`ClassTable::imagenet`]). Images without a label are listed in [`Self::ignored`].
    pub fn flat_with_csv(dir: &Path, csv: &Path, classes: ClassTable) -> Result<Self, DataError> {
        let text =
            std::fs::read_to_string(csv).map_err(|e| DataError::dataset(csv, e.to_string()))?;
        let mut labels = HashMap::new();
        for (number, line) in text.lines().enumerate().skip(1) {
            let Some((image_id, prediction)) = line.trim().split_once(',') else {
                continue;
            };
            let wnid = prediction.split_whitespace().next().unwrap_or("");
            let label = classes.index_of(wnid).ok_or_else(|| {
                DataError::dataset(
                    csv,
                    format!(
                        "line {}: class {wnid:?} is not in the class table",
                        number + 1
                    ),
                )
            })?;
            labels.insert(image_id.to_string(), label);
        }
        if labels.is_empty() {
            return Err(DataError::dataset(
                csv,
                "no labels (expected ImageId,PredictionString rows)",
            ));
        }
        let (mut samples, mut ignored) = (Vec::new(), Vec::new());
        for path in files_under(dir)?
            .into_iter()
            .filter(|p| has_image_extension(p))
        {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            match labels.get(&stem) {
                Some(&label) => samples.push(Sample { path, label }),
                None => ignored.push(Ignored {
                    path,
                    reason: format!("no label in {}", csv.display()),
                }),
            }
        }
        Ok(ImageFolder {
            root: dir.to_path_buf(),
            classes,
            samples,
            ignored,
        })
    }

    /// The flat validation folder labelled by the devkit's ground truth: line `n` holds the
    /// ILSVRC2012_ID (1-based, in the devkit's own class order, not sorted-wnid order) of
    /// `ILSVRC2012_val_{n:08}.JPEG`. `devkit_synsets` lists the wnids in ILSVRC2012_ID order
    /// (from the devkit's `meta.mat`, [`super::devkit::read_meta_mat`]); labels are given as
    /// indices of `classes`. Images not named `ILSVRC2012_val_<n>` with a line `n` are listed in
    /// [`Self::ignored`], so a subset of the 50,000 images works.
    pub fn flat_with_ground_truth(
        dir: &Path,
        ground_truth: &Path,
        devkit_synsets: &ClassTable,
        classes: ClassTable,
    ) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(ground_truth)
            .map_err(|e| DataError::dataset(ground_truth, e.to_string()))?;
        let mut labels = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let bad = |why: String| {
                DataError::dataset(ground_truth, format!("line {}: {why}", number + 1))
            };
            let id = line.trim();
            if id.is_empty() {
                continue;
            }
            let id: usize = id.parse().map_err(|_| {
                bad(format!(
                    "{id:?} is not an ILSVRC2012_ID (expected one class id per line)"
                ))
            })?;
            let wnid = devkit_synsets.wnid(id.wrapping_sub(1));
            if wnid.is_empty() {
                return Err(bad(format!("class id {id} is not in the devkit's synsets")));
            }
            let label = classes.index_of(wnid).ok_or_else(|| {
                bad(format!(
                    "class id {id} is {wnid}, which is not in the class table"
                ))
            })?;
            labels.push(label);
        }
        if labels.is_empty() {
            return Err(DataError::dataset(
                ground_truth,
                "no labels (expected one ILSVRC2012_ID per line)",
            ));
        }
        let (mut samples, mut ignored) = (Vec::new(), Vec::new());
        for path in files_under(dir)?
            .into_iter()
            .filter(|p| has_image_extension(p))
        {
            let number = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.strip_prefix("ILSVRC2012_val_"))
                .and_then(|n| n.parse::<usize>().ok());
            match number.and_then(|n| labels.get(n.wrapping_sub(1))) {
                Some(&label) => samples.push(Sample { path, label }),
                None => ignored.push(Ignored {
                    path,
                    reason: format!(
                        "no label in {} (not ILSVRC2012_val_<n> with n at most {})",
                        ground_truth.display(),
                        labels.len()
                    ),
                }),
            }
        }
        if samples.is_empty() {
            return Err(DataError::dataset(
                dir,
                format!(
                    "no image named ILSVRC2012_val_<n> with a label in {}",
                    ground_truth.display()
                ),
            ));
        }
        Ok(ImageFolder {
            root: dir.to_path_buf(),
            classes,
            samples,
            ignored,
        })
    }

    /// A dataset from an explicit list (a subset, or labels from elsewhere).
    pub fn from_samples(root: PathBuf, classes: ClassTable, samples: Vec<Sample>) -> Self {
        ImageFolder {
            root,
            classes,
            samples,
            ignored: Vec::new(),
        }
    }

    /// The dataset folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The classes, in label order.
    pub fn classes(&self) -> &ClassTable {
        &self.classes
    }

    /// Every image file with its label, in a stable order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Files in the folder that are not samples, with the reason.
    pub fn ignored(&self) -> &[Ignored] {
        &self.ignored
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the folder holds no sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// The image files under `dir` (by [`IMAGE_EXTENSIONS`], in any folder below it), in
/// torchvision's walk order; an error naming `dir` if it cannot be read.
pub fn image_files_under(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let files = files_under(dir)?;
    Ok(files
        .into_iter()
        .filter(|p| has_image_extension(p))
        .collect())
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

/// Entries of `dir` with their names, sorted by name.
fn read_dir_sorted(dir: &Path) -> Result<Vec<(PathBuf, String)>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::dataset(dir, e.to_string()))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::dataset(dir, e.to_string()))?;
        out.push((
            entry.path(),
            entry.file_name().to_string_lossy().to_string(),
        ));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// All files under `dir` (following links), in torchvision's order: `sorted(os.walk(dir))`
/// visits folders in sorted path order, each folder's files sorted by name.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut folders = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    // Linked folders are followed once each, so a link loop cannot make the walk endless.
    let mut visited = std::collections::HashSet::new();
    while let Some(folder) = pending.pop() {
        if !visited.insert(std::fs::canonicalize(&folder).unwrap_or_else(|_| folder.clone())) {
            continue;
        }
        let mut files = Vec::new();
        for (path, name) in read_dir_sorted(&folder)? {
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(folder.join(name));
            }
        }
        folders.push((folder.to_string_lossy().to_string(), files));
    }
    folders.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(folders.into_iter().flat_map(|(_, files)| files).collect())
}

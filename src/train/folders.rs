//! An ImageNet-layout folder (`ROOT/train/<class>/*`, `ROOT/val/<class>/*`) as training data:
//! training images get the paper's random crops of 8-100% of the area with aspect ratios 3/4-4/3
//! and horizontal flips (torchvision's `RandomResizedCrop` + `RandomHorizontalFlip`), validation
//! images the standard resize to 8/7 of the input and centre crop. A file that cannot be decoded
//! is skipped with one warning and counted, or with `strict` ends the run with an error naming it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::source::{HostBatch, Split, TrainData, mix};
use crate::data::flat_labels::FlatLabels;
use crate::data::image::{PixelBudget, load_rgb_within};
use crate::data::normalize::normalized_batch;
use crate::data::{ClassTable, DataError, EvalTransform, ImageFolder, TrainTransform};
use crate::model::Variant;

/// Training data from an ImageNet-layout folder: its `train` and `val` splits, decoded and
/// augmented as the variant's recipe says.
pub struct ImageFolders {
    root: PathBuf,
    train: ImageFolder,
    val: ImageFolder,
    train_transform: TrainTransform,
    eval_transform: EvalTransform,
    variant: Variant,
    side: usize,
    /// Files that failed to decode, warned about once.
    skipped: Mutex<BTreeSet<PathBuf>>,
    /// A file that fails to decode is an error instead of a skip.
    strict: bool,
    /// Images with more pixels are not decoded (a skip, or with `strict` an error).
    pixel_budget: PixelBudget,
}

/// `root/val` with one folder per class, or flat with its label file, labelled with the indices
/// of train's `classes`.
fn open_val(root: &Path, classes: &ClassTable) -> Result<ImageFolder, DataError> {
    let dir = root.join("val");
    let has_class_folders = std::fs::read_dir(&dir)
        .map_err(|e| DataError::dataset(&dir, e.to_string()))?
        .any(|entry| entry.is_ok_and(|e| e.path().is_dir()));
    if has_class_folders {
        return ImageFolder::open(&dir);
    }
    match FlatLabels::find(root)? {
        Some(labels) => labels.open(&dir, classes.clone()),
        None => Err(DataError::dataset(
            &dir,
            format!(
                "no class folders and no label file for a flat folder (put {} or {} with the \
                 devkit's {} in {})",
                crate::data::flat_labels::KAGGLE_CSV,
                crate::data::flat_labels::DEVKIT_GROUND_TRUTH,
                crate::data::flat_labels::DEVKIT_META,
                root.display()
            ),
        )),
    }
}

impl ImageFolders {
    /// Opens `root/train` and `root/val`, which must have the same class folders, or a flat
    /// `root/val` labelled by a file [`FlatLabels::find`] finds (ImageNet's validation set as
    /// distributed).
    pub fn open(root: &Path, variant: Variant, side: usize) -> Result<ImageFolders, DataError> {
        let train = ImageFolder::open(&root.join("train"))?;
        let val = open_val(root, train.classes())?;
        let names = |f: &ImageFolder| -> Vec<String> {
            (0..f.classes().len())
                .map(|i| f.classes().wnid(i).to_string())
                .collect()
        };
        if names(&train) != names(&val) {
            return Err(DataError::Dataset {
                path: root.to_path_buf(),
                reason: format!(
                    "train/ and val/ have different class folders ({:?} vs {:?})",
                    names(&train),
                    names(&val)
                ),
            });
        }
        for (folder, name) in [(&train, "train"), (&val, "val")] {
            if folder.is_empty() {
                return Err(DataError::Dataset {
                    path: root.join(name),
                    reason: "no images".into(),
                });
            }
        }
        Ok(ImageFolders {
            root: root.to_path_buf(),
            train,
            val,
            train_transform: TrainTransform::new(side as u32),
            eval_transform: EvalTransform::imagenet(side as u32),
            variant,
            side,
            skipped: Mutex::new(BTreeSet::new()),
            strict: false,
            pixel_budget: PixelBudget::default(),
        })
    }

    /// With `strict`, [`TrainData::fetch`] fails on the first file it cannot decode, naming it,
    /// instead of skipping and counting it.
    pub fn with_strict(self, strict: bool) -> Self {
        ImageFolders { strict, ..self }
    }

    /// Images above `budget`'s limit are skipped (errors with `strict`) before decoding.
    pub fn with_pixel_budget(self, pixel_budget: PixelBudget) -> Self {
        ImageFolders {
            pixel_budget,
            ..self
        }
    }

    /// Files skipped so far because they could not be decoded.
    pub fn skipped(&self) -> Vec<PathBuf> {
        self.skipped
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn folder(&self, split: Split) -> &ImageFolder {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    fn image(&self, split: Split, index: usize, seed: u64) -> Result<RgbImage, DataError> {
        let path = &self.folder(split).samples()[index].path;
        Ok(match split {
            Split::Train => {
                let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, index as u64));
                self.train_transform
                    .load(path, self.pixel_budget, &mut rng)?
            }
            Split::Val => self
                .eval_transform
                .apply(&load_rgb_within(path, self.pixel_budget)?),
        })
    }
}

impl TrainData for ImageFolders {
    fn describe(&self) -> String {
        format!(
            "{} ({} classes, {} training / {} validation images, {} px)",
            self.root.display(),
            self.train.classes().len(),
            self.train.len(),
            self.val.len(),
            self.side
        )
    }

    fn class_names(&self) -> Vec<String> {
        let classes = self.train.classes();
        (0..classes.len()).map(|i| classes.label(i)).collect()
    }

    fn len(&self, split: Split) -> usize {
        self.folder(split).len()
    }

    fn side(&self) -> usize {
        self.side
    }

    /// Every image's path below its split's folder and its label.
    fn listing(&self) -> Vec<String> {
        [Split::Train, Split::Val]
            .into_iter()
            .flat_map(|split| {
                let folder = self.folder(split);
                folder.samples().iter().map(move |s| {
                    let path = s.path.strip_prefix(folder.root()).unwrap_or(&s.path);
                    format!("{split:?} {} {}", s.label, path.display())
                })
            })
            .collect()
    }

    fn fetch(&self, split: Split, indices: &[usize], seed: u64) -> Result<HostBatch, DataError> {
        let (images, failures) = normalized_batch(indices.len(), self.side, self.variant, |i| {
            self.image(split, indices[i], seed)
        });
        let samples = self.folder(split).samples();
        let mut failed = vec![false; indices.len()];
        for (position, error) in failures {
            if self.strict {
                return Err(error);
            }
            failed[position] = true;
            let mut skipped = self.skipped.lock().expect("skip list lock");
            if skipped.insert(samples[indices[position]].path.clone()) {
                eprintln!("warning: skipped {error}");
            }
        }
        let labels = indices
            .iter()
            .zip(failed)
            .filter_map(|(&index, failed)| (!failed).then_some(samples[index].label as i64))
            .collect();
        Ok(HostBatch {
            images,
            labels,
            side: self.side,
        })
    }
}

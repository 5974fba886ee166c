//! The ImageNet data pipeline: decoding any photo to RGB, the paper's training augmentation and
//! torchvision's evaluation transform, normalisation to NCHW tensors, folder-per-class datasets
//! with ImageNet class names, and a seeded multi-threaded loader.

pub mod check;
pub mod classes;
pub mod dataset;
pub mod devkit;
mod error;
pub mod flat_labels;
pub mod image;
pub mod loader;
pub mod normalize;
pub mod photometric;
mod pixel_budget;
pub mod resize;
pub mod synthetic;
pub mod transform;

pub use classes::{ClassEntry, ClassTable};
pub use dataset::{Ignored, ImageFolder, Sample};
pub use error::DataError;
pub use flat_labels::FlatLabels;
pub use loader::{Batch, EpochIter, Loader, LoaderConfig, Skip, Transform};
pub use normalize::{normalize_chw, normalize_chw_into, to_tensor};
pub use photometric::Photometric;
pub use resize::Interpolation;
pub use transform::{EvalTransform, TrainTransform};

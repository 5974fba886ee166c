//! What the training loop needs from a dataset: labelled images of a training and a validation
//! split, fetched by index, so that the loop decides the order (and can skip what a resumed run
//! already did) and every random choice is a function of the run's seed.

use burn::prelude::*;

use crate::data::DataError;
use crate::data::synthetic::{self, SyntheticShapes};
use crate::model::Variant;

/// Which split of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training split.
    Train,
    /// The validation split.
    Val,
}

/// Images ready for the network: NCHW `f32`, normalised as the variant expects, and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct HostBatch {
    /// Pixels, NCHW, normalised.
    pub images: Vec<f32>,
    /// Class index of each image.
    pub labels: Vec<i64>,
    /// Side of the square images.
    pub side: usize,
}

impl HostBatch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The batch on `device`: images `[n, 3, side, side]` and labels `[n]`, as
    /// [`GoogLeNet::forward_with_aux`](crate::model::GoogLeNet::forward_with_aux) and the loss
    /// take them.
    pub fn tensors(&self, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let n = self.len();
        let shape = [n, 3, self.side, self.side];
        let images = Tensor::from_data(TensorData::new(self.images.clone(), shape), device);
        let labels = Tensor::from_data(TensorData::new(self.labels.clone(), [n]), device);
        (images, labels)
    }
}

/// A labelled dataset with a training and a validation split.
pub trait TrainData: Send + Sync {
    /// Where the data comes from, for messages.
    fn describe(&self) -> String;
    /// The classes' names, in label order.
    fn class_names(&self) -> Vec<String>;
    /// The number of images in `split`.
    fn len(&self, split: Split) -> usize;
    /// Side of the images [`TrainData::fetch`] returns.
    fn side(&self) -> usize;
    /// The images `indices` of `split`. Training images are augmented with random choices drawn
    /// from `seed` and each image's index; validation images do not depend on `seed`.
    fn fetch(&self, split: Split, indices: &[usize], seed: u64) -> Result<HostBatch, DataError>;
    /// What identifies the images and their labels, independent of where the data lives (for
    /// the check that every rank of a distributed run reads the same data); empty where
    /// [`TrainData::class_names`] and the split sizes say it all.
    fn listing(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The embedded shapes ([`SyntheticShapes`]) for a variant.
pub struct Synthetic {
    /// The set's size and seed.
    pub set: SyntheticShapes,
    /// The variant whose normalisation the images get.
    pub variant: Variant,
}

impl TrainData for Synthetic {
    fn describe(&self) -> String {
        format!(
            "embedded synthetic shapes ({} classes, {} px, {} training / {} validation images)",
            self.set.num_classes(),
            self.set.side,
            self.set.len(synthetic::Part::Train),
            self.set.len(synthetic::Part::Val)
        )
    }

    fn class_names(&self) -> Vec<String> {
        synthetic::CLASSES.iter().map(|s| s.to_string()).collect()
    }

    fn len(&self, split: Split) -> usize {
        self.set.len(part(split))
    }

    fn side(&self) -> usize {
        self.set.side
    }

    /// Training images are flipped left-right at random (that keeps every pattern in its class, so
    /// the label stays right).
    fn fetch(&self, split: Split, indices: &[usize], seed: u64) -> Result<HostBatch, DataError> {
        let side = self.set.side;
        let (mean, std) = self.variant.normalization();
        let plane = side * side;
        let mut images = vec![0.0f32; indices.len() * 3 * plane];
        let mut labels = Vec::with_capacity(indices.len());
        for (slot, &index) in indices.iter().enumerate() {
            if index >= self.len(split) {
                return Err(DataError::Batch(format!(
                    "image {index} of the synthetic set's {split:?} split does not exist"
                )));
            }
            let (rgb, label) = self.set.image(part(split), index);
            let flip = split == Split::Train && mix(seed, index as u64) & 1 == 1;
            let out = &mut images[slot * 3 * plane..(slot + 1) * 3 * plane];
            for y in 0..side {
                for x in 0..side {
                    let sx = if flip { side - 1 - x } else { x };
                    for c in 0..3 {
                        let v = rgb[(y * side + sx) * 3 + c] as f32 / 255.0;
                        out[c * plane + y * side + x] = (v - mean[c]) / std[c];
                    }
                }
            }
            labels.push(label as i64);
        }
        Ok(HostBatch {
            images,
            labels,
            side,
        })
    }
}

fn part(split: Split) -> synthetic::Part {
    match split {
        Split::Train => synthetic::Part::Train,
        Split::Val => synthetic::Part::Val,
    }
}

/// A well-mixed 64-bit function of two numbers (SplitMix64's finaliser), for deriving seeds.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_batch_becomes_nchw_images_and_labels() {
        let host = HostBatch {
            images: (0..2 * 3 * 2 * 2).map(|v| v as f32).collect(),
            labels: vec![7, 3],
            side: 2,
        };
        let (images, labels) = host.tensors(&Device::flex());
        assert_eq!(images.dims(), [2, 3, 2, 2]);
        assert_eq!(images.into_data().try_to_vec::<f32>().unwrap(), host.images);
        assert_eq!(labels.into_data().try_into_vec_as::<i64>().unwrap(), [7, 3]);
    }
}

//! The one place where 8-bit RGB becomes the network's float input: `(x / 255 - mean) / std`
//! per channel, in torchvision's order (`ToTensor` then `Normalize`), laid out CHW.

use burn::prelude::*;
use image::RgbImage;

use crate::model::Variant;

/// Appends the image as 3 planes (R, G, B) of `(x / 255 - mean) / std` with the variant's
/// statistics ([`Variant::normalization`]).
pub fn normalize_chw(image: &RgbImage, variant: Variant, out: &mut Vec<f32>) {
    let (mean, std) = variant.normalization();
    out.reserve(image.as_raw().len());
    for c in 0..3 {
        let (m, s) = (mean[c], std[c]);
        out.extend(
            image
                .as_raw()
                .chunks_exact(3)
                .map(|p| (p[c] as f32 / 255.0 - m) / s),
        );
    }
}

/// Normalised images as one NCHW batch. All images must have the size of the first.
pub fn to_tensor(images: &[RgbImage], variant: Variant, device: &Device) -> Tensor<4> {
    let (width, height) = images.first().map_or((0, 0), |i| i.dimensions());
    let mut data = Vec::with_capacity(images.len() * 3 * (width * height) as usize);
    for image in images {
        assert_eq!(
            image.dimensions(),
            (width, height),
            "all images of a batch must have one size"
        );
        normalize_chw(image, variant, &mut data);
    }
    let shape = [images.len(), 3, height as usize, width as usize];
    Tensor::<4>::from_data(TensorData::new(data, shape), device)
}

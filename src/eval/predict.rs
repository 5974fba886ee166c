//! Class probabilities of one image: its crops through one or several models, softmax averaged
//! over the crops and then over the models (section 7 of the paper).

use burn::prelude::*;
use burn::tensor::activation::softmax;
use image::RgbImage;

use super::crops::{CropBox, CropError, CropScheme, crop_boxes};
use crate::data::resize::resize_region;
use crate::data::{Interpolation, to_tensor};
use crate::model::GoogLeNet;

/// The crops of `image` as `crop` x `crop` images, each cut and scaled in one resampling step.
pub fn crop_images(image: &RgbImage, boxes: &[CropBox]) -> Vec<RgbImage> {
    let (width, height) = image.dimensions();
    boxes
        .iter()
        .map(|b| {
            let region = b.source_region(width, height);
            let out = resize_region(image, region, b.output, b.output, Interpolation::Bilinear);
            if b.mirror {
                image::imageops::flip_horizontal(&out)
            } else {
                out
            }
        })
        .collect()
}

/// Mean softmax over the crops of `scheme` and over `models` (all of one variant), one row per class.
pub fn predict(
    image: &RgbImage,
    models: &[GoogLeNet],
    scheme: CropScheme,
    crop: u32,
    device: &Device,
) -> Result<Vec<f32>, CropError> {
    let (width, height) = image.dimensions();
    let crops = crop_images(image, &crop_boxes(width, height, scheme, crop)?);
    let mut mean: Option<Tensor<1>> = None;
    for model in models {
        let input = to_tensor(&crops, model.variant, device);
        let probs = softmax(model.forward(input), 1)
            .mean_dim(0)
            .squeeze_dim::<1>(0);
        mean = Some(match mean {
            Some(sum) => sum + probs,
            None => probs,
        });
    }
    let mean = mean
        .expect("at least one model")
        .div_scalar(models.len() as f32);
    Ok(mean
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 probabilities"))
}

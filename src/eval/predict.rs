//! Class probabilities of one image: its crops through one or several models, softmax averaged
//! over the crops and then over the models (section 7 of the paper). Inference runs on the fast
//! CPU engine ([`crate::engine`]), which computes the same logits as the burn model.

use image::RgbImage;
use serde::Serialize;

use super::average::softmax_rows;
use super::crops::{CropBox, CropScheme, crop_boxes};
use super::metrics::top_k;
use crate::data::ClassTable;
use crate::data::Interpolation;
use crate::data::normalize_chw;
use crate::data::resize::resize_region;
use crate::engine::InferenceNet;

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

/// One of an image's most probable classes, as `googlenet classify --json` prints it (and
/// `googlenet serve` answers it).
#[derive(Serialize)]
pub struct Prediction {
    /// The class's index in the classifier's output.
    pub index: usize,
    /// Its WordNet id (`n01440764`); empty for a class that is not one of ImageNet's.
    pub wnid: String,
    /// Its human-readable name.
    pub name: String,
    /// Its softmax probability.
    pub prob: f32,
}

/// The `top` most probable classes of one image's probabilities, most probable first.
pub fn top_predictions(probs: &[f32], top: usize, classes: &ClassTable) -> Vec<Prediction> {
    top_k(probs, top)
        .into_iter()
        .map(|index| Prediction {
            index,
            wnid: classes.wnid(index).to_string(),
            name: classes.name(index).to_string(),
            prob: probs[index],
        })
        .collect()
}

/// Softmax of each image of a batch of equally sized images, one row of `classes` per image.
pub fn probabilities(net: &InferenceNet, images: &[RgbImage]) -> anyhow::Result<Vec<f32>> {
    let (width, height) = images.first().map_or((0, 0), |i| i.dimensions());
    let mut input = Vec::with_capacity(images.len() * 3 * (width * height) as usize);
    for image in images {
        normalize_chw(image, net.variant(), &mut input);
    }
    let logits = net.forward(&input, [images.len(), 3, height as usize, width as usize])?;
    Ok(softmax_rows(&logits, net.num_classes())?)
}

/// Mean softmax over the crops of `scheme` and over `nets` (all of one variant and class count).
pub fn predict(
    image: &RgbImage,
    nets: &[InferenceNet],
    scheme: CropScheme,
    crop: u32,
) -> anyhow::Result<Vec<f32>> {
    let (width, height) = image.dimensions();
    let crops = crop_images(image, &crop_boxes(width, height, scheme, crop)?);
    let classes = nets[0].num_classes();
    let mut mean = vec![0.0f32; classes];
    let rows = (crops.len() * nets.len()) as f32;
    for net in nets {
        for row in probabilities(net, &crops)?.chunks(classes) {
            mean.iter_mut().zip(row).for_each(|(m, p)| *m += p / rows);
        }
    }
    Ok(mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_predictions_are_the_most_probable_first_with_imagenet_names() {
        let mut probs = vec![0.0; 1000];
        probs[1] = 0.25; // goldfish
        probs[2] = 0.5; // great white shark
        probs[0] = 0.125; // tench
        let top = top_predictions(&probs, 2, &ClassTable::imagenet());
        let got: Vec<_> = top
            .iter()
            .map(|p| (p.index, p.wnid.as_str(), p.prob))
            .collect();
        assert_eq!(got, [(2, "n01484850", 0.5), (1, "n01443537", 0.25)]);
        assert_eq!(top[0].name, ClassTable::imagenet().name(2));
    }
}

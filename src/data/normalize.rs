//! The one place where 8-bit RGB becomes the network's float input: `(x / 255 - mean) / std`
//! per channel, in torchvision's order (`ToTensor` then `Normalize`), laid out CHW.

use burn::prelude::*;
use image::RgbImage;
use rayon::prelude::*;

use crate::model::Variant;

/// Appends the image as 3 planes (R, G, B) of `(x / 255 - mean) / std` with the variant's
/// statistics ([`Variant::normalization`]).
pub fn normalize_chw(image: &RgbImage, variant: Variant, out: &mut Vec<f32>) {
    let start = out.len();
    out.resize(start + image.as_raw().len(), 0.0);
    normalize_chw_into(image, variant, &mut out[start..]);
}

/// Writes the image as 3 planes (R, G, B) of `(x / 255 - mean) / std` into `out`, which must
/// hold exactly `3 * width * height` values. One pass over the pixels through a table of the
/// 256 values per channel (the same `f32` arithmetic as computing each pixel).
pub fn normalize_chw_into(image: &RgbImage, variant: Variant, out: &mut [f32]) {
    let (mean, std) = variant.normalization();
    let table: [[f32; 256]; 3] =
        std::array::from_fn(|c| std::array::from_fn(|x| (x as f32 / 255.0 - mean[c]) / std[c]));
    let plane = image.as_raw().len() / 3;
    assert_eq!(
        out.len(),
        3 * plane,
        "output must hold 3 planes of the image"
    );
    let (red, rest) = out.split_at_mut(plane);
    let (green, blue) = rest.split_at_mut(plane);
    let planes = red.iter_mut().zip(green.iter_mut()).zip(blue.iter_mut());
    for (pixel, ((r, g), b)) in image.as_raw().chunks_exact(3).zip(planes) {
        *r = table[0][pixel[0] as usize];
        *g = table[1][pixel[1] as usize];
        *b = table[2][pixel[2] as usize];
    }
}

/// Makes `count` square `side` x `side` images in parallel on the current rayon pool (`make(i)`
/// for the `i`-th), each normalised straight into its place in one NCHW buffer. Images `make`
/// fails on are left out (the later ones move up, keeping their order) and their errors returned
/// with their positions, in order.
pub fn normalized_batch<E: Send>(
    count: usize,
    side: usize,
    variant: Variant,
    make: impl Fn(usize) -> Result<RgbImage, E> + Sync,
) -> (Vec<f32>, Vec<(usize, E)>) {
    let size = 3 * side * side;
    let mut data = vec![0.0f32; count * size];
    let outcomes: Vec<Result<(), E>> = data
        .par_chunks_mut(size.max(1))
        .enumerate()
        .map(|(i, out)| {
            let image = make(i)?;
            assert_eq!(
                image.dimensions(),
                (side as u32, side as u32),
                "every image of a batch must be side x side"
            );
            normalize_chw_into(&image, variant, out);
            Ok(())
        })
        .collect();
    let mut failures = Vec::new();
    let mut kept = 0;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(()) => {
                if kept != i {
                    data.copy_within(i * size..(i + 1) * size, kept * size);
                }
                kept += 1;
            }
            Err(e) => failures.push((i, e)),
        }
    }
    data.truncate(kept * size);
    (data, failures)
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

//! The evaluation and training transforms: from a decoded RGB image to the network's square
//! input, still as 8-bit RGB (normalisation comes last, in [`super::normalize`]).

use std::path::Path;

use image::RgbImage;
use rand::Rng;

use super::DataError;
use super::image::{PixelBudget, load_rgb_region_within};
use super::photometric::Photometric;
use super::resize::{Interpolation, resize_region, resize_region_raw};
use crate::eval::crops::{Size, center_crop, resized_size};

/// Resize the shorter side to `resize`, then take the center `crop` x `crop` square:
/// torchvision's `Resize(256)` + `CenterCrop(224)` on a PIL image (bilinear with antialiasing,
/// the longer side rounded down, the crop offset rounded as torchvision rounds it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalTransform {
    /// Side the shorter image side is resized to.
    pub resize: u32,
    /// Side of the center square taken.
    pub crop: u32,
}

impl EvalTransform {
    /// `resize` smaller than `crop` is raised to `crop` (torchvision would pad instead).
    pub fn new(resize: u32, crop: u32) -> Self {
        let crop = crop.max(1);
        EvalTransform {
            resize: resize.max(crop),
            crop,
        }
    }

    /// The classic ImageNet evaluation: shorter side 256, center 224 (for a `crop`-sized
    /// network, shorter side `crop * 8 / 7`).
    pub fn imagenet(crop: u32) -> Self {
        EvalTransform::new((crop * 8 + 3) / 7, crop)
    }

    /// `image` resized and center-cropped.
    pub fn apply(&self, image: &RgbImage) -> RgbImage {
        let (width, height) = image.dimensions();
        let resized = resized_size(width, height, self.resize).unwrap_or(Size {
            width: self.resize,
            height: self.resize,
        });
        let whole = [0.0, 0.0, width as f64, height as f64];
        let scaled = resize_region(
            image,
            whole,
            resized.width,
            resized.height,
            Interpolation::Bilinear,
        );
        let rect = center_crop(resized, self.crop);
        image::imageops::crop_imm(&scaled, rect.x, rect.y, rect.width, rect.height).to_image()
    }
}

/// The training augmentation of section 6 of the paper: "sampling of various sized patches of
/// the image whose size is distributed evenly between 8% and 100% of the image area and whose
/// aspect ratio is chosen randomly between 3/4 and 4/3", the photometric distortions of
/// Andrew Howard, random interpolation methods, and horizontal flips.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainTransform {
    /// Side of the square output (224).
    pub size: u32,
    /// Range of the crop's share of the image area.
    pub area: (f64, f64),
    /// Range of the crop's width / height.
    pub ratio: (f64, f64),
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
    /// Brightness, contrast, saturation and PCA lighting noise; `None` for none.
    pub photometric: Option<Photometric>,
    /// Draw bilinear, area, nearest or bicubic with equal probability (else always bilinear).
    pub random_interpolation: bool,
}

impl TrainTransform {
    /// The paper's prescription without photometric distortions or random interpolation
    /// (torchvision's `RandomResizedCrop(size)` + `RandomHorizontalFlip()`).
    pub fn new(size: u32) -> Self {
        TrainTransform {
            size: size.max(1),
            area: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip: true,
            photometric: None,
            random_interpolation: false,
        }
    }

    /// Everything section 6 lists: crops, flips, photometric distortions, random interpolation.
    pub fn paper(size: u32) -> Self {
        TrainTransform {
            photometric: Some(Photometric::default()),
            random_interpolation: true,
            ..TrainTransform::new(size)
        }
    }

    /// Draws the crop region `[left, top, width, height]` of a `width` x `height` image, as
    /// torchvision's `RandomResizedCrop.get_params`: up to 10 tries of a uniform area share and
    /// a log-uniform ratio; if none fits, the whole image cropped to the nearest allowed ratio.
    pub fn crop_region(&self, width: u32, height: u32, rng: &mut impl Rng) -> [u32; 4] {
        let (w, h) = (width as f64, height as f64);
        let area = w * h;
        let (log_lo, log_hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * rng.random_range(self.area.0..=self.area.1);
            let ratio = rng.random_range(log_lo..=log_hi).exp();
            let cw = (target * ratio).sqrt().round();
            let ch = (target / ratio).sqrt().round();
            if cw >= 1.0 && ch >= 1.0 && cw <= w && ch <= h {
                let (cw, ch) = (cw as u32, ch as u32);
                let x = rng.random_range(0..=width - cw);
                let y = rng.random_range(0..=height - ch);
                return [x, y, cw, ch];
            }
        }
        let image_ratio = w / h;
        let (cw, ch) = if image_ratio < self.ratio.0 {
            (width, ((w / self.ratio.0).round() as u32).clamp(1, height))
        } else if image_ratio > self.ratio.1 {
            (((h * self.ratio.1).round() as u32).clamp(1, width), height)
        } else {
            (width, height)
        };
        [(width - cw) / 2, (height - ch) / 2, cw, ch]
    }

    /// Crop, resize to `size` x `size`, flip, distort. All randomness comes from `rng`, so the
    /// same seed gives the same output. The crop is resized from the rectangle
    /// [`TrainTransform::pixels_read`] alone, as [`TrainTransform::load`] decodes it, so both
    /// give the same output bit for bit (the resizer's coordinates are the rectangle's).
    pub fn apply(&self, image: &RgbImage, rng: &mut impl Rng) -> RgbImage {
        let (width, height) = image.dimensions();
        let crop = self.crop_region(width, height, rng);
        let [left, top, w, h] = self.pixels_read(crop, width, height);
        let read = image::imageops::crop_imm(image, left, top, w, h).to_image();
        let [x, y, cw, ch] = crop;
        self.apply_to_crop(read.as_raw(), w, h, [x - left, y - top, cw, ch], rng)
    }

    /// [`TrainTransform::apply`] on the image file at `path`, decoded only as far as the crop
    /// needs, into a buffer of the rectangle [`TrainTransform::pixels_read`] alone: the crop is
    /// drawn from the file's size first, as `apply` draws it, so the output is the same as
    /// `apply(&load_rgb(path)?, rng)`. An image beyond `budget` is an error.
    pub fn load(
        &self,
        path: &Path,
        budget: PixelBudget,
        rng: &mut impl Rng,
    ) -> Result<RgbImage, DataError> {
        let mut crop = [0; 4];
        let (pixels, [left, top, _, _]) = load_rgb_region_within(path, budget, |width, height| {
            crop = self.crop_region(width, height, rng);
            self.pixels_read(crop, width, height)
        })?;
        let [x, y, w, h] = crop;
        let crop = [x - left, y - top, w, h];
        Ok(self.apply_to_crop(pixels.as_raw(), pixels.width(), pixels.height(), crop, rng))
    }

    /// The pixels of a `width` x `height` image that [`TrainTransform::apply_to_crop`] reads
    /// for `crop`, as `[left, top, width, height]`: the crop and the resampling filter's reach
    /// around it (fast_image_resize, like PIL's `resize` with a box, reads the source beyond the
    /// box's edges; bicubic, the widest filter, reaches 2 source pixels per output pixel's
    /// width, plus one for rounding).
    pub fn pixels_read(&self, crop: [u32; 4], width: u32, height: u32) -> [u32; 4] {
        let [x, y, w, h] = crop;
        let reach = |side: u32| 2 * side.div_ceil(self.size.max(1)).max(1) + 1;
        let (mx, my) = (reach(w), reach(h));
        let left = x.saturating_sub(mx);
        let top = y.saturating_sub(my);
        let right = (x + w).saturating_add(mx).min(width);
        let bottom = (y + h).saturating_add(my).min(height);
        [left, top, right - left, bottom - top]
    }

    /// [`TrainTransform::apply`] after its first step, on row-major RGB `pixels` of
    /// `width` x `height`: the rectangle [`TrainTransform::pixels_read`] of the image (as
    /// [`super::image::decode_rgb_region`] decodes it), with `crop`, what
    /// [`TrainTransform::crop_region`] drew from `rng`, moved into its coordinates.
    pub fn apply_to_crop(
        &self,
        pixels: &[u8],
        width: u32,
        height: u32,
        crop: [u32; 4],
        rng: &mut impl Rng,
    ) -> RgbImage {
        let [x, y, w, h] = crop;
        let interpolation = if self.random_interpolation {
            Interpolation::ALL[rng.random_range(0..Interpolation::ALL.len())]
        } else {
            Interpolation::Bilinear
        };
        let region = [x as f64, y as f64, w as f64, h as f64];
        let mut out = resize_region_raw(
            pixels,
            width,
            height,
            region,
            self.size,
            self.size,
            interpolation,
        );
        if self.flip && rng.random_bool(0.5) {
            flip_rgb_rows(&mut out);
        }
        if let Some(photometric) = &self.photometric {
            photometric.apply(&mut out, rng);
        }
        out
    }
}

/// Mirrors an RGB image left-right in place, row by row (the same pixels as
/// `image::imageops::flip_horizontal_in_place`, whose generic per-pixel loop took 1.4% of the
/// training pipeline's time).
fn flip_rgb_rows(image: &mut RgbImage) {
    let width = image.width() as usize;
    if width < 2 {
        return;
    }
    for row in image.chunks_exact_mut(width * 3) {
        let (left, right) = row.split_at_mut(width / 2 * 3);
        let right_start = right.len() - left.len();
        for (a, b) in left
            .chunks_exact_mut(3)
            .zip(right[right_start..].chunks_exact_mut(3).rev())
        {
            let pixel = [a[0], a[1], a[2]];
            a.copy_from_slice(b);
            b.copy_from_slice(&pixel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_rgb_rows_equals_image_flip() {
        for (width, height) in [(1, 3), (2, 2), (7, 5), (224, 3)] {
            let image = RgbImage::from_fn(width, height, |x, y| {
                image::Rgb([x as u8, (y * 7) as u8, (x * 3 + y) as u8])
            });
            let mut ours = image.clone();
            flip_rgb_rows(&mut ours);
            assert_eq!(
                ours,
                image::imageops::flip_horizontal(&image),
                "{width}x{height}"
            );
        }
    }
}

//! Decoding only what the training crop needs (`decode_rgb_region`, zune-jpeg with the region
//! patch in vendor/zune-jpeg): inside the region the pixels must equal a full decode's exactly,
//! on the real photos of ../shared/data/hymenoptera and on synthetic JPEGs of every chroma
//! subsampling, greyscale, CMYK, restart intervals, progressive and odd sizes; the decode holds
//! the region's pixels alone; the training transform's output must be the same as from a fully
//! decoded image, and must not depend on pixels outside `TrainTransform::pixels_read`.

use std::path::PathBuf;

use googlenet::data::TrainTransform;
use googlenet::data::image::{decode_rgb, decode_rgb_region, load_rgb, load_rgb_region};
use image::{ImageFormat, RgbImage};
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::common::shared;
use crate::alloc_probe;

/// `image`'s own decode (zune-jpeg through the `image` crate, as before region decoding).
fn reference(bytes: &[u8]) -> RgbImage {
    image::load_from_memory_with_format(bytes, ImageFormat::Jpeg)
        .unwrap()
        .into_rgb8()
}

/// Rectangles to try on a `width` x `height` image: corners, strips, the middle, and
/// pseudo-random ones.
fn regions(width: u32, height: u32, seed: u64) -> Vec<[u32; 4]> {
    let mut out = vec![
        [0, 0, width, height],
        [0, 0, 1, 1],
        [width - 1, height - 1, 1, 1],
        [width / 3, height / 3, width.div_ceil(3), height.div_ceil(3)],
        [0, 0, width, height.min(5)],
        [0, height - height.min(5), width, height.min(5)],
        [0, 0, width.min(3), height],
        [width - width.min(3), 0, width.min(3), height],
    ];
    let mut state = seed | 1;
    let mut next = |n: u32| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % u64::from(n)) as u32
    };
    for _ in 0..24 {
        let w = 1 + next(width);
        let h = 1 + next(height);
        out.push([next(width - w + 1), next(height - h + 1), w, h]);
    }
    out
}

/// Every pixel of `region` equal in the region decode and the full one.
fn assert_region_equal(bytes: &[u8], full: &RgbImage, what: &str, seed: u64) {
    for region in regions(full.width(), full.height(), seed) {
        let (pixels, got_region) = decode_rgb_region(bytes, |width, height| {
            assert_eq!((width, height), full.dimensions(), "{what}: size");
            region
        })
        .unwrap();
        assert_eq!(got_region, region);
        let [x, y, w, h] = region;
        assert_eq!(
            (pixels.width(), pixels.height()),
            (w, h),
            "{what}: {region:?}"
        );
        assert_eq!(pixels.as_raw().len(), (w * h * 3) as usize);
        let stride = full.width() as usize * 3;
        for (row, got) in (y..y + h).zip(pixels.as_raw().chunks_exact(w as usize * 3)) {
            let start = row as usize * stride + x as usize * 3;
            let end = start + w as usize * 3;
            assert!(
                got == &full.as_raw()[start..end],
                "{what}: region {region:?} differs from the full decode in row {row}"
            );
        }
    }
}

fn hymenoptera_jpegs() -> Vec<PathBuf> {
    let root = shared("data/hymenoptera");
    let mut files = Vec::new();
    for split in ["train", "val"] {
        for class in std::fs::read_dir(root.join(split)).unwrap() {
            for file in std::fs::read_dir(class.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                if std::fs::read(&path).unwrap().starts_with(&[0xFF, 0xD8]) {
                    files.push(path);
                }
            }
        }
    }
    files.sort();
    files
}

#[test]
fn region_decode_equals_full_decode_on_hymenoptera() {
    let files = hymenoptera_jpegs();
    assert!(files.len() > 300, "{} JPEGs", files.len());
    for (i, path) in files.iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        let full = reference(&bytes);
        // The direct zune-jpeg decode equals `image`'s decode of the whole file.
        assert!(
            decode_rgb(&bytes).unwrap() == full,
            "{}: decode_rgb differs from image's decode",
            path.display()
        );
        assert_region_equal(&bytes, &full, &path.display().to_string(), i as u64 + 1);
    }
}

/// A textured image (gradients and noise) so every block has AC coefficients.
fn texture(width: u32, height: u32, channels: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::new();
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let noise = (state >> 59) as u32;
                let v = (x * (3 + c as u32) + y * (5 - c as u32) + noise * 4) % 256;
                out.push(v as u8);
            }
        }
    }
    out
}

#[test]
fn region_decode_equals_full_decode_on_every_kind_of_jpeg() {
    let samplings = [
        SamplingFactor::R_4_4_4,
        SamplingFactor::R_4_2_2,
        SamplingFactor::R_4_2_0,
        SamplingFactor::R_4_4_0,
        SamplingFactor::R_4_1_1,
        SamplingFactor::R_4_2_1,
    ];
    let mut cases = Vec::new();
    for (width, height) in [(203u16, 157u16), (64, 48), (17, 300), (9, 9)] {
        for sampling in samplings {
            for (restart, progressive) in [(0u16, false), (3, false), (0, true)] {
                cases.push((
                    width,
                    height,
                    ColorType::Rgb,
                    sampling,
                    restart,
                    progressive,
                ));
            }
        }
        cases.push((
            width,
            height,
            ColorType::Luma,
            SamplingFactor::R_4_4_4,
            0,
            false,
        ));
        cases.push((
            width,
            height,
            ColorType::Luma,
            SamplingFactor::R_4_4_4,
            2,
            false,
        ));
        cases.push((
            width,
            height,
            ColorType::Cmyk,
            SamplingFactor::R_4_4_4,
            0,
            false,
        ));
        cases.push((
            width,
            height,
            ColorType::Cmyk,
            SamplingFactor::R_4_2_0,
            0,
            false,
        ));
        cases.push((
            width,
            height,
            ColorType::Cmyk,
            SamplingFactor::R_4_2_2,
            4,
            false,
        ));
        cases.push((
            width,
            height,
            ColorType::Ycck,
            SamplingFactor::R_4_2_0,
            0,
            false,
        ));
    }
    for (i, (width, height, color, sampling, restart, progressive)) in cases.into_iter().enumerate()
    {
        let channels = match color {
            ColorType::Luma => 1,
            ColorType::Cmyk | ColorType::Ycck => 4,
            _ => 3,
        };
        let data = texture(u32::from(width), u32::from(height), channels);
        let mut bytes = Vec::new();
        let mut encoder = Encoder::new(&mut bytes, 90);
        encoder.set_sampling_factor(sampling);
        encoder.set_restart_interval(restart);
        encoder.set_progressive(progressive);
        encoder.encode(&data, width, height, color).unwrap();
        let full = reference(&bytes);
        let what = format!(
            "{width}x{height} {color:?} {sampling:?} restart {restart} progressive {progressive}"
        );
        assert!(decode_rgb(&bytes).unwrap() == full, "{what}: decode_rgb");
        assert_region_equal(&bytes, &full, &what, i as u64 + 7);
    }
}

#[test]
fn training_transform_from_region_decode_equals_from_full_decode() {
    // The paper's transform: random interpolation (bicubic reads the most neighbours) and
    // photometric distortions after the crop; each file with several seeds.
    let transform = TrainTransform::paper(224);
    for (i, path) in hymenoptera_jpegs().iter().enumerate().step_by(3) {
        let image = load_rgb(path).unwrap();
        for seed in 0..4u64 {
            let seed = seed * 1000 + i as u64;
            let want = transform.apply(&image, &mut ChaCha8Rng::seed_from_u64(seed));
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut crop = [0; 4];
            let (pixels, read) = load_rgb_region(path, |width, height| {
                crop = transform.crop_region(width, height, &mut rng);
                transform.pixels_read(crop, width, height)
            })
            .unwrap();
            assert_eq!(
                read,
                transform.pixels_read(crop, image.width(), image.height())
            );
            // The decoded pixels are the rectangle `read` alone: the crop moves into its
            // coordinates.
            let [x, y, w, h] = crop;
            let in_read = [x - read[0], y - read[1], w, h];
            let got = transform.apply_to_crop(
                pixels.as_raw(),
                pixels.width(),
                pixels.height(),
                in_read,
                &mut rng,
            );
            assert!(
                got == want,
                "{} seed {seed}: outputs differ",
                path.display()
            );
            // `pixels_read` holds all the resampling filter reaches: in the whole image's
            // coordinates, blacking out everything else changes nothing.
            let [x, y, w, h] = read;
            let mut masked = image.clone();
            for (px, py, pixel) in masked.enumerate_pixels_mut() {
                if px < x || py < y || px >= x + w || py >= y + h {
                    pixel.0 = [0, 0, 0];
                }
            }
            let in_whole = |image: &RgbImage| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let crop_again = transform.crop_region(image.width(), image.height(), &mut rng);
                assert_eq!(crop_again, crop);
                transform.apply_to_crop(
                    image.as_raw(),
                    image.width(),
                    image.height(),
                    crop,
                    &mut rng,
                )
            };
            assert!(
                in_whole(&masked) == in_whole(&image),
                "{} seed {seed}: the transform reads beyond pixels_read",
                path.display()
            );
        }
    }
}

#[test]
fn region_decode_allocates_the_rectangle_not_the_image() {
    let (width, height) = (4000u16, 3000u16);
    let mut bytes = Vec::new();
    let mut encoder = Encoder::new(&mut bytes, 90);
    encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
    let data = texture(u32::from(width), u32::from(height), 3);
    encoder
        .encode(&data, width, height, ColorType::Rgb)
        .unwrap();
    drop(data);
    let image_bytes = usize::from(width) * usize::from(height) * 3;
    for region in [
        [1800, 1400, 224, 224],
        [0, 0, 1, 1],
        [3000, 2500, 1000, 500],
    ] {
        let [x, y, w, h] = region;
        alloc_probe::reset();
        let (pixels, read) = decode_rgb_region(&bytes, |_, _| region).unwrap();
        let peak = alloc_probe::peak();
        let rectangle = (w * h * 3) as usize;
        let bound = rectangle + 256 * usize::from(width) + (256 << 10);
        eprintln!(
            "region {region:?} of {width}x{height}: peak {peak} bytes held (rectangle \
             {rectangle}, bound {bound}, whole image {image_bytes})"
        );
        assert_eq!(read, region);
        assert_eq!((pixels.width(), pixels.height()), (w, h));
        assert!(
            peak < bound,
            "region {region:?}: the decode held {peak} bytes at its peak, more than the \
             rectangle's {rectangle} plus 256 bytes per image column"
        );
        drop(pixels);
        let full = decode_rgb(&bytes).unwrap();
        let (pixels, _) = decode_rgb_region(&bytes, |_, _| region).unwrap();
        for row in 0..h as usize {
            let start = ((y as usize + row) * usize::from(width) + x as usize) * 3;
            assert!(
                pixels.as_raw()[row * w as usize * 3..][..w as usize * 3]
                    == full.as_raw()[start..start + w as usize * 3],
                "region {region:?}: row {row} differs from the full decode"
            );
        }
    }
    // The whole-image decode, for contrast, holds the whole image.
    alloc_probe::reset();
    let full = decode_rgb(&bytes).unwrap();
    let peak = alloc_probe::peak();
    eprintln!("whole decode of {width}x{height}: peak {peak} bytes held");
    assert_eq!(full.as_raw().len(), image_bytes);
    assert!(peak >= image_bytes);

    // A progressive file: zune-jpeg holds every component's coefficients for the whole image
    // (2 bytes per sample, 1.5 samples per pixel at 4:2:0), but no whole RGB output beside them.
    let mut progressive = Vec::new();
    let mut encoder = Encoder::new(&mut progressive, 90);
    encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
    encoder.set_progressive(true);
    let data = texture(u32::from(width), u32::from(height), 3);
    encoder
        .encode(&data, width, height, ColorType::Rgb)
        .unwrap();
    drop(data);
    let region = [1800, 1400, 224, 224];
    alloc_probe::reset();
    let (pixels, _) = decode_rgb_region(&progressive, |_, _| region).unwrap();
    let peak = alloc_probe::peak();
    let samples = usize::from(width) * usize::from(height) * 3 / 2;
    let coefficients = 2 * samples;
    let bound = coefficients + 224 * 224 * 3 + 256 * usize::from(width) + (256 << 10);
    eprintln!("region {region:?} of a progressive {width}x{height}: peak {peak} bytes held");
    assert_eq!(pixels.as_raw().len(), 224 * 224 * 3);
    assert!(
        peak < bound,
        "progressive: the decode held {peak} bytes at its peak, more than the coefficients' \
         {coefficients} plus the rectangle and 256 bytes per image column"
    );
}

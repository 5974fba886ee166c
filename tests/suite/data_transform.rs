//! The transforms: evaluation against PIL (torchvision's Resize(256) + CenterCrop(224)),
//! random-resized-crop geometry, determinism by seed, and normalisation.

use googlenet::data::image::load_rgb;
use googlenet::data::{EvalTransform, TrainTransform, normalize_chw, to_tensor};
use googlenet::model::Variant;
use image::{Rgb, RgbImage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared");

/// The reference crops made by ../shared/reference/inputs/make_inputs.py with PIL.
fn reference_crops() -> Vec<u8> {
    let path = format!("{SHARED}/reference/inputs/inputs.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{path}: {e} (this test needs the shared/ folder next to the repository)")
    });
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = tensors.tensor("images_uint8_nhwc").unwrap();
    assert_eq!(view.shape(), [4, 224, 224, 3]);
    view.data().to_vec()
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y) as f64)
        .sum::<f64>()
        / a.len() as f64
}

/// The two reference photos whose sources are in shared/ (the other two are scikit-learn's sample
/// photos, not in shared/; `cargo run --release --example eval_transform_accuracy` measures all
/// four when given scikit-learn's images folder).
#[test]
fn eval_transform_matches_pil_resize_256_center_crop_224() {
    let reference = reference_crops();
    let plane = 224 * 224 * 3;
    let sources = [
        (2, "data/hymenoptera/val/ants/10308379_1b6c72e180.jpg"),
        (3, "data/hymenoptera/val/bees/1032546534_06907fe3b3.jpg"),
    ];
    let transform = EvalTransform::new(256, 224);
    for (index, source) in sources {
        let image = load_rgb(format!("{SHARED}/{source}").as_ref()).unwrap();
        let ours = transform.apply(&image);
        assert_eq!(ours.dimensions(), (224, 224));
        let theirs = &reference[index * plane..(index + 1) * plane];
        let diff = mean_abs_diff(ours.as_raw(), theirs);
        eprintln!("reference image {index} ({source}): mean |ours - PIL| = {diff:.3} of 255");
        assert!(
            diff <= 2.0,
            "image {index}: mean abs difference {diff:.3} > 2"
        );
    }
}

fn photo_like(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 251) as u8, (y % 241) as u8, ((x * y) % 239) as u8])
    })
}

#[test]
fn random_resized_crop_stays_within_area_and_ratio_bounds() {
    let transform = TrainTransform::new(224);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut fallbacks = 0;
    for (width, height) in [(500, 375), (366, 500), (640, 427), (1200, 300), (224, 224)] {
        let area = (width * height) as f64;
        let (mut min_share, mut max_share) = (f64::MAX, 0.0f64);
        for _ in 0..2000 {
            let [x, y, w, h] = transform.crop_region(width, height, &mut rng);
            assert!(w >= 1 && h >= 1 && x + w <= width && y + h <= height);
            let share = (w * h) as f64 / area;
            let ratio = w as f64 / h as f64;
            // Rounding each side to whole pixels moves the share and ratio a little.
            let slack = 2.0 / w.min(h) as f64 + 1e-9;
            let in_bounds = share >= 0.08 * (1.0 - 2.0 * slack)
                && share <= 1.0
                && ratio >= 0.75 * (1.0 - slack)
                && ratio <= 4.0 / 3.0 * (1.0 + slack);
            if !in_bounds {
                // The only other outcome is torchvision's fallback: the whole image, clamped in ratio.
                assert!(
                    w == width || h == height,
                    "{width}x{height}: crop {w}x{h} out of bounds"
                );
                fallbacks += 1;
            }
            min_share = min_share.min(share);
            max_share = max_share.max(share);
        }
        assert!(
            min_share < 0.12,
            "{width}x{height}: smallest share {min_share}"
        );
        // A 4:1 image holds at most a 4:3 crop of a third of its area.
        let largest_possible = (4.0 / 3.0 * height as f64 / width as f64).min(1.0);
        assert!(
            max_share > 0.6 * largest_possible,
            "{width}x{height}: largest share {max_share}"
        );
    }
    // The fallback is only for images too elongated for most draws (1200x300 is 4:1).
    assert!(fallbacks < 2000, "{fallbacks} fallbacks");
}

#[test]
fn train_transform_is_deterministic_by_seed() {
    let image = photo_like(400, 300);
    let transform = TrainTransform::paper(224);
    let run = |seed| transform.apply(&image, &mut ChaCha8Rng::seed_from_u64(seed));
    let a = run(1);
    assert_eq!(a.dimensions(), (224, 224));
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
}

#[test]
fn flip_mirrors_the_crop() {
    let image = photo_like(300, 300);
    let transform = TrainTransform {
        area: (1.0, 1.0),
        ratio: (1.0, 1.0),
        ..TrainTransform::new(300)
    };
    let (mut flipped, mut kept) = (0, 0);
    for seed in 0..20 {
        let out = transform.apply(&image, &mut ChaCha8Rng::seed_from_u64(seed));
        if out == image {
            kept += 1;
        } else {
            assert_eq!(out, image::imageops::flip_horizontal(&image));
            flipped += 1;
        }
    }
    assert!(flipped > 0 && kept > 0, "flipped {flipped}, kept {kept}");
}

#[test]
fn normalisation_follows_each_variant() {
    let image = RgbImage::from_pixel(2, 2, Rgb([255, 0, 128]));
    let mut out = Vec::new();
    normalize_chw(&image, Variant::Torchvision, &mut out);
    assert_eq!(out.len(), 12);
    assert!((out[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
    assert!((out[4] - (0.0 - 0.456) / 0.224).abs() < 1e-6);
    assert!((out[8] - (128.0 / 255.0 - 0.406) / 0.225).abs() < 1e-6);
    out.clear();
    normalize_chw(&image, Variant::KerasSeed, &mut out);
    assert_eq!(&out[..5], &[1.0, 1.0, 1.0, 1.0, 0.0]);
    out.clear();
    normalize_chw(&image, Variant::Paper, &mut out);
    assert!((out[0] - (1.0 - 0.485)).abs() < 1e-6);

    let device = burn::prelude::Device::flex();
    let batch = to_tensor(&[image.clone(), image], Variant::KerasSeed, &device);
    assert_eq!(batch.dims(), [2, 3, 2, 2]);
    let values = batch.into_data().try_into_vec_as::<f32>().unwrap();
    assert_eq!(values[12..16], [1.0; 4]);
    assert_eq!(values[16..20], [0.0; 4]);
}

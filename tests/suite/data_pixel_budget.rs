//! The pixel budget: a file whose header claims more pixels than the limit (a few KB that would
//! decode to 12.9 GB) is refused from its header before anything is allocated: a counted skip
//! naming the file and the size, or an error with --strict, on every command that decodes.

use std::path::Path;
use std::process::{Command, Output};

use googlenet::data::image::{
    PIL_MAX_IMAGE_PIXELS, PixelBudget, PixelCheck, check_pixel_budget, decode_rgb,
    decode_rgb_region, decode_rgb_within, load_rgb_within,
};
use image::{ImageFormat, Rgb, RgbImage};

use crate::common::save_image;

const BIN: &str = env!("CARGO_BIN_EXE_googlenet");
const FORGED: &str = "image of 65500x65500 pixels exceeds the limit of 178956970 pixels";

fn encoded(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn small_image() -> RgbImage {
    RgbImage::from_fn(16, 16, |x, y| Rgb([(x * 16) as u8, (y * 16) as u8, 90]))
}

/// A complete 16x16 JPEG whose frame header says 65500x65500.
pub fn forged_jpeg() -> Vec<u8> {
    let mut bytes = encoded(&small_image(), ImageFormat::Jpeg);
    let sof = bytes
        .windows(2)
        .position(|w| w[0] == 0xFF && (0xC0..=0xC2).contains(&w[1]))
        .expect("a frame header");
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xDC, 0xFF, 0xDC]);
    bytes
}

/// A 16x16 PNG whose IHDR says 65500x65500 (with its checksum fixed, so only the size is wrong).
fn forged_png() -> Vec<u8> {
    let mut bytes = encoded(&small_image(), ImageFormat::Png);
    assert_eq!(&bytes[12..16], b"IHDR");
    bytes[16..24].copy_from_slice(&[0, 0, 0xFF, 0xDC, 0, 0, 0xFF, 0xDC]);
    let mut crc = flate2::Crc::new();
    crc.update(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    bytes
}

#[test]
fn the_budget_follows_pil_warning_above_and_refusing_above_twice() {
    assert_eq!(PIL_MAX_IMAGE_PIXELS, 89_478_485);
    let budget = PixelBudget::default();
    assert_eq!(budget.limit, 178_956_970);
    assert_eq!(
        check_pixel_budget(9000, 9000, budget),
        Ok(PixelCheck::Within)
    );
    assert_eq!(
        check_pixel_budget(10_000, 10_000, budget),
        Ok(PixelCheck::Large)
    );
    let err = check_pixel_budget(14_000, 14_000, budget).unwrap_err();
    assert!(
        err.starts_with("image of 14000x14000 pixels exceeds the limit of 178956970 pixels"),
        "{err}"
    );
    let small = PixelBudget::with_limit(1000);
    assert_eq!(small.warn_above, 1000);
    assert_eq!(check_pixel_budget(40, 25, small), Ok(PixelCheck::Within));
    assert!(check_pixel_budget(40, 26, small).is_err());
    assert!(check_pixel_budget(u64::MAX, u64::MAX, budget).is_err());
}

#[test]
fn forged_headers_are_refused_before_decoding() {
    let jpeg = forged_jpeg();
    assert!(jpeg.len() < 4096, "{} bytes", jpeg.len());
    let err = decode_rgb(&jpeg).unwrap_err();
    assert!(err.starts_with(FORGED), "{err}");
    // The region decoder is refused before it asks for a region.
    let err = decode_rgb_region(&jpeg, |_, _| panic!("no region for a refused image"))
        .err()
        .unwrap();
    assert!(err.starts_with(FORGED), "{err}");
    let err = decode_rgb(&forged_png()).unwrap_err();
    assert!(err.starts_with(FORGED), "{err}");

    // A real image over a small budget: refused by size, and decoded under the default one.
    for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Bmp] {
        let bytes = encoded(&small_image(), format);
        let err = decode_rgb_within(&bytes, PixelBudget::with_limit(255)).unwrap_err();
        assert!(
            err.starts_with("image of 16x16 pixels exceeds the limit of 255 pixels"),
            "{format:?}: {err}"
        );
        assert_eq!(
            decode_rgb_within(&bytes, PixelBudget::with_limit(256))
                .unwrap()
                .dimensions(),
            (16, 16)
        );
    }
}

#[test]
fn a_file_larger_than_any_image_within_the_budget_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.jpg");
    let file = std::fs::File::create(&path).unwrap();
    // Sparse: 2 GB on paper, nothing on disk.
    file.set_len(2 << 30).unwrap();
    let err = load_rgb_within(&path, PixelBudget::with_limit(1_000_000))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("huge.jpg: file of 2147483648 bytes is larger"),
        "{err}"
    );
}

/// ROOT/train/{a,b}/good.jpg and ROOT/val/{a,b}/good.jpg, and in train/a the forged JPEG and PNG.
fn dataset_with_forged_files(root: &Path) {
    for split in ["train", "val"] {
        for (class, shade) in [("a", 40u8), ("b", 200u8)] {
            let image =
                RgbImage::from_fn(90, 70, |x, y| Rgb([shade, (x * 2) as u8, (y * 3) as u8]));
            save_image(
                &root.join(format!("{split}/{class}/good.jpg")),
                &image,
                ImageFormat::Jpeg,
            );
        }
    }
    std::fs::write(root.join("train/a/forged.jpg"), forged_jpeg()).unwrap();
    std::fs::write(root.join("train/a/forged.png"), forged_png()).unwrap();
}

/// Runs the CLI with its address space limited to 3 GiB: a decode of the forged size (12.9 GB)
/// could not even be attempted without aborting the process.
fn run_bounded(args: &[&str]) -> (Output, String) {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -v 3145728 && exec \"$@\"")
        .arg("sh")
        .arg(BIN)
        .args(args);
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

#[test]
fn data_check_counts_forged_files_as_problems_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    dataset_with_forged_files(dir.path());
    let root = dir.path().to_str().unwrap();
    let (output, text) = run_bounded(&["data", "check", "--json", "--threads", "2", root]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let train = &report["splits"][0];
    assert_eq!(train["split"], "train");
    assert_eq!(train["images"], 2, "{text}");
    let problems = train["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{text}");
    for problem in problems {
        let reason = problem["reason"].as_str().unwrap();
        assert!(reason.starts_with(FORGED), "{reason}");
    }

    let (output, text) = run_bounded(&["data", "check", "--strict", root]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("forged.") && text.contains(FORGED), "{text}");

    // --max-image-pixels: the 90x70 photos are over a limit of 6000.
    let (output, text) = run_bounded(&[
        "data",
        "check",
        "--json",
        "--max-image-pixels",
        "6000",
        root,
    ]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["splits"][1]["images"], 0, "{text}");
    let reason = report["splits"][1]["problems"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.starts_with("image of 90x70 pixels exceeds the limit of 6000 pixels"),
        "{reason}"
    );
}

#[test]
fn training_skips_and_counts_forged_files_unless_strict() {
    use googlenet::model::Variant;
    use googlenet::train::folders::ImageFolders;
    use googlenet::train::{Split, TrainData};

    let dir = tempfile::tempdir().unwrap();
    dataset_with_forged_files(dir.path());
    // train/: a/forged.jpg, a/forged.png, a/good.jpg (class 0), b/good.jpg (class 1).
    let data = ImageFolders::open(dir.path(), Variant::Torchvision, 32).unwrap();
    let batch = data.fetch(Split::Train, &[0, 1, 2, 3], 7).unwrap();
    assert_eq!(batch.labels, [0, 1]);
    let mut skipped: Vec<String> = data
        .skipped()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    skipped.sort();
    assert_eq!(skipped, ["forged.jpg", "forged.png"]);

    let strict = ImageFolders::open(dir.path(), Variant::Torchvision, 32)
        .unwrap()
        .with_strict(true);
    let err = strict
        .fetch(Split::Train, &[0, 2], 7)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("forged.jpg: ") && err.contains(FORGED),
        "{err}"
    );

    // A budget below the good photos' 6300 pixels refuses them too.
    let tight = ImageFolders::open(dir.path(), Variant::Torchvision, 32)
        .unwrap()
        .with_pixel_budget(PixelBudget::with_limit(6000));
    let batch = tight.fetch(Split::Train, &[2, 3], 7).unwrap();
    assert!(batch.is_empty());
    assert_eq!(tight.skipped().len(), 2);
}

#[test]
fn classify_refuses_a_forged_file_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let forged = dir.path().join("forged.jpg");
    std::fs::write(&forged, forged_jpeg()).unwrap();
    let weights =
        crate::common::shared("reference/torchvision/torchvision_seed1234_calibrated.pth");
    let (output, text) = run_bounded(&[
        "classify",
        "--weights",
        weights.to_str().unwrap(),
        "--variant",
        "torchvision",
        forged.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains(FORGED), "{text}");
}

//! `--strict` on the commands that read datasets: an unreadable image (a truncated JPEG, a GIF
//! named .jpg) is an error naming the file, not a counted skip.

use crate::common::{save_image, write_truncated_jpeg};
use std::path::Path;
use std::process::{Command, Output};

use image::{ImageFormat, Rgb, RgbImage};

const BIN: &str = env!("CARGO_BIN_EXE_googlenet");

/// ROOT/{train,val}/{a,b}/ with good JPEGs, and in train/a a JPEG cut in half and a GIF named .jpg.
fn dataset_with_bad_files(root: &Path) {
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
    let bad = root.join("train/a");
    write_truncated_jpeg(&bad.join("truncated.jpg"));
    save_image(
        &bad.join("placeholder.jpg"),
        &RgbImage::from_pixel(8, 8, Rgb([1, 2, 3])),
        ImageFormat::Gif,
    );
}

fn run(args: &[&str], root: &Path) -> (Output, String) {
    let output = Command::new(BIN).args(args).arg(root).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

fn names_a_bad_file(text: &str) -> bool {
    text.contains("truncated.jpg: truncated JPEG")
        || text.contains("placeholder.jpg: GIF content is not accepted")
}

#[test]
fn data_check_strict_fails_naming_the_file_instead_of_listing() {
    let dir = tempfile::tempdir().unwrap();
    dataset_with_bad_files(dir.path());
    let (output, text) = run(&["data", "check", "--json"], dir.path());
    assert_eq!(output.status.code(), Some(1), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let problems = report["splits"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{text}");
    assert_eq!(report["splits"][0]["images"], 2);

    let (output, text) = run(&["data", "check", "--json", "--strict"], dir.path());
    assert!(!output.status.success(), "{text}");
    assert!(output.stdout.is_empty(), "no report with --strict: {text}");
    assert!(names_a_bad_file(&text), "{text}");
}

#[test]
fn train_strict_stops_at_the_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset_with_bad_files(&data);
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    // One batch holds all four training files, so the bad ones are met before any step.
    let args = [
        "train",
        "--variant",
        "torchvision",
        "--input-size",
        "96",
        "--epochs",
        "1",
        "--batch",
        "8",
        "--quiet",
        "--strict",
        "--out",
        out,
        "--data",
    ];
    let (output, text) = run(&args, &data);
    assert!(!output.status.success(), "{text}");
    assert!(names_a_bad_file(&text), "{text}");
    // The cause is printed once, not once per error that wraps it.
    let mentions = text.matches("truncated JPEG").count() + text.matches("GIF content").count();
    assert_eq!(mentions, 1, "{text}");
    assert!(
        !Path::new(out).join("model.safetensors").exists(),
        "a strict run with a bad file must not finish"
    );
}

#[test]
fn training_batches_skip_and_count_bad_files_unless_strict() {
    use googlenet::model::Variant;
    use googlenet::train::folders::ImageFolders;
    use googlenet::train::{Split, TrainData};

    let dir = tempfile::tempdir().unwrap();
    dataset_with_bad_files(dir.path());
    // train/: a/good.jpg, a/placeholder.jpg, a/truncated.jpg (class 0), b/good.jpg (class 1).
    let data = ImageFolders::open(dir.path(), Variant::Torchvision, 32).unwrap();
    let batch = data.fetch(Split::Train, &[3, 1, 2, 0], 7).unwrap();
    assert_eq!(
        batch.labels,
        [1, 0],
        "the good images keep their labels, in order"
    );
    assert_eq!(batch.images.len(), 2 * 3 * 32 * 32);
    let mut skipped: Vec<String> = data
        .skipped()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    skipped.sort();
    assert_eq!(skipped, ["placeholder.jpg", "truncated.jpg"]);
    // The kept images are the ones a batch of the good files alone gives.
    let good = data.fetch(Split::Train, &[3, 0], 7).unwrap();
    assert_eq!(batch.images, good.images);

    let strict = ImageFolders::open(dir.path(), Variant::Torchvision, 32)
        .unwrap()
        .with_strict(true);
    let err = strict
        .fetch(Split::Train, &[3, 1, 2, 0], 7)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("placeholder.jpg: GIF content is not accepted"),
        "{err}"
    );
}

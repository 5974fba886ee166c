//! A batch left with fewer images than BatchNorm needs (the epoch's short last batch, or files
//! skipped from it) is dropped and counted, never fatal; an error prints each cause once.

use std::path::PathBuf;
use std::process::Command;

use googlenet::data::ImageFolder;

use crate::common::shared;

const BIN: &str = env!("CARGO_BIN_EXE_googlenet");

#[test]
fn a_last_batch_of_one_image_is_dropped_with_a_note() {
    let data: PathBuf = shared("data/hymenoptera");
    // 244 images (the GIF placeholder among the 245 files is not listed): batches of 81, 81,
    // 81 and 1, whatever the order.
    assert_eq!(ImageFolder::open(&data.join("train")).unwrap().len(), 244);
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["train", "--variant", "torchvision", "--input-size", "64"])
        .args(["--batch", "81", "--epochs", "1", "--json"])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(out.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["outcome"], "finished", "{summary}");
    assert_eq!(summary["steps"], 3, "{summary}");
    assert_eq!(summary["images"], 243, "{summary}");
    assert_eq!(summary["dropped"]["batches"], 1, "{summary}");
    assert_eq!(summary["dropped"]["images"], 1, "{summary}");
    assert!(
        stderr.contains(
            "note: epoch 1: 1 batch(es) of fewer than 2 images (1 image(s) in all) left out"
        ),
        "{stderr}"
    );
    assert!(out.path().join("run/model.safetensors").is_file());
}

#[test]
fn a_batch_size_below_batch_norm_s_minimum_is_refused_up_front() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["train", "--variant", "torchvision", "--input-size", "32"])
        .args(["--batch", "1", "--epochs", "1", "--quiet", "--out"])
        .arg(out.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "a batch of 1 images is too small: the torchvision variant's BatchNorm needs at least 2"
        ),
        "{stderr}"
    );
}

#[test]
fn an_error_chain_prints_each_cause_once() {
    use googlenet::cli::error_chain;
    use googlenet::data::DataError;
    use googlenet::train::TrainError;

    let data = DataError::Image {
        path: "x/broken.jpg".into(),
        reason: "truncated JPEG".into(),
    };
    let err = anyhow::Error::from(TrainError::from(data)).context("the run stopped");
    assert_eq!(
        error_chain(&err),
        "the run stopped: reading training data: x/broken.jpg: truncated JPEG"
    );
    // `{:#}` shows the duplicate this avoids.
    assert_eq!(format!("{err:#}").matches("truncated JPEG").count(), 2);
}

//! `classify` and `eval` end to end through the binary.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use burn::prelude::Device;
use common::shared;
use googlenet::model::{GoogLeNetConfig, Variant};
use googlenet::weights::{self, Layout};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_googlenet"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("googlenet-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn classify_prints_json_top_k_and_reports_a_missing_image_without_stopping() {
    let weights = shared("reference/torchvision/torchvision_seed1234_calibrated.pth");
    let ant = shared("reference/inputs/2_hymenoptera_val_ant.png");
    let out = bin()
        .args([
            "classify",
            "--variant",
            "torchvision",
            "--top",
            "3",
            "--json",
            "--resize",
            "224",
            "--crop",
            "224",
        ])
        .arg("--weights")
        .arg(&weights)
        .arg(&ant)
        .arg("/no/such/image.jpg")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a missing image makes the exit code 1"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = json[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    for key in ["index", "wnid", "name", "prob"] {
        assert!(top[0].get(key).is_some(), "missing {key}");
    }
    let probs: Vec<f64> = top.iter().map(|t| t["prob"].as_f64().unwrap()).collect();
    assert!(
        probs.windows(2).all(|w| w[0] >= w[1]),
        "sorted by probability: {probs:?}"
    );
    let index = top[0]["index"].as_u64().unwrap() as usize;
    assert_eq!(
        top[0]["wnid"],
        googlenet::data::ClassTable::imagenet().wnid(index)
    );
    assert!(
        json[1]["error"]
            .as_str()
            .unwrap()
            .contains("/no/such/image.jpg")
    );
}

#[test]
fn eval_reports_accuracy_per_class_and_crops_on_a_folder_per_class_set() {
    let dir = temp_dir("eval");
    for class in ["ants", "bees"] {
        std::fs::create_dir_all(dir.join("val").join(class)).unwrap();
        let src = shared(&format!("data/hymenoptera/val/{class}"));
        let mut files: Vec<_> = std::fs::read_dir(src)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.iter().take(2) {
            std::fs::copy(f, dir.join("val").join(class).join(f.file_name().unwrap())).unwrap();
        }
    }
    let model = GoogLeNetConfig::new(Variant::Torchvision)
        .with_num_classes(2)
        .init(&Device::flex())
        .unwrap();
    let weights_path = dir.join("model.safetensors");
    weights::save(&model, &weights_path, Layout::Native).unwrap();
    let calibration = dir.join("val").to_string_lossy().to_string();
    let int8 = [
        "--int8-calibration",
        &calibration,
        "--calibration-images",
        "3",
    ];
    let runs: [(&str, &str, &[&str]); 4] = [
        ("1", "f32", &["--precision", "f32"]),
        ("10", "f32", &[]),
        ("1", "bf16", &["--precision", "bf16"]),
        ("1", "int8", &int8),
    ];
    for (crops, precision, args) in runs {
        let out = bin()
            .args(["eval", "--json", "--crops", crops])
            .args(args)
            .arg("--data")
            .arg(dir.join("val"))
            .arg("--weights")
            .arg(&weights_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["crops"], crops.parse::<u64>().unwrap());
        assert_eq!(json["precision"], precision);
        if precision == "int8" {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("int8: calibrated on 3 images of"),
                "{stderr}"
            );
        }
        assert_eq!(json["metrics"]["images"], 4);
        assert_eq!(json["metrics"]["per_class"].as_array().unwrap().len(), 2);
        let top1 = json["metrics"]["top1_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&top1));
    }
    // A model with another number of classes is refused with both counts.
    let out = bin()
        .args(["eval", "--variant", "torchvision"])
        .arg("--data")
        .arg(dir.join("val"))
        .arg("--weights")
        .arg(shared(
            "reference/torchvision/torchvision_seed1234_calibrated.pth",
        ))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has 2 classes but the model has 1000"));
}

//! `train --weights` with weights for other classes than the data's fine-tunes: the trunk comes
//! from the file, the classifiers start fresh for the data's classes, and the written file names
//! them.

use crate::common::{TORCHVISION_PTH, fresh_dir, shared};

use std::process::Command;

use googlenet::weights::WeightsFile;

#[test]
fn imagenet_weights_fine_tune_on_two_folders() {
    let dir = fresh_dir("finetune");
    for (split, per_class) in [("train", 2), ("val", 1)] {
        for class in ["ants", "bees"] {
            let to = dir.join("data").join(split).join(class);
            std::fs::create_dir_all(&to).unwrap();
            let from = shared(&format!("data/hymenoptera/val/{class}"));
            let mut files: Vec<_> = std::fs::read_dir(from)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            for file in &files[..per_class] {
                std::fs::copy(file, to.join(file.file_name().unwrap())).unwrap();
            }
        }
    }
    let out = dir.join("run");
    let status = Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args([
            "train",
            "--variant",
            "torchvision",
            "--input-size",
            "112",
            "--epochs",
            "1",
        ])
        .args(["--batch", "4", "--lr", "1e-12", "--quiet", "--weights"])
        .arg(shared(TORCHVISION_PTH))
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let tuned = WeightsFile::open(&out.join("model.safetensors")).unwrap();
    let pretrained = WeightsFile::open(&shared(TORCHVISION_PTH)).unwrap();
    assert_eq!(tuned.num_classes().unwrap(), 2);
    assert_eq!(
        tuned.class_names().unwrap(),
        Some(vec!["ants".to_string(), "bees".to_string()])
    );
    // One step at lr 1e-12 leaves the convolutions where the file put them.
    for key in ["conv1.conv.weight", "inception5b.branch4.1.conv.weight"] {
        let a = tuned.tensors()[key].values().unwrap();
        let b = pretrained.tensors()[key].values().unwrap();
        let diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-6, "{key}: {diff}");
    }
    assert_eq!(tuned.tensors()["aux1.fc2.weight"].shape, vec![2, 1024]);
}

//! `classify` reads its weights file once: strace counts the opens of the file (CI installs
//! strace; without it this test fails and says so).

use crate::common::{TORCHVISION_PTH, fresh_dir, shared, torchvision_reference};

use std::path::Path;
use std::process::Command;

use burn::prelude::Device;
use googlenet::weights::{self, Layout};

/// How many times `googlenet classify --weights WEIGHTS ...` opens `weights`.
fn opens_of(weights: &Path, extra: &[&str], log: &Path) -> usize {
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat", "-o"])
        .arg(log)
        .arg(env!("CARGO_BIN_EXE_googlenet"))
        .args(["classify", "--json", "--weights"])
        .arg(weights)
        .args(extra)
        .arg(shared("reference/inputs/2_hymenoptera_val_ant.png"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("strace runs (apt-get install strace)");
    assert!(status.success(), "classify under strace failed");
    let name = weights.file_name().unwrap().to_str().unwrap();
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|line| line.contains(name) && !line.contains("ENOENT"))
        .count()
}

#[test]
fn classify_opens_the_weights_file_once() {
    let dir = fresh_dir("read-once");
    std::fs::create_dir_all(&dir).unwrap();
    let native = dir.join("native-weights.safetensors");
    let model = torchvision_reference(&Device::flex());
    weights::save_with_classes(&model, &native, Layout::Native, None).unwrap();
    // Configuration, class names and tensors all come from one read.
    assert_eq!(opens_of(&native, &[], &dir.join("native.log")), 1);
    // A .pth is read by burn's pytorch-reader, which opens it to tell zip from legacy and once
    // more to read it; the program itself asks once.
    let pth = shared(TORCHVISION_PTH);
    assert_eq!(
        opens_of(&pth, &["--variant", "torchvision"], &dir.join("pth.log")),
        2
    );
}

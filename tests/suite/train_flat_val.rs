//! Training on ImageNet as distributed: `ROOT/train/<wnid>/` and a flat `ROOT/val/` labelled by
//! Kaggle's `LOC_val_solution.csv` or the devkit's ground truth (read through its `meta.mat`),
//! found in the dataset folder so that `--resume` needs nothing more.

use std::path::Path;

use googlenet::model::Variant;
use googlenet::train::folders::ImageFolders;
use googlenet::train::{Split, TrainData};
use image::{Rgb, RgbImage};

/// Solid-colour JPEGs: train/n01440764 (class 0, red), train/n02119789 (class 1, blue), and three
/// flat validation images ILSVRC2012_val_0000000{1,2,3}.JPEG, blue, red, red.
fn imagenet_like(root: &Path) {
    let save = |path: &Path, colour: [u8; 3]| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::from_pixel(40, 30, Rgb(colour))
            .save(path)
            .unwrap();
    };
    let (red, blue) = ([200, 10, 10], [10, 10, 200]);
    save(&root.join("train/n01440764/a.JPEG"), red);
    save(&root.join("train/n01440764/b.JPEG"), red);
    save(&root.join("train/n02119789/c.JPEG"), blue);
    for (n, colour) in [(1, blue), (2, red), (3, red)] {
        save(
            &root.join(format!("val/ILSVRC2012_val_{n:08}.JPEG")),
            colour,
        );
    }
}

/// The validation split's labels, image by image, and whether each image is red (class 0's colour).
fn val_labels_and_redness(data: &ImageFolders) -> (Vec<i64>, Vec<bool>) {
    let n = data.len(Split::Val);
    let batch = data
        .fetch(Split::Val, &(0..n).collect::<Vec<_>>(), 0)
        .unwrap();
    let plane = batch.side * batch.side;
    let red = (0..n)
        .map(|i| {
            let image = &batch.images[i * 3 * plane..(i + 1) * 3 * plane];
            image[plane / 2] > image[2 * plane + plane / 2]
        })
        .collect();
    (batch.labels, red)
}

#[test]
fn flat_val_with_kaggle_csv_in_the_dataset_folder() {
    let dir = tempfile::tempdir().unwrap();
    imagenet_like(dir.path());
    // Image 3 has no row: it is left out, not given a label.
    std::fs::write(
        dir.path().join("LOC_val_solution.csv"),
        "ImageId,PredictionString\n\
         ILSVRC2012_val_00000002,n01440764 1 2 3 4\n\
         ILSVRC2012_val_00000001,n02119789 5 6 7 8 n02119789 1 1 2 2\n",
    )
    .unwrap();
    let data = ImageFolders::open(dir.path(), Variant::Torchvision, 32).unwrap();
    assert_eq!(data.len(Split::Train), 3);
    assert_eq!(data.len(Split::Val), 2);
    let (labels, red) = val_labels_and_redness(&data);
    assert_eq!(labels, [1, 0]);
    assert_eq!(red, [false, true], "labels belong to the right images");
}

#[test]
fn flat_val_with_the_devkit_ground_truth_and_meta_mat() {
    let dir = tempfile::tempdir().unwrap();
    imagenet_like(dir.path());
    // The fixture's meta.mat: ILSVRC2012_ID 1 = n02119789, 2 = n02100735, 3 = n01440764.
    let meta = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/devkit/meta.mat"
    );
    std::fs::copy(meta, dir.path().join("meta.mat")).unwrap();
    std::fs::write(
        dir.path().join("ILSVRC2012_validation_ground_truth.txt"),
        "1\n3\n3\n",
    )
    .unwrap();
    let data = ImageFolders::open(dir.path(), Variant::Torchvision, 32).unwrap();
    assert_eq!(data.len(Split::Val), 3);
    let (labels, red) = val_labels_and_redness(&data);
    assert_eq!(labels, [1, 0, 0]);
    assert_eq!(red, [false, true, true]);
}

#[test]
fn flat_val_without_a_label_file_is_an_error_saying_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    imagenet_like(dir.path());
    let err = ImageFolders::open(dir.path(), Variant::Torchvision, 32)
        .err()
        .expect("a flat val/ without labels must be refused")
        .to_string();
    assert!(
        err.contains("val") && err.contains("LOC_val_solution.csv") && err.contains("meta.mat"),
        "{err}"
    );
}

//! Datasets and class names: the built-in ImageNet table, label order as torchvision's
//! ImageFolder, the flat validation folder's label files, and the hymenoptera set.

use std::path::Path;

use googlenet::data::devkit::read_meta_mat;
use googlenet::data::{ClassTable, FlatLabels, ImageFolder};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared");

fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"x").unwrap();
}

#[test]
fn imagenet_table_has_1000_unique_sorted_wnids_and_known_names() {
    let table = ClassTable::imagenet();
    assert_eq!(table.len(), 1000);
    let wnids: Vec<&str> = (0..1000).map(|i| table.wnid(i)).collect();
    let mut sorted = wnids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, wnids, "wnids must be unique and in sorted order");
    assert_eq!(table.label(0), "n01440764 tench, Tinca tinca");
    assert_eq!(table.wnid(309), "n02206856");
    assert_eq!(table.name(309), "bee");
    assert_eq!(table.name(310), "ant, emmet, pismire");
    assert_eq!(table.name(698), "palace");
    assert_eq!(table.name(985), "daisy");
    assert_eq!(table.wnid(999), "n15075141");
    assert_eq!(table.index_of("n01443537"), Some(1));
    assert!((0..1000).all(|i| !table.name(i).is_empty()));
}

#[test]
fn names_files_in_each_accepted_form() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("LOC_synset_mapping.txt");
    std::fs::write(
        &mapping,
        "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n",
    )
    .unwrap();
    let table = ClassTable::from_file(&mapping).unwrap();
    assert_eq!(table.len(), 2);
    assert_eq!(table.label(1), "n01443537 goldfish, Carassius auratus");
    let wnids_only = dir.path().join("synsets.txt");
    std::fs::write(&wnids_only, "n02206856\nn02219486\n").unwrap();
    let table = ClassTable::from_file(&wnids_only).unwrap();
    assert_eq!(table.label(0), "n02206856 bee");
    let plain = dir.path().join("names.txt");
    std::fs::write(&plain, "cat\ndog\n\n").unwrap();
    let table = ClassTable::from_file(&plain).unwrap();
    assert_eq!((table.len(), table.name(1), table.wnid(1)), (2, "dog", ""));
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n").unwrap();
    let err = ClassTable::from_file(&empty).unwrap_err().to_string();
    assert!(err.contains("empty.txt"), "{err}");
}

#[test]
fn labels_follow_sorted_folder_names_like_torchvision() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Python's sorted(): upper case before lower case, byte order.
    for file in [
        "b/2.jpg",
        "b/1.JPEG",
        "a/z.png",
        "a/sub/y.jpg",
        "C/x.jpeg",
        "a/readme.txt",
    ] {
        touch(&root.join(file));
    }
    touch(&root.join("stray.jpg"));
    let folder = ImageFolder::open(root).unwrap();
    let names: Vec<&str> = (0..3).map(|i| folder.classes().name(i)).collect();
    assert_eq!(names, ["C", "a", "b"]);
    let listed: Vec<(String, usize)> = folder
        .samples()
        .iter()
        .map(|s| {
            (
                s.path.strip_prefix(root).unwrap().display().to_string(),
                s.label,
            )
        })
        .collect();
    let expected = [
        ("C/x.jpeg", 0),
        ("a/z.png", 1),
        ("a/sub/y.jpg", 1),
        ("b/1.JPEG", 2),
        ("b/2.jpg", 2),
    ];
    let expected: Vec<(String, usize)> =
        expected.iter().map(|(p, l)| (p.to_string(), *l)).collect();
    assert_eq!(listed, expected);
    let ignored: Vec<String> = folder
        .ignored()
        .iter()
        .map(|i| i.path.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(ignored, ["readme.txt", "stray.jpg"]);
}

#[test]
fn wnid_folders_get_imagenet_names() {
    let dir = tempfile::tempdir().unwrap();
    touch(&dir.path().join("n02219486/a.JPEG"));
    touch(&dir.path().join("n02206856/b.JPEG"));
    let folder = ImageFolder::open(dir.path()).unwrap();
    assert_eq!(folder.classes().label(0), "n02206856 bee");
    assert_eq!(folder.classes().label(1), "n02219486 ant, emmet, pismire");
}

#[test]
fn flat_validation_folder_with_csv_and_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let val = dir.path().join("val");
    for i in 1..=3 {
        touch(&val.join(format!("ILSVRC2012_val_0000000{i}.JPEG")));
    }
    let csv = dir.path().join("LOC_val_solution.csv");
    std::fs::write(
        &csv,
        "ImageId,PredictionString\nILSVRC2012_val_00000002,n01443537 1 2 3 4 n01443537 5 6 7 8\n\
         ILSVRC2012_val_00000001,n15075141 0 0 9 9\n",
    )
    .unwrap();
    let folder = ImageFolder::flat_with_csv(&val, &csv, ClassTable::imagenet()).unwrap();
    let labels: Vec<usize> = folder.samples().iter().map(|s| s.label).collect();
    assert_eq!(labels, [999, 1]);
    assert_eq!(folder.ignored().len(), 1, "image 3 has no label");

    // The devkit numbers classes its own way: here id 1 = n15075141, id 2 = n01440764.
    let devkit = dir.path().join("devkit_synsets.txt");
    std::fs::write(&devkit, "n15075141\nn01440764\n").unwrap();
    let truth = dir.path().join("ILSVRC2012_validation_ground_truth.txt");
    std::fs::write(&truth, "2\n1\n2\n").unwrap();
    let devkit = ClassTable::from_file(&devkit).unwrap();
    let folder =
        ImageFolder::flat_with_ground_truth(&val, &truth, &devkit, ClassTable::imagenet()).unwrap();
    let labels: Vec<usize> = folder.samples().iter().map(|s| s.label).collect();
    assert_eq!(labels, [0, 999, 0]);
    // A shorter ground truth labels the images it has lines for; the rest are listed as ignored.
    std::fs::write(&truth, "2\n1\n").unwrap();
    let folder =
        ImageFolder::flat_with_ground_truth(&val, &truth, &devkit, ClassTable::imagenet()).unwrap();
    let labels: Vec<usize> = folder.samples().iter().map(|s| s.label).collect();
    assert_eq!(labels, [0, 999]);
    assert_eq!(folder.ignored().len(), 1);
    assert!(
        folder.ignored()[0]
            .path
            .ends_with("ILSVRC2012_val_00000003.JPEG")
    );
    std::fs::write(&truth, "2\n3\n").unwrap();
    let err = ImageFolder::flat_with_ground_truth(&val, &truth, &devkit, ClassTable::imagenet())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ILSVRC2012_validation_ground_truth.txt: line 2")
            && err.contains("class id 3 is not in the devkit's synsets"),
        "{err}"
    );
}

fn devkit_fixture(name: &str) -> std::path::PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/devkit"
    ))
    .join(name)
}

#[test]
fn devkit_meta_mat_maps_ilsvrc2012_ids_to_wnids() {
    // Stand-ins for the devkit's data/meta.mat written by scipy (tests/fixtures/devkit/make_meta.py),
    // plain and zlib-compressed: ids 1, 2, 3 are n02119789, n02100735, n01440764 (not in sorted
    // order, as in the real devkit) and id 1001 is the parent synset n00001740.
    for name in ["meta.mat", "meta_compressed.mat"] {
        let synsets = read_meta_mat(&devkit_fixture(name)).unwrap();
        assert_eq!(synsets.len(), 1001, "{name}");
        assert_eq!(synsets.wnid(0), "n02119789", "{name}");
        assert_eq!(synsets.name(0), "kit fox, Vulpes macrotis", "{name}");
        assert_eq!(synsets.wnid(1), "n02100735", "{name}");
        assert_eq!(synsets.wnid(2), "n01440764", "{name}");
        assert_eq!(synsets.name(2), "tench, Tinca tinca", "{name}");
        assert_eq!(synsets.wnid(3), "", "{name}: id 4 is not in the file");
        assert_eq!(synsets.wnid(1000), "n00001740", "{name}");
        assert_eq!(synsets.name(1000), "entity", "{name}");
    }
}

#[test]
fn devkit_meta_mat_errors_name_the_file_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let not_mat = dir.path().join("meta.mat");
    std::fs::write(&not_mat, b"MATLAB? no, just text").unwrap();
    let err = read_meta_mat(&not_mat).unwrap_err().to_string();
    assert!(
        err.contains("meta.mat") && err.contains("not a little-endian MATLAB 5 MAT-file"),
        "{err}"
    );
    // The real file cut short: its variable runs past the end.
    let bytes = std::fs::read(devkit_fixture("meta.mat")).unwrap();
    std::fs::write(&not_mat, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_meta_mat(&not_mat).unwrap_err().to_string();
    assert!(err.contains("runs past the end of the file"), "{err}");
    // The compressed file with its zlib stream damaged.
    let mut bytes = std::fs::read(devkit_fixture("meta_compressed.mat")).unwrap();
    let len = bytes.len();
    bytes[140..len - 8].iter_mut().for_each(|b| *b ^= 0x5A);
    std::fs::write(&not_mat, &bytes).unwrap();
    let err = read_meta_mat(&not_mat).unwrap_err().to_string();
    assert!(err.contains("compressed variable"), "{err}");
    let missing = dir.path().join("absent.mat");
    let err = read_meta_mat(&missing).unwrap_err().to_string();
    assert!(err.contains("absent.mat"), "{err}");
}

#[test]
fn flat_labels_are_told_apart_and_ground_truth_finds_meta_mat_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let val = dir.path().join("val");
    for i in 1..=4 {
        touch(&val.join(format!("ILSVRC2012_val_0000000{i}.JPEG")));
    }
    let devkit = dir.path().join("ILSVRC2012_devkit_t12/data");
    std::fs::create_dir_all(&devkit).unwrap();
    let truth = devkit.join("ILSVRC2012_validation_ground_truth.txt");
    std::fs::write(&truth, "3\n1\n2\n1\n").unwrap();
    let err = FlatLabels::detect(&truth, None).unwrap_err().to_string();
    assert!(
        err.contains("ILSVRC2012_validation_ground_truth.txt")
            && err.contains("meta.mat is missing"),
        "{err}"
    );
    // Given explicitly, from elsewhere.
    let labels = FlatLabels::detect(&truth, Some(&devkit_fixture("meta_compressed.mat"))).unwrap();
    let folder = labels.open(&val, ClassTable::imagenet()).unwrap();
    let labels: Vec<&str> = folder
        .samples()
        .iter()
        .map(|s| folder.classes().wnid(s.label))
        .collect();
    assert_eq!(labels, ["n01440764", "n02119789", "n02100735", "n02119789"]);
    // Found beside the ground truth; labels are ImageNet indices (tench 0, English setter 212,
    // kit fox 278).
    std::fs::copy(devkit_fixture("meta.mat"), devkit.join("meta.mat")).unwrap();
    let folder = FlatLabels::detect(&truth, None)
        .unwrap()
        .open(&val, ClassTable::imagenet())
        .unwrap();
    let labels: Vec<usize> = folder.samples().iter().map(|s| s.label).collect();
    assert_eq!(labels, [0, 278, 212, 278]);
    // The Kaggle CSV is recognised by its header.
    let csv = dir.path().join("LOC_val_solution.csv");
    std::fs::write(
        &csv,
        "ImageId,PredictionString\nILSVRC2012_val_00000004,n01443537 1 2 3 4\n",
    )
    .unwrap();
    let folder = FlatLabels::detect(&csv, None)
        .unwrap()
        .open(&val, ClassTable::imagenet())
        .unwrap();
    let labels: Vec<usize> = folder.samples().iter().map(|s| s.label).collect();
    assert_eq!(labels, [1]);
    // Anything else is refused, naming the file.
    let other = dir.path().join("labels.txt");
    std::fs::write(&other, "ants\nbees\n").unwrap();
    let err = FlatLabels::detect(&other, None).unwrap_err().to_string();
    assert!(
        err.contains("labels.txt") && err.contains("not a label file"),
        "{err}"
    );
    // An id the devkit's meta.mat does not have.
    std::fs::write(&truth, "3\n1\n7\n").unwrap();
    let err = FlatLabels::detect(&truth, None)
        .unwrap()
        .open(&val, ClassTable::imagenet())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 3") && err.contains("class id 7 is not in the devkit's synsets"),
        "{err}"
    );
}

#[test]
fn data_check_reads_a_flat_val_folder_with_the_devkit_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("imagenet");
    // train/ with the three classes of the fixture, val/ flat.
    for wnid in ["n01440764", "n02100735", "n02119789"] {
        write_jpeg(&root.join(format!("train/{wnid}/a.JPEG")));
    }
    for i in 1..=3 {
        write_jpeg(&root.join(format!("val/ILSVRC2012_val_0000000{i}.JPEG")));
    }
    let truth = dir.path().join("ILSVRC2012_validation_ground_truth.txt");
    std::fs::write(&truth, "3\n3\n1\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(["data", "check", "--json", "--val-labels"])
        .arg(&truth)
        .arg("--devkit-meta")
        .arg(devkit_fixture("meta.mat"))
        .arg(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let val = &report["splits"][1];
    assert_eq!(val["split"], "val");
    let counts: Vec<(String, u64)> = val["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["wnid"].as_str().unwrap().to_string(),
                c["images"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("n01440764".to_string(), 2),
            ("n02100735".to_string(), 0),
            ("n02119789".to_string(), 1)
        ]
    );
}

fn write_jpeg(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(16, 12, image::Rgb([200, 100, 50]))
        .save_with_format(path, image::ImageFormat::Jpeg)
        .unwrap();
}

#[test]
fn missing_or_empty_dataset_folder_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = ImageFolder::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no class folders"), "{err}");
    let missing = dir.path().join("nope");
    let err = ImageFolder::open(&missing).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn hymenoptera_lists_classes_and_reports_the_gif_placeholder() {
    let train = Path::new(SHARED).join("data/hymenoptera/train");
    assert!(
        train.is_dir(),
        "{} is missing: this test needs the shared/ folder",
        train.display()
    );
    let folder = ImageFolder::open(&train).unwrap();
    assert_eq!(folder.classes().len(), 2);
    assert_eq!(
        (folder.classes().name(0), folder.classes().name(1)),
        ("ants", "bees")
    );
    let ants = folder.samples().iter().filter(|s| s.label == 0).count();
    let bees = folder.samples().iter().filter(|s| s.label == 1).count();
    // 124 files in ants/, one of them the GIF placeholder, which torchvision does not list either.
    assert_eq!((ants, bees), (123, 121));
    assert_eq!(folder.ignored().len(), 1);
    assert!(folder.ignored()[0].path.ends_with("ants/imageNotFound.gif"));
}

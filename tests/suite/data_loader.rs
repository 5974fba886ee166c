//! The loader: same seed, same batches whatever the thread count; skips counted and labels kept;
//! strict mode; drop-last; the hymenoptera set.

use crate::common::{save_image, write_truncated_jpeg};
use std::path::Path;

use googlenet::data::{
    EvalTransform, ImageFolder, Loader, LoaderConfig, TrainTransform, Transform,
};
use googlenet::model::Variant;
use image::{ImageFormat, Rgb, RgbImage};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared");

/// 2 classes of 6 good images each (one a PNG named .JPEG), plus three bad files in class 0.
fn dataset(root: &Path) -> ImageFolder {
    for class in 0..2u32 {
        for i in 0..6u32 {
            let image = RgbImage::from_fn(80 + i * 10, 60 + class * 20, |x, y| {
                Rgb([(x * 3 + i * 20) as u8, (y * 3) as u8, (class * 200) as u8])
            });
            let format = if i == 5 {
                ImageFormat::Png
            } else {
                ImageFormat::Jpeg
            };
            save_image(
                &root.join(format!("class{class}/img{i}.JPEG")),
                &image,
                format,
            );
        }
    }
    let bad = root.join("class0");
    std::fs::write(bad.join("empty.jpg"), b"").unwrap();
    let gif = RgbImage::from_pixel(8, 8, Rgb([1, 2, 3]));
    save_image(&bad.join("placeholder.jpg"), &gif, ImageFormat::Gif);
    write_truncated_jpeg(&bad.join("truncated.jpg"));
    ImageFolder::open(root).unwrap()
}

fn config(threads: usize) -> LoaderConfig {
    LoaderConfig {
        shuffle: true,
        seed: 42,
        threads,
        ..LoaderConfig::new(
            4,
            Transform::Train(TrainTransform::paper(32)),
            Variant::Torchvision,
        )
    }
}

/// Every batch of an epoch as (indices, labels, pixel values).
fn run(loader: &Loader, epoch: usize) -> Vec<(Vec<usize>, Vec<i64>, Vec<f32>)> {
    loader
        .epoch(epoch)
        .map(|batch| {
            let batch = batch.unwrap();
            let labels = batch.labels.into_data().try_into_vec_as::<i64>().unwrap();
            let pixels = batch.images.into_data().try_into_vec_as::<f32>().unwrap();
            (batch.indices, labels, pixels)
        })
        .collect()
}

#[test]
fn same_seed_same_batches_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    let one = Loader::new(data.clone(), config(1)).unwrap();
    let three = Loader::new(data.clone(), config(3)).unwrap();
    let epoch0 = run(&one, 0);
    assert_eq!(epoch0, run(&three, 0));
    assert_eq!(epoch0, run(&one, 0));
    let epoch1 = run(&one, 1);
    let order = |e: &[(Vec<usize>, Vec<i64>, Vec<f32>)]| {
        e.iter().flat_map(|b| b.0.clone()).collect::<Vec<_>>()
    };
    assert_ne!(
        order(&epoch0),
        order(&epoch1),
        "each epoch has its own order"
    );
    let other_seed = Loader::new(
        data,
        LoaderConfig {
            seed: 7,
            ..config(2)
        },
    )
    .unwrap();
    assert_ne!(order(&epoch0), order(&run(&other_seed, 0)));
}

#[test]
fn undecodable_files_are_skipped_counted_and_other_labels_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    assert_eq!(data.len(), 15);
    let loader = Loader::new(data.clone(), config(2)).unwrap();
    let batches = run(&loader, 0);
    let mut seen = Vec::new();
    for (indices, labels, pixels) in &batches {
        assert_eq!(pixels.len(), indices.len() * 3 * 32 * 32);
        for (&i, &label) in indices.iter().zip(labels) {
            assert_eq!(
                label as usize,
                data.samples()[i].label,
                "label of {}",
                data.samples()[i].path.display()
            );
            seen.push(i);
        }
    }
    seen.sort();
    assert_eq!(seen.len(), 12, "the 12 good images, each once");
    seen.dedup();
    assert_eq!(seen.len(), 12);
    let mut skipped: Vec<String> = loader
        .skipped()
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    skipped.sort();
    assert_eq!(skipped, ["empty.jpg", "placeholder.jpg", "truncated.jpg"]);
    assert!(loader.skipped().iter().all(|s| !s.reason.is_empty()));
}

#[test]
fn strict_mode_turns_a_bad_file_into_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    let loader = Loader::new(
        data,
        LoaderConfig {
            strict: true,
            ..config(2)
        },
    )
    .unwrap();
    let results: Vec<_> = loader.epoch(0).collect();
    let error = results.last().unwrap().as_ref().unwrap_err().to_string();
    assert!(
        ["empty.jpg", "placeholder.jpg", "truncated.jpg"]
            .iter()
            .any(|f| error.contains(f)),
        "{error}"
    );
    assert_eq!(
        results.iter().filter(|r| r.is_err()).count(),
        1,
        "the epoch ends at the error"
    );
}

#[test]
fn drop_last_and_early_drop() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    let eval = Transform::Eval(EvalTransform::new(36, 32));
    let keep = Loader::new(
        data.clone(),
        LoaderConfig::new(4, eval.clone(), Variant::KerasSeed),
    )
    .unwrap();
    assert_eq!(keep.batches_per_epoch(), 4);
    let drop = LoaderConfig {
        drop_last: true,
        ..LoaderConfig::new(4, eval, Variant::KerasSeed)
    };
    let drop = Loader::new(data, drop).unwrap();
    assert_eq!(drop.batches_per_epoch(), 3);
    // Unshuffled: dataset order; the 15th sample is alone in the last batch and dropped.
    let indices: Vec<usize> = run(&drop, 0).into_iter().flat_map(|b| b.0).collect();
    assert!(indices.windows(2).all(|w| w[0] < w[1]) && indices.iter().all(|&i| i < 12));
    // Stopping after one batch must neither hang nor panic.
    let mut epoch = keep.epoch(0);
    assert!(epoch.next().unwrap().is_ok());
    drop_early(epoch);
}

fn drop_early(epoch: googlenet::data::EpochIter) {
    std::mem::drop(epoch);
}

#[test]
fn hymenoptera_validation_set_loads_without_skips() {
    let val = Path::new(SHARED).join("data/hymenoptera/val");
    assert!(
        val.is_dir(),
        "{} is missing: this test needs the shared/ folder",
        val.display()
    );
    let data = ImageFolder::open(&val).unwrap();
    assert_eq!(data.len(), 153);
    let config = LoaderConfig {
        threads: 2,
        ..LoaderConfig::new(
            32,
            Transform::Eval(EvalTransform::new(256, 224)),
            Variant::Torchvision,
        )
    };
    let loader = Loader::new(data, config).unwrap();
    let mut images = 0;
    for batch in loader.epoch(0) {
        let batch = batch.unwrap();
        assert_eq!(batch.images.dims()[1..], [3, 224, 224]);
        images += batch.indices.len();
    }
    assert_eq!(images, 153);
    assert!(loader.skipped().is_empty());
}

#[test]
fn hymenoptera_training_set_reports_the_gif_and_loads_the_rest() {
    let train = Path::new(SHARED).join("data/hymenoptera/train");
    assert!(
        train.is_dir(),
        "{} is missing: this test needs the shared/ folder",
        train.display()
    );
    let data = ImageFolder::open(&train).unwrap();
    assert_eq!(data.ignored().len(), 1, "the GIF placeholder is reported");
    let config = LoaderConfig {
        threads: 2,
        shuffle: true,
        ..LoaderConfig::new(
            64,
            Transform::Train(TrainTransform::new(64)),
            Variant::Torchvision,
        )
    };
    let loader = Loader::new(data, config).unwrap();
    let images: usize = loader.epoch(0).map(|b| b.unwrap().indices.len()).sum();
    assert_eq!(images, 244);
    assert!(loader.skipped().is_empty());
}

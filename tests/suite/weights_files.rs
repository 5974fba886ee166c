//! Weight files round trip, and wrong ones get errors that name the file, the key and the shapes.

use crate::common;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use common::*;
use googlenet::model::{GoogLeNet, GoogLeNetConfig, Variant};
use googlenet::weights::{self, Layout, WeightsError, WeightsFile, model_tensors};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("googlenet-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn model(variant: Variant, classes: usize) -> GoogLeNet {
    GoogLeNetConfig::new(variant)
        .with_num_classes(classes)
        .init(&Device::flex())
        .unwrap()
}

fn load_err(model: GoogLeNet, path: &Path) -> WeightsError {
    weights::load(model, path).expect_err("loading must fail")
}

#[test]
fn native_file_round_trips_every_tensor_and_the_configuration() {
    let dir = temp_dir("native");
    for variant in Variant::ALL {
        let original = model(variant, 7);
        let path = dir.join(format!("{variant}.safetensors"));
        weights::save(&original, &path, Layout::Native).unwrap();
        let file = WeightsFile::open(&path).unwrap();
        let config = file.config().unwrap().expect("native metadata");
        assert_eq!(file.variant().unwrap(), Some(variant));
        assert_eq!(
            file.model_config(None, 299).unwrap(),
            config,
            "the file's own wins"
        );
        assert_eq!(
            (config.variant, config.num_classes, config.input_size),
            (variant, 7, 224)
        );
        let loaded = file
            .load_into(config.init(&Device::flex()).unwrap())
            .unwrap();
        assert_eq!(
            model_tensors::collect(&loaded),
            model_tensors::collect(&original),
            "{variant}"
        );
    }
}

#[test]
fn class_names_travel_in_the_native_metadata() {
    let dir = temp_dir("classes");
    let path = dir.join("named.safetensors");
    let names = vec!["ants".to_string(), "bees".to_string()];
    weights::save_with_classes(
        &model(Variant::Paper, 2),
        &path,
        Layout::Native,
        Some(&names),
    )
    .unwrap();
    let file = WeightsFile::open(&path).unwrap();
    assert_eq!(file.class_names().unwrap(), Some(names));
    assert_eq!(file.num_classes().unwrap(), 2);
    let plain = dir.join("plain.safetensors");
    weights::save(&model(Variant::Paper, 2), &plain, Layout::Native).unwrap();
    assert_eq!(
        WeightsFile::open(&plain).unwrap().class_names().unwrap(),
        None
    );
}

#[test]
fn torchvision_pth_written_by_us_reads_back_identically() {
    let dir = temp_dir("pth");
    let loaded =
        weights::load(model(Variant::Torchvision, 1000), &shared(TORCHVISION_PTH)).unwrap();
    let out = dir.join("out.pth");
    weights::save(&loaded, &out, Layout::Torchvision).unwrap();
    let again = weights::load(model(Variant::Torchvision, 1000), &out).unwrap();
    assert_eq!(
        model_tensors::collect(&again),
        model_tensors::collect(&loaded)
    );
    // Same key set as torchvision's own state_dict, num_batches_tracked included.
    let keys: Vec<String> = weights::pth::read(&out).unwrap().into_keys().collect();
    let mut reference: Vec<String> = weights::pth::read(&shared(TORCHVISION_PTH))
        .unwrap()
        .into_keys()
        .collect();
    reference.sort();
    assert_eq!(keys, reference);
    assert_eq!(keys.len(), 364);
}

#[test]
fn keras_layout_export_reproduces_the_seed_file() {
    let dir = temp_dir("keras");
    let source = shared("reference/keras_seed/weights.safetensors");
    let loaded = weights::load(model(Variant::KerasSeed, 1000), &source).unwrap();
    let out = dir.join("keras.safetensors");
    weights::save(&loaded, &out, Layout::Keras).unwrap();
    let (ours, _) = weights::safetensors_file::read(&out).unwrap();
    let (seed, _) = weights::safetensors_file::read(&source).unwrap();
    assert_eq!(ours.len(), 138);
    assert_eq!(ours, seed, "every Keras tensor, name and layout");
}

#[test]
fn wrong_variant_is_named_with_a_hint() {
    let err = load_err(model(Variant::Paper, 1000), &shared(TORCHVISION_PTH));
    let text = err.to_string();
    assert!(
        matches!(err, WeightsError::Missing { ref key, .. } if key == "aux1.conv.conv.bias"),
        "{text}"
    );
    assert!(
        text.contains("torchvision_seed1234_calibrated.pth")
            && text.contains("use --variant torchvision"),
        "{text}"
    );
    let keras = shared("reference/keras_seed/weights.safetensors");
    let err = load_err(model(Variant::Torchvision, 1000), &keras);
    assert!(matches!(err, WeightsError::WrongVariant { .. }), "{err}");
}

#[test]
fn shape_mismatch_names_the_first_key_and_both_shapes() {
    let err = load_err(model(Variant::Torchvision, 10), &shared(TORCHVISION_PTH));
    match err {
        WeightsError::Shape {
            key, file, model, ..
        } => {
            assert_eq!(key, "aux1.fc2.bias");
            assert_eq!((file, model), (vec![1000], vec![10]));
        }
        other => panic!("expected a shape error, got {other}"),
    }
}

#[test]
fn native_file_of_another_variant_is_refused() {
    let dir = temp_dir("variant");
    let path = dir.join("paper.safetensors");
    weights::save(&model(Variant::Paper, 3), &path, Layout::Native).unwrap();
    let err = load_err(model(Variant::KerasSeed, 3), &path);
    assert!(
        err.to_string()
            .contains("holds paper weights but the model is the keras-seed variant"),
        "{err}"
    );
}

#[test]
fn unexpected_keys_are_reported() {
    let dir = temp_dir("unexpected");
    let path = dir.join("extra.safetensors");
    let mut map =
        weights::torch_names::from_burn(model_tensors::collect(&model(Variant::Paper, 3)));
    map.insert(
        "head.extra".into(),
        weights::HostTensor::f32(vec![2], vec![1.0, 2.0]),
    );
    weights::safetensors_file::write(&path, &map, &[]).unwrap();
    let err = load_err(model(Variant::Paper, 3), &path);
    assert!(
        matches!(err, WeightsError::Unexpected { ref key, more: 0, .. } if key == "head.extra"),
        "{err}"
    );
}

#[test]
fn truncated_garbage_and_missing_files_get_clear_errors() {
    let dir = temp_dir("bad");
    let bytes = std::fs::read(shared(TORCHVISION_PTH)).unwrap();
    let truncated = dir.join("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(model(Variant::Torchvision, 1000), &truncated);
    assert!(matches!(err, WeightsError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("truncated.pth"), "{err}");

    let text = dir.join("notes.safetensors");
    std::fs::write(&text, "these are not weights").unwrap();
    let err = load_err(model(Variant::Paper, 1000), &text);
    assert!(
        matches!(err, WeightsError::Corrupt { .. })
            && err.to_string().contains("notes.safetensors"),
        "{err}"
    );

    let image = dir.join("photo.jpg");
    std::fs::write(
        &image,
        [0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'],
    )
    .unwrap();
    let err = load_err(model(Variant::Paper, 1000), &image);
    assert!(matches!(err, WeightsError::UnknownFormat(_)), "{err}");

    let missing = dir.join("missing.pth");
    let err = load_err(model(Variant::Paper, 1000), &missing);
    assert!(err.to_string().contains("missing.pth"), "{err}");
}

#[test]
fn a_write_to_an_unwritable_place_fails_cleanly_and_leaves_no_temporary_file() {
    let dir = temp_dir("unwritable");
    let path = dir.join("no-such-folder").join("w.safetensors");
    let err = weights::save(&model(Variant::Paper, 3), &path, Layout::Native).unwrap_err();
    assert!(err.to_string().contains("no-such-folder"), "{err}");
    assert!(!dir.join("no-such-folder").exists());
}

#[test]
fn a_weights_file_says_what_it_knows_of_the_model() {
    let keras = WeightsFile::open(&shared("reference/keras_seed/weights.safetensors")).unwrap();
    assert_eq!(
        keras.variant().unwrap(),
        Some(Variant::KerasSeed),
        "Keras layer names"
    );
    let config = keras.model_config(None, 224).unwrap();
    assert_eq!(
        (config.variant, config.num_classes),
        (Variant::KerasSeed, 1000)
    );
    assert_eq!(keras.tensors().len(), 138);
    assert_eq!(
        keras.tensors()["fc.weight"].shape,
        vec![1000, 256],
        "PyTorch names and (out, in) layout"
    );
    let pth = WeightsFile::open(&shared(TORCHVISION_PTH)).unwrap();
    assert_eq!(pth.variant().unwrap(), None, "a state_dict does not say");
    assert_eq!(pth.config().unwrap(), None);
    let config = pth.model_config(Some(Variant::Torchvision), 224).unwrap();
    assert_eq!(
        (config.variant, config.num_classes),
        (Variant::Torchvision, 1000)
    );
    assert_eq!(pth.model_config(None, 224).unwrap().variant, Variant::Paper);
}

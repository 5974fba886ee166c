//! Runs that stop and continue: a run interrupted mid-epoch (as Ctrl-C does) and resumed ends
//! with exactly the weights of an uninterrupted run; a non-finite loss stops with an error naming
//! the step and keeps the last good checkpoint; an unwritable output folder fails before training.

use crate::common::fresh_dir;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use burn::prelude::*;
use googlenet::data::DataError;
use googlenet::data::synthetic::SyntheticShapes;
use googlenet::model::Variant;
use googlenet::train::checkpoint::Checkpoints;
use googlenet::train::{
    HostBatch, Outcome, Recipe, Split, Synthetic, TrainConfig, TrainData, TrainError, TrainOptions,
    train,
};

/// burn-flex's random generator is global: tests that seed it run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The synthetic shapes at 32 px, 6 training and 2 validation images per class, with a hook on
/// the n-th training batch fetched (0-based): set a stop flag, or poison the batch with NaN.
struct Hooked {
    inner: Synthetic,
    fetched: AtomicUsize,
    stop_at: Option<(usize, Arc<AtomicBool>)>,
    nan_at: Option<usize>,
}

impl Hooked {
    fn new() -> Hooked {
        Hooked {
            inner: Synthetic {
                set: SyntheticShapes {
                    side: 32,
                    train_per_class: 6,
                    val_per_class: 2,
                    seed: 7,
                },
                variant: Variant::Torchvision,
            },
            fetched: AtomicUsize::new(0),
            stop_at: None,
            nan_at: None,
        }
    }
}

impl TrainData for Hooked {
    fn describe(&self) -> String {
        "hooked synthetic shapes".into()
    }
    fn class_names(&self) -> Vec<String> {
        self.inner.class_names()
    }
    fn len(&self, split: Split) -> usize {
        self.inner.len(split)
    }
    fn side(&self) -> usize {
        self.inner.side()
    }
    fn fetch(&self, split: Split, indices: &[usize], seed: u64) -> Result<HostBatch, DataError> {
        let mut batch = self.inner.fetch(split, indices, seed)?;
        if split == Split::Train {
            let n = self.fetched.fetch_add(1, Ordering::SeqCst);
            if let Some((at, flag)) = &self.stop_at
                && n == *at
            {
                flag.store(true, Ordering::SeqCst);
            }
            if self.nan_at == Some(n) {
                batch.images.iter_mut().for_each(|x| *x = f32::NAN);
            }
        }
        Ok(batch)
    }
}

/// The paper recipe (momentum, weight decay, step schedule, Polyak averaging, aux losses, dropout)
/// on the torchvision variant at 32 px: 3 batches of 8 per epoch, 2 epochs.
fn config() -> TrainConfig {
    let mut c = TrainConfig::recipe(Recipe::Paper, Variant::Torchvision, 32, 4);
    c.epochs = 2;
    c.batch_size = 8;
    c.keep_last = 10;
    c
}

fn options(out: &Path, resume: bool, stop: Arc<AtomicBool>) -> TrainOptions {
    TrainOptions {
        out: out.to_path_buf(),
        resume,
        weights: None,
        stop,
        quiet: true,
        ..TrainOptions::new(out.to_path_buf(), Device::flex())
    }
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn small_model() -> googlenet::model::GoogLeNet {
    googlenet::model::GoogLeNetConfig::new(Variant::Torchvision)
        .with_num_classes(4)
        .with_input_size(32)
        .init(&Device::flex())
        .unwrap()
}

/// Every tensor of a weight file, by name.
fn weights_of(path: &Path) -> Vec<(String, Vec<f32>)> {
    let model = googlenet::weights::load(small_model(), path).expect("weights load");
    tensors(&model)
}

/// Every tensor of a checkpoint's burnpack file (whose parameter ids differ between runs).
fn checkpoint_weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    use burn::store::{BurnpackStore, ModuleSnapshot};
    let mut model = small_model();
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    model.load_from(&mut store).expect("checkpoint loads");
    tensors(&model)
}

fn tensors(model: &googlenet::model::GoogLeNet) -> Vec<(String, Vec<f32>)> {
    let map = googlenet::weights::model_tensors::collect(model);
    let mut all: Vec<(String, Vec<f32>)> = map
        .iter()
        .map(|(k, t)| (k.clone(), t.values().unwrap().to_vec()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// metrics.csv without the timing columns (images/s and seconds).
fn metrics_without_timing(out: &Path) -> Vec<String> {
    String::from_utf8(bytes(&out.join("metrics.csv")))
        .unwrap()
        .lines()
        .map(|l| l.rsplitn(3, ',').nth(2).unwrap().to_string())
        .collect()
}

#[test]
fn interrupted_and_resumed_run_equals_uninterrupted_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = config();

    let straight = fresh_dir("straight");
    let never = Arc::new(AtomicBool::new(false));
    let outcome = train(
        &config,
        &Hooked::new(),
        &options(&straight, false, never.clone()),
    )
    .unwrap();
    assert!(
        matches!(outcome, Outcome::Finished { epochs: 2, .. }),
        "{outcome:?}"
    );

    // Stop during the second batch of the second epoch (the 5th training batch fetched).
    let resumed = fresh_dir("resumed");
    let stop = Arc::new(AtomicBool::new(false));
    let mut first = Hooked::new();
    first.stop_at = Some((4, stop.clone()));
    let outcome = train(&config, &first, &options(&resumed, false, stop)).unwrap();
    let Outcome::Interrupted {
        checkpoint,
        epoch,
        batch,
        step,
    } = outcome
    else {
        panic!("expected an interruption, got {outcome:?}")
    };
    assert_eq!((epoch, batch, step), (2, 2, 5));
    assert!(
        checkpoint.ends_with("step-000000005"),
        "{}",
        checkpoint.display()
    );
    let second = Hooked::new();
    let outcome = train(&config, &second, &options(&resumed, true, never)).unwrap();
    assert!(
        matches!(outcome, Outcome::Finished { epochs: 2, .. }),
        "{outcome:?}"
    );
    // The resumed run fetched only the last batch of epoch 2.
    assert_eq!(second.fetched.load(Ordering::SeqCst), 1);

    // The raw weights (with BatchNorm statistics) and the Polyak average, bit for bit.
    let last = |out: &Path| Checkpoints::new(out).latest().unwrap().unwrap();
    assert_eq!(
        last(&straight).file_name(),
        last(&resumed).file_name(),
        "both end at step 6"
    );
    for file in ["model.bpk", "polyak.bpk"] {
        let (a, b) = (
            checkpoint_weights(&last(&straight).join(file)),
            checkpoint_weights(&last(&resumed).join(file)),
        );
        assert_eq!(a.len(), b.len());
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(x == y, "{file}: {name} differs after resuming");
        }
    }
    let (a, b) = (
        weights_of(&straight.join("model.safetensors")),
        weights_of(&resumed.join("model.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs after resuming");
    }
    // Training moved the weights: the comparison is not between two untouched models.
    let initial = fresh_dir("initial");
    let mut untouched = config.clone();
    untouched.epochs = 1;
    let stop_now = Arc::new(AtomicBool::new(true));
    train(
        &untouched,
        &Hooked::new(),
        &options(&initial, false, stop_now),
    )
    .unwrap();
    assert!(
        checkpoint_weights(&last(&initial).join("model.bpk"))
            != checkpoint_weights(&last(&straight).join("model.bpk"))
    );
    assert_eq!(
        metrics_without_timing(&straight),
        metrics_without_timing(&resumed)
    );
    for dir in [straight, resumed, initial] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = fresh_dir("nan");
    let mut data = Hooked::new();
    data.nan_at = Some(4);
    let err = train(
        &config(),
        &data,
        &options(&out, false, Arc::new(AtomicBool::new(false))),
    )
    .expect_err("a NaN loss is an error");
    let message = err.to_string();
    assert!(
        matches!(
            err,
            TrainError::NonFinite {
                step: 5,
                epoch: 2,
                batch: 2,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("step 5"), "{message}");
    assert!(message.contains("step-000000003"), "{message}");
    let kept = Checkpoints::new(&out).list().unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].ends_with("step-000000003"));
    let state: serde_json::Value =
        serde_json::from_slice(&bytes(&kept[0].join("state.json"))).unwrap();
    assert_eq!(state["step"], 3);
    // The kept checkpoint resumes at step 4, here into the same poisoned batch at step 5.
    let mut again = Hooked::new();
    again.nan_at = Some(1);
    let err = train(
        &config(),
        &again,
        &options(&out, true, Arc::new(AtomicBool::new(false))),
    )
    .expect_err("same data, same NaN");
    assert!(err.to_string().contains("step 5"), "{err}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn unwritable_output_fails_before_training() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = fresh_dir("unwritable");
    std::fs::create_dir_all(&base).unwrap();
    let file = base.join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let out = file.join("run");
    let data = Hooked::new();
    let err = train(
        &config(),
        &data,
        &options(&out, false, Arc::new(AtomicBool::new(false))),
    )
    .expect_err("a folder inside a file cannot be created");
    assert!(matches!(err, TrainError::Output(_)), "{err}");
    assert!(err.to_string().contains("a-file/run"), "{err}");
    assert_eq!(
        data.fetched.load(Ordering::SeqCst),
        0,
        "no batch was loaded"
    );
    let _ = std::fs::remove_dir_all(base);
}

#[test]
fn a_second_run_into_the_same_folder_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = fresh_dir("twice");
    let stop = Arc::new(AtomicBool::new(true));
    train(
        &config(),
        &Hooked::new(),
        &options(&out, false, stop.clone()),
    )
    .unwrap();
    let err = train(&config(), &Hooked::new(), &options(&out, false, stop))
        .expect_err("the first run's checkpoints are not overwritten");
    assert!(matches!(err, TrainError::AlreadyARun(_)), "{err}");
    assert!(err.to_string().contains("--resume"), "{err}");
    let _ = std::fs::remove_dir_all(out);
}

/// `optimizer.bpk` rewritten with `change` applied to its tensors (name, dtype, shape, parameter
/// id, bytes) and its rank entries, the rest as it was.
fn forge_optimizer_state(
    path: &Path,
    change: impl Fn(
        &mut Vec<burn::store::burn_pack::Tensor>,
        &mut Vec<(String, burn::store::burn_pack::Scalar)>,
    ),
) {
    use burn::store::burn_pack::{Reader, Writer};
    let reader = Reader::from_file(path).unwrap();
    let mut scalars: Vec<_> = reader.scalars().clone().into_iter().collect();
    let metadata = reader.metadata().clone();
    let mut tensors = reader.into_tensors().unwrap();
    // The file's bytes are read before it is rewritten.
    tensors = tensors
        .into_iter()
        .map(|t| {
            let (name, dtype, shape, id, bytes) = t.into_parts().unwrap();
            let bytes = burn::store::burn_pack::Bytes::from_bytes_vec(bytes.to_vec());
            burn::store::burn_pack::Tensor::new(name, dtype, shape, id, bytes)
        })
        .collect();
    change(&mut tensors, &mut scalars);
    let mut writer = Writer::new(tensors);
    for (key, value) in &scalars {
        writer = writer.with_scalar(key, *value);
    }
    for (key, value) in &metadata {
        writer = writer.with_metadata(key, value);
    }
    std::fs::remove_file(path).unwrap();
    writer.write_to_file(path).unwrap();
}

#[test]
fn a_damaged_or_foreign_optimizer_state_is_refused_naming_the_file() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = fresh_dir("damaged-optimizer");
    let stop = Arc::new(AtomicBool::new(false));
    let mut first = Hooked::new();
    first.stop_at = Some((1, stop.clone()));
    let outcome = train(&config(), &first, &options(&out, false, stop)).unwrap();
    let Outcome::Interrupted { checkpoint, .. } = outcome else {
        panic!("expected an interruption, got {outcome:?}")
    };
    let path = checkpoint.join("optimizer.bpk");
    let good = bytes(&path);
    let model = bytes(&checkpoint.join("model.bpk"));
    let resume = || {
        train(
            &config(),
            &Hooked::new(),
            &options(&out, true, Arc::new(AtomicBool::new(false))),
        )
    };

    let truncated = good.len() / 2;
    std::fs::write(&path, &good[..truncated]).unwrap();
    let err = resume().expect_err("a truncated optimizer.bpk");
    assert!(matches!(err, TrainError::Resume(_)), "{err}");
    assert!(err.to_string().contains("optimizer.bpk"), "{err}");

    std::fs::write(&path, &good).unwrap();
    forge_optimizer_state(&path, |tensors, _| {
        // A convolution's or the classifier's velocity (parameter ids, and so the order, differ
        // between runs), flattened.
        let i = tensors
            .iter()
            .position(|t| t.shape.as_slice().len() > 1)
            .expect("a velocity of rank 2 or more");
        let t = tensors.remove(i);
        let n: usize = t.shape.as_slice().iter().product();
        let (name, dtype, _, id, bytes) = t.into_parts().unwrap();
        tensors.insert(
            i,
            burn::store::burn_pack::Tensor::new(name, dtype, [n], id, bytes),
        );
    });
    let err = resume().expect_err("a momentum buffer of another shape");
    let message = err.to_string();
    assert!(message.contains("optimizer.bpk"), "{message}");
    assert!(message.contains("but its parameter is F32"), "{message}");

    std::fs::write(&path, &good).unwrap();
    forge_optimizer_state(&path, |_, scalars| {
        let (_, rank) = scalars
            .iter_mut()
            .find(|(key, _)| key.ends_with(".__rank"))
            .expect("a rank entry");
        // No parameter of GoogLeNet has rank 3.
        *rank = burn::store::burn_pack::Scalar::from(3usize);
    });
    let err = resume().expect_err("a rank that is not the parameter's");
    let message = err.to_string();
    assert!(message.contains("optimizer.bpk"), "{message}");
    assert!(message.contains("recorded with rank 3"), "{message}");

    std::fs::write(&path, &good).unwrap();
    forge_optimizer_state(&path, |tensors, _| {
        let t = tensors.remove(0);
        let (name, dtype, shape, _, bytes) = t.into_parts().unwrap();
        tensors.insert(
            0,
            burn::store::burn_pack::Tensor::new(name, dtype, shape, Some(u64::MAX), bytes),
        );
    });
    let err = resume().expect_err("state for a parameter this model lacks");
    assert!(
        err.to_string().contains("which this model does not have"),
        "{err}"
    );

    assert_eq!(
        bytes(&checkpoint.join("model.bpk")),
        model,
        "the checkpoint is kept"
    );
    std::fs::write(&path, &good).unwrap();
    let outcome = resume().expect("the undamaged checkpoint resumes");
    assert!(
        matches!(outcome, Outcome::Finished { epochs: 2, .. }),
        "{outcome:?}"
    );
    let _ = std::fs::remove_dir_all(out);
}

fn file_names(paths: &[std::path::PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect()
}

#[test]
fn checkpoints_within_an_epoch_resume_exactly() {
    use googlenet::train::checkpoint_schedule::CheckpointEvery;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = config();
    let never = Arc::new(AtomicBool::new(false));
    let straight = fresh_dir("straight-within");
    train(
        &config,
        &Hooked::new(),
        &options(&straight, false, never.clone()),
    )
    .unwrap();

    // Every 2 steps: after steps 2 and 5 within the epochs, besides 3 and 6 at their ends.
    let every = fresh_dir("every-2-steps");
    let mut two_steps = options(&every, false, never.clone());
    two_steps.checkpoint_every = CheckpointEvery::Steps(2);
    train(&config, &Hooked::new(), &two_steps).unwrap();
    let written = Checkpoints::new(&every).list().unwrap();
    assert_eq!(
        file_names(&written),
        [
            "step-000000002",
            "step-000000003",
            "step-000000005",
            "step-000000006"
        ]
    );
    let state: serde_json::Value =
        serde_json::from_slice(&bytes(&written[2].join("state.json"))).unwrap();
    assert_eq!((&state["epoch"], &state["batch"]), (&1.into(), &2.into()));

    // A crash after step 5: the folder as it was then (config, the step-5 checkpoint, and a
    // metrics.csv whose second row was cut off), resumed.
    let crashed = fresh_dir("crashed-within");
    std::fs::create_dir_all(crashed.join("checkpoints/step-000000005")).unwrap();
    std::fs::copy(every.join("config.json"), crashed.join("config.json")).unwrap();
    for entry in std::fs::read_dir(&written[2]).unwrap() {
        let path = entry.unwrap().path();
        let to = crashed
            .join("checkpoints/step-000000005")
            .join(path.file_name().unwrap());
        std::fs::copy(&path, to).unwrap();
    }
    let csv = String::from_utf8(bytes(&straight.join("metrics.csv"))).unwrap();
    let torn = &csv[..csv.trim_end().rfind('\n').unwrap() + 12];
    std::fs::write(crashed.join("metrics.csv"), torn).unwrap();
    let second = Hooked::new();
    let outcome = train(&config, &second, &options(&crashed, true, never)).unwrap();
    assert!(
        matches!(outcome, Outcome::Finished { epochs: 2, .. }),
        "{outcome:?}"
    );
    assert_eq!(
        second.fetched.load(Ordering::SeqCst),
        1,
        "only the third batch of epoch 2 is left"
    );

    let last = |out: &Path| Checkpoints::new(out).latest().unwrap().unwrap();
    for out in [&every, &crashed] {
        for file in ["model.bpk", "polyak.bpk"] {
            let (a, b) = (
                checkpoint_weights(&last(&straight).join(file)),
                checkpoint_weights(&last(out).join(file)),
            );
            assert_eq!(a.len(), b.len());
            for ((name, x), (_, y)) in a.iter().zip(&b) {
                assert!(x == y, "{}: {file}: {name} differs", out.display());
            }
        }
        assert_eq!(
            metrics_without_timing(&straight),
            metrics_without_timing(out)
        );
    }
    for dir in [straight, every, crashed] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Unmounts the tmpfs a test mounted, when the test ends.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_full_disk_fails_the_checkpoint_naming_the_file_and_keeps_the_previous_one() {
    use googlenet::train::checkpoint_schedule::CheckpointEvery;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mount = fresh_dir("tmpfs");
    std::fs::create_dir_all(&mount).unwrap();
    // A checkpoint of this model is about 120 MB (weights, momentum, Polyak average; the start
    // asks for 160 MB free): the first fits, the second does not.
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=200m", "tmpfs"])
        .arg(&mount)
        .output();
    let _unmount = match mounted {
        Ok(output) if output.status.success() => Mounted(mount.clone()),
        other => {
            println!(
                "skipped: cannot mount a tmpfs at {} (root or CAP_SYS_ADMIN needed): {other:?}",
                mount.display()
            );
            let _ = std::fs::remove_dir_all(&mount);
            return;
        }
    };
    let out = mount.join("run");
    let mut every_step = options(&out, false, Arc::new(AtomicBool::new(false)));
    every_step.checkpoint_every = CheckpointEvery::Steps(1);
    let err = train(&config(), &Hooked::new(), &every_step).expect_err("the disk fills up");
    let message = err.to_string();
    println!("the full disk's error: {message}");
    assert!(matches!(err, TrainError::Checkpoint { .. }), "{message}");
    assert!(message.contains("step-000000002"), "{message}");
    assert!(
        message.contains("No space left on device") || message.contains("StorageFull"),
        "{message}"
    );
    assert!(
        message.contains("the previous checkpoint") && message.contains("step-000000001 is intact"),
        "{message}"
    );
    // The earlier checkpoint is whole and loads; the failed one left nothing behind.
    let kept = Checkpoints::new(&out).list().unwrap();
    assert_eq!(file_names(&kept), ["step-000000001"]);
    let names: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["step-000000001"], "no partial checkpoint remains");
    let state: serde_json::Value =
        serde_json::from_slice(&bytes(&kept[0].join("state.json"))).unwrap();
    assert_eq!(state["step"], 1);
    let weights = checkpoint_weights(&kept[0].join("model.bpk"));
    assert!(weights.iter().all(|(_, v)| v.iter().all(|x| x.is_finite())));
}

#[test]
fn checkpoint_intervals_parse_as_durations_step_counts_or_epoch() {
    use googlenet::train::checkpoint_schedule::CheckpointEvery;
    use std::time::Duration;
    let parsed = |text: &str| text.parse::<CheckpointEvery>();
    assert_eq!(
        CheckpointEvery::default(),
        CheckpointEvery::Time(Duration::from_secs(1800))
    );
    assert_eq!(parsed("30m"), Ok(CheckpointEvery::default()));
    assert_eq!(
        parsed("1h30m"),
        Ok(CheckpointEvery::Time(Duration::from_secs(5400)))
    );
    assert_eq!(
        parsed("90s"),
        Ok(CheckpointEvery::Time(Duration::from_secs(90)))
    );
    assert_eq!(parsed("500steps"), Ok(CheckpointEvery::Steps(500)));
    assert_eq!(parsed("1step"), Ok(CheckpointEvery::Steps(1)));
    assert_eq!(parsed("epoch"), Ok(CheckpointEvery::EpochEnd));
    for bad in [
        "",
        "0steps",
        "0m",
        "5x",
        "m",
        "30",
        "-5m",
        "99999999999999999999h",
    ] {
        let err = parsed(bad).unwrap_err();
        assert!(err.contains("is not a checkpoint interval"), "{bad}: {err}");
    }
}

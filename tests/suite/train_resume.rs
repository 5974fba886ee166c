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

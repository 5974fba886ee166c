//! `kill -9` of a real `googlenet train` at chosen and at random moments (during a step, during a
//! checkpoint write, right after metrics.csv is appended while curves.png and the weights are
//! written), then `--resume`: the newest complete checkpoint loads, the run finishes, and
//! metrics.csv has one whole row per epoch, equal to an uninterrupted run's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BIN: &str = env!("CARGO_BIN_EXE_googlenet");

/// The embedded shapes at 32 px: 20 batches of 16 per epoch, 2 epochs, a checkpoint every 15
/// steps (so some fall mid-epoch), the last 2 kept.
fn start(out: &Path) -> Child {
    Command::new(BIN)
        .args(["train", "--variant", "torchvision", "--input-size", "32"])
        .args([
            "--batch",
            "16",
            "--epochs",
            "2",
            "--keep-last",
            "2",
            "--quiet",
        ])
        .args(["--checkpoint-every", "15steps", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("googlenet runs")
}

fn resume(out: &Path) {
    let output = Command::new(BIN)
        .args([
            "train",
            "--quiet",
            "--checkpoint-every",
            "7steps",
            "--resume",
        ])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}: resume failed: {}{}",
        out.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// metrics.csv without the timing columns (images/s and seconds), which differ between runs.
fn metrics(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplitn(3, ',').nth(2).unwrap_or(l).to_string())
        .collect()
}

fn kill(child: &mut Child) {
    // SAFETY: SIGKILL to the child this test started (still ours: it has not been waited for).
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

/// Polls until `moment` is true or the child exits; kills it at once then. Whether it was
/// caught at that moment (rather than after finishing).
fn kill_when(child: &mut Child, moment: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if moment() {
            kill(child);
            return true;
        }
        if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(300) {
            kill(child);
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn temporary_checkpoint(out: &Path) -> bool {
    std::fs::read_dir(out.join("checkpoints")).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
    })
}

fn rows(out: &Path) -> usize {
    std::fs::read_to_string(out.join("metrics.csv")).map_or(0, |t| t.lines().count())
}

/// Where a run is killed.
enum Moment {
    /// As soon as a temporary checkpoint folder appears.
    CheckpointWrite,
    /// As soon as metrics.csv has this many lines (header and rows): curves.png and the weights
    /// are being written.
    MetricsRows(usize),
    /// This long after config.json appears (written right before the first step; a run killed
    /// before it has nothing to resume and is simply started again).
    After(Duration),
}

#[cfg(unix)]
#[test]
fn kill_9_at_any_moment_then_resume_equals_an_uninterrupted_run() {
    let base = crate::common::fresh_dir("kill9");
    let mut moments = vec![
        (
            "during a checkpoint write".to_string(),
            Moment::CheckpointWrite,
        ),
        ("after epoch 1's row".to_string(), Moment::MetricsRows(2)),
        (
            "after the last epoch's row".to_string(),
            Moment::MetricsRows(3),
        ),
    ];
    // Random moments from fixed seeds, from the first step to the second epoch.
    for seed in [1u64, 2, 3] {
        let delay = ChaCha8Rng::seed_from_u64(seed).random_range(0..15_000);
        moments.push((
            format!("{delay} ms in (seed {seed})"),
            Moment::After(Duration::from_millis(delay)),
        ));
    }
    // All runs at once (they mostly wait for the disk): the uninterrupted one, and each killed
    // one killed and then resumed.
    let straight = base.join("straight");
    let results: Vec<(String, PathBuf, bool)> = std::thread::scope(|scope| {
        let uninterrupted = scope.spawn(|| {
            let status = start(&straight).wait().unwrap();
            assert!(status.success());
        });
        let killed: Vec<_> = moments
            .iter()
            .enumerate()
            .map(|(i, (name, moment))| {
                let out = base.join(format!("killed-{i}"));
                scope.spawn(move || {
                    let mut child = start(&out);
                    let configured = std::cell::Cell::new(None::<Instant>);
                    let caught = kill_when(&mut child, || match moment {
                        Moment::CheckpointWrite => temporary_checkpoint(&out),
                        Moment::MetricsRows(n) => rows(&out) >= *n,
                        Moment::After(delay) => match configured.get() {
                            Some(at) => at.elapsed() >= *delay,
                            None => {
                                if out.join("config.json").exists() {
                                    configured.set(Some(Instant::now()));
                                }
                                false
                            }
                        },
                    });
                    if caught {
                        resume(&out);
                    }
                    (name.clone(), out, caught)
                })
            })
            .collect();
        uninterrupted.join().unwrap();
        killed.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let want = metrics(&straight);
    assert_eq!(want.len(), 3, "header and 2 epochs: {want:?}");
    let tensors = |out: &Path| {
        googlenet::weights::safetensors_file::read(&out.join("model.safetensors"))
            .unwrap()
            .0
    };
    let weights = tensors(&straight);
    for (moment, out, caught) in &results {
        assert!(caught, "{moment}: the run ended before the kill");
        assert_eq!(&metrics(out), &want, "{moment}: metrics.csv after resuming");
        assert!(
            tensors(out) == weights,
            "{moment}: model.safetensors differs from the uninterrupted run's"
        );
        assert!(out.join("curves.png").is_file(), "{moment}");
        assert!(
            !temporary_checkpoint(out),
            "{moment}: temporary folders were cleared"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

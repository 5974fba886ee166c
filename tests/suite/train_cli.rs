//! `googlenet train` as a user runs it: Ctrl-C finishes the step, writes a checkpoint, exits 0 and
//! says how to resume; `--resume` then finishes the run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_googlenet");

fn wait_for(path: &Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < limit, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_checkpoints_exits_0_and_resume_finishes() {
    let out = std::env::temp_dir().join(format!("googlenet-ctrlc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    // The embedded shapes at 32 px: 40 batches of 8 per epoch.
    let args = [
        "train",
        "--variant",
        "torchvision",
        "--input-size",
        "32",
        "--batch",
        "8",
        "--epochs",
        "2",
        "--quiet",
        "--out",
    ];
    let child = Command::new(BIN)
        .args(args)
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("googlenet runs");
    // config.json is written after the Ctrl-C handler is installed, right before the first step.
    wait_for(&out.join("config.json"), Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: sending SIGINT to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stderr.contains("Ctrl-C: stopping after the current step"),
        "{stderr}"
    );
    let resume_line = format!("resume with: googlenet train --resume {}", out.display());
    assert!(stdout.contains(&resume_line), "{stdout}");
    assert!(stdout.contains("stopped at epoch"), "{stdout}");
    let checkpoints: Vec<_> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("step-"))
        .collect();
    assert!(!checkpoints.is_empty(), "a checkpoint was written");

    let output = Command::new(BIN)
        .args(["train", "--quiet", "--resume"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("finished 2 epochs"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        3,
        "header and one row per epoch:\n{csv}"
    );
    assert!(out.join("model.safetensors").is_file() && out.join("curves.png").is_file());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn resume_refuses_hyperparameter_changes() {
    let output = Command::new(BIN)
        .args(["train", "--resume", "/nonexistent-run", "--lr", "0.1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("drop --lr"), "{stderr}");
}

/// `--allreduce nccl` in a build without NCCL says which features to build with, before it
/// touches data or devices.
#[test]
fn allreduce_nccl_without_the_feature_names_the_features_to_build() {
    let output = Command::new(BIN)
        .args(["train", "--allreduce", "nccl", "--max-steps", "1", "--out"])
        .arg(std::env::temp_dir().join("googlenet-no-nccl"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("built without NCCL") && stderr.contains("--features cuda,mpi,nccl"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!std::env::temp_dir().join("googlenet-no-nccl").exists());
}

/// `--bucket-mb` takes megabytes, 0 or more; anything else is refused by name.
#[test]
fn a_bucket_size_that_is_not_megabytes_is_refused() {
    for bad in ["-1", "NaN", "inf", "four"] {
        let output = Command::new(BIN)
            .args(["train", "--max-steps", "1", &format!("--bucket-mb={bad}")])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "--bucket-mb {bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("`{bad}` is not a bucket size"))
                && stderr.contains("0 or more"),
            "--bucket-mb {bad}: {stderr}"
        );
    }
}

/// `train` picks the fast CPU path where it applies, says which engine ran in `--json`, takes
/// `--engine burn` everywhere, and refuses `--engine fast` where it does not apply, saying why.
#[test]
fn the_engine_is_fast_where_it_applies_and_burn_on_request() {
    let out = std::env::temp_dir().join(format!("googlenet-engine-{}", std::process::id()));
    let run = |extra: &[&str]| {
        let _ = std::fs::remove_dir_all(&out);
        Command::new(BIN)
            .args(["train", "--batch", "4", "--max-steps", "2"])
            .args(extra)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    for (extra, engine) in [
        (
            &["--variant", "torchvision", "--input-size", "32", "--json"][..],
            "fast",
        ),
        (
            &[
                "--variant",
                "torchvision",
                "--input-size",
                "32",
                "--engine",
                "burn",
                "--json",
            ][..],
            "burn",
        ),
        (
            &["--variant", "paper", "--input-size", "80", "--json"][..],
            "fast",
        ),
        (
            // The seed's 7x7 'valid' average pool needs 224 px.
            &["--variant", "keras-seed", "--input-size", "224", "--json"][..],
            "burn",
        ),
        (
            &[
                "--variant",
                "torchvision",
                "--input-size",
                "32",
                "--precision",
                "bf16",
                "--json",
            ][..],
            "fast",
        ),
        (
            &[
                "--variant",
                "torchvision",
                "--input-size",
                "32",
                "--precision",
                "f16",
                "--json",
            ][..],
            "burn",
        ),
    ] {
        let output = run(extra);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{extra:?}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: serde_json::Value =
            serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
        assert_eq!(summary["engine"], engine, "{extra:?}: {summary}");
        assert_eq!(summary["steps"], 2, "{summary}");
        let losses = summary["losses"].as_array().unwrap();
        assert!(
            losses.iter().all(|l| l.as_f64().unwrap().is_finite()),
            "{summary}"
        );
    }
    let output = run(&[
        "--variant",
        "keras-seed",
        "--input-size",
        "224",
        "--engine",
        "fast",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--engine fast does not apply")
            && stderr.contains("paper and torchvision variants")
            && stderr.contains("--engine burn"),
        "{stderr}"
    );
    let output = run(&[
        "--variant",
        "torchvision",
        "--input-size",
        "32",
        "--engine",
        "fast",
        "--precision",
        "f16",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--engine fast does not apply: it runs in f32 or bf16, not f16"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

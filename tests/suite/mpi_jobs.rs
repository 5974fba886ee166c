//! Training jobs on MPI: `googlenet` built with `--features mpi`, started by `mpirun -np 2` on
//! loopback. Ignored by a plain `cargo test` (they need Open MPI and that build);
//! scripts/mpi_checks.sh builds it, names it in GOOGLENET_MPI_BIN and runs them with
//! `--ignored`.
//!
//! The reference runs are this crate's `googlenet` of the default build (no MPI), or for
//! BatchNorm its local data parallelism over two CPU replicas, which normalises over the same
//! two shares of each batch as two ranks do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use googlenet::train::TrainConfig;
use googlenet::train::checkpoint::Checkpoints;
use googlenet::train::trainer::{build_model, optimizer};
use serde_json::Value;

use crate::common::fresh_dir;

const BIN: &str = env!("CARGO_BIN_EXE_googlenet");
/// How long a job may take to end after one of its ranks was killed.
const KILL_BOUND: Duration = Duration::from_secs(30);

fn mpi_bin() -> PathBuf {
    let path = std::env::var_os("GOOGLENET_MPI_BIN").map(PathBuf::from).expect(
        "GOOGLENET_MPI_BIN must name a googlenet built with --features mpi (scripts/mpi_checks.sh \
         sets it)",
    );
    assert!(
        path.is_file(),
        "GOOGLENET_MPI_BIN={} is not a file",
        path.display()
    );
    path
}

/// `mpirun` on this machine only: shared memory between the ranks, loopback for the launcher.
fn mpirun() -> Command {
    let mut command = Command::new("mpirun");
    command.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "--bind-to",
        "none",
        "--mca",
        "btl",
        "self,vader",
        "--mca",
        "oob_tcp_if_include",
        "lo",
    ]);
    command
}

/// The paper's variant (no BatchNorm) on the embedded shapes at 80 px, dropout off.
fn paper_args(out: &Path) -> Vec<String> {
    let args = [
        "train",
        "--variant",
        "paper",
        "--input-size",
        "80",
        "--batch",
        "16",
        "--no-dropout",
        "--seed",
        "3",
        "--json",
        "--out",
    ];
    with_out(&args, out)
}

/// `args` as owned strings, followed by `out`.
fn with_out(args: &[&str], out: &Path) -> Vec<String> {
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(out.display().to_string());
    args
}

fn with(mut args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

/// `args` with dropout on (the variant's 40% and 70%).
fn with_dropout(args: Vec<String>) -> Vec<String> {
    args.into_iter().filter(|a| a != "--no-dropout").collect()
}

fn run(mut command: Command) -> Output {
    let output = command.output().expect("starting the command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `args` on 2 ranks; returns rank 0's JSON summary.
fn two_ranks(args: &[String]) -> Value {
    let mut command = mpirun();
    command.arg("-np").arg("2").arg(mpi_bin()).args(args);
    summary(&run(command))
}

/// Runs `args` in one process of `bin`; returns its JSON summary.
fn alone(bin: &Path, args: &[String]) -> Value {
    let mut command = Command::new(bin);
    command.args(args);
    summary(&run(command))
}

fn summary(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary in {stdout}"));
    serde_json::from_str(line).expect("a JSON summary")
}

fn losses(summary: &Value) -> Vec<f64> {
    summary["losses"]
        .as_array()
        .expect("losses")
        .iter()
        .map(|v| v.as_f64().expect("a loss"))
        .collect()
}

/// Every float tensor (weights and running statistics) of the checkpoint after `step` steps in
/// `out`, in the model's order, with whether gradients train it.
fn checkpoint_tensors(out: &Path, step: u64) -> Vec<(bool, Vec<f32>)> {
    let config = TrainConfig::load(&out.join("config.json")).expect("config.json");
    let device = Device::flex().autodiff();
    let model = build_model(&config, &device).expect("model");
    let dir = Checkpoints::new(out).dir().join(Checkpoints::name(step));
    let loaded = Checkpoints::load(&dir, model, optimizer(&config), None)
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()));
    tensors(&loaded.model)
}

fn tensors(model: &googlenet::model::GoogLeNet) -> Vec<(bool, Vec<f32>)> {
    struct Collect(Vec<(bool, Vec<f32>)>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param.val().into_data().convert::<f32>();
            self.0.push((
                param.is_require_grad(),
                values.as_slice::<f32>().expect("f32").to_vec(),
            ));
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// The largest difference between the tensors of `a` and `reference` that are (or are not)
/// `trained`, relative to the largest magnitude among those of `reference`, with where it is.
///
/// Relative to the network's scale, not each tensor's: a bias that starts at zero ends two steps
/// later at about 1e-3, where the order of floating-point sums alone (one process on 1 thread
/// against 2) moves it by 0.2% of itself, while every weight stays within 1e-5 of the
/// network's scale.
fn max_relative(
    a: &[(bool, Vec<f32>)],
    reference: &[(bool, Vec<f32>)],
    trained: bool,
) -> (f64, String) {
    assert_eq!(a.len(), reference.len());
    let chosen = || {
        a.iter()
            .zip(reference)
            .enumerate()
            .filter(move |(_, (x, _))| x.0 == trained)
    };
    let scale = chosen()
        .flat_map(|(_, (_, y))| y.1.iter())
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    let (diff, at) = chosen()
        .map(|(i, (x, y))| {
            assert_eq!(x.1.len(), y.1.len());
            let d =
                x.1.iter()
                    .zip(&y.1)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0.0f32, f32::max);
            (d, i)
        })
        .fold((0.0f32, 0), |m, d| if d.0 > m.0 { d } else { m });
    (
        (diff / scale) as f64,
        format!("tensor {at}: {diff:e} against the largest |value| {scale:e}"),
    )
}

fn assert_losses_close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            ((x - y) / y).abs() <= 1e-5,
            "{what}: losses {a:?} vs {b:?} differ by more than 1e-5 relative"
        );
    }
}

/// The largest change of a trained tensor from the run's initial weights (the variant's
/// initialisation from the run's seed, as the trainer draws it).
fn moved_from_start(out: &Path, after: &[(bool, Vec<f32>)]) -> f32 {
    let config = TrainConfig::load(&out.join("config.json")).expect("config.json");
    let device = Device::flex().autodiff();
    device.seed(config.seed);
    let start = config
        .init
        .apply(build_model(&config, &device).expect("model"));
    tensors(&start)
        .iter()
        .zip(after)
        .filter(|(s, _)| s.0)
        .map(|(s, a)| {
            s.1.iter()
                .zip(&a.1)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max)
        })
        .fold(0.0, f32::max)
}

#[test]
#[ignore = "needs Open MPI and GOOGLENET_MPI_BIN: scripts/mpi_checks.sh"]
fn paper_variant_with_dropout_on_two_ranks_matches_one_process_with_the_same_global_batch() {
    // Each image draws its dropout masks by its position in the global batch, so the two
    // ranks together drop what one process drops.
    let (a, b) = (fresh_dir("mpi-paper-2"), fresh_dir("mpi-paper-1"));
    let job = two_ranks(&with(with_dropout(paper_args(&a)), &["--max-steps", "2"]));
    let reference = alone(
        Path::new(BIN),
        &with(with_dropout(paper_args(&b)), &["--max-steps", "2"]),
    );
    assert_eq!(job["world_size"], 2);
    assert_eq!(reference["world_size"], 1);
    assert_eq!(job["allreduce_seconds"].as_array().map(Vec::len), Some(2));
    assert_losses_close(&losses(&job), &losses(&reference), "paper, 2 ranks vs 1");
    let (wa, wb) = (checkpoint_tensors(&a, 2), checkpoint_tensors(&b, 2));
    let (diff, worst) = max_relative(&wa, &wb, true);
    assert!(
        diff <= 1e-5,
        "weights after 2 steps differ by {diff:e} relative at {worst}"
    );
    let moved = moved_from_start(&b, &wb);
    assert!(moved > 1e-3, "the weights moved only {moved:e} in 2 steps");
}

#[test]
#[ignore = "needs Open MPI and GOOGLENET_MPI_BIN: scripts/mpi_checks.sh"]
fn gradient_buckets_during_the_backward_pass_sum_exactly_what_one_all_reduce_sums() {
    // Buckets of 0.5 MB (about 30 of them for the paper variant's 13.4 M gradients) go to the
    // communication thread while the backward pass goes on; --bucket-mb 0 sums everything in
    // one all-reduce after it. Each value is the same sum of the same two values either way.
    let (a, b) = (fresh_dir("mpi-buckets"), fresh_dir("mpi-one-allreduce"));
    let bucketed = two_ranks(&with(
        paper_args(&a),
        &["--max-steps", "2", "--bucket-mb", "0.5"],
    ));
    let whole = two_ranks(&with(
        paper_args(&b),
        &["--max-steps", "2", "--bucket-mb", "0"],
    ));
    assert_eq!(losses(&bucketed), losses(&whole));
    for job in [&bucketed, &whole] {
        let busy = job["allreduce_busy_seconds"]
            .as_array()
            .expect("busy seconds");
        assert_eq!(busy.len(), 2);
        assert!(busy.iter().all(|s| s.as_f64().unwrap() > 0.0), "{busy:?}");
    }
    let (wa, wb) = (checkpoint_tensors(&a, 2), checkpoint_tensors(&b, 2));
    assert!(wa == wb, "bucketed sums differ from one all-reduce's");
    assert!(moved_from_start(&b, &wb) > 1e-3);
}

#[test]
#[ignore = "needs Open MPI and GOOGLENET_MPI_BIN: scripts/mpi_checks.sh"]
fn torchvision_variant_on_two_ranks_matches_two_local_replicas() {
    let args = |out: &Path| {
        let args = [
            "train",
            "--variant",
            "torchvision",
            "--input-size",
            "32",
            "--batch",
            "16",
            "--no-dropout",
            "--engine",
            "burn",
            "--max-steps",
            "2",
            "--json",
            "--out",
        ];
        with_out(&args, out)
    };
    let (a, b) = (fresh_dir("mpi-tv-2"), fresh_dir("mpi-tv-local"));
    let job = two_ranks(&args(&a));
    let reference = alone(Path::new(BIN), &with(args(&b), &["--devices", "cpu,cpu"]));
    assert_losses_close(
        &losses(&job),
        &losses(&reference),
        "torchvision, 2 ranks vs 2 replicas",
    );
    let (wa, wb) = (checkpoint_tensors(&a, 2), checkpoint_tensors(&b, 2));
    let (diff, worst) = max_relative(&wa, &wb, true);
    assert!(
        diff <= 1e-5,
        "weights after 2 steps differ by {diff:e} relative at {worst}"
    );
    let (stats, worst) = max_relative(&wa, &wb, false);
    assert!(
        stats <= 1e-5,
        "running statistics differ by {stats:e} relative at {worst}"
    );
    assert!(moved_from_start(&b, &wb) > 1e-3);
}

#[test]
#[ignore = "needs Open MPI and GOOGLENET_MPI_BIN: scripts/mpi_checks.sh"]
fn only_rank_0_writes_and_the_ranks_hold_identical_weights() {
    // Rank 1 is given its own --out: it must stay absent. Each checkpoint compares a hash of
    // every rank's weights and statistics, and the run fails if they differ.
    let (a, b) = (fresh_dir("mpi-writer-0"), fresh_dir("mpi-writer-1"));
    std::fs::remove_dir_all(&b).ok();
    let mut command = mpirun();
    command
        .args(["-np", "1"])
        .arg(mpi_bin())
        .args(with(paper_args(&a), &["--max-steps", "3"]))
        .args([":", "-np", "1"])
        .arg(mpi_bin())
        .args(with(paper_args(&b), &["--max-steps", "3"]));
    let job = summary(&run(command));
    assert_eq!(job["world_size"], 2);
    assert_eq!(job["global_step"], 3);
    assert!(!b.exists(), "rank 1 wrote {}", b.display());
    assert!(a.join("checkpoints").join(Checkpoints::name(3)).is_dir());
    assert!(a.join("config.json").is_file());
}

#[test]
#[ignore = "needs Open MPI and GOOGLENET_MPI_BIN: scripts/mpi_checks.sh"]
fn ranks_given_different_configurations_are_refused_at_start() {
    let (a, b) = (fresh_dir("mpi-mismatch-0"), fresh_dir("mpi-mismatch-1"));
    let mut command = mpirun();
    command
        .args(["-np", "1"])
        .arg(mpi_bin())
        .args(with(paper_args(&a), &["--max-steps", "1"]))
        .args([":", "-np", "1"])
        .arg(mpi_bin())
        .args(
            paper_args(&b)
                .into_iter()
                .map(|a| if a == "3" { "4".into() } else { a }),
        );
    command.args(["--max-steps", "1"]);
    let started = Instant::now();
    let output = command.output().expect("mpirun");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("rank(s) [1] differ from rank 0"),
        "{stderr}"
    );
    assert!(started.elapsed() < KILL_BOUND);
    assert!(!a.join("checkpoints").exists(), "a refused job trained");
}

#[test]
#[ignore = "needs Open MPI and GOOGLENET_MPI_BIN: scripts/mpi_checks.sh"]
fn the_mpi_build_started_plainly_trains_exactly_as_the_default_build() {
    let (a, b) = (fresh_dir("mpi-plain"), fresh_dir("mpi-default"));
    let plain = alone(&mpi_bin(), &with(paper_args(&a), &["--max-steps", "2"]));
    let default = alone(Path::new(BIN), &with(paper_args(&b), &["--max-steps", "2"]));
    assert_eq!(plain["world_size"], 1);
    assert_eq!(losses(&plain), losses(&default));
    assert_eq!(checkpoint_tensors(&a, 2), checkpoint_tensors(&b, 2));
}

#[test]
#[ignore = "needs Open MPI and GOOGLENET_MPI_BIN: scripts/mpi_checks.sh"]
fn a_rank_that_fails_names_itself_and_the_reason_and_ends_the_job() {
    // Rank 1 cannot open its data; rank 0 is already waiting for it in a collective.
    let (a, b) = (fresh_dir("mpi-fail-0"), fresh_dir("mpi-fail-1"));
    let missing = b.join("no-such-data");
    let mut command = mpirun();
    command
        .args(["-np", "1"])
        .arg(mpi_bin())
        .args(with(paper_args(&a), &["--max-steps", "1"]))
        .args([":", "-np", "1"])
        .arg(mpi_bin())
        .args(with(
            paper_args(&b),
            &["--max-steps", "1", "--data", &missing.display().to_string()],
        ));
    let started = Instant::now();
    let output = command.output().expect("mpirun");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("rank 1 of 2 failed"), "{stderr}");
    assert!(stderr.contains("no-such-data"), "{stderr}");
    assert!(started.elapsed() < KILL_BOUND);
    assert!(!a.join("checkpoints").exists());
}

/// The pid of `rank` among the processes `mpirun` (pid `launcher`) started on this machine.
fn rank_pid(launcher: u32, rank: usize) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let parent = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent != Some(launcher) {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
        if environ.split(|&b| b == 0).any(|v| v == wanted.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

fn start_job(args: &[String]) -> Child {
    let mut command = mpirun();
    command
        .arg("-np")
        .arg("2")
        .arg(mpi_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().expect("mpirun")
}

fn wait_for_rank(job: &Child, rank: usize) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = rank_pid(job.id(), rank) {
            return pid;
        }
        assert!(Instant::now() < deadline, "rank {rank} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
#[ignore = "needs Open MPI and GOOGLENET_MPI_BIN: scripts/mpi_checks.sh"]
fn ctrl_c_on_one_rank_stops_every_rank_after_the_same_step_and_resume_continues_exactly() {
    // SIGINT reaches rank 1 only; the ranks agree on the stop flag each step, so both stop
    // after the same step and rank 0 writes one checkpoint.
    let (a, b) = (fresh_dir("mpi-ctrl-c"), fresh_dir("mpi-uninterrupted"));
    let job = start_job(&paper_args(&a));
    let rank1 = wait_for_rank(&job, 1);
    std::thread::sleep(Duration::from_secs(8));
    signal(rank1, "-INT");
    let output = job.wait_with_output().expect("mpirun");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stopped = summary(&output);
    assert_eq!(stopped["outcome"], "interrupted", "{stopped}");
    let k = stopped["global_step"].as_u64().expect("step");
    let resumed = two_ranks(&[
        "train".into(),
        "--resume".into(),
        a.display().to_string(),
        "--json".into(),
        "--max-steps".into(),
        "2".into(),
    ]);
    assert_eq!(resumed["global_step"].as_u64(), Some(k + 2));
    let steps = (k + 2).to_string();
    two_ranks(&with(paper_args(&b), &["--max-steps", &steps]));
    assert_eq!(checkpoint_tensors(&a, k + 2), checkpoint_tensors(&b, k + 2));
}

#[test]
#[ignore = "needs Open MPI and GOOGLENET_MPI_BIN: scripts/mpi_checks.sh"]
fn a_killed_rank_ends_the_job_within_the_bound_and_the_last_checkpoint_loads() {
    let out = fresh_dir("mpi-killed");
    two_ranks(&with(paper_args(&out), &["--max-steps", "2"]));
    let job = start_job(&[
        "train".into(),
        "--resume".into(),
        out.display().to_string(),
        "--json".into(),
    ]);
    let rank1 = wait_for_rank(&job, 1);
    std::thread::sleep(Duration::from_secs(5));
    signal(rank1, "-KILL");
    let killed = Instant::now();
    let mut job = job;
    let status = loop {
        if let Some(status) = job.try_wait().expect("waiting for mpirun") {
            break status;
        }
        assert!(
            killed.elapsed() < KILL_BOUND,
            "the job outlived its killed rank by {KILL_BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let latest = Checkpoints::new(&out)
        .latest()
        .expect("listing")
        .expect("a checkpoint");
    let step: u64 = latest
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("step-"))
        .and_then(|n| n.parse().ok())
        .expect("a step folder");
    assert!(
        checkpoint_tensors(&out, step)
            .iter()
            .all(|(_, v)| v.iter().all(|x| x.is_finite()))
    );
}

"""GPU checks of googlenet (issue 7), run by bench/gpu/run_gpu_checks.sh; see there for the setup.

    python gpu_checks.py CHECK BIN SHARED OUTDIR

CHECK is one of
    logits   (1) logits on DEVICE (f32 and REDUCED) against the CPU backend's, torchvision reference
             weights, the 4 reference images: max abs diff <= 1e-3 and the same top-1; PyTorch on
             the same device as a second opinion
    speed    (2) training images/s at batch BATCH (128), f32 and REDUCED, googlenet then PyTorch on
             the same device, interleaved, ROUNDS times
    train    (3) TRAIN_STEPS steps of training on the embedded synthetic shapes in f32 and REDUCED:
             the mean loss of the last steps is below the first's; with two or more CUDA GPUs also
             `--devices cuda:0,cuda:1` against one GPU with the same global batch
    loader   (4) the loader's images/s on all cores (SHARED/data/hymenoptera) beside the training
             images/s of `speed`
    summary  the markdown block for bench/RESULTS.md, from OUTDIR/*.json

Each check writes OUTDIR/<check>.json and prints what it measured. Exit 0: passed (or measured);
1: a check failed; 2: the binary, a file or the device is missing; 3: a Python package is missing.

Environment: DEVICE (cuda:0; wgpu[:N] or cpu for a dry run, PyTorch then on the CPU), REDUCED (bf16),
BATCH (128), SIZE (224), ITERATIONS (10), ROUNDS (1), TRAIN_STEPS (40), TRAIN_BATCH (32),
TIMEOUT (seconds per googlenet command, 600).

The googlenet commands called (all exist in this repository's CLI; `--help` documents each):
  googlenet export OUT.onnx --weights PTH --variant torchvision --reference-images PNG...
                   --device D --precision P       -> OUT.reference.safetensors ("input", "logits")
  googlenet bench model --variant torchvision --mode train --device D --precision P
                   --batch B --input-size S --iterations N --warmup W --json
                                                  -> {"images_per_sec": {"median": ...}, ...}
  googlenet train --variant torchvision --device D | --devices D1,D2 --precision P --batch B
                   --max-steps N --seed 1234 --out DIR --json
                                                  -> {"losses": [...], "first_mean_loss": ..., ...}
  googlenet bench data DIR --threads 0 --batch B --repeats 3 --json
                                                  -> {"images_per_sec": {"median": ...}, ...}
"""
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

try:
    import numpy as np
    import torch
    import torchvision
    from safetensors.numpy import load_file
except ImportError as e:
    print(f"gpu_checks: a Python package is missing ({e}); needs torch, torchvision, numpy, safetensors")
    sys.exit(3)

LOGITS_TOLERANCE = 1e-3
DEVICE = os.environ.get("DEVICE", "cuda:0")
TORCH_DEVICE = "cuda" if DEVICE.startswith("cuda") else "cpu"
REDUCED = os.environ.get("REDUCED", "bf16")
BATCH = int(os.environ.get("BATCH", "128"))
SIZE = int(os.environ.get("SIZE", "224"))
ITERATIONS = int(os.environ.get("ITERATIONS", "10"))
ROUNDS = int(os.environ.get("ROUNDS", "1"))
TRAIN_STEPS = int(os.environ.get("TRAIN_STEPS", "40"))
TRAIN_BATCH = int(os.environ.get("TRAIN_BATCH", "32"))
TIMEOUT = int(os.environ.get("TIMEOUT", "600"))
PRECISIONS = ["f32", REDUCED]


def fail(code, message):
    print(f"FAIL: {message}")
    sys.exit(code)


def run(binary, args):
    """Runs the binary; returns stdout. Exits 2 with its stderr when it fails."""
    command = [binary, *args]
    print("$", " ".join(command), flush=True)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        fail(2, f"{' '.join(command)} ran past {TIMEOUT} s (TIMEOUT)")
    if result.returncode != 0:
        stderr = result.stderr.strip()
        hint = ""
        if "built without the cuda feature" in stderr:
            hint = "\nthis binary has no CUDA backend: build it with `cargo build --release --features cuda`"
        elif "unrecognized subcommand" in stderr or "unexpected argument" in stderr:
            hint = "\nthis binary lacks the command or flag above (see the list in gpu_checks.py)"
        fail(2, f"{' '.join(command)} exited {result.returncode}:\n{stderr[-3000:]}{hint}")
    return result.stdout


def run_json(binary, args):
    stdout = run(binary, args)
    try:
        return json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        fail(2, f"no JSON object on the last line of `{' '.join(args[:2])}`'s output:\n{stdout[-2000:]}")


def write(outdir, name, record):
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, f"{name}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


def load(outdir, name):
    path = os.path.join(outdir, f"{name}.json")
    return json.load(open(path)) if os.path.exists(path) else None


def sync():
    if TORCH_DEVICE == "cuda":
        torch.cuda.synchronize()


# (1) ------------------------------------------------------------------------------------------
def check_logits(binary, shared, outdir):
    pth = os.path.join(shared, "reference", "torchvision", "torchvision_seed1234_calibrated.pth")
    inputs = os.path.join(shared, "reference", "inputs")
    if not os.path.isfile(pth) or not os.path.isdir(inputs):
        fail(2, f"ground truth missing: {pth} and {inputs} are needed (set SHARED)")
    images = sorted(os.path.join(inputs, f) for f in os.listdir(inputs) if f.endswith(".png"))
    logits = {}
    for device, precision in [("cpu", "f32"), (DEVICE, "f32"), (DEVICE, REDUCED)]:
        out = os.path.join(outdir, f"logits_{device.replace(':', '')}_{precision}.onnx")
        run(binary, ["export", out, "--weights", pth, "--variant", "torchvision",
                     "--reference-images", *images, "--device", device, "--precision", precision])
        reference = load_file(out.replace(".onnx", ".reference.safetensors"))
        os.remove(out)  # only the reference logits are needed
        logits[(device, precision)] = reference["logits"].astype(np.float64)
        model_input = reference["input"]
    cpu = logits[("cpu", "f32")]
    gpu_f32, gpu_reduced = logits[(DEVICE, "f32")], logits[(DEVICE, REDUCED)]

    # PyTorch on the same device, same weights and input: a second opinion on both backends.
    state = torch.load(pth, map_location="cpu", weights_only=True)
    net = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    net.load_state_dict(state)
    net = net.to(TORCH_DEVICE).eval()
    with torch.no_grad():
        torch_logits = net(torch.from_numpy(model_input).to(TORCH_DEVICE)).double().cpu().numpy()

    def diff(a, b):
        return float(np.max(np.abs(a - b)))

    record = {
        "check": f"{DEVICE} logits against the CPU backend, torchvision calibrated weights, "
                 f"{len(images)} reference images",
        "device": DEVICE,
        "tolerance": LOGITS_TOLERANCE,
        "logit_range": [float(cpu.min()), float(cpu.max())],
        "max_abs_diff_device_f32_vs_cpu": diff(gpu_f32, cpu),
        "reduced_precision": REDUCED,
        "max_abs_diff_device_reduced_vs_cpu": diff(gpu_reduced, cpu),
        "max_abs_diff_cpu_vs_pytorch": diff(cpu, torch_logits),
        "max_abs_diff_device_f32_vs_pytorch": diff(gpu_f32, torch_logits),
        "pytorch_device": TORCH_DEVICE,
        "top1_cpu": cpu.argmax(1).tolist(),
        "top1_device_f32": gpu_f32.argmax(1).tolist(),
        "top1_device_reduced": gpu_reduced.argmax(1).tolist(),
    }
    record["passed"] = (record["max_abs_diff_device_f32_vs_cpu"] <= LOGITS_TOLERANCE
                        and record["top1_device_f32"] == record["top1_cpu"])
    write(outdir, "logits", record)
    for key, value in record.items():
        print(f"  {key}: {value}")
    if not record["passed"]:
        fail(1, f"{DEVICE} f32 logits differ from the CPU backend's by more than {LOGITS_TOLERANCE}")
    print("logits: passed")


# (2) ------------------------------------------------------------------------------------------
def torch_train_images_per_second(precision, warmup=3):
    """torchvision's GoogLeNet (aux heads on), SGD momentum 0.9, the paper's loss main + 0.3 (aux1 +
    aux2); reduced precision through torch.autocast (f32 master weights), as googlenet does."""
    torch.manual_seed(0)
    net = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    net = net.to(TORCH_DEVICE).train()
    optim = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    ce = torch.nn.CrossEntropyLoss()
    x = torch.randn(BATCH, 3, SIZE, SIZE, device=TORCH_DEVICE)
    y = torch.randint(0, 1000, (BATCH,), device=TORCH_DEVICE)
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16}.get(precision)

    def step():
        with torch.autocast(TORCH_DEVICE, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = net(x)
            loss = ce(out.logits, y) + 0.3 * (ce(out.aux_logits1, y) + ce(out.aux_logits2, y))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    for _ in range(warmup):
        step()
    rates = []
    for _ in range(ITERATIONS):
        sync()
        start = time.perf_counter()
        step()
        sync()
        rates.append(BATCH / (time.perf_counter() - start))
    return float(np.median(rates))


def check_speed(binary, shared, outdir):
    runs = {p: [] for p in PRECISIONS}
    for r in range(ROUNDS):
        for precision in PRECISIONS:
            # Interleaved: ours, then PyTorch, for each precision, so both see the same machine state.
            report = run_json(binary, [
                "bench", "model", "--variant", "torchvision", "--mode", "train", "--device", DEVICE,
                "--precision", precision, "--batch", str(BATCH), "--input-size", str(SIZE),
                "--iterations", str(ITERATIONS), "--warmup", "3", "--json"])
            ours = report["images_per_sec"]["median"]
            theirs = torch_train_images_per_second(precision)
            runs[precision].append({"googlenet": ours, "pytorch": theirs})
            print(f"  round {r + 1} {precision}: googlenet {ours:.1f} images/s, PyTorch {theirs:.1f} images/s")
    results = {}
    for precision, pairs in runs.items():
        ours = float(np.median([x["googlenet"] for x in pairs]))
        theirs = float(np.median([x["pytorch"] for x in pairs]))
        results[precision] = {"googlenet_images_per_second": ours, "pytorch_images_per_second": theirs,
                              "ratio_googlenet_to_pytorch": ours / theirs, "rounds": pairs}
    write(outdir, "speed", {
        "check": f"training images/s, batch {BATCH}, {SIZE}x{SIZE}, torchvision variant, {DEVICE}; "
                 f"median of {ITERATIONS} steps after 3 warm-up, median over {ROUNDS} round(s)",
        "batch": BATCH, "input_size": SIZE, "device": DEVICE, "pytorch_device": TORCH_DEVICE,
        "results": results})
    print("speed: measured")


# (3) ------------------------------------------------------------------------------------------
def train_run(binary, outdir, name, device_args, precision):
    out = os.path.join(outdir, f"train_{name}")
    shutil.rmtree(out, ignore_errors=True)
    summary = run_json(binary, [
        "train", "--variant", "torchvision", *device_args, "--precision", precision,
        "--batch", str(TRAIN_BATCH), "--max-steps", str(TRAIN_STEPS), "--seed", "1234",
        "--out", out, "--json"])
    shutil.rmtree(out, ignore_errors=True)  # checkpoints: not needed here
    keep = ["devices", "precision", "batch", "input_size", "steps", "images_per_second", "window",
            "first_mean_loss", "last_mean_loss", "losses"]
    record = {k: summary[k] for k in keep}
    record["falls"] = summary["last_mean_loss"] < summary["first_mean_loss"]
    print(f"  {name}: loss {summary['first_mean_loss']:.4f} (first {summary['window']} steps) -> "
          f"{summary['last_mean_loss']:.4f} (last {summary['window']}), "
          f"{summary['images_per_second']:.1f} images/s")
    return record


def check_train(binary, shared, outdir):
    runs = {p: train_run(binary, outdir, p, ["--device", DEVICE], p) for p in PRECISIONS}
    record = {"check": f"{TRAIN_STEPS} steps on the embedded synthetic shapes (96 px, 4 classes), "
                       f"torchvision variant, paper recipe, batch {TRAIN_BATCH}, {DEVICE}",
              "runs": runs}
    gpus = torch.cuda.device_count() if TORCH_DEVICE == "cuda" else 0
    if gpus >= 2:
        pair = "cuda:0,cuda:1"
        parallel = train_run(binary, outdir, "data_parallel", ["--devices", pair], "f32")
        single = runs["f32"]["losses"]
        # BatchNorm normalises over each replica's half batch, so the curves agree within noise,
        # not to rounding; reported, and required to fall like the single GPU's.
        parallel["max_abs_loss_diff_vs_one_gpu"] = float(
            np.max(np.abs(np.array(parallel["losses"]) - np.array(single))))
        runs["data_parallel"] = parallel
        record["data_parallel"] = f"{pair}, global batch {TRAIN_BATCH}, against {DEVICE} f32"
    else:
        record["data_parallel"] = f"not run: {gpus} CUDA GPU(s) (needs 2)"
    record["passed"] = all(r["falls"] for r in runs.values())
    write(outdir, "train", record)
    if not record["passed"]:
        fail(1, "the loss did not fall in " + ", ".join(k for k, r in runs.items() if not r["falls"]))
    print("train: passed")


# (4) ------------------------------------------------------------------------------------------
def check_loader(binary, shared, outdir):
    data = os.path.join(shared, "data", "hymenoptera")
    if not os.path.isdir(data):
        fail(2, f"data missing: {data} (set SHARED)")
    report = run_json(binary, ["bench", "data", data, "--threads", "0", "--batch", str(BATCH),
                               "--repeats", "3", "--json"])
    rate = report["images_per_sec"]["median"]
    record = {"check": "loader images/s on all cores: decode + random-resized crop 224 + flip + "
                       "normalise, hymenoptera/train",
              "threads": report["threads"], "images_per_second": rate}
    speed = load(outdir, "speed")
    if speed:
        record["loader_over_model"] = {
            p: rate / r["googlenet_images_per_second"] for p, r in speed["results"].items()}
    write(outdir, "loader", record)
    print(f"  loader: {rate:.0f} images/s on {report['threads']} threads; "
          f"loader / model: {record.get('loader_over_model', 'run the speed check first')}")


# summary --------------------------------------------------------------------------------------
def device_name():
    if TORCH_DEVICE == "cuda" and shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True).stdout
        lines = [l.strip() for l in out.splitlines() if l.strip()]
        return f"{len(lines)} x {lines[0]}" if lines else "unknown NVIDIA GPU"
    return f"no GPU: dry run with DEVICE={DEVICE} on {platform.processor() or platform.machine()}"


def summary(binary, shared, outdir):
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    lines = [f"### {date}: {device_name()}", "",
             f"{version}; PyTorch {torch.__version__} (CUDA {torch.version.cuda}) on {TORCH_DEVICE}; "
             f"{os.cpu_count()} CPU cores; `bench/gpu/run_gpu_checks.sh`"
             f" (DEVICE={DEVICE} REDUCED={REDUCED} BATCH={BATCH} SIZE={SIZE} TRAIN_STEPS={TRAIN_STEPS}).", ""]
    logits = load(outdir, "logits")
    if logits:
        lines.append(
            f"- (1) logits, {DEVICE} f32 vs CPU: max abs diff {logits['max_abs_diff_device_f32_vs_cpu']:.2e} "
            f"(tolerance {logits['tolerance']}, logits span {logits['logit_range'][0]:.2f} to "
            f"{logits['logit_range'][1]:.2f}); {REDUCED} vs CPU f32 "
            f"{logits['max_abs_diff_device_reduced_vs_cpu']:.2e}; CPU vs PyTorch ({logits['pytorch_device']}) "
            f"{logits['max_abs_diff_cpu_vs_pytorch']:.2e}: **{'passed' if logits['passed'] else 'FAILED'}**")
    speed = load(outdir, "speed")
    if speed:
        lines += ["", f"(2) training, torchvision variant, batch {speed['batch']}, {speed['input_size']} px, "
                      "paper loss, SGD momentum (median images/s, same run, interleaved):", "",
                  "| precision | googlenet | PyTorch | googlenet / PyTorch |", "|---|---:|---:|---:|"]
        for precision, r in speed["results"].items():
            lines.append(f"| {precision} | {r['googlenet_images_per_second']:.1f} | "
                         f"{r['pytorch_images_per_second']:.1f} | {r['ratio_googlenet_to_pytorch']:.2f}x |")
    train = load(outdir, "train")
    if train:
        lines.append("")
        for name, r in train["runs"].items():
            extra = (f", max abs step-loss difference from one GPU {r['max_abs_loss_diff_vs_one_gpu']:.3f}"
                     if "max_abs_loss_diff_vs_one_gpu" in r else "")
            lines.append(
                f"- (3) training {r['steps']} steps, {'+'.join(r['devices'])} {r['precision']}, batch {r['batch']}: "
                f"mean loss of the first {r['window']} steps {r['first_mean_loss']:.3f}, of the last "
                f"{r['window']} {r['last_mean_loss']:.3f} ({r['images_per_second']:.1f} images/s incl. "
                f"loading){extra}: **{'falls' if r['falls'] else 'DOES NOT FALL'}**")
        lines.append(f"- data parallel: {train['data_parallel']}")
    loader = load(outdir, "loader")
    if loader:
        ratio = loader.get("loader_over_model", {})
        lines.append(
            f"- (4) loader on {loader['threads']} threads: {loader['images_per_second']:.0f} images/s; "
            + (", ".join(f"{v:.2f}x the {p} training rate" for p, v in ratio.items()) or "no speed figure"))
    for name in ["logits", "speed", "train", "loader"]:
        if load(outdir, name) is None:
            lines.append(f"- {name}: not measured (see the log)")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(outdir, "summary.md.tmp"), "w") as f:
        f.write(text)
    os.replace(os.path.join(outdir, "summary.md.tmp"), os.path.join(outdir, "summary.md"))
    print(text)


CHECKS = {"logits": check_logits, "speed": check_speed, "train": check_train, "loader": check_loader,
          "summary": summary}


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in CHECKS:
        print(__doc__)
        sys.exit(2)
    check, binary, shared, outdir = sys.argv[1:]
    os.makedirs(outdir, exist_ok=True)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        fail(2, f"no executable googlenet binary at {binary}")
    if check != "summary" and TORCH_DEVICE == "cuda" and not torch.cuda.is_available():
        fail(2, "PyTorch sees no CUDA device")
    CHECKS[check](binary, shared, outdir)


if __name__ == "__main__":
    main()

"""The stages of bench/gpu/run_gpu_checks.sh (see there for the setup, the order and the limits).

    python gpu_checks.py STAGE [ARGS]

Environment: BIN (the googlenet binary), DEVICE (cuda:0; cpu for a dry run), SHARED (ground truth),
OUT (output folder); SIZE (224), ITERATIONS (10), WARMUP (3), TRAIN_STEPS (200), TRAIN_BATCH (32),
TRAIN_PRECISION (bf16). Each stage writes OUT/<stage>.json (partial results as they come) and exits
0 when it passed or measured, 1 when a check failed, 2 when something it needs is missing.

STAGE is one of
    smoke                a tiny inference on DEVICE (driver, NVRTC, headers in place)
    logits               DEVICE f32 and bf16 logits against the CPU backend's on the torchvision
                         reference weights and the 4 reference images: max abs diff of f32 <= 1e-3
                         and the same top-1; PyTorch on the GPU as a second opinion when present
    speed BATCH PREC     googlenet's training images/s (torchvision variant, SIZE px)
    pytorch              PyTorch's training images/s, eager, channels_last, cudnn.benchmark, f32 and
                         AMP bf16, at the batches of SPEED_BATCHES (256 128), with peak memory
    pytorch_compile      the same with torch.compile, batch 256 bf16 (compile time reported)
    train                TRAIN_STEPS steps on the embedded demo set: the loss falls
    infer                inference images/s at batch 256 bf16, googlenet and PyTorch (eager,
                         channels_last); onnxruntime's CUDA provider when installed
    summary              OUT/summary.md for bench/RESULTS.md from everything under OUT

The googlenet commands called (`googlenet CMD --help` documents each):
  export OUT.onnx --weights PTH --variant torchvision --reference-images PNG... --device D --precision P
  bench model --variant torchvision --mode train|infer --device D --precision P --batch B
              --input-size S --iterations N --warmup W --json
  train --variant torchvision --device D --precision P --batch B --max-steps N --seed 1234 --out DIR --json
"""
import csv
import datetime
import glob
import json
import os
import subprocess
import sys
import time

LOGITS_TOLERANCE = 1e-3
BIN = os.environ.get("BIN", "target/cuda/googlenet")
DEVICE = os.environ.get("DEVICE", "cuda:0")
SHARED = os.environ.get("SHARED", "../shared")
OUT = os.environ.get("OUT", "bench/gpu/out")
SIZE = int(os.environ.get("SIZE", "224"))
ITERATIONS = int(os.environ.get("ITERATIONS", "10"))
WARMUP = int(os.environ.get("WARMUP", "3"))
SPEED_BATCHES = [int(b) for b in os.environ.get("SPEED_BATCHES", "256 128").split()]
TRAIN_STEPS = int(os.environ.get("TRAIN_STEPS", "200"))
TRAIN_BATCH = int(os.environ.get("TRAIN_BATCH", "32"))
TRAIN_PRECISION = os.environ.get("TRAIN_PRECISION", "bf16")


class StageError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def write(name, record):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"{name}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1)
    os.replace(path + ".tmp", path)


def load(name):
    path = os.path.join(OUT, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def googlenet(args):
    """Runs the binary; its stdout, or StageError with the end of its stderr."""
    command = [BIN, *args]
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    sys.stderr.write(result.stderr[-4000:])
    if result.returncode != 0:
        raise StageError(2 if result.returncode == 2 else 1,
                         f"googlenet {args[0]} exited {result.returncode}: {result.stderr.strip()[-1500:]}")
    return result.stdout


def googlenet_json(args):
    stdout = googlenet(args)
    try:
        return json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise StageError(1, f"no JSON on the last line of googlenet {args[0]}'s output: {stdout[-1000:]}")


def torch_modules():
    """torch, torchvision and the device PyTorch uses, or StageError(2)."""
    try:
        import torch
        import torchvision
    except ImportError as e:
        raise StageError(2, f"PyTorch baseline unavailable: {e}")
    device = "cuda" if DEVICE.startswith("cuda") else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise StageError(2, "PyTorch sees no CUDA device")
    return torch, torchvision, device


# smoke ----------------------------------------------------------------------------------------
def stage_smoke():
    report = googlenet_json(["bench", "model", "--variant", "torchvision", "--mode", "infer",
                             "--device", DEVICE, "--batch", "2", "--input-size", "64",
                             "--iterations", "1", "--warmup", "1", "--json"])
    write("smoke", {"device": DEVICE, "images_per_sec": report["images_per_sec"]["median"]})


# logits ---------------------------------------------------------------------------------------
def stage_logits():
    import numpy as np
    from safetensors.numpy import load_file

    pth = os.path.join(SHARED, "reference", "torchvision", "torchvision_seed1234_calibrated.pth")
    images = sorted(glob.glob(os.path.join(SHARED, "reference", "inputs", "*.png")))
    if not os.path.isfile(pth) or not images:
        raise StageError(2, f"ground truth missing: {pth} and reference/inputs/*.png (set SHARED)")
    record = {"device": DEVICE, "tolerance": LOGITS_TOLERANCE, "images": len(images)}
    logits = {}
    # "cpu": the reference, CPU f32; "f32", "bf16": DEVICE in that precision.
    for label, device, precision in [("cpu", "cpu", "f32"), ("f32", DEVICE, "f32"), ("bf16", DEVICE, "bf16")]:
        out = os.path.join(OUT, f"logits_{label}.onnx")
        start = time.perf_counter()
        googlenet(["export", out, "--weights", pth, "--variant", "torchvision", "--reference-images",
                   *images, "--device", device, "--precision", precision])
        reference = load_file(out.replace(".onnx", ".reference.safetensors"))
        for path in [out, out.replace(".onnx", ".reference.safetensors")]:
            os.remove(path)
        logits[label] = reference["logits"].astype(np.float64)
        model_input = reference["input"]
        record[f"seconds_{label}"] = round(time.perf_counter() - start, 1)
        record[f"top1_{label}"] = logits[label].argmax(1).tolist()
        if label == "cpu":
            record["logit_range"] = [float(logits["cpu"].min()), float(logits["cpu"].max())]
        else:
            record[f"max_abs_diff_{label}_vs_cpu"] = float(np.max(np.abs(logits[label] - logits["cpu"])))
        write("logits", record)
        print(f"  {device} {precision}: {record.get(f'max_abs_diff_{label}_vs_cpu', 'reference')}")
    record["passed"] = (record["max_abs_diff_f32_vs_cpu"] <= LOGITS_TOLERANCE
                        and record["top1_f32"] == record["top1_cpu"])
    write("logits", record)
    try:
        torch, torchvision, torch_device = torch_modules()
        state = torch.load(pth, map_location="cpu", weights_only=True)
        net = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
        net.load_state_dict(state)
        net = net.to(torch_device).eval()
        with torch.no_grad():
            theirs = net(torch.from_numpy(model_input).to(torch_device)).double().cpu().numpy()
        record["pytorch_device"] = torch_device
        record["max_abs_diff_cpu_vs_pytorch"] = float(np.max(np.abs(logits["cpu"] - theirs)))
        record["max_abs_diff_f32_vs_pytorch"] = float(np.max(np.abs(logits["f32"] - theirs)))
    except StageError as e:
        record["pytorch"] = str(e)
    write("logits", record)
    print(json.dumps(record, indent=1))
    if not record["passed"]:
        raise StageError(1, f"{DEVICE} f32 logits differ from the CPU's by more than {LOGITS_TOLERANCE}")


# speed ----------------------------------------------------------------------------------------
def stage_speed(batch, precision):
    report = googlenet_json(["bench", "model", "--variant", "torchvision", "--mode", "train",
                             "--device", DEVICE, "--precision", precision, "--batch", str(batch),
                             "--input-size", str(SIZE), "--iterations", str(ITERATIONS),
                             "--warmup", str(WARMUP), "--json"])
    write(f"speed_{batch}_{precision}", {
        "batch": batch, "precision": precision, "input_size": SIZE, "device": DEVICE,
        "iterations": ITERATIONS, "warmup": WARMUP,
        "images_per_second": report["images_per_sec"]["median"], "report": report})
    print(f"  googlenet batch {batch} {precision}: {report['images_per_sec']['median']:.1f} images/s")


def torch_train_rate(torch, torchvision, device, batch, precision, compile_net=False):
    """torchvision's GoogLeNet (aux heads), SGD momentum 0.9, loss main + 0.3 (aux1 + aux2), as
    `googlenet bench model --mode train`; channels_last, cudnn.benchmark, bf16 through autocast."""
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    net = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    net = net.to(device).train().to(memory_format=torch.channels_last)
    optim = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    ce = torch.nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, SIZE, SIZE, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)
    model = torch.compile(net) if compile_net else net
    bf16 = precision == "bf16"

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
            loss = ce(out.logits, y) + 0.3 * (ce(out.aux_logits1, y) + ce(out.aux_logits2, y))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(WARMUP):
        step()
    sync()
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(ITERATIONS):
        step()
    sync()
    rate = batch * ITERATIONS / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    del model, net, optim, x, y
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"images_per_second": rate, "warmup_seconds": warmup_seconds, "peak_memory_bytes": peak}


def stage_pytorch(compile_net=False):
    torch, torchvision, device = torch_modules()
    name = "pytorch_compile" if compile_net else "pytorch"
    configs = [(256, "bf16")] if compile_net else [(b, p) for p in ["bf16", "f32"] for b in SPEED_BATCHES]
    record = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": device,
              "cudnn": torch.backends.cudnn.version() if device == "cuda" else None,
              "mode": ("torch.compile" if compile_net else "eager") + ", channels_last, cudnn.benchmark, "
                      "bf16 = torch.autocast (f32 master weights); f32 = PyTorch defaults (TF32 "
                      "convolutions allowed)", "results": {}}
    for batch, precision in configs:
        record["results"][f"{batch}_{precision}"] = torch_train_rate(
            torch, torchvision, device, batch, precision, compile_net)
        write(name, record)
        r = record["results"][f"{batch}_{precision}"]
        print(f"  PyTorch batch {batch} {precision}: {r['images_per_second']:.1f} images/s")


# train ----------------------------------------------------------------------------------------
def stage_train():
    out = os.path.join(OUT, "train_run")
    summary = googlenet_json(["train", "--variant", "torchvision", "--device", DEVICE,
                              "--precision", TRAIN_PRECISION, "--batch", str(TRAIN_BATCH),
                              "--max-steps", str(TRAIN_STEPS), "--seed", "1234", "--out", out, "--json"])
    subprocess.run(["rm", "-rf", out])  # checkpoints are not needed
    keep = ["devices", "precision", "batch", "input_size", "steps", "images_per_second", "window",
            "first_mean_loss", "last_mean_loss", "losses"]
    record = {k: summary.get(k) for k in keep}
    record["falls"] = summary["last_mean_loss"] < summary["first_mean_loss"]
    write("train", record)
    print(f"  loss {summary['first_mean_loss']:.4f} (first {summary['window']} steps) -> "
          f"{summary['last_mean_loss']:.4f} (last {summary['window']}), {summary['images_per_second']:.1f} images/s")
    if not record["falls"]:
        raise StageError(1, "the loss did not fall")


# nccl -----------------------------------------------------------------------------------------
def stage_nccl():
    """The gradients' all-reduce through NCCL on one GPU (world size 1 still runs every step's sum
    through ncclAllReduce): the same 5 steps with --allreduce nccl and without give the same
    losses (NCCL's sum over one rank is the identity; 1e-4 leaves room for GPU kernels that do
    not repeat bit for bit)."""
    runs = {}
    for allreduce in ["mpi", "nccl"]:
        out = os.path.join(OUT, f"nccl_{allreduce}_run")
        runs[allreduce] = googlenet_json(["train", "--variant", "torchvision", "--device", DEVICE,
                                          "--input-size", "96", "--batch", "32", "--max-steps", "5",
                                          "--seed", "7", "--no-dropout", "--allreduce", allreduce,
                                          "--out", out, "--json"])
        subprocess.run(["rm", "-rf", out])
    plain, nccl = runs["mpi"]["losses"], runs["nccl"]["losses"]
    diff = max((abs(a - b) / max(abs(a), 1e-12) for a, b in zip(plain, nccl)), default=float("inf"))
    record = {"losses": plain, "losses_nccl": nccl, "max_relative_diff": diff,
              "allreduce_seconds": runs["nccl"].get("allreduce_seconds")}
    write("nccl", record)
    print(f"  5 steps, --allreduce nccl vs none: losses differ by {diff:.2e} relative at most; "
          f"all-reduce {record['allreduce_seconds']} s per step")
    if len(plain) != len(nccl) or diff > 1e-4:
        raise StageError(1, "the losses with NCCL differ from those without")


# infer ----------------------------------------------------------------------------------------
def stage_infer():
    batch, precision = 256, "bf16"
    record = {"batch": batch, "precision": precision, "input_size": SIZE}
    report = googlenet_json(["bench", "model", "--variant", "torchvision", "--mode", "infer",
                             "--device", DEVICE, "--precision", precision, "--batch", str(batch),
                             "--input-size", str(SIZE), "--iterations", str(ITERATIONS),
                             "--warmup", str(WARMUP), "--json"])
    record["googlenet_images_per_second"] = report["images_per_sec"]["median"]
    write("infer", record)
    torch, torchvision, device = torch_modules()
    torch.backends.cudnn.benchmark = True
    net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    net = net.to(device).eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, SIZE, SIZE, device=device).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        for _ in range(WARMUP):
            net(x)
        torch.cuda.synchronize() if device == "cuda" else None
        start = time.perf_counter()
        for _ in range(ITERATIONS):
            net(x)
        torch.cuda.synchronize() if device == "cuda" else None
    record["pytorch_images_per_second"] = batch * ITERATIONS / (time.perf_counter() - start)
    try:
        import onnxruntime
        record["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        record["onnxruntime_providers"] = "onnxruntime not installed"
    write("infer", record)
    print(json.dumps(record, indent=1))


# summary --------------------------------------------------------------------------------------
def stages():
    path = os.path.join(OUT, "stages.tsv")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def gpu_samples():
    """(unix time, GPU utilisation %, memory used MiB) of GPU 0 from nvidia_smi.csv (whose
    timestamps are local time, as `timestamp()` reads a naive datetime)."""
    path = os.path.join(OUT, "nvidia_smi.csv")
    samples = []
    if not os.path.exists(path):
        return samples
    with open(path) as f:
        for row in csv.reader(f):
            try:
                stamp = datetime.datetime.strptime(row[0].strip(), "%Y/%m/%d %H:%M:%S.%f")
                if row[1].strip() != "0":
                    continue
                samples.append((stamp.timestamp(), float(row[2]), float(row[4])))
            except (ValueError, IndexError):
                continue
    return samples


def fmt(value, spec=".1f"):
    return "-" if value is None else format(value, spec)


def stage_summary():
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    gpu = open(os.path.join(OUT, "gpu.txt")).read().strip() if os.path.exists(os.path.join(OUT, "gpu.txt")) else "?"
    try:
        version = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        version = f"{BIN} (not runnable)"
    lines = [f"### {date}: {gpu}", "",
             f"{version}, DEVICE={DEVICE}; `bash bench/gpu/run_gpu_checks.sh` (SIZE={SIZE}, "
             f"ITERATIONS={ITERATIONS}, WARMUP={WARMUP}, TRAIN_STEPS={TRAIN_STEPS}).", "",
             "| stage | status | seconds | peak GPU memory (MiB) | GPU utilisation mean / max (%) |",
             "|---|---|---:|---:|---:|"]
    samples = gpu_samples()
    for s in stages():
        window = [x for x in samples if float(s["start_unix"]) <= x[0] <= float(s["end_unix"])]
        memory = f"{max(x[2] for x in window):.0f}" if window else "-"
        util = (f"{sum(x[1] for x in window) / len(window):.0f} / {max(x[1] for x in window):.0f}"
                if window else "-")
        lines.append(f"| {s['stage']} | {s['status']} | {s['seconds']} | {memory} | {util} |")
    lines.append("")
    logits = load("logits")
    if logits and "max_abs_diff_f32_vs_cpu" in logits:
        lines.append(
            f"- logits, {DEVICE} f32 vs CPU: max abs diff {logits['max_abs_diff_f32_vs_cpu']:.2e} "
            f"(tolerance {LOGITS_TOLERANCE}; logits span {logits['logit_range'][0]:.1f} to "
            f"{logits['logit_range'][1]:.1f}); bf16 vs CPU f32 "
            f"{logits.get('max_abs_diff_bf16_vs_cpu', float('nan')):.2e}; CPU vs PyTorch "
            f"{logits.get('max_abs_diff_cpu_vs_pytorch', float('nan')):.2e}: "
            f"**{'passed' if logits.get('passed') else 'FAILED or incomplete'}**")
    torch_eager = (load("pytorch") or {}).get("results", {})
    torch_compiled = (load("pytorch_compile") or {}).get("results", {})
    rows = []
    for precision in ["bf16", "f32"]:
        for batch in SPEED_BATCHES:
            ours = load(f"speed_{batch}_{precision}")
            theirs = torch_eager.get(f"{batch}_{precision}")
            compiled = torch_compiled.get(f"{batch}_{precision}")
            if not ours and not theirs:
                continue
            o = ours["images_per_second"] if ours else None
            t = theirs["images_per_second"] if theirs else None
            peak = theirs.get("peak_memory_bytes") if theirs else None
            rows.append(f"| {batch} | {precision} | {fmt(o)} | {fmt(t)} | "
                        f"{f'{o / t:.2f}x' if o and t else '-'} | "
                        f"{fmt(peak / 2**20 if peak else None, '.0f')} | "
                        f"{fmt(compiled['images_per_second'] if compiled else None)} |")
    if rows:
        header = load("pytorch") or {}
        lines += ["", f"Training images/s, torchvision variant, {SIZE} px, main + 0.3 aux losses, SGD "
                      f"momentum; PyTorch {header.get('torch', '?')} (CUDA {header.get('cuda', '?')}, "
                      f"cuDNN {header.get('cudnn', '?')}) {header.get('mode', '')}:", "",
                  "| batch | precision | googlenet | PyTorch eager | googlenet / PyTorch | PyTorch peak MiB | "
                  "PyTorch compiled |", "|---:|---|---:|---:|---:|---:|---:|", *rows]
    train = load("train")
    if train:
        lines += ["", f"- training {train['steps']} steps on the embedded demo set, {train['precision']}, "
                      f"batch {train['batch']}: mean loss of the first {train['window']} steps "
                      f"{train['first_mean_loss']:.3f}, of the last {train['window']} {train['last_mean_loss']:.3f} "
                      f"({train['images_per_second']:.1f} images/s incl. loading): "
                      f"**{'falls' if train['falls'] else 'DOES NOT FALL'}**"]
    infer = load("infer")
    if infer:
        lines += [f"- inference, batch 256 bf16: googlenet {infer['googlenet_images_per_second']:.1f} "
                  f"images/s, PyTorch eager channels_last "
                  f"{infer.get('pytorch_images_per_second', float('nan')):.1f}; onnxruntime: "
                  f"{infer.get('onnxruntime_providers', '-')}"]
    for s in stages():
        if s["status"] != "passed":
            log = os.path.join(OUT, f"{s['stage']}.log")
            tail = open(log).read().strip().splitlines()[-3:] if os.path.exists(log) else []
            lines.append(f"- {s['stage']}: {s['status']}" + (f": `{' / '.join(tail)[-400:]}`" if tail else ""))
    text = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "summary.md.tmp"), "w") as f:
        f.write(text)
    os.replace(os.path.join(OUT, "summary.md.tmp"), os.path.join(OUT, "summary.md"))
    print(text)


STAGES = {
    "smoke": (stage_smoke, 0), "logits": (stage_logits, 0), "speed": (stage_speed, 2),
    "pytorch": (stage_pytorch, 0), "pytorch_compile": (lambda: stage_pytorch(True), 0),
    "train": (stage_train, 0), "nccl": (stage_nccl, 0), "infer": (stage_infer, 0),
    "summary": (stage_summary, 0),
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in STAGES or len(sys.argv) - 2 != STAGES[sys.argv[1]][1]:
        print(__doc__)
        sys.exit(2)
    function, _ = STAGES[sys.argv[1]]
    os.makedirs(OUT, exist_ok=True)
    args = sys.argv[2:]
    if sys.argv[1] == "speed":
        args = [int(args[0]), args[1]]
    try:
        function(*args)
    except StageError as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(e.code)


if __name__ == "__main__":
    main()

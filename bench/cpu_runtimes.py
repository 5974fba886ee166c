#!/usr/bin/env python3
"""GoogLeNet inference on the CPU: this project against the deployment runtimes, in one run.

Exports the torchvision variant as ONNX with `googlenet export` (with reference logits for the
four reference images of ../shared), then times, in interleaved rounds, one process per figure:
ONNX Runtime (CPU execution provider), OpenVINO with an f32 precision hint, OpenVINO with its
defaults (bf16 on CPUs with AVX512-BF16 or AMX), and `googlenet bench model --engine fast` in f32
and in bf16. Before timing, each runtime's logits on the reference images are checked against ours
(f32). Prints images/s (median over rounds of each round's median, min/max over rounds) and each
runtime's ratio to ours: f32 runtimes against our f32, OpenVINO's default against our bf16.

Needs onnxruntime, openvino, numpy and safetensors (`pip install onnxruntime openvino safetensors`); the project itself does not.

    python bench/cpu_runtimes.py --rounds 3 --threads 2 --batches 16 1
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("SHARED", os.path.join(HERE, "..", "..", "shared"))
WEIGHTS = os.path.join(SHARED, "reference", "torchvision", "torchvision_seed1234_calibrated.pth")
IMAGES = [os.path.join(SHARED, "reference", "inputs", name) for name in (
    "0_sklearn_china.png", "1_sklearn_flower.png", "2_hymenoptera_val_ant.png", "3_hymenoptera_val_bee.png")]
RUNTIMES = ["onnxruntime", "openvino-f32", "openvino-default"]
OURS = {"googlenet fast": "f32", "googlenet fast bf16": "bf16"}
# Which of ours each runtime is compared with.
BASE = {"onnxruntime": "googlenet fast", "openvino-f32": "googlenet fast",
        "openvino-default": "googlenet fast bf16"}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.path.join(HERE, "..", "target", "release", "googlenet"),
                   help="the googlenet binary (cargo build --release)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", nargs="+", type=int, default=[16, 1])
    p.add_argument("--iterations", type=int, default=5, help="timed iterations per process")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    p.add_argument("--worker", nargs=3, metavar=("RUNTIME", "BATCH", "MODEL"), help=argparse.SUPPRESS)
    return p.parse_args()


def session(runtime, model, threads):
    """A function from an NCHW float32 array to the logits, on `runtime`."""
    if runtime == "onnxruntime":
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})[0]
    import openvino as ov
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if runtime == "openvino-f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    compiled = ov.Core().compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})[compiled.output(0)]


def worker(runtime, batch, model, args):
    """One figure: images/s of `runtime` at `batch`, printed as a JSON line."""
    import numpy as np
    run = session(runtime, model, args.threads)
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    for _ in range(args.warmup):
        run(x)
    rates = []
    for _ in range(args.iterations):
        start = time.perf_counter()
        run(x)
        rates.append(batch / (time.perf_counter() - start))
    print(json.dumps({"images_per_sec": statistics.median(rates)}))


def check_logits(model, reference, threads):
    """Each runtime's logits on the reference images against ours: max abs difference."""
    import numpy as np
    from safetensors.numpy import load_file
    ref = load_file(reference)
    differences = {}
    for runtime in RUNTIMES:
        logits = session(runtime, model, threads)(ref["input"])
        differences[runtime] = float(np.abs(logits - ref["logits"]).max())
    return differences


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ours(batch, precision, args):
    cmd = [args.binary, "bench", "model", "--variant", "torchvision", "--mode", "infer", "--engine", "fast",
           "--precision", precision, "--batch", str(batch), "--threads", str(args.threads), "--iterations", str(args.iterations),
           "--warmup", str(args.warmup), "--json"]
    return run_json(cmd)["images_per_sec"]["median"]


def theirs(runtime, batch, model, args):
    cmd = [sys.executable, __file__, "--threads", str(args.threads), "--iterations", str(args.iterations),
           "--warmup", str(args.warmup), "--worker", runtime, str(batch), model]
    return run_json(cmd)["images_per_sec"]


def main():
    args = parse_args()
    if args.worker:
        runtime, batch, model = args.worker
        worker(runtime, int(batch), model, args)
        return
    if not os.path.exists(WEIGHTS):
        sys.exit(f"{WEIGHTS} is missing: set SHARED to the folder of the shared ground truth")
    folder = tempfile.mkdtemp(prefix="googlenet-runtimes-")
    model = os.path.join(folder, "googlenet.onnx")
    subprocess.run([args.binary, "export", "--weights", WEIGHTS, "--variant", "torchvision", model,
                    "--reference-images", *IMAGES], check=True, capture_output=True)
    reference = os.path.join(folder, "googlenet.reference.safetensors")
    for runtime, difference in check_logits(model, reference, args.threads).items():
        print(f"{runtime}: logits within {difference:.2e} of googlenet's on the reference images")

    names = list(OURS) + RUNTIMES
    figures = {(name, batch): [] for name in names for batch in args.batches}
    for round_ in range(args.rounds):
        for batch in args.batches:
            for name in names:
                rate = ours(batch, OURS[name], args) if name in OURS else theirs(name, batch, model, args)
                figures[(name, batch)].append(rate)
                print(f"round {round_ + 1}/{args.rounds} batch {batch:>3} {name:<17} {rate:7.1f} images/s",
                      file=sys.stderr)

    print(f"\nimages/s, {args.threads} threads, torchvision variant, 224x224, "
          f"median of {args.rounds} interleaved rounds (min-max)")
    print("| batch | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for batch in args.batches:
        cells = []
        for name in names:
            rates = figures[(name, batch)]
            median = statistics.median(rates)
            base = statistics.median(figures[(BASE[name], batch)]) if name in BASE else None
            ratio = "" if base is None else f", ours {base / median:.2f}x"
            cells.append(f"{median:.1f} ({min(rates):.1f}-{max(rates):.1f}{ratio})")
        print(f"| {batch} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"runtime": n, "batch": b, "images_per_sec": r} for (n, b), r in figures.items()], f, indent=1)


if __name__ == "__main__":
    main()

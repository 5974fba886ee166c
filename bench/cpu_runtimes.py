#!/usr/bin/env python3
"""GoogLeNet inference on the CPU: this project against the deployment runtimes, in one run.

Exports the torchvision variant as ONNX with `googlenet export` (with reference logits for the
four reference images of ../shared), then times, in interleaved rounds, one process per figure:
ONNX Runtime (CPU execution provider), OpenVINO with an f32 precision hint, OpenVINO with its
defaults (bf16 on CPUs with AVX512-BF16 or AMX), and `googlenet bench model --engine fast` in f32
and in bf16. Before timing, each runtime's logits on the reference images are checked against ours
(f32); where OpenVINO's default runs f32 (a CPU without bf16 instructions) it is compared with our
f32. Prints images/s (median over rounds of each round's median, min/max over rounds) and each
runtime's ratio to ours: f32 runtimes against our f32, OpenVINO's default against our bf16, and
in how many rounds ours was the faster of the two. Each process times enough calls for 64 images
(at least 5 calls) unless --iterations says otherwise.

With --int8, also int8 after calibration on the same images of ../shared/data/hymenoptera/train
(--int8-images of them, spread evenly over the sorted files): ONNX Runtime's `quantize_static` of the
export (QDQ, u8 activations, i8 weights per channel, MinMax), run by ONNX Runtime and by OpenVINO,
against `googlenet bench model --int8-calibration`; their logits are compared with f32's.

Needs onnxruntime, openvino, numpy and safetensors (`pip install onnxruntime openvino safetensors`;
--int8 also onnx and pillow); the project itself does not.

    python bench/cpu_runtimes.py --rounds 3 --threads 2 --batches 16 1
    python bench/cpu_runtimes.py --rounds 3 --threads 2 --batches 16 1 --int8
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
        "openvino-default": "googlenet fast bf16", "onnxruntime-int8": "googlenet fast int8",
        "openvino-int8": "googlenet fast int8"}
INT8_RUNTIMES = ["onnxruntime-int8", "openvino-int8"]
# Relative L2 distance from our f32 logits under which a runtime computed in f32 (bf16 is ~5e-2).
F32_AGREEMENT = 1e-4
CALIBRATION = os.path.join(SHARED, "data", "hymenoptera", "train")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.path.join(HERE, "..", "target", "release", "googlenet"),
                   help="the googlenet binary (cargo build --release)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", nargs="+", type=int, default=[16, 1])
    p.add_argument("--iterations", type=int,
                   help="timed iterations per process (default: enough for 64 images, at least 5)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    p.add_argument("--int8", action="store_true", help="also int8, calibrated on hymenoptera's training images")
    p.add_argument("--int8-images", type=int, default=32, help="calibration images")
    p.add_argument("--worker", nargs=3, metavar=("RUNTIME", "BATCH", "MODEL"), help=argparse.SUPPRESS)
    return p.parse_args()


def session(runtime, model, threads):
    """A function from an NCHW float32 array to the logits, on `runtime`."""
    if runtime.startswith("onnxruntime"):
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


def iterations(batch, args):
    """Timed iterations per process at `batch`: a batch-1 figure from 5 calls would time a few
    tens of milliseconds, shorter than the noise of a shared machine."""
    return args.iterations or max(5, -(-64 // batch))


def worker(runtime, batch, model, args):
    """One figure: images/s of `runtime` at `batch`, printed as a JSON line."""
    import numpy as np
    run = session(runtime, model, args.threads)
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    for _ in range(args.warmup):
        run(x)
    rates = []
    for _ in range(iterations(batch, args)):
        start = time.perf_counter()
        run(x)
        rates.append(batch / (time.perf_counter() - start))
    print(json.dumps({"images_per_sec": statistics.median(rates)}))


def check_logits(models, reference, threads):
    """Each runtime's logits on the reference images against ours (f32): max abs difference and
    relative L2."""
    import numpy as np
    from safetensors.numpy import load_file
    ref = load_file(reference)
    differences = {}
    for runtime, model in models.items():
        logits = session(runtime, model, threads)(ref["input"])
        l2 = float(np.linalg.norm(logits - ref["logits"]) / np.linalg.norm(ref["logits"]))
        differences[runtime] = (float(np.abs(logits - ref["logits"]).max()), l2)
    return differences


def calibration_images(count):
    """`count` image files of CALIBRATION spread evenly over the sorted list, as ours chooses them
    (`googlenet::eval::calibration`)."""
    files = []
    for folder, _, names in sorted(os.walk(CALIBRATION)):
        files += [os.path.join(folder, n) for n in sorted(names)
                  if n.lower().endswith((".jpg", ".jpeg", ".png"))]
    count = min(count, len(files))
    return [files[i * len(files) // count] for i in range(count)]


def quantize(model, out, count):
    """ONNX Runtime's static int8 quantization of `model`, calibrated on `count` images resized to
    256 and center-cropped to 224 (PIL, bilinear), normalised as ImageNet."""
    import numpy as np
    from PIL import Image
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    def prepare(path):
        image = Image.open(path).convert("RGB")
        scale = 256 / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
        left, top = round((image.width - 224) / 2), round((image.height - 224) / 2)
        pixels = np.asarray(image.crop((left, top, left + 224, top + 224)), np.float32) / 255
        return ((pixels - mean) / std).transpose(2, 0, 1)[None]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter({"input": prepare(p)} for p in calibration_images(count))

        def get_next(self):
            return next(self.batches, None)

    quantize_static(model, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ours(batch, precision, args):
    cmd = [args.binary, "bench", "model", "--variant", "torchvision", "--mode", "infer", "--engine", "fast",
           "--batch", str(batch), "--threads", str(args.threads), "--iterations", str(iterations(batch, args)),
           "--warmup", str(args.warmup), "--json"]
    if precision == "int8":
        cmd += ["--int8-calibration", CALIBRATION]
    else:
        cmd += ["--precision", precision]
    return run_json(cmd)["images_per_sec"]["median"]


def theirs(runtime, batch, model, args):
    cmd = [sys.executable, __file__, "--threads", str(args.threads), "--iterations", str(iterations(batch, args)),
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
    models = {runtime: model for runtime in RUNTIMES}
    ours_names = dict(OURS)
    if args.int8:
        quantized = os.path.join(folder, "googlenet.int8.onnx")
        quantize(model, quantized, args.int8_images)
        models.update({runtime: quantized for runtime in INT8_RUNTIMES})
        ours_names["googlenet fast int8"] = "int8"
    base = dict(BASE)
    for runtime, (difference, l2) in check_logits(models, reference, args.threads).items():
        print(f"{runtime}: logits within {difference:.2e} of googlenet's f32 on the reference images "
              f"(relative L2 {l2:.2e})")
        if runtime == "openvino-default" and l2 < F32_AGREEMENT:
            # No bf16 instructions here: OpenVINO's default ran f32, so it is compared with our f32.
            print("openvino-default: ran f32 on this CPU, compared with googlenet fast (f32)")
            base[runtime] = "googlenet fast"

    names = list(ours_names) + list(models)
    figures = {(name, batch): [] for name in names for batch in args.batches}
    for round_ in range(args.rounds):
        for batch in args.batches:
            for name in names:
                rate = (ours(batch, ours_names[name], args) if name in ours_names
                        else theirs(name, batch, models[name], args))
                figures[(name, batch)].append(rate)
                print(f"round {round_ + 1}/{args.rounds} batch {batch:>3} {name:<17} {rate:7.1f} images/s",
                      file=sys.stderr)

    print(f"\nimages/s, {args.threads} threads, torchvision variant, 224x224, "
          f"median of {args.rounds} interleaved rounds (min-max; ours: the ratio of medians, and the rounds\n"
          f"in which ours beat the runtime in the same round)")
    print("| batch | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for batch in args.batches:
        cells = []
        for name in names:
            rates = figures[(name, batch)]
            median = statistics.median(rates)
            ratio = ""
            if name in base:
                ours_rates = figures[(base[name], batch)]
                ahead = sum(o > r for o, r in zip(ours_rates, rates))
                ratio = (f", ours {statistics.median(ours_rates) / median:.2f}x, "
                         f"ahead in {ahead}/{len(rates)} rounds")
            cells.append(f"{median:.1f} ({min(rates):.1f}-{max(rates):.1f}{ratio})")
        print(f"| {batch} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"runtime": n, "batch": b, "images_per_sec": r} for (n, b), r in figures.items()], f, indent=1)


if __name__ == "__main__":
    main()

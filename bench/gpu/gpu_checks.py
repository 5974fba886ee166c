"""GPU checks of googlenet (issue 7), run by bench/gpu/run_gpu_checks.sh; see there for the setup.

    python gpu_checks.py logits  BIN SHARED OUTDIR   (1) CUDA logits against the CPU backend's
                                                     (DEVICE=wgpu: wgpu's, PyTorch on the CPU)
    python gpu_checks.py speed   BIN OUTDIR          (2) training images/s, googlenet and PyTorch
    python gpu_checks.py train   BIN SHARED OUTDIR   (3) a short training run: the loss falls
    python gpu_checks.py loader  BIN SHARED OUTDIR   (4) the loader's images/s on all cores

Each writes OUTDIR/<check>.json and prints a summary. Exit 0: passed (or measured); 1: a check
failed; 2: the binary or a file is missing or the binary lacks what the check needs (said plainly);
3: a Python package is missing.

The binary's commands and flags these checks use (the interface they expect):
  googlenet export OUT.onnx --weights PTH --variant torchvision --reference-images PNG...
                            --device cpu|cuda:0 --precision f32|bf16
      writes OUT.reference.safetensors with "input" and "logits" (f32)
  googlenet bench model --variant torchvision --device cuda:0 --precision f32|bf16 --mode train
                        --batch 128 --json
      prints a JSON object with the training throughput in "images_per_second"
  googlenet train --data DIR --variant torchvision --device cuda:0 --precision bf16
                  --batch-size 32 --max-steps N --json
      prints one JSON object per line; the lines with a "loss" are the training log
  googlenet bench loader --data DIR --batch 128 --json
      prints a JSON object with "images_per_second" (decoding + augmentation on all cores)
"""
import json
import os
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
BATCH = 128
# googlenet's GPU device. DEVICE=wgpu runs the logits check on a machine without CUDA (PyTorch then
# runs on the CPU), which is how this script is tried out before a GPU is available.
DEVICE = os.environ.get("DEVICE", "cuda:0")
TORCH_DEVICE = "cuda" if DEVICE.startswith("cuda") else "cpu"
# The reduced precision the logits check reports (lavapipe, Mesa's CPU Vulkan, has f16 but no bf16).
REDUCED = os.environ.get("REDUCED", "bf16")


def fail(code, message):
    print(f"FAIL: {message}")
    sys.exit(code)


def run(binary, args, timeout=900):
    """Runs the binary; returns stdout. Exits 2 with its stderr when it fails."""
    command = [binary, *args]
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        stderr = result.stderr.strip()
        hint = ""
        if "built without the cuda feature" in stderr:
            hint = "\nthis binary has no CUDA backend: build it with `cargo build --release --features cuda`"
        elif "unrecognized subcommand" in stderr or "unexpected argument" in stderr:
            hint = "\nthis binary does not have the command or flag above (see the interface in gpu_checks.py)"
        fail(2, f"{' '.join(command)} exited {result.returncode}:\n{stderr[-3000:]}{hint}")
    return result.stdout


def write(outdir, name, record):
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, f"{name}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


def json_objects(text):
    """Every line of `text` that is a JSON object, parsed."""
    objects = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                objects.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    if not objects and text.strip().startswith("{"):
        objects.append(json.loads(text))
    return objects


def images_per_second(stdout, what):
    for obj in json_objects(stdout):
        if "images_per_second" in obj:
            return float(obj["images_per_second"])
    fail(2, f"{what}: no \"images_per_second\" in its --json output:\n{stdout[-2000:]}")


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
        logits[(device, precision)] = reference["logits"].astype(np.float64)
        model_input = reference["input"]
    cpu = logits[("cpu", "f32")]

    gpu_f32, gpu_reduced = logits[(DEVICE, "f32")], logits[(DEVICE, REDUCED)]

    # PyTorch on the same GPU, same weights and input: a second opinion on both backends.
    state = torch.load(pth, map_location="cpu", weights_only=True)
    net = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    net.load_state_dict(state)
    net = net.to(TORCH_DEVICE).eval()
    with torch.no_grad():
        torch_logits = net(torch.from_numpy(model_input).to(TORCH_DEVICE)).double().cpu().numpy()

    def diff(a, b):
        return float(np.max(np.abs(a - b)))

    record = {
        "check": f"{DEVICE} logits against the CPU backend, torchvision calibrated weights, 4 reference images",
        "device": DEVICE,
        "tolerance": LOGITS_TOLERANCE,
        "logit_range": [float(cpu.min()), float(cpu.max())],
        "max_abs_diff_gpu_f32_vs_cpu": diff(gpu_f32, cpu),
        "reduced_precision": REDUCED,
        "max_abs_diff_gpu_reduced_vs_cpu": diff(gpu_reduced, cpu),
        "max_abs_diff_cpu_vs_pytorch": diff(cpu, torch_logits),
        "max_abs_diff_gpu_f32_vs_pytorch": diff(gpu_f32, torch_logits),
        "pytorch_device": TORCH_DEVICE,
        "top1_cpu": cpu.argmax(1).tolist(),
        "top1_gpu_f32": gpu_f32.argmax(1).tolist(),
        "top1_gpu_reduced": gpu_reduced.argmax(1).tolist(),
    }
    record["passed"] = (record["max_abs_diff_gpu_f32_vs_cpu"] <= LOGITS_TOLERANCE
                        and record["top1_gpu_f32"] == record["top1_cpu"])
    write(outdir, "logits", record)
    for key, value in record.items():
        print(f"  {key}: {value}")
    if not record["passed"]:
        fail(1, f"{DEVICE} f32 logits differ from the CPU backend's by more than {LOGITS_TOLERANCE}")
    print("logits: passed")


# (2) ------------------------------------------------------------------------------------------
def torch_train_images_per_second(precision, steps=20, warmup=5):
    """torchvision's GoogLeNet (aux heads on), SGD momentum 0.9, batch 128 at 224, the paper's
    loss main + 0.3 (aux1 + aux2); bf16 through torch.autocast (f32 master weights)."""
    torch.manual_seed(0)
    net = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True).cuda().train()
    optim = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    ce = torch.nn.CrossEntropyLoss()
    x = torch.randn(BATCH, 3, 224, 224, device="cuda")
    y = torch.randint(0, 1000, (BATCH,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = net(x)
            loss = ce(out.logits, y) + 0.3 * (ce(out.aux_logits1, y) + ce(out.aux_logits2, y))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * BATCH / (time.perf_counter() - start)


def check_speed(binary, outdir):
    rounds = int(os.environ.get("ROUNDS", "1"))
    results = {}
    for r in range(rounds):
        for precision in ["f32", "bf16"]:
            # Interleaved: ours, then PyTorch, for each precision, so both see the same machine state.
            ours = images_per_second(run(binary, [
                "bench", "model", "--variant", "torchvision", "--device", "cuda:0",
                "--precision", precision, "--mode", "train", "--batch", str(BATCH), "--json"]),
                f"googlenet bench model {precision}")
            theirs = torch_train_images_per_second(precision)
            results.setdefault(precision, []).append({"googlenet": ours, "pytorch": theirs})
            print(f"  round {r + 1} {precision}: googlenet {ours:.0f} images/s, PyTorch {theirs:.0f} images/s")
    summary = {}
    for precision, runs in results.items():
        ours = max(x["googlenet"] for x in runs)
        theirs = max(x["pytorch"] for x in runs)
        summary[precision] = {"googlenet_images_per_second": ours, "pytorch_images_per_second": theirs,
                              "ratio_googlenet_to_pytorch": ours / theirs, "runs": runs}
    write(outdir, "speed", {"check": f"training images/s at batch {BATCH}, 224x224, torchvision variant",
                            "torch": torch.__version__, "results": summary})
    print("speed: measured")


# (3) ------------------------------------------------------------------------------------------
def check_train(binary, shared, outdir):
    data = os.path.join(shared, "data", "hymenoptera")
    if not os.path.isdir(data):
        fail(2, f"training data missing: {data} (set SHARED)")
    steps = int(os.environ.get("TRAIN_STEPS", "40"))
    stdout = run(binary, ["train", "--data", data, "--variant", "torchvision", "--device", "cuda:0",
                          "--precision", "bf16", "--batch-size", "32", "--max-steps", str(steps), "--json"])
    losses = [float(o["loss"]) for o in json_objects(stdout) if "loss" in o]
    if len(losses) < 4:
        fail(2, f"fewer than 4 losses in `googlenet train --json`'s output:\n{stdout[-2000:]}")
    quarter = max(1, len(losses) // 4)
    first, last = float(np.mean(losses[:quarter])), float(np.mean(losses[-quarter:]))
    record = {"check": f"{steps} steps of training on hymenoptera, cuda:0 bf16, batch 32",
              "losses": losses, "mean_first_quarter": first, "mean_last_quarter": last,
              "passed": last < first}
    write(outdir, "train", record)
    print(f"  loss: first quarter {first:.4f}, last quarter {last:.4f}")
    if not record["passed"]:
        fail(1, "the loss did not fall")
    print("train: passed")


# (4) ------------------------------------------------------------------------------------------
def check_loader(binary, shared, outdir):
    data = os.path.join(shared, "data", "hymenoptera")
    stdout = run(binary, ["bench", "loader", "--data", data, "--batch", str(BATCH), "--json"])
    rate = images_per_second(stdout, "googlenet bench loader")
    write(outdir, "loader", {"check": "loader images/s on all cores", "cores": os.cpu_count(),
                             "images_per_second": rate})
    print(f"  loader: {rate:.0f} images/s on {os.cpu_count()} cores")


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        sys.exit(2)
    check, binary = sys.argv[1], sys.argv[2]
    os.makedirs(sys.argv[-1], exist_ok=True)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        fail(2, f"no executable googlenet binary at {binary}")
    if TORCH_DEVICE == "cuda" and not torch.cuda.is_available():
        fail(2, "PyTorch sees no CUDA device")
    if check != "logits" and TORCH_DEVICE != "cuda":
        fail(2, f"the {check} check is for CUDA (DEVICE={DEVICE})")
    if check == "logits":
        check_logits(binary, sys.argv[3], sys.argv[4])
    elif check == "speed":
        check_speed(binary, sys.argv[3])
    elif check == "train":
        check_train(binary, sys.argv[3], sys.argv[4])
    elif check == "loader":
        check_loader(binary, sys.argv[3], sys.argv[4])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()

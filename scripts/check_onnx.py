"""onnxruntime reproduces googlenet's logits from its ONNX export.

For each case below, runs
    googlenet export OUT.onnx [--weights W] --variant V --reference-images <the 4 reference PNGs>
which writes the ONNX model and OUT.reference.safetensors (the normalised input and the logits
googlenet computes for it), then runs the model in onnxruntime (CPU) on that input and requires
    max |onnxruntime - googlenet| <= 1e-4, and <= 1e-4 relative to the largest |logit|,
the same logits for a batch of 1 as for the first image of the batch of 4 (dynamic batch),
opset >= 17, and, where the onnx package is installed, onnx.checker's full check.

Cases: torchvision (../shared's calibrated torchvision state), torchvision with transform_input
(the same weights in a native file whose metadata sets it), paper (random initialisation: there
are no reference weights) and keras-seed (../shared's Keras seed weights).

Usage: python scripts/check_onnx.py path/to/googlenet-binary
Exit 0 when every case passes, 1 on a mismatch, 2 when a file or the binary fails,
3 when onnxruntime (or numpy/safetensors) is not installed (says so).
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import onnxruntime as ort
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file
except ImportError as e:
    print(f"onnxruntime not installed: skipped (check_onnx needs onnxruntime, numpy and safetensors: {e})")
    sys.exit(3)
try:
    import onnx
except ImportError:
    onnx = None

TOLERANCE = 1e-4

binary = sys.argv[1] if len(sys.argv) > 1 else None
if not binary or not os.access(binary, os.X_OK):
    print("usage: python scripts/check_onnx.py path/to/googlenet-binary")
    sys.exit(2)
shared = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
inputs_dir = os.path.join(shared, "reference", "inputs")
if not os.path.isdir(inputs_dir):
    print(f"FAIL: ground truth missing: {inputs_dir} (check_onnx needs ../shared beside the repository)")
    sys.exit(2)
images = sorted(os.path.join(inputs_dir, f) for f in os.listdir(inputs_dir) if f.endswith(".png"))
torchvision_pth = os.path.join(shared, "reference", "torchvision", "torchvision_seed1234_calibrated.pth")
keras_weights = os.path.join(shared, "reference", "keras_seed", "weights.safetensors")


def run(args):
    result = subprocess.run([binary, *args], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"FAIL: googlenet {' '.join(args)}\n{result.stderr}")
        sys.exit(2)


def with_transform_input(tmp):
    """The torchvision weights as a native file whose metadata sets transform_input."""
    native = os.path.join(tmp, "torchvision_native.safetensors")
    run(["convert", torchvision_pth, native, "--variant", "torchvision"])
    with safe_open(native, "np") as f:
        metadata = dict(f.metadata())
    metadata["googlenet.transform_input"] = "true"
    out = os.path.join(tmp, "torchvision_transform_input.safetensors")
    save_file(load_file(native), out, metadata=metadata)
    return out


def check(name, export_args, tmp):
    model_path = os.path.join(tmp, f"{name}.onnx")
    run(["export", model_path, *export_args, "--reference-images", *images])
    reference = load_file(os.path.join(tmp, f"{name}.reference.safetensors"))
    x, want = reference["input"], reference["logits"]
    problems = []
    if onnx is not None:
        model = onnx.load(model_path)
        onnx.checker.check_model(model, full_check=True)
        opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        batch = model.graph.input[0].type.tensor_type.shape.dim[0]
        if opset < 17:
            problems.append(f"opset {opset} < 17")
        if not batch.dim_param:
            problems.append("batch dimension is not free")
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"input": x})[0]
    single = session.run(["logits"], {"input": x[:1]})[0]
    diff = float(np.abs(got - want).max())
    scale = float(np.abs(want).max())
    batch_diff = float(np.abs(single[0] - got[0]).max())
    spread = float(np.abs(want - want[:1]).max())
    if got.shape != want.shape:
        problems.append(f"shape {got.shape} != {want.shape}")
    if not diff <= TOLERANCE:
        problems.append(f"max abs diff {diff:.3g} > {TOLERANCE}")
    if not diff <= TOLERANCE * scale:
        problems.append(f"relative diff {diff / scale:.3g} > {TOLERANCE}")
    if not batch_diff <= TOLERANCE * scale:
        problems.append(f"batch of 1 differs from batch of 4 by {batch_diff:.3g}")
    if spread == 0.0:
        problems.append("all images give the same logits: the comparison would prove nothing")
    status = "ok" if not problems else "FAIL: " + "; ".join(problems)
    print(f"{name:28} max |diff| {diff:9.3g}  max |logit| {scale:9.3g}  relative {diff / scale:9.3g}  {status}")
    return not problems


with tempfile.TemporaryDirectory() as tmp:
    cases = [
        ("torchvision", ["--weights", torchvision_pth, "--variant", "torchvision"]),
        ("torchvision_transform_input", ["--weights", with_transform_input(tmp)]),
        ("paper_random_init", ["--variant", "paper"]),
        ("keras-seed", ["--weights", keras_weights, "--variant", "keras-seed"]),
    ]
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__ if onnx else 'not installed (no checker)'}")
    results = [check(name, args, tmp) for name, args in cases]
if all(results):
    print("check_onnx: onnxruntime reproduces googlenet's logits for every variant")
    sys.exit(0)
sys.exit(1)

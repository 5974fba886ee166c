"""Round trip torchvision .pth -> googlenet -> .pth -> torchvision.

Loads ../shared's torchvision GoogLeNet state into torchvision, converts it with
`googlenet convert IN OUT --variant torchvision` (which reads, validates, builds the burn model and
writes it back from the model's own tensors), loads the result with load_state_dict(strict=True)
and requires the same eval logits on the 4 reference images.

Usage: python scripts/check_torchvision_roundtrip.py path/to/googlenet-binary
Exit 0 on success, 1 on a mismatch, 3 when torch/torchvision are not installed (says so).
"""
import os, subprocess, sys, tempfile

try:
    import torch, torchvision
    from safetensors.torch import load_file
except ImportError as e:
    print(f"SKIP: torchvision round trip needs torch, torchvision and safetensors ({e})")
    sys.exit(3)

binary = sys.argv[1]
shared = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference")
pth = os.path.join(shared, "torchvision", "torchvision_seed1234_calibrated.pth")
x = load_file(os.path.join(shared, "torchvision", "calibrated_eval_io.safetensors"))["input_nchw_imagenet"]


def logits(state):
    model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        return model.eval()(x)


torch.set_num_threads(2)
original = torch.load(pth, weights_only=True)
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "roundtrip.pth")
    subprocess.run([binary, "convert", pth, out, "--variant", "torchvision"], check=True)
    back = torch.load(out, weights_only=True)
    # The legacy (pre-1.6, non-zip) container must read the same.
    legacy = os.path.join(tmp, "legacy.pth")
    torch.save(original, legacy, _use_new_zipfile_serialization=False)
    out_legacy = os.path.join(tmp, "from_legacy.pth")
    subprocess.run([binary, "convert", legacy, out_legacy, "--variant", "torchvision"], check=True)
    from_legacy = torch.load(out_legacy, weights_only=True)
    if any(not torch.equal(from_legacy[k], back[k]) for k in back):
        print("FAIL: the legacy container converted differently")
        sys.exit(1)
missing = set(original) ^ set(back)
if missing:
    print(f"FAIL: keys differ: {sorted(missing)[:5]}")
    sys.exit(1)
worst_tensor = max(
    float((original[k].double() - back[k].double()).abs().max()) for k in original if not k.endswith("num_batches_tracked")
)
diff = float((logits(original) - logits(back)).abs().max())
print(f"torchvision round trip: {len(back)} keys, strict load OK, legacy container OK, max tensor diff {worst_tensor:.3g}, max logit diff {diff:.3g}")
sys.exit(0 if diff <= 1e-6 and worst_tensor == 0.0 else 1)

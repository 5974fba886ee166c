"""Reference for two SGD steps of torchvision's GoogLeNet, made with PyTorch.

Loads ../shared/reference/torchvision/torchvision_seed1234_calibrated.pth into
torchvision.models.googlenet (aux heads on, transform_input False), train mode with every Dropout
disabled (BatchNorm uses batch statistics), and takes two steps of
torch.optim.SGD(lr=0.01, momentum=0.9, weight_decay=2e-4) on the 4 reference images with labels
[698, 985, 310, 309] and loss CE(main) + 0.3 * (CE(aux1) + CE(aux2)) -- the paper's weighting.
Two steps, so that the momentum buffer takes part in the second update; the tensors are saved
after each step (`step1.NAME`, `step2.NAME`).

The steps are computed in float64 (PyTorch's own float32 gradients of the deepest layers are ~1%
away from the float64 ones with a batch of 4, see tests/fixtures/make_torchvision_grads_f64.py),
and, for comparison, in float32; the script saves how far PyTorch's float32 result lands from the
float64 one: `torch_f32_error.stepK.NAME` (max |diff|) and `torch_f32_change_error.stepK.NAME`
(||diff|| / ||change of the tensor since the start||). With a batch of 4 and BatchNorm in train
mode the gradients of the first layers are ill-conditioned (PyTorch float32's conv1 is 2e-4 off
after one step, 2e-2 after two), so tests/suite/train_sgd_step.rs holds well-conditioned tensors to
1e-5 and the others to a small multiple of PyTorch's own float32 error. It saves a handful of resulting tensors (float32 values of the float64
result), small enough to keep in the repository, to
tests/fixtures/torchvision_sgd_two_steps.safetensors.

Run from the repository root, with ../shared beside it:
    python bench/make_sgd_reference.py      (torch 2.15, torchvision 0.29, safetensors)
"""
import os
import sys

try:
    import torch
    import torchvision
    from safetensors.torch import load_file, save_file
except ImportError as e:  # pragma: no cover
    sys.exit(f"make_sgd_reference.py needs torch, torchvision and safetensors: {e}")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "reference")
OUT = os.path.join(ROOT, "tests", "fixtures", "torchvision_sgd_two_steps.safetensors")
LR, MOMENTUM, WEIGHT_DECAY, AUX_WEIGHT, STEPS = 0.01, 0.9, 2e-4, 0.3, 2
LABELS = [698, 985, 310, 309]
# Rows of the 1000-way classifiers to keep (the labels and a few others): the whole matrices are 4 MB each.
ROWS = [0, 1, 309, 310, 500, 698, 985, 999]
FULL = [
    "conv1.conv.weight",
    "conv1.bn.weight",
    "conv1.bn.bias",
    "conv1.bn.running_mean",
    "conv1.bn.running_var",
    "inception4e.branch3.1.conv.weight",
    "inception4e.branch3.1.bn.running_mean",
    "inception4e.branch3.1.bn.running_var",
    "inception5b.branch4.1.conv.weight",
    "fc.bias",
    "aux1.fc2.bias",
    "aux2.conv.conv.weight",
]
ROW_SLICED = ["fc.weight", "aux1.fc2.weight"]


def run(dtype):
    torch.manual_seed(0)
    state = torch.load(os.path.join(SHARED, "torchvision", "torchvision_seed1234_calibrated.pth"), weights_only=True)
    m = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    m.load_state_dict(state)
    m = m.to(dtype).train()
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.eval()
    x = load_file(os.path.join(SHARED, "inputs", "inputs.safetensors"))["torch_input_nchw_imagenet"].to(dtype)
    labels = torch.tensor(LABELS)
    opt = torch.optim.SGD(m.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    ce = torch.nn.functional.cross_entropy
    initial = {k: v.detach().clone() for k, v in m.state_dict().items()}
    losses, result, start = [], {}, {}
    for step in range(1, STEPS + 1):
        opt.zero_grad()
        out = m(x)
        loss = ce(out.logits, labels) + AUX_WEIGHT * (ce(out.aux_logits1, labels) + ce(out.aux_logits2, labels))
        loss.backward()
        opt.step()
        losses.append(loss.item())
        sd = m.state_dict()
        for k in FULL:
            result[f"step{step}.{k}"] = sd[k].detach().clone()
            start[f"step{step}.{k}"] = initial[k]
        for k in ROW_SLICED:
            result[f"step{step}.{k}.rows"] = sd[k].detach()[ROWS].clone()
            start[f"step{step}.{k}.rows"] = initial[k][ROWS]
    return result, losses, start


def main():
    torch.set_num_threads(2)
    r64, losses64, start = run(torch.float64)
    r32, losses32, _ = run(torch.float32)
    print("losses before each step (float64):", losses64)
    print("losses before each step (float32):", losses32)
    print("PyTorch float32 vs float64 after each step: max |diff|, and relative L2 error of the change")
    out = {}
    for k in r64:
        err = float((r32[k].double() - r64[k]).abs().max())
        change = r64[k] - start[k].double()
        rel = float((r32[k].double() - r64[k]).norm() / change.norm())
        print(f"  {k:51s} {err:.3e}  {rel:.3e}   (max |value| {float(r64[k].abs().max()):.3e})")
        out[k] = r64[k].to(torch.float32).contiguous()
        # How far PyTorch's own float32 result is from the float64 one.
        out["torch_f32_error." + k] = torch.tensor([err], dtype=torch.float32)
        out["torch_f32_change_error." + k] = torch.tensor([rel], dtype=torch.float32)
    out["rows"] = torch.tensor(ROWS, dtype=torch.int64)
    out["losses"] = torch.tensor(losses64, dtype=torch.float32)
    save_file(out, OUT, metadata={
        "made_by": "bench/make_sgd_reference.py",
        "optimizer": f"torch.optim.SGD(lr={LR}, momentum={MOMENTUM}, weight_decay={WEIGHT_DECAY}), {STEPS} steps",
        "loss": f"CE(main) + {AUX_WEIGHT} * (CE(aux1) + CE(aux2)), labels {LABELS}, dropout off, train mode",
        "torch": torch.__version__, "torchvision": torchvision.__version__, "precision": "float64, stored as float32",
    })
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()

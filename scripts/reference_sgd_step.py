"""PyTorch's first SGD step on the calibrated torchvision reference, in float32 and float64.

The step of tests/suite/fast_train.rs (`trainer_steps_on_the_fast_path_move_the_model_as_burns_do`):
torchvision's googlenet with ../shared's calibrated state, aux heads on, every Dropout off,
BatchNorm on batch statistics, the 4 reference images and labels of
calibrated_train_nodropout.safetensors, loss = CE(main) + 0.3 * (CE(aux1) + CE(aux2)), and one
step of the paper's recipe (SGD, lr 0.01, momentum 0.9, weight decay 2e-4). Prints the loss
before and after the step and their difference; the test holds our float32 steps to the float64
difference.

Usage: python scripts/reference_sgd_step.py [path/to/shared]   (default: ../shared)
"""
import os
import sys

import torch
import torchvision
from safetensors.torch import load_file


def step(shared, dtype):
    folder = os.path.join(shared, "reference", "torchvision")
    state = torch.load(os.path.join(folder, "torchvision_seed1234_calibrated.pth"), weights_only=True)
    model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False,
                                         transform_input=False)
    model.load_state_dict(state)
    model = model.to(dtype).train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    reference = load_file(os.path.join(folder, "calibrated_train_nodropout.safetensors"))
    x = reference["input_nchw_imagenet"].to(dtype)
    labels = reference["labels"].long()
    ce = torch.nn.functional.cross_entropy

    def loss():
        out = model(x)
        return ce(out.logits, labels) + 0.3 * (ce(out.aux_logits1, labels) + ce(out.aux_logits2, labels))

    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    before = loss()
    before.backward()
    sgd.step()
    with torch.no_grad():
        after = loss()
    return before.item(), after.item()


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "shared")
    torch.set_num_threads(2)
    for dtype in (torch.float32, torch.float64):
        before, after = step(shared, dtype)
        print(f"{dtype}: loss {before:.7f} -> {after:.7f}, change {after - before:.6f}")


if __name__ == "__main__":
    main()

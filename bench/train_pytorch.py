"""The `paper` recipe on the `paper` variant in PyTorch, to compare with `googlenet train`.

Same network as the Rust `paper` variant (Table 1 of the paper: biased convolutions + ReLU,
LocalRespNorm(5, 1e-4, 0.75, 1) in the stem, true 5x5 branches, 3x3/2 ceil-mode max pools, aux heads
avgpool 5x5/3 -> conv 1x1 128 -> FC 1024 -> dropout 0.7 -> FC, dropout 0.4 before the classifier),
same initialisation (He normal, fan_in, zero biases), same recipe (SGD lr 0.01, momentum 0.9,
dampening 0, weight decay 2e-4, lr x0.96 every 8 epochs, loss CE(main) + 0.3 (CE(aux1) + CE(aux2)),
batch 32, Polyak/EMA averaging of all weights and BatchNorm-free buffers with decay
min(0.999, (1+n)/(10+n)), the average evaluated), same data handling (RandomResizedCrop(N) +
RandomHorizontalFlip for training, Resize(N*8/7) + CenterCrop(N) for validation, ImageNet mean
subtracted, std 1).

    python bench/train_pytorch.py --data ../shared/data/hymenoptera --input-size 112 --epochs 30
        [--threads 2] [--seed 1234] [--out bench/train_pytorch_hymenoptera.csv]

Prints one line per epoch (train loss/top-1, validation loss/top-1 of the averaged model) and the
wall time; writes the same as CSV. Needs torch, torchvision, pillow.
"""
import argparse
import copy
import csv
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
    from torchvision import transforms
except ImportError as e:  # pragma: no cover
    sys.exit(f"train_pytorch.py needs torch, torchvision and pillow: {e}")

INCEPTIONS = [
    (192, [64, 96, 128, 16, 32, 32]),
    (256, [128, 128, 192, 32, 96, 64]),
    (480, [192, 96, 208, 16, 48, 64]),
    (512, [160, 112, 224, 24, 64, 64]),
    (512, [128, 128, 256, 24, 64, 64]),
    (512, [112, 144, 288, 32, 64, 64]),
    (528, [256, 160, 320, 32, 128, 128]),
    (832, [256, 160, 320, 32, 128, 128]),
    (832, [384, 192, 384, 48, 128, 128]),
]


def conv(cin, cout, k, s=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, padding=(k - 1) // 2), nn.ReLU(inplace=True))


class Inception(nn.Module):
    def __init__(self, cin, c):
        super().__init__()
        self.b1 = conv(cin, c[0], 1)
        self.b2 = nn.Sequential(conv(cin, c[1], 1), conv(c[1], c[2], 3))
        self.b3 = nn.Sequential(conv(cin, c[3], 1), conv(c[3], c[4], 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), conv(cin, c[5], 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class Aux(nn.Module):
    def __init__(self, cin, classes, side):
        super().__init__()
        self.pool = nn.AvgPool2d(5, 3)
        self.conv = conv(cin, 128, 1)
        pooled = (side - 5) // 3 + 1
        self.fc1 = nn.Linear(128 * pooled * pooled, 1024)
        self.drop = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, classes)

    def forward(self, x):
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.drop(F.relu(self.fc1(x))))


def pooled_side(n):
    n = (n + 6 - 7) // 2 + 1  # conv 7x7/2 pad 3
    for _ in range(3):  # three 3x3/2 ceil-mode max pools before stage 4
        n = -(-(n - 3) // 2) + 1
    return n


class PaperGoogLeNet(nn.Module):
    def __init__(self, classes, input_size):
        super().__init__()
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)
        self.stem = nn.Sequential(
            conv(3, 64, 7, 2), pool(), nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0),
            conv(64, 64, 1), conv(64, 192, 3), nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0), pool())
        self.inc = nn.ModuleList(Inception(cin, c) for cin, c in INCEPTIONS)
        self.pool3, self.pool4 = pool(), pool()
        side = pooled_side(input_size)
        self.aux1 = Aux(512, classes, side)
        self.aux2 = Aux(528, classes, side)
        self.drop = nn.Dropout(0.4)
        self.fc = nn.Linear(1024, classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.stem(x)
        x = self.inc[1](self.inc[0](x))
        x = self.inc[2](self.pool3(x))
        a1 = self.aux1(x) if self.training else None
        x = self.inc[5](self.inc[4](self.inc[3](x)))
        a2 = self.aux2(x) if self.training else None
        x = self.pool4(self.inc[6](x))
        x = self.inc[8](self.inc[7](x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.drop(x)), a1, a2


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--input-size", type=int, default=112)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    n = a.input_size
    normalize = transforms.Normalize([0.485, 0.456, 0.406], [1.0, 1.0, 1.0])
    train_tf = transforms.Compose([transforms.RandomResizedCrop(n), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    val_tf = transforms.Compose([transforms.Resize((n * 8 + 3) // 7), transforms.CenterCrop(n),
                                 transforms.ToTensor(), normalize])
    train_set = torchvision.datasets.ImageFolder(f"{a.data}/train", train_tf)
    val_set = torchvision.datasets.ImageFolder(f"{a.data}/val", val_tf)
    train_loader = torch.utils.data.DataLoader(train_set, a.batch, shuffle=True, num_workers=0)
    val_loader = torch.utils.data.DataLoader(val_set, a.batch, num_workers=0)
    model = PaperGoogLeNet(len(train_set.classes), n)
    average = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=8, gamma=0.96)
    updates = 0
    rows = []
    start = time.time()
    for epoch in range(1, a.epochs + 1):
        model.train()
        seen = correct = loss_sum = 0
        t0 = time.time()
        for x, y in train_loader:
            main_out, a1, a2 = model(x)
            loss = F.cross_entropy(main_out, y) + 0.3 * (F.cross_entropy(a1, y) + F.cross_entropy(a2, y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            decay = min(0.999, (1 + updates) / (10 + updates))
            with torch.no_grad():
                for pa, pm in zip(average.state_dict().values(), model.state_dict().values()):
                    if pa.dtype.is_floating_point:
                        pa.mul_(decay).add_(pm, alpha=1 - decay)
            updates += 1
            seen += len(y)
            correct += int((main_out.argmax(1) == y).sum())
            loss_sum += loss.item() * len(y)
        sched.step()
        average.eval()
        vseen = vcorrect = vloss = 0
        with torch.no_grad():
            for x, y in val_loader:
                out, _, _ = average(x)
                vloss += float(F.cross_entropy(out, y, reduction="sum"))
                vcorrect += int((out.argmax(1) == y).sum())
                vseen += len(y)
        row = dict(epoch=epoch, train_loss=loss_sum / seen, train_top1=correct / seen,
                   val_main_loss=vloss / vseen, val_top1=vcorrect / vseen, seconds=time.time() - t0)
        rows.append(row)
        print(f"epoch {epoch}/{a.epochs}  train loss {row['train_loss']:.4f} top-1 {100 * row['train_top1']:.1f}%  "
              f"val main loss {row['val_main_loss']:.4f} top-1 {100 * row['val_top1']:.1f}%  {row['seconds']:.0f} s",
              flush=True)
    total = time.time() - start
    best = max(r["val_top1"] for r in rows)
    print(f"done in {total:.0f} s; final validation top-1 {100 * rows[-1]['val_top1']:.1f}%, best {100 * best:.1f}%")
    if a.out:
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, rows[0].keys())
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Data pipeline speed: `googlenet bench data` against torchvision on the same files, same run.

torchvision side: ImageFolder (PIL decode) -> RandomResizedCrop(224) -> RandomHorizontalFlip ->
ToTensor -> Normalize, DataLoader(batch_size=32, shuffle, num_workers=THREADS, persistent workers,
one untimed warm-up epoch). Rust side: `googlenet bench data DIR --threads THREADS --json`
(decode + random-resized crop 224 + flip + normalise into burn tensors, one warm-up pass).
The two alternate, REPEATS rounds, and the medians and their ratio are printed, for wall time and
per CPU-second (CPU time of all threads, and of torchvision's worker processes read from /proc:
the per-core figure, steadier than wall time on a shared machine).

usage: bench/data_pipeline.py [DIR] [--threads N] [--repeats R] [--binary target/release/googlenet]
"""
import argparse, json, os, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

try:
    import torch
    from torchvision import datasets, transforms as T
except ImportError as e:
    sys.exit(f"this script needs torch and torchvision ({e}); e.g. /opt/pyref/bin/python {sys.argv[0]}")


def process_cpu_seconds(pid):
    """User + system CPU time of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def torch_cpu_seconds(loader):
    """CPU time of this process and of the DataLoader's worker processes (None where unreadable)."""
    try:
        workers = loader._iterator._workers if loader.num_workers > 0 else []
        return time.process_time() + sum(process_cpu_seconds(w.pid) for w in workers)
    except (AttributeError, OSError):
        return None


def torch_rate(loader):
    cpu0 = torch_cpu_seconds(loader)
    start, n = time.perf_counter(), 0
    for images, _ in loader:
        n += images.shape[0]
    rate = n / (time.perf_counter() - start)
    cpu1 = torch_cpu_seconds(loader)
    per_cpu = n / (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None and cpu1 > cpu0 else None
    return rate, n, per_cpu


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", nargs="?", default=os.path.join(ROOT, "..", "shared", "data", "hymenoptera"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "googlenet"))
    a = p.parse_args()
    if not os.path.exists(a.binary):
        sys.exit(f"{a.binary} not found: run `cargo build --release` first")
    split = os.path.join(a.dir, "train") if os.path.isdir(os.path.join(a.dir, "train")) else a.dir
    torch.set_num_threads(1)
    tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ds = datasets.ImageFolder(split, transform=tf)
    kw = dict(num_workers=a.threads, persistent_workers=True) if a.threads > 0 else {}
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, **kw)
    torch_rate(loader)  # warm-up: starts the workers, fills the page cache
    ours, theirs, ours_cpu, theirs_cpu = [], [], [], []
    for _ in range(a.repeats):
        out = subprocess.run([a.binary, "bench", "data", a.dir, "--threads", str(a.threads), "--repeats", "1", "--json"],
                             check=True, capture_output=True, text=True).stdout
        report = json.loads(out)
        ours.append(report["images_per_sec"]["median"])
        ours_cpu.append(report["images_per_cpu_sec"])
        rate, _, per_cpu = torch_rate(loader)
        theirs.append(rate)
        if per_cpu is not None:
            theirs_cpu.append(per_cpu)
    o, t = statistics.median(ours), statistics.median(theirs)
    oc = statistics.median(ours_cpu)
    tc = statistics.median(theirs_cpu) if len(theirs_cpu) == len(ours_cpu) else None
    print(json.dumps({"dir": split, "images": len(ds), "threads": a.threads, "repeats": a.repeats,
                      "googlenet_images_per_sec": ours, "torchvision_images_per_sec": theirs,
                      "googlenet_images_per_cpu_sec": ours_cpu, "torchvision_images_per_cpu_sec": theirs_cpu,
                      "googlenet_median": round(o, 1), "torchvision_median": round(t, 1),
                      "ratio": round(o / t, 2),
                      "cpu_ratio": round(oc / tc, 2) if tc else None}, indent=1))
    print(f"googlenet {o:.1f} images/s, torchvision {t:.1f} images/s, ratio {o / t:.2f}x ({a.threads} thread(s))")
    if tc:
        print(f"per CPU-second (all threads and worker processes): googlenet {oc:.1f}, torchvision {tc:.1f}, "
              f"ratio {oc / tc:.2f}x")
    else:
        print("torchvision's worker CPU time could not be read: no per-CPU-second ratio")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""GoogLeNet speed side by side: this project against PyTorch on the same CPU, in one run.

Builds torchvision's googlenet(aux_logits=True, init_weights=True) and times it in PyTorch eager,
eager with channels_last, and torch.compile, next to `googlenet bench model --json` (our fast
inference and training engines, and burn-flex for both). The training step is also timed on the
paper's variant (true 5x5 branches, LocalRespNorm, biases: bench/train_pytorch.py's PaperGoogLeNet
on PyTorch's side) and in bf16, against PyTorch's CPU autocast
(`torch.autocast("cpu", torch.bfloat16)`, f32 master weights, as our `--precision bf16`). Every
figure is a separate process per round, and the rounds interleave the contenders, so that a busy
machine slows all of them alike. Prints a table with images/s (median over rounds of each round's
median, and the min/max over rounds), peak resident memory and ratios to PyTorch's fastest mode.

Needs torch and torchvision (e.g. `pip install torch torchvision`); the project itself does not.

    python bench/model_vs_pytorch.py --rounds 3 --threads 2
    python bench/model_vs_pytorch.py --modes infer --batches 1 16 --no-compile
    python bench/model_vs_pytorch.py --omp-passive   # on a machine shared with other work
    python bench/model_vs_pytorch.py --modes train --train-variants paper --train-precisions f32
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TORCH_CONFIGS = ["eager", "channels_last", "compile"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "googlenet"),
                   help="the googlenet binary (cargo build --release)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--modes", nargs="+", default=["infer", "train"], choices=["infer", "train"])
    p.add_argument("--batches", nargs="+", type=int, default=[16, 1], help="inference batch sizes")
    p.add_argument("--train-batch", type=int, default=16)
    p.add_argument("--train-variants", nargs="+", default=["torchvision", "paper"],
                   choices=["torchvision", "paper"], help="variants whose training step is timed")
    p.add_argument("--train-precisions", nargs="+", default=["f32", "bf16"], choices=["f32", "bf16"],
                   help="precisions of the timed training step")
    p.add_argument("--iterations", type=int, default=5, help="timed iterations per process (training: half)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (it compiles for minutes)")
    p.add_argument("--omp-passive", action="store_true",
                   help="run PyTorch with OMP_WAIT_POLICY=passive: on a busy machine its spinning OpenMP "
                        "threads otherwise lose most of their time, which would flatter this project")
    p.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    p.add_argument("--worker", nargs=5, metavar=("CONFIG", "MODE", "BATCH", "VARIANT", "PRECISION"),
                   help=argparse.SUPPRESS)
    return p.parse_args()


# ---------------------------------------------------------------- PyTorch side (one config per process)

def cpu_seconds():
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_bytes():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def torch_worker(config, mode, batch, variant, precision, args):
    try:
        import torch
        import torchvision
    except ImportError as e:
        sys.exit(f"PyTorch is missing ({e}); install torch and torchvision to run this comparison")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if variant == "paper":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from train_pytorch import PaperGoogLeNet
        model = PaperGoogLeNet(1000, 224)
    else:
        model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    x = torch.rand(batch, 3, 224, 224) * 2 - 1
    y = torch.randint(0, 1000, (batch,))
    if config == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if mode == "infer":
        model.eval()
        run_model = torch.compile(model) if config == "compile" else model

        def step():
            with torch.inference_mode():
                run_model(x)
    else:
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, dampening=0.0)
        loss_fn = torch.nn.CrossEntropyLoss()
        run_model = torch.compile(model) if config == "compile" else model

        def step():
            with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                logits, aux1, aux2 = run_model(x)
                loss = loss_fn(logits, y) + 0.3 * (loss_fn(aux1, y) + loss_fn(aux2, y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    iterations = iterations_for(mode, args)
    for _ in range(args.warmup):
        step()
    times = []
    cpu_start = cpu_seconds()
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    cpu = cpu_seconds() - cpu_start
    median = statistics.median(times)
    print(json.dumps({"cpu_seconds_per_image": cpu / (iterations * batch), "images_per_sec": {"median": batch / median, "min": batch / max(times),
                                         "max": batch / min(times)},
                      "peak_rss_bytes": peak_rss_bytes()}))


# ---------------------------------------------------------------- driver

def iterations_for(mode, args):
    return max(2, args.iterations // 2) if mode == "train" else args.iterations


def run_torch(config, work, args):
    mode, batch, variant, precision = work
    cmd = [sys.executable, __file__, "--worker", config, mode, str(batch), variant, precision,
           "--threads", str(args.threads),
           "--iterations", str(args.iterations), "--warmup", str(args.warmup)]
    env = dict(os.environ, OMP_WAIT_POLICY="passive") if args.omp_passive else None
    return run_json(cmd, env)


def run_rust(engine, work, args):
    mode, batch, variant, precision = work
    cmd = [args.binary, "bench", "model", "--variant", variant, "--mode", mode, "--batch", str(batch),
           "--precision", precision, "--threads", str(args.threads), "--iterations", str(iterations_for(mode, args)),
           "--warmup", str(args.warmup), "--engine", engine, "--json"]
    return run_json(cmd)


def run_json(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def contenders(work, args):
    """(name, kind, config) of everyone timed on `work`. PyTorch's torch.compile runs torchvision's
    f32 model only; our fast engine's bf16 step needs AMX tiles or AVX512-BF16, so without them a
    bf16 step is burn-flex's alone."""
    mode, _, variant, precision = work
    torch_configs = [c for c in TORCH_CONFIGS if not (args.no_compile and c == "compile")]
    if (variant, precision) != ("torchvision", "f32"):
        torch_configs = [c for c in torch_configs if c != "compile"]
    rust = [("googlenet fast", "fast"), ("googlenet burn-flex", "burn")]
    if mode == "train" and precision == "bf16" and not cpu_has_bf16_products():
        rust = rust[1:]
    prefix = "pytorch autocast " if precision == "bf16" else "pytorch "
    return [(prefix + c, "torch", c) for c in torch_configs] + [(name, "rust", e) for name, e in rust]


def cpu_has_bf16_products():
    """Whether this CPU reports AMX-BF16 or AVX512-BF16 (Linux /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def works_of(args):
    """(mode, batch, variant, precision) of every timed work."""
    works = [("infer", b, "torchvision", "f32") for b in args.batches if "infer" in args.modes]
    if "train" in args.modes:
        for precision in args.train_precisions:
            for variant in args.train_variants:
                works.append(("train", args.train_batch, variant, precision))
    return works


def work_name(work):
    mode, batch, variant, precision = work
    name = f"{'inference' if mode == 'infer' else 'step'} b{batch}"
    if variant != "torchvision":
        name += f" {variant}"
    return name + (f" {precision}" if precision != "f32" else "")


def main():
    args = parse_args()
    if args.worker:
        config, mode, batch, variant, precision = args.worker
        torch_worker(config, mode, int(batch), variant, precision, args)
        return
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")
    works = works_of(args)
    results = {}  # (work, name) -> list of per-round reports
    for r in range(args.rounds):
        for work in works:
            for name, kind, config in contenders(work, args):
                print(f"round {r + 1}/{args.rounds}: {work_name(work)}: {name}", file=sys.stderr, flush=True)
                report = run_torch(config, work, args) if kind == "torch" else run_rust(config, work, args)
                results.setdefault((work, name), []).append(report)
    rows = []
    for work in works:
        stats = {}
        for name, _, _ in contenders(work, args):
            reports = results[(work, name)]
            medians = [rep["images_per_sec"]["median"] for rep in reports]
            stats[name] = {"median": statistics.median(medians), "min": min(medians), "max": max(medians),
                           "images_per_cpu_second": 1 / statistics.median(
                               rep["cpu_seconds_per_image"] for rep in reports),
                           "peak_rss_gib": max(rep["peak_rss_bytes"] for rep in reports) / 2**30}
        torch_names = [n for n in stats if n.startswith("pytorch")]
        fastest = max(torch_names, key=lambda n: stats[n]["median"])
        eager = stats.get(torch_names[0]) if torch_names[0].endswith("eager") else None
        mode, batch, variant, precision = work
        for name, s in stats.items():
            rows.append({"mode": mode, "batch": batch, "variant": variant, "precision": precision,
                         "work": work_name(work), "name": name, **s,
                         "vs_eager": s["median"] / eager["median"] if eager else None,
                         "vs_fastest_pytorch": s["median"] / stats[fastest]["median"], "fastest_pytorch": fastest})
    print_table(rows, args)
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump({"threads": args.threads, "rounds": args.rounds, "rows": rows}, f, indent=1)
        os.replace(args.json + ".tmp", args.json)


def print_table(rows, args):
    print(f"GoogLeNet (torchvision variant unless named, 224x224), {args.threads} threads, {args.rounds} interleaved rounds; "
          f"images/s = median over rounds of each process's median (min-max over rounds); "
          f"img/CPU-s = images per CPU-second of all threads (steadier than wall time on a busy machine)")
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f}")
    header = f"| {'work':<18} | {'contender':<30} | {'images/s':>8} | {'min-max':>13} | {'img/CPU-s':>9} | {'peak RSS':>9} | {'vs eager':>8} | {'vs fastest PyTorch':>18} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        vs_eager = f"{r['vs_eager']:.2f}x" if r["vs_eager"] else "-"
        print(f"| {r['work']:<18} | {r['name']:<30} | {r['median']:>8.2f} | {r['min']:>6.2f}-{r['max']:<6.2f} | "
              f"{r['images_per_cpu_second']:>9.2f} | "
              f"{r['peak_rss_gib']:>5.2f} GiB | {vs_eager:>8} | {r['vs_fastest_pytorch']:>17.2f}x |")
    print("fastest PyTorch mode per work: " + ", ".join(sorted({f"{r['work']}: {r['fastest_pytorch']}" for r in rows})))


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()

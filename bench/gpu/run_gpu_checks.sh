#!/usr/bin/env bash
# GPU checks of googlenet (issue 7) for a machine with an NVIDIA GPU and its driver, Python with
# torch, torchvision, numpy and safetensors, and neither a Rust toolchain nor network access.
#
#   bash bench/gpu/run_gpu_checks.sh [BIN]
#
# BIN (default target/release/googlenet) must be a googlenet binary built ELSEWHERE with
#     cargo build --release --features cuda
# A default build has no CUDA backend: the first check then stops with "built without the cuda
# feature". The binary loads the CUDA driver (libcuda), NVRTC (it compiles its kernels at run time)
# and NCCL when it starts using the GPU; this script puts the NVIDIA libraries that PyTorch's wheels
# ship (site-packages/nvidia/*/lib) on LD_LIBRARY_PATH for that.
#
# SHARED (default ../shared beside the repository) must hold the project's ground truth:
#   reference/torchvision/torchvision_seed1234_calibrated.pth, reference/inputs/*.png, data/hymenoptera.
# OUT (default bench/gpu/out) receives one JSON file per check and summary.md, a block for
# bench/RESULTS.md with the GPU, the date and the figures.
#
# Checks (bench/gpu/gpu_checks.py lists the exact commands and flags each one calls):
#   1. logits: CUDA f32 logits against the CPU backend's, reference weights, 4 images: max abs diff
#      <= 1e-3 and the same top-1 (bf16 reported), with PyTorch on the same GPU as a second opinion.
#   2. speed: training images/s at batch 128, f32 and bf16, googlenet then PyTorch, interleaved.
#   3. train: 40 steps on hymenoptera in bf16: the mean loss of the last quarter is below the first.
#   4. loader: the data loader's images/s on all cores, beside the GPU's training images/s.
# CHECKS="logits speed train loader" (default all) picks some; ROUNDS=N repeats the speed pairs;
# TRAIN_STEPS=N (default 40). Dry run without CUDA: CHECKS=logits DEVICE=wgpu REDUCED=f16 with a
# `--features wgpu` binary compares wgpu with the CPU (done on Mesa's lavapipe: 3.9e-6, passed).
# Exit status: 0 when every check chosen passed, else the first failing check's (1 mismatch,
# 2 binary/file/interface missing, 3 Python package missing).
set -uo pipefail
cd "$(dirname "$0")/../.."

BIN="${1:-target/release/googlenet}"
SHARED="${SHARED:-../shared}"
OUT="${OUT:-bench/gpu/out}"
PYTHON="${PYTHON:-python3}"
CHECKS="${CHECKS:-logits speed train loader}"

if [ ! -x "$BIN" ]; then
    echo "FAIL: no googlenet binary at $BIN: build one with \`cargo build --release --features cuda\` on a"
    echo "machine with a Rust toolchain and network access (the cuda feature downloads an LLVM bundle) and copy it here"
    exit 2
fi
if ! command -v nvidia-smi >/dev/null; then
    echo "FAIL: nvidia-smi not found: this script is for a machine with an NVIDIA GPU and its driver"
    exit 2
fi
if ! "$PYTHON" -c "import torch, torchvision, numpy, safetensors" 2>/dev/null; then
    echo "FAIL: $PYTHON lacks torch, torchvision, numpy or safetensors"
    exit 3
fi

NVIDIA_LIBS=$("$PYTHON" - <<'PY'
import glob, os, site
dirs = []
for base in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib")))
    dirs += sorted(glob.glob(os.path.join(base, "nvidia", "cu*", "lib")))
print(":".join(dict.fromkeys(d for d in dirs if os.path.isdir(d))))
PY
)
export LD_LIBRARY_PATH="${NVIDIA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$OUT"

GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
TORCH=$("$PYTHON" -c "import torch; print(torch.__version__, 'CUDA', torch.version.cuda)")
echo "GPU: $GPU"
echo "date: $DATE"
echo "PyTorch: $TORCH"
echo "binary: $BIN ($("$BIN" --version))"

status=0
for check in $CHECKS; do
    echo
    echo "== $check"
    case "$check" in
        speed) args=("$BIN" "$OUT") ;;
        *) args=("$BIN" "$SHARED" "$OUT") ;;
    esac
    "$PYTHON" bench/gpu/gpu_checks.py "$check" "${args[@]}"
    code=$?
    if [ $code -ne 0 ] && [ $status -eq 0 ]; then
        status=$code
    fi
done

"$PYTHON" - "$OUT" "$GPU" "$DATE" "$TORCH" <<'PY' > "$OUT/summary.md"
import json, os, sys
out, gpu, date, torch_version = sys.argv[1:5]
def load(name):
    path = os.path.join(out, f"{name}.json")
    return json.load(open(path)) if os.path.exists(path) else None
print(f"### {date}: {gpu}\n\nPyTorch {torch_version}; figures from bench/gpu/run_gpu_checks.sh.\n")
logits = load("logits")
if logits:
    print(f"- logits, {logits['device']} f32 vs CPU: max abs diff {logits['max_abs_diff_gpu_f32_vs_cpu']:.2e} "
          f"(tolerance {logits['tolerance']}), {logits['reduced_precision']} vs CPU {logits['max_abs_diff_gpu_reduced_vs_cpu']:.2e}, "
          f"CPU vs PyTorch ({logits['pytorch_device']}) {logits['max_abs_diff_cpu_vs_pytorch']:.2e}; "
          f"{'passed' if logits['passed'] else 'FAILED'}")
speed = load("speed")
if speed:
    print("\n| training, batch 128 | googlenet images/s | PyTorch images/s | ratio |\n|---|---|---|---|")
    for precision, r in speed["results"].items():
        print(f"| {precision} | {r['googlenet_images_per_second']:.0f} | {r['pytorch_images_per_second']:.0f} "
              f"| {r['ratio_googlenet_to_pytorch']:.2f} |")
train = load("train")
if train:
    print(f"\n- training, {len(train['losses'])} steps: loss {train['mean_first_quarter']:.3f} -> "
          f"{train['mean_last_quarter']:.3f}; {'passed' if train['passed'] else 'FAILED'}")
loader = load("loader")
if loader:
    print(f"- loader: {loader['images_per_second']:.0f} images/s on {loader['cores']} cores")
for name in ["logits", "speed", "train", "loader"]:
    if load(name) is None:
        print(f"- {name}: not measured (see the log)")
PY
echo
cat "$OUT/summary.md"
exit $status

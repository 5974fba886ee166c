#!/usr/bin/env bash
# GPU checks of googlenet (issue 7) for a machine with an NVIDIA GPU and its driver, Python with
# torch, torchvision, numpy and safetensors, and neither a Rust toolchain nor network access.
#
#   bash bench/gpu/run_gpu_checks.sh [BIN]
#
# BIN (default target/release/googlenet) must be a googlenet binary built ELSEWHERE with
#     cargo build --release --features cuda
# (the cuda feature's build downloads an LLVM bundle from the tracel-llvm release page; see README,
# "GPUs and multiple machines"). A default build has no CUDA backend: the first check then stops
# with "built without the cuda feature". The binary loads the CUDA driver (libcuda), NVRTC (it
# compiles its kernels at run time) and NCCL when it starts using the GPU; this script puts the
# NVIDIA libraries that PyTorch's wheels ship (site-packages/nvidia/*/lib) on LD_LIBRARY_PATH.
#
# SHARED (default ../shared beside the repository) must hold the project's ground truth:
#   reference/torchvision/torchvision_seed1234_calibrated.pth, reference/inputs/*.png, data/hymenoptera.
# OUT (default bench/gpu/out) receives one JSON file per check and summary.md, the block to paste
# into bench/RESULTS.md (GPU, date, figures).
#
# Checks (bench/gpu/gpu_checks.py lists the exact googlenet commands each one runs):
#   1. logits: DEVICE f32 logits against the CPU backend's, reference weights, 4 images: max abs diff
#      <= 1e-3 and the same top-1 (REDUCED reported), with PyTorch on the same GPU as a second opinion.
#   2. speed: training images/s at batch 128, f32 and bf16, googlenet then PyTorch, interleaved.
#   3. train: 40 steps on the embedded shapes in f32 and bf16: the loss falls; with 2+ GPUs also
#      --devices cuda:0,cuda:1 against one GPU.
#   4. loader: `bench data` images/s on all cores beside the training images/s of check 2.
# CHECKS="logits speed train loader" (default all) picks some; ROUNDS, BATCH, SIZE, ITERATIONS,
# TRAIN_STEPS, TRAIN_BATCH, TIMEOUT: see gpu_checks.py. Expected duration on one recent GPU: a few
# minutes, most of it the first compilation of the kernels (NVRTC + autotune).
#
# Dry run without a GPU (checks the script and every command it calls, not a GPU):
#   DEVICE=cpu BATCH=4 SIZE=96 ITERATIONS=2 TRAIN_STEPS=8 TRAIN_BATCH=8 bash bench/gpu/run_gpu_checks.sh
# (DEVICE=wgpu with a --features wgpu binary runs the same on Vulkan.)
# Exit status: 0 when every check chosen passed, else the first failing check's (1 mismatch,
# 2 binary/file/device missing, 3 Python package missing).
set -uo pipefail
cd "$(dirname "$0")/../.."

BIN="${1:-target/release/googlenet}"
SHARED="${SHARED:-../shared}"
OUT="${OUT:-bench/gpu/out}"
PYTHON="${PYTHON:-python3}"
CHECKS="${CHECKS:-logits speed train loader}"
export DEVICE="${DEVICE:-cuda:0}"

if [ ! -x "$BIN" ]; then
    echo "FAIL: no googlenet binary at $BIN: build one with \`cargo build --release --features cuda\` on a"
    echo "machine with a Rust toolchain and network access (the cuda feature downloads an LLVM bundle) and copy it here"
    exit 2
fi
if [[ "$DEVICE" == cuda* ]] && ! command -v nvidia-smi >/dev/null; then
    echo "FAIL: nvidia-smi not found: DEVICE=$DEVICE needs an NVIDIA GPU and its driver (DEVICE=cpu: dry run)"
    exit 2
fi
if ! "$PYTHON" -c "import torch, torchvision, numpy, safetensors" 2>/dev/null; then
    echo "FAIL: $PYTHON lacks torch, torchvision, numpy or safetensors (set PYTHON)"
    exit 3
fi

NVIDIA_LIBS=$("$PYTHON" - <<'PY'
import glob, os, site
dirs = []
for base in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib")))
print(":".join(dict.fromkeys(d for d in dirs if os.path.isdir(d))))
PY
)
export LD_LIBRARY_PATH="${NVIDIA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$OUT"

if [[ "$DEVICE" == cuda* ]]; then
    nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
fi
echo "binary: $BIN ($("$BIN" --version)); DEVICE=$DEVICE; OUT=$OUT"

status=0
for check in $CHECKS; do
    echo
    echo "== $check"
    "$PYTHON" bench/gpu/gpu_checks.py "$check" "$BIN" "$SHARED" "$OUT"
    code=$?
    if [ $code -ne 0 ] && [ $status -eq 0 ]; then
        status=$code
    fi
done

echo
echo "== summary ($OUT/summary.md, for bench/RESULTS.md)"
"$PYTHON" bench/gpu/gpu_checks.py summary "$BIN" "$SHARED" "$OUT"
exit $status

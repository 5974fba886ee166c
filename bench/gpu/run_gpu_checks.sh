#!/usr/bin/env bash
# GPU checks of googlenet (issue 14) in one command, sized for 15 minutes of device time including
# the machine's start: every stage has its own time limit, and all of them together stay under
# BUDGET seconds (default 540); a stage that fails or runs out of time is recorded and the next one
# runs. Needs an NVIDIA GPU with its driver, NVRTC and the CUDA headers (docs/gpu.md), Python 3;
# PyTorch (with torchvision) for its baselines; no Rust toolchain.
#
#   bash bench/gpu/run_gpu_checks.sh [BIN]
#
# BIN (default target/cuda/googlenet) is the CUDA release binary scripts/cuda_checks.sh builds
# (`CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda,wgpu,nccl`). It is 90 MB,
# over what the project's device tool carries (64 MiB), so carry it compressed (11 MB); it unpacks
# target/gpu-carry/googlenet.xz when BIN is absent:
#   mkdir -p target/gpu-carry && xz -T0 -c target/cuda/googlenet > target/gpu-carry/googlenet.xz
#   run(command="bash bench/gpu/run_gpu_checks.sh", carry=["target/gpu-carry"], timeout_s=600)
# SHARED (default shared/, else ../shared) holds the ground truth:
# reference/torchvision/torchvision_seed1234_calibrated.pth and reference/inputs/*.png; a checkout
# without shared/ carries a copy in a folder .git/info/exclude ignores (then SHARED=that folder).
# Everything goes to OUT (default $OUT when set, else bench/gpu/out): log.txt, stages.tsv (each
# stage's status, exit code, seconds), one JSON per stage, nvidia_smi.csv (utilisation and memory
# every 250 ms), and summary.md, the block for bench/RESULTS.md.
#
# Stages, in order of priority (gpu_checks.py runs each; `gpu_checks.py --help` lists the commands):
#   smoke            a tiny inference on DEVICE: the driver, NVRTC and headers work
#   logits           DEVICE f32 (and bf16) logits against the CPU backend's, reference weights,
#                    4 images: max abs diff <= 1e-3, same top-1; PyTorch on the GPU as a second opinion
#   speed_B_P        googlenet training images/s, torchvision variant, 224 px, batch B, precision P
#                    (256 bf16 first: the issue's goal), one process each
#   pytorch          PyTorch's training images/s for the same four: eager, channels_last,
#                    cudnn.benchmark, f32 / AMP bf16; peak memory of each
#   train            200 steps on the embedded demo set (96 px, 4 classes), bf16: the loss falls
#   nccl             5 steps with the gradients summed through NCCL (--allreduce nccl, world size
#                    1) against 5 without: the same losses
#   pytorch_compile  torch.compile at batch 256 bf16, when the budget still allows it
#   infer            inference images/s at batch 256 bf16, googlenet and PyTorch, when time allows
#
# Dry run without a GPU, checking the plumbing with the CPU backend:
#   DEVICE=cpu SPEED_BATCHES="4" SIZE=64 ITERATIONS=1 TRAIN_STEPS=4 BUDGET=300 \
#       bash bench/gpu/run_gpu_checks.sh target/release/googlenet
# Exit status: 0 when every stage that ran passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."

BIN="${1:-target/cuda/googlenet}"
OUT="${OUT:-bench/gpu/out}"
if [ -z "${SHARED:-}" ]; then
    if [ -d shared/reference ]; then SHARED=shared; else SHARED=../shared; fi
fi
PYTHON="${PYTHON:-python3}"
BUDGET="${BUDGET:-540}"
SPEED_BATCHES="${SPEED_BATCHES:-256 128}"
export BIN OUT SHARED DEVICE="${DEVICE:-cuda:0}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ ! -x "$BIN" ] && [ -f target/gpu-carry/googlenet.xz ]; then
    BIN="${TMPDIR:-/tmp}/googlenet-bin"
    xz -dc target/gpu-carry/googlenet.xz >"$BIN" && chmod +x "$BIN"
    export BIN
fi
exec > >(tee -a "$OUT/log.txt") 2>&1
t_start=$SECONDS
STAGES="$OUT/stages.tsv"
printf 'stage\tstatus\texit\tseconds\tstart_unix\tend_unix\n' >"$STAGES"
echo "googlenet GPU checks: BIN=$BIN DEVICE=$DEVICE SHARED=$SHARED OUT=$OUT BUDGET=${BUDGET}s; $(date -u '+%F %T UTC')"

# NVRTC and the headers: the toolkit's, else those of the nvidia-* wheels (PyTorch's among them).
for root in "${CUDA_PATH:-}" /usr/local/cuda; do
    if [ -n "$root" ] && [ -d "$root/lib64" ]; then
        export LD_LIBRARY_PATH="$root/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
done
WHEEL_LIBS=$("$PYTHON" - <<'PY' 2>/dev/null
import glob, os, site
dirs = []
for base in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib")))
print(":".join(dict.fromkeys(d for d in dirs if os.path.isdir(d))))
PY
)
if [ -n "$WHEEL_LIBS" ]; then
    export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$WHEEL_LIBS"
fi
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}; CUDA_PATH=${CUDA_PATH:-(unset: /usr/local/cuda)}"

# Utilisation and memory of every GPU, sampled for the whole run; summary.md cuts it by stage.
SAMPLER=""
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader |
        tee "$OUT/gpu.txt"
    nvidia-smi --query-gpu=timestamp,index,utilization.gpu,utilization.memory,memory.used,power.draw \
        --format=csv,noheader,nounits -lms 250 >"$OUT/nvidia_smi.csv" 2>/dev/null &
    SAMPLER=$!
else
    echo "no nvidia-smi: no utilisation or memory figures" | tee "$OUT/gpu.txt"
fi
trap '[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null' EXIT

failed=0
# stage NAME LIMIT_S COMMAND...: runs COMMAND for at most LIMIT_S seconds (less when the budget is
# nearly spent; not at all under MIN_LEFT), output to OUT/NAME.log, one line in stages.tsv.
stage() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - (SECONDS - t_start)))
    local now
    now=$(date +%s.%N)
    if [ "$left" -lt "${MIN_LEFT:-20}" ]; then
        printf '%s\tnot run (budget spent)\t-\t0\t%s\t%s\n' "$name" "$now" "$now" >>"$STAGES"
        echo "== $name: not run, ${left}s of the budget left"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (at most ${limit}s)"
    local t0=$SECONDS code=0
    timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1 || code=$?
    local status=passed
    case $code in
    0) ;;
    124 | 137) status="timed out after ${limit}s" ;;
    *) status=failed ;;
    esac
    [ "$code" -ne 0 ] && failed=1
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$code" "$((SECONDS - t0))" "$now" \
        "$(date +%s.%N)" >>"$STAGES"
    tail -n 8 "$OUT/$name.log" | sed 's/^/   /'
    echo "   -> $status ($((SECONDS - t0))s)"
}

CHECKS=(bench/gpu/gpu_checks.py)
stage smoke 60 "$PYTHON" "${CHECKS[@]}" smoke
stage logits 150 "$PYTHON" "${CHECKS[@]}" logits
for batch in $SPEED_BATCHES; do
    stage "speed_${batch}_bf16" 90 "$PYTHON" "${CHECKS[@]}" speed "$batch" bf16
done
stage pytorch 120 "$PYTHON" "${CHECKS[@]}" pytorch
for batch in $SPEED_BATCHES; do
    stage "speed_${batch}_f32" 75 "$PYTHON" "${CHECKS[@]}" speed "$batch" f32
done
stage train 120 "$PYTHON" "${CHECKS[@]}" train
# cudarc loads NCCL as libnccl.so; the nvidia-nccl wheels (PyTorch's) have only libnccl.so.2.
for dir in ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }}; do
    if [ -f "$dir/libnccl.so.2" ]; then
        mkdir -p "$OUT/nccl-lib" && ln -sf "$dir/libnccl.so.2" "$OUT/nccl-lib/libnccl.so"
        export LD_LIBRARY_PATH="$OUT/nccl-lib:$LD_LIBRARY_PATH"
        break
    fi
done
if [[ $DEVICE == cuda:* ]]; then
    stage nccl 90 "$PYTHON" "${CHECKS[@]}" nccl
else
    now=$(date +%s.%N)
    printf 'nccl\tnot run (%s is not a CUDA GPU)\t-\t0\t%s\t%s\n' "$DEVICE" "$now" "$now" >>"$STAGES"
    echo "== nccl: not run, $DEVICE is not a CUDA GPU"
fi
MIN_LEFT=100 stage pytorch_compile 120 "$PYTHON" "${CHECKS[@]}" pytorch_compile
MIN_LEFT=60 stage infer 60 "$PYTHON" "${CHECKS[@]}" infer

[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
SAMPLER=""
echo "== summary (OUT/summary.md)"
"$PYTHON" "${CHECKS[@]}" summary || failed=1
echo "total ${SECONDS}s"
exit $failed

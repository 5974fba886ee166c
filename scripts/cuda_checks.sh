#!/usr/bin/env bash
# The CUDA binary, built from crates.io alone and checked on a machine without a GPU (issue 14):
#   1. the vendored cubecl-cuda (vendor/cubecl-cuda/PATCHES.md) is what cargo builds, cubecl-llvm
#      is not in the tree, and the folder is the published crate plus googlenet.patch;
#   2. `cargo build --release --features cuda,wgpu,nccl --bin googlenet` (the GPU binary: both GPU
#      backends and the gradients' all-reduce on NCCL, so that one build also proves the wgpu and
#      nccl features compile), copied to target/cuda/googlenet; its units are kept between runs
#      in a target folder outside the repository, GOOGLENET_GPU_TARGET (default
#      ~/.cache/googlenet/target-gpu, several GB), since its dependencies (burn's CUDA and wgpu
#      backends, cubecl, wgpu, naga, cudarc) are most of CI's time on a cold build and rarely
#      change; cargo's fingerprints rebuild what did (delete the folder to reclaim the space);
#   3. the binary needs no CUDA library at link time (readelf: NEEDED);
#   4. `--device cuda:0` on this machine fails with exit code 2 and a message naming what is
#      missing (driver, NVRTC, headers) and how to fix it, without a panic; CUDA_PATH moves the
#      header lookup; `--allreduce nccl` asks for a CUDA device first.
#
#   bash scripts/cuda_checks.sh          (from anywhere; on 2 cores 16 min without that folder, 9 min
#                                         with an earlier clone's, 2 min in the same checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# patch (check 1) and readelf (binutils, check 3).
if ! command -v patch >/dev/null || ! command -v readelf >/dev/null; then
    apt-get update -qq && apt-get install -y -qq patch binutils
fi

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

echo "== 1. vendored cubecl-cuda without cubecl-llvm"
# Without cargo's progress lines: on a fresh machine the first is "Downloading crates ...".
tree_out=$(cargo tree --features cuda -i cubecl-cuda 2>&1 | grep -Ev '^ *(Downloading|Downloaded|Updating|Blocking) ')
if grep -q "was not used in the crate graph" <<<"$tree_out"; then
    fail "cargo does not use the [patch.crates-io] entry for cubecl-cuda (did Cargo.lock move off cubecl 0.11.3?):
$tree_out"
fi
head -1 <<<"$tree_out" | grep -q "vendor/cubecl-cuda)" ||
    fail "cubecl-cuda does not come from vendor/cubecl-cuda: $(head -1 <<<"$tree_out")"
llvm=$(cargo tree --features cuda -i cubecl-llvm 2>/dev/null)
[ -z "$llvm" ] || fail "cubecl-llvm is back in the tree:
$llvm"
crate=$(ls ~/.cargo/registry/cache/*/cubecl-cuda-0.11.3.crate 2>/dev/null | head -1 || true)
if [ -n "$crate" ]; then
    scratch=$(mktemp -d)
    tar xzf "$crate" -C "$scratch"
    (cd "$scratch/cubecl-cuda-0.11.3" && rm -f .cargo_vcs_info.json &&
        patch -p1 -s --no-backup-if-mismatch <"$root/vendor/cubecl-cuda/googlenet.patch") ||
        fail "vendor/cubecl-cuda/googlenet.patch no longer applies to $crate"
    diff -r -x PATCHES.md -x googlenet.patch "$scratch/cubecl-cuda-0.11.3" vendor/cubecl-cuda ||
        fail "vendor/cubecl-cuda differs from $crate + googlenet.patch (regenerate the patch: PATCHES.md)"
    rm -rf "$scratch"
    echo "vendor/cubecl-cuda = $(basename "$crate") + googlenet.patch"
else
    echo "NOT CHECKED: the published crate file is not in cargo's cache, so the folder was not compared with it"
fi
echo "cubecl-cuda from vendor/cubecl-cuda; cubecl-llvm absent"

echo "== 2. CUDA release build"
# cudarc's driver and NVRTC bindings for CUDA 13.0 (drivers 580 and newer, the GPU machine's):
# without nvcc here cudarc would take its newest, 13.4 (docs/gpu.md).
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
gpu_target="${GOOGLENET_GPU_TARGET:-$HOME/.cache/googlenet/target-gpu}"
start=$SECONDS
CARGO_TARGET_DIR="$gpu_target" cargo build --release --features cuda,wgpu,nccl --bin googlenet
mkdir -p target/cuda
cp "$gpu_target/release/googlenet" target/cuda/googlenet
echo "built target/cuda/googlenet (CUDA $CUDARC_CUDA_VERSION bindings, units in $gpu_target) in $((SECONDS - start)) s, $(du -m target/cuda/googlenet | cut -f1) MB"
BIN=target/cuda/googlenet

echo "== 3. no CUDA library at link time"
needed=$(readelf -d "$BIN" | awk '/NEEDED/ {gsub(/[][]/, "", $NF); print $NF}')
echo "NEEDED: $(tr '\n' ' ' <<<"$needed")"
if grep -Eiq "cuda|nvrtc|nccl|nvidia|cublas|cudnn|nvml" <<<"$needed"; then
    fail "$BIN needs a CUDA library at link time"
fi

echo "== 4. --device cuda:0 without a GPU: a clear error, no panic"
# expect_refusal DESCRIPTION REQUIRED-TEXT... -- COMMAND...: exit code 2, each text in stderr.
expect_refusal() {
    local description=$1
    shift
    local wanted=()
    while [ "$1" != "--" ]; do
        wanted+=("$1")
        shift
    done
    shift
    local err code=0
    err=$(RUST_BACKTRACE=1 "$@" 2>&1 >/dev/null) || code=$?
    [ "$code" -eq 2 ] || fail "$description: exit code $code, expected 2:
$err"
    if grep -Eq "panicked|stack backtrace|RUST_BACKTRACE" <<<"$err"; then
        fail "$description: panicked:
$err"
    fi
    for text in "${wanted[@]}"; do
        grep -qF -- "$text" <<<"$err" || fail "$description: no \`$text\` in:
$err"
    done
    echo "$description: exit 2, says what is missing"
}
if ldconfig -p | grep -q "libcuda\.so"; then
    echo "NOT CHECKED: this machine has the NVIDIA driver (libcuda); check 4 needs a machine without it"
    echo "cuda checks 1-3: passed"
    exit 0
fi
scratch=$(mktemp -d)
expect_refusal "train --device cuda:0" \
    "device \`cuda:0\` cannot run on this machine" "NVIDIA driver (libcuda)" "libcuda.so.1" \
    "install the NVIDIA driver" "NVRTC" "pip install nvidia-cuda-nvrtc" "docs/gpu.md" -- \
    "$BIN" train --device cuda:0 --max-steps 1 --out "$scratch/run"
expect_refusal "train --devices cuda:0,cuda:1" "NVIDIA driver (libcuda)" -- \
    "$BIN" train --devices cuda:0,cuda:1 --max-steps 1 --out "$scratch/run"
expect_refusal "train --allreduce nccl --device cuda:0" "NVIDIA driver (libcuda)" -- \
    "$BIN" train --allreduce nccl --device cuda:0 --max-steps 1 --out "$scratch/run"
err=$("$BIN" train --allreduce nccl --max-steps 1 --out "$scratch/run" 2>&1 >/dev/null) &&
    fail "train --allreduce nccl on the CPU did not fail"
grep -q "give each process one with --device cuda:N" <<<"$err" ||
    fail "train --allreduce nccl on the CPU: no \`--device cuda:N\` in: $err"
! grep -q "panicked" <<<"$err" || fail "train --allreduce nccl on the CPU panicked: $err"
[ ! -e "$scratch/run" ] || fail "train --allreduce nccl on the CPU wrote $scratch/run"
echo "train --allreduce nccl on the CPU: refused, asks for --device cuda:N"
expect_refusal "bench model --device cuda:0" "NVIDIA driver (libcuda)" -- \
    "$BIN" bench model --device cuda:0
expect_refusal "export --device cuda:0" "NVIDIA driver (libcuda)" -- \
    "$BIN" export "$scratch/x.onnx" --device cuda:0
expect_refusal "CUDA_PATH without headers" \
    "CUDA headers: cuda_fp16.h, cuda_bf16.h, mma.h, cuda/barrier not found in $scratch/nocuda/include" \
    "CUDA_PATH=<site-packages>/nvidia/cu13" -- \
    env CUDA_PATH="$scratch/nocuda" "$BIN" train --device cuda:0 --max-steps 1 --out "$scratch/run"
# A CUDA_PATH with the headers (CUDA 13 layout): the headers line goes, driver and NVRTC stay.
for header in cuda_fp16.h cuda_bf16.h mma.h cccl/cuda/barrier; do
    mkdir -p "$(dirname "$scratch/cu13/include/$header")"
    touch "$scratch/cu13/include/$header"
done
err=$(CUDA_PATH="$scratch/cu13" "$BIN" train --device cuda:0 --max-steps 1 --out "$scratch/run" 2>&1 || true)
grep -q "NVIDIA driver (libcuda)" <<<"$err" || fail "CUDA_PATH with headers: no driver line:
$err"
! grep -q "CUDA headers" <<<"$err" || fail "CUDA_PATH with all the headers still reported missing:
$err"
echo "CUDA_PATH with the headers: headers found, driver and NVRTC still reported"
rm -rf "$scratch"
echo "cuda checks: passed"

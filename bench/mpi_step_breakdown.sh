#!/usr/bin/env bash
# Distributed training on this machine: the all-reduce of the gradients at 2 ranks
# (`googlenet bench allreduce`), and a training step's time split into compute, all-reduce and
# waiting, for 2 ranks x 1 thread against 1 rank x 2 threads (same global batch, same images).
# A benchmark, not a test; results go to bench/RESULTS.md ("Distributed training on MPI").
#
#   cargo build --release --features mpi && cp target/release/googlenet target/mpi/googlenet
#   bash bench/mpi_step_breakdown.sh [BIN]        # BIN defaults to target/mpi/googlenet
#
# STEPS (default 8), SIZE (224), BATCH (16, the global batch) and VARIANT (paper) set the run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/mpi/googlenet}
STEPS=${STEPS:-8}
SIZE=${SIZE:-224}
BATCH=${BATCH:-16}
VARIANT=${VARIANT:-paper}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --bind-to none --mca btl self,vader --mca oob_tcp_if_include lo)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run=(train --variant "$VARIANT" --input-size "$SIZE" --batch "$BATCH" --no-dropout
    --max-steps "$STEPS" --json)

"${MPIRUN[@]}" -np 2 "$BIN" bench allreduce --json >"$out/allreduce.json"
RAYON_NUM_THREADS=2 "$BIN" "${run[@]}" --out "$out/one" >"$out/one.json"
"${MPIRUN[@]}" -np 2 -x RAYON_NUM_THREADS=1 "$BIN" "${run[@]}" --out "$out/two" >"$out/two.json"

python3 - "$out" "$BATCH" <<'PY'
import json, sys, statistics
out, batch = sys.argv[1], int(sys.argv[2])
allreduce = json.load(open(f"{out}/allreduce.json"))
one = json.loads(open(f"{out}/one.json").read().strip().splitlines()[-1])
two = json.loads(open(f"{out}/two.json").read().strip().splitlines()[-1])
print(f"all-reduce of {allreduce['values']} f32 ({allreduce['megabytes']:.1f} MB), "
      f"{allreduce['ranks']} ranks: median {1e3 * allreduce['median_seconds']:.1f} ms, "
      f"min {1e3 * allreduce['min_seconds']:.1f} ms")
step_one = batch / one["images_per_second"]
step_two = batch / two["images_per_second"]
reduce_two = statistics.mean(two["allreduce_seconds"][1:])
transfer = allreduce["median_seconds"]
print(f"1 rank x 2 threads: {step_one:.3f} s/step ({one['images_per_second']:.1f} img/s)")
print(f"2 ranks x 1 thread: {step_two:.3f} s/step ({two['images_per_second']:.1f} img/s): "
      f"compute {step_two - reduce_two:.3f} s, all-reduce call {reduce_two:.3f} s "
      f"(transfer ~{min(transfer, reduce_two):.3f} s, waiting for the other rank "
      f"~{max(0.0, reduce_two - transfer):.3f} s), "
      f"all-reduce {100 * reduce_two / step_two:.1f}% of the step")
PY

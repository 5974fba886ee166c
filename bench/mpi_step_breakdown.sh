#!/usr/bin/env bash
# Distributed training on this machine: the all-reduce of the gradients at 2 ranks
# (`googlenet bench allreduce`), and a training step's time split into compute, all-reduce and
# waiting, for 2 ranks x 1 thread against 1 rank x 2 threads (same global batch, same images);
# the 2-rank step with one all-reduce after the backward pass (--bucket-mb 0) and with buckets
# all-reduced during it (BUCKETS, default "25 4"), in ROUNDS (default 2) interleaved rounds.
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
BUCKETS=${BUCKETS:-25 4}
ROUNDS=${ROUNDS:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --bind-to none --mca btl self,vader --mca oob_tcp_if_include lo)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run=(train --variant "$VARIANT" --input-size "$SIZE" --batch "$BATCH" --no-dropout
    --max-steps "$STEPS" --json)

"${MPIRUN[@]}" -np 2 "$BIN" bench allreduce --json >"$out/allreduce.json"
for round in $(seq "$ROUNDS"); do
    RAYON_NUM_THREADS=2 "$BIN" "${run[@]}" --out "$out/one" >"$out/one.$round.json"
    for mb in 0 $BUCKETS; do
        rm -rf "$out/two"
        "${MPIRUN[@]}" -np 2 -x RAYON_NUM_THREADS=1 "$BIN" "${run[@]}" --bucket-mb "$mb" \
            --out "$out/two" >"$out/two.$mb.$round.json"
    done
    rm -rf "$out/one"
done

python3 - "$out" "$BATCH" "$ROUNDS" 0 $BUCKETS <<'PY'
import json, sys, statistics
out, batch, rounds, buckets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
allreduce = json.load(open(f"{out}/allreduce.json"))
def last(path):
    return json.loads(open(path).read().strip().splitlines()[-1])
print(f"all-reduce of {allreduce['values']} f32 ({allreduce['megabytes']:.1f} MB), "
      f"{allreduce['ranks']} ranks: median {1e3 * allreduce['median_seconds']:.1f} ms, "
      f"min {1e3 * allreduce['min_seconds']:.1f} ms")
print("| run | s/step (each round) | img/s | compute | all-reduce in all | waited for | of the step |")
print("|---|---:|---:|---:|---:|---:|---:|")
ones = [batch / last(f"{out}/one.{r}.json")["images_per_second"] for r in range(1, rounds + 1)]
print(f"| 1 rank x 2 threads | {' / '.join(f'{s:.3f}' for s in ones)} | "
      f"{batch / statistics.median(ones):.1f} | - | - | - | - |")
for mb in buckets:
    runs = [last(f"{out}/two.{mb}.{r}.json") for r in range(1, rounds + 1)]
    steps = [batch / j["images_per_second"] for j in runs]
    step = statistics.median(steps)
    # The first step is left out, as images_per_second leaves it out.
    waited = statistics.median(statistics.mean(j["allreduce_seconds"][1:]) for j in runs)
    busy = statistics.median(statistics.mean(j["allreduce_busy_seconds"][1:]) for j in runs)
    name = "one all-reduce after the backward pass" if mb == "0" else f"buckets of {mb} MB"
    print(f"| 2 ranks x 1 thread, {name} | {' / '.join(f'{s:.3f}' for s in steps)} | "
          f"{batch / step:.1f} | {step - waited:.3f} | {busy:.3f} | {waited:.3f} | "
          f"{100 * waited / step:.1f}% |")
PY

#!/usr/bin/env bash
# Load benchmark of `googlenet serve` (not a test): wrk on loopback only, 1, 8, 32 and 128
# concurrent clients, each run bounded in time (DURATION s), one reference image per request.
# Prints throughput, p50/p99 latency, errors and the server's peak memory per concurrency, and
# `googlenet bench model` (fast engine, same batch) for comparison. Results go in bench/RESULTS.md.
#
#   bash bench/serve_load.sh [BIN]      (BIN default target/release/googlenet)
#   env: DURATION (default 20), CLIENTS (default "1 8 32 128"), MAX_BATCH (16), MAX_DELAY_MS (5),
#        QUEUE (256: room for every client's image), THREADS (0: one per core)
# Needs wrk (Debian: apt-get install wrk) and ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/googlenet}
DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-"1 8 32 128"}
MAX_BATCH=${MAX_BATCH:-16}
MAX_DELAY_MS=${MAX_DELAY_MS:-5}
QUEUE=${QUEUE:-256}
THREADS=${THREADS:-0}
WEIGHTS=../shared/reference/torchvision/torchvision_seed1234_calibrated.pth
export IMAGE=../shared/reference/inputs/2_hymenoptera_val_ant.png
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
for f in "$WEIGHTS" "$IMAGE"; do [ -f "$f" ] || { echo "missing $f (needs ../shared)"; exit 1; }; done

work=$(mktemp -d)
"$BIN" serve --variant torchvision --weights "$WEIGHTS" --listen 127.0.0.1:0 \
  --max-batch "$MAX_BATCH" --max-delay-ms "$MAX_DELAY_MS" --queue "$QUEUE" --threads "$THREADS" \
  >"$work/out" 2>"$work/err" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 600); do
  grep -q '^listening on ' "$work/out" && grep -q 'ready' "$work/err" && break
  kill -0 "$server" 2>/dev/null || { cat "$work/err"; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$work/out")
[[ $url == http://127.0.0.1:* ]] || { echo "not on loopback: $url"; exit 1; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "server: --max-batch $MAX_BATCH --max-delay-ms $MAX_DELAY_MS --queue $QUEUE --threads $THREADS; ${DURATION}s per run"
# Warm-up: the first batches allocate the activation buffers.
wrk -t 1 -c 4 -d 3s -s bench/serve_post.lua "$url" >/dev/null
printf '%8s %10s %9s %9s %8s %14s\n' clients 'images/s' 'p50 ms' 'p99 ms' errors 'peak RSS MiB'
for c in $CLIENTS; do
  t=$(( c < 2 ? 1 : 2 ))
  line=$(wrk -t "$t" -c "$c" -d "${DURATION}s" --timeout 60s -s bench/serve_post.lua "$url" | grep '^RESULT')
  rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$server/status")
  eval "${line#RESULT }"
  printf '%8s %10s %9s %9s %8s %14s\n' "$c" "$rps" "$p50_ms" "$p99_ms" $((non200 + socket_errors)) "$rss"
done
echo "batches: $(grep -E '^googlenet_batch_size_(sum|count)' <(curl -s "$url/metrics" 2>/dev/null || true) | tr '\n' ' ')"
echo "bench model, fast engine, batch $MAX_BATCH:"
"$BIN" bench model --variant torchvision --engine fast --batch "$MAX_BATCH" --threads "$THREADS" --iterations 10 --json

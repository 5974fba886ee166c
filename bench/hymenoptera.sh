#!/usr/bin/env bash
# Trains GoogLeNet from scratch on ../shared/data/hymenoptera and evaluates it with 1, 10 and 144 crops
# (the figures in bench/RESULTS.md, "Training and evaluation runs on ants and bees"). About 45 minutes
# on 2 cores.
#
#   bash bench/hymenoptera.sh [OUT]        # OUT defaults to runs/hymenoptera
#
# PYTORCH=1 also runs bench/train_pytorch.py with the same recipe (needs torch and torchvision;
# PYTHON=path picks the interpreter).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data/hymenoptera
OUT="${1:-runs/hymenoptera}"
BIN=target/release/googlenet
if [ ! -d "$DATA/train" ]; then
    echo "FAIL: $DATA is missing (it comes with ../shared)" >&2
    exit 1
fi
cargo build --release --quiet
mkdir -p "$OUT"

# The paper variant for the paper recipe's 60 epochs, the torchvision variant for 30; 112 px inputs; each
# on burn's autodiff (the multi-crop table in bench/RESULTS.md) and on the fast CPU training path (the default).
for engine in burn fast; do
    suffix=$([ "$engine" = fast ] && echo "-fast" || true)
    "$BIN" train --data "$DATA" --variant paper --input-size 112 --epochs 60 --seed 1234 --engine "$engine" \
        --out "$OUT/paper$suffix" --quiet
    "$BIN" train --data "$DATA" --variant torchvision --input-size 112 --epochs 30 --seed 1234 --engine "$engine" \
        --out "$OUT/torchvision$suffix" --quiet
done

echo "| checkpoint | 1 crop | 10 crops | 144 crops |"
echo "|---|---:|---:|---:|"
for run in paper torchvision paper-fast torchvision-fast; do
    row="| $run |"
    for crops in 1 10 144; do
        top1=$("$BIN" eval --data "$DATA/val" --weights "$OUT/$run/model.safetensors" --crop 112 \
            --crops "$crops" --json | python3 -c 'import json,sys; print("%.1f%%" % (100 * json.load(sys.stdin)["metrics"]["top1_accuracy"]))')
        row="$row $top1 |"
    done
    echo "$row"
done

if [ "${PYTORCH:-0}" = 1 ]; then
    "${PYTHON:-python3}" bench/train_pytorch.py --data "$DATA" --input-size 112 --epochs 60 \
        --out "$OUT/pytorch_paper_112.csv"
fi

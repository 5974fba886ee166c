#!/usr/bin/env bash
# Checks that need PyTorch or onnxruntime (from PyPI), run against the release binary.
# The virtual environment lives outside the repository and is reused between runs:
#   GOOGLENET_PYENV (default ~/.cache/googlenet/pyenv).
# Without network or Python it says so and, outside CI, exits 0 having run nothing; in CI it fails.
#   bash scripts/python_checks.sh [--install-only]   (--install-only: the environment, no checks)
set -euo pipefail
cd "$(dirname "$0")/.."

PYENV="${GOOGLENET_PYENV:-$HOME/.cache/googlenet/pyenv}"
PACKAGES=(torch==2.15.0 torchvision==0.29.2 safetensors numpy onnx onnxruntime)

if [ ! -x "$PYENV/bin/python" ] || ! "$PYENV/bin/python" -c "import torch, torchvision, onnxruntime, safetensors" 2>/dev/null; then
    echo "python_checks: installing ${PACKAGES[*]} into $PYENV"
    if ! { python3 -m venv "$PYENV" && "$PYENV/bin/pip" install -q "${PACKAGES[@]}"; }; then
        echo "python_checks: SKIPPED — could not install the Python packages"
        [ "${CI:-}" = "true" ] && exit 1
        exit 0
    fi
fi

[ "${1:-}" = "--install-only" ] && exit 0

cargo build --release --quiet
BIN=target/release/googlenet
"$PYENV/bin/python" scripts/check_torchvision_roundtrip.py "$BIN"
"$PYENV/bin/python" scripts/check_onnx.py "$BIN"
echo "python_checks: all passed"

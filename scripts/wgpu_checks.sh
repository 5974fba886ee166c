#!/usr/bin/env bash
# The wgpu backend's tests (tests/suite/backend_wgpu.rs: logits, a training step and data parallel against
# the CPU) on the machine's Vulkan adapter. Without a GPU, Mesa's CPU Vulkan driver (lavapipe) does:
# when no Vulkan driver is installed and this runs as root with apt-get, it installs
# mesa-vulkan-drivers; otherwise it says what is missing and fails.
# Cost on 2 cores: the wgpu release build, about 11 minutes from nothing, then about 70 s of tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "wgpu_checks: no Vulkan driver: installing mesa-vulkan-drivers (lavapipe)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
    else
        echo "wgpu_checks: FAILED — no Vulkan driver (install mesa-vulkan-drivers for lavapipe, or run on a GPU)"
        exit 1
    fi
fi
# Mesa complains on every device open without it.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
cargo test --release --features wgpu --test suite backend_wgpu

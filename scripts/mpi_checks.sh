#!/usr/bin/env bash
# Data-parallel training on MPI, for real: builds `googlenet` with --features mpi and runs the
# ignored tests of tests/suite/mpi_jobs.rs, which start jobs with `mpirun -np 2` on this machine
# (shared memory between the ranks, loopback for the launcher; never another address).
# Needs Open MPI and libclang: on Debian `apt-get install libopenmpi-dev openmpi-bin libclang-dev`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Containers run as root; Open MPI refuses that unless asked twice.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo

cargo build --release --features mpi --bin googlenet
mkdir -p target/mpi
cp target/release/googlenet target/mpi/googlenet
export GOOGLENET_MPI_BIN="$PWD/target/mpi/googlenet"
# One job at a time: each takes both cores.
cargo test --release --test suite mpi_jobs -- --ignored --test-threads 1

#!/usr/bin/env bash
# The training-throughput table of docs/TRAINING.md: scripts/train_throughput.py over
# threads, OpenBLAS threads, batch size, model shape, vocabulary and bf16, on a quiet machine.
#   scripts/train_throughput.sh DATA16K DATA8K [STEPS]   (prepared data dirs, train.py --prepare-only)
set -eu
d16=${1:?usage: train_throughput.sh DATA16K DATA8K [STEPS]}; d8=${2:?}; steps=${3:-4}
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
# jemalloc keeps freed pages: fewer page faults on the large activations (7% here)
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
pre=(); [ -e "$jemalloc" ] && pre=(env LD_PRELOAD="$jemalloc" MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1")
t() { "${pre[@]}" "$py" "$here/train_throughput.py" --steps "$steps" --warmup 1 "$@"; }
base=d256-e6-d2-f1024
OPENBLAS_NUM_THREADS=1 t --data "$d16" --config $base --header
OPENBLAS_NUM_THREADS=2 t --data "$d16" --config $base
OPENBLAS_NUM_THREADS=1 t --data "$d16" --config $base --threads 1
OPENBLAS_NUM_THREADS=1 t --data "$d16" --config $base --bf16
OPENBLAS_NUM_THREADS=1 t --data "$d16" --config $base --max-tokens 4096
OPENBLAS_NUM_THREADS=1 t --data "$d16" --config $base --max-tokens 16384
OPENBLAS_NUM_THREADS=1 t --data "$d8" --config $base
OPENBLAS_NUM_THREADS=1 t --data "$d16" --config d256-e6-d3-f1024 --config d256-e6-d6-f1024 \
    --config d384-e6-d2-f1536 --config d512-e6-d2-f2048 --config d512-e6-d6-f2048

#!/usr/bin/env bash
# Installs everything attn-translate needs from Debian's packages:
#   build:  a C compiler, OpenBLAS, cJSON, utf8proc
#   tests:  SentencePiece tools (golden tokenizer checks), PyTorch + numpy (the reference),
#           GNU parallel (sharding test), valgrind + time (leaks, memory growth),
#           clang (libFuzzer: make fuzz),
#           clang (sanitizer and fuzz builds), chromium (renders the attention heatmap),
#           curl (scripts/get-opus-mt.sh, tested offline)
# Usage: scripts/install-deps.sh [--build-only]
set -euo pipefail
build=(build-essential pkg-config libopenblas-dev libcjson-dev libutf8proc-dev)
test=(sentencepiece python3 python3-numpy python3-torch python3-sentencepiece parallel chromium valgrind time clang libclang-rt-14-dev groff-base curl)
pkgs=("${build[@]}")
[ "${1:-}" = "--build-only" ] || pkgs+=("${test[@]}")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${#missing[@]} Debian packages with apt-get (this can take a few minutes): ${missing[*]}" >&2
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null

#!/bin/sh
# test_hf_marian.sh — the C engine against transformers' outputs (tests/fixtures/marian-hf,
# made by scripts/make_hf_fixture.py). Assembles the checkpoint (the committed hf/ files plus
# opus-mt-en-fr's real source.spm / target.spm from ../shared, checked against SHA256SUMS),
# converts it with scripts/convert_marian.py (numpy only) to f32 and f16, and runs
# build/tests/test_hf_marian. Skips, saying why, when ../shared is absent.
# Usage: tests/test_hf_marian.sh [BUILD]; ends with "test_hf_marian: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-${BUILD:-build}}
PYTHON=${PYTHON:-/usr/bin/python3}
FIX=tests/fixtures/marian-hf
TOK=../shared/models/opus-mt-en-fr-tokenizer
if [ ! -f "$TOK/source.spm" ] || [ ! -f "$TOK/target.spm" ]; then
    echo "test_hf_marian: skipped: needs opus-mt-en-fr's source.spm and target.spm in ../shared/models/opus-mt-en-fr-tokenizer"
    echo "test_hf_marian: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_hf_marian.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/hf"
cp "$FIX"/hf/* "$tmp/hf/" && cp "$TOK/source.spm" "$TOK/target.spm" "$tmp/hf/" || exit 1
if ! (cd "$tmp/hf" && sha256sum --quiet -c "$OLDPWD/$FIX/SHA256SUMS"); then
    echo "FAIL $TOK: source.spm / target.spm are not the ones the fixture was made with ($FIX/SHA256SUMS)"
    echo "test_hf_marian: 0 passed, 1 failed"
    exit 1
fi
for d in f32 f16; do
    if ! "$PYTHON" scripts/convert_marian.py -q --dtype $d "$tmp/hf" "$tmp/$d" > "$tmp/convert.log" 2>&1; then
        cat "$tmp/convert.log"
        echo "FAIL convert_marian.py --dtype $d"
        echo "test_hf_marian: 0 passed, 1 failed"
        exit 1
    fi
done
"$BUILD/tests/test_hf_marian" "$FIX/expected.json" "$tmp/f32" "$tmp/f16"

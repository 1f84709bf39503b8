#!/usr/bin/env bash
# Runs every test program and script; each ends with "NAME: N passed, N failed" and,
# when some checks could not run here, ", N skipped" (with the reason on stderr).
# Prints the sums as the last line: "N passed, N failed, N skipped". Usage: tests/run.sh [--no-python]
# (--no-python, for sanitizer builds: skips the Python tests, valgrind and the install test)
# Environment: BUILD (default build), PYTHON (default /usr/bin/python3).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
no_python=0
[ "${1:-}" = "--no-python" ] && no_python=1

total_pass=0 total_fail=0 total_skip=0
run() {   # run NAME COMMAND...
    local name=$1; shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -E '^(FAIL|ERROR|==[0-9]+==|.*runtime error)' | head -40
    local line
    line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_-]+: [0-9]+ passed, [0-9]+ failed' | tail -1)
    if [ -z "$line" ]; then
        printf '%s\n' "$out" | tail -20
        echo "$name: 0 passed, 1 failed (no result line, exit $rc)"
        total_fail=$((total_fail + 1))
        return
    fi
    local p f k=0
    p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")
    f=$(sed -E 's/.*passed, ([0-9]+) failed.*/\1/' <<<"$line")
    grep -qE 'failed, [0-9]+ skipped' <<<"$line" && k=$(sed -E 's/.*failed, ([0-9]+) skipped.*/\1/' <<<"$line")
    printf '%s\n' "$out" | grep -E '^(SKIP|[A-Za-z0-9_-]+: skipped)' | head -10
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    echo "$line"
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); total_skip=$((total_skip + k))
}

run test_tokenizer "$BUILD/tests/test_tokenizer"
run test_json "$BUILD/tests/test_json"
run test_model "$BUILD/tests/test_model"
run test_gemm "$BUILD/tests/test_gemm"
run test_forward "$BUILD/tests/test_forward"
run test_attn "$BUILD/tests/test_attn"
for t in tokenizer vocab header translate; do
    run "fuzz_corpus_$t" "$BUILD/fuzz/replay_$t" "fuzz_corpus_$t" "fuzz/corpus/$t"
done
run test_cli tests/test_cli.sh "$BUILD/attn-translate"
run test_batch tests/test_batch.sh "$BUILD/attn-translate"
run test_bad_input tests/test_bad_input.sh "$BUILD/attn-translate"
PYTHON="$PYTHON" run test_layout tests/test_layout.sh "$BUILD/attn-translate"
if [ -d ../shared/data/dev ] && command -v spm_encode >/dev/null; then
    TOKCHECK="$BUILD/tests/tokcheck" PYTHON="$PYTHON" run tokenizer_dev_check tests/tokenizer_dev_check.sh
else
    echo "tokenizer_dev_check: 0 passed, 0 failed, 1 skipped (needs ../shared/data/dev and spm_encode)"
    total_skip=$((total_skip + 1))
fi
if command -v chromium > /dev/null; then
    run test_attn_render tests/test_attn_render.sh "$BUILD/tests/attn_svg_demo"
else
    echo "test_attn_render: 0 passed, 1 failed (chromium is not installed: scripts/install-deps.sh)"
    total_fail=$((total_fail + 1))
fi
if [ "$no_python" = 0 ]; then
    run test_reference "$PYTHON" tests/test_reference.py
    run test_convert "$PYTHON" tests/test_convert.py
    PYTHON="$PYTHON" run test_hf_marian tests/test_hf_marian.sh "$BUILD"
    PYTHON="$PYTHON" run test_get_opus_mt tests/test_get_opus_mt.sh "$BUILD"
    run test_eval "$PYTHON" tests/test_eval.py
    run test_curve "$PYTHON" tests/test_curve.py
    run test_bench "$PYTHON" tests/test_bench.py "$BUILD/attn-translate"
    run test_shipped "$PYTHON" tests/test_shipped.py "$BUILD/attn-translate"
    run test_train_smoke tests/test_train_smoke.sh
    run test_leaks tests/test_leaks.sh "$BUILD/attn-translate"
    run test_install tests/test_install.sh
fi
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]

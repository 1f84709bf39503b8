#!/usr/bin/env bash
# test_leaks.sh — valgrind finds no leak and no memory error in a short translation
# (greedy, beam, batch, attention), and memory does not grow with the number of lines:
# peak RSS for 20,000 lines stays within 10% (+4 MB) of that for 2,000 lines.
# Usage: tests/test_leaks.sh [path/to/attn-translate]
set -u
cd "$(dirname "$0")/.."
BIN=${1:-./attn-translate}
MODEL=tests/fixtures/tiny/A
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }

vg="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99"
head -12 "$MODEL/inputs.txt" > "$tmp/in"; printf '\xff bad\n\n' >> "$tmp/in"
for args in "--beam 1" "--beam 4 --n-best 2" "--threads 2 --batch-size 4" "--show-attn --attn-format json --align"; do
    $vg "$BIN" -m "$MODEL" -q $args < "$tmp/in" > /dev/null 2> "$tmp/vg"; rc=$?
    check "valgrind clean: $args (exit $rc)" '[ $rc -ne 99 ] && [ $rc -lt 128 ] || { head -30 "$tmp/vg" >&2; false; }'
done

rss() { /usr/bin/time -f %M "$BIN" -m "$MODEL" -q --threads 1 < "$1" 2>&1 > /dev/null | tail -1; }
for i in $(seq 200); do head -10 "$MODEL/inputs.txt"; done > "$tmp/2k"
for i in $(seq 10); do cat "$tmp/2k"; done > "$tmp/20k"
a=$(rss "$tmp/2k"); b=$(rss "$tmp/20k")
echo "peak RSS: 2,000 lines ${a} KB, 20,000 lines ${b} KB"
check "memory does not grow with the line count ($a KB vs $b KB)" '[ "$b" -le $(( a + a / 10 + 4096 )) ]'

echo "test_leaks: $pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# test_batch.sh — batch translation of files: -i/-o, several inputs, batching and
# threads give the same output as line by line, streaming, interruption, SIGPIPE,
# GNU parallel sharding. Usage: tests/test_batch.sh [path/to/attn-translate]
set -u
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-./attn-translate}")
MODEL=tests/fixtures/tiny/A
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
lines() { wc -l < "$1" | tr -d ' '; }
tr_() { "$BIN" -m "$MODEL" -q "$@"; }

# an input with every kind of line: fixtures of all three models, empty, blank, invalid
cat tests/fixtures/tiny/*/inputs.txt > "$tmp/in"
printf '\n   \n\xff broken\nThe end.' >> "$tmp/in"
for i in 1 2 3; do cat "$tmp/in"; echo; done > "$tmp/in3"
n_in=$(( $(lines "$tmp/in3") + 0 ))

tr_ --batch-size 1 --threads 1 < "$tmp/in3" > "$tmp/one"; rc1=$?
check "line by line: exit 3 (one invalid line per copy)" '[ $rc1 -eq 3 ]'
check "line by line: line count" '[ $(lines "$tmp/one") -eq $n_in ]'
for bs in 7 32 64; do
    for t in 1 2 3; do
        tr_ --batch-size $bs --threads $t < "$tmp/in3" > "$tmp/b"
        check "batch $bs threads $t equals line by line" 'cmp -s "$tmp/b" "$tmp/one"'
    done
done
tr_ --max-batch-tokens 20 < "$tmp/in3" > "$tmp/b"
check "--max-batch-tokens 20 equals line by line" 'cmp -s "$tmp/b" "$tmp/one"'

# files: -i/-o, positional inputs, output directory
tr_ -i "$tmp/in3" -o "$tmp/out.fr"; check "-i/-o writes the file" 'cmp -s "$tmp/out.fr" "$tmp/one"'
check "-o leaves no temporary file" '[ -z "$(ls "$tmp" | grep "\.tmp\.")" ]'
{ cat "$tmp/in"; echo; } > "$tmp/a.txt"; head -5 "$tmp/in" > "$tmp/b.txt"
tr_ -o "$tmp/outdir/" "$tmp/a.txt" "$tmp/b.txt"
check "several inputs into a directory" '[ -f "$tmp/outdir/a.txt" ] && [ -f "$tmp/outdir/b.txt" ]'
check "each output has its input's line count" '[ $(lines "$tmp/outdir/a.txt") -eq $(lines "$tmp/a.txt") ] && [ $(lines "$tmp/outdir/b.txt") -eq 5 ]'
tr_ "$tmp/a.txt" "$tmp/b.txt" > "$tmp/cat"
check "several inputs to stdout, in order" '[ $(lines "$tmp/cat") -eq $(( $(lines "$tmp/a.txt") + 5 )) ]'
tr_ -o "$tmp/x.fr" "$tmp/a.txt" "$tmp/b.txt" 2> /dev/null; rc=$?
check "several inputs need a directory: exit 2" '[ $rc -eq 2 ]'
tr_ -i "$tmp/missing.txt" > /dev/null 2> "$tmp/e"; rc=$?
check "missing input file: exit 1, named" '[ $rc -eq 1 ] && grep -q missing.txt "$tmp/e"'

# streaming: --unbuffered answers a line before the input ends
mkfifo "$tmp/fifo"
( "$BIN" -m "$MODEL" --unbuffered < "$tmp/fifo" > "$tmp/stream" ) &
pid=$!
exec 7> "$tmp/fifo"
echo "Hello." >&7
for i in $(seq 50); do [ -s "$tmp/stream" ] && break; sleep 0.1; done
check "--unbuffered: first translation before end of input" '[ -s "$tmp/stream" ]'
exec 7>&-
wait $pid

# interruption leaves no output file, SIGPIPE is quiet
for i in $(seq 400); do cat "$tmp/in"; done > "$tmp/big"
"$BIN" -m "$MODEL" -q --threads 1 -i "$tmp/big" -o "$tmp/big.fr" & pid=$!
sleep 1; kill -INT $pid; wait $pid; rc=$?
check "Ctrl-C: exit 130" '[ $rc -eq 130 ]'
check "Ctrl-C: no output file, no temporary file" '[ ! -e "$tmp/big.fr" ] && [ -z "$(ls "$tmp" | grep "big.fr")" ]'
"$BIN" -m "$MODEL" -q < "$tmp/big" 2> "$tmp/e" | head -1 > /dev/null
check "SIGPIPE (| head): nothing on stderr" '[ ! -s "$tmp/e" ]'

# progress: only when asked (stderr is not a terminal here)
tr_ < "$tmp/in" > /dev/null 2> "$tmp/e"; check "no progress when stderr is not a terminal" '[ ! -s "$tmp/e" ]'
"$BIN" -m "$MODEL" --progress --on-error skip < "$tmp/in" > /dev/null 2> "$tmp/e"
check "--progress reports lines and tokens/s" 'grep -q "lines, .* tokens/s" "$tmp/e"'

# sharding with GNU parallel gives the same output as one run
if command -v parallel > /dev/null; then
    parallel --will-cite --pipe --keep-order -N 25 "$BIN" -m "$MODEL" -q --threads 1 < "$tmp/in3" > "$tmp/par"
    check "GNU parallel --pipe --keep-order equals one run" 'cmp -s "$tmp/par" "$tmp/one"'
else
    check "GNU parallel installed" 'false'
fi

echo "test_batch: $pass passed, $fail failed"
[ $fail -eq 0 ]

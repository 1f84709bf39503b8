#!/usr/bin/env bash
# test_bad_input.sh — whatever is piped in, attn-translate never crashes (exit < 128)
# and never loses a line; each kind of bad input has the result the man page states.
# Usage: tests/test_bad_input.sh [path/to/attn-translate]
set -u
cd "$(dirname "$0")/.."
BIN=${1:-./attn-translate}
MODEL=tests/fixtures/tiny/A
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
count() { "$PY" -c 'import sys; d=open(sys.argv[1],"rb").read(); print(d.count(b"\n") + (1 if d and not d.endswith(b"\n") else 0))' "$1"; }

# name | bytes (python expression) | expected exit
cases=(
  'lone continuation bytes|b"ok\n\x80\x80 abc\nok\n"|3'
  'overlong encoding|b"\xc0\x80 and \xe0\x80\xaf\n"|3'
  'encoded surrogate|b"\xed\xa0\x80 surrogate\n"|3'
  'truncated sequence at end|b"caf\xc3"|3'
  'NUL inside a line|b"Hello\x00world.\nBye.\n"|0'
  'CRLF endings|b"Hello.\r\nBye.\r\n"|0'
  'no final newline|b"Hello.\nBye."|0'
  'empty file|b""|0'
  'only newlines|b"\n\n\n\n"|0'
  'binary junk|(lambda r: bytes(r.randrange(256) for _ in range(20000)))(__import__("random").Random(1))|3'
  'one 1 MB line|b"The cat sleeps. " * 65536 + b"\n"|3'
  'a 90 KB line of sentences|b"The cat sleeps. " * 5600 + b"\n"|0'
)
i=0
for c in "${cases[@]}"; do
    name=${c%%|*}; rest=${c#*|}; expr=${rest%|*}; want=${rest##*|}
    i=$((i + 1))
    "$PY" -c "import sys; sys.stdout.buffer.write($expr)" > "$tmp/in$i"
    timeout 300 "$BIN" -m "$MODEL" -q --threads 2 < "$tmp/in$i" > "$tmp/out$i" 2> "$tmp/err$i"; rc=$?
    check "$name: exit $want (got $rc)" '[ $rc -eq $want ]'
    check "$name: $(count "$tmp/in$i") lines in, same out" '[ "$(count "$tmp/in$i")" -eq "$(count "$tmp/out$i")" ]'
done
printf '\xff bad\000x\n' > "$tmp/nulbad"; "$BIN" -m "$MODEL" -q < "$tmp/nulbad" > "$tmp/nulout"
check "an invalid line with a NUL is copied whole" 'cmp -s "$tmp/nulbad" "$tmp/nulout"'
# the copy policy keeps the bytes of an invalid line
check "invalid line copied through unchanged" '[ "$(sed -n 2p "$tmp/out1" | od -An -tx1)" = "$(sed -n 2p "$tmp/in1" | od -An -tx1)" ]'

# models: missing, a directory without model.json, another format version
"$BIN" -m "$tmp/none" < /dev/null 2> "$tmp/e"; rc=$?
check "missing model: exit 1, one line naming it" '[ $rc -eq 1 ] && [ "$(wc -l < "$tmp/e")" -eq 1 ] && grep -q "$tmp/none" "$tmp/e"'
mkdir "$tmp/empty"
"$BIN" -m "$tmp/empty" < /dev/null 2> "$tmp/e"; rc=$?
check "directory without model.json: exit 1, one line naming the file" '[ $rc -eq 1 ] && [ "$(wc -l < "$tmp/e")" -eq 1 ] && grep -q "$tmp/empty/model.json" "$tmp/e"'
mkdir "$tmp/v99"; cp "$MODEL"/model.bin "$MODEL"/vocab.json "$tmp/v99/"
sed 's/"version": *1/"version": 99/' "$MODEL/model.json" > "$tmp/v99/model.json"
"$BIN" -m "$tmp/v99" < /dev/null 2> "$tmp/e"; rc=$?
check "model of another format version: exit 1, one line naming the file" '[ $rc -eq 1 ] && [ "$(wc -l < "$tmp/e")" -eq 1 ] && grep -q "v99/model.json.*version 99 is not supported" "$tmp/e"'

# a vocab.json with a 200 KB piece (it overflowed the stack while the trie was built)
mkdir "$tmp/longpiece"; cp "$MODEL"/model.json "$MODEL"/model.bin "$tmp/longpiece/"
"$PY" - "$MODEL/vocab.json" "$tmp/longpiece/vocab.json" <<'PYEOF'
import json, sys
v = json.load(open(sys.argv[1]))
v["source"]["pieces"].append(["x" * 200000, -5.0, "normal"])
json.dump(v, open(sys.argv[2], "w"))
PYEOF
echo "Hello." | "$BIN" -m "$tmp/longpiece" > /dev/null 2> "$tmp/e"; rc=$?
check "vocab with a 200 KB piece: exit 1 (got $rc), names the file" \
    '[ $rc -eq 1 ] && grep -q "vocab.json.*bytes long" "$tmp/e"'

# finite weights whose products overflow float (NaN logits): every line fails, is copied,
# and says why; before the fix the CLI read a hypothesis that did not exist (SIGSEGV)
mkdir "$tmp/overflow"; cp "$MODEL"/model.json "$MODEL"/vocab.json "$tmp/overflow/"
"$PY" - "$MODEL/model.json" "$MODEL/model.bin" "$tmp/overflow/model.bin" <<'PYEOF'
import json, struct, sys
h = json.load(open(sys.argv[1]))
b = bytearray(open(sys.argv[2], "rb").read())
t = h["tensors"]["decoder.layers.1.self_attn_layer_norm.weight"]
for k in range(t["offset"], t["offset"] + t["nbytes"], 4):
    struct.pack_into("<f", b, k, 3e38 if struct.unpack_from("<f", b, k)[0] >= 0 else -3e38)
open(sys.argv[3], "wb").write(b)
PYEOF
for beam in 1 3; do
    printf 'Hello world.\nThe cat.\n' | "$BIN" -m "$tmp/overflow" -b $beam > "$tmp/o" 2> "$tmp/e"; rc=$?
    check "overflowing weights, beam $beam: exit 3 (got $rc), lines copied, reason given" \
        '[ $rc -eq 3 ] && [ "$(cat "$tmp/o")" = "$(printf "Hello world.\nThe cat.")" ] && grep -q "non-finite" "$tmp/e"'
done

# generation.num_beams above the engine's limit of 64 (the loader takes up to 256): the
# default beam is capped instead of every line failing with "beam size 100 is outside"
mkdir "$tmp/beams"; cp "$MODEL"/model.bin "$MODEL"/vocab.json "$tmp/beams/"
"$PY" - "$MODEL/model.json" "$tmp/beams/model.json" <<'PYEOF'
import json, sys
h = json.load(open(sys.argv[1]))
h.setdefault("generation", {})["num_beams"] = 100
json.dump(h, open(sys.argv[2], "w"))
PYEOF
echo "Hello." | "$BIN" -m "$tmp/beams" -q > "$tmp/o" 2> "$tmp/e"; rc=$?
check "model with num_beams 100 translates with the capped default (exit $rc)" \
    '[ $rc -eq 0 ] && [ -s "$tmp/o" ]'

echo "test_bad_input: $pass passed, $fail failed"
[ $fail -eq 0 ]

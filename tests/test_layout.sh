#!/usr/bin/env bash
# test_layout.sh — the packed layout (format version 2) changes nothing but the loading:
#   - each tiny model and its packed16 copy (tests/fixtures/tiny/{A,B,C,A8} and {A,B,C,A8}P,
#     scripts/make_packed_fixtures.py) give byte-identical output (n-best scores, attention)
#     for every --dtype, with the AVX2 kernels (weights used in place) and without
#     (ATTN_TRANSLATE_ISA=scalar: unpacked at load);
#   - the packed fixtures are what scripts/pack_model.py makes now, and --layout rows turns
#     each back into its source's model.json and model.bin byte for byte;
#   - a model with tied but unshared embeddings (its decoder embedding packed) and one with
#     int8 weights, packed by pack_model.py, translate like their row-major files;
#   - an int8 file keeps its stored weights (never re-quantized);
#   - loading on 1 or 3 threads gives the same output;
#   - atmodel.read_model refuses a tied int8 lm_head that is not the quantized embedding,
#     and nonzero padding.
# Usage: tests/test_layout.sh [path/to/attn-translate]
set -u
cd "$(dirname "$0")/.."
BIN=${1:-./attn-translate}
PY=${PYTHON:-/usr/bin/python3}
TINY=tests/fixtures/tiny
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0 skip=0
ok() { if [ "$1" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }
IN=$TINY/A/inputs.txt

# out MODEL DTYPE ISA: every number the tool prints for the inputs
out() { ATTN_TRANSLATE_ISA=$3 "$BIN" -m "$1" --dtype "$2" -b 3 -n 3 --show-attn --attn-format json -q < "$IN"; }
same() { # same LABEL DIR_A DIR_B
    for isa in avx2 scalar; do
        for dt in auto f32 f16 int8; do
            out "$2" $dt $isa > "$tmp/a" 2> /dev/null; ra=$?
            out "$3" $dt $isa > "$tmp/b" 2> /dev/null; rb=$?
            [ $ra -eq 0 ] && [ $rb -eq 0 ] && [ -s "$tmp/a" ] && cmp -s "$tmp/a" "$tmp/b"
            ok $? "$1: --dtype $dt ($isa): packed and row-major files differ (exit $ra, $rb)"
        done
    done
}
for m in A B C A8; do same "$m" "$TINY/$m" "$TINY/${m}P"; done
# loaded by 1 or 3 threads (--threads also sets the loading threads): the same output
for m in A AP A8P BP; do
    for dt in f32 f16 int8; do
        "$BIN" -m "$TINY/$m" --dtype $dt --threads 1 -b 3 -n 3 -q < "$IN" > "$tmp/t1" 2> /dev/null
        "$BIN" -m "$TINY/$m" --dtype $dt --threads 3 -b 3 -n 3 -q < "$IN" > "$tmp/t3" 2> /dev/null
        [ -s "$tmp/t1" ] && cmp -s "$tmp/t1" "$tmp/t3"
        ok $? "$m --dtype $dt: loaded by 1 and 3 threads, the outputs differ"
    done
done

if ! "$PY" -c 'import numpy' 2> /dev/null; then
    echo "SKIP: numpy is not importable by $PY: scripts/pack_model.py checks skipped" >&2
    echo "test_layout: $pass passed, $fail failed, 1 skipped"
    [ "$fail" -eq 0 ]; exit
fi
for m in A B C A8; do
    "$PY" scripts/pack_model.py "$TINY/$m" "$tmp/p$m" > /dev/null &&
        cmp -s "$tmp/p$m/model.bin" "$TINY/${m}P/model.bin" && cmp -s "$tmp/p$m/model.json" "$TINY/${m}P/model.json"
    ok $? "$m: the committed ${m}P is not what pack_model.py writes (make_packed_fixtures.py)"
    "$PY" scripts/pack_model.py --layout rows "$TINY/${m}P" "$tmp/r$m" > /dev/null &&
        cmp -s "$tmp/r$m/model.bin" "$TINY/$m/model.bin" && cmp -s "$tmp/r$m/model.json" "$TINY/$m/model.json"
    ok $? "$m: ${m}P back to --layout rows is not $m byte for byte"
done
grep -q '"version": 2' "$TINY/AP/model.json" && grep -q '"version": 1' "$tmp/rA/model.json"
ok $? "packed files are version 2, row-major ones version 1"

# tied, unshared embeddings: A with two copies of its embedding (the decoder's perturbed)
"$PY" - "$TINY/A" "$tmp/T" <<'EOF' || ok 1 "building the tied, unshared model"
import sys, os, shutil
sys.path.insert(0, "scripts")
import atmodel
h, t = atmodel.read_model(sys.argv[1])
c = dict(h["config"], share_encoder_decoder_embeddings=False)
e = t.pop("shared.weight")
t["encoder.embed_tokens.weight"], t["decoder.embed_tokens.weight"] = e, e[::-1].copy() * 1.5
atmodel.write_model(sys.argv[2], c, h["generation"], t, vocab=atmodel.read_vocab(sys.argv[1]))
EOF
"$PY" scripts/pack_model.py "$tmp/T" "$tmp/TP" > /dev/null
ok $? "pack_model.py on the tied, unshared model"
"$PY" -c 'import json,sys; t=json.load(open(sys.argv[1]))["tensors"]; sys.exit(not (t["decoder.embed_tokens.weight"]["layout"] == "packed16" and t["encoder.embed_tokens.weight"]["layout"] == "rows"))' "$tmp/TP/model.json"
ok $? "the tied decoder embedding is packed16, the encoder's rows"
same "tied unshared" "$tmp/T" "$tmp/TP"

# int8, packed from f32 and from an int8 file: the stored bytes are kept
"$PY" scripts/pack_model.py --dtype int8 "$TINY/A" "$tmp/Q" > /dev/null
ok $? "pack_model.py --dtype int8"
same "int8 from f32" "$TINY/A8" "$tmp/Q"
"$PY" - "$TINY/A8" "$TINY/A8P" <<'EOF'
import sys, numpy as np
sys.path.insert(0, "scripts")
import atmodel
a, b = {}, {}
atmodel.read_model(sys.argv[1], int8=a); atmodel.read_model(sys.argv[2], int8=b)
assert set(a) == set(b) and len(a) > 10, sorted(set(b) ^ set(a))
for k in a:
    assert np.array_equal(a[k][0], b[k][0]) and np.array_equal(a[k][1], b[k][1]), k
h = atmodel.read_header(sys.argv[2])["tensors"]
assert h["lm_head.weight"]["dtype"] == "i8" and h["lm_head.weight"]["layout"] == "packed16"
EOF
ok $? "A8P keeps A8's int8 weights and scales, and stores the tied lm_head as i8"

# the Python reader: a stored tied lm_head must be the quantized embedding; zero padding
cp -r "$TINY/A8P" "$tmp/bad" && rm "$tmp/bad/vocab.json" && cp "$TINY/A/vocab.json" "$tmp/bad/"
"$PY" - "$tmp/bad" <<'EOF'
import sys, json, os
sys.path.insert(0, "scripts")
import atmodel
d = sys.argv[1]
t = json.load(open(os.path.join(d, "model.json")))["tensors"]
blob = bytearray(open(os.path.join(d, "model.bin"), "rb").read())
def refused(what, want):
    try:
        atmodel.read_model(d)
    except atmodel.FormatError as e:
        assert want in str(e), (what, str(e))
        return
    raise AssertionError(f"read_model accepted {what}")
orig = bytes(blob)
e = t["lm_head.weight"]
blob[e["offset"] + 5] = (blob[e["offset"] + 5] + 1) % 100   # a changed int8 value
open(os.path.join(d, "model.bin"), "wb").write(blob)
refused("a tied lm_head that is not the quantized embedding", "not the int8 quantization")
blob[:] = orig
blob[e["offset"] + 31 * 16 * 32 + 2 * 64 + 4 * 4] = 1           # row 500: padding
open(os.path.join(d, "model.bin"), "wb").write(blob)
refused("nonzero padding", "nonzero padding")
EOF
ok $? "read_model refuses a wrong tied lm_head and nonzero padding"
"$BIN" -m "$tmp/bad" -q < "$IN" > /dev/null 2> "$tmp/err"; rc=$?
[ $rc -eq 1 ] && grep -q "nonzero padding" "$tmp/err"
ok $? "the engine refuses the padding too (exit $rc: $(head -c 300 "$tmp/err"))"

echo "test_layout: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/usr/bin/env bash
# test_cli.sh — the attn-translate command end to end on the tiny fixture model:
# line count preserved whatever the input, exit codes, errors on stderr.
# Usage: tests/test_cli.sh [path/to/attn-translate]
set -u
cd "$(dirname "$0")/.."
BIN=${1:-./attn-translate}
MODEL=tests/fixtures/tiny/A
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
lines() { wc -l < "$1" | tr -d ' '; }
tr_() { "$BIN" -m "$MODEL" "$@"; }

# usage and help
"$BIN" --help > "$tmp/help"; check "--help exits 0" '[ $? -eq 0 ]'
check "--help mentions --beam" 'grep -q -- "--beam" "$tmp/help"'
"$BIN" --version > "$tmp/v"; check "--version" 'grep -q "^attn-translate " "$tmp/v"'
"$BIN" --no-such-option 2> "$tmp/e" < /dev/null; check "unknown option exit 2" '[ $? -eq 2 ]'
tr_ --beam 0 2> "$tmp/e" < /dev/null; check "--beam 0 exit 2" '[ $? -eq 2 ]'
tr_ --max-length x 2> "$tmp/e" < /dev/null; check "--max-length x exit 2" '[ $? -eq 2 ]'

# missing / broken model: exit 1, message names the path
"$BIN" -m "$tmp/nope" < /dev/null 2> "$tmp/e"; check "missing model exit 1" '[ $? -eq 1 ]'
check "missing model message" 'grep -q "$tmp/nope" "$tmp/e"'
mkdir "$tmp/broken"; cp "$MODEL"/* "$tmp/broken/"; head -c 1000 "$MODEL/model.bin" > "$tmp/broken/model.bin"
echo hi | "$BIN" -m "$tmp/broken" > "$tmp/o" 2> "$tmp/e"; check "truncated model exit 1" '[ $? -eq 1 ]'
check "truncated model message" 'grep -q "truncated" "$tmp/e"'

# empty input, empty lines, no final newline, CRLF
printf '' | tr_ > "$tmp/o"; check "empty input → empty output" '[ ! -s "$tmp/o" ]'
printf '\n' | tr_ > "$tmp/o"; check "empty line → empty line" '[ "$(cat "$tmp/o")" = "" ] && [ $(lines "$tmp/o") -eq 1 ]'
printf 'Hello.\n\n   \nGood night.' | tr_ > "$tmp/o"; rc=$?
check "4 lines in, 4 out (no final newline)" '[ $rc -eq 0 ] && [ $(lines "$tmp/o") -eq 4 ]'
check "empty line stays empty, blank line is kept as is" '[ "$(sed -n 2p "$tmp/o")" = "" ] && [ "$(sed -n 3p "$tmp/o")" = "   " ]'
printf 'Hello.\r\nGood night.\r\n' | tr_ > "$tmp/crlf"; printf 'Hello.\nGood night.\n' | tr_ > "$tmp/lf"
check "CRLF input translates like LF" 'cmp -s "$tmp/crlf" "$tmp/lf"'

# invalid UTF-8: copied through by default, exit 3, line number on stderr
printf 'Hello.\n\xff\xfe bad\nGood night.\n' | tr_ > "$tmp/o" 2> "$tmp/e"; rc=$?
check "invalid UTF-8 exit 3" '[ $rc -eq 3 ]'
check "invalid UTF-8 line count" '[ $(lines "$tmp/o") -eq 3 ]'
check "invalid UTF-8 copied through" '[ "$(sed -n 2p "$tmp/o")" = "$(printf "\xff\xfe bad")" ]'
check "invalid UTF-8 reported with line number" 'grep -q "<stdin>:2: " "$tmp/e"'
printf 'Hello.\n\xff\nGood night.\n' | tr_ --on-error skip > "$tmp/o" 2>/dev/null
check "--on-error skip prints empty line" '[ $(lines "$tmp/o") -eq 3 ] && [ "$(sed -n 2p "$tmp/o")" = "" ]'
printf 'Hello.\n\xff\nGood night.\n' | tr_ --on-error fail > "$tmp/o" 2>/dev/null; rc=$?
check "--on-error fail exit 1" '[ $rc -eq 1 ]'
printf 'Hello.\n\xff\n' | tr_ -q > "$tmp/o" 2> "$tmp/e"
check "--quiet silences warnings" '[ ! -s "$tmp/e" ]'

# long lines and junk never lose a line
"$PY" -c 'print("This is a test sentence. " * 400)' > "$tmp/long"
tr_ < "$tmp/long" > "$tmp/o" 2> "$tmp/e"; rc=$?
check "10,000-char line: split, translated, one line out" '[ $rc -eq 0 ] && [ $(lines "$tmp/o") -eq 1 ] && [ $(wc -c < "$tmp/o") -gt 1000 ]'
tr_ --no-split-sentences < "$tmp/long" > "$tmp/o" 2> "$tmp/e"; rc=$?
check "--no-split-sentences: too long reported, copied" '[ $rc -eq 3 ] && grep -q "limit" "$tmp/e" && cmp -s "$tmp/o" "$tmp/long"'
"$PY" -c 'print("word " * 30000)' > "$tmp/huge"
tr_ < "$tmp/huge" > "$tmp/o" 2> "$tmp/e"; rc=$?
check "150 KB line: over --max-line-bytes, reported, one line" '[ $rc -eq 3 ] && [ $(lines "$tmp/o") -eq 1 ] && grep -q "max-line-bytes" "$tmp/e"'
"$PY" -c 'import random, sys; r = random.Random(7); sys.stdout.buffer.write(bytes(r.randrange(256) for _ in range(4000)))' > "$tmp/junk"
n=$("$PY" -c 'import sys; d = open(sys.argv[1], "rb").read(); print(d.count(b"\n") + (1 if d and not d.endswith(b"\n") else 0))' "$tmp/junk")
tr_ -q < "$tmp/junk" > "$tmp/o"; rc=$?
check "binary junk: no crash" '[ $rc -eq 0 ] || [ $rc -eq 3 ]'
check "binary junk: line count" '[ $(lines "$tmp/o") -eq $n ]'

# n-best in Marian format
printf 'Hello.\nGood night.\n' | tr_ --beam 4 --n-best 3 > "$tmp/o"
check "n-best: 3 per line" '[ $(lines "$tmp/o") -eq 6 ]'
check "n-best format" '[ $(grep -cE "^[01] \|\|\| .* \|\|\| -?[0-9.]+$" "$tmp/o") -eq 6 ]'
tr_ --beam 2 --n-best 3 < /dev/null 2> /dev/null; check "n-best > beam exit 2" '[ $? -eq 2 ]'

# greedy and beam output equal the reference's, line for line
if [ -f "$MODEL/translations.json" ]; then
    "$PY" - "$MODEL/translations.json" "$tmp" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
lines = d["lines"] if isinstance(d, dict) else d
with open(sys.argv[2] + "/in", "w") as f:
    f.write("".join(l["src"] + "\n" for l in lines))
blank = lambda s: s.strip(" \t") == ""   # the CLI writes blank lines back as they are
for key in ("greedy", "beam4"):
    with open(sys.argv[2] + "/" + key, "w") as f:
        f.write("".join((l["src"] if blank(l["src"]) else l[key]["hyps"][0]["text"]) + "\n" for l in lines))
PYEOF
    tr_ --beam 1 < "$tmp/in" > "$tmp/o1"; tr_ --beam 4 < "$tmp/in" > "$tmp/o4"
    check "greedy output equals the reference" 'cmp -s "$tmp/o1" "$tmp/greedy" || { diff "$tmp/o1" "$tmp/greedy" | head >&2; false; }'
    check "beam-4 output equals the reference" 'cmp -s "$tmp/o4" "$tmp/beam4" || { diff "$tmp/o4" "$tmp/beam4" | head >&2; false; }'
else
    bad "no translations.json fixture"
fi

# attention dumps never change the translation
printf 'Hello.\n\nGood night.\n\xff\n' > "$tmp/ain"
tr_ -q < "$tmp/ain" > "$tmp/plain"
tr_ -q --show-attn --attn-format json < "$tmp/ain" > "$tmp/j"
check "--attn-format json: one JSON object per input line" '[ $(lines "$tmp/j") -eq 4 ]'
check "json translations equal plain output" '"$PY" -c "import json,sys; t=[json.loads(l)[\"translation\"] for l in open(sys.argv[1])]; p=open(sys.argv[2], encoding=\"utf-8\", errors=\"replace\").read().split(\"\\n\")[:4]; sys.exit(0 if t[:3]==p[:3] else 1)" "$tmp/j" "$tmp/plain"'
tr_ --align < "$tmp/ain" > "$tmp/al" 2> /dev/null
check "--align: 'translation ||| s-t ...' per line" '[ $(lines "$tmp/al") -eq 4 ] && [ "$(sed -n 1p "$tmp/al" | sed "s/ |||.*//")" = "$(sed -n 1p "$tmp/plain")" ] && sed -n 1p "$tmp/al" | grep -qE "\|\|\| ([0-9]+-[0-9]+ ?)+$"'
tr_ -q --attn-format svg --attn-dir "$tmp/svg" < "$tmp/ain" > "$tmp/s"
# --dtype f16 / int8 against the reference's --weights f16 / int8 (int8: lines whose
# greedy decision margin is clear of quantization noise, as in test_forward)
tr_ --dtype f64 < /dev/null 2> "$tmp/e"; check "--dtype f64: exit 2" '[ $? -eq 2 ] && grep -q "f32, f16 or int8" "$tmp/e"'
for dt in f16 int8; do
    margin=0; [ $dt = int8 ] && margin=0.02
    if [ -f "$MODEL/translations_$dt.json" ]; then
        tr_ --dtype $dt --beam 1 < "$tmp/in" > "$tmp/o_$dt"
        check "--dtype $dt greedy equals the reference's --weights $dt" '"$PY" - "$MODEL/translations_$dt.json" "$tmp/o_$dt" $margin <<'"'"'PYEOF'"'"'
import json, sys
d = json.load(open(sys.argv[1]))
got = open(sys.argv[2], encoding="utf-8", errors="replace").read().split("\n")
bad = [i for i, l in enumerate(d["lines"]) if l["src"].strip(" \t")
       and (l["greedy"]["min_margin"] is None or l["greedy"]["min_margin"] >= float(sys.argv[3]))
       and got[i] != l["greedy"]["hyps"][0]["text"]]
print(*("line %d: %r vs %r" % (i, got[i], d["lines"][i]["greedy"]["hyps"][0]["text"]) for i in bad), sep="\n", file=sys.stderr)
sys.exit(1 if bad or len(got) != len(d["lines"]) + 1 else 0)
PYEOF'
    else
        bad "no translations_$dt.json fixture"
    fi
done

# an i8 model file (A8 = A written by atmodel with dtype int8) computes in int8 by
# default, bit for bit like A loaded with --dtype int8 (n-best scores included)
A8="$(dirname "$MODEL")/A8"
if [ -f "$A8/model.json" ]; then
    tr_ --dtype int8 -b 4 -n 4 < "$tmp/in" > "$tmp/q_f32file"
    "$BIN" -m "$A8" -b 4 -n 4 < "$tmp/in" > "$tmp/q_i8file" 2> /dev/null
    check "i8 file = f32 file --dtype int8, bit for bit" 'cmp -s "$tmp/q_f32file" "$tmp/q_i8file"'
    "$BIN" -m "$A8" --dtype f32 < "$tmp/in" > "$tmp/q_wide" 2> /dev/null
    check "i8 file --dtype f32: every line" '[ $? -eq 0 ] && [ $(lines "$tmp/q_wide") -eq $(lines "$tmp/in") ]'
else
    bad "no A8 fixture"
fi

check "--attn-format svg: translations on stdout, pictures in --attn-dir" 'cmp -s "$tmp/s" "$tmp/plain" && [ -f "$tmp/svg/line-000001.svg" ] && [ -f "$tmp/svg/line-000003.svg" ]'
tr_ --show-attn --attn-layer 9 < /dev/null 2> /dev/null; check "--attn-layer out of range: exit 2" '[ $? -eq 2 ]'

# a split line keeps one record per input line in every format (issue 13)
L="The cat sleeps. The dog runs! Is it raining? Yes."
printf '%s\nHello.\n' "$L" > "$tmp/split.in"
tr_ --max-input 8 < "$tmp/split.in" > "$tmp/split.plain"
tr_ --max-input 8 --attn-format json < "$tmp/split.in" > "$tmp/split.json"
check "split line, json: one valid object per input line, block-diagonal, indices over the line" '"$PY" - "$tmp/split.json" "$tmp/split.plain" <<'"'"'PYEOF'"'"'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
plain = open(sys.argv[2], encoding="utf-8").read().split("\n")
assert len(recs) == 2 and [r["line"] for r in recs] == [1, 2], recs
r = recs[0]
assert r["translation"] == plain[0]
T, S = len(r["tgt_tokens"]), len(r["src_tokens"])
assert len(r["attention"]) == T and all(len(row) == S for row in r["attention"])
assert all(abs(sum(row) - 1) < 1e-4 for row in r["attention"])
p = r["pieces"]
assert len(p) > 1 and p[0]["src"][0] == 0 and p[-1]["src"][1] == S and p[-1]["tgt"][1] == T
for a, b in zip(p, p[1:]):
    assert a["src"][1] == b["src"][0] and a["tgt"][1] == b["tgt"][0]
for q in p:  # zero outside the block of each piece
    for t in range(*q["tgt"]):
        assert all(r["attention"][t][s] == 0 for s in range(S) if not q["src"][0] <= s < q["src"][1])
assert " ".join(x["translation"] for x in p if x["translation"]) == r["translation"]
assert "pieces" not in recs[1]
PYEOF'
tr_ --max-input 8 -b 2 < "$tmp/split.in" > "$tmp/split.b2"
tr_ --max-input 8 -b 2 -n 2 < "$tmp/split.in" > "$tmp/split.nbest"
check "split line, n-best: one record (the joined best), each record on its own line" \
    '[ $(grep -c "^0 |||" "$tmp/split.nbest") -eq 1 ] && [ $(grep -c "^1 |||" "$tmp/split.nbest") -eq 2 ] && [ "$(sed -n 1p "$tmp/split.nbest" | sed -E "s/^0 \|\|\| (.*) \|\|\| [-0-9.]+$/\1/")" = "$(sed -n 1p "$tmp/split.b2")" ]'
tr_ --max-input 8 --align < "$tmp/split.in" > "$tmp/split.align"
check "split line, --align: one alignment, target words counted over the whole line" '"$PY" - "$tmp/split.align" "$tmp/split.plain" <<'"'"'PYEOF'"'"'
import sys
rows = open(sys.argv[1], encoding="utf-8").read().split("\n")[:2]
plain = open(sys.argv[2], encoding="utf-8").read().split("\n")
text, al = rows[0].rsplit(" ||| ", 1)
assert text == plain[0] and " ||| " not in text
pairs = [tuple(map(int, x.split("-"))) for x in al.split()]
assert [t for _, t in pairs] == list(range(len(pairs))) and len(pairs) > 5, pairs
assert max(s for s, _ in pairs) > 3   # source words beyond the first piece
PYEOF'

# untranslated lines never look like translations
printf 'Hello.\n\xff\xfe bad\n' | tr_ --attn-format json > "$tmp/o" 2> "$tmp/e"
check "json: an untranslated line has \"error\" and score null" '"$PY" -c "
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if r[1][\"score\"] is None and r[1][\"error\"] and \"error\" not in r[0] and r[0][\"score\"] is not None else 1)" "$tmp/o"'
printf 'Hello.\n\xff\xfe bad\n' | tr_ -b 2 -n 2 > "$tmp/o" 2> "$tmp/e"; rc=$?
check "n-best: an untranslated line has score -inf, the error on stderr" '[ $rc -eq 3 ] && [ "$(grep -a "^1 |||" "$tmp/o")" = "$(printf "1 ||| \xff\xfe bad ||| -inf")" ] && grep -q "<stdin>:2:" "$tmp/e"'

# options are checked the same way whatever else is given
tr_ --attn-layer 5 < /dev/null 2> /dev/null; check "--attn-layer 5 without --show-attn: exit 2" '[ $? -eq 2 ]'
tr_ --attn-head 9 < /dev/null 2> /dev/null; check "--attn-head 9 without --show-attn: exit 2" '[ $? -eq 2 ]'
tr_ --attn-head 9 --show-attn < /dev/null 2> /dev/null; check "--attn-head 9 with --show-attn: exit 2" '[ $? -eq 2 ]'
echo Hello. | tr_ --align -b 2 -n 2 > /dev/null 2> "$tmp/e"; check "--align with --n-best: refused, exit 2" '[ $? -eq 2 ] && grep -q "n-best" "$tmp/e"'
echo Hello. | tr_ --length-penalty -1 > /dev/null 2> /dev/null; check "--length-penalty -1: exit 2" '[ $? -eq 2 ]'
echo Hello. | tr_ --length-penalty 0 > /dev/null 2> /dev/null; check "--length-penalty 0: defined (raw log-prob), exit 0" '[ $? -eq 0 ]'
echo Hello. | tr_ --max-length 0+0 > /dev/null 2> /dev/null; check "--max-length 0+0: exit 2" '[ $? -eq 2 ]'
echo Hello. | tr_ --max-length 0+1 > "$tmp/o" 2> /dev/null; check "--max-length 0+1: exit 0, one line" '[ $? -eq 0 ] && [ $(lines "$tmp/o") -eq 1 ]'
check "--help lists --split-sentences" 'grep -q -- "--split-sentences " "$tmp/help"'
check "--help says n-best lines count from 0, JSON and SVG from 1" 'grep -q "counts from 0" "$tmp/help" && grep -q "JSON and SVG from 1" "$tmp/help"'

# the missing-model message: one line naming every place searched, absolute paths
mkdir -p "$tmp/inst/bin"; cp "$BIN" "$tmp/inst/bin/attn-translate"
(cd / && env -u ATTN_TRANSLATE_MODEL "$tmp/inst/bin/attn-translate" < /dev/null 2> "$tmp/e"); rc=$?
check "no model: exit 1, one line" '[ $rc -eq 1 ] && [ $(lines "$tmp/e") -eq 1 ]'
check "no model: names -m, \$ATTN_TRANSLATE_MODEL, beside the binary, ../share and PREFIX" \
    'grep -q -- "-m" "$tmp/e" && grep -q "ATTN_TRANSLATE_MODEL" "$tmp/e" && grep -q "$tmp/inst/bin/models/en-fr" "$tmp/e" && grep -q "$tmp/inst/share/attn-translate/en-fr" "$tmp/e" && grep -q "PREFIX" "$tmp/e"'
(cd / && ATTN_TRANSLATE_MODEL=$tmp/wrong "$tmp/inst/bin/attn-translate" < /dev/null 2> "$tmp/e"); rc=$?
check "\$ATTN_TRANSLATE_MODEL wrong: says so, in one line" '[ $rc -eq 1 ] && [ $(lines "$tmp/e") -eq 1 ] && grep -q "ATTN_TRANSLATE_MODEL is set to $tmp/wrong" "$tmp/e" && ! grep -q "no default model" "$tmp/e"'
ABS_BIN=$(realpath "$BIN"); (cd "$tmp" && "$ABS_BIN" -m nope < /dev/null 2> "$tmp/e")
check "-m missing: the absolute path" 'grep -q "$tmp/nope" "$tmp/e" && [ $(lines "$tmp/e") -eq 1 ]'

# a single line with stderr on a terminal: only the French, statistics when asked for
tty_err() { "$PY" - "$@" <<'PYEOF'
import os, pty, subprocess, sys
m, s = pty.openpty()
p = subprocess.run(sys.argv[1:], input=b"Hello.\n", stdout=subprocess.PIPE, stderr=s)
os.close(s)
err = b""
try:
    while True:
        d = os.read(m, 4096)
        if not d: break
        err += d
except OSError:
    pass
sys.stdout.write("OUT:%s\nERR:%s\n" % (p.stdout.decode("utf-8", "replace").strip(), err.decode("utf-8", "replace").strip()))
PYEOF
}
tty_err "$BIN" -m "$MODEL" > "$tmp/tty"
check "terminal stderr, one line: no statistics" 'grep -q "^OUT:." "$tmp/tty" && grep -qx "ERR:" "$tmp/tty"'
tty_err "$BIN" -m "$MODEL" --progress > "$tmp/tty"
check "--progress: the closing statistics" 'grep -q "^ERR:.*1 lines, .*tokens/s" "$tmp/tty"'
echo Hello. | tr_ --verbose 2> "$tmp/e" > /dev/null
check "--verbose: the closing statistics" 'grep -q "1 lines, .*tokens/s" "$tmp/e"'

# README examples are the tool's own output: every "$ ..." block on the tiny model or the shipped one
check "README examples equal the tool's output" '"$PY" - "$BIN" <<'"'"'PYEOF'"'"'
import os, re, subprocess, sys
text = open("README.md", encoding="utf-8").read()
# "$ ..." blocks on the tiny model, and on the shipped model (no -m) when it is here
blocks = re.findall(r"```[a-z]*\n(\$ [^\n]*\./attn-translate[^\n]*)\n(.*?)```", text, re.S)
shipped = os.path.exists("models/en-fr/model.json")
blocks = [(c, w) for c, w in blocks if "-m tests/fixtures/tiny/A" in c or (" -m " not in c and shipped)]
NUM = re.compile(r"-?\d+(?:\.\d+)?")
def same(got, want):
    """Equal text; numbers may differ by one unit in their last printed digit (f32 sums
    round differently on AVX2 and AVX-512 machines: the 6th decimal of a score, a percentage)."""
    g, w = NUM.split(got), NUM.split(want)
    if g != w:
        return False
    for a, b in zip(NUM.findall(got), NUM.findall(want)):
        places = len(b.split(".")[1]) if "." in b else 0
        if ("." in a) != ("." in b) or abs(float(a) - float(b)) > 1.5 * 10 ** -places:
            return False
    return True
bad = 0
for cmd, want in blocks:
    binary = sys.argv[1] if " -m " in cmd else sys.argv[1] + " -m models/en-fr"
    cmd = cmd[2:].replace("./attn-translate", binary)
    got = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True).stdout
    if not same(got.rstrip("\n"), want.rstrip("\n")):
        bad += 1
        print("README example differs:", cmd, "\n", got, file=sys.stderr)
sys.exit(1 if bad or len(blocks) < 2 else 0)
PYEOF'

echo "test_cli: $pass passed, $fail failed"
[ $fail -eq 0 ]

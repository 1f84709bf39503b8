#!/bin/sh
# make_spm_fixture.sh — regenerates tests/fixtures/spm/: a small SentencePiece unigram
# model trained on Tatoeba (CC-BY 2.0 FR), its vocab.json, the tricky input lines and
# the golden segmentation produced by spm_encode/spm_decode (never by our C code).
#
#   scripts/make_spm_fixture.sh [SHARED_DIR]     (default: <repo>/../shared)
#
# Needs Debian's sentencepiece tools (spm_train, spm_encode, spm_decode 0.1.97) and
# /usr/bin/python3. Deterministic: fixed line sample, one training thread, fixed seed.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${1:-$ROOT/../shared}
OUT=$ROOT/tests/fixtures/spm
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"

# 1. Training text: every 15th line of each side of the Tatoeba training data.
for ext in en fr; do
    awk 'NR % 15 == 1' "$SHARED/data/train/tatoeba/tatoeba.$ext"
done > "$TMP/train.txt"

# 2. Model.
(cd "$TMP" && spm_train --input=train.txt --model_prefix=spm --vocab_size=1000 \
    --model_type=unigram --character_coverage=1.0 --normalization_rule_name=nmt_nfkc \
    --unk_id=0 --eos_id=1 --pad_id=2 --bos_id=-1 --user_defined_symbols='<br>' \
    --num_threads=1 --random_seed=1 --minloglevel=2 > train.log 2>&1)
cp "$TMP/spm.model" "$OUT/spm.model"

# 3. vocab.json (with the model's precompiled charsmap).
$PY "$ROOT/scripts/spm_vocab.py" --joint "$OUT/spm.model" -o "$OUT/vocab.json"

# 4. Tricky input lines (Python escapes keep the file's odd bytes reviewable here).
$PY - "$OUT/input.txt" <<'PYEOF'
import sys
lines = [
    "Hello world.",
    "Bonjour tout le monde !",
    "Tom is a good student.",
    "Je ne sais pas ce que tu veux dire.",
    "L'été dernier, nous sommes allés à Montréal.",
    "Où est la bibliothèque ? Elle est près de l'hôpital.",
    "Ça coûte 3,50 € — c'est cher.",
    "«Bonjour», dit-il.",
    "« Bonjour », dit-elle.",
    "\u201cSmart quotes\u201d and \u2018single ones\u2019 and \"straight\" ones.",
    "The \ufb01rst \ufb02oor has an of\ufb01ce.",
    "\uff21\uff22\uff23 \uff41\uff42\uff43 \uff11\uff12\uff13 \uff01\uff1f",
    "Nous\u00a0sommes\u202fl\u00e0\u2009!",
    "tab\tseparated\twords",
    "multiple     spaces   here",
    "   leading spaces",
    "trailing spaces   ",
    "  both  ",
    "\tleading tab",
    "control\x01chars\x07here\x1b[0m",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "\ufeffBOM at start",
    "emoji \U0001F600 and \U0001F44D\U0001F3FD and \u2764\ufe0f",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "Mixed \u4e2d\u6587 and English",
    "combining e\u0301te\u0301 and A\u030a",
    "\u212b angstrom and \u2126 ohm",
    "1234567890 3.14159 1,000,000",
    "Punctuation!!! ??? ... ;:,.-_()[]{}",
    "very long word: " + "antidisestablishmentarianism" * 4,
    "",
    "   ",
    "\t\t",
    "Une phrase fran\u00e7aise : \u00e9 \u00e8 \u00ea \u00eb \u00e0 \u00e2 \u00ee \u00ef \u00f4 \u00f9 \u00fb \u00fc \u00ff \u00e7 \u0153 \u00e6.",
    "\u00c9COLE \u00ceLE \u00c7A",
    "x\u00b2+y\u00b3=z\u00bd",
    "\u2116 5, \u2122, \u2103, \u338f",
    "\u2581already escaped\u2581",
    "\uff76\uff80\uff76\uff85 halfwidth katakana",
    "line with trailing CR\r",
    "Greek: \u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "Russian: \u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440",
    "Korean: \uc548\ub155 and jamo \u1100\u1161\u11a8",
    "email@example.com https://example.org/path?q=1&r=2",
    "C'est l'heure d'aller \u00e0 l'\u00e9cole, n'est-ce pas ?",
    "It's 5 o'clock; don't worry.",
    "soft\u00adhyphen",
    "em\u2014dash en\u2013dash hyphen-minus",
    "ellipsis\u2026 and \u2026",
    "<br>user<br>defined <br>",
    "</s> <pad> <unk> literal specials",
    "\u01c5ungla \u01c4",
    "a\u0301\u0323 stacked marks",
    "\u0130stanbul",
    "\u0152UVRE \u0153uvre",
    "\u216b roman numeral \u217b",
    "\ufb00 \ufb03 \ufb04 \ufb05 \ufb06",
    "x\u0085y NEL line\u2028sep\u2029para",
    "~ \uff5e fullwidth tilde",
    "\U0001F600\U0001F600\U0001F600 repeated unknowns",
    "a",
    ".",
    "\x7f\x01",
    "Les enfants jouent dans le jardin.",
    "The children are playing in the garden.",
]
with open(sys.argv[1], "w", encoding="utf-8", newline="\n") as f:
    for l in lines:
        assert "\n" not in l
        f.write(l + "\n")
PYEOF

# 5. Golden: escaped input, pieces, ids, spm_decode of the ids.
spm_encode --model="$OUT/spm.model" --output_format=piece < "$OUT/input.txt" > "$TMP/pieces"
spm_encode --model="$OUT/spm.model" --output_format=id < "$OUT/input.txt" > "$TMP/ids"
spm_decode --model="$OUT/spm.model" --input_format=id < "$TMP/ids" > "$TMP/decoded"
$PY - "$OUT/input.txt" "$TMP/pieces" "$TMP/ids" "$TMP/decoded" "$OUT/golden.tsv" <<'PYEOF'
import sys
def rd(p):
    with open(p, encoding="utf-8", newline="\n") as f:
        t = f.read()
    assert t.endswith("\n")
    return t[:-1].split("\n")
cols = [rd(p) for p in sys.argv[1:5]]
assert len(set(map(len, cols))) == 1, list(map(len, cols))
esc = lambda s: s.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r")
with open(sys.argv[5], "w", encoding="utf-8", newline="\n") as f:
    f.write("# input (\\\\ \\t \\r escaped)\tspm_encode pieces\tspm_encode ids\tspm_decode\n")
    for row in zip(*cols):
        assert all("\t" not in c and "\r" not in c for c in row[1:])
        f.write("\t".join([esc(row[0])] + list(row[1:])) + "\n")
PYEOF
echo "make_spm_fixture: wrote $OUT"

#!/bin/sh
# tokenizer_dev_check.sh — compares our tokenizer with SentencePiece on real data.
#
#   tests/tokenizer_dev_check.sh [TOKCHECK_BINARY]     (or TOKCHECK=... in the env)
#
# Converts the OPUS-MT en-fr tokenizer (../shared/models/opus-mt-en-fr-tokenizer:
# source.spm, target.spm, vocab.json) to an attn-translate vocab.json with
# scripts/spm_vocab.py, then segments every line of every dev file in ../shared/data/dev
# with `tokcheck` (English with the source SPM, French with the target SPM) and
# compares with `spm_encode --model X.spm` (piece output). Each file is one check,
# passing only at 100% — with the model's precompiled charsmap (what spm_vocab.py
# writes) and with the built-in utf8proc normalization rules (--builtin-norm) alike.
# Ends with "tokenizer_dev_check: N passed, N failed". Needs spm_encode and
# /usr/bin/python3; when they or ../shared are missing it says so on stderr and
# reports "0 passed, 0 failed, 1 skipped" (exit 0).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))
SHARED=${SHARED:-$ROOT/../shared}
[ -d "$SHARED/data/dev" ] || SHARED=$HERE/../../shared
TOK=${1:-${TOKCHECK:-}}
PY=/usr/bin/python3
MODEL=$SHARED/models/opus-mt-en-fr-tokenizer
DEV=$SHARED/data/dev

skip() {
    echo "tokenizer_dev_check: skipped: $1" >&2
    echo "tokenizer_dev_check: 0 passed, 0 failed, 1 skipped"
    exit 0
}
[ -n "$TOK" ] || { echo "usage: $0 TOKCHECK_BINARY (or TOKCHECK=...)" >&2; exit 2; }
[ -x "$TOK" ] || { echo "tokenizer_dev_check: $TOK is not executable" >&2; exit 2; }
[ -d "$DEV" ] && [ -f "$MODEL/source.spm" ] || skip "no $DEV or $MODEL"
command -v spm_encode >/dev/null 2>&1 || skip "spm_encode not installed"
[ -x "$PY" ] || skip "$PY not found"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if ! "$PY" "$ROOT/scripts/spm_vocab.py" --source "$MODEL/source.spm" \
        --target "$MODEL/target.spm" --marian-vocab "$MODEL/vocab.json" \
        -o "$TMP/vocab.json"; then
    echo "tokenizer_dev_check: spm_vocab.py failed"
    echo "tokenizer_dev_check: 0 passed, 1 failed"
    exit 1
fi

passed=0
failed=0
# rate REF OUT -> "matching total"
rate() {
    # pieces never contain a tab, so one separates the two outputs
    paste "$1" "$2" | awk -F '\t' '$1 == $2 { m++ } END { print m + 0, NR + 0 }'
}
check_file() { # FILE SIDE SPM
    f=$DEV/$1
    [ -f "$f" ] || { echo "  $1: missing"; failed=$((failed + 1)); return; }
    spm_encode --model "$MODEL/$3" < "$f" > "$TMP/ref" 2>/dev/null
    "$TOK" "$TMP/vocab.json" "$2" < "$f" > "$TMP/cm"
    "$TOK" --builtin-norm "$TMP/vocab.json" "$2" < "$f" > "$TMP/bi"
    set -- "$1" $(rate "$TMP/ref" "$TMP/cm") $(rate "$TMP/ref" "$TMP/bi")
    ok=FAIL
    if [ "$2" = "$3" ] && [ "$4" = "$5" ] && [ "$3" -gt 0 ]; then
        ok=ok
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
    awk -v n="$1" -v a="$2" -v t="$3" -v b="$4" -v ok="$ok" 'BEGIN {
        printf "  %-32s %6d lines  charsmap %7.3f%%  builtin rules %7.3f%%  %s\n",
               n, t, t ? 100 * a / t : 0, t ? 100 * b / t : 0, ok }'
    if [ "$ok" = FAIL ]; then
        paste "$TMP/ref" "$TMP/cm" | awk -F '\t' '$1 != $2 {
            print "    line " NR ": spm [" $1 "]\n    ours     [" $2 "]"; if (++k == 3) exit }'
    fi
}

echo "tokenizer_dev_check: OPUS-MT en-fr SentencePiece vs tokcheck ($TOK)"
for f in eng_Latn.dev newstest2013.en tatoeba-test-v2021-08-07.eng test_2016_flickr.en; do
    check_file "$f" source source.spm
done
for f in fra_Latn.dev newstest2013.fr tatoeba-test-v2021-08-07.fra test_2016_flickr.fr; do
    check_file "$f" target target.spm
done
echo "tokenizer_dev_check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

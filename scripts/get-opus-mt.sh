#!/bin/sh
# get-opus-mt.sh — download Helsinki-NLP/opus-mt-en-fr from the Hugging Face hub and convert it
# for attn-translate. Needs only curl, sha256sum and python3 with numpy (Debian: curl,
# coreutils, python3-numpy): no torch, no transformers, no huggingface-cli.
#
#   scripts/get-opus-mt.sh [--dtype f32|f16|int8] [--strict] [--clean] [DIR]
#
#   DIR         the attn-translate model directory to write (default models/opus-mt-en-fr);
#               the downloaded files are kept in DIR.download/ (a rerun reuses the ones
#               whose sha256 is right), --clean removes them afterwards
#   --dtype     weights of model.bin: f32 (default, 285 MiB), f16 (half) or int8 (a quarter)
#   --strict    refuse files whose sha256 is not pinned below (see PINS)
#
# Every file is fetched at the pinned revision (PINS), checked against its size and sha256,
# and only then moved into place; a failed or interrupted download leaves no file behind.
# Then scripts/convert_marian.py converts (reading pytorch_model.bin with a restricted
# unpickler, numpy only), and the script prints a sample translation. After a download
# from the real hub it also translates the two sentences that transformers' own
# integration test checks for this model (beam 2, max_length 128) and warns loudly if
# the output differs.
#
# Environment (for mirrors and the offline test, tests/test_get_opus_mt.sh):
#   ATTN_HF_ENDPOINT      hub base URL (default https://huggingface.co); files are fetched
#                         from $ATTN_HF_ENDPOINT/$ATTN_OPUS_MT_REPO/resolve/REVISION/FILE
#   ATTN_OPUS_MT_REPO     default Helsinki-NLP/opus-mt-en-fr
#   ATTN_OPUS_MT_PINS     a file replacing the PINS table below (same format)
#   ATTN_OPUS_MT_CHECK    1: run the integration check whatever the endpoint; 0: never
#   ATTN_TRANSLATE        the attn-translate binary (default: ./attn-translate beside
#                         scripts/, then build/attn-translate, then the PATH)
#   PYTHON                default /usr/bin/python3 (or python3)
# Exit status: 0 done; 1 a download, check or conversion failed; 2 usage.
set -u

# ---- PINS: the one table of what is downloaded ---------------------------------------------
# "revision REV" is the hub commit; then one line per file: SHA256 SIZE NAME ("-" = not
# pinned: the file is checked only by what convert_marian.py checks, its sha256 is printed
# and --strict refuses it). Exactly one weights file: model.safetensors or pytorch_model.bin.
#
# NOT VERIFIED AGAINST THE HUB: these machines cannot reach huggingface.co. The sha256 and
# sizes of the five small files are those of the copies in
# ../shared/models/opus-mt-en-fr-tokenizer (the hub's files, as transformers 4.44.2 last
# wrote config.json and generation_config.json). The revision and the weights' sha256 are
# unknown here: whoever can reach the hub should set them
#   (curl -s https://huggingface.co/api/models/Helsinki-NLP/opus-mt-en-fr/revision/main
#    gives the commit "sha"; the weights' sha256 is the LFS oid on the file's page),
# and then run this script once with --strict.
PINS_DEFAULT='
revision main
702177353c763d38597ed22e7c7b64d75b23fe74ad0e3d57e291f1ff9e3da0d2 1434 config.json
4fa374a2cd96a43f644b2773d2ec2a3809915a3a6dbfcf4a018dee88ab3131af 288 generation_config.json
173e9f493a668fe396d599e28d414a201193094e6ffd7a4678e5aab0f6d3d838 778395 source.spm
78d0e717c77053f1c4b856d8661d9cb87c64f083a35418c087b9146300e4f585 802397 target.spm
f2ba9c69ae20f96b8bd821239a9152be422394f980350b77907cffc183db5f2d 1458196 vocab.json
- - pytorch_model.bin
'
# --------------------------------------------------------------------------------------------

SAMPLE="The weather is nice today."
CHECK_EN1="I am a small frog."
CHECK_FR1="Je suis une petite grenouille."
CHECK_EN2="Now I can forget the 100 words of german that I know."
CHECK_FR2="Maintenant, je peux oublier les 100 mots d'allemand que je connais."

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
prog=get-opus-mt.sh
die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }
usage() { sed -n '4,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

dtype=f32 strict=0 clean=0 dir=
while [ $# -gt 0 ]; do
    case $1 in
        --dtype) [ $# -ge 2 ] || usage; dtype=$2; shift 2 ;;
        --dtype=*) dtype=${1#--dtype=}; shift ;;
        --strict) strict=1; shift ;;
        --clean) clean=1; shift ;;
        -h|--help) usage ;;
        -*) echo "$prog: unknown option $1" >&2; usage ;;
        *) [ -z "$dir" ] || usage; dir=$1; shift ;;
    esac
done
case $dtype in f32|f16|int8) ;; *) echo "$prog: --dtype must be f32, f16 or int8" >&2; exit 2 ;; esac
dir=${dir:-models/opus-mt-en-fr}
dir=${dir%/}
dl="$dir.download"

endpoint=${ATTN_HF_ENDPOINT:-https://huggingface.co}
endpoint=${endpoint%/}
repo=${ATTN_OPUS_MT_REPO:-Helsinki-NLP/opus-mt-en-fr}
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    [ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3
fi

command -v curl >/dev/null || die "curl is not installed (Debian: apt-get install curl)"
command -v sha256sum >/dev/null || die "sha256sum is not installed (Debian: coreutils)"
"$PYTHON" -c 'import numpy' 2>/dev/null ||
    die "$PYTHON with numpy is needed for the conversion (Debian: apt-get install python3-numpy)"

if [ -n "${ATTN_OPUS_MT_PINS:-}" ]; then
    pins=$(cat "$ATTN_OPUS_MT_PINS") || die "cannot read ATTN_OPUS_MT_PINS=$ATTN_OPUS_MT_PINS"
else
    pins=$PINS_DEFAULT
fi
rev=$(printf '%s\n' "$pins" | awk '$1 == "revision" { print $2; exit }')
files=$(printf '%s\n' "$pins" | awk 'NF == 3 && $1 != "revision" && $1 !~ /^#/')
[ -n "$rev" ] && [ -n "$files" ] || die "the pin table has no revision or no files"
case $rev in
    *[!0-9a-f]*|'') say "WARNING: revision '$rev' is a branch name, not a pinned commit (see PINS)"
                    [ "$strict" = 1 ] && die "--strict: the revision is not pinned" ;;
esac

# ---- disk space: the download, plus the converted model, plus a margin ---------------------
tmpfile=
cleanup() {
    [ -n "$tmpfile" ] && rm -f "$tmpfile"
    rm -f "$dl/.pins"
    rmdir "$dl" 2>/dev/null   # only if nothing was downloaded
    return 0
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM HUP
mkdir -p "$dl" || die "cannot create $dl"
weights=$(printf '%s\n' "$files" | awk '$3 == "pytorch_model.bin" || $3 == "model.safetensors" { print $2 }')
case $weights in ''|-) wbytes=301000000 ;; *) wbytes=$weights ;; esac
case $dtype in f32) out=$wbytes ;; f16) out=$((wbytes / 2)) ;; int8) out=$((wbytes / 4)) ;; esac
need_kb=$(( (wbytes + 6000000 + out + out / 10) / 1024 ))
have_kb=$(df -Pk "$dl" 2>/dev/null | awk 'NR == 2 { print $4 }')
case $have_kb in
    ''|*[!0-9]*) say "cannot tell the free disk space of $dl; going on" ;;
    *) [ "$have_kb" -ge "$need_kb" ] ||
        die "not enough disk space in $(cd "$dl" && pwd): $((have_kb / 1024)) MiB free, about $((need_kb / 1024)) MiB needed (download + $dtype model)" ;;
esac

# ---- download ----------------------------------------------------------------------------

fetch() {   # fetch SHA SIZE NAME
    sha=$1 size=$2 name=$3
    dest="$dl/$name"
    if [ -f "$dest" ]; then
        have=$(sha256sum "$dest" | cut -d' ' -f1)
        if [ "$sha" = - ] || [ "$have" = "$sha" ]; then
            say "$name: already downloaded (sha256 $have)"
            [ "$sha" = - ] && unpinned="$unpinned $name:$have"
            return 0
        fi
        say "$name: present but its sha256 is wrong; downloading again"
        rm -f "$dest"
    fi
    url="$endpoint/$repo/resolve/$rev/$name"
    tmpfile="$dest.part.$$"
    say "downloading $url"
    err=$(curl -fsSL --retry 2 --connect-timeout 30 -o "$tmpfile" "$url" 2>&1)
    rc=$?
    if [ $rc -ne 0 ]; then
        rm -f "$tmpfile"
        case $rc in
            22) die "$name: the server answered with an error (${err#curl: }): is revision $rev right?" ;;
            23) die "$name: cannot write $tmpfile (disk full, or a file size limit?)" ;;
            18) die "$name: the download was truncated (the connection closed early); run again" ;;
            6|7|28|35|56) die "$name: cannot reach $endpoint (${err#curl: })" ;;
            *) die "$name: curl failed (exit $rc): ${err#curl: }" ;;
        esac
    fi
    got=$(wc -c < "$tmpfile" | tr -d ' ')
    if [ "$size" != - ] && [ "$got" != "$size" ]; then
        rm -f "$tmpfile"
        die "$name: got $got bytes, the pinned size is $size (truncated or changed download)"
    fi
    have=$(sha256sum "$tmpfile" | cut -d' ' -f1)
    if [ "$sha" = - ]; then
        [ "$strict" = 1 ] && { rm -f "$tmpfile"; die "--strict: $name has no pinned sha256"; }
        unpinned="$unpinned $name:$have"
    elif [ "$have" != "$sha" ]; then
        rm -f "$tmpfile"
        die "$name: sha256 mismatch: got $have, pinned $sha"
    fi
    mv -f "$tmpfile" "$dest" || die "$name: cannot move the download into place"
    tmpfile=
    say "$name: $got bytes, sha256 $have"
}

unpinned=
printf '%s\n' "$files" > "$dl/.pins"
while read -r sha size name; do
    case $name in */*|.*|'') die "bad file name in the pin table: $name" ;; esac
    fetch "$sha" "$size" "$name"
done < "$dl/.pins"
rm -f "$dl/.pins"
if [ -n "$unpinned" ]; then
    say "WARNING: these files are not pinned; their sha256 was not checked (see PINS):"
    for x in $unpinned; do say "    ${x#*:}  ${x%%:*}"; done
fi

# ---- convert -----------------------------------------------------------------------------
"$PYTHON" "$here/convert_marian.py" --dtype "$dtype" "$dl" "$dir" || die "conversion failed"
[ "$clean" = 1 ] && rm -rf "$dl" && say "removed $dl"

# ---- sample translation --------------------------------------------------------------------
bin=${ATTN_TRANSLATE:-}
if [ -z "$bin" ]; then
    for b in "$root/attn-translate" "$root/build/attn-translate"; do
        [ -x "$b" ] && { bin=$b; break; }
    done
    [ -z "$bin" ] && bin=$(command -v attn-translate || true)
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    say "converted into $dir; attn-translate is not built (make), so no sample translation"
    exit 0
fi
out=$(printf '%s\n' "$SAMPLE" | "$bin" -q -m "$dir") || die "$bin could not translate with $dir"
echo "$SAMPLE"
echo "  -> $out"
echo "model ready: $bin -m $dir"

# ---- transformers' integration test sentences (the real hub only) --------------------------
check=${ATTN_OPUS_MT_CHECK:-}
if [ -z "$check" ]; then
    check=0
    [ "$endpoint" = https://huggingface.co ] && [ "$repo" = Helsinki-NLP/opus-mt-en-fr ] && check=1
fi
[ "$check" = 1 ] || exit 0
got=$(printf '%s\n%s\n' "$CHECK_EN1" "$CHECK_EN2" | "$bin" -q -m "$dir" --beam 2 --max-length 0+127) ||
    die "$bin failed on the check sentences"
want=$(printf '%s\n%s' "$CHECK_FR1" "$CHECK_FR2")
if [ "$got" = "$want" ]; then
    echo "check: transformers' integration-test translations reproduced exactly (beam 2, max_length 128)"
else
    {
        echo "################################################################################"
        echo "WARNING: attn-translate does not reproduce transformers' integration test for"
        echo "$repo (beam 2, max_length 128). Expected:"
        printf '    %s\n' "$CHECK_FR1" "$CHECK_FR2"
        echo "got:"
        printf '%s\n' "$got" | sed 's/^/    /'
        echo "The conversion or the engine differs from transformers: please report it."
        echo "################################################################################"
    } >&2
fi
exit 0

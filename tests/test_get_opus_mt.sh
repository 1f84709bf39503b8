#!/usr/bin/env bash
# test_get_opus_mt.sh — scripts/get-opus-mt.sh offline, against a local HTTP server on
# 127.0.0.1 that serves a fake opus-mt-en-fr with the hub's layout
# (/Helsinki-NLP/opus-mt-en-fr/resolve/REV/FILE). The fake model is the transformers-made
# fixture tests/fixtures/marian-hf (opus-mt-en-fr's config at small dimensions, the real
# source.spm / target.spm from ../shared), its weights re-saved as pytorch_model.bin by
# torch.save (the download path must read it without torch), pinned by its own table
# (ATTN_OPUS_MT_PINS). Checks: a full download + conversion (f32 equals converting the
# fixture's safetensors directly; int8 too), the sample translation, a rerun that reuses
# the verified files, and the failures: HTTP 404, a truncated download (the connection
# closes early), a short file served with a matching length (size check), a sha256
# mismatch, no disk space (a df that reports 1 MiB free; and writes failing with EFBIG under
# `ulimit -f`, which is how a full disk looks to curl), an unpinned file under --strict,
# and the loud warning when the integration-test sentences do not come out (forced with
# ATTN_OPUS_MT_CHECK=1; the real check needs the hub).
# Usage: tests/test_get_opus_mt.sh [BUILD]; ends with "test_get_opus_mt: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-${BUILD:-build}}
PYTHON=${PYTHON:-/usr/bin/python3}
NAME=test_get_opus_mt
FIX=tests/fixtures/marian-hf
TOK=../shared/models/opus-mt-en-fr-tokenizer
skip() { echo "$NAME: skipped: $*"; echo "$NAME: 0 passed, 0 failed, 1 skipped"; exit 0; }
[ -f "$TOK/source.spm" ] || skip "needs opus-mt-en-fr's source.spm / target.spm in ../shared/models/opus-mt-en-fr-tokenizer"
command -v curl >/dev/null || skip "curl is not installed (scripts/install-deps.sh)"
[ -x "$BUILD/attn-translate" ] || skip "$BUILD/attn-translate is not built"

pass=0 fail=0
ok() { if [ "$1" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $2"; fi; }
T=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX") || exit 1
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$T"' EXIT

REV=0123456789abcdef0123456789abcdef01234567
srv="$T/srv/Helsinki-NLP/opus-mt-en-fr/resolve"
mkdir -p "$srv/$REV" "$T/ref"
cp "$FIX"/hf/config.json "$FIX"/hf/generation_config.json "$FIX"/hf/vocab.json "$srv/$REV/"
cp "$TOK/source.spm" "$TOK/target.spm" "$srv/$REV/"
if "$PYTHON" -c 'import torch' 2>/dev/null; then
    weights=pytorch_model.bin
    "$PYTHON" - "$FIX/hf/model.safetensors" "$srv/$REV/pytorch_model.bin" <<'EOF' || exit 1
import sys, torch
sys.path.insert(0, "scripts")
import convert_marian
sd = {k: torch.from_numpy(a.copy()) for k, (a, _) in convert_marian.read_safetensors(sys.argv[1]).items()}
torch.save(sd, sys.argv[2])
EOF
else
    weights=model.safetensors   # no torch here: the .bin path is then not covered
    echo "note: torch is absent, so the fake model serves model.safetensors"
    cp "$FIX/hf/model.safetensors" "$srv/$REV/"
fi
# the same model, converted directly from the fixture's safetensors (the expected result)
cp "$FIX"/hf/* "$T/ref/" && cp "$TOK/source.spm" "$TOK/target.spm" "$T/ref/"
"$PYTHON" scripts/convert_marian.py -q "$T/ref" "$T/ref-f32" >/dev/null || exit 1
"$PYTHON" scripts/convert_marian.py -q --dtype int8 "$T/ref" "$T/ref-int8" >/dev/null || exit 1
# variants served under other revisions: "trunc" closes the connection halfway through
# the weights (Content-Length is the full size), "short" serves half of them with a
# matching Content-Length (only the pinned size can tell)
for r in trunc short; do cp -r "$srv/$REV" "$srv/$r"; done

pins() {   # pins REV [NAME SHA]...: a pin table for the fake model
    local rev=$1; shift
    echo "revision $rev"
    for f in config.json generation_config.json source.spm target.spm vocab.json $weights; do
        local sha size
        sha=$(sha256sum "$srv/$REV/$f" | cut -d' ' -f1) size=$(wc -c < "$srv/$REV/$f")
        local a=("$@") i
        for ((i = 0; i + 1 < ${#a[@]}; i += 2)); do
            if [ "${a[i]}" = "$f" ]; then sha=${a[i+1]}; [ "$sha" = - ] && size=-; fi
        done
        echo "$sha $size $f"
    done
}

cat > "$T/server.py" <<'EOF'
import http.server, os, sys
root = sys.argv[1]
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=root, **k)
    def log_message(self, fmt, *args):
        with open(os.path.join(root, "..", "requests.log"), "a") as f:
            f.write(self.path + "\n")
    def do_GET(self):
        p = self.translate_path(self.path)
        rev = self.path.split("/")[4] if self.path.count("/") >= 5 else ""
        big = os.path.basename(p) in ("pytorch_model.bin", "model.safetensors")
        if rev in ("trunc", "short") and big and os.path.isfile(p):
            data = open(p, "rb").read()
            half = data[:len(data) // 2]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data) if rev == "trunc" else len(half)))
            self.end_headers()
            self.wfile.write(half)
            self.wfile.flush()
            self.close_connection = True
            return
        return super().do_GET()
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[2], "w") as f:
    f.write(str(srv.server_address[1]))
srv.serve_forever()
EOF
"$PYTHON" "$T/server.py" "$T/srv" "$T/port" 2>"$T/server.err" &
server_pid=$!
for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || { cat "$T/server.err"; echo "FAIL the local server did not start"; echo "$NAME: 0 passed, 1 failed"; exit 1; }
export ATTN_HF_ENDPOINT="http://127.0.0.1:$(cat "$T/port")"
export ATTN_TRANSLATE="$BUILD/attn-translate" PYTHON

get() {    # get PINFILE ARGS... ; output in $T/out, status in $rc
    ATTN_OPUS_MT_PINS=$1 scripts/get-opus-mt.sh "${@:2}" > "$T/out" 2>&1
    rc=$?
}
has() { grep -qF -- "$1" "$T/out"; }
no_leftovers() { ! ls "$1".download/*.part.* >/dev/null 2>&1; }

# 1. the whole path, f32: downloads, checks, converts, translates
pins "$REV" > "$T/pins.good"
get "$T/pins.good" "$T/m"
ok $rc "download + convert exits 0 (got $rc: $(tail -3 "$T/out"))"
cmp -s "$T/m/model.bin" "$T/ref-f32/model.bin"
ok $? "model.bin from the download ($weights) equals the direct conversion of the safetensors"
has "The weather is nice today." && has "  -> "
ok $? "a sample translation is printed"
want=$(echo "The weather is nice today." | "$BUILD/attn-translate" -q -m "$T/ref-f32")
grep -qxF -- "  -> $want" "$T/out"
ok $? "the sample is the converted model's translation"
! has "WARNING: attn-translate does not reproduce"
ok $? "no integration check against a local server"
for f in config.json generation_config.json source.spm target.spm vocab.json $weights; do
    [ -f "$T/m.download/$f" ] || { ok 1 "$f kept in DIR.download"; continue; }
done
ok 0 "downloads kept in DIR.download"
grep -q "/resolve/$REV/config.json" "$T/srv/../requests.log"
ok $? "files are fetched at the pinned revision"

# 2. a rerun reuses the verified files; --dtype int8
n0=$(wc -l < "$T/requests.log")
get "$T/pins.good" --dtype int8 "$T/m"
ok $rc "rerun with --dtype int8 exits 0"
[ "$(wc -l < "$T/requests.log")" = "$n0" ] && has "already downloaded"
ok $? "the rerun downloads nothing"
cmp -s "$T/m/model.bin" "$T/ref-int8/model.bin"
ok $? "--dtype int8 gives the int8 conversion"
grep -q '"i8"' "$T/m/model.json"
ok $? "the int8 model has i8 tensors"

# 3. HTTP 404 (a revision the server does not have)
pins nosuchrevision > "$T/pins.404"
get "$T/pins.404" "$T/m404"
[ $rc = 1 ] && has "error" && has "404"
ok $? "404: exit 1 with the HTTP error (got $rc: $(tail -1 "$T/out"))"
[ ! -e "$T/m404" ] && [ ! -e "$T/m404.download" ]
ok $? "404: nothing left behind"

# 4. truncated download: the connection closes halfway through the weights
pins trunc > "$T/pins.trunc"
get "$T/pins.trunc" "$T/mtrunc"
[ $rc = 1 ] && has "truncated"
ok $? "truncated download: exit 1, says truncated (got $rc: $(tail -1 "$T/out"))"
no_leftovers "$T/mtrunc" && [ ! -e "$T/mtrunc.download/$weights" ] && [ ! -e "$T/mtrunc" ]
ok $? "truncated download: no partial file, no model"

# 5. a short file with a matching Content-Length: only the pinned size catches it
pins short > "$T/pins.short"
get "$T/pins.short" "$T/mshort"
[ $rc = 1 ] && has "pinned size"
ok $? "short file: exit 1 on the size check (got $rc: $(tail -1 "$T/out"))"
no_leftovers "$T/mshort" && [ ! -e "$T/mshort.download/$weights" ]
ok $? "short file: removed"

# 6. sha256 mismatch
pins "$REV" vocab.json 0000000000000000000000000000000000000000000000000000000000000000 > "$T/pins.sha"
get "$T/pins.sha" "$T/msha"
[ $rc = 1 ] && has "sha256 mismatch"
ok $? "sha256 mismatch: exit 1 (got $rc: $(tail -1 "$T/out"))"
[ ! -e "$T/msha.download/vocab.json" ] && no_leftovers "$T/msha" && [ ! -e "$T/msha" ]
ok $? "sha256 mismatch: the file is not kept"

# 7a. no disk space, seen before downloading: a df that reports 1 MiB free
mkdir -p "$T/fakebin"
printf '#!/bin/sh\necho "Filesystem 1024-blocks Used Available Capacity Mounted on"\necho "fake 100000 99000 1024 99%% /"\n' > "$T/fakebin/df"
chmod +x "$T/fakebin/df"
PATH="$T/fakebin:$PATH" get "$T/pins.good" "$T/mfull"
[ $rc = 1 ] && has "not enough disk space"
ok $? "no space (df): exit 1 before downloading (got $rc: $(tail -1 "$T/out"))"
[ ! -e "$T/mfull" ] && [ ! -e "$T/mfull.download" ]
ok $? "no space (df): nothing written"
# 7b. writes fail mid-download (EFBIG under ulimit -f, SIGXFSZ ignored: what a full disk
# looks like to curl)
( trap '' XFSZ; ulimit -f 200; get "$T/pins.good" "$T/mfull2"; echo "$rc" > "$T/rc" )
rc=$(cat "$T/rc")
[ "$rc" = 1 ] && has "cannot write"
ok $? "write failure (ulimit -f): exit 1, says it cannot write (got $rc: $(tail -1 "$T/out"))"
no_leftovers "$T/mfull2" && [ ! -e "$T/mfull2" ]
ok $? "write failure: no partial file, no model"

# 8. an unpinned file: warned about, refused by --strict
pins "$REV" generation_config.json - > "$T/pins.unpinned"
get "$T/pins.unpinned" "$T/mun"
[ $rc = 0 ] && has "not pinned"
ok $? "unpinned file: converted with a warning"
get "$T/pins.unpinned" --strict "$T/mun2"
[ $rc = 1 ] && has "--strict"
ok $? "unpinned file: --strict refuses"

# 9. the integration check's loud warning (the fake model cannot pass it)
ATTN_OPUS_MT_CHECK=1 get "$T/pins.good" "$T/m"
[ $rc = 0 ] && has "WARNING: attn-translate does not reproduce transformers' integration test" &&
    has "Je suis une petite grenouille."
ok $? "integration check: a wrong model gets the loud warning"

# 10. usage
scripts/get-opus-mt.sh --dtype f8 "$T/x" > "$T/out" 2>&1
[ $? = 2 ]
ok $? "a bad --dtype is a usage error"

echo "$NAME: $pass passed, $fail failed"
[ "$fail" = 0 ]

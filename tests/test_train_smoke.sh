#!/bin/sh
# Smoke test of the training pipeline: scripts/train.py --smoke (tiny corpus, tiny model,
# CPU, a few steps) -> export -> the model directory loads with scripts/atmodel.py,
# the training network matches scripts/reference.py, reference.py (and the C binary when
# built) translate a line; --resume continues; export.py --dtype f16 works; --init-from
# an export continues its step counter, data order and re-warmed lr; --decay cools a
# branch of the run down; a STOP file ends a run cleanly.
# Needs /usr/bin/python3 with torch, numpy, sentencepiece, and spm_train; the corpus is
# the first 2,000 tatoeba pairs of shared/data (beside the checkout, /work/shared, or
# $ATTN_SHARED_DATA), else /tmp/attn-corpus (build_corpus.py).
# Usage: tests/test_train_smoke.sh [PATH/TO/attn-translate]   (default ./attn-translate, if built)
# Prints "test_train_smoke: N passed, N failed".
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
cd "$ROOT"
BIN=${1:-./attn-translate}
start=$(date +%s)

if OMP_NUM_THREADS=2 $PY scripts/train.py --smoke --threads 2 --out "$T/run" >"$T/train.log" 2>&1; then ok
else bad "train.py --smoke"; tail -20 "$T/train.log"; fi
grep -q "eval step" "$T/train.log" && ok || bad "no dev evaluation in the log"
[ -f "$T/run/averaged.pt" ] && ok || bad "no averaged checkpoint"

E="$T/run/export"
for f in model.json model.bin vocab.json source.spm target.spm; do
    [ -s "$E/$f" ] && ok || bad "export lacks $f"
done

if $PY - "$E" <<'PYEOF'
import sys, json
sys.path.insert(0, "scripts")
import atmodel
h, t = atmodel.read_model(sys.argv[1])
cfg = h["config"]
exp = atmodel.expected_tensors(cfg)
assert set(t) == set(exp), "tensor set"
assert all(tuple(t[k].shape) == tuple(s) for k, s in exp.items()), "shapes"
v = atmodel.read_vocab(sys.argv[1]) if hasattr(atmodel, "read_vocab") else json.load(open(sys.argv[1] + "/vocab.json"))
assert len(v["tokens"]) == cfg["vocab_size"], "vocab size"
assert v["pad_id"] == cfg["pad_token_id"] == cfg["decoder_start_token_id"]
assert h["generation"]["bad_words_ids"] == [cfg["pad_token_id"]]
assert h["generation"]["num_beams"] == 4 and h["generation"]["max_length"] == 256
PYEOF
then ok; else bad "atmodel.read_model of the export"; fi

# the training network computes exactly what the reference computes from the export
if $PY - "$T/run/averaged.pt" "$E" <<'PYEOF'
import sys, torch
sys.path.insert(0, "scripts")
torch.set_num_threads(1)
import train as T, reference as R
ck = torch.load(sys.argv[1], map_location="cpu")
m = T.Marian(ck["config"], dropout=0.0); m.load_state_dict(ck["model"]); m.eval()
r = R.load(sys.argv[2], dtype=torch.float64)
src = R.encode(r, "The cat sat on the mat, didn't it?")
dec = [r.config["decoder_start_token_id"], 5, 17, 42, 8]
ref = torch.as_tensor(R.forward_decoder(r, R.forward_encoder(r, src), dec))
with torch.no_grad():
    mine = m(torch.tensor([src]), torch.tensor([dec]))[0].double()
d = (mine - ref.reshape(mine.shape)).abs().max().item()
assert d < 1e-4, d
PYEOF
then ok; else bad "train.py network vs reference.py logits"; fi

out=$(echo "The cat is on the table." | $PY scripts/reference.py -m "$E" --beam 2 2>"$T/ref.err")
if [ $? -eq 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]; then ok
else bad "reference.py translate"; cat "$T/ref.err"; fi

if [ -x "$BIN" ]; then
    if echo "The cat is on the table." | "$BIN" -m "$E" -q -t 1 >/dev/null 2>"$T/bin.err"; then ok
    else bad "attn-translate on the export"; cat "$T/bin.err"; fi
fi

if $PY scripts/export.py "$T/run/last.pt" "$T/f16" --dtype f16 >/dev/null 2>"$T/f16.err" &&
   $PY -c "import sys; sys.path.insert(0,'scripts'); import atmodel; h,_=atmodel.read_model('$T/f16'); assert all(e['dtype']=='f16' for e in h['tensors'].values())"; then ok
else bad "export.py --dtype f16"; cat "$T/f16.err"; fi

if OMP_NUM_THREADS=2 $PY scripts/train.py --smoke --threads 2 --resume --out "$T/run" >"$T/resume.log" 2>&1 &&
   grep -q "resumed from .* at step 30" "$T/resume.log"; then ok
else bad "train.py --resume"; tail -5 "$T/resume.log"; fi

# a new machine: start from the exported weights, the step counter, the place in the data
# and a re-warmed lr (smoke: peak 3e-3, warmup 10, 30 steps; at step 30 the schedule gives
# 3e-3 * sqrt(10/30) and the re-warm (30-20)/20 of it: 8.66e-04)
if OMP_NUM_THREADS=2 $PY scripts/train.py --smoke --threads 2 --out "$T/init" --data "$T/run/data" \
       --init-from "$E" --init-step 20 --init-epoch 1 --init-batch 3 --rewarm 20 >"$T/init.log" 2>&1 &&
   grep -q "initialised from .* (step counter 20, batch 3 of epoch 1, new optimizer, lr re-warmed over 20 steps)" "$T/init.log" &&
   grep -q "step 30 epoch [0-9]* .* lr 8.66e-04 " "$T/init.log"; then ok
else bad "train.py --init-from --init-step --init-epoch --init-batch --rewarm"; tail -5 "$T/init.log"; fi

# a cool-down branch from the step-10 checkpoint: 10 steps, the lr falling linearly to
# zero, then it stops; at step 20 the schedule gives 3e-3 * sqrt(10/20) and the last
# step of the cool-down 1/10 of it: 2.12e-04
mkdir -p "$T/cool" && cp "$T/run/ckpt-10.pt" "$T/cool/last.pt"
if OMP_NUM_THREADS=2 $PY scripts/train.py --smoke --threads 2 --out "$T/cool" --data "$T/run/data" \
       --resume --decay 10 >"$T/cool.log" 2>&1 &&
   grep -q "cool-down: lr falls linearly to zero over steps 10-20" "$T/cool.log" &&
   grep -q "step 20 epoch [0-9]* .* lr 2.12e-04 " "$T/cool.log" &&
   grep -q "stopped (cool-down done) at step 20 " "$T/cool.log"; then ok
else bad "train.py --decay"; tail -5 "$T/cool.log"; fi

# `touch OUT/STOP`: the run stops after its next step, saves it, and removes the file
mkdir -p "$T/stop" && cp "$T/run/ckpt-10.pt" "$T/stop/last.pt" && touch "$T/stop/STOP"
if OMP_NUM_THREADS=2 $PY scripts/train.py --smoke --threads 2 --out "$T/stop" --data "$T/run/data" \
       --resume >"$T/stop.log" 2>&1 &&
   grep -q "stopped (STOP file) at step 11 " "$T/stop.log" && [ ! -e "$T/stop/STOP" ] &&
   [ -f "$T/stop/ckpt-11.pt" ]; then ok
else bad "train.py: a STOP file"; tail -5 "$T/stop.log"; fi

# the jemalloc purge: nothing to call under glibc; under jemalloc (when installed) the
# purge succeeds
if $PY -c "import sys; sys.path.insert(0, 'scripts'); import train; sys.exit(train.jemalloc_purger() is not None)"; then ok
else bad "jemalloc_purger without jemalloc"; fi
JE=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
if [ -e "$JE" ]; then
    if LD_PRELOAD=$JE $PY -c "import sys; sys.path.insert(0, 'scripts'); import train; p = train.jemalloc_purger(); sys.exit(p is None or p() != 0)"; then ok
    else bad "jemalloc_purger under jemalloc"; fi
fi

echo "test_train_smoke: $pass passed, $fail failed ($(( $(date +%s) - start )) s)"
[ "$fail" -eq 0 ]

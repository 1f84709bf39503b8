#!/usr/bin/python3
"""A stand-in for CTranslate2's ct2-translator, for tests/test_bench.py: it translates
with attn-translate, so bench.py's side by side can be exercised without CTranslate2.

It takes the ct2-translator options bench.py passes (--model, --compute_type,
--beam_size, --batch_size, --max_decoding_length, --inter_threads, --intra_threads,
--length_penalty, --log_throughput), reads space-separated source pieces (with the
trailing </s>), turns them back into text, translates that with attn-translate
(--show-attn json, for its pieces) and writes each output's pieces as ct2-translator
does: space-separated, eos left out. The attn-translate model is the one named in the
converted model's attn-source.json (bench.py's conversion cache); the binary is
$FAKE_CT2_ATTN (default ./attn-translate). With --log_throughput it prints pieces per
second on stderr, as CTranslate2 does; CT2_VERBOSE=1 adds a "Selected compute type" log
line in CTranslate2's format. --task score and --n_best are not implemented (exit 2).
"""
import argparse
import json
import os
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--compute_type", default="default")
ap.add_argument("--beam_size", type=int, default=2)
ap.add_argument("--batch_size", type=int, default=32)
ap.add_argument("--max_decoding_length", type=int, default=256)
ap.add_argument("--inter_threads", type=int, default=1)
ap.add_argument("--intra_threads", type=int, default=0)
ap.add_argument("--length_penalty", type=float, default=1.0)
ap.add_argument("--log_throughput", action="store_true")
ap.add_argument("--task", default="translate")
ap.add_argument("--n_best", type=int, default=1)
a = ap.parse_args()
if a.task != "translate" or a.n_best != 1:
    print("fake ct2-translator: only --task translate, --n_best 1", file=sys.stderr)
    sys.exit(2)
with open(os.path.join(a.model, "attn-source.json"), encoding="utf-8") as f:
    model = json.load(f)["dir"]
dtype = {"float32": "f32", "default": "f32", "int8": "int8"}[a.compute_type]
if os.environ.get("CT2_VERBOSE") == "1":
    print(f"[2026-01-01 00:00:00.000] [ctranslate2] [thread 1] [info]  - Selected compute "
          f"type: {'float32' if dtype == 'f32' else 'int8'}", file=sys.stderr)

texts = []
for line in sys.stdin.read().split("\n")[:-1]:
    toks = [t for t in line.split(" ") if t and t != "</s>"]
    texts.append("".join(toks).replace("\u2581", " ").strip())
t0 = time.perf_counter()
p = subprocess.run([os.environ.get("FAKE_CT2_ATTN", "./attn-translate"), "-m", model, "-q",
                    "--beam", str(a.beam_size), "--batch-size", str(a.batch_size),
                    "--threads", str(a.inter_threads), "--dtype", dtype,
                    "--length-penalty", repr(a.length_penalty),
                    "--max-length", f"0+{a.max_decoding_length}",
                    "--show-attn", "--attn-format", "json"],
                   input="".join(t + "\n" for t in texts), capture_output=True, text=True)
secs = time.perf_counter() - t0
if p.returncode != 0:
    sys.stderr.write(p.stderr)
    sys.exit(1)
n = 0
for line in p.stdout.split("\n")[:-1]:
    toks = json.loads(line)["tgt_tokens"]
    if toks and toks[-1] == "</s>":
        toks = toks[:-1]
    n += len(toks)
    print(" ".join(toks))
if a.log_throughput:
    print(n / secs, file=sys.stderr)

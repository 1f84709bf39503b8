#!/usr/bin/python3
"""make bench: attn-translate's speed and memory, with the PyTorch reference run on the
same inputs and, with --peer, CTranslate2 side by side. Not a test: it prints numbers
(markdown tables) and, with --json, the raw measurements.

    bench.py [--lines N] [--quick | --full] [--model DIR] [--shipped DIR] [--json OUT]
             [--no-reference] [--vocab opus|tiny] [--dtypes f32,f16,int8]
             [--peer [LABEL=]DIR ...] [--peer-only] [--peer-budget MIN] [--reps 3]
             [--probe-lines 128] [--latency-lines 8] [--latency-rounds 2] [--startup-reps 5]
             [--peer-length 23] [--peer-cap 64] [--peer-allow-ties] [--at2ct2 PATH]

    make bench PEER_CT2=DIR [PEER_CT2_OPENBLAS=DIR2] [PEERS="LABEL=DIR ..."] BENCH_ARGS=...

Models
  - the bench model (scripts/make_bench_model.py, cached in $ATTN_BENCH_DIR, default
    /tmp/attn-bench): Transformer-base sized (6+6 layers, d_model 512, 8 heads, FFN 2048,
    swish, the OPUS-MT vocabulary of 59,514), random weights, eos disabled. With
    `--max-length 1+0` every hypothesis is exactly as long as its source (eos included),
    so every engine, beam and batch does the same, known work per sentence.
    --model DIR benches another directory the same way (the fixed length is checked).
  - the shipped model (models/en-fr, or --shipped DIR), when present, as it translates
    (default --max-length): a smaller grid; its target token counts come from one
    untimed `--show-attn --attn-format json` run per beam size.

Inputs: the first --lines (default 200) lines of ../shared/data/dev/newstest2013.en.
(--peer-only skips everything down to "Side by side".)

Configurations: attn-translate with --dtype f32, f16 and int8 (each: --beam 1 and 4,
--batch-size 1, 8, 32, 64 and --threads 1, 2); the PyTorch reference (scripts/reference.py, in a child process,
float32, incremental decoding with its KV caches, torch.set_num_threads(1) and (2),
one sentence at a time: batch 1), timing only the translation loop (not the load).

Line budget. The full grid on 200 lines takes about 50 minutes on this 2-core machine
when it is quiet (C ~17 min, the reference ~35: it decodes 4-27 tokens/s) and twice
that when it is shared. So by default each configuration translates a prefix of the N
lines just long enough for its batch and thread count: batch 1: 8 lines; batched:
batch x threads lines, at least 16, at most 64 (so batch 64 x 2 threads is one batch,
on one worker); the reference: 8 / 4 lines greedy and 4 / 2 lines beam 4 with 1 / 2
threads. The `lines` column says how many. The default run takes 2-5 minutes. --full
runs every configuration on all N lines; --quick is a smoke check (40 lines, fewer
configurations, about a minute).

Columns
  wall s       the whole process, model load included (attn-translate)
  transl. s    translation only. attn-translate: its own clock, which starts after the
               model is loaded (the tokens/s of --progress, an integer: tokens / rate),
               refined by wall - (a 1-token run's wall) when that is within the rounding;
               the reference: its timed loop
  sent/s, tok/s  lines and target tokens (eos included) per translation second
  RSS MB       peak resident set of the process (/usr/bin/time's %M; the memory-mapped
               weights count once touched); for the reference, the worker process's
               peak, model load included (it holds the file, numpy and torch copies)
  GFLOP/s, % peak  model FLOPs (below) per translation second, and that as a share of
               this machine's OpenBLAS sgemm peak with as many threads (tests/bench_sgemm.c);
               for int8 the same count of (integer) operations against the same float
               peak, so it can pass 100%

FLOPs per sentence (2 x multiply-adds of the matrix products; layer norms, softmax,
activations, embeddings and the search are not counted). S source tokens (eos
included), T decoder steps, K beam, rows_t = 1 at step 1 and K after, d model width,
F FFN width, V vocabulary, Le/Ld layers:
  encoder    Le * [ S * (4 d^2 + 2 d F)  +  2 S^2 d ]        (QKVO, FFN, scores + context)
  cross K/V  Ld * 2 S d^2                                   (once per sentence)
  decoder    sum_t rows_t * Ld * [ 4 d^2 + 2 d t            (self-attn QKVO, prefix of t)
                                  + 2 d^2 + 2 d S           (cross-attn QO, over S)
                                  + 2 d F ]                 (FFN)
  output     sum_t rows_t * d V
For the bench model T = S. For transformer-base with V = 59,514 that is about 150 MFLOP
per target token greedy, 40% of it in the output projection.

Side by side (--peer [LABEL=]DIR, repeatable or comma-separated; DIR a CTranslate2 install
prefix with bin/ct2-translator and lib/, or a build directory of
../shared/peers/ctranslate2/build.sh, whose prefix is DIR/install; each peer is a column)
  Models: the bench model (or --model DIR) and the shipped model, each converted once by
  at2ct2.py (same weights, float32; cached in $ATTN_BENCH_DIR/ct2/LABEL-KEY, KEY from
  model.bin's and model.json's size and mtime and the converter's text). int8 is CT2's
  own `--compute_type int8` of that model, against attn-translate's `--dtype int8`; f16
  is not compared (CTranslate2 has no float16 on a CPU).
  Inputs: the first 500 lines of newstest2013.en (non-empty). attn-translate reads the
  text; CT2 reads the same pieces: SentencePiece with the model's source.spm, pieces
  outside the vocabulary as <unk>, and an explicit trailing "</s>" (at2ct2.py's
  docstring), checked on every line against attn-translate's own segmentation (its json
  dump). CT2's output pieces are detokenized as attn-translate detokenizes ids.
  Lengths: CT2 takes one limit per run, not per sentence, so both engines get the same
  one: attn-translate `--max-length 0+L`, CT2 `--max_decoding_length L` (both count the
  eos step). The bench model (eos never wins): L = --peer-length, 23 (issue 15's
  measurement; newstest2013's first 500 lines average 22.5 source pieces), so every
  output is exactly 23 tokens, which is checked for CT2. The shipped model translates as
  it translates, outputs ending at eos (batches shrink as they do), with L = --peer-cap,
  64 (what the default 2+10 gives on average there: 63.3; an early checkpoint's outputs
  often run to the limit).
  Tokens: target tokens, eos included (decoder steps), the same count for both engines,
  each from its own outputs (attn-translate: N x L on the bench model, its json dump on
  the shipped one; CT2: its pieces, + 1 for an eos when the output stopped short of L).
  Time: each engine's own translation clock, which starts after the model load:
  attn-translate's --progress (tokens/s, refined as in "Columns" below), CT2's
  --log_throughput (pieces/s, eos not counted; its seconds = pieces / that).
  Grid: f32 and int8, beam 1 and 4, batch 32 (throughput) and batch 1 (latency), on
  both models. Phases, in this order:
  1. start-up: process start to a 1-token translation of "Hello", each engine with its
     default threads, which it also loads with (attn-translate: every core up to 8; CT2:
     inter_threads 1, intra_threads min(4, cores)), --startup-reps runs (5) alternating,
     median; peak RSS (/usr/bin/time %M).
  2. threading probe, batch 32: every configuration once on the first --probe-lines
     lines (128: four batches, two per worker at 2 threads; with 64, one batch per
     worker, the longer batch alone set the time, and attn-translate's probe once chose
     1 thread where 2 were 1.6x faster on the main run):
     attn-translate --threads 1 and 2; CT2 inter_threads x intra_threads 1x2 and 2x1,
     with OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = intra_threads. Each engine keeps its
     fastest per (model, dtype, beam); the report lists them all.
  3. batch-1 latency: --latency-lines lines (8) one at a time into a long-lived process,
     timed from writing a line to reading its translation, after one untimed line (the
     load): attn-translate `--unbuffered --threads 1` and `--threads 2` (one batch in
     flight: the second thread takes half the columns of each large product), CT2 through
     scripts/ct2_stream.cc (one translate_batch call per line; built once against the
     peer; ct2-translator itself writes a line's result only after reading the next
     line), intra_threads 1 and 2. --latency-rounds rounds (2) alternating between the
     configurations; per line the best of the rounds; mean, p50 and p90 (linear
     interpolation) over lines; each engine's configuration with the lowest mean wins.
  4. main phase, batch 32: the probe winners on N lines, --reps rounds (3) alternating
     A B A B A B; tok/s = the median of the rounds. N = --lines, or else as many lines
     (a multiple of 64, at most 500) as fit in what is left of --peer-budget minutes
     (12) by the probe's timings: the side by side then takes about that long, the
     one-time conversions and builds aside.
  Checks (outputs compared line by line with each peer's, after the first round):
  - f32 on the bench model: identical, or the bench stops (exit 1), issue 15's rule;
    with --peer-allow-ties, differences that are all float ties (below) are reported.
  - f32 on the shipped model, greedy and beam 4: identical, or every differing line a
    float tie, else it stops. A float tie: by CT2's own log-probs (ct2-translator --task
    score), the two choices differ by less than 1e-3 nats: for greedy the two pieces at
    the first difference, for beam the two outputs' scores. Both engines run the same
    beam search (the best 2K candidates, eos only from the top K, K finished hypotheses
    end a sentence, log-prob / (pieces + eos)^lp: CT2's finished hypotheses keep eos
    until they are ranked), so a beam difference that is no tie is a bug, with one
    exception, a "length cap" difference: at the last step allowed (the --peer-cap),
    CT2 finishes every live hypothesis and ranks them with those that end in eos there,
    while attn-translate, like transformers with early_stopping=True, stops as soon as
    K hypotheses have ended in eos and adds the cut ones only when fewer have. The two
    differ exactly when eos completes the K finished at that last step and CT2 then
    prefers a cut hypothesis: CT2's output is peer-cap pieces long without eos, and
    better by its own log-probs.
  - int8: the count of identical lines only (the two quantize differently), and for
    each engine how many of its int8 outputs equal its own f32 ones.
  - every engine's rounds give the same outputs ("runs differ" otherwise).
  Report: attn-translate / CT2 ratios per (model, dtype, beam, batch) and peer: tok/s,
  peak RSS, batch-1 latency mean and p90, start-up time and RSS; then each engine's
  absolute numbers, winning and losing configurations, and the checks.
"""
import argparse
import collections
import glob
import hashlib
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
BIN = os.path.join(ROOT, "attn-translate")
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
DEV = os.path.join(SHARED, "data", "dev", "newstest2013.en")
BENCH_DIR = os.environ.get("ATTN_BENCH_DIR", "/tmp/attn-bench")
TINY = os.path.join(ROOT, "tests", "fixtures", "tiny", "A")
TIME = "/usr/bin/time"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# machine
# ---------------------------------------------------------------------------------------

def machine():
    info = {"cpu": "?", "cores": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "Model name":
                info["cpu"] = v.strip()
            elif k.strip() == "CPU(s)":
                info["cores"] = int(v.strip())
    except OSError:
        pass
    try:
        ldd = subprocess.run(["ldd", BIN], capture_output=True, text=True).stdout
        m = re.search(r"libopenblas\S*\s+=>\s+(\S+)", ldd)
        if m:
            info["openblas_so"] = os.path.realpath(m.group(1))
    except OSError:
        pass
    return info


def loadavg():
    try:
        return [float(x) for x in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return None


def sgemm(threads):
    """{'config': openblas_get_config(), 'peak': {threads: GFLOP/s}, 'results': [...]}"""
    exe = os.path.join(BENCH_DIR, "bench_sgemm")
    src = os.path.join(ROOT, "tests", "bench_sgemm.c")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        subprocess.run(["cc", "-O2", src, "-lopenblas", "-o", exe], check=True)
    out = subprocess.run([exe, *map(str, threads)], check=True, capture_output=True,
                         text=True).stdout
    res = {"config": "", "peak": {}, "results": []}
    for line in out.splitlines():
        f = line.split()
        if f[0] == "CONFIG":
            res["config"] = line[7:]
        elif f[0] == "PEAK":
            res["peak"][int(f[1])] = float(f[2])
        elif f[0] == "RESULT":
            res["results"].append(dict(kind=f[1], M=int(f[2]), N=int(f[3]), K=int(f[4]),
                                       threads=int(f[5]), gflops=float(f[6]),
                                       weight_gb_s=float(f[7])))
    return res


# ---------------------------------------------------------------------------------------
# FLOPs (the formula of the module docstring)
# ---------------------------------------------------------------------------------------

def flops(cfg, S, T, K):
    d, V = cfg["d_model"], cfg["vocab_size"]
    Fe, Fd = cfg["encoder_ffn_dim"], cfg["decoder_ffn_dim"]
    Le, Ld = cfg["encoder_layers"], cfg["decoder_layers"]
    macs = Le * (S * (4 * d * d + 2 * d * Fe) + 2 * S * S * d)
    macs += Ld * 2 * S * d * d
    for t in range(1, T + 1):
        rows = 1 if t == 1 else K
        macs += rows * (Ld * (4 * d * d + 2 * d * t + 2 * d * d + 2 * d * S + 2 * d * Fd) + d * V)
    return 2 * macs


# ---------------------------------------------------------------------------------------
# attn-translate runs
# ---------------------------------------------------------------------------------------

PROGRESS = re.compile(r"(\d+) lines, (\d+) tokens/s")


def run_timed(cmd, inp, env=None):
    """One process, stdin from the file `inp`. Returns dict(wall, rss_mb, cpu_s, out, err,
    rc): out and err as text, rss_mb its peak resident set."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as tf, open(inp, "rb") as fin:
        # Linux carries a process's peak RSS over fork + exec, so a child of this (large)
        # Python process would report at least our own peak: measure through
        # /usr/bin/time, a small process, when it is there
        timed = os.access(TIME, os.X_OK)
        full = [TIME, "-f", "%M %U %S", "-o", tf.name, *cmd] if timed else cmd
        t0 = time.perf_counter()
        p = subprocess.Popen(full, stdin=fin, stdout=out, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        o, e = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
        rss_kb, cpu = ru.ru_maxrss, ru.ru_utime + ru.ru_stime
        if timed:
            f = (tf.read().strip().splitlines() or ["0 0 0"])[-1].split()
            if len(f) == 3:
                rss_kb, cpu = int(f[0]), float(f[1]) + float(f[2])
    return dict(wall=wall, rss_mb=rss_kb / 1024, cpu_s=cpu, out=o, err=e, rc=rc)


def run_c(model, inp, args, progress=True):
    """One attn-translate process. Returns dict(wall, rss_mb, cpu_s, rate, out, rc):
    rate = the tokens/s of its final --progress line (its clock starts after the load)."""
    cmd = [BIN, "-m", model, *args, "--progress" if progress else "-q"]
    r = run_timed(cmd, inp)
    if r["rc"] not in (0, 3):
        raise RuntimeError(f"{' '.join(cmd)} < {inp}: exit {r['rc']}: {r['err'][-800:]}")
    rate = None
    for m in PROGRESS.finditer(r["err"]):
        rate = float(m.group(2))
    r["rate"] = rate
    return r


def translate_seconds(ids_out, rate, wall, load_s):
    """Translation time of one run. --progress prints tokens/s rounded to an integer, so
    ids_out / rate is only known to within the rounding: take wall - load_s (load_s: the
    median whole-process time of a 1-token run of this model) when it falls inside that
    interval, else the nearest end of it."""
    if not rate:
        return max(wall - load_s, 1e-9)
    lo, hi = ids_out / (rate + 0.5), ids_out / max(rate - 0.5, 0.25)
    return min(max(wall - load_s, lo), hi)


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def attn_counts(model, inp, beam, extra):
    """(source tokens, target tokens) per line from one --show-attn json run (untimed).
    Target tokens include eos when the hypothesis ended with it."""
    r = run_c(model, inp, ["--beam", str(beam), "--batch-size", "64", "--threads", "2",
                           "--show-attn", "--attn-format", "json", *extra], progress=False)
    src, tgt = [], []
    for line in r["out"].splitlines():
        o = json.loads(line)
        src.append(len(o["src_tokens"]))
        tgt.append(len(o["tgt_tokens"]))
    return src, tgt


# ---------------------------------------------------------------------------------------
# the PyTorch reference, in a child process (its RSS is its own)
# ---------------------------------------------------------------------------------------

def ref_worker(spec_path):
    import resource
    spec = json.load(open(spec_path, encoding="utf-8"))
    import torch
    import reference
    t0 = time.perf_counter()
    m = reference.load(spec["model"], dtype=torch.float32)
    load_s = time.perf_counter() - t0
    rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # (that includes the parent's peak at fork time: bench.py keeps itself small)
    lines = spec["lines"]
    ids = [reference.encode(m, l) for l in lines]
    results = []
    for c in spec["configs"]:
        torch.set_num_threads(c["threads"])
        n = c["lines"]
        steps = []
        t0 = time.perf_counter()
        with torch.inference_mode():
            for x in ids[:n]:
                h = reference.beam_search(m, x, beam=c["beam"], n_best=1,
                                          factor=c["factor"], extra=c["extra"])
                steps.append(h[0].length)
        secs = time.perf_counter() - t0
        results.append(dict(c, seconds=secs, S=[len(x) for x in ids[:n]], T=steps,
                            rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
        print(json.dumps({"progress": c}), file=sys.stderr, flush=True)
    json.dump(dict(load_s=load_s, rss_after_load_mb=rss_load, results=results), sys.stdout)


def run_reference(model, lines, configs):
    spec = dict(model=model, lines=lines, configs=configs)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        p = subprocess.run([PYTHON, os.path.abspath(__file__), "--_ref-worker", f.name],
                           capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if p.returncode != 0:
        raise RuntimeError(f"reference worker failed: {p.stderr[-1500:]}")
    return json.loads(p.stdout)


# ---------------------------------------------------------------------------------------
# plans
# ---------------------------------------------------------------------------------------

def c_plan(mode, n):
    """[(beam, batch, threads, lines)]"""
    if mode == "quick":
        grid = [(1, 1, 1), (1, 32, 1), (1, 32, 2), (4, 1, 1), (4, 32, 1)]
    else:
        grid = [(k, b, t) for k in (1, 4) for b in (1, 8, 32, 64) for t in (1, 2)]
    plan = []
    for k, b, t in grid:
        if mode == "full":
            lines = n
        elif mode == "quick":
            lines = 4 if b == 1 else (32 if k == 1 else 16)
        elif b == 1:
            lines = 8
        else:
            lines = max(16, min(b * t, 64))
        plan.append((k, b, t, min(lines, n)))
    return plan


def ref_plan(mode, n):
    """[(beam, threads, lines)]"""
    if mode == "full":
        return [(k, t, n) for k in (1, 4) for t in (1, 2)]
    if mode == "quick":
        return [(1, 1, min(2, n)), (4, 1, min(1, n))]
    return [(1, 1, min(8, n)), (1, 2, min(4, n)), (4, 1, min(4, n)), (4, 2, min(2, n))]


def shipped_plans(mode, n):
    if mode == "full":
        return c_plan("full", n), ref_plan("full", n)
    c = [(k, b, t, min(lines, n)) for k, b, t, lines in c_plan("default", n)
         if b in (1, 32)]
    return c, [(k, 1, lines) for k, t, lines in ref_plan("default", n) if t == 1]


# ---------------------------------------------------------------------------------------
# benchmarking one model
# ---------------------------------------------------------------------------------------

def bench_model(label, model, lines, fixed, mode, peak, reference_on, startup_s, dtypes):
    """Runs the C grid for each weight dtype (and the reference, float32) on one model.
    fixed: --max-length 1+0 and T = S (the bench model). startup_s: {dtype: seconds of a
    load + one-token run}. Returns a list of result rows."""
    import atmodel
    cfg = atmodel.read_header(model)["config"]
    n = len(lines)
    if fixed:
        cplan, rplan = c_plan(mode, n), ref_plan(mode, n)
        extra = ["--max-length", "1+0"]
    else:
        cplan, rplan = shipped_plans(mode, n)
        extra = []
    nmax = max([p[3] for p in cplan] + [p[2] for p in rplan if reference_on] + [1])
    inputs = {}

    def input_for(k):
        if k not in inputs:
            inputs[k] = os.path.join(BENCH_DIR, f"input-{k}.en")
            write_lines(inputs[k], lines[:k])
        return inputs[k]

    # token counts. Fixed: S from SentencePiece (source.spm), T = S, checked against the
    # engine's own dump on the first lines. Otherwise: one untimed json run per beam.
    counts = {}
    if fixed:
        import sentencepiece
        sp = sentencepiece.SentencePieceProcessor()
        sp.Load(os.path.join(model, "source.spm"))
        S = [len(sp.EncodeAsPieces(l)) + 1 for l in lines[:nmax]]
        ncheck = min(3, nmax)
        src, tgt = attn_counts(model, input_for(ncheck), 1, extra)
        if src != S[:ncheck] or tgt != src:
            raise RuntimeError(f"{label}: first {ncheck} lines: engine source/target tokens "
                               f"{src}/{tgt}, SentencePiece {S[:ncheck]}: not a fixed-length "
                               "bench model (eos must never win) or a tokenizer mismatch")
        for beam in {p[0] for p in cplan}:
            counts[beam] = (S, S)
    else:
        for beam in sorted({p[0] for p in cplan}):
            src, tgt = attn_counts(model, input_for(nmax), beam, extra)
            if len(src) != nmax:
                raise RuntimeError(f"{label}: {len(src)} json lines for {nmax} input lines")
            counts[beam] = (src, tgt)

    rows = []
    for dt, (k, b, t, nl) in ((dt, p) for dt in dtypes for p in cplan):
        S, T = counts[k][0][:nl], counts[k][1][:nl]
        toks = sum(T)
        r = run_c(model, input_for(nl), ["--beam", str(k), "--batch-size", str(b),
                                         "--threads", str(t), "--dtype", dt, *extra])
        # the engine counts generated ids without eos; the bench model never makes eos
        ids_out = sum(T) if fixed else sum(x - 1 if x else 0 for x in T)  # approx for eos
        transl = translate_seconds(ids_out, r["rate"], r["wall"], startup_s[dt])
        fl = sum(flops(cfg, s, tt, k) for s, tt in zip(S, T))
        row = dict(model=label, engine="attn-translate", dtype=dt, beam=k, batch=b, threads=t,
                   lines=nl, src_tokens=sum(S), tgt_tokens=toks, wall_s=r["wall"],
                   translate_s=transl, progress_rate=r["rate"], load_s=startup_s[dt],
                   cpu_s=r["cpu_s"], rss_mb=r["rss_mb"], sent_s=nl / transl,
                   tok_s=toks / transl, gflop=fl / 1e9, gflops=fl / transl / 1e9,
                   exact_flops=fixed)
        row["peak_frac"] = row["gflops"] / peak[t] if peak.get(t) else None
        rows.append(row)
        log(f"  {label}: C {dt} beam {k} batch {b} threads {t}, {nl} lines: "
            f"{row['tok_s']:.1f} tok/s, wall {r['wall']:.1f}s")

    if reference_on and rplan:
        fac, ext = (1.0, 0) if fixed else (2.0, 10)
        confs = [dict(beam=k, threads=t, lines=nl, factor=fac, extra=ext) for k, t, nl in rplan]
        log(f"  {label}: PyTorch reference, {len(confs)} configurations ...")
        try:
            ref = run_reference(model, lines[:nmax], confs)
        except RuntimeError as e:  # e.g. no torch or sentencepiece: the C numbers still stand
            log(f"bench: {label}: PyTorch reference skipped: {e}")
            ref = {"results": []}
        for c in ref["results"]:
            S, T = c["S"], c["T"]
            if fixed and S != T:
                raise RuntimeError(f"{label}: the reference made {T} tokens for {S}")
            fl = sum(flops(cfg, s, tt, c["beam"]) for s, tt in zip(S, T))
            row = dict(model=label, engine="pytorch-reference", dtype="f32", beam=c["beam"], batch=1,
                       threads=c["threads"], lines=c["lines"], src_tokens=sum(S),
                       tgt_tokens=sum(T), wall_s=None, translate_s=c["seconds"],
                       cpu_s=None, rss_mb=c["rss_mb"], sent_s=c["lines"] / c["seconds"],
                       tok_s=sum(T) / c["seconds"], gflop=fl / 1e9,
                       gflops=fl / c["seconds"] / 1e9, exact_flops=fixed,
                       ref_load_s=ref["load_s"], ref_rss_after_load_mb=ref["rss_after_load_mb"])
            row["peak_frac"] = row["gflops"] / peak[c["threads"]] if peak.get(c["threads"]) else None
            rows.append(row)
            log(f"  {label}: PyTorch beam {c['beam']} threads {c['threads']}, {c['lines']} "
                f"lines: {row['tok_s']:.2f} tok/s")
    return rows


INT8_COPY = """
import os, shutil, sys
sys.path.insert(0, %r)
import atmodel
src, dst = sys.argv[1], sys.argv[2]
h, t = atmodel.read_model(src)
# the source's layout: a packed (v2) model's int8 copy is packed too
layout = "packed" if h["version"] >= atmodel.VERSION_PACKED else "rows"
atmodel.write_model(dst, h["config"], h.get("generation"), t, dtype="int8",
                    vocab=atmodel.read_vocab(src), layout=layout)
shutil.copy(os.path.join(src, "source.spm"), dst)
""" % HERE


def fresh_copy(copy, src):
    """True if the derived model dir `copy` exists and is newer than `src`'s model.bin
    (a copy made from an older bench model, or with another layout, is remade)."""
    try:
        return (os.path.getmtime(os.path.join(copy, "model.json"))
                >= os.path.getmtime(os.path.join(src, "model.bin")))
    except OSError:
        return False


def startup(label, model, args=(), reps=3):
    """`echo Hello | attn-translate -m MODEL`: wall time with the load, median of reps."""
    inp = os.path.join(BENCH_DIR, "first-translation.en")
    write_lines(inp, ["Hello"])
    runs = [run_c(model, inp, list(args), progress=False) for _ in range(reps)]
    return dict(model=label, dir=model, args=" ".join(args), runs_s=[r["wall"] for r in runs],
                median_s=statistics.median(r["wall"] for r in runs),
                rss_mb=max(r["rss_mb"] for r in runs), output=runs[0]["out"].strip())


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------

def fmt(x, spec):
    return "–" if x is None else format(x, spec)


def table(rows):
    out = ["| model | engine | dtype | beam | batch | threads | lines | tgt tokens | wall s | "
           "transl. s | sent/s | tok/s | RSS MB | GFLOP/s | % sgemm peak |",
           "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        eng = "C" if r["engine"] == "attn-translate" else "PyTorch ref"
        approx = "" if r["exact_flops"] else "≈"
        out.append(f"| {r['model']} | {eng} | {r['dtype']} | {r['beam']} | {r['batch']} | {r['threads']} | "
                   f"{r['lines']} | {r['tgt_tokens']} | {fmt(r['wall_s'], '.1f')} | "
                   f"{r['translate_s']:.1f} | {r['sent_s']:.2f} | {r['tok_s']:.1f} | "
                   f"{r['rss_mb']:.0f} | {approx}{r['gflops']:.1f} | "
                   f"{approx}{fmt(r['peak_frac'] and 100 * r['peak_frac'], '.1f')}% |")
    return "\n".join(out)


def ratios(rows):
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        for r in (x for x in mine if x["engine"] == "pytorch-reference"):
            for dt in dict.fromkeys(x["dtype"] for x in mine if x["engine"] == "attn-translate"):
                cs = [x for x in mine if x["engine"] == "attn-translate" and x["dtype"] == dt
                      and x["beam"] == r["beam"]]
                c1 = next((x for x in cs if x["batch"] == 1 and x["threads"] == r["threads"]), None)
                best = max(cs, key=lambda x: x["tok_s"], default=None)
                if c1:
                    s = (f"- {model}, beam {r['beam']}, {r['threads']} thread(s): C {dt} batch 1 / "
                         f"PyTorch = **{c1['tok_s'] / r['tok_s']:.1f}x** (tok/s {c1['tok_s']:.1f} vs "
                         f"{r['tok_s']:.2f})")
                    if best:
                        s += (f"; best C {dt} (batch {best['batch']}, {best['threads']} threads) / "
                              f"PyTorch = {best['tok_s'] / r['tok_s']:.1f}x")
                    out.append(s)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# CTranslate2 side by side (--peer; the module docstring's "Side by side")
# ---------------------------------------------------------------------------------------

AT2CT2 = os.path.join(SHARED, "peers", "ctranslate2", "at2ct2.py")
CT2_STREAM_SRC = os.path.join(HERE, "ct2_stream.cc")
SBS_POOL = 500            # newstest2013 lines the side by side draws from (issue 15: 500)
SBS_STEP = 64             # the main phase translates a multiple of this many lines
PROBE_LINES = 128         # threading probe: four batches of 32, two per worker at 2 threads
CT2_DTYPE = {"f32": "float32", "int8": "int8"}
ATTN_BATCH_THREADS = (1, 2)             # attn-translate --threads at batch 32
CT2_BATCH_THREADS = ((1, 2), (2, 1))    # CT2 (inter_threads, intra_threads) at batch 32
ATTN_LATENCY_THREADS = (1, 2)           # one line in flight: 2 splits each product
CT2_LATENCY_THREADS = ((1, 1), (1, 2))
TIE_NATS = 1e-3           # an f32 difference is a float tie when CT2's own log-probs of
                          # the two choices differ by less than this
ENGINE = "attn-translate"


class SbsError(RuntimeError):
    """A side-by-side check failed: the bench stops (exit 1)."""


class Peer:
    """One CTranslate2 build: an install prefix holding bin/ct2-translator and lib/
    (a build.sh directory, whose prefix is DIR/install, is accepted too)."""

    def __init__(self, label, path):
        p = os.path.abspath(path)
        if (not os.path.exists(os.path.join(p, "bin", "ct2-translator"))
                and os.path.exists(os.path.join(p, "install", "bin", "ct2-translator"))):
            p = os.path.join(p, "install")
        self.label, self.prefix = label, p
        self.bin = os.path.join(p, "bin", "ct2-translator")
        self.lib = next((os.path.join(p, d) for d in ("lib", "lib64")
                         if glob.glob(os.path.join(p, d, "libctranslate2.so*"))),
                        os.path.join(p, "lib"))
        self.info = []            # CT2_VERBOSE=1 lines of one run (ISA, GEMM backends)
        self.stream = None        # the ct2_stream executable (batch-1 latency)
        self.stream_error = None  # why there is none

    def env(self, intra):
        e = dict(os.environ)
        e["LD_LIBRARY_PATH"] = self.lib + (":" + e["LD_LIBRARY_PATH"]
                                           if e.get("LD_LIBRARY_PATH") else "")
        # CT2 sets its OpenMP threads from intra_threads; OpenBLAS (the openblas build)
        # gets as many, so that inter_threads x OpenBLAS threads never exceeds the cores.
        # intra 0: CT2's default (OMP_NUM_THREADS, else min(4, cores)), so neither is set
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            if intra:
                e[k] = str(intra)
            else:
                e.pop(k, None)
        e["CT2_VERBOSE"] = "1"    # logs the ISA, GEMM backends and compute type at load
        return e


def parse_peers(specs):
    """--peer values: [LABEL=]DIR, repeatable, or comma-separated lists of them."""
    peers = []
    for spec in specs or ():
        for item in filter(None, (x.strip() for x in spec.split(","))):
            label, sep, path = item.partition("=")
            if not sep or "/" in label or not label:
                label, path = ("ct2" if not peers else f"ct2-{len(peers) + 1}"), item
            if any(p.label == label for p in peers):
                raise ValueError(f"--peer: label {label!r} given twice")
            peers.append(Peer(label, path))
    return peers


class SbsModel:
    """A model as both engines see it. fixed: every output is exactly `steps` tokens
    (the bench model, where eos never wins); else outputs end at eos or at `steps`."""

    def __init__(self, label, path, steps, fixed):
        import atmodel
        self.label, self.dir, self.fixed = label, os.path.abspath(path), fixed
        h = atmodel.read_header(self.dir)
        cfg, gen = h["config"], atmodel.generation_with_defaults(h)
        # attn-translate's own limit (docs/DECODING.md) for --max-length 0+steps, which
        # CT2 is given as its --max_decoding_length (it counts eos the same way)
        self.steps = max(1, min(steps, gen["max_length"] - 1, cfg["max_position_embeddings"] - 1))
        self.length_penalty = float(gen.get("length_penalty", 1.0))
        with open(os.path.join(self.dir, "vocab.json"), encoding="utf-8") as f:
            self.tokens = json.load(f)["tokens"]
        self.token_set = set(self.tokens)
        self.eos, self.pad, self.unk = (self.tokens[cfg[k]] for k in
                                        ("eos_token_id", "pad_token_id", "unk_token_id"))
        self.ct2 = None           # the converted model directory
        self.src = None           # source pieces per pool line, "</s>" included

    def stamp(self):
        """model.bin's and model.json's size and mtime: what the conversion is keyed by."""
        st, sj = (os.stat(os.path.join(self.dir, f)) for f in ("model.bin", "model.json"))
        return dict(bin_size=st.st_size, bin_mtime_ns=st.st_mtime_ns, json_size=sj.st_size,
                    json_mtime_ns=sj.st_mtime_ns)

    def check_unchanged(self):
        if self.stamp() != self.stamped:
            raise SbsError(f"{self.dir} changed during the run: its CT2 conversion is stale")

    def pieces(self, lines):
        """SentencePiece pieces of each line with the model's source.spm, as
        attn-translate segments it (checked by check_pieces), pieces outside the
        vocabulary as <unk>, and the explicit trailing </s> CT2 needs (at2ct2.py)."""
        import sentencepiece
        sp = sentencepiece.SentencePieceProcessor()
        sp.Load(os.path.join(self.dir, "source.spm"))
        return [[p if p in self.token_set else self.unk for p in sp.EncodeAsPieces(l)]
                + [self.eos] for l in lines]

    def detok(self, toks):
        """CT2's output pieces as attn-translate detokenizes ids (lib/tokenizer.c,
        at_vocab_decode): eos and pad skipped, unk as " \u2047 ", U+2581 as a space, the
        first piece's leading U+2581 dropped."""
        out, first = [], True
        for t in toks:
            if t in (self.eos, self.pad):
                continue
            if t == self.unk:
                p = " \u2047 "
            else:
                p = t[1:] if first and t.startswith("\u2581") else t
            if p:
                first = False
            out.append(p.replace("\u2581", " "))
        return "".join(out)

    def steps_of(self, toks):
        """Decoder steps of an output of len(toks) pieces (eos not among them): eos
        counted when it ended the output, i.e. when it stopped short of the limit."""
        return min(len(toks) + 1, self.steps)


def out_lines(text):
    """Output lines (split on "\\n" only: str.splitlines also splits on U+2028 & co.)."""
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n") if text else []


def split_pieces(line):
    """CT2's output pieces: joined by U+0020 only (str.split() would also cut at the
    other Unicode spaces a piece may hold)."""
    return [x for x in line.split(" ") if x]


def pct(xs, q):
    """The q-quantile of xs, linear interpolation between order statistics."""
    s = sorted(xs)
    if not s:
        return None
    i = (len(s) - 1) * q
    lo = int(i)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (i - lo)


def safe_name(label):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label)


def sha1_file(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def ct2_convert(m, at2ct2):
    """m's CT2 model (at2ct2.py, float32), cached in BENCH_DIR/ct2/LABEL-KEY, KEY from
    model.bin's and model.json's size and mtime and the converter's text. Returns (dir,
    seconds spent converting: 0 when cached)."""
    writer = os.path.join(os.path.dirname(at2ct2), "write_ct2_model.py")
    src = dict(dir=m.dir, **m.stamp(), converter=sha1_file(at2ct2),
               writer=sha1_file(writer) if os.path.exists(writer) else None)
    key = hashlib.sha1(json.dumps(src, sort_keys=True).encode()).hexdigest()[:12]
    root = os.path.join(BENCH_DIR, "ct2")
    name = safe_name(m.label)
    out = os.path.join(root, f"{name}-{key}")
    if os.path.exists(os.path.join(out, "model.bin")):
        return out, 0.0
    os.makedirs(root, exist_ok=True)
    for old in os.listdir(root):          # this model's stale conversions
        if re.fullmatch(re.escape(name) + r"-[0-9a-f]{12}(\.tmp)?", old):
            shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    tmp = out + ".tmp"
    log(f"bench: converting {m.dir} for CTranslate2 (at2ct2.py, once) ...")
    t0 = time.perf_counter()
    subprocess.run([PYTHON, at2ct2, m.dir, tmp, "--at-scripts", HERE], check=True)
    with open(os.path.join(tmp, "attn-source.json"), "w", encoding="utf-8") as f:
        json.dump(src, f, indent=1)
    os.rename(tmp, out)
    return out, time.perf_counter() - t0


def ct2_stream_build(peer):
    """Builds scripts/ct2_stream.cc against the peer (cached in BENCH_DIR/ct2). Returns
    the seconds spent (0 when cached); sets peer.stream or peer.stream_error."""
    libs = sorted(glob.glob(os.path.join(peer.lib, "libctranslate2.so*")))
    inc = os.path.join(peer.prefix, "include")
    if not libs or not os.path.isdir(os.path.join(inc, "ctranslate2")):
        peer.stream_error = f"no libctranslate2.so or include/ctranslate2 under {peer.prefix}"
        return 0.0
    h = hashlib.sha1()
    with open(CT2_STREAM_SRC, "rb") as f:
        h.update(f.read())
    h.update(peer.prefix.encode())
    h.update(str(os.stat(libs[0]).st_mtime_ns).encode())
    exe = os.path.join(BENCH_DIR, "ct2", f"ct2_stream-{h.hexdigest()[:12]}")
    if os.access(exe, os.X_OK):
        peer.stream = exe
        return 0.0
    os.makedirs(os.path.dirname(exe), exist_ok=True)
    log(f"bench: building ct2_stream for {peer.label} (once) ...")
    t0 = time.perf_counter()
    p = subprocess.run([os.environ.get("CXX", "c++"), "-O2", "-std=c++17", "-I", inc,
                        CT2_STREAM_SRC, "-o", exe + ".tmp", "-L", peer.lib,
                        f"-Wl,-rpath,{peer.lib}", "-lctranslate2"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        peer.stream_error = "ct2_stream did not build: " + p.stderr.strip()[-400:]
    else:
        os.rename(exe + ".tmp", exe)
        peer.stream = exe
    return time.perf_counter() - t0


THROUGHPUT = re.compile(r"^\s*([-+0-9.eE]+|inf|nan)\s*$")
CT2_LOG = re.compile(r"^\[[^]]*\] \[ctranslate2\] \[thread \d+\] \[(\w+)\] (.*)$")


def ct2_run(peer, m, inp, dtype, beam, batch, inter, intra, max_len=None):
    """One ct2-translator process on the pieces file `inp`. Adds to run_timed's dict:
    hyps (output pieces per line), throughput (--log_throughput: output
    pieces, eos not among them, per second of its translation clock), log (CT2_VERBOSE
    lines) and compute (the compute type it selected)."""
    cmd = [peer.bin, "--model", m.ct2, "--compute_type", CT2_DTYPE[dtype],
           "--beam_size", str(beam), "--batch_size", str(batch),
           "--max_decoding_length", str(max_len or m.steps),
           "--length_penalty", repr(m.length_penalty),
           "--inter_threads", str(inter), "--intra_threads", str(intra), "--log_throughput"]
    r = run_timed(cmd, inp, peer.env(intra))
    if r["rc"] != 0:
        raise RuntimeError(f"{peer.label}: {' '.join(cmd)} < {inp}: exit {r['rc']}: "
                           f"{r['err'][-800:]}")
    r["throughput"], r["log"], r["compute"] = None, [], None
    for line in r["err"].splitlines():
        mm = THROUGHPUT.match(line)
        if mm:
            r["throughput"] = float(mm.group(1))
        lm = CT2_LOG.match(line)
        if lm:
            r["log"].append(lm.group(2))
            if lm.group(2).startswith(" - Selected compute type:"):
                r["compute"] = lm.group(2).split(":", 1)[1].strip()
            if lm.group(1) in ("warning", "error"):
                log(f"bench: {peer.label}: {lm.group(2)}")
    if r["compute"] and r["compute"] != CT2_DTYPE[dtype]:
        # int8 may run as int8_float32 (the same thing on a CPU); anything else is not
        # what was asked for
        if not (dtype == "int8" and r["compute"].startswith("int8")):
            raise SbsError(f"{peer.label}: asked for {CT2_DTYPE[dtype]}, CTranslate2 "
                           f"selected {r['compute']}")
    r["hyps"] = [split_pieces(l) for l in out_lines(r["out"])]
    return r


def ct2_seconds(r):
    n = sum(len(h) for h in r["hyps"])
    if not r["throughput"] or r["throughput"] != r["throughput"] or r["throughput"] <= 0:
        raise RuntimeError(f"ct2-translator printed no usable throughput: {r['err'][-300:]}")
    return n / r["throughput"] if n else 0.0


def attn_args(m, dtype, beam, batch, threads):
    # --keep-unknowns: CTranslate2 runs without replace_unknowns, so both write an unknown
    # token the same way and their texts compare (the copy costs nothing measurable)
    return ["--keep-unknowns", "--beam", str(beam), "--batch-size", str(batch), "--threads", str(threads),
            "--dtype", dtype, "--max-length", f"0+{m.steps}"]


def attn_json(m, inp, dtype, beam, batch, threads, max_len=None):
    """attn-translate's own pieces (json --show-attn; untimed): per line (source tokens,
    target pieces without eos, translation)."""
    args = attn_args(m, dtype, beam, batch, threads)
    if max_len:
        args[-1] = f"0+{max_len}"
    r = run_c(m.dir, inp, [*args, "--show-attn", "--attn-format", "json"], progress=False)
    recs = []
    for line in out_lines(r["out"]):
        o = json.loads(line)
        t = o["tgt_tokens"]
        recs.append((o["src_tokens"], t[:-1] if t and t[-1] == m.eos else t, o["translation"]))
    return recs


def check_pieces(m, inp, n):
    """CT2's inputs are the pieces attn-translate itself segments: compared on every
    line (one cheap run: int8, one decoder step)."""
    recs = attn_json(m, inp, "int8", 1, 32, 2, max_len=1)
    if len(recs) != n:
        raise SbsError(f"{m.label}: {len(recs)} json records for {n} lines")
    bad = [i for i, (src, _, _) in enumerate(recs) if src != m.src[i]]
    if bad:
        i = bad[0]
        raise SbsError(f"{m.label}: {len(bad)} of {n} lines segment differently, e.g. line "
                       f"{i + 1}: attn-translate {recs[i][0]}, SentencePiece {m.src[i]}")


def stream_latency(cmd, env, lines, warm):
    """Per-line latency of a process that answers one line at a time: the time from
    writing a line to its stdin to reading its translation from its stdout. `warm` goes
    first, untimed (it also waits out the model load). Returns (seconds, outputs)."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=err, env=env)

        def ask(line):
            p.stdin.write(line.encode("utf-8") + b"\n")
            p.stdin.flush()
            r = p.stdout.readline()
            if not r.endswith(b"\n"):
                err.seek(0)
                raise RuntimeError(f"{' '.join(cmd)}: no answer: "
                                   f"{err.read().decode('utf-8', 'replace')[-500:]}")
            return r[:-1].decode("utf-8", "replace")

        secs, outs = [], []
        try:
            ask(warm)
            for line in lines:
                t0 = time.perf_counter()
                outs.append(ask(line))
                secs.append(time.perf_counter() - t0)
        finally:
            p.stdin.close()
            p.wait()
    return secs, outs


def ct2_score(peer, m, srcs, tgts):
    """CT2's log-probability of each target piece (--task score, float32), eos last."""
    with tempfile.NamedTemporaryFile("w", suffix=".src", dir=BENCH_DIR, delete=False) as fs, \
            tempfile.NamedTemporaryFile("w", suffix=".tgt", dir=BENCH_DIR, delete=False) as ft:
        fs.write("".join(" ".join(s) + "\n" for s in srcs))
        ft.write("".join(" ".join(t) + "\n" for t in tgts))
    try:
        cmd = [peer.bin, "--model", m.ct2, "--task", "score", "--src", fs.name, "--tgt",
               ft.name, "--with_tokens_score", "--compute_type", "float32",
               "--intra_threads", "2"]
        r = run_timed(cmd, "/dev/null", peer.env(2))
    finally:
        os.unlink(fs.name)
        os.unlink(ft.name)
    if r["rc"] != 0:
        raise RuntimeError(f"{peer.label}: scoring failed: {r['err'][-500:]}")
    return [[float(x) for x in l.rsplit("|||", 1)[-1].split()] for l in out_lines(r["out"])]


def first_diff(a, b):
    p = 0
    while p < len(a) and p < len(b) and a[p] == b[p]:
        p += 1
    return p


def explain_f32(peer, m, beam, idx, mine, theirs):
    """Why f32 outputs differ on lines idx (mine: attn-translate's pieces, theirs: CT2's),
    by CT2's own log-probs (ct2_score). Per line a dict with kind 'tie' when the gap is
    under TIE_NATS, 'length cap' for the beam difference at the last step the module
    docstring describes (CT2's output cut at m.steps pieces and better by the gap),
    else 'unexplained'. The gap: greedy, the two choices' log-probs at the first
    differing piece; beam, the two outputs' scores as both engines rank finished
    hypotheses (log-prob / (pieces + eos)^lp)."""
    srcs = [m.src[i] for i in idx]
    sa = ct2_score(peer, m, srcs, [mine[i] for i in idx])
    sc = ct2_score(peer, m, srcs, [theirs[i] for i in idx])
    lp = m.length_penalty
    out = []
    for j, i in enumerate(idx):
        a, c = mine[i], theirs[i]
        p = first_diff(a, c)
        if beam == 1:
            gap = sc[j][p] - sa[j][p]
        else:
            na, nc = m.steps_of(a), m.steps_of(c)
            gap = sum(sc[j][:nc]) / nc ** lp - sum(sa[j][:na]) / na ** lp
        kind = ("tie" if abs(gap) < TIE_NATS else
                "length cap" if beam > 1 and not m.fixed and len(c) >= m.steps and gap > 0
                else "unexplained")
        out.append(dict(line=i + 1, kind=kind,
                        first_diff=p, ct2_gap_nats=gap, attn=m.detok(a), ct2=m.detok(c)))
    return out


def sbs_inputs(m, pool, n):
    """(text file, pieces file) of the first n pool lines."""
    base = os.path.join(BENCH_DIR, f"sbs-{safe_name(m.label)}-{n}")
    write_lines(base + ".en", pool[:n])
    write_lines(base + ".pieces", [" ".join(x) for x in m.src[:n]])
    return base + ".en", base + ".pieces"


def side_by_side(models, peers, pool, a):
    """attn-translate and each CTranslate2 peer on the same models, inputs and output
    lengths (the module docstring's "Side by side"). Returns the results dict."""
    dtypes = [d for d in a.dtypes.split(",") if d in CT2_DTYPE]
    beams = (1, 4)
    R = a.reps
    res = dict(peers=[], models=[], one_time_s=0.0, startup=[], probe=[], latency=[],
               throughput=[], checks=[], notes=[], dtypes=dtypes, reps=R,
               probe_lines=min(a.probe_lines, len(pool)))
    for p in peers:
        if not os.access(p.bin, os.X_OK):
            raise SbsError(f"peer {p.label}: no executable {p.bin}")
    for m in models:
        m.stamped = m.stamp()
        m.ct2, secs = ct2_convert(m, a.at2ct2)
        res["one_time_s"] += secs
        m.src = m.pieces(pool)
    for p in peers:
        res["one_time_s"] += ct2_stream_build(p)
    t0 = time.perf_counter()              # the --peer-budget clock starts here

    def elapsed():
        return time.perf_counter() - t0

    for m in models:
        txt, _ = sbs_inputs(m, pool, len(pool))
        check_pieces(m, txt, len(pool))
        res["checks"].append(f"{m.label}: CT2's input pieces = attn-translate's own "
                             f"segmentation on all {len(pool)} pool lines")

    # ---- start-up: process start to a 1-token translation of one short line, each
    # engine with its default threads (both load on them)
    load = {}
    for m in models:
        hello_txt = os.path.join(BENCH_DIR, "first-translation.en")
        write_lines(hello_txt, ["Hello"])
        hello_pc = os.path.join(BENCH_DIR, f"first-translation-{safe_name(m.label)}.pieces")
        write_lines(hello_pc, [" ".join(m.pieces(["Hello"])[0])])
        for dt in dtypes:
            runs = {ENGINE: [], **{p.label: [] for p in peers}}
            for _ in range(a.startup_reps):
                runs[ENGINE].append(run_c(m.dir, hello_txt, ["--beam", "1", "--max-length", "0+1",
                                                            "--dtype", dt], progress=False))
                for p in peers:
                    r = ct2_run(p, m, hello_pc, dt, 1, 1, 1, 0, max_len=1)
                    if not p.info:
                        p.info = [l.strip() for l in r["log"]]
                    runs[p.label].append(r)
            for eng, rs in runs.items():
                med = statistics.median(r["wall"] for r in rs)
                load[(m.label, dt, eng)] = med
                res["startup"].append(dict(model=m.label, dtype=dt, engine=eng, median_s=med,
                                           runs_s=[r["wall"] for r in rs],
                                           rss_mb=max(r["rss_mb"] for r in rs)))
    log(f"bench: side by side: start-up done ({elapsed():.0f}s)")

    def run_engine(eng, cfg, m, files, n, dt, k):
        """One batch-32 run; returns a uniform dict (rate: output pieces per second,
        eos not counted, by the engine's own clock)."""
        if eng == ENGINE:
            r = run_c(m.dir, files[0], attn_args(m, dt, k, 32, cfg))
            if r["rc"] != 0:
                raise SbsError(f"{m.label}: attn-translate left lines untranslated (exit 3)")
            r["texts"] = out_lines(r["out"])
            if len(r["texts"]) != n:
                raise SbsError(f"{m.label}: attn-translate wrote {len(r['texts'])} lines for {n}")
        else:
            p = next(x for x in peers if x.label == eng)
            r = ct2_run(p, m, files[1], dt, k, 32, *cfg)
            if len(r["hyps"]) != n:
                raise SbsError(f"{eng}: {len(r['hyps'])} output lines for {n}")
            r["secs"] = ct2_seconds(r)
            r["rate"] = sum(len(h) for h in r["hyps"]) / r["secs"] if r["secs"] else 0.0
            r["texts"] = [m.detok(h) for h in r["hyps"]]
        for key in ("out", "err"):
            r.pop(key, None)
        return r

    def cfg_str(eng, cfg):
        return f"--threads {cfg}" if eng == ENGINE else f"{cfg[0]}x{cfg[1]}"

    # ---- threading probe: every configuration once on the first PROBE_LINES lines
    cells = [(m, dt, k) for m in models for dt in dtypes for k in beams]
    win = {}
    P = min(a.probe_lines, len(pool))
    for m, dt, k in cells:
        files = sbs_inputs(m, pool, P)
        cands = [[(ENGINE, t) for t in ATTN_BATCH_THREADS]] + \
                [[(p.label, c) for c in CT2_BATCH_THREADS] for p in peers]
        order = [c for group in itertools.zip_longest(*cands) for c in group if c]
        best = {}
        for eng, cfg in order:
            r = run_engine(eng, cfg, m, files, P, dt, k)
            res["probe"].append(dict(model=m.label, dtype=dt, beam=k, engine=eng,
                                     config=cfg_str(eng, cfg), lines=P, rate=r["rate"],
                                     wall_s=r["wall"], rss_mb=r["rss_mb"]))
            if eng not in best or (r["rate"] or 0) > best[eng][1]["rate"]:
                best[eng] = (cfg, r)
        for eng, (cfg, r) in best.items():
            win[(m.label, dt, k, eng)] = (cfg, r["wall"])
    log(f"bench: side by side: threading probe done ({elapsed():.0f}s)")

    # ---- batch-1 latency: one line at a time through a long-lived process
    NL = min(a.latency_lines, len(pool) - 1)
    for m in models:
        lines_txt, warm_txt = pool[:NL], pool[NL]
        lines_pc = [" ".join(x) for x in m.src[:NL]]
        warm_pc = " ".join(m.src[NL])
        for dt in dtypes:
            for k in beams:
                cands = [[(ENGINE, None, t) for t in ATTN_LATENCY_THREADS]] + \
                        [[(p.label, p, c) for c in CT2_LATENCY_THREADS] for p in peers if p.stream]
                order = [c for group in itertools.zip_longest(*cands) for c in group if c]
                got = {}
                for _ in range(a.latency_rounds):
                    for eng, p, cfg in order:
                        if eng == ENGINE:
                            cmd = [BIN, "-m", m.dir, "--unbuffered", "-q",
                                   *attn_args(m, dt, k, 1, cfg)]
                            secs, outs = stream_latency(cmd, None, lines_txt, warm_txt)
                        else:
                            cmd = [p.stream, m.ct2, CT2_DTYPE[dt], str(cfg[1]), str(k),
                                   str(m.steps)]
                            secs, outs = stream_latency(cmd, p.env(cfg[1]), lines_pc, warm_pc)
                            outs = [m.detok(split_pieces(o)) for o in outs]
                        g = got.setdefault((eng, cfg_str(eng, cfg) if eng == ENGINE
                                            else f"intra {cfg[1]}"), dict(rounds=[], outs=outs))
                        g["rounds"].append(secs)
                        if g["outs"] != outs:
                            g["unstable"] = True
                rows = []
                for (eng, cfg), g in got.items():
                    per_line = [min(x) for x in zip(*g["rounds"])]   # best of the rounds
                    rows.append(dict(model=m.label, dtype=dt, beam=k, engine=eng, config=cfg,
                                     lines=NL, rounds=len(g["rounds"]), per_line_s=per_line,
                                     mean_s=statistics.mean(per_line),
                                     p50_s=pct(per_line, 0.5), p90_s=pct(per_line, 0.9),
                                     unstable=g.get("unstable", False), outs=g["outs"]))
                winners = {}
                for r in rows:
                    if r["engine"] not in winners or r["mean_s"] < winners[r["engine"]]["mean_s"]:
                        winners[r["engine"]] = r
                mine = winners[ENGINE]["outs"]
                for r in rows:
                    r["winner"] = winners[r["engine"]] is r
                    r["identical"] = sum(x == y for x, y in zip(mine, r["outs"]))
                for r in rows:
                    del r["outs"]
                res["latency"] += rows
    for m in models:
        m.check_unchanged()
    log(f"bench: side by side: latency done ({elapsed():.0f}s)")

    # ---- the main phase: winners only, alternating A B A B ..., a.reps times
    per_line, fixed_s = 0.0, 0.0
    for m, dt, k in cells:
        for eng in [ENGINE] + [p.label for p in peers]:
            cfg, wall = win[(m.label, dt, k, eng)]
            L0 = load[(m.label, dt, eng)]
            runs = R + (1 if eng == ENGINE and not m.fixed else 0)   # + its json run
            per_line += runs * max(wall - L0, 0.0) / P
            fixed_s += runs * L0
    left = a.peer_budget * 60 - elapsed()
    if a.lines:
        N = min(a.lines, len(pool))
    else:
        N = int((left - fixed_s) / per_line) // SBS_STEP * SBS_STEP if per_line else len(pool)
        N = max(min(N, len(pool)), min(SBS_STEP, len(pool)))
    res["notes"].append(f"main phase: {N} lines, projected {(fixed_s + N * per_line) / 60:.1f} "
                        f"min with {left / 60:.1f} min of the {a.peer_budget:g}-minute budget left")
    log(f"bench: side by side: main phase on {N} lines, about "
        f"{(fixed_s + N * per_line) / 60:.1f} min")
    f32_texts = {}
    for m, dt, k in cells:
        files = sbs_inputs(m, pool, N)
        engines = [ENGINE] + [p.label for p in peers]
        reps = {e: [] for e in engines}
        mine, explained = None, {}
        for rep in range(R):
            for e in engines:
                reps[e].append(run_engine(e, win[(m.label, dt, k, e)][0], m, files, N, dt, k))
            if rep:
                continue
            # after the first round: attn-translate's pieces (known for a fixed-length
            # model: N x steps, the texts checked below; else one untimed json run), and
            # the f32 check, which may stop the bench before the other rounds
            if not m.fixed:
                recs = attn_json(m, files[0], dt, k, 32, win[(m.label, dt, k, ENGINE)][0])
                mine = [r[1] for r in recs]
                if [r[2] for r in recs] != reps[ENGINE][0]["texts"]:
                    res["notes"].append(f"{m.label} {dt} beam {k}: the json run's translations "
                                        "differ from the timed run's; token counts from the "
                                        "json run")
            for p in peers:
                hyps = reps[p.label][0]["hyps"]
                if m.fixed and any(len(h) != m.steps for h in hyps):
                    bad = next(i for i, h in enumerate(hyps) if len(h) != m.steps)
                    raise SbsError(f"{p.label}: {m.label} line {bad + 1}: {len(hyps[bad])} "
                                   f"tokens, not {m.steps}: the fixed-length scheme fails")
                diff = [i for i, (x, y) in enumerate(zip(reps[ENGINE][0]["texts"],
                                                         reps[p.label][0]["texts"])) if x != y]
                if dt == "f32" and diff:
                    explained[p.label] = _f32_mismatch(p, m, k, diff, mine, hyps, files, N,
                                                       win, dt, a, res)
        row = dict(model=m.label, dtype=dt, beam=k, batch=32, lines=N, engines={})
        first = reps[ENGINE][0]
        if m.fixed:
            ids = steps = N * m.steps
        else:
            ids = sum(len(x) for x in mine)
            steps = sum(m.steps_of(x) for x in mine)
        secs = [translate_seconds(ids, r["rate"], r["wall"], load[(m.label, dt, ENGINE)])
                for r in reps[ENGINE]]
        row["engines"][ENGINE] = _engine_row(ENGINE, win[(m.label, dt, k, ENGINE)][0], cfg_str,
                                             reps[ENGINE], secs, steps, ids)
        if dt == "f32":
            f32_texts[(m.label, k, ENGINE)] = first["texts"]
        for p in peers:
            rs = reps[p.label]
            hyps = rs[0]["hyps"]
            e = _engine_row(p.label, win[(m.label, dt, k, p.label)][0], cfg_str, rs,
                            [r["secs"] for r in rs], sum(m.steps_of(h) for h in hyps),
                            sum(len(h) for h in hyps))
            e["compute"] = rs[0]["compute"]
            e["identical"] = sum(x == y for x, y in zip(first["texts"], rs[0]["texts"]))
            if mine is not None:
                e["identical_pieces"] = sum(x == y for x, y in zip(mine, hyps))
            if p.label in explained:
                e["explained"] = explained[p.label]
            if dt == "f32":
                f32_texts[(m.label, k, p.label)] = rs[0]["texts"]
            row["engines"][p.label] = e
        if dt != "f32":           # how often each engine's int8 says what its f32 says
            for eng, e in row["engines"].items():
                ref = f32_texts.get((m.label, k, eng))
                if ref:
                    e["same_as_f32"] = sum(x == y for x, y in
                                           zip(ref, reps[eng][0]["texts"]))
        m.check_unchanged()
        res["throughput"].append(row)
        log(f"bench: side by side: {m.label} {dt} beam {k}: " + ", ".join(
            f"{e} {v['tok_s']:.0f} tok/s" for e, v in row["engines"].items()) +
            f" ({elapsed():.0f}s)")
    res["elapsed_s"] = elapsed()
    res["models"] = [dict(label=m.label, dir=m.dir, ct2=m.ct2, steps=m.steps, fixed=m.fixed)
                     for m in models]
    res["peers"] = [dict(label=p.label, prefix=p.prefix, info=p.info, stream=p.stream,
                         stream_error=p.stream_error) for p in peers]
    return res


def _engine_row(eng, cfg, cfg_str, rs, secs, steps, ids):
    rates = [steps / s for s in secs]
    outs = [r["texts"] for r in rs]
    return dict(config=cfg_str(eng, cfg), tgt_tokens=steps, pieces=ids, reps_tok_s=rates,
                tok_s=statistics.median(rates), translate_s=statistics.median(secs),
                wall_s=[r["wall"] for r in rs], rss_mb=max(r["rss_mb"] for r in rs),
                stable=all(o == outs[0] for o in outs))


def _f32_mismatch(p, m, k, diff, mine, hyps, files, N, win, dt, a, res):
    """f32 outputs differ on lines `diff`: explain them (explain_f32), report, and stop
    when the rules of the module docstring say so."""
    if mine is None:              # the fixed-length model: attn-translate's pieces now
        recs = attn_json(m, files[0], dt, k, 32, win[(m.label, dt, k, ENGINE)][0])
        mine = [r[1] for r in recs]
    ex = explain_f32(p, m, k, diff, mine, hyps)
    kinds = collections.Counter(x["kind"] for x in ex)
    msg = (f"{m.label} f32 beam {k}: {len(diff)} of {N} lines differ between attn-translate "
           f"and {p.label} (" + ", ".join(f"{v} {kk}" for kk, v in sorted(kinds.items())) + ")")
    res["checks"].append(msg)
    for x in ex[:3]:
        res["checks"].append(f"  line {x['line']}: first difference at piece {x['first_diff']}, "
                             f"CT2 gap {x['ct2_gap_nats']:.2e} nats ({x['kind']}): "
                             f"attn {x['attn'][:80]!r} / {p.label} {x['ct2'][:80]!r}")
    log("bench: " + msg)
    if kinds["unexplained"] or (m.fixed and not a.peer_allow_ties):
        raise SbsError(msg + "; " + "; ".join(res["checks"][-min(3, len(ex)):]))
    return dict(kinds)


def _x(a, b):
    return "–" if not a or not b else f"{a / b:.2f}×"


def sbs_report(res):
    """The side-by-side results as markdown."""
    peers = [p["label"] for p in res["peers"]]
    R = res["reps"]
    out = [f"## Side by side with CTranslate2 ({res['elapsed_s'] / 60:.1f} min, plus "
           f"{res['one_time_s']:.0f} s of one-time conversion and builds)\n"]
    for p in res["peers"]:
        info = [l.strip(" -") for l in p["info"]
                if re.search(r"CPU|ISA|MKL|S(GEMM|8) backend", l)]
        out.append(f"- {p['label']}: `{p['prefix']}`" + (f" ({'; '.join(info)})" if info else "")
                   + ("" if p["stream"] else f"; no batch-1 latency: {p['stream_error']}"))
    for m in res["models"]:
        s = m["steps"]
        scheme = (f"every output exactly {s} tokens (eos never wins)" if m["fixed"] else
                  f"as it translates, outputs ending at eos or at {s} tokens (eos counted)")
        out.append(f"- {m['label']} (`{m['dir']}`): {scheme}: attn-translate `--max-length "
                   f"0+{s}`, CT2 `--max_decoding_length {s}`")
    out.append(f"- tok/s: target tokens (eos included) per second of translation by the "
               f"engine's own clock, which starts after the load (attn-translate "
               f"`--progress`, CT2 `--log_throughput`); the median of {R} run{'s' * (R > 1)} "
               f"alternating between the engines; each engine with the threads that won its "
               f"probe ({res['probe_lines']} lines, every configuration once). Batch 32.")
    out.append("- batch-1 latency: one line at a time into a long-lived process "
               "(attn-translate `--unbuffered`, CT2 through scripts/ct2_stream.cc), write to "
               "answer; per line the best of the rounds, then mean / p50 / p90 over lines")
    out.append("- start-up: process start to a 1-token translation of `Hello`, each engine "
               "with its default threads, median; RSS: peak resident set (/usr/bin/time %M)\n")

    out.append("### attn-translate ÷ CTranslate2\n")
    out.append("| quantity (better) | model | dtype | beam | batch | " + " | ".join(peers) + " |")
    out.append("|---|---|---|--:|--:|" + "--:|" * len(peers))
    for what, key, better in (("tok/s", "tok_s", "higher"), ("peak RSS", "rss_mb", "lower")):
        for r in res["throughput"]:
            e = r["engines"]
            out.append(f"| {what} ({better}) | {r['model']} | {r['dtype']} | {r['beam']} | 32 | "
                       + " | ".join(_x(e[ENGINE][key], e[p][key]) for p in peers) + " |")
    win = {(r["model"], r["dtype"], r["beam"], r["engine"]): r
           for r in res["latency"] if r["winner"]}
    for what, key in (("latency mean", "mean_s"), ("latency p90", "p90_s")):
        for (mo, dt, k, eng), r in win.items():
            if eng == ENGINE:
                out.append(f"| {what} (lower) | {mo} | {dt} | {k} | 1 | " + " | ".join(
                    _x(r[key], win[(mo, dt, k, p)][key]) if (mo, dt, k, p) in win else "–"
                    for p in peers) + " |")
    st = {(s["model"], s["dtype"], s["engine"]): s for s in res["startup"]}
    for what, key in (("start-up", "median_s"), ("start-up RSS", "rss_mb")):
        for (mo, dt, eng), s in st.items():
            if eng == ENGINE:
                out.append(f"| {what} (lower) | {mo} | {dt} | 1 | 1 | " + " | ".join(
                    _x(s[key], st[(mo, dt, p)][key]) for p in peers) + " |")

    out.append("\n### Throughput, batch 32\n")
    out.append("| model | dtype | beam | lines | engine | threads | tok/s | runs tok/s | "
               "transl. s | RSS MB | probe (pieces/s) | same text as attn-translate |")
    out.append("|---|---|--:|--:|---|---|--:|---|--:|--:|---|---|")
    for r in res["throughput"]:
        for eng, e in r["engines"].items():
            probe = ", ".join(f"{q['config'].replace('--threads ', 't')}: {q['rate']:.0f}"
                              for q in res["probe"] if (q["model"], q["dtype"], q["beam"],
                                                        q["engine"]) == (r["model"], r["dtype"],
                                                                         r["beam"], eng))
            same = "" if eng == ENGINE else f"{e['identical']}/{r['lines']}"
            if e.get("explained"):
                same += " (" + ", ".join(f"{v} {k}" for k, v in e["explained"].items()) + ")"
            if "identical_pieces" in e:
                same += f"; pieces {e['identical_pieces']}/{r['lines']}"
            if "same_as_f32" in e:
                same += f"{'; ' if same else ''}as its f32: {e['same_as_f32']}/{r['lines']}"
            if not e["stable"]:
                same += "; runs differ"
            out.append(f"| {r['model']} | {r['dtype']} | {r['beam']} | {r['lines']} | {eng} | "
                       f"{e['config']} | {e['tok_s']:.0f} | "
                       f"{', '.join(f'{x:.0f}' for x in e['reps_tok_s'])} | "
                       f"{e['translate_s']:.2f} | {e['rss_mb']:.0f} | {probe} | {same} |")

    if res["latency"]:
        out.append("\n### Batch-1 latency (one sentence at a time)\n")
        out.append("| model | dtype | beam | lines | engine | threads | mean ms | p50 ms | "
                   "p90 ms | other configurations, mean ms | same text |")
        out.append("|---|---|--:|--:|---|---|--:|--:|--:|---|---|")
        for r in (x for x in res["latency"] if x["winner"]):
            others = ", ".join(f"{o['config']}: {1000 * o['mean_s']:.1f}" for o in res["latency"]
                               if not o["winner"] and (o["model"], o["dtype"], o["beam"],
                                                       o["engine"]) == (r["model"], r["dtype"],
                                                                        r["beam"], r["engine"]))
            same = "" if r["engine"] == ENGINE else f"{r['identical']}/{r['lines']}"
            if r["unstable"]:
                same += "; rounds differ"
            out.append(f"| {r['model']} | {r['dtype']} | {r['beam']} | {r['lines']} | "
                       f"{r['engine']} | {r['config']} | {1000 * r['mean_s']:.1f} | "
                       f"{1000 * r['p50_s']:.1f} | {1000 * r['p90_s']:.1f} | {others} | {same} |")

    out.append("\n### Start-up\n")
    out.append("| model | dtype | engine | median ms | runs ms | peak RSS MB |")
    out.append("|---|---|---|--:|---|--:|")
    for s in res["startup"]:
        out.append(f"| {s['model']} | {s['dtype']} | {s['engine']} | {1000 * s['median_s']:.0f} | "
                   f"{', '.join(f'{1000 * x:.0f}' for x in s['runs_s'])} | {s['rss_mb']:.0f} |")
    out.append("\nChecks and notes:\n")
    out += [f"- {c}" if not c.startswith("  ") else f"  - {c.strip()}"
            for c in res["checks"] + res["notes"]]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------

def classic(a, model, label, lines, mode):
    """The attn-translate grid (and the PyTorch reference): prints its report, returns
    its raw measurements."""
    t_start = time.perf_counter()
    info = machine()
    info["loadavg_start"] = loadavg()
    log("bench: sgemm peak ...")
    sg = sgemm([1, 2])
    peak = sg["peak"]

    log("bench: time to first translation ...")
    # the bench model never emits eos: plain `echo Hello |` decodes 2*S+10 steps x beam 4;
    # the 1-token run is (nearly) load + exit, subtracted to get translation-only time
    dtypes = [d for d in a.dtypes.split(",") if d]
    one = ["--beam", "1", "--max-length", "0+1"]
    starts = [startup(label, model)] if model else []
    bench_start = {}
    for dt in dtypes if model else []:
        starts.append(startup(label, model, [*one, "--dtype", dt]))
        bench_start[dt] = starts[-1]["median_s"]
    if model and not a.model and "int8" in dtypes:
        # the same model stored as an int8 file (what `export.py --dtype int8` writes):
        # loading packs the stored bytes instead of quantizing
        m8 = model + "-int8"
        if not fresh_copy(m8, model):
            subprocess.run([PYTHON, "-c", INT8_COPY, model, m8], check=True)
        starts.append(startup(label + " int8 file", m8, one))
    starts.append(startup("tiny/A", TINY))
    shipped = os.path.exists(os.path.join(a.shipped, "model.json"))
    shipped_start = {}
    if shipped:
        starts.append(startup("shipped", os.path.abspath(a.shipped)))
        for dt in dtypes:
            starts.append(startup("shipped", os.path.abspath(a.shipped), [*one, "--dtype", dt]))
            shipped_start[dt] = starts[-1]["median_s"]

    rows = []
    if model:
        log(f"bench: {label} ({mode}) ...")
        rows = bench_model(label, model, lines, True, mode, peak, not a.no_reference,
                           bench_start, dtypes)
    if shipped:
        log("bench: shipped model ...")
        rows += bench_model("shipped", os.path.abspath(a.shipped), lines, False, mode, peak,
                            not a.no_reference, shipped_start, dtypes)
    info["loadavg_end"] = loadavg()
    elapsed = time.perf_counter() - t_start

    # ---- report
    so = os.path.basename(info.get("openblas_so", "?"))
    print(f"## attn-translate bench ({mode}; {elapsed / 60:.1f} min)\n")
    print(f"- machine: {info['cpu']}, {info['cores']} cores; load average "
          f"{info['loadavg_start']} at the start, {info['loadavg_end']} at the end")
    print(f"- OpenBLAS: {so} ({sg['config']})")
    print("- sgemm peak (tests/bench_sgemm.c, best of 512x2048x512 and 1024^3): "
          + ", ".join(f"{peak[t]:.1f} GFLOP/s with {t} thread{'s' if t > 1 else ''}" for t in sorted(peak)))
    for r in sg["results"]:
        if r["kind"] == "sgemv":
            print(f"- sgemv {r['N']}x{r['K']} ({r['threads']} thr): {r['gflops']:.1f} GFLOP/s = "
                  f"{r['weight_gb_s']:.1f} GB/s of weights")
    print(f"- input: first lines of newstest2013.en (pool of {len(lines)}); bench model: "
          "`--max-length 1+0`, target tokens = source tokens (eos included)\n")
    print(table(rows))
    print()
    rr = ratios(rows)
    if rr:
        print("C / PyTorch reference (target tokens/s; the reference runs batch 1 on a subset: "
              "see `lines`):\n")
        print(rr)
        print()
    print("Time to first translation (`echo Hello | attn-translate -m MODEL`, load included, "
          "median of 3):\n")
    print("| model | extra options | median ms | runs ms | peak RSS MB |")
    print("|---|---|--:|---|--:|")
    for s in starts:
        print(f"| {s['model']} | {s['args'] and '`' + s['args'] + '`'} | {1000 * s['median_s']:.0f} | "
              f"{', '.join(f'{1000 * x:.0f}' for x in s['runs_s'])} | {s['rss_mb']:.0f} |")
    if not shipped:
        print(f"\n(no shipped model at {a.shipped}: its table is skipped)")
    return dict(mode=mode, lines_pool=len(lines), elapsed_s=elapsed, machine=info,
                sgemm=sg, startup=starts, results=rows,
                flops_formula=__doc__[__doc__.index("FLOPs per sentence"):])


def main(argv=None):
    ap = argparse.ArgumentParser(description="attn-translate speed and memory vs the PyTorch "
                                 "reference and, with --peer, CTranslate2 (make bench)")
    ap.add_argument("--lines", type=int, default=None,
                    help="lines of newstest2013.en to draw from (default 200; --quick 40); "
                    "with --peer also the side by side's main-phase lines (default: as many as "
                    "fit in --peer-budget, at most 500)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smoke check: 40 lines, fewer configs")
    g.add_argument("--full", action="store_true",
                   help="every configuration on all --lines lines (slow: ~1 h at 200)")
    ap.add_argument("--model", help="bench this fixed-length model directory instead of "
                    "building the random one")
    ap.add_argument("--vocab", choices=("opus", "tiny"), default="opus",
                    help="vocabulary of the built bench model (default opus)")
    ap.add_argument("--shipped", default=os.path.join(ROOT, "models", "en-fr"),
                    help="the shipped model, benched as it translates when present "
                    "(default models/en-fr)")
    ap.add_argument("--no-reference", action="store_true", help="skip the PyTorch reference")
    ap.add_argument("--shipped-only", action="store_true",
                    help="bench only the shipped model (--shipped), not the fixed-length bench model")
    ap.add_argument("--dtypes", default="f32,f16,int8",
                    help="attn-translate --dtype values to bench (default f32,f16,int8; the "
                    "side by side runs f32 and int8 of them)")
    ap.add_argument("--json", help="write the raw measurements here")
    p = ap.add_argument_group("side by side with CTranslate2")
    p.add_argument("--peer", action="append", metavar="[LABEL=]DIR",
                   help="a CTranslate2 install prefix (DIR/bin/ct2-translator, DIR/lib; or a "
                   "build.sh directory); repeatable, or comma-separated")
    p.add_argument("--peer-only", action="store_true",
                   help="only the side by side (no attn-translate grid, no PyTorch reference)")
    p.add_argument("--peer-budget", type=float, default=12.0, metavar="MIN",
                   help="minutes the side by side may take, one-time conversions and builds "
                   "aside: sizes its main phase unless --lines is given (default 12)")
    p.add_argument("--reps", type=int, default=3,
                   help="alternating runs per engine in the main phase (default 3)")
    p.add_argument("--probe-lines", type=int, default=PROBE_LINES,
                   help=f"lines of the threading probe (default {PROBE_LINES})")
    p.add_argument("--latency-lines", type=int, default=8,
                   help="lines timed one at a time for batch-1 latency (default 8)")
    p.add_argument("--latency-rounds", type=int, default=2,
                   help="rounds of the latency runs; per line the best (default 2)")
    p.add_argument("--startup-reps", type=int, default=5, help="start-up runs (default 5)")
    p.add_argument("--peer-length", type=int, default=23,
                   help="the bench model's fixed output length in the side by side (default 23)")
    p.add_argument("--peer-cap", type=int, default=64,
                   help="the shipped model's output limit, eos counted, for both engines "
                   "(default 64)")
    p.add_argument("--peer-allow-ties", action="store_true",
                   help="on the bench model, f32 differences that are all float ties are "
                   "reported, not fatal (the shipped model always allows them)")
    p.add_argument("--at2ct2", default=AT2CT2,
                   help=f"the converter (default {os.path.relpath(AT2CT2, ROOT)})")
    ap.add_argument("--_ref-worker", dest="ref_worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.ref_worker:
        ref_worker(a.ref_worker)
        return 0
    mode = "quick" if a.quick else "full" if a.full else "default"
    n = a.lines if a.lines is not None else (40 if a.quick else 200)
    try:
        peers = parse_peers(a.peer)
    except ValueError as e:
        log(f"bench: {e}")
        return 2
    if a.peer_only and not peers:
        log("bench: --peer-only needs --peer DIR (make bench PEER_CT2=DIR)")
        return 2
    if peers and not os.path.exists(a.at2ct2):
        log(f"bench: no converter at {a.at2ct2} (--at2ct2)")
        return 1
    if not os.access(BIN, os.X_OK):
        log(f"bench: {BIN} not built (make)")
        return 1
    os.makedirs(BENCH_DIR, exist_ok=True)

    if a.shipped_only:
        if not os.path.exists(os.path.join(a.shipped, "model.json")):
            log(f"bench: --shipped-only: no model at {a.shipped}")
            return 1
        model, label = None, None
    elif a.model:
        model, label = os.path.abspath(a.model), os.path.basename(os.path.normpath(a.model))
    else:
        model = os.path.join(BENCH_DIR, f"model-{a.vocab}-s0")
        log(f"bench: bench model {model} (built once, ~300 MB) ...")
        # in a child process: this one stays small (see run_timed on peak RSS)
        subprocess.run([PYTHON, os.path.join(HERE, "make_bench_model.py"), model,
                        "--vocab", a.vocab, "--seed", "0"], check=True)
        label = f"bench-{a.vocab}"

    with open(DEV, encoding="utf-8") as f:
        dev = [l.rstrip("\n") for l in f]
    out = {}
    if not a.peer_only:
        out = classic(a, model, label, dev[:n], mode)
    if peers:
        models = []
        if model:
            models.append(SbsModel(label, model, a.peer_length, fixed=True))
        if os.path.exists(os.path.join(a.shipped, "model.json")):
            models.append(SbsModel("shipped", a.shipped, a.peer_cap, fixed=False))
        pool = [l for l in dev if l.strip()][:max(SBS_POOL, a.lines or 0)]
        try:
            sbs = side_by_side(models, peers, pool, a)
        except SbsError as e:
            log(f"bench: side by side stopped: {e}")
            return 1
        if not a.peer_only:
            print()
        print(sbs_report(sbs))
        out["side_by_side"] = sbs
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

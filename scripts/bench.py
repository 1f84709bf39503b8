#!/usr/bin/env python3
"""make bench: attn-translate's speed and memory, with the PyTorch reference run
side by side on the same inputs. Not a test: it prints numbers.

Models:
  - a Transformer-base-sized random model (scripts/make_bench_model.py: 6+6 layers,
    d_model 512, FFN 2048, the OPUS-MT vocabulary of 59,514), with eos disabled and
    `--max-length 1+0`, so every configuration generates exactly one target token per
    source token (eos included) and timings compare;
  - the shipped model (models/en-fr), when present, as it translates.
Inputs: the first --lines lines of ../shared/data/dev/newstest2013.en.

For each configuration it reports sentences/s, target tokens/s, peak RSS, and the
achieved GFLOP/s as a fraction of this machine's sgemm peak (tests/bench_sgemm.c) with
as many threads. FLOPs per sentence (multiply-adds x 2, beam rows counted):
  encoder  S * L_enc * (4d^2 + 2dF) + L_enc * 2 * S^2 * d
  cross KV S * L_dec * 2d^2
  decoder  sum over steps t=1..T of  K * [L_dec * (4d^2 + 2d^2 + 2dF) + L_dec * 2d(t + S)]
  output   T * K * d * V
Usage: bench.py [--lines N] [--quick] [--json OUT] [--no-reference]
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
BIN = os.path.join(ROOT, "attn-translate")
SHARED = os.path.join(ROOT, "..", "shared")
BENCH_DIR = os.environ.get("ATTN_BENCH_DIR", "/tmp/attn-bench")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def sgemm_peak(threads):
    exe = os.path.join(BENCH_DIR, "bench_sgemm")
    if not os.path.exists(exe):
        sh(["cc", "-O2", os.path.join(ROOT, "tests", "bench_sgemm.c"), "-lopenblas", "-o", exe])
    return float(sh([exe, str(threads)]).stdout.split()[1])


def run_c(model, inp, args):
    """Wall time and peak RSS (KB) of one attn-translate run."""
    cmd = ["/usr/bin/time", "-f", "%M", BIN, "-m", model, "-q", *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdin=open(inp, "rb"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr[-500:]}")
    rss = int(p.stderr.decode().strip().splitlines()[-1])
    return wall, rss, p.stdout.decode()


def flops(cfg, S, T, K):
    d, F, V = cfg["d_model"], cfg["encoder_ffn_dim"], cfg["vocab_size"]
    Le, Ld, Fd = cfg["encoder_layers"], cfg["decoder_layers"], cfg["decoder_ffn_dim"]
    macs = S * Le * (4 * d * d + 2 * d * F) + Le * 2 * S * S * d + S * Ld * 2 * d * d
    for t in range(1, T + 1):
        macs += K * (Ld * (6 * d * d + 2 * d * Fd) + Ld * 2 * d * (t + S))
    macs += T * K * d * V
    return 2 * macs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=60)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--no-reference", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.lines = 16
    os.makedirs(BENCH_DIR, exist_ok=True)
    model = os.path.join(BENCH_DIR, "model")
    subprocess.run([sys.executable, os.path.join(HERE, "make_bench_model.py"), model], check=True)
    src = open(os.path.join(SHARED, "data", "dev", "newstest2013.en"), encoding="utf-8").read().splitlines()
    lines = src[: a.lines]
    inp = os.path.join(BENCH_DIR, "input.en")
    open(inp, "w", encoding="utf-8").write("\n".join(lines) + "\n")

    import reference  # PyTorch: only now, it is slow to import
    import torch
    ref = reference.load(model, dtype=torch.float32)
    cfg = ref.config
    ids = [reference.encode(ref, l) for l in lines]
    S_list = [len(x) for x in ids]
    tokens = sum(S_list)  # target tokens: one per source token with --max-length 1+0
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    peak = {t: sgemm_peak(t) for t in (1, 2)}
    print(f"machine: {cpu}, {os.cpu_count()} cores; OpenBLAS sgemm peak {peak[1]:.1f} GFLOP/s (1 thread), {peak[2]:.1f} (2 threads)")
    print(f"input: first {len(lines)} lines of newstest2013.en, {tokens} source tokens = target tokens per hypothesis\n")

    results = []
    beams = (1, 4)
    batches = (1, 32) if a.quick else (1, 8, 32, 64)
    print("| engine | beam | batch | threads | sent/s | target tok/s | peak RSS MB | GFLOP/s | % of sgemm peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for beam in beams:
        fl = sum(flops(cfg, S, S, beam) for S in S_list)
        for bs in batches:
            for th in (1, 2):
                wall, rss, _ = run_c(model, inp, ["--beam", str(beam), "--batch-size", str(bs),
                                                  "--threads", str(th), "--max-length", "1+0"])
                r = dict(engine="attn-translate", beam=beam, batch=bs, threads=th, seconds=wall,
                         sent_s=len(lines) / wall, tok_s=tokens / wall, rss_mb=rss / 1024,
                         gflops=fl / wall / 1e9)
                r["peak_frac"] = r["gflops"] / peak[th]
                results.append(r)
                print(f"| C | {beam} | {bs} | {th} | {r['sent_s']:.1f} | {r['tok_s']:.0f} | {r['rss_mb']:.0f} | {r['gflops']:.1f} | {100 * r['peak_frac']:.0f}% |", flush=True)
        if a.no_reference:
            continue
        n_ref = min(len(lines), 8 if beam > 1 else 16)
        for th in (1, 2):
            torch.set_num_threads(th)
            t0 = time.perf_counter()
            with torch.no_grad():
                for x in ids[:n_ref]:
                    reference.beam_search(ref, x, beam=beam, n_best=1, factor=1.0, extra=0)
            wall = time.perf_counter() - t0
            tok = sum(S_list[:n_ref])
            fl_ref = sum(flops(cfg, S, S, beam) for S in S_list[:n_ref])
            r = dict(engine="pytorch-reference", beam=beam, batch=1, threads=th, seconds=wall,
                     lines=n_ref, sent_s=n_ref / wall, tok_s=tok / wall,
                     rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                     gflops=fl_ref / wall / 1e9)
            r["peak_frac"] = r["gflops"] / peak[th]
            results.append(r)
            print(f"| PyTorch ref ({n_ref} lines) | {beam} | 1 | {th} | {r['sent_s']:.1f} | {r['tok_s']:.0f} | {r['rss_mb']:.0f} | {r['gflops']:.1f} | {100 * r['peak_frac']:.0f}% |", flush=True)

    # ratios at batch 1, same threads
    print()
    for beam in beams:
        for th in (1, 2):
            c = next((r for r in results if r["engine"] == "attn-translate" and r["beam"] == beam and r["batch"] == 1 and r["threads"] == th), None)
            p = next((r for r in results if r["engine"] == "pytorch-reference" and r["beam"] == beam and r["threads"] == th), None)
            best = max((r for r in results if r["engine"] == "attn-translate" and r["beam"] == beam), key=lambda r: r["tok_s"])
            if c and p:
                print(f"beam {beam}, {th} thread(s): attn-translate batch 1 is {c['tok_s'] / p['tok_s']:.1f}x the PyTorch reference; "
                      f"best configuration (batch {best['batch']}, {best['threads']} threads) {best['tok_s'] / p['tok_s']:.1f}x")

    # start-up: one short sentence, model load included
    for name, mdir in (("bench model", model), ("tiny test model", os.path.join(ROOT, "tests/fixtures/tiny/A"))) + (
            (("shipped model", os.path.join(ROOT, "models/en-fr")),) if os.path.exists(os.path.join(ROOT, "models/en-fr/model.json")) else ()):
        one = os.path.join(BENCH_DIR, "hello.en")
        open(one, "w").write("Hello.\n")
        runs = [run_c(mdir, one, ["--threads", "1"]) for _ in range(3)]
        wall = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        results.append(dict(engine="attn-translate", what="first translation", model=name, seconds=wall, rss_mb=rss / 1024))
        print(f"time to first translation ({name}, load included): {1000 * wall:.0f} ms, peak RSS {rss / 1024:.0f} MB")
    if a.json:
        json.dump(dict(cpu=cpu, cores=os.cpu_count(), sgemm_peak=peak, lines=len(lines), tokens=tokens, results=results),
                  open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Training throughput of scripts/train.py's model on this machine (docs/TRAINING.md).

Runs the real training step (forward, label-smoothed loss, backward, Adam) on real
length-bucketed batches of a prepared data dir, a few warm-up steps and then --steps timed
ones, and prints one Markdown table row per configuration:

    /usr/bin/python3 scripts/train_throughput.py --data DIR/data \
        --config d256-e6-d2-f1024 --config d512-e6-d6-f2048 ... [--threads 2]
        [--max-tokens 8192] [--bf16] [--steps 12]

A configuration is d<d_model>-e<enc>-d<dec>-f<ffn>[-h<heads>]. The OpenBLAS thread count
is its environment variable OPENBLAS_NUM_THREADS, read when torch loads: run the script once
per value. Every configuration sees the same batches (same seed), so rows compare.
"""

import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import train  # noqa: E402  (first: it names OpenBLAS's kernels before numpy loads it)

import numpy as np  # noqa: E402
import torch  # noqa: E402


def parse_config(spec):
    m = re.fullmatch(r"d(\d+)-e(\d+)-d(\d+)-f(\d+)(?:-h(\d+))?", spec)
    if not m:
        raise SystemExit(f"bad --config {spec!r} (want e.g. d256-e6-d2-f1024)")
    d, e, dd, f, h = m.groups()
    return int(d), int(e), int(dd), int(f), int(h or (4 if int(d) <= 256 else 8))


def run(args, spec, data):
    d, e, dd, f, h = parse_config(spec)
    a = argparse.Namespace(d_model=d, enc_layers=e, dec_layers=dd, ffn=f, heads=h,
                           activation="swish", max_positions=512)
    cfg = train.make_config(a, data.vocab_size)
    torch.manual_seed(1)
    model = train.Marian(cfg, dropout=0.1)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    rng = np.random.default_rng(1)
    batches = data.batches(args.max_tokens, rng)
    model.train()
    times, toks, src_toks = [], 0, 0
    for i in range(args.warmup + args.steps):
        src, dec_in, labels = data.tensors(batches[i], "cpu")
        t0 = time.perf_counter()
        with train.autocast(args.bf16, "cpu"):
            loss = model.loss(src, dec_in, labels, 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)
            toks += int((labels != train.PAD_ID).sum())
            src_toks += int((src != train.PAD_ID).sum())
    total = sum(times)
    return {"config": spec, "params": n_params, "vocab": cfg["vocab_size"],
            "s_step": total / len(times), "tgt_tok_s": toks / total, "src_tok_s": src_toks / total,
            "tgt_per_step": toks / len(times)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="prepared data dir (train.npz)")
    ap.add_argument("--config", action="append", required=True)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--max-tokens", type=int, default=8192)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast on the CPU")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--header", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = train.Data(os.path.join(args.data, "train.npz"))
    ob = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    a = torch.randn(512, 512, dtype=torch.float64)
    err = float((a.float() @ a.float()).double().sub(a @ a).abs().max())
    if err > 1e-3:
        raise SystemExit(f"OpenBLAS sgemm is wrong here (max err {err:g}); set OPENBLAS_CORETYPE")
    sys.stderr.write(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, sgemm max err {err:.1e}\n")
    if args.header:
        print("| model | params | vocab | torch thr | OpenBLAS thr | batch tok | bf16 | s/step | "
              "tgt tok/s | src tok/s |")
        print("|---|--:|--:|--:|--:|--:|---|--:|--:|--:|")
    for spec in args.config:
        r = run(args, spec, data)
        print(f"| {spec} | {r['params'] / 1e6:.1f}M | {r['vocab']} | {args.threads} | {ob} | "
              f"{args.max_tokens} | {'yes' if args.bf16 else 'no'} | {r['s_step']:.3f} | "
              f"{r['tgt_tok_s']:.0f} | {r['src_tok_s']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

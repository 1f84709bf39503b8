#!/usr/bin/python3
"""BLEU and chrF for attn-translate, reimplemented in pure Python (no sacrebleu needed).

The numbers match sacreBLEU 2.x defaults:
  BLEU: corpus-level, tokenizer 13a, max n-gram order 4, smoothing 'exp', no lowercasing,
        brevity penalty against the closest reference length
        (signature nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.x)
  chrF: chrF2 -- character n-grams up to order 6, no word n-grams, beta 2, whitespace
        removed, corpus-level statistics, precision/recall averaged over the orders with
        n-grams (eps_smoothing=False)
        (signature nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.x)

Command line:
    eval.py --hyp HYP.txt --ref REF.txt
        prints "BLEU = ..." and "chrF2 = ..."
    eval.py --model DIR [--bin ./attn-translate] [--beam 4] [--sets flores,newstest,tatoeba,multi30k]
            [--limit N] [--translator bin|reference] [--dev-dir /work/shared/data/dev]
            [--dtypes f32,f16,int8]
        translates each dev set with the C binary (or scripts/reference.py) and prints a
        markdown table. With several --dtypes (the engine's --dtype) it also prints each
        reduced precision's BLEU / chrF2 change against the first one and the share of
        lines translated identically: the cost of f16 or int8 weights.

Library use: corpus_bleu(hyps, refs) -> BLEUResult; corpus_chrf(hyps, refs) -> float, where
refs is a list of reference lines (one reference) or a list of such lists (several).
"""

import argparse
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter, namedtuple

# ------------------------------------------------------------------------------------
# tokenizer 13a (sacrebleu.tokenizers.tokenizer_13a.Tokenizer13a)
# ------------------------------------------------------------------------------------

_13A_RULES = [
    # language-dependent part (assuming Western languages)
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    # tokenize period and comma unless preceded by a digit
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    # tokenize period and comma unless followed by a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    # tokenize dash when preceded by a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def tokenize_13a(line):
    line = line.replace("<skipped>", "")
    line = line.replace("-\n", "")
    line = line.replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"')
        line = line.replace("&amp;", "&")
        line = line.replace("&lt;", "<")
        line = line.replace("&gt;", ">")
    line = " " + line + " "
    for rx, repl in _13A_RULES:
        line = rx.sub(repl, line)
    return " ".join(line.split())


# ------------------------------------------------------------------------------------
# BLEU
# ------------------------------------------------------------------------------------

BLEUResult = namedtuple("BLEUResult", "score counts totals precisions bp sys_len ref_len")


def _ngrams(words, max_order):
    c = Counter()
    for n in range(1, max_order + 1):
        for i in range(len(words) - n + 1):
            c[tuple(words[i:i + n])] += 1
    return c


def _normalize_refs(hyps, refs):
    if refs and isinstance(refs[0], str):
        refs = [refs]
    for r in refs:
        if len(r) != len(hyps):
            raise ValueError(f"{len(hyps)} hypotheses but a reference stream has {len(r)} lines")
    return refs


def _my_log(x):
    return -9999999999 if x == 0 else math.log(x)


def corpus_bleu(hyps, refs, max_order=4, smooth="exp", lowercase=False):
    """sacrebleu.corpus_bleu(hyps, [refs]) with default settings."""
    refs = _normalize_refs(hyps, refs)
    correct = [0] * max_order
    total = [0] * max_order
    sys_len = ref_len = 0
    for i, h in enumerate(hyps):
        if lowercase:
            h = h.lower()
        hw = tokenize_13a(h.rstrip()).split()
        ref_max = Counter()
        closest_diff, closest_len = None, 0
        for stream in refs:
            r = stream[i].lower() if lowercase else stream[i]
            rw = tokenize_13a(r.rstrip()).split()
            diff = abs(len(hw) - len(rw))
            if closest_diff is None or diff < closest_diff or (diff == closest_diff and len(rw) < closest_len):
                closest_diff, closest_len = diff, len(rw)
            for g, c in _ngrams(rw, max_order).items():
                if c > ref_max[g]:
                    ref_max[g] = c
        sys_len += len(hw)
        ref_len += closest_len
        for g, c in _ngrams(hw, max_order).items():
            n = len(g)
            total[n - 1] += c
            correct[n - 1] += min(c, ref_max.get(g, 0))
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    else:
        bp = 1.0
    precisions = [0.0] * max_order
    if not any(correct):
        return BLEUResult(0.0, correct, total, precisions, bp, sys_len, ref_len)
    smooth_mteval = 1.0
    for n in range(1, max_order + 1):
        if total[n - 1] == 0:
            break
        if correct[n - 1] == 0:
            if smooth == "exp":
                smooth_mteval *= 2
                precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1])
            elif smooth == "floor":
                precisions[n - 1] = 100.0 * 0.1 / total[n - 1]
        else:
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1]
    score = bp * math.exp(sum(_my_log(p) for p in precisions) / max_order)
    return BLEUResult(score, correct, total, precisions, bp, sys_len, ref_len)


def format_bleu(b):
    ratio = b.sys_len / b.ref_len if b.ref_len else 0.0
    return ("BLEU = %.2f %s (BP = %.3f ratio = %.3f hyp_len = %d ref_len = %d)"
            % (b.score, "/".join("%.1f" % p for p in b.precisions), b.bp, ratio, b.sys_len, b.ref_len))


# ------------------------------------------------------------------------------------
# chrF
# ------------------------------------------------------------------------------------

def _char_stats(hyp, ref, order):
    """[n_hyp, n_ref, n_match] for each order 1..order, whitespace removed."""
    h = "".join(hyp.split())
    r = "".join(ref.split())
    out = []
    for n in range(1, order + 1):
        hc = Counter(h[i:i + n] for i in range(len(h) - n + 1))
        rc = Counter(r[i:i + n] for i in range(len(r) - n + 1))
        match = sum(min(c, rc[g]) for g, c in hc.items() if g in rc)
        out += [sum(hc.values()), sum(rc.values()), match]
    return out


def _chrf_from_stats(st, order, beta):
    factor = beta ** 2
    avg_p = avg_r = 0.0
    eff = 0
    for i in range(order):
        n_hyp, n_ref, n_match = st[3 * i:3 * i + 3]
        if n_hyp > 0 and n_ref > 0:
            avg_p += n_match / n_hyp
            avg_r += n_match / n_ref
            eff += 1
    if eff == 0:
        return 0.0
    avg_p /= eff
    avg_r /= eff
    if avg_p + avg_r == 0:
        return 0.0
    return 100.0 * (1 + factor) * avg_p * avg_r / (factor * avg_p + avg_r)


def corpus_chrf(hyps, refs, order=6, beta=2, lowercase=False):
    """sacrebleu.corpus_chrf(hyps, [refs]) with default settings (chrF2)."""
    refs = _normalize_refs(hyps, refs)
    total = [0] * (3 * order)
    for i, h in enumerate(hyps):
        if lowercase:
            h = h.lower()
        best, best_f = None, -1.0
        for stream in refs:
            r = stream[i].lower() if lowercase else stream[i]
            st = _char_stats(h, r, order)
            f = _chrf_from_stats(st, order, beta)
            if f > best_f:
                best, best_f = st, f
        total = [a + b for a, b in zip(total, best)]
    return _chrf_from_stats(total, order, beta)


# ------------------------------------------------------------------------------------
# dev sets
# ------------------------------------------------------------------------------------

DEV_SETS = {
    "flores": ("eng_Latn.dev", "fra_Latn.dev"),
    "newstest": ("newstest2013.en", "newstest2013.fr"),
    "tatoeba": ("tatoeba-test-v2021-08-07.eng", "tatoeba-test-v2021-08-07.fra"),
    "multi30k": ("test_2016_flickr.en", "test_2016_flickr.fr"),
}


def read_lines(path, limit=None):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [l.rstrip("\r") for l in lines]
    return lines[:limit] if limit else lines


def translate(lines, args, dtype=None):
    here = os.path.dirname(os.path.abspath(__file__))
    if args.translator == "reference":
        cmd = [sys.executable, os.path.join(here, "reference.py"), "-m", args.model,
               "--beam", str(args.beam)]
    else:
        cmd = [args.bin, "-m", args.model, "-b", str(args.beam), "-q", "--no-progress"]
        if args.threads:
            cmd += ["-t", str(args.threads)]
        if dtype:
            cmd += ["--dtype", dtype]
    p = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True,
                       text=True, encoding="utf-8")
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}\n{p.stderr[-2000:]}")
    out = p.stdout.split("\n")
    if out and out[-1] == "":
        out.pop()
    if len(out) != len(lines):
        raise SystemExit(f"{cmd[0]}: {len(out)} output lines for {len(lines)} inputs")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hyp")
    ap.add_argument("--ref")
    ap.add_argument("--model")
    ap.add_argument("--bin", default="./attn-translate")
    ap.add_argument("--translator", choices=["bin", "reference"], default="bin")
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--sets", default="flores,newstest,tatoeba,multi30k")
    ap.add_argument("--limit", type=int, default=None, help="first N lines of each set")
    ap.add_argument("--dev-dir", default="/work/shared/data/dev")
    ap.add_argument("--save-dir", default=None, help="write SET.hyp (SET.DTYPE.hyp) files here")
    ap.add_argument("--dtypes", default=None,
                    help="comma-separated engine --dtype values, e.g. f32,f16,int8: each set is "
                         "translated with each, and the differences reported")
    a = ap.parse_args(argv)
    if a.hyp or a.ref:
        if not (a.hyp and a.ref):
            ap.error("--hyp and --ref go together")
        hyps, refs = read_lines(a.hyp), read_lines(a.ref)
        print(format_bleu(corpus_bleu(hyps, refs)))
        print("chrF2 = %.2f" % corpus_chrf(hyps, refs))
        return 0
    if not a.model:
        ap.error("give --hyp/--ref or --model")
    dtypes = a.dtypes.split(",") if a.dtypes else [None]
    if a.dtypes and a.translator != "bin":
        ap.error("--dtypes is for the C engine (--translator bin)")
    rows = []
    for name in a.sets.split(","):
        if name not in DEV_SETS:
            ap.error(f"unknown set {name!r} (known: {', '.join(DEV_SETS)})")
        src_f, ref_f = DEV_SETS[name]
        src = read_lines(os.path.join(a.dev_dir, src_f), a.limit)
        ref = read_lines(os.path.join(a.dev_dir, ref_f), a.limit)
        first = None
        for dtype in dtypes:
            t0 = time.time()
            hyp = translate(src, a, dtype)
            dt = time.time() - t0
            if a.save_dir:
                os.makedirs(a.save_dir, exist_ok=True)
                fn = name + (f".{dtype}" if dtype else "") + ".hyp"
                with open(os.path.join(a.save_dir, fn), "w", encoding="utf-8") as f:
                    f.write("\n".join(hyp) + "\n")
            b = corpus_bleu(hyp, ref)
            c = corpus_chrf(hyp, ref)
            first = first or hyp
            same = sum(x == y for x, y in zip(hyp, first)) / max(1, len(hyp))
            rows.append((name, dtype, len(src), b.score, c, dt, same))
            print(f"{name}{' ' + dtype if dtype else ''}: BLEU {b.score:.2f} chrF2 {c:.2f} "
                  f"({len(src)} lines, {dt:.1f} s)", file=sys.stderr)
    if not a.dtypes:
        print(f"| set | lines | BLEU | chrF2 | seconds |  (model {a.model}, beam {a.beam}, {a.translator})")
        print("|---|---:|---:|---:|---:|")
        for name, _, n, bl, cf, dt, _ in rows:
            print(f"| {name} | {n} | {bl:.2f} | {cf:.2f} | {dt:.1f} |")
        return 0
    print(f"| set | lines | dtype | BLEU | Δ BLEU | chrF2 | Δ chrF2 | lines as {dtypes[0]} | seconds |"
          f"  (model {a.model}, beam {a.beam})")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    base = {}
    for name, dtype, n, bl, cf, dt, same in rows:
        b0, c0 = base.setdefault(name, (bl, cf))
        print(f"| {name} | {n} | {dtype} | {bl:.2f} | {bl - b0:+.2f} | {cf:.2f} | {cf - c0:+.2f} | "
              f"{100 * same:.1f}% | {dt:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

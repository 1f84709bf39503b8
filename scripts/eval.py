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
            [--dtypes f32,f16,int8] [--breakdown]
        translates each dev set with the C binary (or scripts/reference.py) and prints a
        markdown table. With several --dtypes (the engine's --dtype) it also prints each
        reduced precision's BLEU / chrF2 change against the first one and the share of
        lines translated identically: the cost of f16 or int8 weights.
        --breakdown adds, per set, BLEU by source length and the share of numbers and names
        kept (of those the reference keeps as they are; see breakdown()).
    eval.py --hyp HYP.txt --ref REF.txt --src SRC.txt --breakdown

Library use: corpus_bleu(hyps, refs) -> BLEUResult; corpus_chrf(hyps, refs) -> float, where
refs is a list of reference lines (one reference) or a list of such lists (several);
breakdown(srcs, hyps, refs) -> dict.
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
# breakdown: where a model is weak (long sentences, numbers, names)
# ------------------------------------------------------------------------------------

LENGTH_BUCKETS = ((1, 10), (11, 20), (21, 30), (31, None))  # source words, inclusive
# a number: digit groups joined by . , or a thin / no-break space, or by a plain space
# before a group of exactly three digits (French thousands: "1 000 000")
_NUMBER = re.compile(r"\d+(?:(?:[.,\u00a0\u202f\u2009]| (?=\d{3}(?!\d)))\d+)*")
_WORD = re.compile(r"\w(?:[\w\-'\u2019]*\w)?")
_SENTENCE_END = ('.', '!', '?', ':', '"', '\u201c', '\u00ab', '(')


def numbers(line):
    """Counter of the numbers in a line, as their digits only ("1,000" and "1 000" -> "1000";
    "3.14" and "3,14" -> "314"), so that English and French writings of one number match."""
    return Counter(re.sub(r"\D", "", m) for m in _NUMBER.findall(line))


def names(line):
    """Counter of the capitalized words of a source line that do not open a sentence
    (not the first word, not after . ! ? : or an opening quote or bracket)."""
    out = Counter()
    prev = None
    for m in re.finditer(r"\S+", line):
        tok = m.group(0)
        w = _WORD.search(tok)
        if w and prev is not None and not prev.endswith(_SENTENCE_END) \
                and w.start() == 0 and w.group(0)[0].isupper():
            out[w.group(0)] += 1
        prev = tok
    return out


def _kept(src, ref, hyp):
    """Of the items of src that ref keeps as they are, how many hyp keeps too (multisets)."""
    in_ref = in_hyp = 0
    for k, n in src.items():
        r = min(n, ref[k])
        in_ref += r
        in_hyp += min(r, hyp[k])
    return in_ref, in_hyp


def breakdown(srcs, hyps, refs):
    """Where a translation is weak. Returns a dict:
      "length": [(lo, hi, lines, BLEU, chrF2)] per LENGTH_BUCKETS range of source words
                (hi None: no upper bound; buckets without lines are left out);
      "numbers": (n, kept): the source's numbers that the reference writes with the same
                digits, and how many of them the hypothesis writes too;
      "names": (n, kept): the same for capitalized words inside a sentence that the
                reference copies as they are (names, mostly).
    The reference decides what should be kept, so numbers written as words and names
    that French spells differently do not count against the hypothesis."""
    if not (len(srcs) == len(hyps) == len(refs)):
        raise ValueError(f"{len(srcs)} sources, {len(hyps)} hypotheses, {len(refs)} references")
    length = []
    for lo, hi in LENGTH_BUCKETS:
        idx = [i for i, s in enumerate(srcs) if lo <= len(s.split()) and (hi is None or len(s.split()) <= hi)]
        if idx:
            h, r = [hyps[i] for i in idx], [refs[i] for i in idx]
            length.append((lo, hi, len(idx), corpus_bleu(h, r).score, corpus_chrf(h, r)))
    nums = [0, 0]
    nams = [0, 0]
    for s, h, r in zip(srcs, hyps, refs):
        a, b = _kept(numbers(s), numbers(r), numbers(h))
        nums[0] += a
        nums[1] += b
        ref_words = Counter(w.group(0) for w in _WORD.finditer(r))
        hyp_words = Counter(w.group(0) for w in _WORD.finditer(h))
        a, b = _kept(names(s), ref_words, hyp_words)
        nams[0] += a
        nams[1] += b
    return {"length": length, "numbers": tuple(nums), "names": tuple(nams)}


BREAKDOWN_HEAD = "| set | slice | lines or items | BLEU or kept | chrF2 |\n|---|---|---:|---:|---:|"


def format_breakdown(name, bd):
    """One Markdown table row per length bucket, then numbers and names kept."""
    out = []
    for lo, hi, n, bl, cf in bd["length"]:
        rng = f"{lo}–{hi}" if hi else f"{lo}+"
        out.append(f"| {name} | {rng} words | {n} | {bl:.2f} | {cf:.2f} |")
    for what in ("numbers", "names"):
        n, k = bd[what]
        pct = f"{100 * k / n:.1f}%" if n else "–"
        out.append(f"| {name} | {what} kept | {n} | {pct} ({k} of {n}) | |")
    return out


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
               "--beam", str(args.beam), "--replace-unknowns"]  # as the CLI's default
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
    ap.add_argument("--breakdown", action="store_true",
                    help="also BLEU by source length, and the numbers and names kept "
                         "(with --hyp/--ref, needs --src)")
    ap.add_argument("--src", help="the source lines of --hyp (for --breakdown)")
    a = ap.parse_args(argv)
    if a.hyp or a.ref:
        if not (a.hyp and a.ref):
            ap.error("--hyp and --ref go together")
        if a.breakdown and not a.src:
            ap.error("--breakdown with --hyp/--ref needs --src")
        hyps, refs = read_lines(a.hyp), read_lines(a.ref)
        print(format_bleu(corpus_bleu(hyps, refs)))
        print("chrF2 = %.2f" % corpus_chrf(hyps, refs))
        if a.breakdown:
            try:
                bd = breakdown(read_lines(a.src), hyps, refs)
            except ValueError as e:
                ap.error(str(e))
            print(BREAKDOWN_HEAD)
            print("\n".join(format_breakdown(os.path.basename(a.hyp), bd)))
        return 0
    if not a.model:
        ap.error("give --hyp/--ref or --model")
    dtypes = a.dtypes.split(",") if a.dtypes else [None]
    if a.dtypes and a.translator != "bin":
        ap.error("--dtypes is for the C engine (--translator bin)")
    rows, bds = [], []
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
            if a.breakdown:
                bds.append(format_breakdown(name + (f" {dtype}" if dtype else ""), breakdown(src, hyp, ref)))
            print(f"{name}{' ' + dtype if dtype else ''}: BLEU {b.score:.2f} chrF2 {c:.2f} "
                  f"({len(src)} lines, {dt:.1f} s)", file=sys.stderr)
    if not a.dtypes:
        print(f"| set | lines | BLEU | chrF2 | seconds |  (model {a.model}, beam {a.beam}, {a.translator})")
        print("|---|---:|---:|---:|---:|")
        for name, _, n, bl, cf, dt, _ in rows:
            print(f"| {name} | {n} | {bl:.2f} | {cf:.2f} | {dt:.1f} |")
        print_breakdowns(bds)
        return 0
    print(f"| set | lines | dtype | BLEU | Δ BLEU | chrF2 | Δ chrF2 | lines as {dtypes[0]} | seconds |"
          f"  (model {a.model}, beam {a.beam})")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    base = {}
    for name, dtype, n, bl, cf, dt, same in rows:
        b0, c0 = base.setdefault(name, (bl, cf))
        print(f"| {name} | {n} | {dtype} | {bl:.2f} | {bl - b0:+.2f} | {cf:.2f} | {cf - c0:+.2f} | "
              f"{100 * same:.1f}% | {dt:.1f} |")
    print_breakdowns(bds)
    return 0


def print_breakdowns(bds):
    if bds:
        print()
        print(BREAKDOWN_HEAD)
        for rows in bds:
            print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())

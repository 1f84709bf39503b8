#!/usr/bin/python3
"""The shipped model (models/en-fr) against the PyTorch reference's outputs on its weights.

    tests/test_shipped.py [BINARY]       (default build/attn-translate)

tests/fixtures/shipped/expected.json is made by scripts/make_shipped_fixture.py (the
reference, float64) for the model.bin whose sha256 it records. For each fixed sentence,
greedy and beam 4 (2-best), the C engine must print the same texts and scores within
1e-4, in the same order: by default with unknown tokens copied from the source as the
reference's replace_unknowns does, and with --keep-unknowns as " ⁇ ". A line whose reference decision margin is below 1e-4 (float32
rounding could flip it) is reported and skipped. Also checks that the model card exists
and the model is under 64 MiB, and prints (as a note, not a check) whether "The cat is
sleeping on the sofa." is translated with "chat", issue 12's quality target.
Prints "test_shipped: N passed, N failed[, N skipped]".
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, os.path.join(ROOT, "scripts")]
import atmodel  # noqa: E402
from pycheck import Checks  # noqa: E402
MODEL = os.path.join(ROOT, "models", "en-fr")
FIXTURE = os.path.join(HERE, "fixtures", "shipped", "expected.json")
SCORE_TOL = 1e-4
MIN_MARGIN = 1e-4

T = Checks("test_shipped")
check = T.check


def run_nbest(binary, lines, beam, n_best, extra=()):
    """{line index: [(text, score), ...]}: n-best records, or for one hypothesis the JSON
    records of --show-attn (the plain output has no score; the dump never changes it)."""
    opts = ["--n-best", str(n_best)] if n_best > 1 else ["--show-attn", "--attn-format", "json"]
    opts += list(extra)
    p = subprocess.run([binary, "-m", MODEL, "--beam", str(beam), "--threads", "1", *opts],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {p.stderr.strip()}")
    out = {}
    for k, rec in enumerate(p.stdout.splitlines()):
        if n_best > 1:
            i, text, score = rec.split(" ||| ")
            out.setdefault(int(i), []).append((text, float(score)))
        else:
            j = json.loads(rec)
            out[k] = [(j["translation"], float(j["score"]))]
    return out


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "attn-translate")
    if not os.path.exists(os.path.join(MODEL, "model.json")):
        T.skip("models/en-fr is not in this checkout")
        T.done()
    check("model card", os.path.exists(os.path.join(MODEL, "MODEL_CARD.md")))
    size = sum(os.path.getsize(os.path.join(MODEL, f)) for f in os.listdir(MODEL))
    check("model under 64 MiB", size < 64 * 2**20, f"{size} bytes")
    with open(FIXTURE, encoding="utf-8") as f:
        fx = json.load(f)
    ok = fx["model_bin_sha256"] == atmodel.sha256_file(os.path.join(MODEL, "model.bin"))
    check("fixture made for this model.bin", ok,
          "models/en-fr changed: run scripts/make_shipped_fixture.py")
    if not ok:
        T.done()
    replaced = 0
    for (name, st), (flag, key) in [(x, y) for x in fx["settings"].items()
                                    for y in (((), "text"), (("--keep-unknowns",), "text_keep"))]:
        lines = [r["source"] for r in st["lines"]]
        got = run_nbest(binary, lines, st["beam"], st["n_best"], flag)
        tag = name + (" " + flag[0] if flag else "")
        for i, r in enumerate(st["lines"]):
            if r["margin"] is not None and r["margin"] < MIN_MARGIN:
                T.skip(f"{tag} line {i}: reference decision margin {r['margin']:.2e}")
                continue
            hyps = got.get(i, [])
            want = r["hyps"]
            check(f"{tag} line {i} count", len(hyps) == len(want), f"{len(hyps)} vs {len(want)}")
            for k, (h, w) in enumerate(zip(hyps, want)):
                check(f"{tag} line {i} hyp {k} text", h[0] == w[key], f"{h[0]!r} vs {w[key]!r}")
                check(f"{tag} line {i} hyp {k} score", abs(h[1] - w["score"]) <= SCORE_TOL,
                      f"{h[1]} vs {w['score']}")
                replaced += key == "text" and w["text"] != w["text_keep"]
    # the fixture must exercise the replacement, or the checks above prove nothing about it
    check("some reference hypotheses have unknown tokens replaced", replaced >= 4, replaced)
    # issue 12's quality target, reported but not a test of the engine (the model card
    # states whether the shipped model meets it)
    cat = run_nbest(binary, ["The cat is sleeping on the sofa."], 4, 1)[0][0][0]
    print(f"NOTE 'The cat is sleeping on the sofa.' -> {cat!r}: "
          f"{'has' if 'chat' in cat.lower() else 'does not have'} 'chat' (quality target)")
    T.done()


if __name__ == "__main__":
    main()

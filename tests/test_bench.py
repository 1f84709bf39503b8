#!/usr/bin/python3
"""scripts/bench.py's side by side with CTranslate2, without CTranslate2.

    tests/test_bench.py [BINARY]       (default build/attn-translate)

Checks the parts that CTranslate2 runs would otherwise be the only test of:
- the pieces bench.py feeds CT2 (SentencePiece + "</s>") are attn-translate's own
  segmentation, and its detokenizer of CT2's output pieces gives attn-translate's text,
  on the tiny test model (greedy and beam 4);
- the parsers and helpers: --peer specs, output lines, quantiles, decoder steps,
  CT2's log and throughput lines, the ratio format;
- the whole side by side (start-up, threading probe, latency, main phase, report), run
  against tests/fake_ct2_translator.py, a ct2-translator stand-in that translates with
  attn-translate: the outputs must then be identical and the report complete.
Needs /usr/bin/python3 with sentencepiece (else skipped, with the reason).
Prints "test_bench: N passed, N failed[, N skipped]".
"""
import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, HERE)
from pycheck import Checks  # noqa: E402
TINY = os.path.join(HERE, "fixtures", "tiny", "A")

T = Checks("test_bench")
check, done = T.check, T.done

try:
    import sentencepiece  # noqa: F401
except ImportError:
    T.skip("no sentencepiece module (python3-sentencepiece)")
    done()

import bench  # noqa: E402

binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build",
                                                                           "attn-translate"))
bench.BIN = binary
tmp = tempfile.mkdtemp(prefix="test_bench.")
bench.BENCH_DIR = tmp
try:
    with open(os.path.join(TINY, "inputs.txt"), encoding="utf-8") as f:
        pool = [l.rstrip("\n") for l in f if l.strip()]

    # ---- pieces in, pieces out, against the engine's own json dump
    m = bench.SbsModel("tiny", TINY, 30, fixed=False)
    m.src = m.pieces(pool)
    inp = os.path.join(tmp, "in.en")
    bench.write_lines(inp, pool)
    for beam in (1, 4):
        recs = bench.attn_json(m, inp, "f32", beam, 32, 1)
        check(f"json records, beam {beam}", len(recs) == len(pool), len(recs))
        check(f"source pieces = SentencePiece + </s>, beam {beam}",
              [r[0] for r in recs] == m.src)
        bad = [(r[1], r[2]) for r in recs if m.detok(r[1]) != r[2]]
        check(f"detok(pieces) = attn-translate's text, beam {beam}", not bad, bad[:2])
        check(f"decoder steps within the limit, beam {beam}",
              all(1 <= m.steps_of(r[1]) <= m.steps for r in recs))
    try:
        bench.check_pieces(m, inp, len(pool))
        check("check_pieces", True)
    except bench.SbsError as e:
        check("check_pieces", False, e)
    check("detok unk", m.detok(["\u2581a", "\u2581", m.unk, "b", m.eos]) == "a  \u2047 b")
    check("detok leading space", m.detok(["\u2581\u2581x"]) == " x")

    # ---- helpers
    ps = bench.parse_peers(["/x/a", "o=/x/b,/x/c"])
    check("parse_peers", [(p.label, p.prefix) for p in ps] ==
          [("ct2", "/x/a"), ("o", "/x/b"), ("ct2-3", "/x/c")], [(p.label, p.prefix) for p in ps])
    try:
        bench.parse_peers(["a=/x", "a=/y"])
        check("parse_peers: a label twice", False)
    except ValueError:
        check("parse_peers: a label twice", True)
    check("out_lines", bench.out_lines("a\u2028b\n\nc\n") == ["a\u2028b", "", "c"])
    check("out_lines empty", bench.out_lines("") == [])
    check("split_pieces", bench.split_pieces("\u2581a\u3000 b\xa0 ") == ["\u2581a\u3000", "b\xa0"])
    check("split_pieces empty", bench.split_pieces("") == [])
    check("pct", (bench.pct([4, 1, 3, 2], 0.5), bench.pct([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9),
                  bench.pct([7], 0.9)) == (2.5, 9.1, 7))
    check("steps_of", (m.steps_of([]), m.steps_of(["x"] * 29), m.steps_of(["x"] * 30)) ==
          (1, 30, 30))
    check("throughput line", bench.THROUGHPUT.match("1234.5") and
          not bench.THROUGHPUT.match("[info] 12"))
    lm = bench.CT2_LOG.match("[2025-01-01 10:00:00.123] [ctranslate2] [thread 77] [info]  - "
                             "Selected compute type: int8_float32")
    check("CT2 log line", lm and lm.group(1) == "info" and "int8_float32" in lm.group(2))
    check("ratio format", (bench._x(3.0, 2.0), bench._x(None, 2.0)) == ("1.50×", "–"))

    # ---- explain_f32's kinds, by CT2 log-probs given per piece (ct2_score stubbed):
    # m.steps = 30, lp 1 on the tiny model
    lp_of = {}

    def fake_score(peer, model, srcs, outs):
        return [[lp_of[tuple(o)]] * model.steps_of(o) for o in outs]
    real_score, bench.ct2_score = bench.ct2_score, fake_score
    try:
        mine, cut, short = ["a"] * 12, ["b"] * 30, ["c"] * 12
        lp_of.update({tuple(mine): -0.50, tuple(cut): -0.40, tuple(short): -0.5000002})
        m.src = [["x", m.eos]] * 3
        kinds = [x["kind"] for x in bench.explain_f32(None, m, 4, [0, 1, 2],
                                                      [mine, mine, cut], [short, cut, mine])]
        check("explain_f32: tie, length cap, unexplained", kinds ==
              ["tie", "length cap", "unexplained"], kinds)
        kinds = [x["kind"] for x in bench.explain_f32(None, m, 1, [1], [mine, mine], [cut, cut])]
        check("explain_f32: greedy has no length cap", kinds == ["unexplained"], kinds)
    finally:
        bench.ct2_score = real_score
        m.src = m.pieces(pool)
    # ---- the whole side by side against the stand-in
    prefix = os.path.join(tmp, "fake-ct2")
    os.makedirs(os.path.join(prefix, "bin"))
    shutil.copy(os.path.join(HERE, "fake_ct2_translator.py"),
                os.path.join(prefix, "bin", "ct2-translator"))
    os.chmod(os.path.join(prefix, "bin", "ct2-translator"), 0o755)
    os.environ["FAKE_CT2_ATTN"] = binary
    a = argparse.Namespace(dtypes="f32,int8", reps=2, probe_lines=8, latency_lines=3,
                           latency_rounds=1,
                           startup_reps=1, lines=8, peer_budget=1.0, peer_allow_ties=False,
                           at2ct2=os.path.join(HERE, "no-such-at2ct2.py"))
    m = bench.SbsModel("tiny", TINY, 30, fixed=False)
    # the conversion: the stand-in needs only attn-source.json, as bench.py writes it
    real_convert = bench.ct2_convert

    def fake_convert(model, at2ct2):
        d = os.path.join(tmp, "ct2-model")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "attn-source.json"), "w", encoding="utf-8") as f:
            f.write('{"dir": "%s"}' % model.dir)
        return d, 0.0
    bench.ct2_convert = fake_convert
    try:
        res = bench.side_by_side([m], bench.parse_peers([f"fake={prefix}"]), pool, a)
    finally:
        bench.ct2_convert = real_convert
    rows = res["throughput"]
    check("main phase: 4 cells", len(rows) == 4, len(rows))
    for r in rows:
        e = r["engines"]
        name = f"{r['dtype']} beam {r['beam']}"
        check(f"{name}: both engines", set(e) == {"attn-translate", "fake"}, set(e))
        check(f"{name}: 8 lines", r["lines"] == 8)
        check(f"{name}: identical texts and pieces",
              e["fake"]["identical"] == 8 and e["fake"].get("identical_pieces") == 8, e["fake"])
        check(f"{name}: same token counts",
              e["fake"]["tgt_tokens"] == e["attn-translate"]["tgt_tokens"] > 0)
        check(f"{name}: rates", all(x > 0 for x in e["attn-translate"]["reps_tok_s"] +
                                    e["fake"]["reps_tok_s"]))
        if r["dtype"] == "int8":
            check(f"{name}: int8 vs its own f32", e["fake"]["same_as_f32"] ==
                  e["attn-translate"]["same_as_f32"], e["fake"])
    check("probe: 4 configurations x 4 cells", len(res["probe"]) == 16, len(res["probe"]))
    check("latency: attn-translate only (the stand-in has no library)",
          {r["engine"] for r in res["latency"]} == {"attn-translate"} and
          res["peers"][0]["stream_error"])
    check("start-up rows", len(res["startup"]) == 4, len(res["startup"]))
    rep = bench.sbs_report(res)
    for s in ("### attn-translate ÷ CTranslate2", "| tok/s (higher) | tiny | f32 | 1 | 32 |",
              "### Throughput, batch 32", "### Batch-1 latency", "### Start-up", "8/8"):
        check(f"report has {s!r}", s in rep)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
done()

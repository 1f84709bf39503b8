#!/usr/bin/python3
"""Self-checks of the PyTorch reference (scripts/reference.py) and scripts/atmodel.py.

    /usr/bin/python3 tests/test_reference.py

Uses the tiny models in tests/fixtures/tiny/ (make them with scripts/make_tiny_models.py).
Prints `test_reference: N passed, N failed` and exits non-zero on failure.
"""

import json
import os
import shutil
import sys
import tempfile
import traceback

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.dont_write_bytecode = True
import atmodel  # noqa: E402
import reference as R  # noqa: E402

TINY = os.path.join(ROOT, "tests", "fixtures", "tiny")
MODELS = [n for n in ("A", "B", "C") if os.path.exists(os.path.join(TINY, n, "model.json"))]
LINES = ["a", "Hello.", "I want to go home.", "Café «crème» 東京 😀",
         "The cat sat on the mat and looked at the bird outside the window."]

passed = failed = 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
    except Exception:
        failed += 1
        print(f"FAIL {name}")
        traceback.print_exc()


def _models(dtype):
    return {n: R.load(os.path.join(TINY, n), dtype=dtype) for n in MODELS}


M64 = _models(torch.float64)
M32 = _models(torch.float32)


def test_f32_vs_f64(n):
    m32, m64 = M32[n], M64[n]
    for text in LINES:
        ids = R.encode(m64, text)
        c32, c64 = {}, {}
        e32 = R.forward_encoder(m32, ids, capture=c32)
        e64 = R.forward_encoder(m64, ids, capture=c64)
        dec = [m64.config["decoder_start_token_id"]] + ids[:5]
        l32 = R.forward_decoder(m32, e32, dec, capture=c32)
        l64 = R.forward_decoder(m64, e64, dec, capture=c64)
        for a, b in [(e32, e64), (l32, l64)] + list(zip(c32["decoder_layers"], c64["decoder_layers"])):
            err = (a.double() - b).abs().max().item() / max(1.0, b.abs().max().item())
            assert err < 1e-5, f"{n} {text!r}: float32 vs float64 differ by {err:.2e}"


def test_incremental_equals_full(n):
    m = M64[n]
    for text in LINES:
        ids = R.encode(m, text)
        for beam in (1, 4):
            a = R.beam_search(m, ids, beam=beam, n_best=beam, incremental=True)
            b = R.beam_search(m, ids, beam=beam, n_best=beam, incremental=False)
            assert [h.ids for h in a] == [h.ids for h in b], f"{n} {text!r} beam {beam}"
            for x, y in zip(a, b):
                assert abs(x.score - y.score) < 1e-9 and abs(x.logprob - y.logprob) < 1e-9
        # per-step logits: incremental decoder_step vs forward_decoder
        enc = R.forward_encoder(m, ids)
        dec = [m.config["decoder_start_token_id"]] + [(i * 7 + 3) % m.config["vocab_size"] for i in range(6)]
        full = R.forward_decoder(m, enc, dec)
        st = R.decoder_init(m, enc)
        for t, tok in enumerate(dec):
            step = R.decoder_step(m, st, [tok], None if t == 0 else [0])[0]
            assert torch.allclose(step, full[t], atol=1e-10), f"{n} position {t}"


def test_greedy_is_argmax(n):
    m = M64[n]
    for text in LINES:
        ids = R.encode(m, text)
        enc = R.forward_encoder(m, ids)
        max_len = R.max_target_length(m, len(ids))
        out, total = [], 0.0
        for t in range(1, max_len + 1):
            logits = R.forward_decoder(m, enc, [m.config["decoder_start_token_id"]] + out)[-1]
            logits[m.generation["bad_words_ids"]] = float("-inf")
            logp = logits - torch.logsumexp(logits, 0)
            v = int(torch.argmax(logp))
            total += float(logp[v])
            if v == m.eos:
                break
            out.append(v)
        h = R.beam_search(m, ids, beam=1)
        assert len(h) == 1 and h[0].ids == out, f"{n} {text!r}: {h[0].ids} != {out}"
        assert abs(h[0].logprob - total) < 1e-9


def test_never_pad(n):
    m = M64[n]
    for text in LINES:
        for beam in (1, 2, 4, 6):
            for h in R.beam_search(m, R.encode(m, text), beam=beam, n_best=beam):
                assert m.pad not in h.ids and m.eos not in h.ids


def test_fixture_translations(n):
    """The committed translations.json still matches the reference (ids exactly)."""
    path = os.path.join(TINY, n, "translations.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        fx = json.load(f)
    m = M64[n]
    for line in fx["lines"][:8]:
        assert R.encode(m, line["src"]) == line["src_ids"]
        for name, s in fx["settings"].items():
            hyps = R.beam_search(m, line["src_ids"], beam=s["beam"], n_best=s["n_best"],
                                 length_penalty=s["length_penalty"], factor=s["max_length_factor"],
                                 extra=s["max_length_extra"])
            assert [h.ids for h in hyps] == [h["ids"] for h in line[name]["hyps"]], (n, line["src"], name)


def test_atmodel_roundtrip():
    for n in MODELS:
        h, t = atmodel.read_model(os.path.join(TINY, n))
        with tempfile.TemporaryDirectory() as d:
            atmodel.write_model(d, h["config"], h["generation"], t, dtype="f32",
                                vocab={"format": "attn-translate-vocab", "version": 1, "tokens": []})
            h2, t2 = atmodel.read_model(d)
            assert h2["config"] == h["config"] and h2["generation"] == h["generation"]
            assert set(t2) == set(t)
            for k in t:
                assert np.array_equal(t[k], t2[k]), k
            for k, e in h2["tensors"].items():
                assert e["offset"] % 64 == 0 and e["offset"] >= 64
            with open(os.path.join(d, "model.bin"), "rb") as f:
                pre = f.read(64)
            assert pre[:8] == b"ATTNTRW\0" and pre[8:12] == b"\1\0\0\0" and not any(pre[12:])
    # f16 write widens back to the same f16-representable values
    h, t = atmodel.read_model(os.path.join(TINY, MODELS[0]))
    with tempfile.TemporaryDirectory() as d:
        atmodel.write_model(d, h["config"], h["generation"], t, dtype="f16")
        _, t2 = atmodel.read_model(d)
        for k in t:
            assert np.array_equal(t[k].astype(np.float16).astype(np.float32), t2[k]), k


def _expect_error(d, what):
    try:
        atmodel.read_model(d)
    except atmodel.FormatError as e:
        return str(e)
    raise AssertionError(f"read_model accepted {what}")


def test_atmodel_rejects():
    src = os.path.join(TINY, MODELS[0])
    with tempfile.TemporaryDirectory() as tmp:
        def fresh():
            d = os.path.join(tmp, "m")
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            for f in ("model.json", "model.bin"):
                shutil.copy(os.path.join(src, f), d)
            with open(os.path.join(d, "model.json")) as f:
                return d, json.load(f)

        def save(d, h):
            with open(os.path.join(d, "model.json"), "w") as f:
                json.dump(h, f)

        d, h = fresh()  # truncated model.bin
        with open(os.path.join(d, "model.bin"), "r+b") as f:
            f.truncate(h["weights"]["bytes"] - 100)
        _expect_error(d, "a truncated model.bin")

        d, h = fresh()  # truncated, with weights.bytes patched to match: tensor out of range
        with open(os.path.join(d, "model.bin"), "r+b") as f:
            f.truncate(h["weights"]["bytes"] - 100)
        h["weights"]["bytes"] -= 100
        save(d, h)
        msg = _expect_error(d, "a tensor past the end of model.bin")
        assert "outside" in msg, msg

        d, h = fresh()  # wrong shape
        name = "final_logits_bias"
        h["tensors"][name]["shape"] = [h["tensors"][name]["shape"][0] - 1]
        save(d, h)
        msg = _expect_error(d, "a wrong shape")
        assert name in msg and "shape" in msg, msg

        d, h = fresh()  # unknown tensor
        h["tensors"]["encoder.layers.99.fc1.bias"] = dict(h["tensors"]["final_logits_bias"])
        save(d, h)
        assert "unknown" in _expect_error(d, "an unknown tensor")

        d, h = fresh()  # missing tensor
        del h["tensors"]["final_logits_bias"]
        save(d, h)
        assert "missing" in _expect_error(d, "a missing tensor")

        d, h = fresh()  # misaligned offset
        h["tensors"]["final_logits_bias"]["offset"] += 4
        save(d, h)
        _expect_error(d, "a misaligned offset")

        d, h = fresh()  # bad magic
        with open(os.path.join(d, "model.bin"), "r+b") as f:
            f.write(b"XXXXXXXX")
        assert "magic" in _expect_error(d, "a bad magic")

        d, h = fresh()  # overlap
        names = list(h["tensors"])
        h["tensors"][names[1]]["offset"] = h["tensors"][names[0]]["offset"]
        h["tensors"][names[1]]["nbytes"] = h["tensors"][names[1]]["nbytes"]
        save(d, h)
        _expect_error(d, "overlapping tensors")

        d, h = fresh()  # NaN weight
        off = h["tensors"]["final_logits_bias"]["offset"]
        with open(os.path.join(d, "model.bin"), "r+b") as f:
            f.seek(off)
            f.write(np.array([np.nan], dtype=atmodel.DTYPES[h["tensors"]["final_logits_bias"]["dtype"]]).tobytes())
        assert "non-finite" in _expect_error(d, "a NaN weight")

        d, h = fresh()  # config field missing / bad id
        h["config"]["eos_token_id"] = h["config"]["vocab_size"]
        save(d, h)
        assert "eos_token_id" in _expect_error(d, "an id >= vocab_size")


def test_max_len_and_empty():
    m = M64[MODELS[0]]
    assert R.max_target_length(m, 2) == 14
    assert R.max_target_length(m, 1000) == min(m.generation["max_length"], m.config["max_position_embeddings"]) - 1
    h = R.translate(m, "")
    assert len(h) == 1 and h[0].ids == [] and h[0].text == "" and h[0].score == 0.0
    assert R.encode(m, "") == [m.eos]


def test_decode():
    m = M64[MODELS[0]]
    tok = m.vocab["tokens"]
    ids = [i for i, t in enumerate(tok) if t.startswith("\u2581") and len(t) > 2][:3]
    text = R.decode(m, [m.pad] + ids + [m.eos])
    assert text == "".join(tok[i] for i in ids).replace("\u2581", " ")[1:], text
    # as SentencePiece decodes the same pieces: an unk first keeps its spaces, leading
    # space-only pieces are all consumed
    sp = m.sp
    unk_piece = sp.IdToPiece(sp.unk_id())
    space = tok.index("\u2581") if "\u2581" in tok else None
    cases = [[m.unk], [m.unk] + ids, ids[:1] + [m.unk], [m.unk, m.unk] + ids[:1],
             [m.pad, m.unk, m.eos]] + ([[space, space] + ids, [space, m.unk] + ids]
                                       if space is not None else [])
    for c in cases:
        pieces = [unk_piece if i == m.unk else tok[i] for i in c if i not in (m.eos, m.pad)]
        assert R.decode(m, c) == sp.DecodePieces(pieces), (c, R.decode(m, c),
                                                           sp.DecodePieces(pieces))
    assert R.decode(m, [m.unk]) == " \u2047 "
    assert R.decode(m, [m.unk], {0: "\u2581\u00a3"}) == "\u00a3"


for n in MODELS:
    check(f"f32_vs_f64[{n}]", lambda n=n: test_f32_vs_f64(n))
    check(f"incremental_equals_full[{n}]", lambda n=n: test_incremental_equals_full(n))
    check(f"greedy_is_argmax[{n}]", lambda n=n: test_greedy_is_argmax(n))
    check(f"never_pad[{n}]", lambda n=n: test_never_pad(n))
    check(f"fixture_translations[{n}]", lambda n=n: test_fixture_translations(n))
def test_replace_unknowns():
    """replace_unknowns on hand-made attention: each generated unk takes the text of the
    unknown source piece with the largest head sum (first of equals); known source pieces
    are never candidates; without an unknown source piece, ' ⁇ ' stays."""
    m = M64[MODELS[0]]
    tok = m.vocab["tokens"]
    w = [i for i, t in enumerate(tok) if t.startswith("\u2581") and len(t) > 2][:2]
    src = [w[0], m.unk, w[1], m.unk, m.eos]
    pieces = [tok[w[0]], "\u00a3", tok[w[1]], "\u00e3", "</s>"]
    ids = [w[0], m.unk, m.unk, m.unk]
    att = np.zeros((2, len(ids) + 1, len(src)))
    att[:, 1, 1] = [0.3, 0.3]        # unk 1 -> position 1 (sum 0.6 vs 0.5)
    att[:, 1, 3] = [0.5, 0.0]
    att[:, 2, 2] = [0.9, 0.9]        # a known piece weighs most; unknowns tie -> position 1
    att[:, 2, 1] = [0.05, 0.0]
    att[:, 2, 3] = [0.0, 0.05]
    att[:, 3, 3] = [0.4, 0.4]        # unk 3 -> position 3
    h = R.Hyp(ids=ids, score=0.0, logprob=0.0, length=len(ids), finished=True,
              text=R.decode(m, ids), attention=att)
    out = R.replace_unknowns(m, src, pieces, [h])[0]
    want = tok[w[0]].replace("\u2581", " ")[1:] + "\u00a3\u00a3\u00e3"
    assert out.text == want, (out.text, want)
    assert out.ids == ids and out.attention is att
    plain = R.replace_unknowns(m, [w[0], w[1], m.eos], pieces[:2] + ["</s>"],
                               [R.Hyp(ids=ids, score=0.0, logprob=0.0, length=4, finished=True,
                                      text=h.text, attention=att[:, :, :3])])[0]
    assert plain.text == R.decode(m, ids) and "\u2047" in plain.text, plain.text


check("atmodel_roundtrip", test_atmodel_roundtrip)
check("atmodel_rejects", test_atmodel_rejects)
check("max_len_and_empty", test_max_len_and_empty)
check("decode", test_decode)
check("replace_unknowns", test_replace_unknowns)

print(f"test_reference: {passed} passed, {failed} failed")
sys.exit(1 if failed or not MODELS else 0)

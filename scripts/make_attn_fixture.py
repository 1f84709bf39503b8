#!/usr/bin/python3
"""Write tests/fixtures/tiny/A/attention.json: the cross-attention weights of the PyTorch
reference (scripts/reference.py, float64), never of the C engine.

    /usr/bin/python3 scripts/make_attn_fixture.py [--dir tests/fixtures/tiny/A]

For a few lines of inputs.txt (the empty line, one token, short sentences, the accented
line, emoji, and the 200-odd-token line) and two settings, greedy (beam 1) and beam 4
(both n_best 1, length penalty 1.0, max length 2.0 x source + 10), it stores per line:

    src, src_ids (eos last), and per setting the best hypothesis: ids (eos excluded),
    finished, score, and attention [H][rows][S] of the last decoder layer, all heads;
    rows = generated tokens including eos when finished (row r = the distribution over
    the S source positions when token r was predicted). The empty line runs no model:
    attention null.

Numbers are float64 rounded to 8 significant digits. Before writing, every matrix is
checked three ways: the incremental search's rows (carried along the beam back-pointers)
equal the full-recompute search's, equal a teacher-forced forward_decoder over the
returned ids, and every row sums to 1. The script is deterministic: rerunning it
reproduces the file byte for byte.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference as R  # noqa: E402

# indices into inputs.txt (scripts/make_fixtures.py INPUTS)
LINES = [0, 1, 2, 3, 4, 5, 13, 15, 25]
SETTINGS = {
    "greedy": dict(beam=1, n_best=1, length_penalty=1.0, max_length_factor=2.0, max_length_extra=10),
    "beam4": dict(beam=4, n_best=1, length_penalty=1.0, max_length_factor=2.0, max_length_extra=10),
}
MAX_BYTES = 200_000


def round8(x):
    if isinstance(x, np.ndarray):
        x = x.tolist()
    if isinstance(x, list):
        return [round8(v) for v in x]
    return float(f"{x:.8g}")


def check_attention(m, src_ids, h, layer, s, other):
    """Asserts the three properties listed in the module docstring."""
    a = h.attention
    rows = len(h.ids) + (1 if h.finished else 0)
    H = m.config["decoder_attention_heads"]
    assert a.shape == (H, rows, len(src_ids)), (a.shape, rows)
    assert np.abs(a.sum(axis=-1) - 1).max() < 1e-12
    assert np.abs(a - other.attention).max() < 1e-10, "incremental vs full recompute"
    enc = R.forward_encoder(m, src_ids)
    dec = [m.config["decoder_start_token_id"]] + h.ids   # row r is fed dec[r]
    cap = {}
    R.forward_decoder(m, enc, dec[:rows], capture=cap)
    tf = cap["cross_attention"][layer].to(torch.float64).numpy()
    assert np.abs(a - tf).max() < 1e-10, "beam rows vs teacher-forced recompute"


def make(model_dir):
    torch.set_num_threads(1)
    m = R.load(model_dir, dtype=torch.float64)
    with open(os.path.join(model_dir, "inputs.txt"), encoding="utf-8") as f:
        inputs = f.read().split("\n")[:-1]
    layer = m.config["decoder_layers"] - 1
    out_lines = []
    for i in LINES:
        text = inputs[i]
        src_ids = R.encode(m, text)
        entry = {"index": i, "src": text, "src_ids": src_ids}
        for name, s in SETTINGS.items():
            kw = dict(beam=s["beam"], n_best=s["n_best"], length_penalty=s["length_penalty"],
                      factor=s["max_length_factor"], extra=s["max_length_extra"], attn_layer=layer)
            h = R.beam_search(m, src_ids, **kw)[0]
            if h.attention is not None:
                full = R.beam_search(m, src_ids, incremental=False, **kw)[0]
                assert full.ids == h.ids
                check_attention(m, src_ids, h, layer, s, full)
            entry[name] = {"ids": h.ids, "finished": h.finished, "score": h.score,
                           "text": h.text,
                           "attention": None if h.attention is None else round8(h.attention)}
        out_lines.append(entry)
    doc = {
        "model": os.path.basename(os.path.normpath(model_dir)),
        "generator": "scripts/reference.py, float64 (scripts/make_attn_fixture.py)",
        "precision": "float64 rounded to 8 significant digits",
        "layer": layer,
        "heads": m.config["decoder_attention_heads"],
        "shape": "attention[head][row][source position]; rows = generated tokens incl. eos when finished",
        "settings": SETTINGS,
        "lines": out_lines,
    }
    path = os.path.join(model_dir, "attention.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    size = os.path.getsize(path)
    for e in out_lines:
        print(f"line {e['index']}: S={len(e['src_ids'])} " + " ".join(
            f"{n} rows={0 if e[n]['attention'] is None else len(e[n]['attention'][0])}"
            for n in SETTINGS))
    print(f"{path}: {size} bytes")
    if size > MAX_BYTES:
        print(f"{path}: larger than {MAX_BYTES} bytes", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(HERE, "..", "tests", "fixtures", "tiny", "A"))
    a = ap.parse_args(argv)
    return make(a.dir)


if __name__ == "__main__":
    sys.exit(main())

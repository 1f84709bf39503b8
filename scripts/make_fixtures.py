#!/usr/bin/python3
"""Write the golden fixtures of the tiny models, computed by scripts/reference.py in
float64 (never by the C engine).

    /usr/bin/python3 scripts/make_fixtures.py [--dir tests/fixtures/tiny] [--only A,B]

For each model directory DIR/{A,B,C} it writes:

    inputs.txt         the source lines (the same for every model)
    translations.json  per line: src, src_ids (eos last), max_len, and for every decoding
                       setting (greedy, beam4, beam3_lp0.6) the hypotheses: ids (eos
                       excluded), text, score, logprob, finished; plus the smallest
                       decision margin of the search (see reference.decision_margin)
    activations.json   for a few lines: src_ids, encoder_embed, encoder_layers,
                       decoder_ids (start + greedy ids + eos, cut to the first
                       MAX_DECODER_IDS = 4: the teacher-forced decoder input),
                       decoder_embed, decoder_layers, logits (final_logits_bias included,
                       bad_words_ids not masked); numbers rounded to 7 significant digits

An empty (or whitespace-only) line is not run through the model: one empty hypothesis,
score 0, logprob 0, src_ids [eos].

The script fails if any decision margin is below MIN_MARGIN (1e-4): a float32 engine
must then reproduce every id exactly.
"""

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference as R  # noqa: E402

MIN_MARGIN = 1e-4

SETTINGS = {
    "greedy": dict(beam=1, n_best=1, length_penalty=1.0, max_length_factor=2.0, max_length_extra=10),
    "beam4": dict(beam=4, n_best=4, length_penalty=1.0, max_length_factor=2.0, max_length_extra=10),
    "beam3_lp0.6": dict(beam=3, n_best=2, length_penalty=0.6, max_length_factor=2.0, max_length_extra=10),
}

LONG_LINE = " ".join([
    "The committee met on Tuesday to discuss the budget for the coming year, and after a",
    "long debate the members agreed that the library, the swimming pool and the old train",
    "station should all be repaired before winter.",
    "My grandmother, who is ninety-two years old, still walks to the market every morning",
    "to buy fresh bread, cheese, apples and flowers for her neighbours.",
    "Please remember to close the windows, turn off the lights and feed the cat before",
    "you leave the house tomorrow.",
])

INPUTS = [
    "",                                            # empty: no model run
    "a",                                           # one token
    "Hello.",
    "How are you?",
    "I want to go home.",
    "Where is the station?",
    "She has three brothers and two sisters.",
    "The cat sat on the mat and looked at the bird outside the window.",
    "Tom doesn't like to eat vegetables, but he loves fruit.",
    "Can you help me carry these boxes upstairs, please?",
    "We'll see each other again next week in Paris.",
    "It's 7:30 p.m. and the shop closes at 8.",
    "This is a test of the emergency broadcast system, which is only a test.",
    "Café crème à l'école, naïve façade.",
    "«Bonjour», dit-il — “quotes” and dashes…",
    "I ❤️ Paris 😀!",
    "東京は大きい",                                  # CJK: unknown pieces
    "ＡＢＣ１２３ full-width",                         # NFKC folds full-width forms
    "  leading and trailing spaces  ",
    "multiple     spaces\tand\ttabs",
    "   ",                                         # whitespace only: like empty
    "no\u00a0break\u00a0space and thin\u2009space",
    "UPPER CASE SHOUTING!!!",
    "numbers 1234567890 and symbols #@%&*",
    "The weather is nice today, so let's go for a walk in the park.",
    LONG_LINE,                                     # >= 200 tokens
]

# lines (indices into INPUTS) whose activations are stored: the one-token line, two
# short sentences, non-ASCII, and a 40-odd-token sentence (the >= 200-token line would
# make the file too big). The teacher-forced decoder input is cut to MAX_DECODER_IDS
# positions (start token + the first greedy ids) to keep logits [T, V] small.
ACTIVATION_LINES = [1, 2, 4, 13, 12]
MAX_DECODER_IDS = 4


def round7(x):
    """Nested lists of floats rounded to 7 significant digits."""
    if isinstance(x, torch.Tensor):
        x = x.tolist()
    if isinstance(x, list):
        return [round7(v) for v in x]
    return float(f"{x:.7g}")


def translate_line(m, text):
    src_ids = R.encode(m, text)
    entry = {"src": text, "src_ids": src_ids,
             "max_len": R.max_target_length(m, len(src_ids)) if len(src_ids) > 1 else 0}
    for name, s in SETTINGS.items():
        trace = {}
        hyps = R.beam_search(m, src_ids, beam=s["beam"], n_best=s["n_best"],
                             length_penalty=s["length_penalty"], factor=s["max_length_factor"],
                             extra=s["max_length_extra"], trace=trace)
        margin = float("inf")
        if trace:
            margin = min([g["gap"] for g in trace["margins"]] + [trace["final_gap"]])
        entry[name] = {
            "hyps": [{"ids": h.ids, "text": h.text, "score": h.score, "logprob": h.logprob,
                      "finished": h.finished} for h in hyps],
            "min_margin": margin if margin != float("inf") else None,
        }
    return entry


def activations(m, text, greedy_ids, finished):
    src_ids = R.encode(m, text)
    cap = {}
    enc = R.forward_encoder(m, src_ids, capture=cap)
    dec_ids = [m.config["decoder_start_token_id"]] + greedy_ids + ([m.eos] if finished else [])
    dec_ids = dec_ids[:MAX_DECODER_IDS]
    R.forward_decoder(m, enc, dec_ids, capture=cap)
    return {
        "src": text,
        "src_ids": src_ids,
        "encoder_embed": round7(cap["encoder_embed"]),
        "encoder_layers": [round7(x) for x in cap["encoder_layers"]],
        "decoder_ids": dec_ids,
        "decoder_embed": round7(cap["decoder_embed"]),
        "decoder_layers": [round7(x) for x in cap["decoder_layers"]],
        "logits": round7(cap["logits"]),
    }


def dump(obj, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        f.write("\n")


def make(model_dir, name, weights="f32"):
    torch.set_num_threads(1)
    m = R.load(model_dir, dtype=torch.float64, weights=weights)
    if weights != "f32":
        return make_quantized(m, model_dir, name, weights)
    with open(os.path.join(model_dir, "inputs.txt"), "w", encoding="utf-8") as f:
        for line in INPUTS:
            assert "\n" not in line and "\r" not in line
            f.write(line + "\n")
    lines = [translate_line(m, text) for text in INPUTS]
    margins = [e[s]["min_margin"] for e in lines for s in SETTINGS if e[s]["min_margin"] is not None]
    min_margin = min(margins)
    dump({
        "model": name,
        "generator": "scripts/reference.py, float64 (scripts/make_fixtures.py)",
        "settings": SETTINGS,
        "empty_input": "a line that encodes to no pieces gives one empty hypothesis, score 0, no model run",
        "min_decision_margin": min_margin,
        "lines": lines,
    }, os.path.join(model_dir, "translations.json"))
    acts = []
    for i in ACTIVATION_LINES:
        g = lines[i]["greedy"]["hyps"][0]
        acts.append(activations(m, INPUTS[i], g["ids"], g["finished"]))
    dump({"model": name, "precision": "float64 rounded to 7 significant digits",
          "lines": acts}, os.path.join(model_dir, "activations.json"))

    # report
    print(f"{name}: src lengths {[len(e['src_ids']) for e in lines]}")
    print(f"{name}: greedy lengths {[len(e['greedy']['hyps'][0]['ids']) for e in lines]}"
          f" finished {sum(e['greedy']['hyps'][0]['finished'] for e in lines)}/{len(lines)}")
    print(f"{name}: beam4 lengths {[len(e['beam4']['hyps'][0]['ids']) for e in lines]}")
    for s in SETTINGS:
        ms = [e[s]["min_margin"] for e in lines if e[s]["min_margin"] is not None]
        print(f"{name}: {s} min decision margin {min(ms):.3e}")
    for f in ("translations.json", "activations.json"):
        print(f"{name}: {f} {os.path.getsize(os.path.join(model_dir, f))} bytes")
    bad = [(i, s, e[s]["min_margin"]) for i, e in enumerate(lines) for s in SETTINGS
           if e[s]["min_margin"] is not None and e[s]["min_margin"] < MIN_MARGIN]
    if bad:
        print(f"{name}: DECISION MARGIN BELOW {MIN_MARGIN}: {bad}", file=sys.stderr)
        return 1
    return 0


def make_quantized(m, model_dir, name, weights):
    """translations_<weights>.json: the same lines and settings with the reference's
    f16 or int8 linear layers (what the engine's --dtype computes)."""
    lines = [translate_line(m, text) for text in INPUTS]
    margins = [e[s]["min_margin"] for e in lines for s in SETTINGS if e[s]["min_margin"] is not None]
    out = os.path.join(model_dir, f"translations_{weights}.json")
    dump({
        "model": name,
        "weights": weights,
        "generator": f"scripts/reference.py --weights {weights}, float64 (scripts/make_fixtures.py)",
        "settings": SETTINGS,
        "min_decision_margin": min(margins),
        "lines": lines,
    }, out)
    print(f"{name} {weights}: min decision margin {min(margins):.3e}, {os.path.getsize(out)} bytes")
    if min(margins) < MIN_MARGIN:
        print(f"{name} {weights}: DECISION MARGIN BELOW {MIN_MARGIN}", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(HERE, "..", "tests", "fixtures", "tiny"))
    ap.add_argument("--only", default="A,B,C")
    ap.add_argument("--weights", default="f32,f16,int8",
                    help="which fixtures: f32 (translations.json, activations.json), "
                         "f16 and int8 (translations_<w>.json)")
    a = ap.parse_args(argv)
    rc = 0
    for name in a.only.split(","):
        for w in a.weights.split(","):
            rc |= make(os.path.join(a.dir, name), name, w)
    return rc


if __name__ == "__main__":
    sys.exit(main())

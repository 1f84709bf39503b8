#!/usr/bin/python3
"""Golden outputs of the shipped model, made by the PyTorch reference (float64).

    /usr/bin/python3 scripts/make_shipped_fixture.py [--model models/en-fr]
        [--out tests/fixtures/shipped/expected.json]

Translates the fixed sentences below with scripts/reference.py on the shipped model's own
weights (read as the engine's default --dtype reads them: f16 widened to f32), greedy and
beam 4 with 2-best, and writes their token ids, texts (with the unknown tokens replaced as
the engine's CLI does by default, reference.replace_unknowns, and as " ⁇ ": text_keep)
and scores, the sha256 of model.bin
(tests/test_shipped.py refuses a fixture made for other weights) and each line's decision
margin (the smallest gap between candidate scores its outcome depended on). Run it again
whenever models/en-fr changes; the fixture is never made from the C engine's output.
"""

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import atmodel  # noqa: E402
import reference  # noqa: E402

SENTENCES = [
    "The cat is sleeping on the sofa.",
    "Hello.",
    "Good night.",
    "I am a small frog.",
    "Where is the train station?",
    "The children are playing in the garden.",
    "Click the button to save the document.",
    "This package contains the documentation.",
    "She bought three apples and two oranges yesterday.",
    "The weather will be sunny tomorrow in Paris.",
    "If the file does not exist, an error is returned.",
    "We need to talk about the meeting next week.",
    # characters the vocabulary lacks (unknown pieces), which the engine's CLI copies from
    # the source by attention (--keep-unknowns prints " ⁇ ")
    "The former mayor of São Paulo wrote the bill.",
    "It costs £27 million.",
    "The ticket costs €5 and the room is at 20°C.",
    "Müller and Öztürk met in Málaga.",
]

SETTINGS = [("greedy", 1, 1), ("beam4", 4, 2)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(HERE)
    ap.add_argument("--model", default=os.path.join(root, "models", "en-fr"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "shipped", "expected.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    m = reference.load(a.model, dtype=torch.float64)
    out = {"generator": "scripts/make_shipped_fixture.py (scripts/reference.py, float64)",
           "model_bin_sha256": atmodel.sha256_file(os.path.join(a.model, "model.bin")),
           "settings": {}}
    for name, beam, n_best in SETTINGS:
        rows = []
        for text in SENTENCES:
            trace = {}
            src_ids = reference.encode(m, text)
            hyps = reference.beam_search(m, src_ids, beam=beam, n_best=n_best, trace=trace,
                                         attn_layer=m.config["decoder_layers"] - 1)
            replaced = reference.replace_unknowns(m, src_ids, m.sp.EncodeAsPieces(text), hyps)
            margin = min([g["gap"] for g in trace.get("margins", [])] + [trace.get("final_gap", float("inf"))])
            rows.append({"source": text, "margin": margin if margin != float("inf") else None,
                         "hyps": [{"ids": h.ids, "text": r.text, "text_keep": h.text, "score": h.score}
                                  for h, r in zip(hyps, replaced)]})
        out["settings"][name] = {"beam": beam, "n_best": n_best, "lines": rows}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {a.out}")
    for name in out["settings"]:
        for r in out["settings"][name]["lines"][:3]:
            print(f"  {name}: {r['source']} -> {r['hyps'][0]['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Export a scripts/train.py checkpoint to an attn-translate model directory.

    /usr/bin/python3 scripts/export.py CHECKPOINT OUT_DIR [--dtype f32|f16|int8]
        [--layout packed|rows] [--num-beams 4] [--max-length 256]

Writes OUT_DIR/model.json + model.bin (atmodel.write_model), vocab.json (spm_vocab from the
joint SentencePiece model the checkpoint was trained with: tokens = its pieces, so model
ids are SentencePiece ids) and source.spm / target.spm copies of that model (the PyTorch
reference tokenizes with source.spm; the C loader ignores them). The SentencePiece model is
looked up as CHECKPOINT_DIR/<ckpt["spm"]> (data/spm.model) unless --spm is given.
Generation defaults: num_beams 4, max_length 256, length_penalty 1.0, bad_words_ids [pad].
--layout packed (the default) writes format version 2, whose weight matrices the engine
uses in place (the fastest start-up); --layout rows writes version 1, which builds from
before version 2 also read (docs/FORMAT.md).
"""

import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import atmodel  # noqa: E402
import spm_vocab  # noqa: E402


def export(ckpt_path, out_dir, dtype="f32", spm_path=None, num_beams=4, max_length=256,
           layout="packed"):
    ck = torch.load(ckpt_path, map_location="cpu")
    cfg = dict(ck["config"])
    if spm_path is None:
        spm_path = os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), ck.get("spm", "data/spm.model"))
    spm = spm_vocab.read_spm(spm_path)
    tokens = [p[0] for p in spm["pieces"]]
    if len(tokens) != cfg["vocab_size"]:
        raise SystemExit(f"{spm_path}: {len(tokens)} pieces but the model has vocab_size {cfg['vocab_size']}")
    vocab = spm_vocab.make_vocab(tokens, cfg["pad_token_id"], cfg["eos_token_id"],
                                 cfg["unk_token_id"], spm, spm)
    expected = atmodel.expected_tensors(cfg)
    state = ck["model"]
    tensors = {}
    for name in expected:
        if name not in state:
            raise SystemExit(f"{ckpt_path}: no tensor {name}")
        tensors[name] = state[name].detach().float().numpy()
    extra = set(state) - set(expected)
    if extra:
        raise SystemExit(f"{ckpt_path}: unexpected tensors {sorted(extra)}")
    generation = {"num_beams": num_beams, "max_length": max_length, "length_penalty": 1.0,
                  "bad_words_ids": [cfg["pad_token_id"]]}
    atmodel.write_model(out_dir, cfg, generation, tensors, dtype=dtype, vocab=vocab,
                        extra_files={"source.spm": spm_path, "target.spm": spm_path},
                        layout=layout)
    return out_dir


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--dtype", choices=atmodel.WRITE_DTYPES, default="f32",
                    help="f32, f16 (half the size) or int8 (i8 linear-layer weights with per-row scales, f32 rest)")
    ap.add_argument("--layout", choices=atmodel.LAYOUTS, default="packed",
                    help="packed (format version 2, loads fastest; default) or rows (version 1)")
    ap.add_argument("--spm", default=None, help="joint SentencePiece model (default: from the checkpoint)")
    ap.add_argument("--num-beams", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    a = ap.parse_args(argv)
    export(a.checkpoint, a.out_dir, a.dtype, a.spm, a.num_beams, a.max_length, a.layout)
    print(f"wrote {a.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

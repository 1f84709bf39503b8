#!/usr/bin/python3
"""A Transformer-base-sized random model for `make bench` (never committed).

    make_bench_model.py OUT_DIR [--vocab opus|tiny] [--seed 0] [--layout packed|rows] [--force]

Architecture (Marian / OPUS-MT's transformer-base): 6+6 layers, d_model 512, 8 heads,
FFN 2048, swish, shared and tied embeddings, scale_embedding, 512 positions.

Vocabulary:
  opus  the real OPUS-MT en-fr vocabulary (59,514 ids), vocab.json built exactly as
        scripts/convert_marian.py builds it from ../shared/models/opus-mt-en-fr-tokenizer
        (source.spm + target.spm + Marian's vocab.json); source.spm is copied beside it
        for the PyTorch reference. Tokenization and the output projection then cost what
        they cost in the real model.  (default)
  tiny  the 500-piece vocabulary of tests/fixtures/tiny/A, same layers: isolates the
        cost of the layers from the [V x d] output projection.

Weights: N(0, 0.02) for every matrix and the embedding, zero biases, LayerNorm weights 1,
drawn with numpy's default_rng(seed). final_logits_bias[eos] = -1e4, so eos never wins:
with `--max-length 1+0` every output has exactly as many tokens as its source (eos
included), whatever the engine, beam or batch, so timings compare.

--layout packed (the default, as scripts/export.py and convert_marian.py write models)
stores the weight matrices as the kernels read them (format version 2, docs/FORMAT.md), so
loading is a memory map plus the checks; --layout rows writes the version-1 row-major file,
which the engine repacks at every load.

About 300 MB of f32 (opus). The directory is reused when OUT_DIR/bench-params.json
records the same parameters (and model.bin has the recorded size); --force rewrites it.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import atmodel  # noqa: E402

OPUS = os.path.normpath(os.path.join(ROOT, "..", "shared", "models", "opus-mt-en-fr-tokenizer"))
TINY = os.path.join(ROOT, "tests", "fixtures", "tiny", "A")
RECIPE = 1  # bump when the weights recipe changes, to invalidate caches


def vocabulary(kind):
    """(vocab dict, V, pad, eos, unk, source.spm path)."""
    if kind == "opus":
        import convert_marian
        with open(os.path.join(OPUS, "config.json"), encoding="utf-8") as f:
            hf = json.load(f)
        V, pad, eos = hf["vocab_size"], hf["pad_token_id"], hf["eos_token_id"]
        vocab, unk = convert_marian.build_vocab(OPUS, V, pad, eos)
        return vocab, V, pad, eos, unk, os.path.join(OPUS, "source.spm")
    with open(os.path.join(TINY, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    return (vocab, len(vocab["tokens"]), vocab["pad_id"], vocab["eos_id"], vocab["unk_id"],
            os.path.join(TINY, "source.spm"))


def params_of(a):
    return {"recipe": RECIPE, "vocab": a.vocab, "seed": a.seed, "d_model": 512, "layers": 6,
            "heads": 8, "ffn": 2048, "layout": a.layout}


def cached(out, params):
    try:
        with open(os.path.join(out, "bench-params.json"), encoding="utf-8") as f:
            saved = json.load(f)
        return (saved.get("params") == params and
                os.path.getsize(os.path.join(out, "model.bin")) == saved.get("model_bin_bytes"))
    except (OSError, ValueError):
        return False


def make(out, vocab_kind="opus", seed=0, force=False, quiet=False, layout="packed"):
    """Write (or reuse) the bench model in `out`. Returns the directory."""
    a = argparse.Namespace(vocab=vocab_kind, seed=seed, layout=layout)
    params = params_of(a)
    if not force and cached(out, params):
        return out
    vocab, V, pad, eos, unk, spm = vocabulary(vocab_kind)
    d, F, L, H = params["d_model"], params["ffn"], params["layers"], params["heads"]
    config = dict(vocab_size=V, d_model=d, encoder_layers=L, decoder_layers=L,
                  encoder_attention_heads=H, decoder_attention_heads=H, encoder_ffn_dim=F,
                  decoder_ffn_dim=F, activation_function="swish", max_position_embeddings=512,
                  scale_embedding=True, share_encoder_decoder_embeddings=True,
                  tie_word_embeddings=True, pad_token_id=pad, eos_token_id=eos,
                  unk_token_id=unk, decoder_start_token_id=pad, layer_norm_eps=1e-5)
    generation = dict(num_beams=4, max_length=512, length_penalty=1.0, bad_words_ids=[pad])
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in atmodel.expected_tensors(config).items():
        if name.endswith("layer_norm.weight"):
            t = np.ones(shape, np.float32)
        elif name.endswith(".bias") or name == "final_logits_bias":
            t = np.zeros(shape, np.float32)
        else:
            t = rng.standard_normal(shape, dtype=np.float32)
            t *= np.float32(0.02)
        tensors[name] = t
    tensors["final_logits_bias"][eos] = -1e4  # eos never wins: output length = max_len
    if os.path.exists(os.path.join(out, "bench-params.json")):
        os.remove(os.path.join(out, "bench-params.json"))  # invalid while rewriting
    header = atmodel.write_model(out, config, generation, tensors, "f32", vocab,
                                 extra_files={"source.spm": spm}, layout=layout)
    with open(os.path.join(out, "bench-params.json"), "w", encoding="utf-8") as f:
        json.dump({"params": params, "model_bin_bytes": header["weights"]["bytes"]}, f)
        f.write("\n")
    if not quiet:
        n = sum(int(np.prod(t.shape)) for t in tensors.values())
        print(f"make_bench_model: {out}: {n:,} parameters, vocab {V:,} ({vocab_kind}), "
              f"seed {seed}, model.bin {header['weights']['bytes'] / 2**20:.0f} MiB",
              file=sys.stderr)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="output directory (use /tmp: ~300 MB)")
    ap.add_argument("--vocab", choices=("opus", "tiny"), default="opus")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout", choices=atmodel.LAYOUTS, default="packed",
                    help="packed (format version 2, the default) or rows (version 1)")
    ap.add_argument("--force", action="store_true", help="rewrite even if cached")
    a = ap.parse_args(argv)
    make(a.out, a.vocab, a.seed, a.force, layout=a.layout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A Transformer-base-sized random model for benchmarks (never committed).

6+6 layers, d_model 512, 8 heads, FFN 2048, swish, shared and tied embeddings, and the
real OPUS-MT vocabulary (59,514 pieces, from ../shared/models/opus-mt-en-fr-tokenizer),
so tokenization and the output projection cost what they cost in the real model.
final_logits_bias[eos] = -1e4: eos is never produced, so with `--max-length 1+0` every
output has exactly as many tokens as its source, and timings compare across engines.

Usage: make_bench_model.py OUT_DIR [--seed 0]   (about 300 MB of f32 weights)
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import atmodel  # noqa: E402
import convert_marian  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPUS = os.path.join(ROOT, "..", "shared", "models", "opus-mt-en-fr-tokenizer")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    stamp = os.path.join(a.out, "bench-seed")
    if os.path.exists(stamp) and open(stamp).read() == str(a.seed):
        return
    V, d, F, L = 59514, 512, 2048, 6
    config = dict(vocab_size=V, d_model=d, encoder_layers=L, decoder_layers=L,
                  encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=F,
                  decoder_ffn_dim=F, activation_function="swish", max_position_embeddings=512,
                  scale_embedding=True, share_encoder_decoder_embeddings=True,
                  tie_word_embeddings=True, pad_token_id=59513, eos_token_id=0, unk_token_id=1,
                  decoder_start_token_id=59513, layer_norm_eps=1e-5)
    generation = dict(num_beams=4, max_length=512, length_penalty=1.0, bad_words_ids=[59513])
    rng = np.random.default_rng(a.seed)
    tensors = {}
    for name, shape in atmodel.expected_tensors(config).items():
        if name.endswith("layer_norm.weight"):
            t = np.ones(shape, np.float32)
        elif name.endswith(".bias") or name == "final_logits_bias":
            t = np.zeros(shape, np.float32)
        else:
            t = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
        tensors[name] = t
    tensors["final_logits_bias"][0] = -1e4  # eos (id 0) never wins
    vocab, _ = convert_marian.build_vocab(OPUS, V, 59513, 0)
    os.makedirs(a.out, exist_ok=True)
    atmodel.write_model(a.out, config, generation, tensors, "f32", vocab)
    shutil.copy(os.path.join(OPUS, "source.spm"), os.path.join(a.out, "source.spm"))
    open(stamp, "w").write(str(a.seed))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Create the tiny random-weight test models under tests/fixtures/tiny/{A,B,C}/.

    /usr/bin/python3 scripts/make_tiny_models.py [--out tests/fixtures/tiny]
        [--tatoeba /work/shared/data/train/tatoeba]

Each model gets a small unigram SentencePiece vocabulary trained with Debian's
`spm_train` on every 50th line of the Tatoeba English and French training text
(CC-BY 2.0 FR), stored in the model directory as `source.spm` (an extra file that the
C loader ignores; the reference tokenizes with it), and vocab.json built by
scripts/spm_vocab.py. Special ids: <unk>=0, </s>=1 (eos), <pad>=2 (pad, decoder start,
the only bad word).

    A  shared + tied embeddings, swish, scale_embedding, f32, d 32, 4 heads, ffn 64,
       2+2 layers, nmt_nfkc normalizer
    B  separate encoder/decoder embeddings, untied lm_head, gelu, no embedding scale,
       f16 storage, d 32, 2 heads, 3 encoder (ffn 48) + 1 decoder (ffn 80) layers,
       identity normalizer
    C  shared but untied embeddings, relu, scale_embedding, f32, d 16, 2 heads, 1+2
       layers, max_position_embeddings 256 and generation max_length 64 (the length
       caps bind), identity normalizer

Weights are normal(0, std) from a fixed numpy seed per model; final_logits_bias[eos]
is raised so that greedy outputs end with eos at varied lengths. Everything is
deterministic: running the script twice gives identical files.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import atmodel  # noqa: E402

UNK, EOS, PAD = 0, 1, 2

MODELS = {
    "A": dict(
        seed=1234, vocab_size=500, normalization="nmt_nfkc", dtype="f32",
        emb_std=0.3, std=0.3, out_std=0.1, final_ln_gain=-3.0, eos_bias=13.5,
        eos_emb_scale=0.2,
        config=dict(d_model=32, encoder_layers=2, decoder_layers=2,
                    encoder_attention_heads=4, decoder_attention_heads=4,
                    encoder_ffn_dim=64, decoder_ffn_dim=64, activation_function="swish",
                    max_position_embeddings=512, scale_embedding=True,
                    share_encoder_decoder_embeddings=True, tie_word_embeddings=True),
        generation=dict(num_beams=4, max_length=512, length_penalty=1.0),
    ),
    "B": dict(
        seed=5678, vocab_size=600, normalization="identity", dtype="f16",
        emb_std=1.0, std=0.3, out_std=0.1, final_ln_gain=1.0, eos_bias=16.5,
        eos_emb_scale=0.2,
        config=dict(d_model=32, encoder_layers=3, decoder_layers=1,
                    encoder_attention_heads=2, decoder_attention_heads=2,
                    encoder_ffn_dim=48, decoder_ffn_dim=80, activation_function="gelu",
                    max_position_embeddings=512, scale_embedding=False,
                    share_encoder_decoder_embeddings=False, tie_word_embeddings=False),
        generation=dict(num_beams=4, max_length=512, length_penalty=1.0),
    ),
    "C": dict(
        seed=91012, vocab_size=400, normalization="identity", dtype="f32",
        emb_std=0.4, std=0.4, out_std=0.1, final_ln_gain=3.0, eos_bias=13.0,
        eos_emb_scale=0.2,
        config=dict(d_model=16, encoder_layers=1, decoder_layers=2,
                    encoder_attention_heads=2, decoder_attention_heads=2,
                    encoder_ffn_dim=32, decoder_ffn_dim=24, activation_function="relu",
                    max_position_embeddings=256, scale_embedding=True,
                    share_encoder_decoder_embeddings=True, tie_word_embeddings=False),
        generation=dict(num_beams=3, max_length=64, length_penalty=0.6),
    ),
}


def train_spm(tatoeba, vocab_size, normalization, every=50):
    """Train a unigram SentencePiece model; returns the .spm bytes. Runs in a temporary
    directory with fixed relative file names so that the bytes are reproducible."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "corpus.txt"), "w", encoding="utf-8") as out:
            for lang in ("en", "fr"):
                with open(os.path.join(tatoeba, f"tatoeba.{lang}"), encoding="utf-8") as f:
                    for i, line in enumerate(f):
                        if i % every == 0:
                            out.write(line)
        cmd = ["spm_train", "--input=corpus.txt", "--model_prefix=spm",
               f"--vocab_size={vocab_size}", "--model_type=unigram",
               f"--normalization_rule_name={normalization}",
               f"--unk_id={UNK}", f"--eos_id={EOS}", f"--pad_id={PAD}", "--bos_id=-1",
               "--num_threads=1", "--random_seed=1"]
        subprocess.run(cmd, cwd=tmp, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        with open(os.path.join(tmp, "spm.model"), "rb") as f:
            return f.read()


def make_vocab(spm_path):
    import spm_vocab
    spm = spm_vocab.read_spm(spm_path)
    tokens = [p[0] for p in spm["pieces"]]
    return spm_vocab.make_vocab(tokens, PAD, EOS, UNK, spm, spm)


def random_tensors(config, spec):
    """Random weights that give non-degenerate outputs:
    - embeddings / lm_head normal(0, emb_std), the eos row scaled by eos_emb_scale (so
      that the eos logit is mostly final_logits_bias[eos]);
    - out_proj and fc2 normal(0, out_std) (small: otherwise the constant part of the
      sublayer outputs dominates and every position collapses to the same vector);
      other matrices normal(0, std); biases normal(0, 0.1); LayerNorm gains 1 + N(0, 0.1);
    - the last decoder final LayerNorm gain multiplied by final_ln_gain (negative for
      the tied model A: penalises copying the input token, which random tied models
      otherwise repeat forever; its magnitude sharpens the output distribution);
    - final_logits_bias normal(0, 0.1) with eos raised by eos_bias, tuned so that greedy
      outputs end with eos at varied lengths and some reach max_len."""
    rng = np.random.default_rng(spec["seed"])
    out = {}
    last_ln = f"decoder.layers.{config['decoder_layers'] - 1}.final_layer_norm.weight"
    for name, shape in atmodel.expected_tensors(config).items():
        if name in ("shared.weight", "encoder.embed_tokens.weight",
                    "decoder.embed_tokens.weight", "lm_head.weight"):
            t = rng.normal(0.0, spec["emb_std"], shape)
            t[EOS] *= spec.get("eos_emb_scale", 1.0)
        elif name == "final_logits_bias":
            t = rng.normal(0.0, 0.1, shape)
            t[EOS] += spec["eos_bias"]
        elif "layer_norm" in name and name.endswith(".weight"):
            t = 1.0 + rng.normal(0.0, 0.1, shape)
            if name == last_ln:
                t *= spec["final_ln_gain"]
        elif name.endswith(".bias"):
            t = rng.normal(0.0, 0.1, shape)
        elif name.endswith(("out_proj.weight", "fc2.weight")):
            t = rng.normal(0.0, spec["out_std"], shape)
        else:
            t = rng.normal(0.0, spec["std"], shape)
        out[name] = t
    return out


def build(name, spec, out_dir, tatoeba):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    spm_bytes = train_spm(tatoeba, spec["vocab_size"], spec["normalization"])
    spm_path = os.path.join(d, "source.spm")
    with open(spm_path, "wb") as f:
        f.write(spm_bytes)
    vocab = make_vocab(spm_path)
    V = len(vocab["tokens"])
    config = dict(vocab_size=V, **spec["config"], pad_token_id=PAD, eos_token_id=EOS,
                  unk_token_id=UNK, decoder_start_token_id=PAD, layer_norm_eps=1e-5)
    config = {k: config[k] for k in atmodel.CONFIG_FIELDS}  # FORMAT.md field order
    generation = dict(spec["generation"], bad_words_ids=[PAD])
    tensors = random_tensors(config, spec)
    atmodel.write_model(d, config, generation, tensors, dtype=spec["dtype"], vocab=vocab)
    sizes = {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}
    print(f"{name}: V={V} " + " ".join(f"{f}={s}" for f, s in sizes.items())
          + f" total={sum(sizes.values())}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "fixtures", "tiny"))
    ap.add_argument("--tatoeba", default="/work/shared/data/train/tatoeba")
    ap.add_argument("--only", default=None, help="comma-separated model names")
    a = ap.parse_args(argv)
    names = a.only.split(",") if a.only else list(MODELS)
    for name in names:
        build(name, MODELS[name], a.out, a.tatoeba)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""make_hf_fixture.py — the transformers-made CI fixture tests/fixtures/marian-hf.

Needs transformers (../shared/peers/transformers: install.sh DIR, then PYTHONPATH=DIR):

    PYTHONPATH=/opt/hf-transformers HF_HUB_OFFLINE=1 /usr/bin/python3 scripts/make_hf_fixture.py

A MarianMTModel with the configuration of opus-mt-en-fr (swish, scale_embedding, tied and
shared embeddings, final_logits_bias, static sinusoidal positions, eos 0, unk 1, pad =
decoder start = the last id, bad_words_ids [[pad]], renormalize_logits) but small
dimensions (d_model 32, 4 heads, FFN 64, 2+2 layers, 128 positions) and a real-subset vocabulary: the
first 1,000 ids of opus-mt-en-fr's vocab.json ("</s>" 0, "<unk>" 1, then the most frequent
English and French pieces) plus "<pad>" as id 1000. The tokenizers are the real source.spm
and target.spm, unchanged; a piece outside the subset becomes <unk>, which is what
MarianTokenizer and attn-translate both do with vocab.json (docs/FORMAT.md).

Weights: torch.manual_seed(SEED), transformers' initialisation with init_std 0.3, seeded
noise on the biases and LayerNorms, and an eos bias chosen so that most hypotheses end
with eos and some reach the length limit. Written with save_pretrained (safetensors).

Committed (tests/fixtures/marian-hf, well under 1 MB): hf/ (config.json,
generation_config.json, model.safetensors, vocab.json, tokenizer_config.json,
special_tokens_map.json), SHA256SUMS (of the real source.spm / target.spm, which the test
takes from ../shared) and expected.json: transformers' outputs (generate, one line at a
time, max_new_tokens = 2 * S + 10 as docs/DECODING.md, early_stopping=True,
renormalize_logits, bad_words_ids [[pad]], forced_eos_token_id None) for greedy, beam 4,
n-best 4 and n-best 4 with length penalty 0.6, on the f32 weights and on the same
weights rounded to float16 (what attn-translate's f16 file computes), plus the raw logits
of the first steps. tests/test_hf_marian.sh converts hf/ with convert_marian.py and
checks the C engine against expected.json (build/tests/test_hf_marian).
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures", "marian-hf")
SHARED = os.path.join(ROOT, "..", "shared")
TOKDIR = os.path.join(SHARED, "models", "opus-mt-en-fr-tokenizer")
DEV = os.path.join(SHARED, "data", "dev")
DEV_FILES = ("newstest2013.en", "eng_Latn.dev", "test_2016_flickr.en",
             "tatoeba-test-v2021-08-07.eng")
SEED = 14
N_KEEP = 1000          # real ids kept; <pad> becomes id N_KEEP
PER_SET = 6
EXTRA = ["I am a small frog.", "Hello.", "Zürich’s naïve café — “quotes”… 😀 ＦＵＬＬ"]
SETTINGS = {  # name: beam, n_best, length penalty, f16 weights
    "greedy": (1, 1, 1.0, False),
    "beam4": (4, 1, 1.0, False),
    "nbest4": (4, 4, 1.0, False),
    "nbest4_lp06": (4, 4, 0.6, False),
    "f16_greedy": (1, 1, 1.0, True),
    "f16_beam4": (4, 4, 1.0, True),
}
LOGIT_LINES, LOGIT_STEPS = 3, 3
EOS_FRAC = 0.5        # share of greedy outputs that end with eos (beam search ends more)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def gen_config(cfg, K, n_ret, lp, max_new):
    from transformers import GenerationConfig
    return GenerationConfig(
        num_beams=K, early_stopping=True, do_sample=False, max_new_tokens=max_new, min_length=0,
        length_penalty=lp, bad_words_ids=[[cfg.pad_token_id]], renormalize_logits=True,
        forced_eos_token_id=None, num_return_sequences=n_ret, no_repeat_ngram_size=0,
        decoder_start_token_id=cfg.decoder_start_token_id, eos_token_id=cfg.eos_token_id,
        pad_token_id=cfg.pad_token_id, output_scores=True, return_dict_in_generate=True)


def generate(model, tok, ids, K, n_ret, lp):
    cfg = model.config
    eos, pad = cfg.eos_token_id, cfg.pad_token_id
    max_new = min(2 * len(ids) + 10, 127)  # DECODING.md: max_length - 1, positions - 1
    inp = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp),
                             generation_config=gen_config(cfg, K, n_ret, lp, max_new))
    if K > 1:
        trans = model.compute_transition_scores(out.sequences, out.scores, out.beam_indices,
                                                normalize_logits=False)
    else:
        trans = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=False)
    hyps = []
    for r in range(n_ret):
        seq = out.sequences[r, 1:].tolist()
        fin = eos in seq
        L = seq.index(eos) + 1 if fin else len([t for t in seq if t != pad])
        hid = seq[:L - 1] if fin else seq[:L]
        logprob = float(trans[r, :L].double().sum())
        score = float(out.sequences_scores[r]) if K > 1 else logprob / L ** lp
        hyps.append({"ids": hid, "finished": fin, "score": score, "logprob": logprob,
                     "text": tok.decode(hid, skip_special_tokens=True,
                                        clean_up_tokenization_spaces=False)})
    return max_new, hyps


def main():
    import transformers
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer
    hf = os.path.join(OUT, "hf")
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(hf)
    # real-subset vocabulary
    with open(os.path.join(TOKDIR, "vocab.json"), encoding="utf-8") as f:
        real = json.load(f)
    by_id = sorted(real.items(), key=lambda kv: kv[1])
    assert by_id[0][0] == "</s>" and by_id[1][0] == "<unk>"
    vocab = {p: i for p, i in by_id[:N_KEEP]}
    vocab["<pad>"] = N_KEEP
    V = len(vocab)
    with open(os.path.join(hf, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=1)
    # opus-mt-en-fr's tokenizer_config.json, with <pad> at its new id
    with open(os.path.join(TOKDIR, "tokenizer_config.json"), encoding="utf-8") as f:
        tcfg = json.load(f)
    added = tcfg["added_tokens_decoder"]
    added[str(N_KEEP)] = added.pop(str(real["<pad>"]))
    with open(os.path.join(hf, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tcfg, f, indent=2)
    shutil.copyfile(os.path.join(TOKDIR, "special_tokens_map.json"),
                    os.path.join(hf, "special_tokens_map.json"))
    work = tempfile.mkdtemp(prefix="make_hf_fixture.")
    for n in os.listdir(hf):
        shutil.copyfile(os.path.join(hf, n), os.path.join(work, n))
    for n in ("source.spm", "target.spm"):
        shutil.copyfile(os.path.join(TOKDIR, n), os.path.join(work, n))
    with open(os.path.join(OUT, "SHA256SUMS"), "w") as f:
        for n in ("source.spm", "target.spm"):
            f.write(f"{sha256(os.path.join(TOKDIR, n))}  {n}\n")
    tok = MarianTokenizer.from_pretrained(work)
    assert tok.pad_token_id == N_KEEP and tok.eos_token_id == 0 and tok.unk_token_id == 1

    # opus-mt-en-fr's config, small dimensions
    real_cfg = json.load(open(os.path.join(TOKDIR, "config.json")))
    kw = {k: v for k, v in real_cfg.items() if not k.startswith("_") and k not in (
        "architectures", "transformers_version", "id2label", "label2id")}
    kw.update(vocab_size=V, decoder_vocab_size=V, pad_token_id=N_KEEP,
              decoder_start_token_id=N_KEEP, bad_words_ids=[[N_KEEP]], d_model=32,
              encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
              decoder_ffn_dim=64, encoder_layers=2, decoder_layers=2, num_hidden_layers=2,
              max_position_embeddings=128, init_std=0.3)
    config = MarianConfig(**kw)
    config.architectures = ["MarianMTModel"]
    torch.manual_seed(SEED)
    model = MarianMTModel(config).eval()
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_norm.weight"):
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        model.final_logits_bias.copy_(torch.randn(model.final_logits_bias.shape, generator=g) * 0.5)

    lines = []
    for fn in DEV_FILES:
        with open(os.path.join(DEV, fn), encoding="utf-8") as f:
            cand = [l.rstrip("\n") for l in f if l.strip()]
        lines += [l for l in cand if 4 <= len(tok(l)["input_ids"]) <= 30][:PER_SET]
    lines += EXTRA

    # eos bias: a greedy path with the bias is the bias-free path up to the first step at
    # which eos trails the best token by less than the bias, so a line ends with eos iff
    # its smallest gap within its limit is below it; take the bias that ends EOS_FRAC of them
    mins = []
    for l in lines:
        ids = tok(l)["input_ids"]
        inp = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp),
                                 generation_config=gen_config(config, 1, 1, 1.0, 2 * len(ids) + 10))
        gaps = []
        for s in out.scores:
            best = s[0].clone()
            best[0] = -float("inf")
            gaps.append(float(best.max() - s[0, 0]))
        mins.append(min(gaps))
    # halfway between two lines' smallest gaps, so that no eos decision is a near tie
    mins = sorted(mins)
    k = int(EOS_FRAC * len(mins))
    bias = (mins[k - 1] + mins[k]) / 2
    with torch.no_grad():
        model.final_logits_bias[0, 0] += bias
    model.generation_config.renormalize_logits = True
    model.save_pretrained(hf)
    files = sorted(os.listdir(hf))
    assert "model.safetensors" in files and "pytorch_model.bin" not in files, files
    # the saved file must reload to exactly this model
    m2 = MarianMTModel.from_pretrained(hf)
    sd1, sd2 = model.state_dict(), m2.state_dict()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)

    f16 = MarianMTModel.from_pretrained(hf).eval()
    with torch.no_grad():
        for name, t in f16.state_dict().items():
            if t.is_floating_point() and "embed_positions" not in name:  # recomputed in f32
                t.copy_(t.half().float())

    cases = []
    for l in lines:
        ids = tok(l)["input_ids"]
        case = {"src": l, "src_ids": ids}
        for name, (K, nb, lp, half) in SETTINGS.items():
            max_new, hyps = generate(f16 if half else model, tok, ids, K, nb, lp)
            case["max_len"] = max_new
            case[name] = hyps
        cases.append(case)
    logits = []
    for c in cases[:LOGIT_LINES]:
        dec = [N_KEEP] + c["greedy"][0]["ids"][:LOGIT_STEPS - 1]
        with torch.no_grad():
            lg = model(input_ids=torch.tensor([c["src_ids"]]),
                       decoder_input_ids=torch.tensor([dec])).logits[0]
        logits.append({"src_ids": c["src_ids"], "decoder_ids": dec,
                       "values": [[float(np.float32(x)) for x in row] for row in lg.tolist()]})
    n_eos = sum(h["finished"] for c in cases for s in SETTINGS for h in c[s])
    n_all = sum(len(c[s]) for c in cases for s in SETTINGS)
    expected = {
        "made_by": "scripts/make_hf_fixture.py",
        "transformers": transformers.__version__, "torch": torch.__version__, "seed": SEED,
        "eos_bias": bias,
        "generate": "one line at a time; max_new_tokens = 2 * len(src_ids) + 10 (max_len); "
                    "early_stopping=True, renormalize_logits=True, bad_words_ids=[[pad]], "
                    "forced_eos_token_id=None; score = sequences_scores (beam) or "
                    "logprob / length^lp (greedy); logprob = sum of compute_transition_scores; "
                    "text = decode(skip_special_tokens=True, clean_up_tokenization_spaces=False)",
        "settings": {k: {"beam": K, "n_best": nb, "length_penalty": lp, "f16": half}
                     for k, (K, nb, lp, half) in SETTINGS.items()},
        "cases": cases, "logits": logits}
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    shutil.rmtree(work)
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    lens = [len(h["ids"]) for c in cases for s in SETTINGS for h in c[s]]
    uniq = len({tuple(c["greedy"][0]["ids"]) for c in cases})
    print(f"{OUT}: {size:,} bytes, V {V}, {len(cases)} lines, eos bias {bias:.3f}; "
          f"{n_eos} of {n_all} hypotheses end with eos, {n_all - n_eos} reach the limit; "
          f"lengths {min(lens)}..{max(lens)}; {uniq} distinct greedy outputs; "
          f"unk in outputs: {sum(1 in h['ids'] for c in cases for s in SETTINGS for h in c[s])}")


if __name__ == "__main__":
    sys.exit(main())

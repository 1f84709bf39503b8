#!/usr/bin/python3
"""parity_marian.py — attn-translate vs transformers' MarianMTModel on OPUS-MT en-fr shapes.

UNTESTED when written: it needs `transformers` (absent from the development machine).
Run it where transformers is installed (the GPU machine), from the repository root:

    /usr/bin/python3 scripts/parity_marian.py [--tokdir ../shared/models/opus-mt-en-fr-tokenizer]
        [--dev-dir ../shared/data/dev] [--lines 200] [--beam-lines 60] [--work DIR]
        [--engine ./attn-translate] [--tokcheck build/tests/tokcheck]
        [--fixture-out tests/fixtures/marian-tiny] [--device cpu|cuda] [--jobs N]

What it does (each step prints PASS/FAIL/INFO lines; the exit status is 1 on any FAIL):

 1. Builds MarianMTModel(MarianConfig.from_pretrained(TOKDIR)) — the real OPUS-MT en-fr
    shapes (6+6 layers, d 512, V 59,514) — after torch.manual_seed(0). transformers'
    initialisation leaves every bias 0, every LayerNorm at (1, 0) and no reason to ever
    emit eos, which would leave those code paths untested and every output running to the
    length limit, so by default (--perturb) biases, LayerNorms and final_logits_bias get
    seeded noise and eos gets a bias (--eos-bias) so outputs end at varied lengths.
 2. save_pretrained() twice (safetensors, and pytorch_model.bin) next to the real tokenizer
    files, converts both with scripts/convert_marian.py and checks that both give the same
    model.bin and that every tensor equals the transformers parameter it came from.
 3. Tokenization of >= --lines dev lines (mixed from the dev files): MarianTokenizer vs the
    PyTorch reference (sentencepiece + vocab.json mapping) vs the C tokenizer (--tokcheck,
    when given and built). Known transformers-side differences are classified, not hidden:
    a line starting with ">>xx<<" (language code split off), literal special-token text,
    and pieces of source.spm missing from vocab.json (recent MarianTokenizer versions fall
    back to the SentencePiece id, which is not a Marian id; we use <unk>).
 4. Logits: teacher-forced, transformers (float32, eager attention, TF32 off) vs
    scripts/reference.py on the converted directory; max abs error must be <= 1e-3.
 5. Greedy and beam-4 ids, token for token: transformers generate(num_beams=K,
    early_stopping=True, max_new_tokens = our max_len, forced_eos_token_id=None,
    renormalize_logits=True, bad_words_ids=[[pad]]) vs the reference's DECODING.md search,
    and the C engine's text vs the reference's text. Mismatches on lines whose decision
    margin (reference trace) is below 1e-4 are reported as ill-conditioned, not failures.
    Agreement with transformers' default early_stopping=False is reported (INFO only).
 6. --fixture-out: writes a tiny transformers-saved checkpoint (< 1 MB) plus
    transformers' own outputs as a CI fixture. The real vocabulary cannot be used: its
    V x d embedding alone is 59,514 x 16 x 4 B = 3.8 MB (1.9 MB in f16), so the fixture
    trains two tiny SentencePiece unigram models (source on English, target on French dev
    text, nmt_nfkc) and a Marian-style joint vocab.json ("</s>" 0, "<unk>" 1, pieces,
    "<pad>" last), exactly the structure of OPUS-MT with a ~500-entry vocabulary.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import atmodel  # noqa: E402
import convert_marian  # noqa: E402
import reference  # noqa: E402

TOKENIZER_FILES = ("source.spm", "target.spm", "vocab.json", "tokenizer_config.json",
                   "special_tokens_map.json", "generation_config.json")
DEV_FILES = ("newstest2013.en", "eng_Latn.dev", "test_2016_flickr.en",
             "tatoeba-test-v2021-08-07.eng")
MARGIN = 1e-4

results = {"PASS": 0, "FAIL": 0}


def report(kind, msg):
    if kind in results:
        results[kind] += 1
    print(f"{kind} {msg}", flush=True)


def ok(cond, msg):
    report("PASS" if cond else "FAIL", msg)
    return cond


# ---------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------

def perturb(model, eos, eos_bias, seed=1):
    """Seeded noise on what transformers initialises to constants (biases, LayerNorms,
    final_logits_bias) and an eos bias, so those paths are exercised and outputs end."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name:
                continue
            if name.endswith("layer_norm.weight"):
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        fb = model.final_logits_bias
        fb.copy_(torch.randn(fb.shape, generator=g) * 0.1)
        fb[0, eos] += eos_bias


def build_model(config, seed, do_perturb, eos_bias):
    from transformers import MarianMTModel
    torch.manual_seed(seed)
    model = MarianMTModel(config)
    model.eval()
    if do_perturb:
        perturb(model, config.eos_token_id, eos_bias)
    return model


def hf_name_to_ours(name, cfg):
    """transformers state_dict name -> our name (None: not stored by us)."""
    if "embed_positions" in name:
        return None
    n = name[len("model."):] if name.startswith("model.") else name
    if cfg["share_encoder_decoder_embeddings"] and n in ("encoder.embed_tokens.weight",
                                                         "decoder.embed_tokens.weight"):
        return "shared.weight"
    if cfg["tie_word_embeddings"] and n == "lm_head.weight":
        return atmodel.embedding_names(cfg)[1]
    return n


def check_tensors(model, our_dir):
    h, t = atmodel.read_model(our_dir)
    cfg = h["config"]
    bad = []
    seen = set()
    for name, p in model.state_dict().items():
        ours = hf_name_to_ours(name, cfg)
        if ours is None:
            continue
        seen.add(ours)
        a = p.detach().float().cpu().numpy()
        if ours == "final_logits_bias":
            a = a.reshape(-1)
        if ours not in t or not np.array_equal(t[ours], a):
            bad.append(name)
    ok(not bad and seen == set(t), f"converted tensors equal transformers' parameters "
       f"({len(t)} tensors; differing {bad[:5]}, unmatched {sorted(set(t) - seen)[:5]})")


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------

def dev_lines(dev_dir, n):
    per = max(1, -(-n // len(DEV_FILES)))
    out = []
    for f in DEV_FILES:
        path = os.path.join(dev_dir, f)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as fh:
            lines = [l.rstrip("\n") for l in fh if l.strip()]
        out += lines[:per]
    # a few edge cases the tokenizers must agree on
    out += ["", "   ", "Hello world.", "« Quotes » and ‘smart’ ones…", "ＦＵＬＬＷＩＤＴＨ １２３",
            "tab\tseparated", "naïve café Zürich", "a | b", "emoji 🙂 here"]
    return out


# ---------------------------------------------------------------------------------------
# tokenization
# ---------------------------------------------------------------------------------------

def run_tokcheck(cmd, model_dir, lines):
    """C tokenizer ids via an external command: `CMD MODEL_DIR < lines`, one line of
    space-separated ids per input line (eos included). Returns a list or None."""
    try:
        r = subprocess.run(cmd.split() + [model_dir], input="\n".join(lines) + "\n",
                           capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        report("INFO", f"tokcheck not run: {e}")
        return None
    outs = r.stdout.splitlines()
    try:
        ids = [[int(x) for x in l.split()] for l in outs]
    except ValueError:
        report("INFO", f"tokcheck output is not ids per line (interface differs?): {outs[:2]}")
        return None
    if r.returncode != 0 or len(ids) != len(lines):
        report("INFO", f"tokcheck: rc {r.returncode}, {len(ids)} lines for {len(lines)}: "
               f"{r.stderr[-300:]}")
        return None
    return ids


def check_tokenization(tok, m, lines, tokcheck, our_dir):
    vocab = m.piece_to_id
    specials = ("</s>", "<unk>", "<pad>")
    n_match = n_ref_fail = 0
    classified = {"language code": 0, "special-token text": 0, "piece not in vocab.json": 0}
    for line in lines:
        hf_ids = tok(line)["input_ids"]
        ref_ids = reference.encode(m, line)
        if hf_ids == ref_ids:
            n_match += 1
            continue
        pieces = m.sp.EncodeAsPieces(line)
        if line.startswith(">>") and "<<" in line:
            classified["language code"] += 1
        elif any(s in line for s in specials):
            classified["special-token text"] += 1
        elif any(p not in vocab for p in pieces):
            classified["piece not in vocab.json"] += 1
        else:
            n_ref_fail += 1
            if n_ref_fail <= 5:
                print(f"  tokens differ: {line[:80]!r}\n    transformers {hf_ids[:30]}\n"
                      f"    reference    {ref_ids[:30]}")
    ok(n_ref_fail == 0, f"tokenization: MarianTokenizer == reference on {n_match}/{len(lines)} "
       f"lines; unexplained differences {n_ref_fail}; known transformers-side {classified}")
    if tokcheck:
        c_ids = run_tokcheck(tokcheck, our_dir, lines)
        if c_ids is not None:
            ref = [reference.encode(m, l) for l in lines]
            diff = [i for i, (a, b) in enumerate(zip(c_ids, ref)) if a != b]
            ok(not diff, f"tokenization: C tokenizer == reference on {len(lines) - len(diff)}/"
               f"{len(lines)} lines (first differing: {[lines[i][:60] for i in diff[:3]]})")
    else:
        report("INFO", "C tokenizer not compared (no --tokcheck)")


# ---------------------------------------------------------------------------------------
# logits and decoding
# ---------------------------------------------------------------------------------------

def gen_config(cfg, K, max_new, early_stopping):
    from transformers import GenerationConfig
    pad, eos = cfg["pad_token_id"], cfg["eos_token_id"]
    return GenerationConfig(
        num_beams=K, early_stopping=early_stopping, do_sample=False, max_new_tokens=max_new,
        min_length=0, length_penalty=1.0, bad_words_ids=[[pad]], renormalize_logits=True,
        forced_eos_token_id=None, forced_bos_token_id=None, no_repeat_ngram_size=0,
        repetition_penalty=1.0, num_return_sequences=1, decoder_start_token_id=cfg["decoder_start_token_id"],
        eos_token_id=eos, pad_token_id=pad, output_scores=True, return_dict_in_generate=True)


def hf_generate(model, ids, cfg, K, max_new, early_stopping, device):
    inp = torch.tensor([ids], device=device)
    with torch.no_grad():
        out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp),
                             generation_config=gen_config(cfg, K, max_new, early_stopping))
    seq = out.sequences[0].tolist()[1:]  # drop decoder_start
    eos, pad = cfg["eos_token_id"], cfg["pad_token_id"]
    finished = eos in seq
    if finished:
        seq = seq[:seq.index(eos)]
    seq = [t for t in seq if t != pad]
    score = float(out.sequences_scores[0]) if getattr(out, "sequences_scores", None) is not None else None
    return seq, finished, score


def check_logits(model, m, tok, lines, device, n=30):
    worst = 0.0
    cfg = m.config
    for line in lines[:n]:
        src = reference.encode(m, line)
        if len(src) <= 1:
            continue
        # decoder input: start + a deterministic pseudo-target (the source ids, clipped)
        dec = [cfg["decoder_start_token_id"]] + src[:-1][:40]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([src], device=device),
                        decoder_input_ids=torch.tensor([dec], device=device))
        hf = out.logits[0].double().cpu()
        enc = reference.forward_encoder(m, src)
        ours = reference.forward_decoder(m, enc, dec).double()
        worst = max(worst, float((hf - ours).abs().max()))
    ok(worst <= 1e-3, f"logits: max abs error transformers vs reference {worst:.3g} (<= 1e-3)")


def _ref_worker(args):
    model_dir, items, K = args
    torch.set_num_threads(1)
    m = reference.load(model_dir, dtype=torch.float32)
    out = []
    for src in items:
        tr = {}
        hyps = reference.beam_search(m, src, beam=K, n_best=1, trace=tr)
        gaps = [x["gap"] for x in tr.get("margins", [])] + [tr.get("final_gap", float("inf"))]
        out.append((hyps[0].ids, hyps[0].finished, hyps[0].score, min(gaps) if gaps else float("inf")))
    return out


def reference_search(model_dir, srcs, K, jobs):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    chunks = [srcs[i::jobs] for i in range(jobs)]
    # spawn: the parent may have initialised CUDA; the workers use the CPU only
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
        parts = list(ex.map(_ref_worker, [(model_dir, c, K) for c in chunks]))
    out = [None] * len(srcs)
    for j, part in enumerate(parts):
        for k, r in enumerate(part):
            out[j + k * jobs] = r
    return out


def run_engine(engine, model_dir, lines, K):
    r = subprocess.run([engine, "-m", model_dir, "--beam", str(K), "-q"],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=580)
    if r.returncode != 0:
        report("FAIL", f"attn-translate --beam {K}: rc {r.returncode}: {r.stderr[-400:]}")
        return None
    return r.stdout.splitlines()


def check_decoding(model, m, our_dir, lines, K, device, jobs, engine):
    cfg = m.config
    lines = [l for l in lines if len(reference.encode(m, l)) > 1]
    srcs = [reference.encode(m, l) for l in lines]
    t0 = time.time()
    ref = reference_search(our_dir, srcs, K, jobs)
    t_ref = time.time() - t0
    same = ill = bad = 0
    same_es_false = 0
    score_err = 0.0
    lengths = []
    for line, src, (rids, rfin, rscore, margin) in zip(lines, srcs, ref):
        max_new = reference.max_target_length(m, len(src))
        hids, hfin, hscore = hf_generate(model, src, cfg, K, max_new, True, device)
        lengths.append(len(rids))
        if hids == rids:
            same += 1
            if hscore is not None and K > 1 and rfin:
                score_err = max(score_err, abs(hscore - rscore))
        elif margin < MARGIN:
            ill += 1
        else:
            bad += 1
            if bad <= 3:
                print(f"  beam {K} differs (margin {margin:.2g}): {line[:60]!r}\n"
                      f"    transformers {hids[:25]}\n    reference    {rids[:25]}")
        if K > 1:
            h2, _, _ = hf_generate(model, src, cfg, K, max_new, False, device)
            same_es_false += h2 == rids
    ok(bad == 0, f"beam {K}: transformers (early_stopping=True) == reference on {same}/{len(lines)} "
       f"lines, {ill} ill-conditioned (margin < {MARGIN}), {bad} real differences; output "
       f"lengths {min(lengths)}..{max(lengths)} (mean {np.mean(lengths):.1f}); reference {t_ref:.0f} s")
    if K > 1:
        ok(score_err <= 1e-3, f"beam {K}: sequences_scores vs reference scores max err {score_err:.3g}")
        report("INFO", f"beam {K}: transformers default early_stopping=False agrees with ours on "
               f"{same_es_false}/{len(lines)} lines")
    if engine:
        texts = run_engine(engine, our_dir, lines, K)
        if texts is not None:
            want = [reference.decode(m, r[0]) for r in ref]
            diff = [i for i, (a, b) in enumerate(zip(texts, want)) if a != b]
            diff_real = [i for i in diff if ref[i][3] >= MARGIN]
            ok(len(texts) == len(want) and not diff_real,
               f"beam {K}: C engine text == reference on {len(want) - len(diff)}/{len(want)} lines "
               f"({len(diff) - len(diff_real)} differing lines ill-conditioned)")
    else:
        report("INFO", "C engine not compared (no --engine)")


# ---------------------------------------------------------------------------------------
# tiny fixture
# ---------------------------------------------------------------------------------------

def train_spm(lines, prefix, vocab_size):
    import sentencepiece as spm
    inp = prefix + ".txt"
    with open(inp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    spm.SentencePieceTrainer.train(
        input=inp, model_prefix=prefix, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, normalization_rule_name="nmt_nfkc", hard_vocab_limit=False,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    return prefix + ".model"


def write_fixture(out_dir, dev_dir, device, seed):
    from transformers import MarianConfig, MarianTokenizer
    work = tempfile.mkdtemp(prefix="marian-fixture.")
    en = [l.rstrip("\n") for l in open(os.path.join(dev_dir, "eng_Latn.dev"), encoding="utf-8")]
    fr = [l.rstrip("\n") for l in open(os.path.join(dev_dir, "fra_Latn.dev"), encoding="utf-8")]
    src_spm = train_spm(en, os.path.join(work, "src"), 260)
    tgt_spm = train_spm(fr, os.path.join(work, "tgt"), 260)
    import sentencepiece as spm
    pieces = []
    for path in (src_spm, tgt_spm):
        sp = spm.SentencePieceProcessor(model_file=path)
        for i in range(sp.get_piece_size()):
            p = sp.id_to_piece(i)
            if p not in ("<unk>", "<s>", "</s>") and p not in pieces:
                pieces.append(p)
    vocab = {"</s>": 0, "<unk>": 1}
    for p in pieces:
        vocab[p] = len(vocab)
    vocab["<pad>"] = len(vocab)
    V = len(vocab)
    hf_dir = os.path.join(out_dir, "hf")
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(hf_dir)
    shutil.copyfile(src_spm, os.path.join(hf_dir, "source.spm"))
    shutil.copyfile(tgt_spm, os.path.join(hf_dir, "target.spm"))
    with open(os.path.join(hf_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=1)
    tok = MarianTokenizer(os.path.join(hf_dir, "source.spm"), os.path.join(hf_dir, "target.spm"),
                          os.path.join(hf_dir, "vocab.json"), source_lang="en", target_lang="fr")
    tok.save_pretrained(hf_dir)
    config = MarianConfig(
        vocab_size=V, decoder_vocab_size=V, d_model=16, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_position_embeddings=128, activation_function="swish",
        scale_embedding=True, pad_token_id=V - 1, decoder_start_token_id=V - 1, eos_token_id=0,
        forced_eos_token_id=0, share_encoder_decoder_embeddings=True, num_beams=4,
        max_length=128, bad_words_ids=[[V - 1]], init_std=0.3)
    model = build_model(config, seed, True, eos_bias=1.0).to(device)
    model.save_pretrained(hf_dir)  # safetensors
    cfg = {"pad_token_id": V - 1, "eos_token_id": 0, "decoder_start_token_id": V - 1}
    cases = []
    for line in [l for l in en if 3 <= len(tok(l)["input_ids"]) <= 40][:20]:
        ids = tok(line)["input_ids"]  # pieces + eos
        S = len(ids)
        max_new = min(int(2.0 * S) + 10, 127)
        case = {"text": line, "input_ids": ids, "max_new_tokens": max_new}
        for K, es, key in ((1, True, "greedy"), (4, True, "beam4"), (4, False, "beam4_early_stopping_false")):
            seq, fin, score = hf_generate(model, ids, cfg, K, max_new, es, device)
            case[key] = {"ids": seq, "finished": fin, "score": score,
                         "text": tok.decode(seq, skip_special_tokens=True)}
        cases.append(case)
    dec = [V - 1] + cases[0]["greedy"]["ids"][:20]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([cases[0]["input_ids"]], device=device),
                       decoder_input_ids=torch.tensor([dec], device=device)).logits[0].float().cpu()
    import transformers
    expected = {"transformers_version": transformers.__version__, "torch_version": torch.__version__,
                "note": "outputs of transformers' MarianMTModel for hf/ (scripts/parity_marian.py); "
                        "generate(max_new_tokens, forced_eos_token_id=None, renormalize_logits=True, "
                        "bad_words_ids=[[pad]], length_penalty=1.0)",
                "cases": cases,
                "logits": {"input_ids": cases[0]["input_ids"], "decoder_input_ids": dec,
                           "values": [[float(f"{x:.6g}") for x in row] for row in logits.tolist()]}}
    with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
    shutil.rmtree(work, ignore_errors=True)
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out_dir) for f in fs)
    ok(size < 1 << 20, f"fixture {out_dir}: {size:,} bytes (< 1 MiB), V {V}")
    # the fixture must convert and reproduce transformers with our reference
    conv = os.path.join(out_dir + ".converted.tmp")
    convert_marian.convert(hf_dir, conv, quiet=True)
    m = reference.load(conv, dtype=torch.float64)
    agree = sum(reference.beam_search(m, c["input_ids"], beam=4, n_best=1)[0].ids == c["beam4"]["ids"]
                for c in cases)
    ok(agree == len(cases), f"fixture: reference beam-4 == transformers on {agree}/{len(cases)} cases")
    shutil.rmtree(conv, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokdir", default=os.path.join(ROOT, "..", "shared", "models",
                                                     "opus-mt-en-fr-tokenizer"))
    ap.add_argument("--dev-dir", default=os.path.join(ROOT, "..", "shared", "data", "dev"))
    ap.add_argument("--lines", type=int, default=200, help="dev lines for tokenization and greedy")
    ap.add_argument("--beam-lines", type=int, default=60, help="dev lines for beam 4")
    ap.add_argument("--work", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--engine", default=None, help="attn-translate binary to compare")
    ap.add_argument("--tokcheck", default=None, help="C tokenizer command: CMD MODEL_DIR < lines")
    ap.add_argument("--fixture-out", default=None, help="write the tiny CI fixture here")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-perturb", action="store_true")
    ap.add_argument("--eos-bias", type=float, default=1.5)
    a = ap.parse_args(argv)

    import transformers
    from transformers import MarianConfig, MarianTokenizer
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, device {a.device}")

    work = a.work or tempfile.mkdtemp(prefix="parity_marian.")
    hf_st, hf_bin = os.path.join(work, "hf-safetensors"), os.path.join(work, "hf-bin")
    ours, ours_bin = os.path.join(work, "ours"), os.path.join(work, "ours-from-bin")

    config = MarianConfig.from_pretrained(a.tokdir)
    try:
        config._attn_implementation = "eager"  # the plain softmax(QK^T)V path
    except (AttributeError, ValueError):
        report("INFO", "could not select eager attention; using the default")
    model = build_model(config, a.seed, not a.no_perturb, a.eos_bias)
    model.save_pretrained(hf_st)
    model.save_pretrained(hf_bin, safe_serialization=False)
    for d in (hf_st, hf_bin):
        for f in TOKENIZER_FILES:
            if os.path.exists(os.path.join(a.tokdir, f)):
                shutil.copyfile(os.path.join(a.tokdir, f), os.path.join(d, f))
    convert_marian.convert(hf_st, ours)
    convert_marian.convert(hf_bin, ours_bin, quiet=True)
    with open(os.path.join(ours, "model.bin"), "rb") as x, open(os.path.join(ours_bin, "model.bin"), "rb") as y:
        ok(x.read() == y.read(), "safetensors and pytorch_model.bin convert to the same model.bin")
    check_tensors(model, ours)
    model = model.to(a.device)

    m = reference.load(ours, dtype=torch.float32)
    tok = MarianTokenizer.from_pretrained(hf_st)
    lines = dev_lines(a.dev_dir, a.lines)
    check_tokenization(tok, m, lines, a.tokcheck, ours)
    check_logits(model, reference.load(ours, dtype=torch.float64), tok, lines, a.device)
    dev = [l for l in lines if l.strip()]
    check_decoding(model, m, ours, dev[:a.lines], 1, a.device, a.jobs, a.engine)
    check_decoding(model, m, ours, dev[:a.beam_lines], 4, a.device, a.jobs, a.engine)
    if a.fixture_out:
        write_fixture(a.fixture_out, a.dev_dir, a.device, a.seed)
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    print(f"parity_marian: {results['PASS']} passed, {results['FAIL']} failed")
    return 1 if results["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())

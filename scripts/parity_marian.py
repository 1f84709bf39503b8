#!/usr/bin/python3
"""parity_marian.py — attn-translate against transformers' MarianMTModel (opus-mt-en-fr shapes).

Needs transformers (../shared/peers/transformers: `install.sh DIR`, then PYTHONPATH=DIR) and
Debian's python3-torch; runs on the CPU. From the repository root, after `make`:

    export PYTHONPATH=/opt/hf-transformers HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    P="/usr/bin/python3 scripts/parity_marian.py --work /tmp/parity"
    $P build                # random model, save_pretrained, convert (f32, f16, from .bin)
    $P hf greedy            # transformers' outputs, one run at a time (see RUNS)
    $P hf beam4 ; $P hf lp ; $P hf lp2 ; $P hf f16 ; $P hf f16beam ; $P hf beam4lim ; $P hf logits
    $P compare [RUN...]     # the C engine against the finished runs (default all), and the tokenizers

Stages write into --work, so the slow transformers runs can be spread over a session (run
them under `nice`). `compare` is fast. Every check prints PASS/FAIL/INFO; the last line is
"parity_marian: N passed, N failed" and the exit status is 1 on any FAIL.

build
  MarianMTModel(MarianConfig.from_pretrained(TOKDIR)): the real opus-mt-en-fr config (6+6
  layers, d 512, V 59,514, swish, scale_embedding, tied embeddings, pad = decoder start =
  59513), torch.manual_seed(--seed). transformers initialises every bias to 0, LayerNorms
  to (1, 0) and gives eos no reason to win, so biases, LayerNorms and final_logits_bias get
  seeded noise, and final_logits_bias[eos] gets --eos-bias. Such a model repeats one token
  (chosen by the source) and its eos odds hardly move after the first step, so eos's tied
  embedding row also gets a component along the drift of the decoder's positions (see
  perturb): eos then grows likelier with the output length. `--eos-bias auto` (the
  default) measures, along transformers' greedy paths without the bias, the gap between
  the best token and eos at every step up to each line's limit, and takes the bias with
  which --eos-frac of the lines end with eos: most hypotheses end with eos, some reach the
  length limit.
  save_pretrained twice (safe_serialization True and False): each directory must hold
  exactly the weights file asked for (model.safetensors / pytorch_model.bin) and reload to
  identical parameters. Both are converted by convert_marian.py; they must give the same
  model.bin, and every tensor must equal the transformers parameter it came from. The f16
  file is converted too.

hf RUN  (transformers generate, batched; per dev set of ../shared/data/dev, see RUNS)
  Lines are MarianTokenizer ids (eos included), sorted by length and batched; a batch's
  length limit is max_len = 2 * (its shortest source) + 10 generated tokens (eos counted,
  the DECODING.md rule for that source), and the C engine is given the same limit per line.
  generate(num_beams=K, early_stopping=True, length_penalty, renormalize_logits=True,
  bad_words_ids=[[pad]], forced_eos_token_id=None, max_new_tokens=max_len,
  num_return_sequences=n_best, output_scores=True). Kept per hypothesis: ids, whether it
  ended with eos, sequences_scores (beam) and the sum of the chosen tokens' processed
  log-probabilities (compute_transition_scores), and the decoded text.
  The f16 run uses a copy of the model whose weights are rounded to float16 and computes in
  float32: what attn-translate does with the f16 file. `logits` keeps the raw logits of the
  first steps, teacher-forced along transformers' greedy output.

compare
  - tokenizer: MarianTokenizer against the C tokenizer (build/tests/tokcheck --ids, eos
    appended) on every line of the four English dev sets; tokcheck failing to run is FAIL.
  - every run: token ids, texts, scores and sums of log-probabilities of every hypothesis
    (eos-ended and length-limited ones alike: transformers 4.36 divides a hypothesis that
    reaches the limit by its generated length, as DECODING.md does) against
    build/tests/marian_dump. A line whose ids differ counts as ill-conditioned only if the
    float64 reference (scripts/reference.py) shows a decision margin below 1e-4 there.
  - logits: max abs difference on the first steps.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import atmodel  # noqa: E402
import convert_marian  # noqa: E402

TOKENIZER_FILES = ("source.spm", "target.spm", "vocab.json", "tokenizer_config.json",
                   "special_tokens_map.json", "generation_config.json")
DEV_FILES = ("newstest2013.en", "eng_Latn.dev", "test_2016_flickr.en",
             "tatoeba-test-v2021-08-07.eng")
# name: (first line, lines per dev set, beam, n_best, length penalty, f16 weights, batch lines)
RUNS = {
    "greedy": (0, 200, 1, 1, 1.0, False, 32),
    "beam4": (0, 50, 4, 4, 1.0, False, 8),      # n-best 4; its first hypothesis is beam 4
    "lp": (50, 15, 4, 4, 0.6, False, 8),
    "lp2": (65, 10, 3, 3, 2.0, False, 8),
    "f16": (0, 50, 1, 1, 1.0, True, 32),
    "f16beam": (100, 10, 4, 4, 1.0, True, 8),
    "beam4lim": (150, 25, 4, 4, 1.0, False, 8),  # a limit of 7 tokens (FIXED_MAX_LEN)
}
# runs whose length limit is fixed rather than 2 * S + 10: with the eos bias, beam search
# finds eos hypotheses within 6-9 tokens, so only a short limit makes beams reach it
FIXED_MAX_LEN = {"beam4lim": 7}
LOGIT_LINES, LOGIT_STEPS = 5, 4      # per dev set
MARGIN = 1e-4
SCORE_TOL = 1e-3                     # |score| and |sum of log p| differences allowed

results = {"PASS": 0, "FAIL": 0}


def report(kind, msg):
    if kind in results:
        results[kind] += 1
    print(f"{kind} {msg}", flush=True)


def ok(cond, msg):
    report("PASS" if cond else "FAIL", msg)
    return cond


def paths(work):
    return {k: os.path.join(work, v) for k, v in {
        "st": "hf-safetensors", "bin": "hf-bin", "ours": "ours", "ours_bin": "ours-from-bin",
        "ours_f16": "ours-f16", "meta": "meta.json"}.items()}


def dev_sets(dev_dir):
    out = {}
    for f in DEV_FILES:
        with open(os.path.join(dev_dir, f), encoding="utf-8") as fh:
            out[f] = [l.rstrip("\n") for l in fh]
    return out


def nonempty(lines):
    return [(i, l) for i, l in enumerate(lines) if l.strip()]


# ---------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------

def perturb(model, seed=1):
    """Seeded noise on what transformers initialises to constants."""
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
        # eos's (tied) embedding row gets a component along the decoder positions' drift
        # away from position 0, one embedding row's norm long: eos then becomes likelier as
        # the output grows, instead of only at the first step (whose input, the pad row,
        # is zero), and the eos bias can make hypotheses end at varied lengths
        cfg = model.config
        P = atmodel.sinusoidal_positions(cfg.max_position_embeddings, cfg.d_model)
        u = P[1:41].mean(axis=0) - P[0]
        row = model.get_input_embeddings().weight[cfg.eos_token_id]
        row += torch.tensor(u / np.linalg.norm(u) * cfg.init_std * np.sqrt(cfg.d_model),
                            dtype=row.dtype)


def gen_config(cfg, K, n_ret, lp, max_new, early_stopping=True):
    from transformers import GenerationConfig
    pad, eos = cfg.pad_token_id, cfg.eos_token_id
    return GenerationConfig(
        num_beams=K, early_stopping=early_stopping, do_sample=False, max_new_tokens=max_new,
        min_length=0, length_penalty=lp, bad_words_ids=[[pad]], renormalize_logits=True,
        forced_eos_token_id=None, forced_bos_token_id=None, no_repeat_ngram_size=0,
        repetition_penalty=1.0, num_return_sequences=n_ret,
        decoder_start_token_id=cfg.decoder_start_token_id, eos_token_id=eos, pad_token_id=pad,
        output_scores=True, return_dict_in_generate=True)


def calibrate_eos(model, tok, sets, frac, per_set=8):
    """The eos bias with which `frac` of greedy outputs end with eos before the limit.
    The bias changes only eos's logit, so a greedy path with it is the bias-free path up
    to the first step at which eos beats the best other token by the bias: a line ends
    with eos iff its smallest gap (best - eos) within its limit is below the bias."""
    cfg = model.config
    eos = cfg.eos_token_id
    mins = []
    for lines in sets.values():
        batch = [l for _, l in nonempty(lines)[:per_set]]
        enc = tok(batch, return_tensors="pt", padding=True)
        lims = [max_len_for(len(tok(l)["input_ids"])) for l in batch]
        with torch.no_grad():
            out = model.generate(**enc, generation_config=gen_config(cfg, 1, 1, 1.0, max(lims)))
        gaps = []
        for s in out.scores:           # (batch, V) log-probabilities at each step
            best = s.clone()
            best[:, eos] = -float("inf")
            gaps.append((best.max(dim=1).values - s[:, eos]).tolist())
        gaps = np.array(gaps).T        # (batch, steps)
        mins += [float(g[:n].min()) for g, n in zip(gaps, lims)]
    b = float(np.quantile(mins, frac))
    report("INFO", f"eos calibration on {len(mins)} lines: smallest gap best-eos within the "
           f"limit {min(mins):.3f}..{max(mins):.3f}; eos bias {b:.4f} ends {frac:.0%} of them "
           "with eos (greedy)")
    return b


def hf_name_to_ours(name, cfg):
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
    bad, seen = [], set()
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


def check_saved(model, d, want, other):
    """save_pretrained wrote `want` (and not `other`), and it reloads to the same model."""
    from transformers import MarianMTModel
    files = sorted(os.listdir(d))
    ok(want in files and other not in files,
       f"save_pretrained({os.path.basename(d)}) wrote {want} (files: {files})")
    m2 = MarianMTModel.from_pretrained(d)
    a, b = model.state_dict(), m2.state_dict()
    ok(a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a),
       f"{want} reloads to identical parameters ({len(a)} entries)")


def stage_build(a):
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer
    p = paths(a.work)
    os.makedirs(a.work, exist_ok=True)
    config = MarianConfig.from_pretrained(a.tokdir)
    config._attn_implementation = "eager"
    torch.manual_seed(a.seed)
    model = MarianMTModel(config).eval()
    perturb(model)
    tok = MarianTokenizer.from_pretrained(a.tokdir)
    if a.eos_bias == "auto":
        bias = calibrate_eos(model, tok, dev_sets(a.dev_dir), a.eos_frac)
    else:
        bias = float(a.eos_bias)
    with torch.no_grad():
        model.final_logits_bias[0, config.eos_token_id] += bias
    for d, safe, want, other in ((p["st"], True, "model.safetensors", "pytorch_model.bin"),
                                 (p["bin"], False, "pytorch_model.bin", "model.safetensors")):
        if os.path.exists(d):
            shutil.rmtree(d)
        model.save_pretrained(d, safe_serialization=safe)
        check_saved(model, d, want, other)
        for f in TOKENIZER_FILES:
            shutil.copyfile(os.path.join(a.tokdir, f), os.path.join(d, f))
    for d in (p["ours"], p["ours_bin"], p["ours_f16"]):
        shutil.rmtree(d, ignore_errors=True)
    convert_marian.convert(p["st"], p["ours"])
    convert_marian.convert(p["bin"], p["ours_bin"], quiet=True)
    convert_marian.convert(p["st"], p["ours_f16"], dtype="f16", quiet=True)
    with open(os.path.join(p["ours"], "model.bin"), "rb") as x, \
            open(os.path.join(p["ours_bin"], "model.bin"), "rb") as y:
        ok(x.read() == y.read(), "model.safetensors and pytorch_model.bin convert to the same model.bin")
    check_tensors(model, p["ours"])
    import transformers
    with open(p["meta"], "w") as f:
        json.dump({"seed": a.seed, "eos_bias": bias, "transformers": transformers.__version__,
                   "torch": torch.__version__}, f)


# ---------------------------------------------------------------------------------------
# transformers runs
# ---------------------------------------------------------------------------------------

def load_hf(a, f16=False):
    from transformers import MarianMTModel, MarianTokenizer
    p = paths(a.work)
    model = MarianMTModel.from_pretrained(p["st"])  # 4.36: Marian has only eager attention
    model.eval()
    if f16:
        with torch.no_grad():
            for name, t in model.state_dict().items():
                if t.is_floating_point() and "embed_positions" not in name:  # recomputed in f32
                    t.copy_(t.half().float())
    return model, MarianTokenizer.from_pretrained(p["st"])


def max_len_for(S, max_length=512, max_pos=512):
    return max(1, min(2 * S + 10, max_length - 1, max_pos - 1))


def stage_hf(a):
    torch.set_num_threads(a.threads)
    name = a.run
    if name == "logits":
        return stage_logits(a)
    first, n, K, n_ret, lp, f16, bsz = RUNS[name]
    model, tok = load_hf(a, f16)
    cfg = model.config
    eos, pad = cfg.eos_token_id, cfg.pad_token_id
    out_lines = []
    t_start = time.time()
    steps = 0
    for setname, lines in dev_sets(a.dev_dir).items():
        chosen = nonempty(lines)[first:first + n]
        items = [(setname, i, l, tok(l)["input_ids"]) for i, l in chosen]
        items.sort(key=lambda x: len(x[3]))
        for b0 in range(0, len(items), bsz):
            batch = items[b0:b0 + bsz]
            max_new = FIXED_MAX_LEN.get(name) or max_len_for(min(len(x[3]) for x in batch))
            enc = tok([x[2] for x in batch], return_tensors="pt", padding=True)
            assert [r[:len(x[3])] for r, x in zip(enc["input_ids"].tolist(), batch)] == \
                [x[3] for x in batch]
            with torch.no_grad():
                out = model.generate(**enc, generation_config=gen_config(cfg, K, n_ret, lp, max_new))
            steps += len(out.scores)
            if K > 1:
                trans = model.compute_transition_scores(out.sequences, out.scores, out.beam_indices,
                                                        normalize_logits=False)
            else:
                trans = model.compute_transition_scores(out.sequences, out.scores,
                                                        normalize_logits=False)
            seqs = out.sequences[:, 1:].tolist()
            for j, (setn, i, line, src) in enumerate(batch):
                hyps = []
                for r in range(n_ret):
                    row = j * n_ret + r
                    seq = seqs[row]
                    fin = eos in seq
                    L = seq.index(eos) + 1 if fin else len([t for t in seq if t != pad])
                    ids = seq[:L - 1] if fin else seq[:L]
                    assert pad not in ids, (line, seq)
                    logprob = float(trans[row, :L].double().sum())
                    hy = {"ids": ids, "finished": fin, "length": L, "logprob": logprob,
                          "text": tok.decode(ids, skip_special_tokens=True,
                                             clean_up_tokenization_spaces=False)}
                    if K > 1:
                        hy["sequences_score"] = float(out.sequences_scores[row])
                    hy["score"] = hy.get("sequences_score", logprob / L ** lp)
                    hyps.append(hy)
                out_lines.append({"set": setn, "line": i, "src": line, "src_ids": src,
                                  "max_len": max_new, "hyps": hyps})
            print(f"  {name} {setname}: {b0 + len(batch)}/{len(items)} lines, "
                  f"{time.time() - t_start:.0f} s", flush=True)
    secs = time.time() - t_start
    doc = {"run": name, "beam": K, "n_best": n_ret, "length_penalty": lp, "f16": f16,
           "seconds": secs, "generate_steps": steps, "lines": out_lines}
    with open(os.path.join(a.work, f"hf-{name}.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    fin = sum(h["finished"] for l in out_lines for h in l["hyps"][:1])
    report("INFO", f"hf {name}: {len(out_lines)} lines in {secs:.0f} s; best hypothesis ended "
           f"with eos on {fin}, reached the limit on {len(out_lines) - fin}")


def stage_logits(a):
    model, tok = load_hf(a)
    greedy = json.load(open(os.path.join(a.work, "hf-greedy.json"), encoding="utf-8"))
    by_set = {}
    for l in greedy["lines"]:
        by_set.setdefault(l["set"], []).append(l)
    cases, arrays = [], []
    start = model.config.decoder_start_token_id
    for setn in DEV_FILES:
        for l in sorted(by_set.get(setn, []), key=lambda x: x["line"])[:LOGIT_LINES]:
            dec = [start] + l["hyps"][0]["ids"][:LOGIT_STEPS - 1]
            with torch.no_grad():
                lg = model(input_ids=torch.tensor([l["src_ids"]]),
                           decoder_input_ids=torch.tensor([dec])).logits[0]
            arrays.append(lg.float().numpy())
            cases.append({"set": setn, "line": l["line"], "src": l["src"], "src_ids": l["src_ids"],
                          "decoder_ids": dec})
    np.save(os.path.join(a.work, "hf-logits.npy"), np.concatenate(arrays, axis=0))
    with open(os.path.join(a.work, "hf-logits.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False)
    report("INFO", f"hf logits: {len(cases)} lines x up to {LOGIT_STEPS} steps")


# ---------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------

def run_dump(a, model_dir, args, stdin):
    cmd = [a.dump] + args + [model_dir]
    r = subprocess.run(cmd, input=stdin, capture_output=True, timeout=3000,
                       text=isinstance(stdin, str))
    if r.returncode != 0:
        err = r.stderr if isinstance(r.stderr, str) else r.stderr.decode(errors="replace")
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {err[-500:]}")
    return r.stdout


def compare_tokenizer(a):
    from transformers import MarianTokenizer
    p = paths(a.work)
    tok = MarianTokenizer.from_pretrained(p["st"])
    eos = tok.eos_token_id
    lines = []
    for lst in dev_sets(a.dev_dir).values():
        lines += lst
    cmd = [a.tokcheck, "--ids", os.path.join(p["ours"], "vocab.json"), "source"]
    try:
        r = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True,
                           timeout=600)
    except OSError as e:
        return ok(False, f"tokenizer: cannot run {cmd[0]}: {e}")
    outs = r.stdout.split("\n")[:-1]
    if r.returncode != 0 or len(outs) != len(lines):
        return ok(False, f"tokenizer: {' '.join(cmd)} failed: exit {r.returncode}, "
                  f"{len(outs)} lines for {len(lines)}: {r.stderr[-300:]}")
    diff = []
    for line, o in zip(lines, outs):
        c = [int(x) for x in o.split()] + [eos]
        if c != tok(line)["input_ids"]:
            diff.append(line)
    ok(not diff, f"tokenizer: MarianTokenizer == C tokenizer on {len(lines) - len(diff)}/"
       f"{len(lines)} lines of {len(DEV_FILES)} dev sets (first differing: {diff[:3]})")


def ref_margin(a, model_dir, line, K, n_best, lp, max_len):
    """The float64 reference's smallest decision margin for this search."""
    import reference
    m = reference.load(model_dir, dtype=torch.float64)
    tr = {}
    reference.beam_search(m, line["src_ids"], beam=K, n_best=n_best, length_penalty=lp,
                          factor=0.0, extra=max_len, trace=tr)
    gaps = [x["gap"] for x in tr.get("margins", [])] + [tr.get("final_gap", float("inf"))]
    return min(gaps) if gaps else float("inf")


def compare_run(a, path):
    doc = json.load(open(path, encoding="utf-8"))
    p = paths(a.work)
    model_dir = p["ours_f16"] if doc["f16"] else p["ours"]
    K, nb, lp = doc["beam"], doc["n_best"], doc["length_penalty"]
    lines = doc["lines"]
    stdin = "".join(f"{l['max_len']}\t{l['src']}\n" for l in lines)
    t0 = time.time()
    out = run_dump(a, model_dir, ["--dtype", "f16" if doc["f16"] else "f32", "--beam", str(K),
                                  "--n-best", str(nb), "--length-penalty", repr(lp)], stdin)
    t_c = time.time() - t0
    got = [json.loads(x) for x in out.splitlines()]
    name = doc["run"]
    if not ok(len(got) == len(lines), f"{name}: marian_dump answered {len(got)} of {len(lines)} lines"):
        return None
    src_bad = same = ill = bad = text_bad = 0
    err_score = err_lp = 0.0
    n_hyp = fin = 0
    for l, g in zip(lines, got):
        if g["src_ids"] != l["src_ids"]:
            src_bad += 1
            continue
        ids_ok = len(g["hyps"]) == len(l["hyps"]) and all(
            x["ids"] == y["ids"] for x, y in zip(g["hyps"], l["hyps"]))
        if not ids_ok:
            mg = ref_margin(a, model_dir, l, K, nb, lp, l["max_len"])
            if mg < MARGIN:
                ill += 1
            else:
                bad += 1
                if bad <= 3:
                    print(f"  {name} differs ({l['set']}:{l['line']}, reference margin {mg:.3g}): "
                          f"{l['src'][:60]!r}\n    transformers {[h['ids'][:20] for h in l['hyps']]}\n"
                          f"    attn-translate {[h['ids'][:20] for h in g['hyps']]}")
            continue
        same += 1
        for x, y in zip(g["hyps"], l["hyps"]):
            n_hyp += 1
            fin += y["finished"]
            text_bad += x["text"] != y["text"] and 1 not in y["ids"]
            err_score = max(err_score, abs(x["score"] - y["score"]))
            err_lp = max(err_lp, abs(x["logprob"] - y["logprob"]))
            if x["finished"] != y["finished"]:
                bad += 1
    best_fin = sum(l["hyps"][0]["finished"] for l in lines)
    what = f"{name} (beam {K}, n-best {nb}, lp {lp}{', f16 file' if doc['f16'] else ''})"
    ok(src_bad == 0, f"{what}: source ids equal on {len(lines) - src_bad}/{len(lines)} lines")
    ok(bad == 0, f"{what}: token ids identical on {same}/{len(lines)} lines, {ill} ill-conditioned "
       f"(reference margin < {MARGIN}), {bad} real differences")
    ok(text_bad == 0, f"{what}: texts identical on every identical-id hypothesis without <unk> "
       f"({text_bad} differ)")
    ok(n_hyp > 0 and err_score <= SCORE_TOL,
       f"{what}: {n_hyp} hypotheses ({fin} ended with eos, {n_hyp - fin} reached the limit): "
       f"max |score - transformers| {err_score:.3g}")
    ok(n_hyp > 0 and err_lp <= SCORE_TOL, f"{what}: max |sum log p - transformers| {err_lp:.3g}")
    return {"run": name, "sets": len(DEV_FILES), "lines": len(lines), "beam": K, "n_best": nb,
            "lp": lp, "file": "f16" if doc["f16"] else "f32", "same": same, "ill": ill,
            "bad": bad, "hyps": n_hyp, "best_eos": best_fin, "best_limit": len(lines) - best_fin,
            "hyp_eos": fin, "hyp_limit": n_hyp - fin, "err_score": err_score,
            "err_logprob": err_lp, "hf_seconds": doc["seconds"], "c_seconds": t_c}


def compare_logits(a):
    cases = json.load(open(os.path.join(a.work, "hf-logits.json"), encoding="utf-8"))
    want = np.load(os.path.join(a.work, "hf-logits.npy"))
    stdin = "".join(" ".join(map(str, c["src_ids"])) + "\t" + " ".join(map(str, c["decoder_ids"]))
                    + "\n" for c in cases)
    raw = run_dump(a, paths(a.work)["ours"], ["--logits"], stdin.encode())
    got = np.frombuffer(raw, dtype="<f4").reshape(want.shape)
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    ok(err <= 1e-4, f"logits: {len(cases)} lines x {LOGIT_STEPS} steps x {want.shape[1]:,}: "
       f"max abs difference {err:.3g} (<= 1e-4)")
    return err


def stage_compare(a):
    rows = []
    compare_tokenizer(a)
    for name in a.run or RUNS:
        path = os.path.join(a.work, f"hf-{name}.json")
        if os.path.exists(path):
            r = compare_run(a, path)
            if r:
                rows.append(r)
        else:
            report("INFO", f"{name}: no transformers run in {a.work} (hf {name})")
    lerr = None
    if not a.run and os.path.exists(os.path.join(a.work, "hf-logits.npy")):
        lerr = compare_logits(a)
    meta = json.load(open(paths(a.work)["meta"]))
    with open(os.path.join(a.work, "summary-" + ("-".join(a.run) or "all") + ".json"), "w") as f:
        json.dump({"meta": meta, "runs": rows, "logits_err": lerr}, f, indent=1)
    print("\n| run | lines | beam | n-best | lp | file | ids identical | best: eos / limit | "
          "hyps: eos / limit | max Δscore | max Δsum log p | transformers s |")
    print("|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        print(f"| {r['run']} | {r['lines']} | {r['beam']} | {r['n_best']} | {r['lp']} | {r['file']} | "
              f"{r['same']} (+{r['ill']} ill) | {r['best_eos']} / {r['best_limit']} | "
              f"{r['hyp_eos']} / {r['hyp_limit']} | {r['err_score']:.2g} | {r['err_logprob']:.2g} | "
              f"{r['hf_seconds']:.0f} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=("build", "hf", "compare"))
    ap.add_argument("run", nargs="*", help="hf: one of " + ", ".join(list(RUNS) + ["logits"]) +
                    "; compare: the runs to compare (default: all)")
    ap.add_argument("--work", required=True)
    ap.add_argument("--tokdir", default=os.path.join(ROOT, "..", "shared", "models",
                                                     "opus-mt-en-fr-tokenizer"))
    ap.add_argument("--dev-dir", default=os.path.join(ROOT, "..", "shared", "data", "dev"))
    ap.add_argument("--dump", default=os.path.join(ROOT, "build", "tests", "marian_dump"))
    ap.add_argument("--tokcheck", default=os.path.join(ROOT, "build", "tests", "tokcheck"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eos-bias", default="auto", help="a number, or auto (see --eos-frac)")
    ap.add_argument("--eos-frac", type=float, default=0.8,
                    help="auto: share of greedy outputs that end with eos (the rest reach the limit)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    if a.stage == "hf":
        if len(a.run) != 1 or a.run[0] not in list(RUNS) + ["logits"]:
            ap.error("hf needs one run: " + ", ".join(list(RUNS) + ["logits"]))
        a.run = a.run[0]
    import transformers
    print(f"transformers {transformers.__version__}, torch {torch.__version__}", flush=True)
    {"build": stage_build, "hf": stage_hf, "compare": stage_compare}[a.stage](a)
    print(f"parity_marian: {results['PASS']} passed, {results['FAIL']} failed")
    return 1 if results["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())

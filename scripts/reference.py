#!/usr/bin/python3
"""Independent PyTorch reference of attn-translate (docs/FORMAT.md, docs/DECODING.md).

Reads a model directory through atmodel.py and implements, with torch.nn.functional
only (no transformers), the Marian computation of FORMAT.md and the beam search of
DECODING.md. It is written for readability and exactness, not speed; the golden
fixtures under tests/fixtures/ are produced by it in float64.

Tokenization uses the `sentencepiece` module with the `source.spm` file stored in the
model directory (an optional extra file; the C loader ignores it) or --spm PATH; pieces
are mapped to model ids through vocab.json `tokens` (a missing piece -> unk_id).

Command line:

    /usr/bin/python3 scripts/reference.py -m MODEL_DIR [--beam K] [--n-best N]
        [--length-penalty A] [--max-length-factor F] [--max-length-extra E]
        [--dtype float32|float64] [--weights f32|f16|int8] [--spm PATH] [--ids]
        < in.txt > out.txt

prints one translation per input line (with --n-best N > 1: N lines per input,
`i ||| text ||| score` as Marian prints n-best lists).

Library use:

    m = load(dir, dtype=torch.float64)
    src = encode(m, "Hello.")                        # ids, eos last
    cap = {}
    enc = forward_encoder(m, src, capture=cap)       # cap: encoder_embed, encoder_layers
    hyps = beam_search(m, src, beam=4, n_best=4)     # [Hyp(ids, score, logprob, text)]
    hyps = beam_search(m, src, attn_layer=1)         # + Hyp.attention [H, rows, S]
    logits = forward_decoder(m, enc, dec_ids, capture=cap)   # teacher-forced, full recompute
    state = decoder_init(m, enc); logits = decoder_step(m, state, tokens, parents)

Empty input: a line whose source encodes to no pieces (empty or whitespace-only; the
eos alone) is not run through the model: it yields one empty hypothesis with score 0
and logprob 0 (attn_translate.h: "An empty or whitespace-only line yields one empty
hypothesis").
"""

import argparse
import math
import os
import sys
from dataclasses import dataclass, field, replace as dc_replace

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import atmodel  # noqa: E402

UNK_SURFACE = " \u2047 "  # " ⁇ ", what spm_decode prints for <unk>
SPACE_SYMBOL = "\u2581"


# ---------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------

@dataclass
class Model:
    dir: str
    header: dict
    config: dict
    generation: dict
    vocab: dict
    w: dict                    # name -> torch tensor in `dtype`
    positions: torch.Tensor    # [max_positions, d], f32 sinusoids widened to dtype
    dtype: torch.dtype
    sp: object = None          # sentencepiece.SentencePieceProcessor or None
    piece_to_id: dict = field(default_factory=dict)
    weights: str = "f32"       # how linear layers multiply: f32, f16 or int8 (see qlinear)
    lin: dict = field(default_factory=dict)  # weight name -> f16-rounded tensor or (q, scale)

    @property
    def eos(self):
        return self.config["eos_token_id"]

    @property
    def pad(self):
        return self.config["pad_token_id"]

    @property
    def unk(self):
        return self.config["unk_token_id"]


def quantize_rows_int8(x):
    """Symmetric per-row int8 as lib/gemm.c does it, in float32: scale = amax / 127,
    q = round-half-even(x * (127 / amax)) clamped to ±127 (a zero row: scale 0, q 0).
    Returns (q, scale) as float32 tensors, scale with a trailing dimension of 1."""
    x = x.to(torch.float32)
    amax = x.abs().amax(dim=-1, keepdim=True)
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    inv = torch.where(amax > 0, torch.tensor(127.0, dtype=torch.float32) / safe,
                      torch.zeros_like(amax))
    return torch.round(x * inv).clamp(-127, 127), amax / 127.0


def linear_weight_names(m):
    names = [k for k in m.w if k.endswith(("_proj.weight", ".fc1.weight", ".fc2.weight"))]
    return names + [atmodel.embedding_names(m.config)[2]]


def load(model_dir, dtype=torch.float64, spm_path=None, weights="f32"):
    """Load a model directory. Weights are read as float32 (f16 widened), then converted
    to `dtype`; positions are computed in float64, rounded to float32, then converted.
    `weights` (f32, f16, int8) says how linear layers multiply, as `--dtype` in the C
    engine: f16 rounds their weights to half; int8 quantizes them per row (qlinear)."""
    stored_int8 = {}
    header, tensors = atmodel.read_model(model_dir, int8=stored_int8)
    cfg = header["config"]
    vocab = atmodel.read_vocab(model_dir)
    if len(vocab["tokens"]) != cfg["vocab_size"]:
        raise atmodel.FormatError(
            f"vocab.json: {len(vocab['tokens'])} tokens, vocab_size {cfg['vocab_size']}")
    w = {k: torch.from_numpy(np.array(v)).to(dtype) for k, v in tensors.items()}
    pos = atmodel.sinusoidal_positions(cfg["max_position_embeddings"], cfg["d_model"])
    m = Model(dir=model_dir, header=header, config=cfg,
              generation=atmodel.generation_with_defaults(header), vocab=vocab, w=w,
              positions=torch.from_numpy(pos).to(dtype), dtype=dtype)
    m.weights = weights
    for k in linear_weight_names(m):
        w32 = torch.from_numpy(np.array(tensors[k])).to(torch.float32)
        if weights == "f16":
            m.lin[k] = w32.to(torch.float16).to(dtype)
        elif weights == "int8" and k in stored_int8:  # stored as i8: used as stored
            q, scale = stored_int8[k]
            m.lin[k] = (torch.from_numpy(q), torch.from_numpy(scale).reshape(-1, 1))
        elif weights == "int8":
            m.lin[k] = quantize_rows_int8(w32)
        elif weights != "f32":
            raise ValueError(f"weights must be f32, f16 or int8, not {weights!r}")
    m.piece_to_id = {}
    for i, t in enumerate(vocab["tokens"]):
        m.piece_to_id.setdefault(t, i)  # first id wins if a piece appears twice
    path = spm_path or os.path.join(model_dir, "source.spm")
    if os.path.exists(path):
        import sentencepiece
        m.sp = sentencepiece.SentencePieceProcessor()
        m.sp.Load(path)
    return m


# ---------------------------------------------------------------------------------------
# tokenization
# ---------------------------------------------------------------------------------------

def encode(m, text):
    """Source ids of one line: SentencePiece pieces mapped through vocab.json `tokens`
    (missing -> unk_id), then eos."""
    if m.sp is None:
        raise RuntimeError(f"no source.spm in {m.dir} (use --spm)")
    pieces = m.sp.EncodeAsPieces(text)
    return [m.piece_to_id.get(p, m.unk) for p in pieces] + [m.eos]


def decode(m, ids, subst=None):
    """FORMAT.md detokenization, as spm_decode does it: ids -> tokens, drop eos and pad,
    unk -> ' ⁇ ', U+2581 -> ' ', and the space add_dummy_prefix put before the text
    removed: each leading piece loses one U+2581 until one leaves text (an unk's surface
    keeps its spaces). subst (optional): position -> piece text written instead of an
    unk there (replace_unknowns), treated as a piece."""
    parts = []
    first = True
    for n, i in enumerate(ids):
        if i == m.eos or i == m.pad:
            continue
        if i == m.unk and not (subst and n in subst):
            p = UNK_SURFACE
        else:
            p = subst[n] if i == m.unk else m.vocab["tokens"][i]
            if first and p.startswith(SPACE_SYMBOL):
                p = p[1:]
        if p:
            first = False
        parts.append(p)
    return "".join(parts).replace(SPACE_SYMBOL, " ")


# ---------------------------------------------------------------------------------------
# neural-net blocks
# ---------------------------------------------------------------------------------------

def activation(name, x):
    if name in ("swish", "silu"):
        return x * torch.sigmoid(x)
    if name == "relu":
        return torch.relu(x)
    if name == "gelu":  # exact (erf) GELU
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    raise ValueError(name)


def qlinear(m, x, name, bias):
    """x · Wᵀ + bias for weight `name` in the model's weight dtype. int8: x is
    quantized per row like the weights; the integer products are exact in float64;
    the two scales multiply in float32 (as in the C epilogue), the rest in `dtype`."""
    if m.weights == "f32":
        return F.linear(x, m.w[name], bias)
    if m.weights == "f16":
        return F.linear(x, m.lin[name], bias)
    q, sw = m.lin[name]
    xq, sx = quantize_rows_int8(x)
    acc = xq.to(torch.float64) @ q.to(torch.float64).T
    scale = (sx * sw.reshape(-1)).to(torch.float64)
    return (acc * scale).to(x.dtype) + bias


def linear(m, x, prefix):
    return qlinear(m, x, prefix + ".weight", m.w[prefix + ".bias"])


def layer_norm(m, x, prefix):
    d = m.config["d_model"]
    return F.layer_norm(x, (d,), m.w[prefix + ".weight"], m.w[prefix + ".bias"],
                        eps=m.config["layer_norm_eps"])


def split_heads(x, heads):
    """[..., T, d] -> [..., heads, T, hd]"""
    *lead, T, d = x.shape
    return x.reshape(*lead, T, heads, d // heads).transpose(-3, -2)


def merge_heads(x):
    """[..., heads, T, hd] -> [..., T, d]"""
    *lead, H, T, hd = x.shape
    return x.transpose(-3, -2).reshape(*lead, T, H * hd)


def attend(q, k, v, mask=None):
    """q [..., H, Tq, hd] (already scaled), k/v [..., H, Tk, hd]; mask [Tq, Tk] bool
    (True = masked out). Softmax over keys per head."""
    s = q @ k.transpose(-1, -2)
    if mask is not None:
        s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def project_q(m, x, prefix, heads):
    hd = m.config["d_model"] // heads
    return split_heads(linear(m, x, prefix + ".q_proj") / math.sqrt(hd), heads)


def project_kv(m, x, prefix, heads):
    return (split_heads(linear(m, x, prefix + ".k_proj"), heads),
            split_heads(linear(m, x, prefix + ".v_proj"), heads))


def attention_weights(q, k):
    """Softmax attention weights [..., H, Tq, Tk] of q [..., H, Tq, hd] (already scaled)
    over k [..., H, Tk, hd], unmasked: the same numbers as inside attend()."""
    return torch.softmax(q @ k.transpose(-1, -2), dim=-1)


def attention(m, x, kv_src, prefix, heads, causal=False):
    """Full (non-incremental) multi-head attention of x [T, d] over kv_src [S, d]."""
    q = project_q(m, x, prefix, heads)
    k, v = project_kv(m, kv_src, prefix, heads)
    mask = None
    if causal:
        T = x.shape[-2]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    return linear(m, merge_heads(attend(q, k, v, mask)), prefix + ".out_proj")


def embed(m, ids, table, first_position=0):
    """E[id] * (scale_embedding ? sqrt(d) : 1) + P[position]; ids: LongTensor [..., T].
    With int8 weights, a table that is also the output projection (tied) is looked up in
    its int8 form, E[id] = q[id] * scale[id], as the C engine does, and like the int8
    quantizer (quantize_rows_int8) the result is computed in float32, rounded as the
    engine rounds it. It is the input of the first int8 quantizer, which turns a last-bit
    difference into a different q: computed in float64, the fixture's scores moved by up to
    ~0.04 on the tiny test models."""
    cfg = m.config
    if m.weights == "int8" and table == atmodel.embedding_names(cfg)[2]:
        q, scale = m.lin[table]
        x = (q[ids] * scale[ids]).to(torch.float32)
        if cfg["scale_embedding"]:
            x = x * torch.tensor(math.sqrt(cfg["d_model"]), dtype=torch.float32)
        T = ids.shape[-1]
        pos = m.positions[first_position:first_position + T].to(torch.float32)
        return (x + pos).to(m.dtype)
    x = m.w[table][ids]
    if cfg["scale_embedding"]:
        x = x * math.sqrt(cfg["d_model"])
    T = ids.shape[-1]
    return x + m.positions[first_position:first_position + T]


# ---------------------------------------------------------------------------------------
# encoder and decoder
# ---------------------------------------------------------------------------------------

def forward_encoder(m, src_ids, capture=None):
    """Encoder output [S, d]. capture (dict, optional) gets 'encoder_embed' [S, d] and
    'encoder_layers' (list of [S, d], the output of each layer)."""
    cfg = m.config
    H = cfg["encoder_attention_heads"]
    enc_table, _, _ = atmodel.embedding_names(cfg)
    if len(src_ids) > cfg["max_position_embeddings"]:
        raise ValueError("source longer than max_position_embeddings")
    x = embed(m, torch.tensor(src_ids, dtype=torch.long), enc_table)
    if capture is not None:
        capture["encoder_embed"] = x.clone()
        capture["encoder_layers"] = []
    for n in range(cfg["encoder_layers"]):
        p = f"encoder.layers.{n}"
        x = layer_norm(m, x + attention(m, x, x, p + ".self_attn", H), p + ".self_attn_layer_norm")
        h = linear(m, activation(cfg["activation_function"], linear(m, x, p + ".fc1")), p + ".fc2")
        x = layer_norm(m, x + h, p + ".final_layer_norm")
        if capture is not None:
            capture["encoder_layers"].append(x.clone())
    return x


def output_logits(m, x):
    """logits = x · Wlmᵀ + final_logits_bias (bad_words_ids NOT applied here)."""
    _, _, lm = atmodel.embedding_names(m.config)
    return qlinear(m, x, lm, m.w["final_logits_bias"])


def forward_decoder(m, enc, dec_ids, capture=None):
    """Teacher-forced full recompute: dec_ids [T] (starting with decoder_start_token_id)
    -> logits [T, V]. capture gets 'decoder_embed' [T, d], 'decoder_layers' (list of
    [T, d]), 'logits' and 'cross_attention' (list per layer of the encoder-attention
    weights [H, T, S]; row t is the distribution when dec_ids[t] is fed, i.e. when the
    token after it is predicted)."""
    cfg = m.config
    H = cfg["decoder_attention_heads"]
    _, dec_table, _ = atmodel.embedding_names(cfg)
    x = embed(m, torch.tensor(dec_ids, dtype=torch.long), dec_table)
    if capture is not None:
        capture["decoder_embed"] = x.clone()
        capture["decoder_layers"] = []
        capture["cross_attention"] = []
    for n in range(cfg["decoder_layers"]):
        p = f"decoder.layers.{n}"
        x = layer_norm(m, x + attention(m, x, x, p + ".self_attn", H, causal=True),
                       p + ".self_attn_layer_norm")
        if capture is not None:
            q = project_q(m, x, p + ".encoder_attn", H)
            k, _ = project_kv(m, enc, p + ".encoder_attn", H)
            capture["cross_attention"].append(attention_weights(q, k).clone())
        x = layer_norm(m, x + attention(m, x, enc, p + ".encoder_attn", H),
                       p + ".encoder_attn_layer_norm")
        h = linear(m, activation(cfg["activation_function"], linear(m, x, p + ".fc1")), p + ".fc2")
        x = layer_norm(m, x + h, p + ".final_layer_norm")
        if capture is not None:
            capture["decoder_layers"].append(x.clone())
    logits = output_logits(m, x)
    if capture is not None:
        capture["logits"] = logits.clone()
    return logits


@dataclass
class DecoderState:
    """Incremental decoding state for B hypotheses."""
    cross_kv: list            # per layer (k, v) [H, S, hd], shared by all hypotheses
    self_kv: list             # per layer (k, v) [B, H, t, hd] or None before step 1
    t: int = 0                # positions already fed
    attn: object = None       # [B, H, S] cross-attention of the requested layer, last step


def decoder_init(m, enc):
    H = m.config["decoder_attention_heads"]
    cross = [project_kv(m, enc, f"decoder.layers.{n}.encoder_attn", H)
             for n in range(m.config["decoder_layers"])]
    return DecoderState(cross_kv=cross, self_kv=[None] * m.config["decoder_layers"])


def decoder_step(m, state, tokens, parents=None, attn_layer=None):
    """Feed one token per hypothesis at position state.t.

    tokens: list of B ids. parents: list of B indices into the previous step's
    hypotheses (the self-attention caches are reordered by them); None at step 0.
    attn_layer (optional): decoder layer whose cross-attention weights [B, H, S] are
    left in state.attn. Returns logits [B, V]."""
    cfg = m.config
    H = cfg["decoder_attention_heads"]
    _, dec_table, _ = atmodel.embedding_names(cfg)
    if parents is not None:
        idx = torch.tensor(parents, dtype=torch.long)
        state.self_kv = [(k[idx], v[idx]) for k, v in state.self_kv]
    ids = torch.tensor(tokens, dtype=torch.long)[:, None]           # [B, 1]
    x = embed(m, ids, dec_table, first_position=state.t)             # [B, 1, d]
    for n in range(cfg["decoder_layers"]):
        p = f"decoder.layers.{n}"
        q = project_q(m, x, p + ".self_attn", H)                     # [B, H, 1, hd]
        k, v = project_kv(m, x, p + ".self_attn", H)
        if state.self_kv[n] is not None:
            k = torch.cat([state.self_kv[n][0], k], dim=2)
            v = torch.cat([state.self_kv[n][1], v], dim=2)
        state.self_kv[n] = (k, v)
        a = linear(m, merge_heads(attend(q, k, v)), p + ".self_attn.out_proj")
        x = layer_norm(m, x + a, p + ".self_attn_layer_norm")
        q = project_q(m, x, p + ".encoder_attn", H)
        ck, cv = state.cross_kv[n]
        if n == attn_layer:
            state.attn = attention_weights(q, ck)[:, :, 0, :].clone()   # [B, H, S]
        a = linear(m, merge_heads(attend(q, ck, cv)), p + ".encoder_attn.out_proj")
        x = layer_norm(m, x + a, p + ".encoder_attn_layer_norm")
        h = linear(m, activation(cfg["activation_function"], linear(m, x, p + ".fc1")), p + ".fc2")
        x = layer_norm(m, x + h, p + ".final_layer_norm")
    state.t += 1
    return output_logits(m, x[:, 0, :])


def log_probs(m, logits):
    """logits[bad] = -inf; logp = logits - logsumexp(logits)   (DECODING.md)."""
    logits = logits.clone()
    bad = m.generation["bad_words_ids"]
    if bad:
        logits[..., bad] = float("-inf")
    return logits - torch.logsumexp(logits, dim=-1, keepdim=True)


# ---------------------------------------------------------------------------------------
# beam search (DECODING.md, one code path for greedy and beam)
# ---------------------------------------------------------------------------------------

@dataclass
class Hyp:
    ids: list          # generated ids, eos excluded
    score: float       # logprob / length^lp
    logprob: float     # sum of token log-probabilities (eos included when finished)
    length: int        # generated tokens counted for the penalty (eos included)
    finished: bool     # ended with eos (False: reached max_len)
    text: str = ""
    attention: object = None   # with attn_layer: np.float64 [H, rows, S], rows = length


def max_target_length(m, S, factor=2.0, extra=10):
    """max_len = min(floor(factor*S) + extra, max_length - 1, max_positions - 1), >= 1."""
    n = min(int(math.floor(factor * S)) + extra,
            m.generation["max_length"] - 1,
            m.config["max_position_embeddings"] - 1)
    return max(n, 1)


def beam_search(m, src_ids, beam=None, n_best=1, length_penalty=None, factor=2.0, extra=10,
                incremental=True, trace=None, attn_layer=None):
    """DECODING.md's beam search. Returns up to n_best Hyp, best first.

    incremental=False recomputes the whole decoder for every hypothesis at every step
    (used by the tests). trace (dict, optional) gets 'margins': one entry per step
    {'t', 'gap'} with the smallest gap between candidate totals that decides that step
    (see decision_margin) and 'final_gap' for the n-best order.

    attn_layer (optional, 0-based decoder layer): every returned Hyp gets `attention`,
    the cross-attention weights of that layer, np.float64 [H, rows, S]: row r is the
    distribution over source positions when generated token r (eos included) was
    predicted. Each hypothesis carries its own rows, extended from its parent's at
    every step (the beam back-pointers), so the rows belong to the returned prefix.
    The search itself is unchanged. The empty input (no model run) gets None."""
    K = beam if beam is not None else m.generation["num_beams"]
    lp = length_penalty if length_penalty is not None else m.generation["length_penalty"]
    if K < 1 or n_best < 1:
        raise ValueError("beam and n_best must be >= 1")
    eos, start = m.eos, m.config["decoder_start_token_id"]
    if len(src_ids) <= 1:  # nothing but eos: one empty hypothesis, model not run
        return [Hyp(ids=[], score=0.0, logprob=0.0, length=0, finished=True, text="")]
    S = len(src_ids)
    max_len = max_target_length(m, S, factor, extra)
    enc = forward_encoder(m, src_ids)
    state = decoder_init(m, enc) if incremental else None

    live = [([], 0.0)]          # (prefix, sum)
    live_attn = [[]]            # with attn_layer: per live hypothesis its rows [H, S]
    parents = None
    final = []                  # (prefix incl. eos, total, score, length, finished)
    final_attn = []             # parallel to final: rows [H, S] per generated token
    margins = []
    for t in range(1, max_len + 1):
        step_attn = None
        if incremental:
            tokens = [start] if t == 1 else [p[-1] for p, _ in live]
            logits = decoder_step(m, state, tokens, parents, attn_layer)
            if attn_layer is not None:
                step_attn = state.attn.to(torch.float64).numpy()              # [B, H, S]
        elif attn_layer is None:
            logits = torch.stack([forward_decoder(m, enc, [start] + p)[-1] for p, _ in live])
        else:
            rows, caps = [], []
            for p, _ in live:
                cap = {}
                rows.append(forward_decoder(m, enc, [start] + p, capture=cap)[-1])
                caps.append(cap["cross_attention"][attn_layer][:, -1, :])
            logits = torch.stack(rows)
            step_attn = torch.stack(caps).to(torch.float64).numpy()
        logp = log_probs(m, logits).to(torch.float64).numpy()      # [B, V]
        B, V = logp.shape
        sums = np.array([s for _, s in live], dtype=np.float64)
        total = (sums[:, None] + logp).reshape(-1)
        b_idx = np.repeat(np.arange(B), V)
        v_idx = np.tile(np.arange(V), B)
        # sort by total descending; ties: lower b first, then lower v first
        full = np.lexsort((v_idx, b_idx, -total))
        order = full[:2 * K]
        nxt, nxt_parent, nxt_attn = [], [], []
        last_rank = -1
        for rank, c in enumerate(order):
            tot, b, v = float(total[c]), int(b_idx[c]), int(v_idx[c])
            if tot == float("-inf"):
                break  # only bad words left (never kept)
            last_rank = rank
            rows_b = live_attn[b] + [step_attn[b]] if step_attn is not None else None
            if v == eos:
                if rank < K:
                    final.append((live[b][0] + [eos], tot, tot / (t ** lp), t, True))
                    final_attn.append(rows_b)
            else:
                nxt.append((live[b][0] + [v], tot))
                nxt_parent.append(b)
                nxt_attn.append(rows_b)
            if len(nxt) == K:
                break
        stop = len(final) >= K
        if trace is not None:
            margins.append({"t": t, "gap": decision_margin(total[full], v_idx[full], K,
                                                           last_rank, eos, stop)})
        if stop:
            break
        if t == max_len:
            for (prefix, s), rows_b in zip(nxt, nxt_attn):
                final.append((prefix, s, s / (t ** lp), t, False))
                final_attn.append(rows_b)
            break
        live, parents, live_attn = nxt, nxt_parent, nxt_attn

    # sort by score descending; ties: earlier finished first (stable sort)
    order_f = sorted(range(len(final)), key=lambda i: -final[i][2])
    final_sorted = [final[i] for i in order_f]
    attn_sorted = [final_attn[i] for i in order_f]
    if trace is not None:
        scores = [f[2] for f in final_sorted]
        gaps = [scores[i] - scores[i + 1] for i in range(min(n_best, len(scores) - 1))]
        trace["margins"] = margins
        trace["final_gap"] = min(gaps) if gaps else float("inf")
        trace["max_len"] = max_len
    out = []
    for (prefix, tot, score, length, finished), rows in zip(final_sorted[:n_best], attn_sorted):
        ids = [i for i in prefix if i != eos] if finished else list(prefix)
        att = None
        if attn_layer is not None:
            att = np.stack(rows, axis=1)                                     # [H, rows, S]
        out.append(Hyp(ids=ids, score=score, logprob=tot, length=length, finished=finished,
                       text=decode(m, ids), attention=att))
    return out


def decision_margin(totals, vs, K, last_rank, eos, stop):
    """Smallest difference between sorted candidate totals on which one step's outcome
    depends (float32 engines reproduce the ids when it is well above their rounding):
    - rank K-1 vs rank K when either is eos (an eos is kept only at rank < K);
    - unless the search stops at this step, the last consumed candidate vs the next
      one (which non-eos candidates become the live hypotheses).
    For K = 1 this is top-1 vs top-2 (or, when top-1 is eos, eos vs the runner-up)."""
    gaps = []
    n = len(totals)
    if K < n and (vs[K - 1] == eos or vs[K] == eos):
        gaps.append(totals[K - 1] - totals[K])
    if K == 1:
        gaps.append(totals[0] - totals[1])
    elif not stop and last_rank + 1 < n:
        gaps.append(totals[last_rank] - totals[last_rank + 1])
    gaps = [g for g in gaps if np.isfinite(g)]
    return float(min(gaps)) if gaps else float("inf")


def replace_unknowns(m, src_ids, pieces, hyps):
    """The engine's at_options.replace_unknowns, written independently: each generated unk
    becomes the text of the unknown source piece (an id equal to unk_id) on which the
    last decoder layer's cross-attention, summed over heads (float64), is largest at that
    step (the first of equals). hyps must carry attention of the last layer. Returns new
    Hyp objects with the text replaced; ids, scores and attention are kept."""
    unk_pos = [j for j, i in enumerate(src_ids) if i == m.unk]
    out = []
    for h in hyps:
        subst = {}
        for r, i in enumerate(h.ids):
            if i == m.unk and unk_pos:
                w = h.attention[:, r, :].sum(axis=0)
                best = max(unk_pos, key=lambda j: (w[j], -j))
                subst[r] = pieces[best]
        out.append(dc_replace(h, text=decode(m, h.ids, subst)))
    return out


def translate(m, text, beam=None, n_best=1, length_penalty=None, factor=2.0, extra=10,
              replace_unk=False):
    src_ids = encode(m, text)
    if not (replace_unk and m.unk in src_ids[:-1]):
        return beam_search(m, src_ids, beam, n_best, length_penalty, factor, extra)
    hyps = beam_search(m, src_ids, beam, n_best, length_penalty, factor, extra,
                       attn_layer=m.config["decoder_layers"] - 1)
    return replace_unknowns(m, src_ids, m.sp.EncodeAsPieces(text), hyps)


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True, help="model directory")
    ap.add_argument("--beam", type=int, default=None, help="beam size (default: model's num_beams)")
    ap.add_argument("--n-best", type=int, default=1)
    ap.add_argument("--length-penalty", type=float, default=None)
    ap.add_argument("--max-length-factor", type=float, default=2.0)
    ap.add_argument("--max-length-extra", type=int, default=10)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--weights", choices=["f32", "f16", "int8"], default="f32",
                    help="linear-layer weights as the engine's --dtype (default f32)")
    ap.add_argument("--spm", default=None, help="source SentencePiece model (default MODEL/source.spm)")
    ap.add_argument("--ids", action="store_true", help="print ids instead of text")
    ap.add_argument("--replace-unknowns", action="store_true",
                    help="write a generated unk as the source text the attention points at "
                         "(the engine's at_options.replace_unknowns; its CLI's default)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    m = load(a.model, dtype=getattr(torch, a.dtype), spm_path=a.spm, weights=a.weights)
    out = sys.stdout
    for i, line in enumerate(sys.stdin.buffer):
        text = line.decode("utf-8").rstrip("\n").rstrip("\r")
        hyps = translate(m, text, a.beam, a.n_best, a.length_penalty,
                         a.max_length_factor, a.max_length_extra, a.replace_unknowns)
        for h in hyps:
            s = " ".join(map(str, h.ids)) if a.ids else h.text
            if a.n_best > 1:
                out.write(f"{i} ||| {s} ||| {h.score:.6f}\n")
            else:
                out.write(s + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

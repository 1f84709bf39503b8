#!/usr/bin/python3
"""Train an English->French Transformer that exports to attn-translate's model format.

The network is exactly the MarianMTModel architecture of docs/FORMAT.md (post-norm,
fixed sinusoidal positions, shared+tied embeddings scaled by sqrt(d_model), zero
final_logits_bias) with the parameter names of its tensor table, so export is a rename-free
copy of the state_dict (scripts/export.py).

Pipeline (each stage is skipped when its output already exists in OUT/data):
  1. joint SentencePiece unigram model: spm_train on the corpus (both sides), pieces
     </s>=0, <unk>=1, <pad>=2, no <s>  -> OUT/data/spm.model
  2. pre-tokenization into a compact binary OUT/data/train.npz (int16 ids when the vocab
     fits, int32 otherwise, + int32 offsets) and OUT/data/dev.npz; OUT/data is small
     (~20-30 MB for 300k pairs) and is all a GPU machine needs (--data)
  3. training: dropout, label smoothing, Adam(0.9, 0.98) with linear warmup and inverse
     square-root decay, length-bucketed batches of ~--max-tokens tokens, bf16 autocast on
     CUDA (float32 on CPU), dev loss + greedy BLEU every --eval-every steps, checkpoints
     OUT/ckpt-STEP.pt (last --keep kept) and OUT/last.pt, --resume, --max-minutes
  4. --average N: OUT/averaged.pt = mean of the last N checkpoints
  5. --export DIR: scripts/export.py of the final (averaged if any) checkpoint

Usage:
  /usr/bin/python3 scripts/train.py --corpus /tmp/attn-corpus --out /tmp/attn-train \
      [--vocab-size 16000] [--d-model 512 --heads 8 --ffn 2048 --enc-layers 6 --dec-layers 6]
      [--max-minutes 30] [--average 5] [--export /tmp/attn-train/export] [--resume]
  /usr/bin/python3 scripts/train.py --smoke --out /tmp/smoke     # CI: tiny, CPU, < 60 s
  /usr/bin/python3 scripts/train.py --prepare-only --corpus C --out O  # just OUT/data
"""

import argparse
import contextlib
import glob
import importlib.util
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time


def _openblas_coretype():
    """OpenBLAS 0.3.21 (Debian 12) does not recognise some newer x86 CPUs and falls back to
    its 'Prescott' kernels, 6x slower than its AVX-512 ones (19 vs 122 GFLOP/s measured on
    an AVX-512 Xeon; docs/TRAINING.md). Name the kernel family from /proc/cpuinfo before
    numpy or torch loads OpenBLAS, unless OPENBLAS_CORETYPE is set already."""
    if os.environ.get("OPENBLAS_CORETYPE"):
        return
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    except OSError:
        return
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(flags):
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif {"avx2", "fma"} <= set(flags):
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"


_openblas_coretype()

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import atmodel  # noqa: E402

EOS_ID, UNK_ID, PAD_ID = 0, 1, 2
DEFAULT_DEV = ("/work/shared/data/dev/tatoeba-test-v2021-08-07.eng",
               "/work/shared/data/dev/tatoeba-test-v2021-08-07.fra")


def load_eval_module():
    spec = importlib.util.spec_from_file_location("at_eval", os.path.join(HERE, "eval.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def autocast(enabled, device_type="cuda"):
    """bf16 autocast on CUDA, or on the CPU with --cpu-bf16 (worth it where the CPU has
    avx512_bf16); a no-op context otherwise."""
    if enabled:
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_has_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            return "avx512_bf16" in f.read()
    except OSError:
        return False


def load_model_dir_weights(model, model_dir):
    """Initialises `model` from an exported attn-translate model directory (f32, f16 or int8
    file; int8 weights are dequantized): a campaign resumes from the committed model on a
    machine that has lost its checkpoints. Returns the directory's config."""
    header, tensors = atmodel.read_model(model_dir)
    state = model.state_dict()
    missing = [k for k in state if k not in tensors and k != "final_logits_bias"]
    if missing:
        raise SystemExit(f"--init-from {model_dir}: no tensors {missing[:5]}")
    with torch.no_grad():
        for k, v in state.items():
            if k in tensors:
                src = torch.from_numpy(np.ascontiguousarray(tensors[k], dtype=np.float32))
                if tuple(src.shape) != tuple(v.shape):
                    raise SystemExit(f"--init-from {model_dir}: {k} has shape {tuple(src.shape)}, "
                                     f"the model {tuple(v.shape)}")
                v.copy_(src)
    return header["config"]


def jemalloc_purger():
    """A function that returns jemalloc's dirty pages to the kernel, when this process runs
    under jemalloc (LD_PRELOAD, docs/TRAINING.md); None otherwise. The fast setting, page
    decay off (MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1), never purges, and with
    bf16 autocast the freed blocks stop being reused: a worker grew to 17 GB in 15 minutes.
    Any positive decay (tried on a Zen 4: jemalloc's default, and 10 s with and without its
    oversize arena) hands pages back as they age, and a third of the time went to page
    faults (1,950 instead of 2,900 target tokens/s). Purging every few dozen steps keeps
    both the speed and the bound (RSS 1.3-1.9 GB a worker)."""
    import ctypes
    try:
        mallctl = ctypes.CDLL(None).mallctl
    except (OSError, AttributeError):
        return None
    mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_size_t]
    mallctl.restype = ctypes.c_int
    return lambda: mallctl(b"arena.4096.purge", None, None, None, 0)  # MALLCTL_ARENAS_ALL


def log(*a):
    print(time.strftime("[%H:%M:%S]"), *a, flush=True)


# ------------------------------------------------------------------------------------
# data preparation
# ------------------------------------------------------------------------------------

def read_lines(path, limit=None):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            out.append(line.rstrip("\n").rstrip("\r"))
            if limit and len(out) >= limit:
                break
    return out


def train_spm(en, fr, prefix, vocab_size, threads, max_sentences=2000000):
    txt = prefix + ".input.txt"
    rng = random.Random(1)
    lines = en + fr
    if len(lines) > max_sentences:
        lines = rng.sample(lines, max_sentences)
    with open(txt, "w", encoding="utf-8") as f:
        for l in lines:
            f.write(l + "\n")
    cmd = ["spm_train", f"--input={txt}", f"--model_prefix={prefix}", "--model_type=unigram",
           f"--vocab_size={vocab_size}", "--character_coverage=0.9999",
           f"--eos_id={EOS_ID}", f"--unk_id={UNK_ID}", f"--pad_id={PAD_ID}", "--bos_id=-1",
           "--eos_piece=</s>", "--unk_piece=<unk>", "--pad_piece=<pad>",
           "--hard_vocab_limit=false", f"--num_threads={threads}",
           "--input_sentence_size=2000000", "--shuffle_input_sentence=true"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-3000:])
        raise SystemExit("spm_train failed")
    os.remove(txt)


def encode_all(sp, lines, max_len):
    ids = sp.EncodeAsIds(lines)
    return [x[:max_len - 1] for x in ids]


def pack(seqs, dtype):
    lens = np.array([len(s) for s in seqs], dtype=np.int32)
    offs = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lens, out=offs[1:])
    flat = np.fromiter((t for s in seqs for t in s), dtype=dtype, count=int(offs[-1]))
    return flat, offs


def prepare(args, data_dir):
    import sentencepiece as spm
    os.makedirs(data_dir, exist_ok=True)
    spm_path = os.path.join(data_dir, "spm.model")
    en = read_lines(os.path.join(args.corpus, "train.en"), args.limit_pairs)
    fr = read_lines(os.path.join(args.corpus, "train.fr"), args.limit_pairs)
    if len(en) != len(fr):
        raise SystemExit("train.en/train.fr differ in length")
    if not os.path.exists(spm_path):
        t0 = time.time()
        train_spm(en, fr, os.path.join(data_dir, "spm"), args.vocab_size, args.threads)
        log(f"spm_train: vocab {args.vocab_size} in {time.time() - t0:.1f} s")
    sp = spm.SentencePieceProcessor()
    sp.Load(spm_path)
    V = sp.GetPieceSize()
    assert sp.IdToPiece(EOS_ID) == "</s>" and sp.IdToPiece(UNK_ID) == "<unk>" and sp.IdToPiece(PAD_ID) == "<pad>"
    dtype = np.int16 if V <= 32767 else np.int32
    train_npz = os.path.join(data_dir, "train.npz")
    if not os.path.exists(train_npz):
        t0 = time.time()
        src = encode_all(sp, en, args.max_len)
        tgt = encode_all(sp, fr, args.max_len)
        s_flat, s_off = pack(src, dtype)
        t_flat, t_off = pack(tgt, dtype)
        np.savez(train_npz + ".tmp.npz", src=s_flat, src_off=s_off, tgt=t_flat, tgt_off=t_off,
                 vocab_size=np.int64(V))
        os.replace(train_npz + ".tmp.npz", train_npz)
        log(f"tokenized {len(en)} pairs ({len(s_flat)} src + {len(t_flat)} tgt tokens) "
            f"in {time.time() - t0:.1f} s -> {os.path.getsize(train_npz) / 2**20:.1f} MiB")
    dev_npz = os.path.join(data_dir, "dev.npz")
    if not os.path.exists(dev_npz):
        dsrc = read_lines(args.dev_src, args.dev_lines)
        dref = read_lines(args.dev_ref, args.dev_lines)
        s_flat, s_off = pack(encode_all(sp, dsrc, args.max_len), dtype)
        t_flat, t_off = pack(encode_all(sp, dref, args.max_len), dtype)
        np.savez(dev_npz, src=s_flat, src_off=s_off, tgt=t_flat, tgt_off=t_off,
                 vocab_size=np.int64(V))
        with open(os.path.join(data_dir, "dev.ref"), "w", encoding="utf-8") as f:
            f.write("\n".join(dref) + "\n")
    return data_dir


class Data:
    def __init__(self, path):
        z = np.load(path)
        self.src, self.src_off = z["src"], z["src_off"]
        self.tgt, self.tgt_off = z["tgt"], z["tgt_off"]
        self.vocab_size = int(z["vocab_size"])
        self.src_len = np.diff(self.src_off).astype(np.int32) + 1   # + eos
        self.tgt_len = np.diff(self.tgt_off).astype(np.int32) + 1   # + eos / start
        keep = (self.src_len > 1) & (self.tgt_len > 1)
        self.index = np.nonzero(keep)[0]

    def __len__(self):
        return len(self.index)

    def batches(self, max_tokens, rng, shuffle=True):
        """Length-bucketed batches: sort by (noisy) length, cut so that
        n_sentences * max_len <= max_tokens on both sides, shuffle the batches."""
        idx = self.index
        L = np.maximum(self.src_len[idx], self.tgt_len[idx]).astype(np.float64)
        if shuffle:
            L = L + rng.uniform(-0.5, 0.5, size=len(L))
        order = idx[np.argsort(L, kind="stable")]
        out, cur, cur_max = [], [], 0
        for i in order:
            m = max(self.src_len[i], self.tgt_len[i])
            if cur and max(cur_max, m) * (len(cur) + 1) > max_tokens:
                out.append(cur)
                cur, cur_max = [], 0
            cur.append(i)
            cur_max = max(cur_max, m)
        if cur:
            out.append(cur)
        if shuffle:
            rng.shuffle(out)
        return out

    def tensors(self, ids, device):
        B = len(ids)
        S = int(self.src_len[ids].max())
        T = int(self.tgt_len[ids].max())
        src = np.full((B, S), PAD_ID, dtype=np.int64)
        dec_in = np.full((B, T), PAD_ID, dtype=np.int64)
        labels = np.full((B, T), PAD_ID, dtype=np.int64)
        for b, i in enumerate(ids):
            s = self.src[self.src_off[i]:self.src_off[i + 1]]
            t = self.tgt[self.tgt_off[i]:self.tgt_off[i + 1]]
            src[b, :len(s)] = s
            src[b, len(s)] = EOS_ID
            dec_in[b, 1:len(t) + 1] = t          # dec_in[b, 0] = PAD = decoder start
            labels[b, :len(t)] = t
            labels[b, len(t)] = EOS_ID
        f = lambda a: torch.from_numpy(a).to(device, non_blocking=True)
        return f(src), f(dec_in), f(labels)


# ------------------------------------------------------------------------------------
# model (names = docs/FORMAT.md tensor table)
# ------------------------------------------------------------------------------------

class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h = heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x, kv, mask):
        """mask: bool, broadcastable to [B, H, T, S], True = may attend."""
        B, T, d = x.shape
        S = kv.shape[1]
        hd = d // self.h
        q = self.q_proj(x).view(B, T, self.h, hd).transpose(1, 2)
        k = self.k_proj(kv).view(B, S, self.h, hd).transpose(1, 2)
        v = self.v_proj(kv).view(B, S, self.h, hd).transpose(1, 2)
        if hasattr(F, "scaled_dot_product_attention"):
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            scores = torch.matmul(q * (hd ** -0.5), k.transpose(-1, -2))
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            o = torch.matmul(torch.softmax(scores.float(), dim=-1).to(v.dtype), v)
        return self.out_proj(o.transpose(1, 2).reshape(B, T, d))


def act_fn(name):
    return {"swish": F.silu, "silu": F.silu, "relu": F.relu, "gelu": F.gelu}[name]


class EncoderLayer(nn.Module):
    def __init__(self, d, heads, ffn, act, dropout, eps):
        super().__init__()
        self.self_attn = Attention(d, heads)
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=eps)
        self.fc1 = nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)
        self.final_layer_norm = nn.LayerNorm(d, eps=eps)
        self.act = act_fn(act)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask):
        x = self.self_attn_layer_norm(x + self.drop(self.self_attn(x, x, mask)))
        return self.final_layer_norm(x + self.drop(self.fc2(self.act(self.fc1(x)))))


class DecoderLayer(nn.Module):
    def __init__(self, d, heads, ffn, act, dropout, eps):
        super().__init__()
        self.self_attn = Attention(d, heads)
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=eps)
        self.encoder_attn = Attention(d, heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(d, eps=eps)
        self.fc1 = nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)
        self.final_layer_norm = nn.LayerNorm(d, eps=eps)
        self.act = act_fn(act)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, enc, self_mask, cross_mask):
        x = self.self_attn_layer_norm(x + self.drop(self.self_attn(x, x, self_mask)))
        x = self.encoder_attn_layer_norm(x + self.drop(self.encoder_attn(x, enc, cross_mask)))
        return self.final_layer_norm(x + self.drop(self.fc2(self.act(self.fc1(x)))))


class Stack(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class Marian(nn.Module):
    def __init__(self, cfg, dropout=0.1):
        super().__init__()
        self.cfg = cfg
        d, V = cfg["d_model"], cfg["vocab_size"]
        eps = cfg["layer_norm_eps"]
        self.shared = nn.Embedding(V, d)
        self.register_buffer("final_logits_bias", torch.zeros(V))
        self.encoder = Stack([EncoderLayer(d, cfg["encoder_attention_heads"], cfg["encoder_ffn_dim"],
                                           cfg["activation_function"], dropout, eps)
                              for _ in range(cfg["encoder_layers"])])
        self.decoder = Stack([DecoderLayer(d, cfg["decoder_attention_heads"], cfg["decoder_ffn_dim"],
                                           cfg["activation_function"], dropout, eps)
                              for _ in range(cfg["decoder_layers"])])
        pos = atmodel.sinusoidal_positions(cfg["max_position_embeddings"], d)
        self.register_buffer("positions", torch.from_numpy(pos), persistent=False)
        self.scale = math.sqrt(d) if cfg["scale_embedding"] else 1.0
        self.drop = nn.Dropout(dropout)
        for name, p in self.named_parameters():
            if name == "shared.weight":
                nn.init.normal_(p, 0.0, d ** -0.5)
            elif p.dim() == 2:
                nn.init.xavier_uniform_(p)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    def embed(self, ids):
        T = ids.shape[1]
        return self.drop(self.shared(ids) * self.scale + self.positions[:T].to(self.shared.weight.dtype))

    def encode(self, src):
        mask = (src != PAD_ID)[:, None, None, :]
        x = self.embed(src)
        for layer in self.encoder.layers:
            x = layer(x, mask)
        return x, mask

    def decode_hidden(self, dec_in, enc, src_mask):
        T = dec_in.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool, device=dec_in.device).tril()[None, None]
        x = self.embed(dec_in)
        for layer in self.decoder.layers:
            x = layer(x, enc, causal, src_mask)
        return x

    def project(self, x):
        # final_logits_bias is a zero buffer in training (export writes it): skip the add,
        # a pass over [tokens, vocab]
        logits = F.linear(x, self.shared.weight)
        return logits if self.training else logits + self.final_logits_bias

    def decode(self, dec_in, enc, src_mask, last_only=False):
        x = self.decode_hidden(dec_in, enc, src_mask)
        if last_only:
            x = x[:, -1:]
        return self.project(x)

    def forward(self, src, dec_in):
        enc, mask = self.encode(src)
        return self.decode(dec_in, enc, mask)

    def loss(self, src, dec_in, labels, label_smoothing):
        """Label-smoothed cross-entropy (mean over target tokens). The output projection,
        a third of the FLOPs of a small model, runs on the real target positions only."""
        enc, mask = self.encode(src)
        x = self.decode_hidden(dec_in, enc, mask)
        keep = (labels != PAD_ID).view(-1).nonzero().squeeze(1)
        # index_select: its backward (index_add_) is fast on the CPU, a boolean mask's is not
        h = x.reshape(-1, x.shape[-1]).index_select(0, keep)
        logits = self.project(h)
        return F.cross_entropy(logits.float(), labels.view(-1).index_select(0, keep),
                               label_smoothing=label_smoothing)

    @torch.no_grad()
    def greedy(self, src, max_len):
        enc, mask = self.encode(src)
        B = src.shape[0]
        ys = torch.full((B, 1), PAD_ID, dtype=torch.long, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            logits = self.decode(ys, enc, mask, last_only=True)[:, -1].float()
            logits[:, PAD_ID] = -float("inf")
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD_ID), nxt)
            ys = torch.cat([ys, nxt[:, None]], 1)
            done |= nxt == EOS_ID
            if bool(done.all()):
                break
        return ys[:, 1:].tolist()


def make_config(args, V):
    return {
        "vocab_size": V, "d_model": args.d_model,
        "encoder_layers": args.enc_layers, "decoder_layers": args.dec_layers,
        "encoder_attention_heads": args.heads, "decoder_attention_heads": args.heads,
        "encoder_ffn_dim": args.ffn, "decoder_ffn_dim": args.ffn,
        "activation_function": args.activation, "max_position_embeddings": args.max_positions,
        "scale_embedding": True, "share_encoder_decoder_embeddings": True,
        "tie_word_embeddings": True, "pad_token_id": PAD_ID, "eos_token_id": EOS_ID,
        "unk_token_id": UNK_ID, "decoder_start_token_id": PAD_ID, "layer_norm_eps": 1e-5,
    }


# ------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------

def lr_at(step, peak, warmup):
    step = max(step, 1)
    return peak * min(step / warmup, math.sqrt(warmup / step))


def save_ckpt(path, model, opt, state, args, cfg):
    tmp = path + ".tmp"
    torch.save({"model": {k: v.detach().float().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict() if opt is not None else None,
                "state": state, "args": vars(args), "config": cfg,
                "spm": "data/spm.model"}, tmp)
    os.replace(tmp, path)


def list_ckpts(out):
    cks = glob.glob(os.path.join(out, "ckpt-*.pt"))
    return sorted(cks, key=lambda p: int(os.path.basename(p)[5:-3]))


def average_checkpoints(paths, out_path):
    avg = None
    for p in paths:
        ck = torch.load(p, map_location="cpu")
        if avg is None:
            avg = {k: v.double().clone() for k, v in ck["model"].items()}
        else:
            for k, v in ck["model"].items():
                avg[k] += v.double()
        base = ck  # config/state/args of the newest checkpoint
    base["model"] = {k: (v / len(paths)).float() for k, v in avg.items()}
    base["optimizer"] = None
    base["state"] = dict(base["state"], averaged=[os.path.basename(p) for p in paths])
    torch.save(base, out_path)
    return out_path


@torch.no_grad()
def evaluate(model, dev, dev_refs, sp, device, amp, ev, bleu_lines, amp_dev="cuda"):
    model.eval()
    tot_loss, tot_tok = 0.0, 0
    batches = dev.batches(4000, None, shuffle=False)
    for ids in batches:
        src, dec_in, labels = dev.tensors(ids, device)
        with autocast(amp, amp_dev):
            logits = model(src, dec_in)
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1),
                               ignore_index=PAD_ID, reduction="sum")
        tot_loss += loss.item()
        tot_tok += int((labels != PAD_ID).sum())
    hyps = [None] * len(dev_refs)
    idx = dev.index[dev.index < bleu_lines]
    order = idx[np.argsort(dev.src_len[idx])]
    for k in range(0, len(order), 64):
        ids = order[k:k + 64]
        src, _, _ = dev.tensors(ids, device)
        max_len = min(int(src.shape[1] * 2 + 10), model.cfg["max_position_embeddings"] - 1)
        with autocast(amp, amp_dev):
            outs = model.greedy(src, max_len)
        for i, o in zip(ids, outs):
            o = o[:o.index(EOS_ID)] if EOS_ID in o else o
            hyps[i] = sp.DecodeIds([t for t in o if t != PAD_ID])
    sel = [i for i in range(min(bleu_lines, len(dev_refs))) if hyps[i] is not None]
    bleu = ev.corpus_bleu([hyps[i] for i in sel], [dev_refs[i] for i in sel]).score
    model.train()
    return tot_loss / max(tot_tok, 1), bleu, [hyps[i] for i in sel[:3]]


def export_checkpoint(ckpt, args):
    """scripts/export.py of `ckpt` into --export with --export-dtype."""
    spec = importlib.util.spec_from_file_location("at_export", os.path.join(HERE, "export.py"))
    exp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exp)
    exp.export(ckpt, args.export, args.export_dtype)
    log(f"exported {ckpt} -> {args.export} ({args.export_dtype})")


def average_and_export(args):
    """--average-only: OUT/averaged.pt from the last --average checkpoints of OUT, then
    --export; no training (the end of a session of the campaign, docs/TRAINING.md)."""
    cks = list_ckpts(args.out)[-max(args.average, 1):]
    if not cks:
        raise SystemExit(f"{args.out}: no checkpoints")
    final = average_checkpoints(cks, os.path.join(args.out, "averaged.pt"))
    log(f"averaged {[os.path.basename(c) for c in cks]} -> {final}")
    if args.export:
        export_checkpoint(final, args)
    return final


def dist_rank_world():
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def allreduce_grads(model, n_tokens):
    """Data parallelism: sums every worker's gradients (of its summed token losses) and
    token counts, then divides, so each worker holds the token-weighted mean gradient of
    the whole step and takes the same Adam step. One flat buffer, one all-reduce."""
    import torch.distributed as dist
    params = [p for p in model.parameters() if p.grad is not None]
    flat = torch.cat([p.grad.reshape(-1) for p in params] + [torch.tensor([float(n_tokens)])])
    dist.all_reduce(flat)
    total = flat[-1].item()
    flat = flat[:-1] / max(total, 1.0)
    off = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[off:off + n].view_as(p.grad))
        off += n
    return int(total)


def _die_with_parent():
    """A worker must not outlive the process that spawned it: a SIGTERM or SIGKILL of
    train.py's parent (or of the session) would otherwise leave the workers training until
    their --max-minutes. Linux: the kernel sends SIGTERM when the parent dies; the check
    after it closes the race with a parent that died before prctl was called."""
    import ctypes
    import signal
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(rank, args, port):
    import torch.distributed as dist
    _die_with_parent()
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=args.workers)
    try:
        train(args)
    finally:
        dist.destroy_process_group()


def train_parallel(args):
    """--workers N: N processes of --threads threads each on this machine, one batch each
    per step (torch.distributed, gloo over 127.0.0.1). Worker 0 logs, evaluates and saves."""
    import socket
    import torch.multiprocessing as mp
    if not os.path.exists(os.path.join(args.data or os.path.join(args.out, "data"), "train.npz")):
        train(argparse.Namespace(**dict(vars(args), prepare_only=True)))   # once, here
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    mp.spawn(_worker, args=(args, port), nprocs=args.workers, join=True)


def train(args):
    import sentencepiece as spm
    t_start = time.time()
    rank, world = dist_rank_world()
    lead = rank == 0
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    amp = (device.type == "cuda" and not args.no_bf16) or (device.type == "cpu" and args.cpu_bf16)
    amp_dev = device.type
    data_dir = args.data or os.path.join(args.out, "data")
    if not os.path.exists(os.path.join(data_dir, "train.npz")):
        if world > 1:
            raise SystemExit("--workers: prepare the data first (--prepare-only)")
        if not args.corpus:
            raise SystemExit(f"{data_dir}/train.npz missing: give --corpus to build it")
        prepare(args, data_dir)
    os.makedirs(args.out, exist_ok=True)
    if os.path.abspath(data_dir) != os.path.abspath(os.path.join(args.out, "data")):
        os.makedirs(os.path.join(args.out, "data"), exist_ok=True)
        shutil.copy(os.path.join(data_dir, "spm.model"), os.path.join(args.out, "data", "spm.model"))
    if args.prepare_only:
        return None
    sp = spm.SentencePieceProcessor()
    sp.Load(os.path.join(data_dir, "spm.model"))
    data = Data(os.path.join(data_dir, "train.npz"))
    dev = Data(os.path.join(data_dir, "dev.npz"))
    dev_refs = read_lines(os.path.join(data_dir, "dev.ref"))
    ev = load_eval_module()
    V = data.vocab_size
    cfg = make_config(args, V)
    atmodel.validate_config(cfg)
    model = Marian(cfg, dropout=args.dropout).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    if world > 1:
        import torch.distributed as dist
        for p in model.parameters():   # identical start on every worker
            dist.broadcast(p.data, 0)
    log(f"device {device}{' bf16' if amp else ''} threads {torch.get_num_threads()} x {world} workers, {len(data)} pairs, vocab {V}, "
        f"{n_params / 1e6:.2f}M parameters, config {json.dumps(cfg)}")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9)
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best_bleu": None, "history": []}
    last = os.path.join(args.out, "last.pt")
    if args.resume and os.path.exists(last):
        ck = torch.load(last, map_location="cpu")
        if ck["config"] != cfg:
            raise SystemExit(f"--resume: {last} has config {ck['config']}, not {cfg}")
        model.load_state_dict(ck["model"])
        if ck.get("optimizer"):
            opt.load_state_dict(ck["optimizer"])
        state = ck["state"]
        log(f"resumed from {last} at step {state['step']} (epoch {state['epoch']})")
    elif args.init_from:
        init_cfg = load_model_dir_weights(model, args.init_from)
        if any(init_cfg.get(k) != cfg[k] for k in ("d_model", "encoder_layers", "decoder_layers",
                                                   "encoder_ffn_dim", "vocab_size")):
            raise SystemExit(f"--init-from {args.init_from}: config {init_cfg} differs from {cfg}")
        state["step"] = state["init_step"] = int(args.init_step)
        state["epoch"], state["batch_in_epoch"] = int(args.init_epoch), int(args.init_batch)
        state["init_from"] = os.path.abspath(args.init_from)
        if args.rewarm:
            state["rewarm"] = [int(args.init_step), int(args.rewarm)]
        log(f"initialised from {args.init_from} (step counter {state['step']}, batch "
            f"{state['batch_in_epoch']} of epoch {state['epoch']}, new optimizer"
            f"{f', lr re-warmed over {args.rewarm} steps' if args.rewarm else ''})")
    if args.decay and not state.get("decay"):
        # a cool-down branch: from here the lr falls linearly to zero (warmup-stable-decay)
        state["decay"] = [int(state["step"]), int(args.decay)]
        log(f"cool-down: lr falls linearly to zero over steps {state['step']}-"
            f"{state['step'] + args.decay}")
    budget = args.max_minutes * 60 if args.max_minutes else None
    # `touch OUT/STOP` ends the run at the next step, with a checkpoint (then removed)
    stop_file = os.path.join(args.out, "STOP")
    t_saved = time.time()
    model.train()
    step = state["step"]
    stop_reason = None
    tok_seen, loss_acc, n_acc, t_log = 0, 0.0, 0, time.time()
    if world > 1:
        import torch.distributed as dist
    purge = jemalloc_purger() if args.purge_every > 0 else None
    while stop_reason is None:
        rng = np.random.default_rng(args.seed + state["epoch"])
        batches = data.batches(args.max_tokens, rng)
        # with N workers a step takes N consecutive batches, one each (an epoch's last
        # < N batches are dropped); batch_in_epoch counts batches, so a resumed run with
        # another number of workers continues where it stopped
        for bi in range(state["batch_in_epoch"], len(batches) - world + 1, world):
            src, dec_in, labels = data.tensors(batches[bi + rank], device)
            lr = lr_at(step + 1, args.lr, args.warmup)
            if state.get("rewarm"):   # a fresh Adam state after --init-from: ramp up again
                s0, n = state["rewarm"]
                lr *= min(1.0, (step + 1 - s0) / n)
            if state.get("decay"):
                s0, n = state["decay"]
                lr *= max(0.0, 1.0 - (step - s0) / n)   # the last step gets 1/n of it
            for g in opt.param_groups:
                g["lr"] = lr
            with autocast(amp, amp_dev):
                loss = model.loss(src, dec_in, labels, args.label_smoothing)
            n_tok = int((labels != PAD_ID).sum())
            opt.zero_grad(set_to_none=True)
            if world > 1:
                (loss * n_tok).backward()
                n_tok = allreduce_grads(model, n_tok)
            else:
                loss.backward()
            if args.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_norm)
            opt.step()
            step += 1
            state["step"], state["batch_in_epoch"] = step, bi + world
            if purge and step % args.purge_every == 0:
                purge()
            loss_acc += loss.item()
            n_acc += 1
            tok_seen += n_tok
            elapsed = time.time() - t_start
            if lead and step % args.log_every == 0:
                dt = time.time() - t_log
                log(f"step {step} epoch {state['epoch']} loss {loss_acc / n_acc:.3f} "
                    f"lr {lr:.2e} {tok_seen / dt:.0f} tgt tok/s "
                    f"elapsed {elapsed / 60:.1f} min")
                tok_seen, loss_acc, n_acc, t_log = 0, 0.0, 0, time.time()
            if budget and elapsed >= budget:
                stop_reason = "max-minutes"
            elif args.max_steps and step >= args.max_steps:
                stop_reason = "max-steps"
            elif state.get("decay") and step >= sum(state["decay"]):
                stop_reason = "cool-down done"
            elif lead and os.path.exists(stop_file):
                stop_reason = "STOP file"
            if world > 1:  # the workers' clocks differ: worker 0 decides for all
                flag = torch.tensor([1 if stop_reason else 0])
                dist.broadcast(flag, 0)
                stop_reason = (stop_reason or "max-minutes") if int(flag) else None
            if not lead:
                if stop_reason:
                    break
                continue
            do_eval = step % args.eval_every == 0 or stop_reason
            do_save = (step % args.save_every == 0 or stop_reason
                       or (args.save_minutes and time.time() - t_saved >= args.save_minutes * 60))
            if do_save:  # before the (slow) evaluation, so a stop saves promptly
                ck_path = os.path.join(args.out, f"ckpt-{step}.pt")
                save_ckpt(ck_path, model, opt, state, args, cfg)
                shutil.copy(ck_path, last)
                for old in list_ckpts(args.out)[:-args.keep]:
                    os.remove(old)
                t_saved = time.time()
            if do_eval:
                # the other workers wait in their next all-reduce (asleep): use their cores
                torch.set_num_threads(args.threads * world)
                dl, bleu, ex = evaluate(model, dev, dev_refs, sp, device, amp, ev, args.bleu_lines, amp_dev)
                torch.set_num_threads(args.threads)
                state["history"].append({"step": step, "dev_loss": round(dl, 4),
                                         "dev_greedy_bleu": round(bleu, 2),
                                         "minutes": round(elapsed / 60, 2)})
                log(f"eval step {step}: dev loss {dl:.3f} greedy BLEU {bleu:.2f} | {ex[:1]}")
                with open(os.path.join(args.out, "history.json"), "w") as f:
                    json.dump(state["history"], f, indent=1)
            if stop_reason:
                break
        else:
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
            if args.max_epochs and state["epoch"] >= args.max_epochs:
                stop_reason = "max-epochs"
                if lead:
                    ck_path = os.path.join(args.out, f"ckpt-{step}.pt")
                    save_ckpt(ck_path, model, opt, state, args, cfg)
                    shutil.copy(ck_path, last)
    if world > 1:  # the workers took the same steps: their weights must be bit-identical
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        ref = flat.clone()
        dist.broadcast(ref, 0)
        if not torch.equal(flat, ref):
            raise SystemExit(f"worker {rank}: weights differ from worker 0's by "
                             f"{float((flat - ref).abs().max()):g}")
    if not lead:
        return None
    log(f"stopped ({stop_reason}) at step {step} after {(time.time() - t_start) / 60:.1f} min")
    if stop_reason == "STOP file":
        os.remove(stop_file)
    torch.set_num_threads(args.threads * world)
    final = last
    if args.average and args.average > 1:
        cks = list_ckpts(args.out)[-args.average:]
        final = average_checkpoints(cks, os.path.join(args.out, "averaged.pt"))
        if len(cks) > 1:
            ck = torch.load(final, map_location="cpu")
            model.load_state_dict(ck["model"])
            dl, bleu, _ = evaluate(model, dev, dev_refs, sp, device, amp, ev, args.bleu_lines, amp_dev)
            log(f"averaged {len(cks)} checkpoints -> {final}: dev loss {dl:.3f} greedy BLEU {bleu:.2f}")
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump(state["history"], f, indent=1)
    if args.export:
        export_checkpoint(final, args)
    return final


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--corpus", help="dir with train.en/train.fr (build_corpus.py output)")
    ap.add_argument("--data", help="prepared data dir (spm.model, train.npz, dev.npz); default OUT/data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--prepare-only", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run for CI (< 60 s) + export")
    ap.add_argument("--vocab-size", type=int, default=16000)
    ap.add_argument("--limit-pairs", type=int, default=None)
    ap.add_argument("--max-len", type=int, default=256, help="max tokens per side (incl. eos)")
    ap.add_argument("--dev-src", default=DEFAULT_DEV[0])
    ap.add_argument("--dev-ref", default=DEFAULT_DEV[1])
    ap.add_argument("--dev-lines", type=int, default=500)
    ap.add_argument("--bleu-lines", type=int, default=200, help="dev lines decoded for greedy BLEU")
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--ffn", type=int, default=2048)
    ap.add_argument("--enc-layers", type=int, default=6)
    ap.add_argument("--dec-layers", type=int, default=6)
    ap.add_argument("--activation", default="swish", choices=["swish", "relu", "gelu"])
    ap.add_argument("--max-positions", type=int, default=512)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=7e-4, help="peak learning rate")
    ap.add_argument("--warmup", type=int, default=4000)
    ap.add_argument("--clip-norm", type=float, default=0.0)
    ap.add_argument("--max-tokens", type=int, default=8192, help="tokens per batch (padded, per side)")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; saves and exits")
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--save-every", type=int, default=1000)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--keep", type=int, default=10, help="checkpoints kept")
    ap.add_argument("--average", type=int, default=0, help="average the last N checkpoints at the end")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    ap.add_argument("--export", help="export the final model to this dir")
    ap.add_argument("--export-dtype", default="f32", choices=["f32", "f16", "int8"])
    ap.add_argument("--average-only", action="store_true",
                    help="no training: average the last --average checkpoints of OUT and --export")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch, spm_train)")
    ap.add_argument("--cpu", action="store_true", help="ignore CUDA")
    ap.add_argument("--workers", type=int, default=1,
                    help="data-parallel worker processes on this machine (CPU; --threads each)")
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--cpu-bf16", action="store_true",
                    help="bf16 autocast on the CPU (fast where /proc/cpuinfo has avx512_bf16)")
    ap.add_argument("--save-minutes", type=float, default=None,
                    help="also save a checkpoint every this many minutes")
    ap.add_argument("--init-from", help="start from the weights of an exported model dir "
                    "(e.g. models/en-fr) instead of random ones (ignored with --resume and OUT/last.pt)")
    ap.add_argument("--purge-every", type=int, default=25,
                    help="under jemalloc, return its free pages to the kernel every N steps "
                         "(0: never; see jemalloc_purger)")
    ap.add_argument("--init-epoch", type=int, default=0,
                    help="with --init-from: the epoch the run that made the model was in")
    ap.add_argument("--init-batch", type=int, default=0,
                    help="with --init-from: batches of that epoch already seen (the model "
                         "card gives both; same --max-tokens and --seed), so that training "
                         "continues on data it has not seen")
    ap.add_argument("--rewarm", type=int, default=0,
                    help="with --init-from: ramp the lr linearly over this many steps, since "
                         "the optimizer state starts from zero")
    ap.add_argument("--init-step", type=int, default=0,
                    help="with --init-from: the step counter to continue the lr schedule from")
    ap.add_argument("--decay", type=int, default=0,
                    help="cool-down branch: from the step the run starts or resumes at, "
                         "scale the lr linearly to zero over this many steps, then stop. "
                         "Copy the main run's last.pt into a new --out and --resume there, "
                         "so that the main run can go on where it was")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.smoke:
        # data: $ATTN_SHARED_DATA, shared/ beside the checkout (CI), /work/shared, or a built corpus
        root = os.path.dirname(HERE)
        shared = [d for d in (os.environ.get("ATTN_SHARED_DATA"),
                              os.path.join(root, "shared", "data"),
                              os.path.join(os.path.dirname(root), "shared", "data"),
                              "/work/shared/data") if d and os.path.isdir(os.path.join(d, "train", "tatoeba"))]
        if not args.corpus:
            if shared:
                args.corpus = os.path.join(shared[0], "train", "tatoeba")
            elif os.path.exists("/tmp/attn-corpus/train.en"):
                args.corpus = "/tmp/attn-corpus"
            else:
                raise SystemExit("--smoke: no data found (set ATTN_SHARED_DATA or give --corpus)")
        if shared and args.dev_src == DEFAULT_DEV[0] and not os.path.exists(DEFAULT_DEV[0]):
            args.dev_src = os.path.join(shared[0], "dev", os.path.basename(DEFAULT_DEV[0]))
            args.dev_ref = os.path.join(shared[0], "dev", os.path.basename(DEFAULT_DEV[1]))
        if not os.path.exists(os.path.join(args.corpus, "train.en")):
            # raw tatoeba folder: make a 2k-pair corpus dir
            tmp = os.path.join(args.out, "smoke-corpus")
            os.makedirs(tmp, exist_ok=True)
            for s in ("en", "fr"):
                with open(os.path.join(tmp, "train." + s), "w", encoding="utf-8") as f:
                    f.write("\n".join(read_lines(os.path.join(args.corpus, "tatoeba." + s), 2000)) + "\n")
            args.corpus = tmp
        if not os.path.exists(args.dev_src):  # no dev set anywhere: the corpus head (overlaps training; smoke only)
            args.dev_src = os.path.join(args.corpus, "train.en")
            args.dev_ref = os.path.join(args.corpus, "train.fr")
        args.limit_pairs = 2000
        args.vocab_size, args.d_model, args.heads, args.ffn = 1000, 32, 2, 64
        args.enc_layers, args.dec_layers = 1, 1
        args.max_positions, args.max_len = 128, 64
        args.max_steps, args.warmup, args.lr = 30, 10, 3e-3
        args.max_tokens, args.eval_every, args.save_every, args.log_every = 1500, 15, 10, 10
        args.dev_lines, args.bleu_lines, args.average, args.cpu = 50, 20, 2, True
        args.threads = min(args.threads, 2)
        args.export = args.export or os.path.join(args.out, "export")
    if args.average_only:
        average_and_export(args)
    elif args.workers > 1:
        train_parallel(args)
    else:
        train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

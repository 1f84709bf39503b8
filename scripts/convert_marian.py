#!/usr/bin/python3
"""convert_marian.py — Hugging Face MarianMTModel directory to an attn-translate model.

    /usr/bin/python3 scripts/convert_marian.py INPUT_DIR OUTPUT_DIR [--dtype f32|f16|int8]
        [--layout packed|rows]

INPUT_DIR is what `huggingface-cli download Helsinki-NLP/opus-mt-en-fr` (or
`MarianMTModel.save_pretrained` + `MarianTokenizer.save_pretrained`) leaves:

    config.json               MarianConfig
    model.safetensors         weights (preferred), or pytorch_model.bin
    source.spm, target.spm    SentencePiece models (source side, target side)
    vocab.json                Marian's piece -> id map (one id space for both sides)
    generation_config.json    optional; generation defaults (else taken from config.json)

OUTPUT_DIR gets model.json, model.bin, vocab.json (docs/FORMAT.md) and copies of
source.spm / target.spm (the PyTorch reference, scripts/reference.py, tokenizes with them;
the C loader ignores them).

What the conversion does (tensor names are transformers' state_dict names):

- strips the leading `model.`; with share_encoder_decoder_embeddings the embedding is
  `shared.weight` (transformers' `encoder/decoder.embed_tokens.weight` duplicates, when
  saved, must equal it and are dropped); without it the two tables are kept separately.
- `lm_head.weight` is dropped when tie_word_embeddings (after checking it equals the
  decoder embedding; transformers' safetensors files do not store it at all); kept
  otherwise.
- `final_logits_bias` [1, V] becomes [V] (missing: zeros, as transformers does).
- `*.embed_positions.weight` are dropped after checking they are Marian's sinusoids
  (docs/FORMAT.md) to 1e-6 (or to the rounding of the stored dtype when the checkpoint is
  f16/bf16); recent transformers versions do not save them at all.
- pytorch_model.bin is read without torch (a restricted unpickler that only admits
  tensors, see read_pytorch_bin), so the conversion needs only numpy.
- anything we cannot run exactly is refused with a message: pre-norm
  (normalize_before), add_final_layer_norm, normalize_embedding (layernorm_embedding),
  decoder_vocab_size != vocab_size, learned positions, an activation other than
  swish/silu/relu/gelu, unknown or missing tensors.

--layout packed (the default) writes format version 2: the weight matrices are stored
packed16, as the engine's kernels read them, so loading uses them in place; --layout rows
writes version 1, which builds from before version 2 also read (docs/FORMAT.md).

Library use: convert(input_dir, output_dir, dtype="f32", quiet=False, layout="packed") ->
header dict; raises ConvertError with a message naming the problem.
"""

import argparse
import collections
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import atmodel  # noqa: E402
import spm_vocab  # noqa: E402


class ConvertError(Exception):
    """The input directory cannot be converted (the message says why)."""


# ---------------------------------------------------------------------------------------
# reading weights
# ---------------------------------------------------------------------------------------

# safetensors dtype -> (numpy dtype of the stored bytes, item size)
_ST_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # widened by hand: bits << 16 is the float32
}


def _bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def read_safetensors(path):
    """Pure-Python safetensors reader: 8-byte little-endian header length N, N bytes of
    JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
    then the raw data (offsets relative to its start).

    Returns {name: (float32 ndarray, source dtype string)}."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ConvertError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ConvertError(f"{path}: header length {n} exceeds the file")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: bad safetensors header: {e}") from None
    if not isinstance(header, dict):
        raise ConvertError(f"{path}: safetensors header is not an object")
    base = 8 + n
    data_len = len(blob) - base
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(e, dict):
            raise ConvertError(f"{path}: {name}: entry is not an object")
        dt = e.get("dtype")
        if dt not in _ST_DTYPES:
            raise ConvertError(f"{path}: {name}: unsupported dtype {dt!r} "
                               f"(supported: {', '.join(_ST_DTYPES)})")
        shape = e.get("shape")
        offs = e.get("data_offsets")
        if (not isinstance(shape, list) or not all(isinstance(x, int) and x >= 0 for x in shape)
                or not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(x, int) for x in offs)):
            raise ConvertError(f"{path}: {name}: bad shape or data_offsets")
        b, end = offs
        npdt = _ST_DTYPES[dt]
        count = int(np.prod(shape, dtype=np.int64))
        if not 0 <= b <= end <= data_len or end - b != count * npdt.itemsize:
            raise ConvertError(f"{path}: {name}: data_offsets {offs} do not fit shape {shape} "
                               f"({dt}) inside {data_len} data bytes")
        arr = np.frombuffer(blob, dtype=npdt, count=count, offset=base + b).reshape(shape)
        arr = _bf16_to_f32(arr) if dt == "BF16" else arr.astype(np.float32)
        out[name] = (arr, dt)
    return out


# torch storage classes a state_dict may use -> (numpy dtype of the bytes, safetensors name)
_TORCH_STORAGES = {
    "FloatStorage": (np.dtype("<f4"), "F32"),
    "HalfStorage": (np.dtype("<f2"), "F16"),
    "BFloat16Storage": (np.dtype("<u2"), "BF16"),
    "DoubleStorage": (np.dtype("<f8"), "F64"),
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


class _Storage:
    """A storage named in the pickle; its bytes are attached after unpickling."""

    def __init__(self, kind, key):
        self.kind, self.key, self.data = kind, key, None


class _Tensor:
    """torch._utils._rebuild_tensor_v2's arguments, turned into an array later."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self, path, name):
        dt, _ = _TORCH_STORAGES[self.storage.kind]
        data = self.storage.data
        if data is None:
            raise ConvertError(f"{path}: {name}: storage {self.storage.key} has no data")
        n = len(data) // dt.itemsize
        span = 1 + sum((s - 1) * st for s, st in zip(self.size, self.stride)) if all(self.size) else 0
        if self.offset < 0 or any(st < 0 for st in self.stride) or self.offset + span > n:
            raise ConvertError(f"{path}: {name}: shape {list(self.size)} / stride "
                               f"{list(self.stride)} at offset {self.offset} exceed its storage")
        flat = np.frombuffer(data, dtype=dt, count=n)
        a = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=[st * dt.itemsize for st in self.stride],
            writeable=False) if span else np.zeros(self.size, dtype=dt)
        a = np.array(a)  # contiguous copy
        return _bf16_to_f32(a) if self.storage.kind == "BFloat16Storage" else a.astype(np.float32)


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise ConvertError("pickle: a tensor whose storage is not a storage")
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


class _Unpickler(pickle.Unpickler):
    """Unpickles a torch state_dict without torch, and nothing else: the only globals
    allowed are OrderedDict, the tensor / parameter rebuild functions and the storage
    classes, so a pickle that would run code is refused, not executed."""

    GLOBALS = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, f, path):
        super().__init__(f)
        self.path, self.storages = path, {}

    def find_class(self, module, name):
        if module == "torch" and name in _TORCH_STORAGES:
            return name  # a storage type, used only as persistent_load's argument
        if (module, name) in self.GLOBALS:
            return self.GLOBALS[(module, name)]
        raise ConvertError(f"{self.path}: refusing to unpickle {module}.{name} (only torch "
                           "tensors of float32/float16/bfloat16/float64 are read)")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise ConvertError(f"{self.path}: unexpected persistent id {str(pid)[:80]}")
        kind, key = pid[1], str(pid[2])
        if kind not in _TORCH_STORAGES:
            raise ConvertError(f"{self.path}: unsupported storage type {kind!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise ConvertError(f"{self.path}: storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(kind, key)
        return self.storages[key]


def _load_torch_pickle(path):
    """(state_dict of _Tensor, storages) from a torch.save file, zip or legacy format."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pkl) != 1:
                raise ConvertError(f"{path}: not a torch.save zip (no single data.pkl)")
            prefix = pkl[0][:-len("data.pkl")]
            up = _Unpickler(io.BytesIO(z.read(pkl[0])), path)
            sd = up.load()
            for key, st in up.storages.items():
                try:
                    st.data = z.read(f"{prefix}data/{key}")
                except KeyError:
                    raise ConvertError(f"{path}: storage {key} missing from the archive") from None
            return sd
    with open(path, "rb") as f:
        try:
            magic = _Unpickler(f, path).load()
            if magic != _LEGACY_MAGIC:
                raise ConvertError(f"{path}: neither a zip nor a legacy torch.save file")
            _Unpickler(f, path).load()  # protocol version
            _Unpickler(f, path).load()  # sys info
            up = _Unpickler(f, path)
            sd = up.load()
            keys = _Unpickler(f, path).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise ConvertError(f"{path}: cannot unpickle: {e}") from None
        for key in keys:
            head = f.read(8)
            if len(head) != 8:
                raise ConvertError(f"{path}: truncated storage {key}")
            (numel,) = struct.unpack("<q", head)
            st = up.storages.get(str(key))
            if st is None:
                raise ConvertError(f"{path}: storage {key} not referenced")
            nbytes = numel * _TORCH_STORAGES[st.kind][0].itemsize
            st.data = f.read(nbytes)
            if len(st.data) != nbytes:
                raise ConvertError(f"{path}: truncated storage {key}")
        return sd


def read_pytorch_bin(path):
    """pytorch_model.bin (torch.save of a state_dict, zip or legacy format) with numpy only:
    a restricted unpickler (see _Unpickler). Returns {name: (f32 array, dtype)}."""
    try:
        sd = _load_torch_pickle(path)
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError) as e:
        raise ConvertError(f"{path}: cannot load: {e}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ConvertError(f"{path}: not a state_dict")
    out = {}
    for name, t in sd.items():
        if not isinstance(t, _Tensor):
            raise ConvertError(f"{path}: {name}: not a tensor")
        out[name] = (t.array(path, name), _TORCH_STORAGES[t.storage.kind][1])
    return out


def read_weights(input_dir):
    """(tensors, file name) from model.safetensors, else pytorch_model.bin."""
    st = os.path.join(input_dir, "model.safetensors")
    pt = os.path.join(input_dir, "pytorch_model.bin")
    if os.path.exists(st):
        return read_safetensors(st), "model.safetensors"
    if os.path.exists(pt):
        return read_pytorch_bin(pt), "pytorch_model.bin"
    if os.path.exists(st + ".index.json") or os.path.exists(pt + ".index.json"):
        raise ConvertError(f"{input_dir}: sharded checkpoints are not supported")
    raise ConvertError(f"{input_dir}: no model.safetensors or pytorch_model.bin")


# ---------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------

# MarianConfig's defaults (transformers), used for fields a config.json leaves out.
MARIAN_DEFAULTS = {
    "vocab_size": 58101,
    "max_position_embeddings": 1024,
    "encoder_layers": 12,
    "encoder_ffn_dim": 4096,
    "encoder_attention_heads": 16,
    "decoder_layers": 12,
    "decoder_ffn_dim": 4096,
    "decoder_attention_heads": 16,
    "activation_function": "gelu",
    "d_model": 1024,
    "decoder_start_token_id": 58100,
    "scale_embedding": False,
    "pad_token_id": 58100,
    "eos_token_id": 0,
    "share_encoder_decoder_embeddings": True,
    "tie_word_embeddings": True,
}

# transformers' ACT2FN names whose function our engine computes exactly
ACTIVATIONS = {"swish": "swish", "silu": "swish", "relu": "relu", "gelu": "gelu"}


def _get(hf, name):
    v = hf.get(name, MARIAN_DEFAULTS.get(name))
    if v is None:
        raise ConvertError(f"config.json: {name} missing")
    return v


def map_config(hf, unk_id):
    """config.json (MarianConfig) -> our model.json config; refuses what we cannot run."""
    if hf.get("model_type", "marian") != "marian":
        raise ConvertError(f"config.json: model_type {hf.get('model_type')!r}, expected 'marian'")
    refusals = [
        ("normalize_before", "pre-norm layers (normalize_before=true)"),
        ("add_final_layer_norm", "a final encoder/decoder layer norm (add_final_layer_norm=true)"),
        ("normalize_embedding", "an embedding layer norm (normalize_embedding=true)"),
    ]
    for key, what in refusals:
        if hf.get(key):
            raise ConvertError(f"config.json: {key} is true: attn-translate runs only post-norm "
                               f"Marian models (FORMAT.md) and cannot run {what}")
    if hf.get("static_position_embeddings") is False:
        raise ConvertError("config.json: static_position_embeddings is false: learned positions "
                           "are not supported (attn-translate computes Marian's sinusoids)")
    V = _get(hf, "vocab_size")
    dv = hf.get("decoder_vocab_size")
    if dv is not None and dv != V:
        raise ConvertError(f"config.json: decoder_vocab_size {dv} != vocab_size {V}: separate "
                           "target vocabularies are not supported (one id space, FORMAT.md)")
    act = _get(hf, "activation_function")
    if act not in ACTIVATIONS:
        raise ConvertError(f"config.json: activation_function {act!r} is not supported "
                           f"(supported: {', '.join(ACTIVATIONS)})")
    eps = hf.get("layer_norm_eps", 1e-5)  # MarianConfig has none: nn.LayerNorm's default
    cfg = {
        "vocab_size": V,
        "d_model": _get(hf, "d_model"),
        "encoder_layers": _get(hf, "encoder_layers"),
        "decoder_layers": _get(hf, "decoder_layers"),
        "encoder_attention_heads": _get(hf, "encoder_attention_heads"),
        "decoder_attention_heads": _get(hf, "decoder_attention_heads"),
        "encoder_ffn_dim": _get(hf, "encoder_ffn_dim"),
        "decoder_ffn_dim": _get(hf, "decoder_ffn_dim"),
        "activation_function": ACTIVATIONS[act],
        "max_position_embeddings": _get(hf, "max_position_embeddings"),
        "scale_embedding": bool(_get(hf, "scale_embedding")),
        "share_encoder_decoder_embeddings": bool(_get(hf, "share_encoder_decoder_embeddings")),
        "tie_word_embeddings": bool(_get(hf, "tie_word_embeddings")),
        "pad_token_id": _get(hf, "pad_token_id"),
        "eos_token_id": _get(hf, "eos_token_id"),
        "unk_token_id": unk_id,
        "decoder_start_token_id": _get(hf, "decoder_start_token_id"),
        "layer_norm_eps": float(eps),
    }
    if cfg["d_model"] % 2:
        raise ConvertError(f"config.json: d_model {cfg['d_model']} is odd (Marian sinusoids "
                           "need an even d_model)")
    try:
        atmodel.validate_config(cfg)
    except atmodel.FormatError as e:
        raise ConvertError(f"config.json: {e}") from None
    return cfg


def map_generation(hf, gen_cfg, cfg):
    """Generation defaults: generation_config.json over config.json. Returns (generation
    dict, list of notes about settings our engine does not carry)."""
    src = dict(hf)
    if gen_cfg is not None:
        src.update(gen_cfg)
    gen = {}
    notes = []
    for key in ("num_beams", "max_length"):
        if src.get(key) is not None:
            gen[key] = int(src[key])
    if src.get("length_penalty") is not None:
        gen["length_penalty"] = float(src["length_penalty"])
    bad = src.get("bad_words_ids")
    if bad is not None:
        flat = []
        for seq in bad:
            if isinstance(seq, int):
                seq = [seq]
            if not isinstance(seq, list) or len(seq) != 1 or not isinstance(seq[0], int):
                raise ConvertError(f"bad_words_ids: {seq!r} is a multi-token sequence; only "
                                   "single banned ids are supported (FORMAT.md generation)")
            flat.append(seq[0])
        gen["bad_words_ids"] = flat
    if src.get("forced_eos_token_id") is not None:
        notes.append(f"forced_eos_token_id={src['forced_eos_token_id']} not carried: a "
                     "hypothesis that reaches max_len ends without eos (DECODING.md)")
    if src.get("early_stopping") not in (None, True):
        notes.append(f"early_stopping={src['early_stopping']!r} not carried: attn-translate "
                     "stops when num_beams hypotheses finished (early_stopping=True)")
    if "early_stopping" not in src and gen.get("num_beams", 1) > 1:
        notes.append("transformers' default early_stopping=False differs from attn-translate's "
                     "beam search (early_stopping=True, DECODING.md)")
    if src.get("renormalize_logits") is not True and gen.get("bad_words_ids"):
        notes.append("renormalize_logits is not true: transformers' beam scores keep the "
                     "banned ids' probability mass; attn-translate renormalizes (DECODING.md)")
    for key in ("no_repeat_ngram_size", "repetition_penalty", "min_length", "do_sample"):
        if src.get(key) not in (None, 0, 1.0, False):
            notes.append(f"{key}={src[key]!r} not carried")
    return gen, notes


# ---------------------------------------------------------------------------------------
# tensors
# ---------------------------------------------------------------------------------------

def _source_tol(dtype):
    """Tolerance for comparing a stored tensor with a recomputed f32 value: 1e-6, or half
    an ulp at 1.0 of a narrower stored dtype."""
    return {"F16": 2.0 ** -11, "BF16": 2.0 ** -8}.get(dtype, 1e-6)


def map_tensors(raw, cfg):
    """transformers state_dict {name: (f32 array, dtype)} -> our {name: array}.
    Returns (tensors, notes)."""
    notes = []
    src = {}
    for name, val in raw.items():
        key = name[len("model."):] if name.startswith("model.") else name
        if key in src:
            raise ConvertError(f"tensor {name}: appears twice (with and without 'model.')")
        src[key] = val
    used = set()
    V, d = cfg["vocab_size"], cfg["d_model"]

    def take(key):
        used.add(key)
        return src[key][0]

    def same(a_key, b, what):
        a = src[a_key][0]
        if a.shape != b.shape or not np.array_equal(a, b):
            diff = "shape differs" if a.shape != b.shape else \
                f"max abs diff {float(np.max(np.abs(a - b))):.3g}"
            raise ConvertError(f"{a_key}: differs from {what} ({diff}); transformers would tie "
                               "them, so the checkpoint is inconsistent")
        used.add(a_key)

    out = {}
    # embeddings
    if cfg["share_encoder_decoder_embeddings"]:
        for k in ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
            if k in src:
                emb = take(k)
                break
        else:
            raise ConvertError("shared.weight: missing tensor (nor encoder/decoder.embed_tokens)")
        for k in ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
            if k in src:
                same(k, emb, "the shared embedding")
        out["shared.weight"] = emb
        dec_emb = emb
    else:
        if "shared.weight" in src:
            raise ConvertError("shared.weight present but share_encoder_decoder_embeddings is false")
        for k in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
            if k not in src:
                raise ConvertError(f"{k}: missing tensor")
            out[k] = take(k)
        dec_emb = out["decoder.embed_tokens.weight"]
    # output projection
    if cfg["tie_word_embeddings"]:
        if "lm_head.weight" in src:
            same("lm_head.weight", dec_emb, "the decoder embedding (tie_word_embeddings)")
            notes.append("lm_head.weight equals the decoder embedding (tied): dropped")
        else:
            notes.append("lm_head.weight not stored (tied to the decoder embedding)")
    else:
        if "lm_head.weight" not in src:
            raise ConvertError("lm_head.weight: missing tensor (tie_word_embeddings is false)")
        out["lm_head.weight"] = take("lm_head.weight")
    # final_logits_bias
    if "final_logits_bias" in src:
        b = take("final_logits_bias")
        if b.shape not in ((1, V), (V,)):
            raise ConvertError(f"final_logits_bias: wrong shape: got {list(b.shape)}, expected [1, {V}]")
        out["final_logits_bias"] = b.reshape(V)
    else:
        out["final_logits_bias"] = np.zeros(V, dtype=np.float32)
        notes.append("final_logits_bias not stored: zeros (as transformers)")
    # positions
    P = atmodel.sinusoidal_positions(cfg["max_position_embeddings"], d)
    for k in ("encoder.embed_positions.weight", "decoder.embed_positions.weight"):
        if k not in src:
            notes.append(f"{k} not stored (recomputed at load)")
            continue
        a, dt = src[k]
        used.add(k)
        if a.shape != P.shape:
            raise ConvertError(f"{k}: shape {list(a.shape)} but max_position_embeddings x d_model "
                               f"is {list(P.shape)}")
        err = float(np.max(np.abs(a.astype(np.float64) - P)))
        tol = _source_tol(dt)
        if not err <= tol:
            raise ConvertError(f"{k}: not Marian's sinusoidal positions (max abs diff {err:.3g} > "
                               f"{tol:g}); attn-translate recomputes them and cannot run learned "
                               "or different position embeddings")
        notes.append(f"{k}: Marian sinusoids (max abs diff {err:.2g}): dropped")
    # layers: everything else, by FORMAT.md's table
    expected = atmodel.expected_tensors(cfg)
    for name, shape in expected.items():
        if name in out:
            continue
        if name not in src:
            raise ConvertError(f"{name}: missing tensor (model.{name} in the checkpoint)")
        a = take(name)
        if tuple(a.shape) != tuple(shape):
            raise ConvertError(f"{name}: wrong shape: got {list(a.shape)}, expected {list(shape)}")
        out[name] = a
    unknown = sorted(k for k in src if k not in used)
    if unknown:
        more = f" (and {len(unknown) - 8} more)" if len(unknown) > 8 else ""
        raise ConvertError(f"unknown tensors that attn-translate cannot run: {unknown[:8]}{more}")
    for name, a in out.items():
        if tuple(a.shape) != tuple(expected[name]):
            raise ConvertError(f"{name}: wrong shape: got {list(a.shape)}, expected {list(expected[name])}")
        if not np.all(np.isfinite(a)):
            raise ConvertError(f"{name}: non-finite values")
    return out, notes


# ---------------------------------------------------------------------------------------
# vocabulary
# ---------------------------------------------------------------------------------------

def build_vocab(input_dir, V, pad_id, eos_id):
    """vocab.json (ours) from source.spm, target.spm and Marian's vocab.json."""
    paths = {n: os.path.join(input_dir, n) for n in ("source.spm", "target.spm", "vocab.json")}
    for n, p in paths.items():
        if not os.path.exists(p):
            raise ConvertError(f"{input_dir}: {n} missing")
    try:
        tokens = spm_vocab.marian_tokens(paths["vocab.json"])
        src = spm_vocab.read_spm(paths["source.spm"])
        tgt = spm_vocab.read_spm(paths["target.spm"])
    except (spm_vocab.SpmError, ValueError) as e:
        raise ConvertError(str(e)) from None
    if len(tokens) != V:
        raise ConvertError(f"vocab.json: {len(tokens)} pieces but vocab_size is {V}"
                           " (separate source/target vocabularies are not supported)")
    if "<unk>" not in tokens:
        raise ConvertError("vocab.json: no <unk> piece")
    unk_id = tokens.index("<unk>")
    for what, i, piece in (("pad_token_id", pad_id, "<pad>"), ("eos_token_id", eos_id, "</s>")):
        if not 0 <= i < V:
            raise ConvertError(f"config.json: {what} {i} not in [0, {V})")
        if tokens[i] != piece:
            raise ConvertError(f"config.json: {what} {i} is {tokens[i]!r} in vocab.json, expected {piece!r}")
    vocab = spm_vocab.make_vocab(tokens, pad_id, eos_id, unk_id, src, tgt)
    return vocab, unk_id


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------

def _load_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConvertError(f"{what} missing: {path}") from None
    except json.JSONDecodeError as e:
        raise ConvertError(f"{path}: invalid JSON: {e}") from None


def _human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def convert(input_dir, output_dir, dtype="f32", quiet=False, layout="packed"):
    """Convert; returns the written model.json header. Raises ConvertError."""
    if dtype not in atmodel.WRITE_DTYPES:
        raise ConvertError(f"--dtype must be one of {', '.join(atmodel.WRITE_DTYPES)}")
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    hf = _load_json(os.path.join(input_dir, "config.json"), "config.json")
    arch = hf.get("architectures") or ["MarianMTModel"]
    if "MarianMTModel" not in arch:
        raise ConvertError(f"config.json: architectures {arch}, expected MarianMTModel")
    gpath = os.path.join(input_dir, "generation_config.json")
    gen_cfg = _load_json(gpath, "generation_config.json") if os.path.exists(gpath) else None

    # the config needs unk_id from the vocabulary; check the structural refusals first
    map_config(hf, 0)
    V = hf["vocab_size"]
    vocab, unk_id = build_vocab(input_dir, V, _get(hf, "pad_token_id"), _get(hf, "eos_token_id"))
    cfg = map_config(hf, unk_id)
    gen, gen_notes = map_generation(hf, gen_cfg, cfg)

    raw, wfile = read_weights(input_dir)
    src_dtypes = sorted({dt for _, dt in raw.values()})
    tensors, notes = map_tensors(raw, cfg)
    del raw
    try:
        header = atmodel.write_model(
            output_dir, cfg, gen, tensors, dtype=dtype, vocab=vocab,
            extra_files={"source.spm": os.path.join(input_dir, "source.spm"),
                         "target.spm": os.path.join(input_dir, "target.spm")},
            layout=layout)
    except ValueError as e:  # e.g. a value that overflows f16
        raise ConvertError(str(e)) from None

    for n in notes + gen_notes:
        log(f"convert_marian: note: {n}")
    params = sum(int(np.prod(a.shape)) for a in tensors.values())
    size = header["weights"]["bytes"]
    log(f"convert_marian: {input_dir} ({wfile}, {'/'.join(src_dtypes)}) -> {output_dir}")
    say = (lambda *a: None) if quiet else print
    say(f"converted: {params:,} parameters, {len(tensors)} tensors, dtype {dtype}, "
          f"model.bin {_human(size)} ({size:,} bytes); "
          f"{cfg['encoder_layers']}+{cfg['decoder_layers']} layers, d_model {cfg['d_model']}, "
          f"vocab {cfg['vocab_size']:,}, {cfg['activation_function']}; "
          f"generation {json.dumps(gen, separators=(',', ':'))}")
    return header


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert a Hugging Face MarianMTModel directory (e.g. Helsinki-NLP/opus-mt-en-fr) "
                    "to an attn-translate model directory.")
    ap.add_argument("input_dir", help="Hugging Face model directory")
    ap.add_argument("output_dir", help="attn-translate model directory to write")
    ap.add_argument("--dtype", choices=atmodel.WRITE_DTYPES, default="f32",
                    help="weight dtype in model.bin (default f32)")
    ap.add_argument("--layout", choices=atmodel.LAYOUTS, default="packed",
                    help="packed (format version 2: the engine uses the weights in place, the "
                    "fastest start-up; default) or rows (version 1, also read by older builds)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no notes on stderr")
    a = ap.parse_args(argv)
    try:
        convert(a.input_dir, a.output_dir, a.dtype, a.quiet, a.layout)
    except ConvertError as e:
        print(f"convert_marian: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"convert_marian: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

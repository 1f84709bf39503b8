"""Read and write attn-translate model directories (docs/FORMAT.md, versions 1 and 2).

A model directory holds:

    model.json   header: format/version/architecture, config, generation, weights, tensors
    model.bin    64-byte preamble (b"ATTNTRW\\0", uint32 LE version, zeros), then the
                 tensors, each at a 64-byte aligned absolute offset, little-endian
    vocab.json   tokenizer (written verbatim from the dict the caller passes)

Any other file in the directory (for example `source.spm`) is ignored by the loader.

Public functions:

    expected_tensors(config) -> {name: shape}    the tensor table of FORMAT.md, the single
                                                 Python source of truth for it
    write_model(dir, config, generation, tensors, dtype, vocab, extra_files=None,
                layout="rows")                 layout "packed": version 2, the weight
                                                 matrices stored as the engine's kernels
                                                 read them (loading is then a memory map
                                                 and the checks)
    read_model(dir) -> (header, {name: float32 ndarray})   either layout, either version
    sinusoidal_positions(n, d) -> float32 ndarray [n, d]

read_model() validates everything FORMAT.md lists and raises FormatError naming the
offending field or tensor.

This module only needs numpy; it is used by the reference, the fixture generator, the
exporter and the OPUS-MT converter.
"""

import hashlib
import json
import math
import os
import struct

import numpy as np

FORMAT = "attn-translate"
VERSION = 1          # row-major files: what every build reads
VERSION_PACKED = 2   # adds "layout": "packed16" and a tied model's int8 lm_head
VERSIONS = (VERSION, VERSION_PACKED)
LAYOUTS = ("rows", "packed")   # write_model's choice; "packed" writes "packed16" tensors
ARCHITECTURE = "marian"
MAGIC = b"ATTNTRW\0"
ALIGNMENT = 64
PREAMBLE_BYTES = 64

# dtype name in model.json -> numpy little-endian dtype
DTYPES = {"f32": np.dtype("<f4"), "f16": np.dtype("<f2"), "i8": np.dtype("i1")}
WRITE_DTYPES = ("f32", "f16", "int8")   # int8: i8 linear-layer weights + f32 scales, f32 rest


def is_linear_weight(name):
    """The weight matrices of linear layers: the ones that may be stored as i8."""
    return name.endswith(("_proj.weight", ".fc1.weight", ".fc2.weight")) or name == "lm_head.weight"


def quantize_rows_int8(w):
    """Symmetric per-row int8 exactly as lib/gemm.c: in float32, scale = amax / 127,
    q = round-half-even(w * (127 / amax)) clamped to ±127 (a zero row: scale 0, q 0).
    Returns (q int8 [out, in], scale float32 [out])."""
    w = np.asarray(w, dtype=np.float32)
    amax = np.abs(w).max(axis=1).astype(np.float32)
    safe = np.where(amax > 0, amax, np.float32(1)).astype(np.float32)
    inv = np.where(amax > 0, np.float32(127.0) / safe, np.float32(0)).astype(np.float32)
    q = np.clip(np.rint((w * inv[:, None]).astype(np.float32)), -127, 127).astype(np.int8)
    return q, (amax / np.float32(127.0)).astype(np.float32)

def _pad(n, m):
    return (n + m - 1) // m * m


def pack16(w):
    """[out, in] -> the packed16 layout of lib/gemm.h, [out16 / 16][in][16] (out16 = out
    rounded up to 16, padding rows zero): each step over an input reads 16 consecutive
    outputs' weights. For f32 and f16 tensors."""
    out, n_in = w.shape
    o16 = _pad(out, 16)
    p = np.zeros((o16, n_in), dtype=w.dtype)
    p[:out] = w
    return np.ascontiguousarray(p.reshape(o16 // 16, 16, n_in).transpose(0, 2, 1))


def pack16_i8(q):
    """[out, in] int8 -> packed16 for i8, [out16 / 16][in4 / 4][16][4] (in4 = in rounded
    up to 4, padding zero): 4 inputs of 16 outputs per 64 bytes, a VNNI operand."""
    out, n_in = q.shape
    o16, i4 = _pad(out, 16), _pad(n_in, 4)
    p = np.zeros((o16, i4), dtype=np.int8)
    p[:out, :n_in] = q
    return np.ascontiguousarray(p.reshape(o16 // 16, 16, i4 // 4, 4).transpose(0, 2, 1, 3))


def unpack16(flat, shape, i8):
    """The inverse of pack16 / pack16_i8 on the flat stored array: ([out, in] array,
    True when every padding value is zero)."""
    out, n_in = shape
    o16 = _pad(out, 16)
    if i8:
        i4 = _pad(n_in, 4)
        full = flat.reshape(o16 // 16, i4 // 4, 16, 4).transpose(0, 2, 1, 3).reshape(o16, i4)
    else:
        full = flat.reshape(o16 // 16, n_in, 16).transpose(0, 2, 1).reshape(o16, n_in)
    pad_ok = not full[out:].view(np.uint8).any() and not full[:, n_in:].view(np.uint8).any()
    return np.ascontiguousarray(full[:out, :n_in]), pad_ok


def packable(name, config):
    """Tensors that may be packed16: the weight matrices of linear layers and the
    embeddings."""
    return is_linear_weight(name) or name in embedding_names(config)[:2]


ACTIVATIONS = ("swish", "silu", "relu", "gelu")

# config field -> JSON type (bool is checked before int: bool is a subclass of int)
CONFIG_FIELDS = {
    "vocab_size": int,
    "d_model": int,
    "encoder_layers": int,
    "decoder_layers": int,
    "encoder_attention_heads": int,
    "decoder_attention_heads": int,
    "encoder_ffn_dim": int,
    "decoder_ffn_dim": int,
    "activation_function": str,
    "max_position_embeddings": int,
    "scale_embedding": bool,
    "share_encoder_decoder_embeddings": bool,
    "tie_word_embeddings": bool,
    "pad_token_id": int,
    "eos_token_id": int,
    "unk_token_id": int,
    "decoder_start_token_id": int,
    "layer_norm_eps": float,
}
ID_FIELDS = ("pad_token_id", "eos_token_id", "unk_token_id", "decoder_start_token_id")

# generation field -> default (FORMAT.md: "each field defaults as shown";
# bad_words_ids defaults to [pad_token_id], the OPUS-MT value)
GENERATION_DEFAULTS = {"num_beams": 4, "max_length": 512, "length_penalty": 1.0}


class FormatError(ValueError):
    """A model directory that does not follow docs/FORMAT.md."""


# ---------------------------------------------------------------------------------------
# tensor table
# ---------------------------------------------------------------------------------------

def _attn(prefix, d):
    out = {}
    for p in ("q", "k", "v", "out"):
        out[f"{prefix}.{p}_proj.weight"] = (d, d)
        out[f"{prefix}.{p}_proj.bias"] = (d,)
    return out


def _ln(prefix, d):
    return {f"{prefix}.weight": (d,), f"{prefix}.bias": (d,)}


def _ffn(prefix, d, f):
    return {
        f"{prefix}.fc1.weight": (f, d),
        f"{prefix}.fc1.bias": (f,),
        f"{prefix}.fc2.weight": (d, f),
        f"{prefix}.fc2.bias": (d,),
    }


def expected_tensors(config):
    """Return {name: shape tuple} of every tensor a model with this config must have.

    Order: embeddings, lm_head, final_logits_bias, encoder layers, decoder layers (the
    order write_model lays them out in model.bin)."""
    d = config["d_model"]
    V = config["vocab_size"]
    t = {}
    if config["share_encoder_decoder_embeddings"]:
        t["shared.weight"] = (V, d)
    else:
        t["encoder.embed_tokens.weight"] = (V, d)
        t["decoder.embed_tokens.weight"] = (V, d)
    if not config["tie_word_embeddings"]:
        t["lm_head.weight"] = (V, d)
    t["final_logits_bias"] = (V,)
    for n in range(config["encoder_layers"]):
        p = f"encoder.layers.{n}"
        t.update(_attn(f"{p}.self_attn", d))
        t.update(_ln(f"{p}.self_attn_layer_norm", d))
        t.update(_ffn(p, d, config["encoder_ffn_dim"]))
        t.update(_ln(f"{p}.final_layer_norm", d))
    for n in range(config["decoder_layers"]):
        p = f"decoder.layers.{n}"
        t.update(_attn(f"{p}.self_attn", d))
        t.update(_ln(f"{p}.self_attn_layer_norm", d))
        t.update(_attn(f"{p}.encoder_attn", d))
        t.update(_ln(f"{p}.encoder_attn_layer_norm", d))
        t.update(_ffn(p, d, config["decoder_ffn_dim"]))
        t.update(_ln(f"{p}.final_layer_norm", d))
    return t


def embedding_names(config):
    """(encoder embedding, decoder embedding, lm_head) tensor names for this config."""
    if config["share_encoder_decoder_embeddings"]:
        enc = dec = "shared.weight"
    else:
        enc, dec = "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"
    lm = dec if config["tie_word_embeddings"] else "lm_head.weight"
    return enc, dec, lm


def sinusoidal_positions(n, d):
    """Marian's fixed positions, computed in float64 and rounded to float32:
    P[p][j] = sin(p / 10000^(2j/d)), P[p][d/2 + j] = cos(p / 10000^(2j/d)), 0 <= j < d/2."""
    half = d // 2
    pos = np.arange(n, dtype=np.float64)[:, None]
    j = np.arange(half, dtype=np.float64)[None, :]
    angle = pos / np.power(10000.0, 2.0 * j / d)
    out = np.zeros((n, d), dtype=np.float64)
    out[:, :half] = np.sin(angle)
    out[:, half:2 * half] = np.cos(angle)
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------

def _json_type_ok(value, typ):
    if typ is bool:
        return isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typ is float:  # a JSON number: 1e-5 or 1
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, typ)


def validate_config(config):
    """Raise FormatError unless config has every field with the right type and range."""
    if not isinstance(config, dict):
        raise FormatError("config: not an object")
    for name, typ in CONFIG_FIELDS.items():
        if name not in config:
            raise FormatError(f"config.{name}: missing")
        if not _json_type_ok(config[name], typ):
            raise FormatError(f"config.{name}: wrong type {type(config[name]).__name__}")
    for name, typ in CONFIG_FIELDS.items():
        if typ is int and name not in ID_FIELDS and config[name] <= 0:
            raise FormatError(f"config.{name}: must be positive, got {config[name]}")
    V = config["vocab_size"]
    for name in ID_FIELDS:
        if not 0 <= config[name] < V:
            raise FormatError(f"config.{name}: {config[name]} not in [0, vocab_size={V})")
    if not (config["layer_norm_eps"] > 0 and math.isfinite(config["layer_norm_eps"])):
        raise FormatError("config.layer_norm_eps: must be positive and finite")
    d = config["d_model"]
    for heads in ("encoder_attention_heads", "decoder_attention_heads"):
        if d % config[heads] != 0:
            raise FormatError(f"config.{heads}: d_model {d} not divisible by {config[heads]}")
    if config["activation_function"] not in ACTIVATIONS:
        raise FormatError(f"config.activation_function: unknown {config['activation_function']!r}")


def generation_with_defaults(header):
    """The generation block of a header with FORMAT.md's defaults filled in."""
    cfg = header["config"]
    gen = dict(GENERATION_DEFAULTS)
    gen["bad_words_ids"] = [cfg["pad_token_id"]]
    gen.update(header.get("generation") or {})
    return gen


def _validate_generation(gen, V):
    if not isinstance(gen, dict):
        raise FormatError("generation: not an object")
    for name in ("num_beams", "max_length"):
        if name in gen and (not _json_type_ok(gen[name], int) or gen[name] <= 0):
            raise FormatError(f"generation.{name}: must be a positive integer")
    if "length_penalty" in gen and not _json_type_ok(gen["length_penalty"], float):
        raise FormatError("generation.length_penalty: must be a number")
    if "bad_words_ids" in gen:
        ids = gen["bad_words_ids"]
        if not isinstance(ids, list) or not all(_json_type_ok(i, int) and 0 <= i < V for i in ids):
            raise FormatError("generation.bad_words_ids: must be a list of ids < vocab_size")


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------

def _align(n, a=ALIGNMENT):
    return (n + a - 1) // a * a


def write_model(dir, config, generation, tensors, dtype="f32", vocab=None, extra_files=None,
                layout="rows", int8=None):
    """Write model.json, model.bin and vocab.json into dir (created if needed).

    config: dict with every FORMAT.md config field. generation: dict (may be empty/None).
    tensors: {name: array-like}; must be exactly expected_tensors(config) with the same
    shapes (checked). dtype: 'f32' or 'f16' for every tensor, or 'int8': the weight
    matrices of linear layers as i8 with a per-row f32 NAME.scale tensor (quantized as the
    engine's --dtype int8 does), every other tensor f32. vocab: the vocab.json dict
    (written as is; skipped if None). extra_files: {file name: bytes or path of a file to
    copy} written next to them (e.g. source.spm).
    layout: 'rows' (format version 1, row-major, read by every build) or 'packed'
    (version 2): the weight matrices of linear layers, and the decoder embedding when it
    is the tied output projection, are stored packed16, the layout the engine's kernels
    read, so it uses them in place; with dtype 'int8' a tied model also stores the int8
    form of its output projection (lm_head.weight, i8, quantized from the embedding as
    --dtype int8 does at load).
    int8: with dtype 'int8', {name: (q, scale)} of weights already quantized (the int8
    dict of read_model), stored as they are instead of quantized again.
    Returns the header dict written to model.json."""
    if dtype not in WRITE_DTYPES:
        raise ValueError(f"dtype must be one of {WRITE_DTYPES}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    packed = layout == "packed"
    version = VERSION_PACKED if packed else VERSION
    lm = embedding_names(config)[2]
    validate_config(config)
    generation = dict(generation or {})
    _validate_generation(generation, config["vocab_size"])
    expected = expected_tensors(config)
    missing = [n for n in expected if n not in tensors]
    unknown = [n for n in tensors if n not in expected]
    if missing or unknown:
        raise ValueError(f"tensors: missing {missing}, unknown {unknown}")

    table = {}
    chunks = []
    offset = PREAMBLE_BYTES

    def put(name, dt, data, pack=False):
        nonlocal offset
        shape = list(data.shape)
        if pack:
            data = pack16_i8(data) if dt == "i8" else pack16(data)
        raw = np.ascontiguousarray(data).tobytes()
        offset = _align(offset)
        table[name] = {"dtype": dt, "shape": shape, "offset": offset, "nbytes": len(raw)}
        if packed:
            table[name]["layout"] = "packed16" if pack else "rows"
        chunks.append((offset, raw))
        offset += len(raw)

    def put_i8(name, w32, pack):
        if int8 and name in int8:
            q, scale = int8[name]
            q = np.asarray(q, dtype=np.float32)
            if q.shape != w32.shape or np.any(np.abs(q) > 127) or np.any(q != np.rint(q)):
                raise ValueError(f"{name}: stored int8 weights of the wrong shape or range")
            q, scale = q.astype(np.int8), np.asarray(scale, dtype=np.float32)
        else:
            q, scale = quantize_rows_int8(w32)
        put(name, "i8", q, pack)
        put(name + ".scale", "f32", scale.astype("<f4"))

    for name, shape in expected.items():  # fixed order: expected_tensors order
        arr = np.asarray(tensors[name])
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(f"{name}: shape {list(arr.shape)}, expected {list(shape)}")
        pack = packed and (is_linear_weight(name) or name == lm)
        if dtype == "int8" and is_linear_weight(name):
            w32 = np.ascontiguousarray(arr, dtype=np.float64).astype(np.float32)
            if not np.all(np.isfinite(w32)):
                raise ValueError(f"{name}: non-finite value")
            put_i8(name, w32, pack)
            continue
        dt = "f32" if dtype == "int8" else dtype
        data = np.ascontiguousarray(arr, dtype=np.float64).astype(DTYPES[dt])
        if not np.all(np.isfinite(data)):
            raise ValueError(f"{name}: non-finite value after conversion to {dt}")
        put(name, dt, data, pack)
        if packed and dtype == "int8" and name == lm and config["tie_word_embeddings"]:
            put_i8("lm_head.weight", data, True)  # the tied output projection, as int8
    total = offset

    os.makedirs(dir, exist_ok=True)
    with open(os.path.join(dir, "model.bin"), "wb") as f:
        preamble = MAGIC + struct.pack("<I", version)
        f.write(preamble + b"\0" * (PREAMBLE_BYTES - len(preamble)))
        pos = PREAMBLE_BYTES
        for off, raw in chunks:
            f.write(b"\0" * (off - pos))
            f.write(raw)
            pos = off + len(raw)
    header = {
        "format": FORMAT,
        "version": version,
        "architecture": ARCHITECTURE,
        "config": dict(config),
        "generation": generation,
        "weights": {"file": "model.bin", "bytes": total, "alignment": ALIGNMENT},
        "tensors": table,
    }
    with open(os.path.join(dir, "model.json"), "w", encoding="utf-8") as f:
        json.dump(header, f, indent=1)
        f.write("\n")
    if vocab is not None:
        with open(os.path.join(dir, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
    for fname, content in (extra_files or {}).items():
        if "/" in fname:
            raise ValueError(f"extra file {fname!r}: plain file names only")
        if isinstance(content, (bytes, bytearray)):
            data = bytes(content)
        else:
            with open(content, "rb") as src:
                data = src.read()
        with open(os.path.join(dir, fname), "wb") as f:
            f.write(data)
    return header


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------

def read_header(dir):
    """Load and validate model.json (everything that does not need model.bin)."""
    path = os.path.join(dir, "model.json")
    with open(path, "r", encoding="utf-8") as f:
        try:
            h = json.load(f)
        except json.JSONDecodeError as e:
            raise FormatError(f"model.json: invalid JSON: {e}") from None
    if not isinstance(h, dict):
        raise FormatError("model.json: not an object")
    if h.get("format") != FORMAT:
        raise FormatError(f"format: expected {FORMAT!r}, got {h.get('format')!r}")
    if h.get("version") not in VERSIONS or isinstance(h.get("version"), bool):
        raise FormatError(f"version: expected one of {VERSIONS}, got {h.get('version')!r}")
    if h.get("architecture") != ARCHITECTURE:
        raise FormatError(f"architecture: expected {ARCHITECTURE!r}, got {h.get('architecture')!r}")
    validate_config(h.get("config"))
    if "generation" in h:
        _validate_generation(h["generation"], h["config"]["vocab_size"])
    w = h.get("weights")
    if not isinstance(w, dict):
        raise FormatError("weights: missing")
    if not isinstance(w.get("file"), str) or not w["file"] or "/" in w["file"] or w["file"] in (".", ".."):
        raise FormatError(f"weights.file: must be a plain file name, got {w.get('file')!r}")
    if not _json_type_ok(w.get("bytes"), int) or w["bytes"] < PREAMBLE_BYTES:
        raise FormatError("weights.bytes: must be an integer >= 64")
    if w.get("alignment") != ALIGNMENT:
        raise FormatError(f"weights.alignment: must be {ALIGNMENT}")
    if not isinstance(h.get("tensors"), dict):
        raise FormatError("tensors: missing")
    return h


def _no_duplicate_keys(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise FormatError(f"duplicate key {k!r} in model.json")
        seen[k] = v
    return seen


def read_model(dir, int8=None):
    """Read and validate a model directory.

    Returns (header, tensors) where header is the parsed model.json and tensors maps
    every tensor name to a float32 numpy array of its shape (f16 widened, i8 weights
    dequantized as float32(q) * float32(scale), the engine's f32 reading; packed16
    tensors unpacked). When `int8` is a dict it receives, for each i8 tensor, name -> (q
    float32 [out, in], scale float32 [out]). A tied model's stored int8 lm_head.weight
    (version 2) must equal the quantized embedding, and is in neither dict (it is not a
    tensor of the computation). Raises FormatError for anything FORMAT.md forbids."""
    # duplicate names: json.load keeps the last silently, so re-parse with a hook
    with open(os.path.join(dir, "model.json"), "r", encoding="utf-8") as f:
        json.load(f, object_pairs_hook=_no_duplicate_keys)
    h = read_header(dir)
    cfg = h["config"]
    w = h["weights"]
    bin_path = os.path.join(dir, w["file"])
    size = os.path.getsize(bin_path)
    if size != w["bytes"]:
        raise FormatError(f"weights.bytes: {w['bytes']} but {w['file']} has {size} bytes")
    with open(bin_path, "rb") as f:
        blob = f.read()
    if blob[:8] != MAGIC:
        raise FormatError(f"{w['file']}: bad magic {blob[:8]!r}")
    (ver,) = struct.unpack("<I", blob[8:12])
    if ver != h["version"]:
        raise FormatError(f"{w['file']}: preamble version {ver}, model.json says {h['version']}")
    if any(blob[12:PREAMBLE_BYTES]):
        raise FormatError(f"{w['file']}: preamble bytes 12..63 not zero")

    expected = expected_tensors(cfg)
    table = h["tensors"]
    tied_q8 = h["version"] >= VERSION_PACKED and cfg["tie_word_embeddings"] and "lm_head.weight" in table
    if tied_q8:  # a tied model's int8 output projection
        if not isinstance(table["lm_head.weight"], dict) or table["lm_head.weight"].get("dtype") != "i8":
            raise FormatError("lm_head.weight: must be i8 in a model with tied embeddings")
        expected = dict(expected)
        expected["lm_head.weight"] = (cfg["vocab_size"], cfg["d_model"])
    for name in table:
        base = name[:-len(".scale")] if name.endswith(".scale") else None
        if base and base in expected and isinstance(table.get(base), dict) \
                and table[base].get("dtype") == "i8":
            continue
        if name not in expected:
            raise FormatError(f"{name}: unknown tensor")
    for name in expected:
        if name not in table:
            raise FormatError(f"{name}: missing tensor")

    ranges = []
    tensors = {}
    todo = list(expected.items())
    for name, shape in expected.items():
        if isinstance(table[name], dict) and table[name].get("dtype") == "i8":
            if not is_linear_weight(name):
                raise FormatError(f"{name}: dtype i8 is only for the weights of linear layers")
            if name + ".scale" not in table:
                raise FormatError(f"{name}.scale: missing (the scales of i8 tensor {name})")
            todo.append((name + ".scale", (shape[0],)))
    for name, shape in todo:
        e = table[name]
        if not isinstance(e, dict):
            raise FormatError(f"{name}: entry is not an object")
        dt = e.get("dtype")
        if dt not in DTYPES or (name.endswith(".scale") and dt != "f32"):
            raise FormatError(f"{name}: unsupported dtype {dt!r}")
        got = e.get("shape")
        if not isinstance(got, list) or not all(_json_type_ok(x, int) for x in got):
            raise FormatError(f"{name}: shape must be a list of integers")
        if tuple(got) != tuple(shape):
            raise FormatError(f"{name}: wrong shape: got {got}, expected {list(shape)}")
        off, nb = e.get("offset"), e.get("nbytes")
        if not _json_type_ok(off, int) or not _json_type_ok(nb, int):
            raise FormatError(f"{name}: offset and nbytes must be integers")
        if off < PREAMBLE_BYTES or off % ALIGNMENT:
            raise FormatError(f"{name}: offset {off} not a multiple of {ALIGNMENT} >= {PREAMBLE_BYTES}")
        numel = int(np.prod(shape, dtype=np.int64))
        lay = e.get("layout")
        if lay is not None and h["version"] < VERSION_PACKED:
            raise FormatError(f"{name}: \"layout\" needs format version {VERSION_PACKED}")
        if lay not in (None, "rows", "packed16"):
            raise FormatError(f"{name}: unknown layout {lay!r}")
        pk = lay == "packed16"
        if pk and not packable(name, cfg):
            raise FormatError(f"{name}: only linear-layer weights and embeddings can be packed16")
        stored = numel
        if pk:
            stored = _pad(shape[0], 16) * (_pad(shape[1], 4) if dt == "i8" else shape[1])
        if nb != stored * DTYPES[dt].itemsize:
            raise FormatError(f"{name}: nbytes {nb} != {stored} * {DTYPES[dt].itemsize}")
        if nb > w["bytes"] or off > w["bytes"] - nb:  # Python ints do not overflow, C must check like this
            raise FormatError(f"{name}: bytes [{off}, {off + nb}) outside {w['file']} ({w['bytes']} bytes)")
        ranges.append((off, off + nb, name))
        arr = np.frombuffer(blob, dtype=DTYPES[dt], count=stored, offset=off)
        if pk:
            arr, pad_ok = unpack16(arr, shape, dt == "i8")
            if not pad_ok:
                raise FormatError(f"{name}: nonzero padding in a packed16 tensor")
        arr = arr.reshape(shape)
        if dt == "i8" and np.any(arr == -128):
            raise FormatError(f"{name}: i8 value -128 (the range is -127..127)")
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise FormatError(f"{name}: non-finite value")
        if name.endswith(".scale") and np.any(arr < 0):
            raise FormatError(f"{name}: negative scale")
        tensors[name] = arr
    ranges.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(ranges, ranges[1:]):
        if b0 < a1:
            raise FormatError(f"{bn}: overlaps {an}")
    stored8 = None
    for name in [n for n in tensors if n.endswith(".scale")]:
        scale = tensors.pop(name)
        base = name[:-len(".scale")]
        q = tensors[base]
        if base == "lm_head.weight" and tied_q8:
            stored8 = (q, scale)
        elif int8 is not None:
            int8[base] = (q, scale)
        tensors[base] = (q * scale[:, None]).astype(np.float32)
    if tied_q8:  # not a tensor of the computation: the int8 form of the embedding
        tensors.pop("lm_head.weight")
        q8, s8 = stored8
        emb = tensors[embedding_names(cfg)[1]]
        eq, es = quantize_rows_int8(emb)
        if not (np.array_equal(q8, eq.astype(np.float32)) and np.array_equal(s8, es)):
            raise FormatError("lm_head.weight: not the int8 quantization of the tied embedding")
    return h, tensors


def sha256_file(path):
    """Hex sha256 of a file, read 1 MiB at a time (fixtures name the model.bin they fit)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_vocab(dir):
    """Load vocab.json as a dict (only the fields the reference needs are checked)."""
    with open(os.path.join(dir, "vocab.json"), "r", encoding="utf-8") as f:
        v = json.load(f)
    if v.get("format") != "attn-translate-vocab" or v.get("version") != 1:
        raise FormatError("vocab.json: bad format/version")
    if not isinstance(v.get("tokens"), list):
        raise FormatError("vocab.json: tokens missing")
    return v

#!/usr/bin/python3
"""Tests of scripts/convert_marian.py on fake Hugging Face Marian directories.

Builds, without transformers, a tiny MarianMTModel checkpoint (d_model 16, 2 heads,
ffn 32, 2+2 layers) that keeps the real OPUS-MT en-fr vocabulary (V = 59,514, the real
source.spm / target.spm / vocab.json from ../shared/models/opus-mt-en-fr-tokenizer), with
exactly transformers' state_dict names and shapes, and converts it in these forms:

  full.st    model.safetensors with every state_dict entry, duplicates included
             (shared / encoder / decoder embed_tokens, lm_head, sinusoidal positions)
  full.bin   pytorch_model.bin, torch.save of the same state_dict (tied tensors share storage),
             also converted with torch unimportable (the numpy-only unpickler); the
             legacy torch.save format and a code-running pickle (refused)
  min.st     what recent save_pretrained writes: tied copies and positions left out
  half.st    safetensors holding F16 and BF16 tensors (reader dtypes)

All files live in a temporary directory (about 4 MB each) removed at the end.
Prints "test_convert: N passed, N failed"; exits non-zero on failure.
Run: /usr/bin/python3 tests/test_convert.py
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import atmodel  # noqa: E402
import convert_marian  # noqa: E402

# the real OPUS-MT tokenizer files, from ../shared beside the checkout (CI has it; a
# user's clone may not, and then the test is skipped, not failed)
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "models", "opus-mt-en-fr-tokenizer"))

PYTHON = "/usr/bin/python3"
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}")


def run_test(fn):
    global failed
    try:
        fn()
    except Exception:  # noqa: BLE001 - a crashing test is one failure, the rest still run
        failed += 1
        print(f"FAIL {fn.__name__}: exception")
        traceback.print_exc()


# ---------------------------------------------------------------------------------------
# fake Hugging Face checkpoint
# ---------------------------------------------------------------------------------------

def tiny_config():
    with open(os.path.join(SHARED, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    cfg.update({"d_model": 16, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
                "encoder_ffn_dim": 32, "decoder_ffn_dim": 32, "encoder_layers": 2,
                "decoder_layers": 2, "num_hidden_layers": 2})
    return cfg


def hf_sinusoids(n_pos, dim):
    """MarianSinusoidalPositionalEmbedding._init_weight, as transformers computes it."""
    position_enc = np.array(
        [[pos / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)] for pos in range(n_pos)])
    out = torch.empty(n_pos, dim, dtype=torch.float32)
    sentinel = dim // 2 if dim % 2 == 0 else (dim // 2) + 1
    out[:, 0:sentinel] = torch.FloatTensor(np.sin(position_enc[:, 0::2]))
    out[:, sentinel:] = torch.FloatTensor(np.cos(position_enc[:, 1::2]))
    return out


def hf_state_dict(cfg, seed=0):
    """A random MarianMTModel state_dict with transformers' names, shapes and order
    (own buffers first, then model.*, then lm_head; tied tensors are one object)."""
    g = torch.Generator().manual_seed(seed)
    V, d = cfg["vocab_size"], cfg["d_model"]

    def normal(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    sd = {}
    sd["final_logits_bias"] = normal(1, V, std=0.5)
    shared = normal(V, d, std=0.3)
    shared[cfg["pad_token_id"]] = 0.0  # nn.Embedding(padding_idx=pad) zeroes the pad row
    sd["model.shared.weight"] = shared
    pos = hf_sinusoids(cfg["max_position_embeddings"], d)

    def attn(prefix):
        for p in ("k", "v", "q", "out"):  # MarianAttention registers k, v, q, out
            sd[f"{prefix}.{p}_proj.weight"] = normal(d, d, std=0.3)
            sd[f"{prefix}.{p}_proj.bias"] = normal(d, std=0.1)

    def ln(prefix):
        sd[f"{prefix}.weight"] = 1.0 + normal(d, std=0.1)
        sd[f"{prefix}.bias"] = normal(d, std=0.1)

    def ffn(prefix, F):
        sd[f"{prefix}.fc1.weight"] = normal(F, d, std=0.3)
        sd[f"{prefix}.fc1.bias"] = normal(F, std=0.1)
        sd[f"{prefix}.fc2.weight"] = normal(d, F, std=0.3)
        sd[f"{prefix}.fc2.bias"] = normal(d, std=0.1)

    sd["model.encoder.embed_tokens.weight"] = shared
    sd["model.encoder.embed_positions.weight"] = pos
    for n in range(cfg["encoder_layers"]):
        p = f"model.encoder.layers.{n}"
        attn(p + ".self_attn")
        ln(p + ".self_attn_layer_norm")
        ffn(p, cfg["encoder_ffn_dim"])
        ln(p + ".final_layer_norm")
    sd["model.decoder.embed_tokens.weight"] = shared
    sd["model.decoder.embed_positions.weight"] = pos.clone()
    for n in range(cfg["decoder_layers"]):
        p = f"model.decoder.layers.{n}"
        attn(p + ".self_attn")
        ln(p + ".self_attn_layer_norm")
        attn(p + ".encoder_attn")
        ln(p + ".encoder_attn_layer_norm")
        ffn(p, cfg["decoder_ffn_dim"])
        ln(p + ".final_layer_norm")
    sd["lm_head.weight"] = shared
    return sd


_ST_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def save_safetensors(tensors, path, metadata=None):
    """Minimal safetensors writer: 8-byte LE header length, JSON header, raw data.
    Every entry gets its own bytes (tied tensors are written once per name)."""
    header = {}
    chunks = []
    off = 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)  # the reference writer pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)


def make_hf_dir(path, cfg, sd, weights="safetensors", gen=True):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    for n in ("source.spm", "target.spm", "vocab.json", "tokenizer_config.json",
              "special_tokens_map.json"):
        shutil.copyfile(os.path.join(SHARED, n), os.path.join(path, n))
    if gen:
        shutil.copyfile(os.path.join(SHARED, "generation_config.json"),
                        os.path.join(path, "generation_config.json"))
    if weights == "safetensors":
        save_safetensors(sd, os.path.join(path, "model.safetensors"), {"format": "pt"})
    else:
        torch.save(sd, os.path.join(path, "pytorch_model.bin"))
    return path


def expected_ours(sd):
    """The tensors the converter must produce from a full state_dict, as float32 numpy."""
    out = {}
    for k, v in sd.items():
        if k in ("lm_head.weight", "model.encoder.embed_tokens.weight",
                 "model.decoder.embed_tokens.weight") or "embed_positions" in k:
            continue
        name = k[len("model."):] if k.startswith("model.") else k
        a = v.detach().to(torch.float32).numpy()
        out[name] = a.reshape(-1) if name == "final_logits_bias" else a
    return out


# ---------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------

# set by main(): the temporary directory, the tiny config, its state_dict, our tensors
TMP = CFG = SD = EXPECTED = None


def convert_ok(src, dst, dtype="f32"):
    return convert_marian.convert(src, dst, dtype=dtype, quiet=True)


def check_roundtrip(out_dir, expected, dtype, label):
    h, t = atmodel.read_model(out_dir)
    check(sorted(t) == sorted(expected), f"{label}: tensor names {sorted(set(t) ^ set(expected))}")
    check(all(e["dtype"] == dtype for e in h["tensors"].values()), f"{label}: dtype {dtype}")
    bad = []
    for name, want in expected.items():
        got = t.get(name)
        if got is None or got.shape != want.shape:
            bad.append(name)
            continue
        if dtype == "f32":
            ok = np.array_equal(got, want)
        else:  # f16 rounding of the f32 value, exactly, and within 2^-11 relative
            ok = (np.array_equal(got, want.astype(np.float16).astype(np.float32))
                  and np.all(np.abs(got - want) <= np.abs(want) * 2.0 ** -11 + 2.0 ** -25))
        if not ok:
            bad.append(name)
    check(not bad, f"{label}: tensors differ: {bad[:5]}")
    return h, t


def test_safetensors_full_f32():
    src = make_hf_dir(os.path.join(TMP, "full.st"), CFG, SD, "safetensors")
    out = os.path.join(TMP, "out.full.st")
    convert_ok(src, out)
    h, _ = check_roundtrip(out, EXPECTED, "f32", "full.st f32")
    c = h["config"]
    want = {"vocab_size": 59514, "d_model": 16, "encoder_layers": 2, "decoder_layers": 2,
            "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 32,
            "decoder_ffn_dim": 32, "activation_function": "swish", "max_position_embeddings": 512,
            "scale_embedding": True, "share_encoder_decoder_embeddings": True,
            "tie_word_embeddings": True, "pad_token_id": 59513, "eos_token_id": 0,
            "unk_token_id": 1, "decoder_start_token_id": 59513, "layer_norm_eps": 1e-5}
    check(c == want, f"config mapping: {c}")
    g = h["generation"]
    check(g == {"num_beams": 4, "max_length": 512, "bad_words_ids": [59513]},
          f"generation mapping: {g}")
    check(atmodel.generation_with_defaults(h)["length_penalty"] == 1.0, "length_penalty default")
    v = atmodel.read_vocab(out)
    toks = v["tokens"]
    check(len(toks) == 59514, "vocab size")
    check(toks[4] == "\u2581the" and toks[0] == "</s>" and toks[1] == "<unk>"
          and toks[59513] == "<pad>", "known pieces: '▁the'=4, '</s>'=0, '<unk>'=1, '<pad>'=59513")
    check((v["pad_id"], v["eos_id"], v["unk_id"]) == (59513, 0, 1), "special ids")
    with open(os.path.join(SHARED, "vocab.json"), encoding="utf-8") as f:
        marian = json.load(f)
    check(all(toks[i] == p for p, i in marian.items()), "tokens are Marian's id -> piece map")
    for side in ("source", "target"):
        spm = v[side]
        check(spm["type"] == "unigram" and spm["normalizer"]["name"] == "nmt_nfkc"
              and len(spm["pieces"]) == 32000, f"{side} SPM")
        with open(os.path.join(SHARED, f"{side}.spm"), "rb") as a, \
                open(os.path.join(out, f"{side}.spm"), "rb") as b:
            check(a.read() == b.read(), f"{side}.spm copied")


def test_pytorch_bin_f32_and_f16():
    src = make_hf_dir(os.path.join(TMP, "full.bin"), CFG, SD, "bin")
    out = os.path.join(TMP, "out.full.bin")
    convert_ok(src, out)
    check_roundtrip(out, EXPECTED, "f32", "full.bin f32")
    out16 = os.path.join(TMP, "out.full.bin.f16")
    h = convert_ok(src, out16, dtype="f16")
    check_roundtrip(out16, EXPECTED, "f16", "full.bin f16")
    size32 = os.path.getsize(os.path.join(out, "model.bin"))
    check(h["weights"]["bytes"] < size32 * 0.51, "f16 model.bin is half the size")


def test_pytorch_bin_without_torch():
    """pytorch_model.bin is read by a restricted unpickler: no torch at conversion time,
    the legacy (pre-zip) torch.save format too, and a pickle that would run code is
    refused without running it."""
    src = os.path.join(TMP, "full.bin")
    if not os.path.isdir(src):
        make_hf_dir(src, CFG, SD, "bin")
    out = os.path.join(TMP, "out.notorch")
    code = ("import sys; sys.modules['torch'] = None; sys.path.insert(0, sys.argv[1]); "
            "import convert_marian; sys.exit(convert_marian.main([sys.argv[2], sys.argv[3], '-q']))")
    r = subprocess.run([PYTHON, "-c", code, os.path.join(ROOT, "scripts"), src, out],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"convert .bin with torch unimportable: {r.stderr[-300:]}")
    if r.returncode == 0:
        check_roundtrip(out, EXPECTED, "f32", "full.bin without torch")
    # legacy format, f16/bf16 storages, a view with an offset, a transposed tensor
    odd = {"a": torch.randn(3, 4), "b": torch.randn(5, 6).half(), "c": torch.randn(4, 4).bfloat16(),
           "d": torch.randn(6, 4).t(), "e": torch.randn(10)[2:7]}
    for zip_format in (True, False):
        path = os.path.join(TMP, f"odd{int(zip_format)}.bin")
        torch.save(odd, path, _use_new_zipfile_serialization=zip_format)
        got = convert_marian.read_pytorch_bin(path)
        check(set(got) == set(odd) and all(
            np.array_equal(got[k][0], odd[k].float().numpy()) for k in odd),
              f"torch.save {'zip' if zip_format else 'legacy'} format read exactly")
        check({k: v[1] for k, v in got.items()} == {"a": "F32", "b": "F16", "c": "BF16",
                                                   "d": "F32", "e": "F32"}, "storage dtypes")
    marker = os.path.join(TMP, "pwned")

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = os.path.join(TMP, "evil.bin")
    torch.save({"x": Evil()}, path)
    try:
        convert_marian.read_pytorch_bin(path)
        check(False, "a code-running pickle is refused")
    except convert_marian.ConvertError as e:
        check("refusing to unpickle" in str(e), f"refusal names the global: {e}")
    check(not os.path.exists(marker), "the refused pickle ran nothing")


def test_safetensors_minimal():
    """Recent save_pretrained: tied copies and positions are not stored."""
    sd = {k: v for k, v in SD.items()
          if k not in ("lm_head.weight", "model.encoder.embed_tokens.weight",
                       "model.decoder.embed_tokens.weight") and "embed_positions" not in k}
    src = make_hf_dir(os.path.join(TMP, "min.st"), CFG, sd, "safetensors", gen=False)
    out = os.path.join(TMP, "out.min.st")
    h = convert_ok(src, out)
    check_roundtrip(out, EXPECTED, "f32", "min.st f32")
    # no generation_config.json: the generation fields come from config.json
    check(h["generation"] == {"num_beams": 4, "max_length": 512, "bad_words_ids": [59513]},
          "generation from config.json")


def test_safetensors_half_dtypes():
    sd = dict(SD)
    names = sorted(k for k in sd if ".layers." in k)
    for i, k in enumerate(names):
        sd[k] = sd[k].to(torch.float16 if i % 2 else torch.bfloat16)
    src = make_hf_dir(os.path.join(TMP, "half.st"), CFG, sd, "safetensors")
    out = os.path.join(TMP, "out.half.st")
    convert_ok(src, out)
    check_roundtrip(out, expected_ours(sd), "f32", "half.st (F16/BF16 source) f32")


def test_sinusoids_match_format():
    P = atmodel.sinusoidal_positions(512, 16)
    H = hf_sinusoids(512, 16).numpy()
    check(float(np.max(np.abs(P - H))) <= 1e-6, "transformers' sinusoids == FORMAT.md formula")


def expect_refusal(label, cfg=None, sd=None, weights="safetensors", needle=""):
    src = make_hf_dir(os.path.join(TMP, "bad." + label), cfg or CFG, sd or SD, weights)
    try:
        convert_ok(src, os.path.join(TMP, "out.bad." + label))
    except convert_marian.ConvertError as e:
        check(needle.lower() in str(e).lower(), f"refusal {label}: message {str(e)!r} lacks {needle!r}")
        check(not os.path.exists(os.path.join(TMP, "out.bad." + label, "model.json")),
              f"refusal {label}: nothing written")
        return
    check(False, f"refusal {label}: converted")


def test_refusals():
    c = dict(CFG, normalize_before=True)
    expect_refusal("normalize_before", cfg=c, needle="normalize_before")
    expect_refusal("final_ln", cfg=dict(CFG, add_final_layer_norm=True), needle="add_final_layer_norm")
    expect_refusal("norm_emb", cfg=dict(CFG, normalize_embedding=True), needle="normalize_embedding")
    expect_refusal("dec_vocab", cfg=dict(CFG, decoder_vocab_size=1000), needle="decoder_vocab_size")
    expect_refusal("act", cfg=dict(CFG, activation_function="gelu_new"), needle="gelu_new")

    sd = dict(SD)
    pos = sd["model.decoder.embed_positions.weight"].clone()
    pos[7, 3] += 1e-3
    sd["model.decoder.embed_positions.weight"] = pos
    expect_refusal("positions", sd=sd, needle="decoder.embed_positions")

    sd = {k: v for k, v in SD.items() if k != "model.encoder.layers.1.fc2.bias"}
    expect_refusal("missing", sd=sd, needle="encoder.layers.1.fc2.bias")

    sd = dict(SD)
    sd["model.encoder.layernorm_embedding.weight"] = torch.ones(16)
    expect_refusal("unknown", sd=sd, needle="layernorm_embedding")

    sd = dict(SD)
    sd["lm_head.weight"] = SD["lm_head.weight"] + 1e-3
    expect_refusal("untied_lm_head", sd=sd, weights="bin", needle="lm_head.weight")

    sd = dict(SD)
    sd["model.encoder.layers.0.fc1.weight"] = torch.zeros(31, 16)
    expect_refusal("shape", sd=sd, needle="wrong shape")


def test_untied_and_unshared():
    """tie_word_embeddings false keeps lm_head; unshared embeddings stay separate."""
    cfg = dict(CFG, tie_word_embeddings=False, share_encoder_decoder_embeddings=False)
    sd = {}
    g = torch.Generator().manual_seed(1)
    for k, v in SD.items():
        if k == "model.shared.weight":
            continue
        if k in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
                 "lm_head.weight"):
            v = torch.randn(v.shape, generator=g)
        sd[k] = v
    src = make_hf_dir(os.path.join(TMP, "untied"), cfg, sd, "bin")
    out = os.path.join(TMP, "out.untied")
    convert_ok(src, out)
    _, t = atmodel.read_model(out)
    check(np.array_equal(t["lm_head.weight"], sd["lm_head.weight"].numpy()), "untied lm_head kept")
    check(np.array_equal(t["encoder.embed_tokens.weight"],
                         sd["model.encoder.embed_tokens.weight"].numpy())
          and np.array_equal(t["decoder.embed_tokens.weight"],
                             sd["model.decoder.embed_tokens.weight"].numpy())
          and "shared.weight" not in t, "unshared embeddings kept separately")


def test_cli():
    src = os.path.join(TMP, "full.st")
    out = os.path.join(TMP, "out.cli")
    r = subprocess.run([PYTHON, os.path.join(ROOT, "scripts", "convert_marian.py"), src, out,
                        "--dtype", "f16"], capture_output=True, text=True)
    check(r.returncode == 0 and "parameters" in r.stdout and "f16" in r.stdout,
          f"CLI convert: rc {r.returncode} {r.stdout!r} {r.stderr[-300:]!r}")
    bad = os.path.join(TMP, "bad.normalize_before")
    r = subprocess.run([PYTHON, os.path.join(ROOT, "scripts", "convert_marian.py"), bad,
                        os.path.join(TMP, "out.cli.bad")], capture_output=True, text=True)
    check(r.returncode == 1 and "normalize_before" in r.stderr, f"CLI refusal: rc {r.returncode}")


def test_reference_runs():
    """The PyTorch reference loads the converted directory and translates with it."""
    import reference
    m = reference.load(os.path.join(TMP, "out.full.st"), dtype=torch.float32)
    src = reference.encode(m, "Hello world.")
    check(src[-1] == 0 and len(src) >= 3 and 1 not in src, f"reference tokenizes: {src}")
    hyps = reference.beam_search(m, src, beam=1)
    check(len(hyps) == 1 and 59513 not in hyps[0].ids, "reference greedy output (no pad)")


def test_c_engine():
    exe = os.path.join(ROOT, "attn-translate")
    if not os.access(exe, os.X_OK):
        print("test_convert: C engine check not run (no ./attn-translate)")
        return
    r = subprocess.run([exe, "-m", os.path.join(TMP, "out.full.st"), "--beam", "1"],
                       input="Hello world.\n", capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 1,
          f"attn-translate on the converted model: rc {r.returncode} out {r.stdout!r} "
          f"err {r.stderr[-300:]!r}")
    r = subprocess.run([exe, "-m", os.path.join(TMP, "out.full.bin.f16"), "--beam", "2"],
                       input="Hello world.\nHow are you?\n", capture_output=True, text=True,
                       timeout=120)
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 2,
          f"attn-translate on the f16 model: rc {r.returncode} err {r.stderr[-300:]!r}")


def test_int8_files():
    """--dtype int8: i8 linear-layer weights with per-row f32 scales, the rest f32; read
    back within half a quantization step; the reader refuses what the engine refuses."""
    src = os.path.join(TMP, "full.st")
    out = os.path.join(TMP, "out.int8")
    convert_ok(src, out, dtype="int8")
    raw = {}
    h, t = atmodel.read_model(out, int8=raw)
    check(sorted(t) == sorted(EXPECTED), "int8: tensor names")
    lin = [n for n in EXPECTED if atmodel.is_linear_weight(n)]
    check(sorted(raw) == sorted(lin) and len(lin) > 10, f"int8: i8 tensors {sorted(raw)}")
    check(all(h["tensors"][n]["dtype"] == ("i8" if n in raw else "f32") for n in EXPECTED)
          and all(h["tensors"][n + ".scale"]["dtype"] == "f32" for n in raw), "int8: dtypes")
    worst = 0.0
    for n in lin:
        q, scale = raw[n]
        worst = max(worst, float(np.max(np.abs(t[n] - EXPECTED[n]) / (scale[:, None] + 1e-30))))
        check(np.array_equal(q, atmodel.quantize_rows_int8(EXPECTED[n])[0]), f"int8: {n} as the engine quantizes")
    check(worst <= 0.5 + 1e-3, f"int8: error {worst} quantization steps (<= 0.5)")
    for n in EXPECTED:
        if n not in raw:
            check(np.array_equal(t[n], EXPECTED[n].astype(np.float32)), f"int8: {n} kept f32")
    # refusals: -128, a missing scale tensor
    name = lin[0]
    e = h["tensors"][name]
    bad = os.path.join(TMP, "out.int8.bad")
    shutil.copytree(out, bad)
    with open(os.path.join(bad, "model.bin"), "r+b") as f:
        f.seek(e["offset"] + 3)
        f.write(b"\x80")
    try:
        atmodel.read_model(bad)
        check(False, "int8: -128 accepted")
    except atmodel.FormatError as x:
        check("-128" in str(x), f"int8: -128 message {x}")
    hj = json.load(open(os.path.join(out, "model.json")))
    del hj["tensors"][name + ".scale"]
    shutil.copy(os.path.join(out, "model.bin"), os.path.join(bad, "model.bin"))
    json.dump(hj, open(os.path.join(bad, "model.json"), "w"))
    try:
        atmodel.read_model(bad)
        check(False, "int8: missing scale accepted")
    except atmodel.FormatError as x:
        check("scale" in str(x), f"int8: missing scale message {x}")
    exe = os.path.join(ROOT, "attn-translate")
    if os.access(exe, os.X_OK):
        outs = [subprocess.run([exe, "-m", d, "--beam", "2", "-n", "2"] + extra,
                               input="Hello world.\nHow are you?\n", capture_output=True,
                               text=True, timeout=120).stdout
                for d, extra in ((out, []), (os.path.join(TMP, "out.full.st"), ["--dtype", "int8"]))]
        check(outs[0] and outs[0] == outs[1], "int8: the i8 file translates like the f32 file with --dtype int8")


def main():
    global TMP, CFG, SD, EXPECTED
    torch.set_num_threads(1)
    if not os.path.isdir(SHARED):
        print(f"SKIP: test_convert needs {SHARED} (../shared beside the checkout)", file=sys.stderr)
        print("test_convert: 0 passed, 0 failed, 1 skipped")
        return 0
    CFG = tiny_config()
    SD = hf_state_dict(CFG)
    EXPECTED = expected_ours(SD)
    TMP = tempfile.mkdtemp(prefix="test_convert.")
    try:
        for fn in (test_sinusoids_match_format, test_safetensors_full_f32,
                   test_pytorch_bin_f32_and_f16, test_pytorch_bin_without_torch, test_safetensors_minimal,
                   test_safetensors_half_dtypes, test_refusals, test_untied_and_unshared,
                   test_cli, test_reference_runs, test_c_engine, test_int8_files):
            run_test(fn)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print(f"test_convert: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

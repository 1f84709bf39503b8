#!/usr/bin/env python3
"""spm_vocab.py — SentencePiece .spm models to attn-translate vocab.json (docs/FORMAT.md).

Reads the SentencePiece ModelProto protobuf wire format directly (no protobuf or
sentencepiece import) and writes the "attn-translate-vocab" JSON document.

Library use (stable API, imported by the export and converter scripts):

    read_spm(path) -> dict          # the SPM object of FORMAT.md
    make_vocab(tokens, pad_id, eos_id, unk_id, source_spm, target_spm) -> dict
    write_vocab(vocab, path)        # compact JSON, ensure_ascii=False

Command line:

    spm_vocab.py --joint x.spm -o vocab.json [--pad ID --eos ID --unk ID]
    spm_vocab.py --source s.spm --target t.spm --marian-vocab vocab.json -o out.json
"""
import argparse
import base64
import json
import math
import struct
import sys

# SentencePiece enums (sentencepiece_model.proto).
PIECE_TYPES = {1: "normal", 2: "unknown", 3: "control", 4: "user_defined",
               5: "unused", 6: "byte"}
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
NORMALIZER_NAMES = ("nmt_nfkc", "nfkc", "identity")


class SpmError(ValueError):
    """A .spm file is malformed or uses a feature attn-translate does not support."""


# ---- protobuf wire format ------------------------------------------------------

def _varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise SpmError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise SpmError("varint too long")


def _fields(buf):
    """Yields (field_number, wire_type, value) for one message. Length-delimited
    values are bytes, varints ints, fixed32/fixed64 raw bytes."""
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise SpmError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > n:
                raise SpmError("truncated fixed64")
            value = buf[pos:pos + 8]
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > n:
                raise SpmError("truncated length-delimited field %d" % field)
            value = buf[pos:pos + length]
            pos += length
        elif wire == 5:
            if pos + 4 > n:
                raise SpmError("truncated fixed32")
            value = buf[pos:pos + 4]
            pos += 4
        else:
            raise SpmError("unsupported wire type %d (field %d)" % (wire, field))
        yield field, wire, value


def _expect(wire, want, what):
    if wire != want:
        raise SpmError("%s: wire type %d, expected %d" % (what, wire, want))


def _text(value, what):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise SpmError("%s is not valid UTF-8" % what) from None


def _short_float(x):
    """The shortest decimal that reads back (via double, then float32) as float32 x."""
    packed = struct.pack("<f", x)
    for prec in range(1, 10):
        s = "%.*g" % (prec, x)
        if struct.pack("<f", float(s)) == packed:
            return float(s)
    return x


def parse_spm_bytes(data, name="<spm>"):
    """Parses ModelProto bytes into a dict with every field attn-translate needs:
    pieces [(piece, score, type)], model_type, byte_fallback,
    treat_whitespace_as_suffix, normalizer {name, add_dummy_prefix,
    remove_extra_whitespaces, escape_whitespaces, precompiled_charsmap}."""
    pieces = []
    trainer = {"model_type": 1, "byte_fallback": False,
               "treat_whitespace_as_suffix": False}
    norm = {"name": None, "precompiled_charsmap": b"", "add_dummy_prefix": True,
            "remove_extra_whitespaces": True, "escape_whitespaces": True}
    have_normalizer = False
    for field, wire, value in _fields(data):
        if field == 1:                                   # repeated SentencePiece
            _expect(wire, 2, "%s: pieces" % name)
            piece, score, ptype = None, 0.0, 1
            for f, w, v in _fields(value):
                if f == 1:
                    _expect(w, 2, "%s: piece" % name)
                    piece = _text(v, "%s: piece %d" % (name, len(pieces)))
                elif f == 2:
                    _expect(w, 5, "%s: piece score" % name)
                    score = struct.unpack("<f", v)[0]
                elif f == 3:
                    _expect(w, 0, "%s: piece type" % name)
                    ptype = v
            if piece is None:
                raise SpmError("%s: piece %d has no text" % (name, len(pieces)))
            if ptype not in PIECE_TYPES:
                raise SpmError("%s: piece %d (%r) has unknown type %d"
                               % (name, len(pieces), piece, ptype))
            pieces.append((piece, score, PIECE_TYPES[ptype]))
        elif field == 2:                                 # TrainerSpec
            _expect(wire, 2, "%s: trainer_spec" % name)
            for f, w, v in _fields(value):
                if f == 3 and w == 0:
                    trainer["model_type"] = v
                elif f == 24 and w == 0:
                    trainer["treat_whitespace_as_suffix"] = bool(v)
                elif f == 35 and w == 0:
                    trainer["byte_fallback"] = bool(v)
        elif field == 3:                                 # NormalizerSpec
            _expect(wire, 2, "%s: normalizer_spec" % name)
            have_normalizer = True
            for f, w, v in _fields(value):
                if f == 1 and w == 2:
                    norm["name"] = _text(v, "%s: normalizer name" % name)
                elif f == 2 and w == 2:
                    norm["precompiled_charsmap"] = bytes(v)
                elif f == 3 and w == 0:
                    norm["add_dummy_prefix"] = bool(v)
                elif f == 4 and w == 0:
                    norm["remove_extra_whitespaces"] = bool(v)
                elif f == 5 and w == 0:
                    norm["escape_whitespaces"] = bool(v)
    if not pieces:
        raise SpmError("%s: no pieces (not a SentencePiece model?)" % name)
    if not have_normalizer:
        raise SpmError("%s: no normalizer_spec" % name)
    out = {"pieces": pieces, "normalizer": norm}
    out.update(trainer)
    return out


def read_spm(path, charsmap=True):
    """Reads a SentencePiece unigram model and returns the SPM object of FORMAT.md:
    {"type": "unigram", "normalizer": {...}, "pieces": [[piece, score, type], ...]}.
    With charsmap=True the normalizer also carries the model's own rule table,
    "precompiled_charsmap" (base64 of the .spm's bytes), which makes the C
    normalizer byte-exact; without it the C side rebuilds the rules from utf8proc.
    Raises SpmError for anything attn-translate cannot reproduce exactly."""
    with open(path, "rb") as f:
        data = f.read()
    m = parse_spm_bytes(data, path)
    mt = m["model_type"]
    if mt != 1:
        raise SpmError("%s: model_type is %s; only unigram SentencePiece models are "
                       "supported" % (path, MODEL_TYPES.get(mt, "unknown (%d)" % mt)))
    if m["byte_fallback"]:
        raise SpmError("%s: byte_fallback models are not supported" % path)
    if m["treat_whitespace_as_suffix"]:
        raise SpmError("%s: treat_whitespace_as_suffix models are not supported" % path)
    norm = m["normalizer"]
    nname = norm["name"]
    if nname not in NORMALIZER_NAMES:
        raise SpmError("%s: normalizer %r is not supported (expected one of %s)"
                       % (path, nname, ", ".join(NORMALIZER_NAMES)))
    if nname == "identity" and norm["precompiled_charsmap"]:
        raise SpmError("%s: identity normalizer with a charsmap" % path)
    seen = {}
    unk = 0
    out_pieces = []
    for i, (piece, score, ptype) in enumerate(m["pieces"]):
        if not piece:
            raise SpmError("%s: piece %d is empty" % (path, i))
        if piece in seen:
            raise SpmError("%s: piece %r appears twice (ids %d and %d)"
                           % (path, piece, seen[piece], i))
        seen[piece] = i
        if not math.isfinite(score):
            raise SpmError("%s: piece %d (%r) has a non-finite score" % (path, i, piece))
        if ptype == "unknown":
            unk += 1
        out_pieces.append([piece, _short_float(score), ptype])
    if unk != 1:
        raise SpmError("%s: expected exactly one unknown piece, found %d" % (path, unk))
    normalizer = {
        "name": nname,
        "add_dummy_prefix": norm["add_dummy_prefix"],
        "remove_extra_whitespaces": norm["remove_extra_whitespaces"],
        "escape_whitespaces": norm["escape_whitespaces"],
    }
    if charsmap and norm["precompiled_charsmap"]:
        normalizer["precompiled_charsmap"] = base64.b64encode(
            norm["precompiled_charsmap"]).decode("ascii")
    return {"type": "unigram", "normalizer": normalizer, "pieces": out_pieces}


def make_vocab(tokens, pad_id, eos_id, unk_id, source_spm, target_spm):
    """Builds the vocab.json document. tokens: one string per model id."""
    tokens = list(tokens)
    n = len(tokens)
    if n == 0:
        raise ValueError("empty token list")
    for i, t in enumerate(tokens):
        if not isinstance(t, str):
            raise ValueError("token %d is not a string" % i)
    for what, v in (("pad_id", pad_id), ("eos_id", eos_id), ("unk_id", unk_id)):
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < n:
            raise ValueError("%s %r is not an id in [0, %d)" % (what, v, n))
    return {
        "format": "attn-translate-vocab",
        "version": 1,
        "tokens": tokens,
        "pad_id": pad_id,
        "eos_id": eos_id,
        "unk_id": unk_id,
        "source": source_spm,
        "target": target_spm,
    }


def write_vocab(vocab, path):
    """Writes vocab (a make_vocab() dict) as compact UTF-8 JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, separators=(",", ":"),
                  allow_nan=False)
        f.write("\n")


def _find(tokens, text, what, given):
    if given is not None:
        return given
    try:
        return tokens.index(text)
    except ValueError:
        raise SystemExit("spm_vocab.py: no %r piece; pass --%s ID" % (text, what))


def marian_tokens(path):
    """Token list from a Marian/transformers vocab.json (piece -> id map); ids must
    be exactly 0..V-1."""
    with open(path, encoding="utf-8") as f:
        m = json.load(f)
    if not isinstance(m, dict):
        raise ValueError("%s: not a piece -> id object" % path)
    tokens = [None] * len(m)
    for piece, i in m.items():
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(m):
            raise ValueError("%s: id %r of %r is not in [0, %d)" % (path, i, piece, len(m)))
        if tokens[i] is not None:
            raise ValueError("%s: id %d used by %r and %r" % (path, i, tokens[i], piece))
        tokens[i] = piece
    return tokens


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--joint", help="one SentencePiece model for source and target")
    ap.add_argument("--source", help="source-side SentencePiece model (Marian)")
    ap.add_argument("--target", help="target-side SentencePiece model (Marian)")
    ap.add_argument("--marian-vocab", help="Marian vocab.json (piece -> id)")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--pad", type=int)
    ap.add_argument("--eos", type=int)
    ap.add_argument("--unk", type=int)
    ap.add_argument("--no-charsmap", action="store_true",
                    help="omit the precompiled charsmap (normalize with utf8proc rules)")
    a = ap.parse_args(argv)
    try:
        if a.joint:
            if a.source or a.target or a.marian_vocab:
                ap.error("--joint excludes --source/--target/--marian-vocab")
            spm = read_spm(a.joint, not a.no_charsmap)
            tokens = [p[0] for p in spm["pieces"]]
            src = tgt = spm
        else:
            if not (a.source and a.target and a.marian_vocab):
                ap.error("need --joint, or --source, --target and --marian-vocab")
            src = read_spm(a.source, not a.no_charsmap)
            tgt = read_spm(a.target, not a.no_charsmap)
            tokens = marian_tokens(a.marian_vocab)
        vocab = make_vocab(tokens, _find(tokens, "<pad>", "pad", a.pad),
                           _find(tokens, "</s>", "eos", a.eos),
                           _find(tokens, "<unk>", "unk", a.unk), src, tgt)
        write_vocab(vocab, a.output)
    except (SpmError, ValueError, OSError) as e:
        print("spm_vocab.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Rewrite a model directory in another layout (or dtype): the fast-loading packed one.

    pack_model.py IN_DIR OUT_DIR [--layout packed|rows] [--dtype same|f32|f16|int8]

--layout packed (the default) writes format version 2: the weight matrices of the linear
layers, and the embedding when it is the tied output projection, stored packed16, the
layout the engine's kernels read, so attn-translate uses them in place from the memory map
and loading is the checks alone (an int8 file also stores the tied output projection's
int8 form). --layout rows writes version 1, which every build reads. --dtype same (the
default) keeps the stored dtype; int8 weights already stored are kept as they are (never
re-quantized), so the output translates bit for bit like the input.

vocab.json and every other file of IN_DIR (source.spm, target.spm, MODEL_CARD.md, ...)
are copied unchanged. Needs numpy only.
"""
import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import atmodel  # noqa: E402


def stored_dtype(header):
    dts = {e.get("dtype") for e in header["tensors"].values() if isinstance(e, dict)}
    return "int8" if "i8" in dts else "f16" if "f16" in dts else "f32"


def pack(src, dst, layout="packed", dtype="same"):
    if os.path.abspath(src) == os.path.abspath(dst):
        raise ValueError("IN_DIR and OUT_DIR must differ")
    q8 = {}
    h, tensors = atmodel.read_model(src, int8=q8)
    if dtype == "same":
        dtype = stored_dtype(h)
    weights = h["weights"]["file"]
    os.makedirs(dst, exist_ok=True)
    header = atmodel.write_model(dst, h["config"], h.get("generation"), tensors, dtype=dtype,
                                 layout=layout, int8=q8 if dtype == "int8" else None)
    for name in sorted(os.listdir(src)):  # vocab.json and the rest, byte for byte
        p = os.path.join(src, name)
        if name not in ("model.json", weights, "model.bin") and os.path.isfile(p):
            shutil.copyfile(p, os.path.join(dst, name))
    return header


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input_dir")
    ap.add_argument("output_dir")
    ap.add_argument("--layout", choices=atmodel.LAYOUTS, default="packed",
                    help="packed (format version 2, loads fastest; the default) or rows (version 1)")
    ap.add_argument("--dtype", choices=("same",) + atmodel.WRITE_DTYPES, default="same")
    a = ap.parse_args(argv)
    try:
        h = pack(a.input_dir, a.output_dir, a.layout, a.dtype)
    except (OSError, ValueError) as e:
        print(f"pack_model: error: {e}", file=sys.stderr)
        return 1
    print(f"pack_model: {a.input_dir} -> {a.output_dir}: version {h['version']}, "
          f"model.bin {h['weights']['bytes']:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

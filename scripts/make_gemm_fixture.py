#!/usr/bin/python3
"""Golden fixture for the linear-layer kernels (lib/gemm.c), computed with numpy only.

Writes tests/fixtures/gemm/gemm.json: a few (M, out, in) cases with random float32
x (M, in), W (out, in), b (out) and the expected outputs of

  int8  W quantized per row, x quantized per row (scale = amax / 127, q =
        round-half-even(v * (127 / amax)) in float32, clamped to ±127), the integer
        products summed exactly, y = float32(acc * float32(sx * sw) + b) computed in
        float64, i.e. with one rounding like the engine's fmaf;
  f16   W rounded to IEEE half, y = x · W16ᵀ + b in float64;
  f32   y = x · Wᵀ + b in float64.

and the IEEE-half bits numpy gives for a list of awkward float32 values (ties,
subnormals, overflow), against which the loader's float→half conversion is checked.
Floats are written with 9 significant digits, which float32 round-trips exactly.

    /usr/bin/python3 scripts/make_gemm_fixture.py [--out tests/fixtures/gemm/gemm.json]
"""

import argparse
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [(1, 1, 1), (3, 15, 3), (4, 16, 4), (5, 17, 5), (2, 37, 130), (9, 100, 36),
         (1, 300, 64), (4, 40, 512), (33, 48, 20)]


def q8_rows(v):
    v = v.astype(np.float32)
    amax = np.abs(v).max(axis=1, keepdims=True).astype(np.float32)
    inv = np.where(amax > 0, np.float32(127.0) / np.where(amax > 0, amax, 1), 0).astype(np.float32)
    q = np.clip(np.rint((v * inv).astype(np.float32)), -127, 127).astype(np.int64)
    return q, (amax / np.float32(127.0)).astype(np.float32).reshape(-1)


def f9(a):
    return [float(f"{x:.9g}") for x in np.asarray(a, dtype=np.float32).reshape(-1)]


def case(rng, M, out, n_in):
    x = (rng.standard_normal((M, n_in)) * rng.uniform(0.1, 3.0, (M, 1))).astype(np.float32)
    W = (rng.standard_normal((out, n_in)) * 0.2).astype(np.float32)
    W[0, :] *= 10.0                      # one row with a much larger range
    if out > 2:
        W[1, :] = 0.0                    # an all-zero row: scale 0
    if M > 1:
        x[1, :] = 0.0                    # an all-zero activation row
    b = (rng.standard_normal(out) * 0.5).astype(np.float32)
    xq, sx = q8_rows(x)
    wq, sw = q8_rows(W)
    acc = xq @ wq.T                                       # exact int64
    s = (sx[:, None] * sw[None, :]).astype(np.float32)    # float32 product, as in C
    y8 = (acc.astype(np.float64) * s.astype(np.float64) + b.astype(np.float64)).astype(np.float32)
    W16 = W.astype(np.float16).astype(np.float64)
    y16 = x.astype(np.float64) @ W16.T + b
    y32 = x.astype(np.float64) @ W.astype(np.float64).T + b
    return {"M": M, "out": out, "in": n_in, "x": f9(x), "W": f9(W), "b": f9(b),
            "y_int8": f9(y8), "y_f16": f9(y16), "y_f32": f9(y32)}


def half_cases():
    vals = [0.0, -0.0, 1.0, -2.5, 65504.0, 65519.99, 65520.0, 1e6, -1e6, 6.1035156e-05,
            6.0975552e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 8.940697e-08,
            1.0009766, 1.00048828125, 1.00146484375, 0.1, -0.3333333, 3.1415927, 1e-10]
    rng = np.random.default_rng(7)
    vals += list(rng.standard_normal(40).astype(np.float32) * 10.0)
    vals += list((rng.standard_normal(20) * 1e-5).astype(np.float32))
    v = np.array(vals, dtype=np.float32)
    with np.errstate(over="ignore"):
        bits = v.astype(np.float16).view(np.uint16)
    return {"float": f9(v), "half_bits": [int(b) for b in bits]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "fixtures", "gemm", "gemm.json"))
    a = ap.parse_args()
    rng = np.random.default_rng(20261202)
    doc = {"generator": "scripts/make_gemm_fixture.py (numpy)",
           "cases": [case(rng, *c) for c in CASES], "half": half_cases()}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"{a.out}: {os.path.getsize(a.out)} bytes, {len(CASES)} cases")


if __name__ == "__main__":
    main()

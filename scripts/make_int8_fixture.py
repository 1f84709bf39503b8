#!/usr/bin/python3
"""tests/fixtures/tiny/A8: the tiny model A written with `dtype="int8"` (atmodel.write_model):
the weights of its linear layers as i8 with per-row f32 scales, everything else f32.
Quantized by numpy exactly as the engine's --dtype int8 quantizes at load, so A8 must
translate bit for bit like `-m A --dtype int8` (tests/test_cli.sh), and test_model
corrupts its i8 tensors.

    /usr/bin/python3 scripts/make_int8_fixture.py
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import atmodel  # noqa: E402

src = os.path.join(HERE, "..", "tests", "fixtures", "tiny", "A")
dst = os.path.join(HERE, "..", "tests", "fixtures", "tiny", "A8")
header, tensors = atmodel.read_model(src)
atmodel.write_model(dst, header["config"], header.get("generation"), tensors, dtype="int8")
# the vocabulary is A's: a link, not a second copy in the repository
link = os.path.join(dst, "vocab.json")
if os.path.lexists(link):
    os.remove(link)
os.symlink(os.path.join("..", "A", "vocab.json"), link)
print(f"{dst}: model.bin {os.path.getsize(os.path.join(dst, 'model.bin'))} bytes")

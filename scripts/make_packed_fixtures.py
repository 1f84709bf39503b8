#!/usr/bin/python3
"""tests/fixtures/tiny/{AP,BP,CP,A8P}: the tiny models A, B, C and A8 rewritten in the
packed layout (format version 2) by scripts/pack_model.py: their linear-layer weights (and
A's tied embedding) packed16, A8P with the int8 form of its tied output projection. The
values are A's, B's, C's, A8's, so each must translate bit for bit like its source: the
other files (vocab.json, source.spm, the reference's fixtures) are links to the source's,
and test_forward checks the packed models against the same goldens; test_model corrupts
their packed tensors.

    /usr/bin/python3 scripts/make_packed_fixtures.py
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pack_model  # noqa: E402

TINY = os.path.join(HERE, "..", "tests", "fixtures", "tiny")
for src in ("A", "B", "C", "A8"):
    s, d = os.path.join(TINY, src), os.path.join(TINY, src + "P")
    pack_model.pack(s, d)
    for name in sorted(os.listdir(s)):  # links, not second copies in the repository
        if name in ("model.json", "model.bin"):
            continue
        link = os.path.join(d, name)
        if os.path.lexists(link):
            os.remove(link)
        target = os.readlink(os.path.join(s, name)) if os.path.islink(os.path.join(s, name)) \
            else os.path.join("..", src, name)
        os.symlink(target, link)
    print(f"{d}: model.bin {os.path.getsize(os.path.join(d, 'model.bin'))} bytes")

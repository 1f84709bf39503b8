#!/usr/bin/python3
"""Self-test of scripts/plot_curve.py (the learning-curve picture of docs/TRAINING.md).

Checks the table parser on a hand-written table (numbers in bold, with commas, with
notes after them; greedy rows; malformed tables), the SVG it draws (well-formed, one
line per dev set through every session, one bar per session after the first, bars
above the axis cap cut), and that docs/img/learning-curve.svg is what the script draws
from docs/TRAINING.md today, so the picture cannot drift from the table.
Prints "test_curve: N passed, N failed".
"""
import importlib.util
import os
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, HERE)
from pycheck import Checks  # noqa: E402

spec = importlib.util.spec_from_file_location("plot_curve", os.path.join(ROOT, "scripts", "plot_curve.py"))
pc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pc)

t = Checks("test_curve")
SVG = "{http://www.w3.org/2000/svg}"

TABLE = """# x

## Learning curve

Text.

| session | date | steps | target tokens | CPU-hours | FLORES dev | newstest2013 | Tatoeba | Multi30k | beam |
|---|---|--:|--:|--:|--:|--:|--:|--:|---|
| 1 | 2026-12-03 | 535 | 6.1M | 2.0 (+0.6 for the d384 candidate) | 0.11 | 0.21 | 0.69 | 0.12 | 4 |
| | | | | | 0.08 | 0.10 | 1.02 | 0.15 | 1 |
| 2 | 2026-12-04 | 1,976 (new run) | 5.7M | 6.3 (3.7 this session) | **12.07** | **9.96** | **28.14** | **17.43** | 4 |
| 3 | 2026-12-05 | 12,000 | ~35M | 10.6 | 17.18 | 13.82 | 32.46 | 21.50 | 4 |
| | | | | | 16.03 | 12.99 | 30.88 | 20.48 | 1 |

## Next
| not | this | table |
"""

s = pc.parse_table(TABLE)
t.check("sessions", len(s) == 3, len(s))
t.check("session numbers", [x["session"] for x in s] == [1, 2, 3])
t.check("steps with a comma and a note", [x["steps"] for x in s] == [535, 1976, 12000], [x["steps"] for x in s])
t.check("cpu-hours, first number", [x["cpu_hours"] for x in s] == [2.0, 6.3, 10.6], [x["cpu_hours"] for x in s])
t.check("bold scores", s[1]["beam4"] == {"FLORES dev": 12.07, "newstest2013": 9.96, "Tatoeba": 28.14, "Multi30k": 17.43}, s[1]["beam4"])
t.check("greedy row", s[0]["greedy"]["Tatoeba"] == 1.02 and s[2]["greedy"]["FLORES dev"] == 16.03)
t.check("no greedy row", s[1]["greedy"] is None)

bad = {
    "no section": TABLE.replace("## Learning curve", "## Other"),
    "missing column": TABLE.replace("| Multi30k |", "| Multi |", 1),
    "short row": TABLE.replace("| 535 | 6.1M |", "| 535 |"),
    "beam 2": TABLE.replace("| 21.50 | 4 |", "| 21.50 | 2 |"),
    "no score": TABLE.replace("| 17.18 |", "| n/a |"),
    "greedy first": TABLE.replace("| 1 | 2026-12-03 | 535 | 6.1M | 2.0 (+0.6 for the d384 candidate) |", "| | | | | |"),
}
for what, text in bad.items():
    try:
        pc.parse_table(text)
        t.check(f"rejects: {what}", False, "parsed")
    except ValueError as e:
        t.check(f"rejects: {what}", "learning curve" in str(e).lower(), e)

# the picture of the hand-written table
root = ET.fromstring(pc.render(s))
lines = root.findall(f"{SVG}polyline")
t.check("a line per dev set", len(lines) == len(pc.SETS), len(lines))
t.check("a point per session", all(len(p.get("points").split()) == 3 for p in lines))
bars = [r for r in root.findall(f"{SVG}rect") if r.get("fill") in ("#1f77b4", "#ff7f0e")]
t.check("a bar per session after the first", len(bars) == 2, len(bars))
labels = [x.text for x in root.findall(f"{SVG}text")]
t.check("gain labels", "+11.96" in labels and "+5.11" in labels, labels)
# the axis stops at 5 (GAIN_CAP 4, rounded up): both bars end at the panel's top, cut
cuts = [r for r in root.findall(f"{SVG}rect") if r.get("fill") == "white" and r.get("transform")]
t.check("the tall bars are cut", len(cuts) == 2, len(cuts))
s2 = [dict(x) for x in s]
s2[2] = dict(s[2], beam4=dict(s[2]["beam4"], **{"FLORES dev": 12.07 + 0.3}))
root2 = ET.fromstring(pc.render(s2))
cuts = [r for r in root2.findall(f"{SVG}rect") if r.get("fill") == "white" and r.get("transform")]
t.check("a short bar is not cut", len(cuts) == 1, len(cuts))
bars = [r for r in root2.findall(f"{SVG}rect") if r.get("fill") in ("#1f77b4", "#ff7f0e")]
t.check("a bar under the rule is orange", [b.get("fill") for b in bars] == ["#1f77b4", "#ff7f0e"],
        [b.get("fill") for b in bars])

# the committed picture is the one the table draws today
doc = os.path.join(ROOT, "docs", "TRAINING.md")
img = os.path.join(ROOT, "docs", "img", "learning-curve.svg")
with open(doc, encoding="utf-8") as f:
    real = pc.parse_table(f.read())
t.check("docs/TRAINING.md has sessions", len(real) >= 9, len(real))
t.check("sessions in order", [x["session"] for x in real] == sorted(x["session"] for x in real))
t.check("CPU-hours grow", all(a["cpu_hours"] < b["cpu_hours"] for a, b in zip(real, real[1:])))
with open(img, encoding="utf-8") as f:
    t.check("docs/img/learning-curve.svg is up to date (scripts/plot_curve.py)", f.read() == pc.render(real))

t.done()

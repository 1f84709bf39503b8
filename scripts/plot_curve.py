#!/usr/bin/env python3
"""plot_curve.py — the training campaign's learning curve, drawn from docs/TRAINING.md.

Reads the "Learning curve" table of docs/TRAINING.md (one row per session: its beam-4
scores, then a row of greedy scores) and writes an SVG picture with two panels:
  left:  beam-4 BLEU on each dev set against the CPU-hours spent so far;
  right: what each session added on FLORES dev, against the stopping rule's 0.5.
Plain SVG written by hand, no plotting library (none is in Debian's python3 here).

    scripts/plot_curve.py [--table docs/TRAINING.md] [-o docs/img/learning-curve.svg]

Library use (tests/test_eval.py): parse_table(text) -> list of sessions, render(sessions) -> str.
"""
import argparse
import re
import sys

SETS = ("FLORES dev", "newstest2013", "Tatoeba", "Multi30k")
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
RULE = 0.5  # the stopping rule: a session adding less than this on FLORES dev
GAIN_CAP = 4.0  # the gain panel's axis stops here; taller bars are cut


def _number(cell):
    """The first number in a table cell ("**24.91**" -> 24.91, "2.0 (+0.6 ...)" -> 2.0)."""
    m = re.search(r"\d[\d,]*(?:\.\d+)?", cell)
    return float(m.group(0).replace(",", "")) if m else None


def parse_table(text):
    """Sessions of the "## Learning curve" table, oldest first: dicts with session, steps,
    cpu_hours, beam4 and greedy (each a dict set -> BLEU). Raises ValueError if the
    table is missing or a row does not read."""
    m = re.search(r"^## Learning curve\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        raise ValueError("no '## Learning curve' section")
    rows = [ln for ln in m.group(1).splitlines() if ln.startswith("|")]
    if len(rows) < 3:
        raise ValueError("the learning curve table has no rows")
    head = [c.strip() for c in rows[0].strip("|").split("|")]
    try:
        col = {name: head.index(name) for name in ("session", "steps", "CPU-hours", "beam") + SETS}
    except ValueError as e:
        raise ValueError(f"learning curve table: column {e} missing") from None
    sessions = []
    for ln in rows[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if len(cells) != len(head):
            raise ValueError(f"learning curve row has {len(cells)} cells, not {len(head)}: {ln}")
        scores = {s: _number(cells[col[s]]) for s in SETS}
        if None in scores.values():
            raise ValueError(f"learning curve row without a score: {ln}")
        beam = cells[col["beam"]]
        if cells[col["session"]]:
            sessions.append({"session": int(_number(cells[col["session"]])),
                             "steps": int(_number(cells[col["steps"]])),
                             "cpu_hours": _number(cells[col["CPU-hours"]]),
                             "beam4": None, "greedy": None})
        if not sessions:
            raise ValueError(f"learning curve row before any session: {ln}")
        key = {"4": "beam4", "1": "greedy"}.get(beam)
        if key is None:
            raise ValueError(f"learning curve row with beam {beam!r}: {ln}")
        sessions[-1][key] = scores
    for s in sessions:
        if s["beam4"] is None:
            raise ValueError(f"session {s['session']} has no beam-4 row")
    return sessions


def _ticks(hi, n=6):
    """Round tick spacing for 0..hi."""
    raw = hi / n
    for step in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 20, 25, 50):
        if step >= raw:
            return step
    return 100


def _fmt(v):
    return f"{v:g}"


def render(sessions, width=960, height=400):
    """The SVG document (a str) for parsed sessions."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>']

    def text(x, y, s, anchor="middle", size=12, extra=""):
        s = s.replace("&", "&amp;").replace("<", "&lt;")
        out.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}"{extra}>{s}</text>')

    def axes(x0, y0, w, h, xmax, ymax, ymin, xlabel, ylabel, title, xticks=True):
        out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>')
        ystep = _ticks(ymax - ymin)
        v = ymin
        while v <= ymax + 1e-9:
            y = y0 + h - (v - ymin) / (ymax - ymin) * h
            out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + w}" y2="{y:.1f}" stroke="#ddd"/>')
            text(x0 - 6, y + 4, _fmt(round(v, 2)), "end")
            v += ystep
        if xticks:
            xstep = _ticks(xmax)
            v = 0.0
            while v <= xmax + 1e-9:
                x = x0 + v / xmax * w
                out.append(f'<line x1="{x:.1f}" y1="{y0 + h}" x2="{x:.1f}" y2="{y0 + h + 4}" stroke="#444"/>')
                text(x, y0 + h + 17, _fmt(round(v, 2)))
                v += xstep
        text(x0 + w / 2, y0 + h + 34, xlabel)
        text(x0 - 38, y0 + h / 2, ylabel, extra=f' transform="rotate(-90 {x0 - 38} {y0 + h / 2:.1f})"')
        text(x0 + w / 2, y0 - 10, title, size=13, extra=' font-weight="bold"')

    # left panel: beam-4 BLEU per set against cumulative CPU-hours
    x0, y0, w, h = 60, 40, 480, 300
    xmax = max(s["cpu_hours"] for s in sessions) * 1.05
    ymax = max(max(s["beam4"].values()) for s in sessions)
    ymax = (int(ymax / 5) + 1) * 5
    axes(x0, y0, w, h, xmax, ymax, 0, "CPU-hours (both cores)", "BLEU, beam 4",
         "Dev BLEU after each session")
    for name, color in zip(SETS, COLORS):
        pts = [(x0 + s["cpu_hours"] / xmax * w, y0 + h - s["beam4"][name] / ymax * h) for s in sessions]
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                   % (color, " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)))
        for x, y in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
    for i, (name, color) in enumerate(zip(SETS, COLORS)):
        ly = y0 + h - 72 + 16 * i
        out.append(f'<line x1="{x0 + w - 130}" y1="{ly - 4}" x2="{x0 + w - 110}" y2="{ly - 4}" stroke="{color}" stroke-width="2"/>')
        text(x0 + w - 104, ly, name, "start")

    # right panel: FLORES dev gain per session (from the second session on)
    x0, y0, w, h = 620, 40, 320, 300
    gains = [(b["session"], b["beam4"]["FLORES dev"] - a["beam4"]["FLORES dev"])
             for a, b in zip(sessions, sessions[1:])]
    if gains:
        # the first sessions add tens of points; cap the axis so that the late ones, the
        # ones the rule is about, stay readable (a capped bar is cut and labelled)
        gmax = min(max(max(g for _, g in gains), RULE), GAIN_CAP)
        gmax = (int(gmax) + 1) if gmax > 1 else 1.0
        gmin = min(0.0, min(g for _, g in gains))
        gmin = -(int(-gmin) + 1) if gmin < 0 else 0.0
        axes(x0, y0, w, h, 1, gmax, gmin, "session", "FLORES dev BLEU added",
             "What each session added", xticks=False)
        bw = w / len(gains)
        zero = y0 + h - (0 - gmin) / (gmax - gmin) * h
        for i, (sess, g) in enumerate(gains):
            top = y0 + h - (min(g, gmax) - gmin) / (gmax - gmin) * h
            color = "#1f77b4" if g >= RULE else "#ff7f0e"
            out.append(f'<rect x="{x0 + i * bw + bw * 0.1:.1f}" y="{min(top, zero):.1f}" '
                       f'width="{bw * 0.8:.1f}" height="{abs(zero - top):.1f}" fill="{color}"/>')
            text(x0 + i * bw + bw / 2, y0 + h + 17, str(sess))
            if g > gmax:  # cut: a white gap across the bar near the top
                out.append(f'<rect x="{x0 + i * bw:.1f}" y="{top + 12:.1f}" width="{bw:.1f}" '
                           f'height="4" fill="white" transform="skewY(-8)" transform-origin="'
                           f'{x0 + i * bw + bw / 2:.1f} {top + 14:.1f}"/>')
                text(x0 + i * bw + bw / 2, top + 32, f"{g:+.2f}", size=9, extra=' fill="white"')
            else:
                text(x0 + i * bw + bw / 2, min(top, zero) - 4, f"{g:+.2f}", size=9)
        ry = y0 + h - (RULE - gmin) / (gmax - gmin) * h
        out.append(f'<line x1="{x0}" y1="{ry:.1f}" x2="{x0 + w}" y2="{ry:.1f}" stroke="#d62728" stroke-dasharray="5,4"/>')
        out.append(f'<line x1="{x0 + w - 150}" y1="{y0 + 14}" x2="{x0 + w - 126}" y2="{y0 + 14}" '
                   f'stroke="#d62728" stroke-dasharray="5,4"/>')
        text(x0 + w - 120, y0 + 18, f"stopping rule: {RULE}", "start", size=11)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", default="docs/TRAINING.md", help="the Markdown file with the table")
    ap.add_argument("-o", "--output", default="docs/img/learning-curve.svg")
    args = ap.parse_args(argv)
    try:
        with open(args.table, encoding="utf-8") as f:
            sessions = parse_table(f.read())
    except (OSError, ValueError) as e:
        print(f"plot_curve.py: {args.table}: {e}", file=sys.stderr)
        return 1
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(render(sessions))
    last = sessions[-1]
    print(f"{args.output}: {len(sessions)} sessions, the last at {last['steps']:,} steps, "
          f"{last['cpu_hours']:g} CPU-hours, FLORES dev {last['beam4']['FLORES dev']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

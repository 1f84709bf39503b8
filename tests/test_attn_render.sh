#!/usr/bin/env bash
# test_attn_render.sh — the SVG attention heatmap (cmd/attnfmt.c) renders to a real
# picture: tests/attn_svg_demo translates lines with tiny model A and writes SVGs; they
# must be well-formed XML with one cell per (target, source) pair and labels on both
# axes; headless Chromium renders each to PNG, which must not be blank (more than 10
# distinct colours, more than 5% non-white pixels, the heatmap's dark purple present).
# Usage: tests/test_attn_render.sh [DEMO_BINARY]   (default $BUILD/tests/attn_svg_demo)
# Needs chromium (Debian package `chromium`). Prints "test_attn_render: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
DEMO=${1:-${BUILD:-build}/tests/attn_svg_demo}
PYTHON=${PYTHON:-/usr/bin/python3}
MODEL=tests/fixtures/tiny/A
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL test_attn_render: $*" >&2; }
finish() { echo "test_attn_render: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)

# check_svg SVG ROWS_MIN: well-formed, cells = rows x cols, labels, colour scale
check_svg() {
    "$PYTHON" - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == ns + "svg", root.tag
panels = [g for g in root.iter(ns + "g") if g.get("class") == "panel"]
assert panels, "no heatmap panel"
for g in panels:
    cells = [r for r in g.iter(ns + "rect") if r.find(ns + "title") is not None]
    texts = [t for t in g.iter(ns + "text")]
    rotated = [t for t in texts if "rotate(-90)" in (t.get("transform") or "")]
    rows = [t for t in texts if t.get("text-anchor") == "end" and "rotate" not in (t.get("transform") or "")]
    n_src = len(rotated)
    n_tgt = len(rows) - 2          # minus the two axis names
    assert n_src >= 2 and n_tgt >= 1, (n_src, n_tgt)
    assert len(cells) == n_src * n_tgt, (len(cells), n_src, n_tgt)
    assert rotated[-1].text == "</s>", rotated[-1].text
scale = [g for g in root.iter(ns + "g") if g.get("class") == "scale"]
assert scale and any(r.get("fill") == "url(#scale)" for r in scale[0].iter(ns + "rect")), "no colour scale"
ticks = [t.text for t in scale[0].iter(ns + "text")]
assert "0.00" in ticks and "1.00" in ticks, ticks
EOF
}

# check_png PNG: size, colours, non-white fraction (a PNG decoder in plain Python)
check_png() {
    "$PYTHON" - "$1" <<'EOF'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        ihdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
w, h, depth, ctype, _, _, interlace = ihdr
assert depth == 8 and ctype in (2, 6) and interlace == 0, ihdr
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
pixels = []
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    pixels.extend(bytes(line[i:i + 3]) for i in range(0, stride, bpp))
    prev = line
colours = set(pixels)
nonwhite = sum(1 for p in pixels if p != b"\xff\xff\xff") / len(pixels)
dark = sum(1 for p in pixels if p[0] < 110 and p[1] < 60 and p[2] > 70)   # viridis' low end
print(f"{w}x{h}, {len(colours)} colours, {nonwhite:.1%} non-white, {dark} dark purple pixels")
assert (w, h) == (900, 900), (w, h)
assert len(colours) > 10, "fewer than 11 colours"
assert nonwhite > 0.05, "blank picture"
assert dark > 500, "no heatmap cells"
EOF
}

# render SVG PNG
render() {
    local prof; prof=$(mktemp -d "$tmp/profile.XXXXXX")
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$prof" --screenshot="$2" --window-size=900,900 "file://$1" >"$tmp/chromium.log" 2>&1
    [ -s "$2" ] || { tail -5 "$tmp/chromium.log" >&2; return 1; }
}

if [ ! -x "$DEMO" ]; then bad "no $DEMO (make $DEMO)"; finish; fi
# name|text|beam|head
cases=(
    "greedy|She has three brothers and two sisters.|1|mean"
    "beam4|Café crème à l'école, naïve façade.|4|mean"
    "heads|I want to go home.|4|all"
)
for c in "${cases[@]}"; do
    IFS='|' read -r name text beam head <<<"$c"
    svg="$tmp/$name.svg"
    if "$DEMO" "$MODEL" "$svg" "$text" "$beam" "$head" >"$tmp/$name.out" 2>&1 && [ -s "$svg" ]; then ok
    else bad "$name: attn_svg_demo failed: $(tail -3 "$tmp/$name.out")"; continue; fi
    if out=$(check_svg "$svg" 2>&1); then ok; else bad "$name: SVG: $(tail -2 <<<"$out")"; fi
    if [ -z "$CHROMIUM" ]; then bad "$name: chromium is not installed (apt-get install chromium)"; continue; fi
    png="$tmp/$name.png"
    if render "$svg" "$png"; then ok; else bad "$name: chromium wrote no PNG"; continue; fi
    if out=$(check_png "$png" 2>&1); then ok; echo "$name: $out"
    else bad "$name: PNG: $(tail -2 <<<"$out")"; fi
    [ -n "${ATTN_RENDER_KEEP:-}" ] && cp "$svg" "$png" "$ATTN_RENDER_KEEP"/
done
finish

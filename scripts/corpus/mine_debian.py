#!/usr/bin/python3
"""Mine English-French pairs from the French gettext catalogs (.mo) of Debian packages.

Walks the message-catalog trees (default: /usr/share/locale, /usr/share/locale-langpack and
the few applications that keep catalogs elsewhere, see ROOTS) for
fr*/LC_MESSAGES/*.mo, parses each .mo in pure Python (GNU gettext binary format: both
byte orders, msgctxt "ctx\\x04id", plural entries "id\\0id_plural" -> "form0\\0form1...",
charset from the catalog header) and writes aligned pairs:

    OUT/debian_mined.en, OUT/debian_mined.fr, OUT/debian_mined.domain (catalog of each line)
    OUT/mine_stats.json

Pairs: singular msgid -> msgstr; plural msgid -> form 0 and msgid_plural -> form 1 (French
plural form for n > 1). Multi-line messages are split line by line when both sides have
the same number of lines, otherwise joined with spaces. Dropped: untranslated (empty)
entries, the header, strings that are only placeholders/punctuation/digits (printf
"%s %1$d %(name)s", "{0}", "${VAR}", "@FOO@"), and duplicates (en, fr).
Cleaning (markup, accelerators, length/ratio/language filters, dev-set overlap) is left to
build_corpus.py:  build_corpus.py --extra debian_mined:OUT/debian_mined.en:OUT/debian_mined.fr

Licenses: each catalog carries its package's license (GPL, LGPL, BSD, ...; see
/usr/share/doc/PACKAGE/copyright); the .domain file keeps the provenance of every line.

    /usr/bin/python3 scripts/corpus/mine_debian.py [--out /tmp/attn-mined] [--install]
        [--packages-file FILE] [--roots DIR ...]

--install runs `apt-get install -y --no-install-recommends` on PACKAGES (or the list in
--packages-file) first; needs root and apt access. Without it, only what is installed is
mined. --download DIR instead fetches the .deb files (`apt-get download`) into DIR,
unpacks them with `dpkg-deb -x` into DIR/root and mines that tree (nothing installed).
--prefix ROOT mines an already unpacked tree (each of --roots under ROOT).
"""

import argparse
import json
import os
import re
import struct
import subprocess
import sys
from collections import Counter

ROOTS = [
    "/usr/share/locale",
    "/usr/share/locale-langpack",
    "/usr/lib/libreoffice/program/resource",      # libreoffice-l10n-fr
    "/usr/share/wesnoth",                           # wesnoth-*-data (translations/)
    "/usr/share/games",                             # freeciv, widelands, ...
    "/usr/share/blender",                           # blender (datafiles/locale)
    "/usr/share/kicad",                             # kicad-locale-fr (internat/)
    "/usr/share/gnucash",
]

# Packages whose French gettext catalogs are large (desktop apps, games, tools, l10n
# packages). Most GNU/GNOME/KDE programs ship every language's .mo in the main package.
PACKAGES = """
libreoffice-l10n-fr libreoffice-core gimp inkscape gnucash evolution nautilus
gnome-control-center gnome-shell gedit totem rhythmbox shotwell evince file-roller
gnome-disk-utility gnome-software gnome-terminal xfce4 xfce4-goodies lxqt
kicad kicad-locale-fr blender gramps darktable
wesnoth-1.16-data freeciv-data widelands-data supertuxkart-data hedgewars-data
neverball-data pingus-data 0ad-data
gcc-12-locales gdb emacs-common vim-runtime aspell wget curl tar sed gawk make
sharutils cpio texinfo bison flex m4 libc-l10n util-linux e2fsprogs parted
network-manager-l10n systemd mc lynx-common aptitude-common synaptic debconf-i18n
tasksel-data iso-codes console-setup-linux
""".split()

LOCALE_DIR_RE = re.compile(r"^fr([_@.-].*)?$")
PLACEHOLDER_RE = re.compile(
    r"%(?:\d+\$)?[-+ #0']*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|L|q|j|z|t|I64|I32)?"
    r"[diouxXeEfFgGaAcspnm%]"
    r"|%\([^)]*\)[sdifr]|\{[^{}]*\}|\$\{[^}]*\}|\$[A-Z_]+|@[A-Za-z_]+@|<[^<>]*>|&[a-z]+;")


class MoError(ValueError):
    pass


def parse_mo(data, name="<mo>"):
    """Returns (charset, [(msgctxt or None, msgid, msgid_plural or None, [msgstr forms])])."""
    if len(data) < 28:
        raise MoError(f"{name}: too short")
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0x950412DE:
        e = "<"
    elif magic == 0xDE120495:
        e = ">"
    else:
        raise MoError(f"{name}: bad magic {magic:#x}")
    rev, n, o_off, t_off = struct.unpack(e + "4I", data[4:20])
    if rev >> 16 not in (0, 1):
        raise MoError(f"{name}: unsupported revision {rev:#x}")
    if o_off + 8 * n > len(data) or t_off + 8 * n > len(data):
        raise MoError(f"{name}: tables out of range")
    raw = []
    for i in range(n):
        ol, oo = struct.unpack(e + "2I", data[o_off + 8 * i:o_off + 8 * i + 8])
        tl, to = struct.unpack(e + "2I", data[t_off + 8 * i:t_off + 8 * i + 8])
        if oo + ol > len(data) or to + tl > len(data):
            raise MoError(f"{name}: string {i} out of range")
        raw.append((data[oo:oo + ol], data[to:to + tl]))
    charset = "utf-8"
    for orig, trans in raw:
        if orig == b"":
            m = re.search(rb"charset=([-\w]+)", trans)
            if m:
                charset = m.group(1).decode("ascii").lower()
                if charset in ("charset", "char"):  # template placeholder left in
                    charset = "utf-8"
    out = []
    for orig, trans in raw:
        if orig == b"":
            continue
        try:
            o = orig.decode(charset)
            t = trans.decode(charset)
        except (UnicodeDecodeError, LookupError):
            try:
                o, t = orig.decode("utf-8"), trans.decode("utf-8")
            except UnicodeDecodeError:
                continue
        ctx = None
        if "\x04" in o:
            ctx, o = o.split("\x04", 1)
        ids = o.split("\x00")
        forms = t.split("\x00")
        out.append((ctx, ids[0], ids[1] if len(ids) > 1 else None, forms))
    return charset, out


def only_placeholders(s):
    rest = PLACEHOLDER_RE.sub("", s)
    return not re.search(r"[^\W\d_]", rest)


def split_pair(en, fr):
    el = [l.strip() for l in en.split("\n") if l.strip()]
    fl = [l.strip() for l in fr.split("\n") if l.strip()]
    if len(el) == len(fl):
        return list(zip(el, fl))
    return [(" ".join(el), " ".join(fl))]


def pairs_of_catalog(entries):
    for ctx, msgid, plural, forms in entries:
        if plural is None:
            cands = [(msgid, forms[0])]
        else:
            cands = [(msgid, forms[0])]
            if len(forms) > 1:
                cands.append((plural, forms[1]))
        for en, fr in cands:
            if not en.strip() or not fr.strip():
                continue
            yield from split_pair(en, fr)


def find_catalogs(roots):
    found = []
    for root in roots:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            if os.path.basename(dirpath) != "LC_MESSAGES":
                continue
            loc = os.path.basename(os.path.dirname(dirpath))
            if not LOCALE_DIR_RE.match(loc):
                continue
            for f in sorted(filenames):
                if f.endswith(".mo"):
                    found.append(os.path.join(dirpath, f))
    return sorted(set(found))


def install(packages):
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + packages
    print("running:", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def download(packages, dir):
    """apt-get download each package (one by one: an unknown name does not stop the rest),
    unpack into dir/root; returns dir/root."""
    os.makedirs(dir, exist_ok=True)
    root = os.path.join(dir, "root")
    for p in packages:
        if subprocess.call(["apt-get", "download", "-q", p], cwd=dir) != 0:
            print(f"apt-get download {p} failed", file=sys.stderr)
    for f in sorted(os.listdir(dir)):
        if f.endswith(".deb"):
            subprocess.call(["dpkg-deb", "-x", os.path.join(dir, f), root])
    return root


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/attn-mined")
    ap.add_argument("--roots", nargs="*", default=ROOTS)
    ap.add_argument("--install", action="store_true", help="apt-get install PACKAGES first")
    ap.add_argument("--packages-file", help="one package name per line (replaces PACKAGES)")
    ap.add_argument("--download", metavar="DIR", help="apt-get download + dpkg-deb -x PACKAGES into DIR, mine DIR/root")
    ap.add_argument("--prefix", metavar="ROOT", help="mine ROOT/<each of --roots> (an unpacked tree)")
    ap.add_argument("--list-packages", action="store_true", help="print the --install list and exit")
    a = ap.parse_args(argv)
    pkgs = PACKAGES
    if a.packages_file:
        with open(a.packages_file) as f:
            pkgs = [l.split("#")[0].strip() for l in f if l.split("#")[0].strip()]
    if a.list_packages:
        print("\n".join(pkgs))
        return 0
    if a.install:
        rc = install(pkgs)
        if rc != 0:
            print(f"apt-get exited {rc}; mining what is installed", file=sys.stderr)
    prefix = a.prefix
    if a.download:
        prefix = download(pkgs, a.download)
    roots = [os.path.join(prefix, r.lstrip("/")) for r in a.roots] if prefix else a.roots
    cats = find_catalogs(roots)
    os.makedirs(a.out, exist_ok=True)
    seen = set()
    st = Counter()
    per_domain = Counter()
    with open(os.path.join(a.out, "debian_mined.en"), "w", encoding="utf-8") as fe, \
            open(os.path.join(a.out, "debian_mined.fr"), "w", encoding="utf-8") as ff, \
            open(os.path.join(a.out, "debian_mined.domain"), "w", encoding="utf-8") as fd:
        for path in cats:
            domain = os.path.basename(path)[:-3]
            try:
                with open(path, "rb") as f:
                    _, entries = parse_mo(f.read(), path)
            except (OSError, MoError) as e:
                print(f"skip {path}: {e}", file=sys.stderr)
                st["bad_catalogs"] += 1
                continue
            st["catalogs"] += 1
            st["entries"] += len(entries)
            for en, fr in pairs_of_catalog(entries):
                st["pairs_raw"] += 1
                en = " ".join(en.split())
                fr = " ".join(fr.split())
                if only_placeholders(en) or only_placeholders(fr):
                    st["placeholder_only"] += 1
                    continue
                if (en, fr) in seen:
                    st["duplicate"] += 1
                    continue
                seen.add((en, fr))
                fe.write(en + "\n")
                ff.write(fr + "\n")
                fd.write(domain + "\n")
                per_domain[domain] += 1
    st["pairs"] = len(seen)
    stats = dict(st)
    stats["domains"] = dict(per_domain.most_common())
    with open(os.path.join(a.out, "mine_stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print(f"{st['catalogs']} catalogs, {st['entries']} entries, {st['pairs_raw']} raw pairs, "
          f"{st['placeholder_only']} placeholder-only, {st['duplicate']} duplicates -> "
          f"{st['pairs']} pairs in {a.out}")
    print("largest domains:", ", ".join(f"{d} {n}" for d, n in per_domain.most_common(10)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

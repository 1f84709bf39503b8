#!/usr/bin/python3
"""Build the cleaned, license-checked English->French training corpus.

Reads the parallel files under /work/shared/data/train (see SOURCES.md there), keeps only
sources whose license allows a redistributable model (ALLOWED below; everything else is
excluded on purpose, see EXCLUDED), cleans and filters every pair, removes any pair whose
English or French side occurs in a dev set (/work/shared/data/dev/*), and writes

    OUT/SOURCE.en, OUT/SOURCE.fr   cleaned pairs of each source, line-aligned
    OUT/train.en,  OUT/train.fr    all sources concatenated (globally de-duplicated)
    OUT/train.src                  the source name of each line of train.en
    OUT/stats.json                 pairs per source before/after each filter

Usage:
    /usr/bin/python3 scripts/corpus/build_corpus.py [--data /work/shared/data] [--out /tmp/attn-corpus]
        [--extra NAME:EN_FILE:FR_FILE ...]    (e.g. pairs mined by mine_debian.py)

Filters, in this order (each counted in stats.json):
    clean       whitespace normalized (NFC, all Unicode spaces -> ' ', collapsed, stripped),
                HTML entities unescaped and HTML tags removed, gettext accelerator marks
                removed (debian*: '_File' -> 'File', '&Open' -> 'Open', and a single
                mid-word '_' when each side has exactly one: 'feuille_s' -> 'feuilles');
                pairs with an empty side after cleaning are dropped
    length      1..200 words (whitespace tokens) on each side
    ratio       max(chars) / min(chars) <= 3
    french      the French side looks French (stop-word / character heuristic, see is_french)
    dev         neither side occurs in any dev set (case- and whitespace-insensitive)
    dedup       exact (en, fr) duplicates removed, within and across sources (first wins)
"""

import argparse
import html
import json
import os
import re
import sys
import unicodedata

# source name -> (license, list of (en file, fr file) relative to train/)
# Only sources that allow a redistributable (including commercial-use) model.
ALLOWED = {
    "tatoeba": ("CC-BY 2.0 FR (Tatoeba; attribution)",
                [("tatoeba/tatoeba.en", "tatoeba/tatoeba.fr")]),
    "debian_mo": ("GPL/LGPL and other free licenses of the Debian packages",
                  [("debian_mo/debian_mo.en", "debian_mo/debian_mo.fr")]),
    "bible": ("public domain (ASV 1901, BBE, Perret-Gentil & Rilliet 1866)",
              [("bible/bible.ASV1901.en", "bible/bible.PGR1866.fr"),
               ("bible/bible.BBE.en", "bible/bible.PGR1866.fr")]),
    "wikipedia": ("CC-BY-SA (OPUS Wikipedia)",
                  [("wikipedia/wikipedia.test.en", "wikipedia/wikipedia.test.fr"),
                   ("wikipedia/wikipedia.validation.en", "wikipedia/wikipedia.validation.fr")]),
    "diabla": ("CC-BY-SA 4.0 (DiaBLa)", [("diabla/diabla.en", "diabla/diabla.fr")]),
    "europarl_sample": ("no known restrictions (Europarl v7)",
                        [("europarl_sample/europarl-v7.fr-en.en",
                          "europarl_sample/europarl-v7.fr-en.fr")]),
    # added 2026-12-02: long, well-formed sentences (documentation, games); see each SOURCE.txt
    "lohelp": ("MPL-2.0 (LibreOffice help)", [("lohelp/lohelp.en", "lohelp/lohelp.fr")]),
    "pydocs": ("PSF-2.0 (English), CC0 (French; python-docs-fr)",
               [("pydocs/pydocs.en", "pydocs/pydocs.fr")]),
    "djangodocs": ("BSD-3-Clause (Django documentation)",
                   [("djangodocs/djangodocs.en", "djangodocs/djangodocs.fr")]),
    "manpages": ("man-pages copyleft / GPL-2+ (English), GPL-3+ (manpages-fr)",
                 [("manpages/manpages.en", "manpages/manpages.fr")]),
    "game_mo": ("GPL-2+ / GPL-3 (freedroidrpg, widelands, warzone2100, freeciv)",
                [("game_mo/game_mo.en", "game_mo/game_mo.fr")]),
    "wesnoth": ("GPL-2+ (Battle for Wesnoth)", [("wesnoth/wesnoth.en", "wesnoth/wesnoth.fr")]),
    "gimp_help": ("GFDL-1.2+, no invariant sections (GIMP manual; attribution, share-alike)",
                  [("gimp_help/gimp_help.en", "gimp_help/gimp_help.fr")]),
    "app_help": ("CC-BY-SA-3.0 / GFDL / GPL-2+ (GNOME and MATE application help)",
                 [("app_help/app_help.en", "app_help/app_help.fr")]),
    "app_mo": ("GPL-2+ (Gramps, GnuCash, Inkscape)", [("app_mo/app_mo.en", "app_mo/app_mo.fr")]),
    "debian_reference": ("GPL-2+ (Debian Reference)",
                         [("debian_reference/debian_reference.en", "debian_reference/debian_reference.fr")]),
    "debian_handbook": ("GPL-2+ or CC-BY-SA-3.0 (Debian Administrator's Handbook)",
                        [("debian_handbook/debian_handbook.en", "debian_handbook/debian_handbook.fr")]),
    "debian_install_maint": ("GPL-2 / GPL-2+ (installation-guide, maint-guide)",
                             [("debian_install_maint/debian_install_maint.en",
                               "debian_install_maint/debian_install_maint.fr")]),
    "gnome_help": ("CC-BY-SA-3.0 (GNOME user docs)", [("gnome_help/gnome_help.en", "gnome_help/gnome_help.fr")]),
    "kde_help": ("GFDL-1.2+ (KDE handbooks; attribution, share-alike)",
                 [("kde_help/kde_help.en", "kde_help/kde_help.fr")]),
}

# Present in the data folder but NOT used: their terms forbid a redistributable model.
EXCLUDED = {
    "multi30k": "non-commercial research use only",
    "xnli": "CC BY-NC 4.0 (non-commercial)",
    "wmt24_chat": "CC BY-NC 4.0 (non-commercial)",
    "gigafren_sample": "WMT giga-fren terms (research use only)",
    "ddtp": "no written license (Debian package descriptions, DDTP): terms not established",
}

MIN_WORDS, MAX_WORDS, MAX_RATIO = 1, 200, 3.0

# gettext catalogs whose strings still carry accelerator marks ('_File', '&Open')
ACCEL_SOURCES = {"debian_mo", "debian_mined", "debian_dl"}

HTML_TAGS = ("a abbr b big blockquote br center code del div em font h1 h2 h3 h4 h5 h6 hr "
             "i img ins kbd li ol p pre q s samp small span strike strong sub sup table "
             "tbody td th tr tt u ul var markup").split()
TAG_RE = re.compile(r"</?(?:%s)(?:\s[^<>]*)?/?>" % "|".join(HTML_TAGS), re.IGNORECASE)
SPACE_RE = re.compile(r"\s+")
ACCEL_RE = re.compile(r"(?<![\w_&])[_&](?=\w)")
ACCEL_MID_RE = re.compile(r"_(?=[^\W_])")

FR_STOP = set("""le la les l' un une des du de d' et est sont à au aux en dans pour par sur
avec ne pas n' que qu' qui je j' tu il elle nous vous ils elles ce cet cette ces c' se s'
son sa ses mon ma mes ton ta tes leur leurs notre votre nos vos y on me m' te t' lui été être
avoir ai as avons avez ont était plus très mais ou où comme tout tous toute fait cela ça
voici voilà si""".split())
EN_STOP = set("""the an and is are was were to of in for with not that this these those
it its you he she we they them his her my your our their be been have has had do does did
will would can could should there what which who from by at or but""".split())
WORD_RE = re.compile(r"[a-zàâäçéèêëîïôöùûüÿœæ]+'?", re.IGNORECASE)
FR_CHARS = set("àâçéèêëîïôùûüÿœÀÂÇÉÈÊËÎÏÔÙÛÜŸŒ«»")


def clean(text, accel=False):
    text = unicodedata.normalize("NFC", text)
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = TAG_RE.sub(" ", text)
    if accel:
        text = ACCEL_RE.sub("", text)
    text = text.replace("\u00ad", "").replace("\u200b", "").replace("\ufeff", "")
    return SPACE_RE.sub(" ", text).strip()


def words(text):
    return WORD_RE.findall(text.lower().replace("\u2019", "'"))


def is_french(fr, en):
    """Cheap language check of the French side. A pair fails when the French side is
    clearly English (more English than French stop words and at least two English ones),
    or is an untranslated copy of a 3+ word English side."""
    if fr == en and len(fr.split()) >= 3:
        return False
    ws = words(fr)
    n_fr = sum(1 for w in ws if w in FR_STOP or (w.endswith("'") and w in FR_STOP))
    n_en = sum(1 for w in ws if w in EN_STOP)
    if any(c in FR_CHARS for c in fr):
        n_fr += 1
    if n_en >= 2 and n_en > n_fr:
        return False
    return True


def dev_key(text):
    return SPACE_RE.sub(" ", unicodedata.normalize("NFC", text)).strip().lower()


def load_dev(dev_dir):
    keys = set()
    for name in sorted(os.listdir(dev_dir)):
        path = os.path.join(dev_dir, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    k = dev_key(line)
                    if k:
                        keys.add(k)
    return keys


def read_pairs(en_path, fr_path):
    with open(en_path, encoding="utf-8", errors="replace") as fe, \
            open(fr_path, encoding="utf-8", errors="replace") as ff:
        en = fe.read().split("\n")
        fr = ff.read().split("\n")
    if en and en[-1] == "":
        en.pop()
    if fr and fr[-1] == "":
        fr.pop()
    if len(en) != len(fr):
        raise SystemExit(f"{en_path}: {len(en)} lines but {fr_path}: {len(fr)}")
    return list(zip(en, fr))


def filter_source(name, pairs, dev, seen, accel=False):
    """Returns (kept pairs, ordered stats dict)."""
    st = {"raw": len(pairs)}
    out = []
    for en, fr in pairs:
        if accel and len(ACCEL_MID_RE.findall(en)) == 1 and len(ACCEL_MID_RE.findall(fr)) == 1 \
                and en.count("_") == 1 and fr.count("_") == 1:
            # one mnemonic on each side, possibly mid-word: "All _sheets" / "Toutes les feuille_s"
            en, fr = en.replace("_", ""), fr.replace("_", "")
        en, fr = clean(en, accel), clean(fr, accel)
        if en and fr:
            out.append((en, fr))
    st["clean"] = len(out)
    out = [(e, f) for e, f in out
           if MIN_WORDS <= len(e.split()) <= MAX_WORDS and MIN_WORDS <= len(f.split()) <= MAX_WORDS]
    st["length"] = len(out)
    out = [(e, f) for e, f in out if max(len(e), len(f)) <= MAX_RATIO * min(len(e), len(f))]
    st["ratio"] = len(out)
    out = [(e, f) for e, f in out if is_french(f, e)]
    st["french"] = len(out)
    out = [(e, f) for e, f in out if dev_key(e) not in dev and dev_key(f) not in dev]
    st["dev"] = len(out)
    kept = []
    for p in out:
        if p not in seen:
            seen.add(p)
            kept.append(p)
    st["dedup"] = len(kept)
    return kept, st


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--out", default="/tmp/attn-corpus")
    ap.add_argument("--sources", default=",".join(ALLOWED),
                    help="comma-separated subset of the allowed sources")
    ap.add_argument("--extra", action="append", default=[],
                    help="NAME:EN_FILE:FR_FILE extra aligned files (e.g. mine_debian.py output); "
                         "their license is the caller's responsibility (Debian catalogs: GPL/LGPL...)")
    a = ap.parse_args(argv)
    train = os.path.join(a.data, "train")
    dev = load_dev(os.path.join(a.data, "dev"))
    os.makedirs(a.out, exist_ok=True)
    seen = set()
    stats = {"filters": ["raw", "clean", "length", "ratio", "french", "dev", "dedup"],
             "dev_keys": len(dev), "excluded": EXCLUDED, "sources": {}}
    jobs = []
    for name in a.sources.split(","):
        if name in EXCLUDED:
            raise SystemExit(f"{name}: excluded ({EXCLUDED[name]})")
        if name not in ALLOWED:
            raise SystemExit(f"{name}: not in the allow-list")
        lic, files = ALLOWED[name]
        jobs.append((name, lic, [(os.path.join(train, e), os.path.join(train, f)) for e, f in files]))
    for spec in a.extra:
        name, e, f = spec.split(":", 2)
        jobs.append((name, "see --extra (caller)", [(e, f)]))
    total = []
    fmt = "%-16s" + "%9s" * 7
    print(fmt % ("source", *stats["filters"]))
    for name, lic, files in jobs:
        pairs = []
        for e, f in files:
            pairs.extend(read_pairs(e, f))
        kept, st = filter_source(name, pairs, dev, seen, accel=name in ACCEL_SOURCES)
        st["license"] = lic
        stats["sources"][name] = st
        print(fmt % (name, *[st[k] for k in stats["filters"]]))
        with open(os.path.join(a.out, name + ".en"), "w", encoding="utf-8") as fe, \
                open(os.path.join(a.out, name + ".fr"), "w", encoding="utf-8") as ff:
            for e, f in kept:
                fe.write(e + "\n")
                ff.write(f + "\n")
        total.extend((name, e, f) for e, f in kept)
    with open(os.path.join(a.out, "train.en"), "w", encoding="utf-8") as fe, \
            open(os.path.join(a.out, "train.fr"), "w", encoding="utf-8") as ff, \
            open(os.path.join(a.out, "train.src"), "w", encoding="utf-8") as fs:
        for n, e, f in total:
            fe.write(e + "\n")
            ff.write(f + "\n")
            fs.write(n + "\n")
    stats["total"] = len(total)
    print("%-16s %d pairs -> %s" % ("total", len(total), a.out))
    with open(os.path.join(a.out, "stats.json"), "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

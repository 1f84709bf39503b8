#!/usr/bin/env bash
# test_install.sh — make install into a temporary DESTDIR, translate from there (the
# installed binary finds the model installed beside it), build a program against the
# installed header and library through pkg-config, then make uninstall removes it all.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
D="$tmp/root" P=/usr/local
make -s install PREFIX=$P DESTDIR="$D" > "$tmp/log" 2>&1; rc=$?
check "make install" '[ $rc -eq 0 ] || { cat "$tmp/log" >&2; false; }'
for f in bin/attn-translate lib/libattn-translate.a include/attn_translate.h \
         lib/pkgconfig/attn-translate.pc share/man/man1/attn-translate.1; do
    check "installed $f" '[ -f "$D$P/$f" ]'
done
# the default model: installed into the data dir with its card (licenses, attributions),
# or stand-in with the tiny test model
if [ -f models/en-fr/model.json ]; then
    for f in model.json model.bin vocab.json MODEL_CARD.md; do
        check "installed the model's $f" '[ -f "$D$P/share/attn-translate/en-fr/$f" ]'
    done
fi
if [ ! -f "$D$P/share/attn-translate/en-fr/model.json" ]; then
    mkdir -p "$D$P/share/attn-translate/en-fr"
    cp tests/fixtures/tiny/A/model.json tests/fixtures/tiny/A/model.bin tests/fixtures/tiny/A/vocab.json \
       "$D$P/share/attn-translate/en-fr/"
fi
out=$(cd / && echo "Hello." | env -u ATTN_TRANSLATE_MODEL "$D$P/bin/attn-translate" 2>&1); rc=$?
check "installed binary finds its installed model and translates" '[ $rc -eq 0 ] && [ -n "$out" ]'
man1="$D$P/share/man/man1/attn-translate.1"
check "man page renders without warnings" \
    '[ -z "$(groff -man -Tutf8 -ww "$man1" 2>&1 > /dev/null)" ] && { ! command -v man > /dev/null || [ -n "$(MANWIDTH=80 man -l "$man1" 2> /dev/null)" ]; }'
cat > "$tmp/prog.c" <<'CEOF'
#include <attn_translate.h>
#include <stdio.h>
int main(int argc, char **argv) {
    at_model *m; at_session *s; at_error e; at_result r;
    if (argc < 2 || at_model_load(argv[1], &m, &e) != AT_OK) return 1;
    if (at_session_new(m, &s, &e) != AT_OK) return 1;
    if (at_translate(s, "Hello.", 6, NULL, &r, &e) != AT_OK) return 1;
    printf("%s\n", r.hyps[0].text);
    at_session_free(s); at_model_free(m);
    return 0;
}
CEOF
flags=$(PKG_CONFIG_PATH="$D$P/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$D" pkg-config --cflags --libs --static attn-translate 2>&1)
cc "$tmp/prog.c" $flags -o "$tmp/prog" 2> "$tmp/cc.log"; rc=$?
check "a program builds against the installed library (pkg-config)" '[ $rc -eq 0 ] || { cat "$tmp/cc.log" >&2; false; }'
check "and translates" '"$tmp/prog" tests/fixtures/tiny/A > /dev/null'
make -s uninstall PREFIX=$P DESTDIR="$D" > /dev/null 2>&1
left=$(find "$D" -type f | wc -l)
check "make uninstall removes every installed file" '[ "$left" -eq 0 ] || { find "$D" -type f >&2; false; }'
check "make uninstall removes the directories it created (share/attn-translate...)" \
    '[ -z "$(find "$D" -mindepth 1)" ] || { find "$D" -mindepth 1 >&2; false; }'
D2="$tmp/root2"; mkdir -p "$D2$P/bin"; echo mine > "$D2$P/bin/other-tool"
make -s install PREFIX=$P DESTDIR="$D2" > /dev/null 2>&1 && make -s uninstall PREFIX=$P DESTDIR="$D2" > /dev/null 2>&1
check "make uninstall keeps directories that were there, and others' files" \
    '[ -f "$D2$P/bin/other-tool" ] && [ -z "$(find "$D2" -mindepth 1 -not -path "$D2$P/bin*" -not -path "$D2/usr" -not -path "$D2$P")" ]'

# make setup / make test: scripts/install-deps.sh says what it installs (stubs for apt)
mkdir "$tmp/stub"
printf '#!/bin/sh\nexit 1\n' > "$tmp/stub/dpkg-query"
printf '#!/bin/sh\nexit 0\n' > "$tmp/stub/apt-get"; cp "$tmp/stub/apt-get" "$tmp/stub/sudo"
chmod +x "$tmp/stub/"*
PATH="$tmp/stub:$PATH" scripts/install-deps.sh --build-only > "$tmp/deps.out" 2>&1; rc=$?
check "install-deps prints one line naming what it installs" \
    '[ $rc -eq 0 ] && [ $(wc -l < "$tmp/deps.out") -eq 1 ] && grep -q "installing .*libopenblas-dev" "$tmp/deps.out"'
echo "test_install: $pass passed, $fail failed"
[ $fail -eq 0 ]

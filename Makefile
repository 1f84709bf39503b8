# attn-translate — build, test, install.
#   make setup        install the Debian packages (apt), then build
#   make              the library and ./attn-translate
#   make test         every test; ends with "N passed, N failed"
#   make asan-test    the same tests built with AddressSanitizer + UBSan
#   make tsan-test    the threaded tests (pool, split products, workers) under TSan
#   make bench        speed and memory against the PyTorch reference (not a test);
#                     PEER_CT2=DIR adds CTranslate2 side by side (see the bench target)
#   make install      PREFIX=/usr/local DESTDIR=

.DEFAULT_GOAL := all

CC      ?= cc
PREFIX  ?= /usr/local
DATADIR ?= $(PREFIX)/share/attn-translate
PYTHON  ?= /usr/bin/python3
OPT     ?= -O2 -march=x86-64-v2
WARN    = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
          -Wformat=2 -Wvla
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 $(WARN) -Ilib -DAT_DATADIR='"$(DATADIR)"'
LDLIBS  = -lopenblas -lcjson -lutf8proc -lm -lpthread
BUILD   ?= build

LIB_SRC = lib/status.c lib/json.c lib/tokenizer.c lib/model.c lib/nn.c lib/gemm.c lib/transformer.c lib/translate.c lib/pool.c
LIB_OBJ = $(LIB_SRC:lib/%.c=$(BUILD)/lib/%.o)
FUZZ_TARGETS = tokenizer vocab header translate
TESTS   = test_tokenizer test_json test_model test_gemm test_forward test_attn test_hf_marian
TEST_BIN = $(TESTS:%=$(BUILD)/tests/%) $(BUILD)/tests/tokcheck $(BUILD)/tests/marian_dump $(BUILD)/tests/attn_svg_demo \
           $(FUZZ_TARGETS:%=$(BUILD)/fuzz/replay_%)

# Debian packages (a no-op once installed): setup needs the build ones, test all of them
deps:
	@scripts/install-deps.sh

setup:
	@scripts/install-deps.sh --build-only
	$(MAKE) all

.PHONY: fuzz fuzz-run deps setup all test asan asan-test tsan tsan-test bench clean install uninstall check-header

all: attn-translate

$(BUILD)/lib/%.o: lib/%.c lib/*.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libattn-translate.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

CMD_OBJ = $(BUILD)/cmd/attn-translate.o $(BUILD)/cmd/attnfmt.o

$(BUILD)/cmd/%.o: cmd/%.c cmd/*.h lib/attn_translate.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icmd -c $< -o $@

$(BUILD)/attn-translate: $(CMD_OBJ) $(BUILD)/libattn-translate.a
	$(CC) $(CFLAGS) $(LDFLAGS) $(CMD_OBJ) $(BUILD)/libattn-translate.a $(LDLIBS) -lpthread -o $@

attn-translate: $(BUILD)/attn-translate
	cp $< $@

$(BUILD)/tests/%: tests/%.c tests/check.h tests/testfile.h fuzz/jsoncmp.h $(BUILD)/libattn-translate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/libattn-translate.a $(LDLIBS) -o $@

# tests linked with the CLI's formatting code (cmd/attnfmt.c)
$(BUILD)/tests/test_attn $(BUILD)/tests/attn_svg_demo: $(BUILD)/tests/%: tests/%.c tests/check.h tests/testfile.h cmd/attnfmt.h $(BUILD)/cmd/attnfmt.o $(BUILD)/libattn-translate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icmd $(LDFLAGS) $< $(BUILD)/cmd/attnfmt.o $(BUILD)/libattn-translate.a $(LDLIBS) -o $@

# The public header must compile alone, as C and as C++.
check-header:
	@mkdir -p $(BUILD)
	printf '#include "attn_translate.h"\nint main(void){return 0;}\n' > $(BUILD)/hdr.c
	$(CC) -std=c99 -Wall -Wextra -pedantic -Werror -Ilib $(BUILD)/hdr.c -o $(BUILD)/hdr-c
	@if command -v c++ >/dev/null; then c++ -Wall -Wextra -Werror -Ilib -x c++ $(BUILD)/hdr.c -o $(BUILD)/hdr-cxx; fi

test: deps attn-translate $(TEST_BIN) check-header
	BUILD=$(BUILD) PYTHON=$(PYTHON) tests/run.sh

asan:
	$(MAKE) BUILD=build/asan OPT='-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined' \
	  LDFLAGS='-fsanitize=address,undefined' $(TEST_BIN:$(BUILD)/%=build/asan/%) build/asan/attn-translate

asan-test: asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  BUILD=build/asan PYTHON=$(PYTHON) tests/run.sh --no-python

# ThreadSanitizer on what runs threads of its own: the pool and split products
# (test_gemm) and the CLI's workers and split batches (test_batch)
tsan:
	$(MAKE) BUILD=build/tsan OPT='-O1 -fsanitize=thread' LDFLAGS='-fsanitize=thread' \
	  build/tsan/tests/test_gemm build/tsan/attn-translate

tsan-test: tsan
	TSAN_OPTIONS=halt_on_error=1 build/tsan/tests/test_gemm
	TSAN_OPTIONS=halt_on_error=1 tests/test_batch.sh build/tsan/attn-translate

# ---- fuzzing (clang + libFuzzer). `make fuzz` builds; `make fuzz-run FUZZ_SECONDS=600`
# runs each target in turn on fuzz/corpus/NAME and keeps new interesting inputs there.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)

build/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/*.h $(LIB_SRC) lib/*.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 -std=c11 -fsanitize=fuzzer,address,undefined -Ilib -Ifuzz $< $(LIB_SRC) $(LDLIBS) -o $@

fuzz-run: fuzz
	for t in $(FUZZ_TARGETS); do mkdir -p fuzz/corpus/$$t build/fuzz/new-$$t; \
	  case $$t in header) ml=16384;; vocab) ml=32768;; *) ml=4096;; esac; \
	  build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$ml -rss_limit_mb=2048 -timeout=10 \
	    -artifact_prefix=fuzz/corpus/$$t/crash- build/fuzz/new-$$t fuzz/corpus/$$t || exit 1; \
	done

# the committed corpus replayed without libFuzzer, by make test
$(BUILD)/fuzz/replay_%: fuzz/fuzz_%.c fuzz/replay.c fuzz/*.h $(BUILD)/libattn-translate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ifuzz $(LDFLAGS) $< fuzz/replay.c $(BUILD)/libattn-translate.a $(LDLIBS) -o $@

# make bench [PEER_CT2=DIR] [PEER_CT2_OPENBLAS=DIR] [PEERS="LABEL=DIR ..."] [BENCH_ARGS=...]
# a CTranslate2 install prefix (DIR/bin/ct2-translator, DIR/lib) is run side by side,
# one column per build; e.g. make bench PEER_CT2=DIR BENCH_ARGS=--peer-only (about 12 min)
BENCH_PEERS = $(if $(PEER_CT2),--peer ct2=$(PEER_CT2)) \
              $(if $(PEER_CT2_OPENBLAS),--peer ct2-openblas=$(PEER_CT2_OPENBLAS)) \
              $(foreach p,$(PEERS),--peer $(p))
bench: attn-translate
	$(PYTHON) scripts/bench.py $(BENCH_PEERS) $(BENCH_ARGS)

MANDIR ?= $(PREFIX)/share/man

# make install records, in $(DATADIR)/installed-dirs, the directories it had to create;
# make uninstall removes the installed files, then those directories when they are empty
# (never a directory that was there before, nor anything it did not install).
INSTALL_DIRS = $(PREFIX)/bin $(PREFIX)/lib/pkgconfig $(PREFIX)/include $(MANDIR)/man1 $(DATADIR)/en-fr
MODEL_FILES = model.json model.bin vocab.json MODEL_CARD.md

install: attn-translate $(BUILD)/libattn-translate.a
	@new=; for d in $(INSTALL_DIRS); do \
	  while [ "$$d" != / ] && [ "$$d" != . ] && [ ! -d "$(DESTDIR)$$d" ]; do new="$$new $$d"; d=$$(dirname "$$d"); done; \
	done; \
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DATADIR) && \
	{ [ ! -f $(DESTDIR)$(DATADIR)/installed-dirs ] || cat $(DESTDIR)$(DATADIR)/installed-dirs; \
	  for d in $$new; do echo "$$d"; done; } | sort -u > $(DESTDIR)$(DATADIR)/installed-dirs.new && \
	mv $(DESTDIR)$(DATADIR)/installed-dirs.new $(DESTDIR)$(DATADIR)/installed-dirs
	install -m 755 attn-translate $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/libattn-translate.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 lib/attn_translate.h $(DESTDIR)$(PREFIX)/include/
	sed 's|@PREFIX@|$(PREFIX)|' attn-translate.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/attn-translate.pc
	install -m 644 attn-translate.1 $(DESTDIR)$(MANDIR)/man1/
	if [ -f models/en-fr/model.json ]; then install -d $(DESTDIR)$(DATADIR)/en-fr && \
	  install -m 644 $(MODEL_FILES:%=models/en-fr/%) $(DESTDIR)$(DATADIR)/en-fr/; fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/attn-translate $(DESTDIR)$(PREFIX)/lib/libattn-translate.a \
	  $(DESTDIR)$(PREFIX)/include/attn_translate.h \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/attn-translate.pc $(DESTDIR)$(MANDIR)/man1/attn-translate.1 \
	  $(MODEL_FILES:%=$(DESTDIR)$(DATADIR)/en-fr/%)
	@dirs=$$(cat $(DESTDIR)$(DATADIR)/installed-dirs 2> /dev/null); rm -f $(DESTDIR)$(DATADIR)/installed-dirs; \
	for d in $$(printf '%s\n' $$dirs $(DATADIR)/en-fr $(DATADIR) | sort -ru); do \
	  [ ! -d "$(DESTDIR)$$d" ] || rmdir "$(DESTDIR)$$d" 2> /dev/null || true; \
	done

clean:
	rm -rf build attn-translate

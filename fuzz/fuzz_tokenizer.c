/* fuzz_tokenizer.c — arbitrary bytes through the tokenizers of three vocabularies (a real
 * nmt_nfkc one with its precompiled charsmap, tiny model A's nmt_nfkc and tiny model B's
 * identity normalizer): encoding either succeeds or says AT_ERR_INPUT (invalid UTF-8,
 * exactly when the bytes are not valid UTF-8); decoding the ids always works. */
#include "fuzz.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_VOCABS 3
static at_vocab *vocabs[N_VOCABS];

static void init(void) {
    const char *paths[N_VOCABS] = {"tests/fixtures/spm/vocab.json",
                                   "tests/fixtures/tiny/A/vocab.json",
                                   "tests/fixtures/tiny/B/vocab.json"};
    for (int i = 0; i < N_VOCABS; i++) {
        at_error err;
        if (at_vocab_load(paths[i], -1, &vocabs[i], &err) != AT_OK) {
            fprintf(stderr, "fuzz_tokenizer: %s (run from the repository root)\n", err.message);
            abort();
        }
    }
}

/* An independent strict UTF-8 check (RFC 3629: no overlongs, surrogates or > U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], len, min;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len) return 0;
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!vocabs[0]) init();
    int32_t ids[4096];
    char out[65536];
    int valid = utf8_valid(data, size);
    for (int i = 0; i < N_VOCABS; i++) {
        size_t n = 0, len = 0;
        at_error err;
        at_status st = at_vocab_encode(vocabs[i], (const char *)data, size, ids, 4096, &n, &err);
        FUZZ_ASSERT(st == AT_OK || st == AT_ERR_INPUT || st == AT_ERR_TOO_LONG);
        FUZZ_ASSERT((st == AT_ERR_INPUT) == !valid);
        if (st == AT_ERR_TOO_LONG) FUZZ_ASSERT(n > 4096);
        if (st != AT_OK) continue;
        int V = at_vocab_size(vocabs[i]);
        for (size_t k = 0; k < n; k++) FUZZ_ASSERT(ids[k] >= 0 && ids[k] < V);
        st = at_vocab_decode(vocabs[i], ids, n, out, sizeof out, &len, &err);
        FUZZ_ASSERT(st == AT_OK || st == AT_ERR_TOO_LONG);
        /* pieces are valid UTF-8 without NULs, so is their concatenation */
        if (st == AT_OK) FUZZ_ASSERT(strlen(out) == len && utf8_valid((uint8_t *)out, len));
    }
    return 0;
}

/* fuzz_tokenizer.c — arbitrary bytes through the tokenizer of two vocabularies (an
 * nmt_nfkc one with its compiled rules, and the tiny test model's): encoding either
 * succeeds or says AT_ERR_INPUT (invalid UTF-8); decoding the ids always works. */
#include "fuzz.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>

static at_vocab *vocabs[2];

static void init(void) {
    const char *paths[2] = {"tests/fixtures/spm/vocab.json", "tests/fixtures/tiny/B/vocab.json"};
    for (int i = 0; i < 2; i++) {
        at_error err;
        if (at_vocab_load(paths[i], -1, &vocabs[i], &err) != AT_OK) {
            fprintf(stderr, "fuzz_tokenizer: %s (run from the repository root)\n", err.message);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!vocabs[0]) init();
    int32_t ids[4096];
    char out[65536];
    for (int i = 0; i < 2; i++) {
        size_t n = 0, len = 0;
        at_error err;
        at_status st = at_vocab_encode(vocabs[i], (const char *)data, size, ids, 4096, &n, &err);
        FUZZ_ASSERT(st == AT_OK || st == AT_ERR_INPUT || st == AT_ERR_TOO_LONG);
        if (st == AT_ERR_TOO_LONG) FUZZ_ASSERT(n > 4096);
        if (st != AT_OK) continue;
        int V = at_vocab_size(vocabs[i]);
        for (size_t k = 0; k < n; k++) FUZZ_ASSERT(ids[k] >= 0 && ids[k] < V);
        st = at_vocab_decode(vocabs[i], ids, n, out, sizeof out, &len, &err);
        FUZZ_ASSERT(st == AT_OK || st == AT_ERR_TOO_LONG);
    }
    return 0;
}

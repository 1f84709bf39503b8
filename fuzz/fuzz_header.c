/* fuzz_header.c — arbitrary bytes as model.json beside the tiny test model's real
 * model.bin and vocab.json; or, when the input starts with 'B', as a patch of
 * model.bin bytes under the real header; 'P': the same on the model stored packed16
 * (format version 2, tests/fixtures/tiny/CP). Loading (on 1 or 3 threads) succeeds or
 * names the problem, and a model that loads translates a line (or says why not:
 * weights that overflow float). */
#define _GNU_SOURCE
#include "attn_translate.h"
#include "fuzz.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64];
static unsigned char *bin, *header, *pbin, *pheader;
static size_t bin_len, header_len, pbin_len, pheader_len;

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *p = malloc((size_t)n + 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n) abort();
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void put(const char *name, const void *data, size_t len) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) abort();
    fclose(f);
}

static void init(void) {
    snprintf(dir, sizeof dir, "/tmp/at-fuzz-header-XXXXXX");
    if (!mkdtemp(dir)) abort();
    size_t vlen;
    unsigned char *vocab = slurp("tests/fixtures/tiny/C/vocab.json", &vlen);
    put("vocab.json", vocab, vlen);
    free(vocab);
    bin = slurp("tests/fixtures/tiny/C/model.bin", &bin_len);
    header = slurp("tests/fixtures/tiny/C/model.json", &header_len);
    pbin = slurp("tests/fixtures/tiny/CP/model.bin", &pbin_len);
    pheader = slurp("tests/fixtures/tiny/CP/model.json", &pheader_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!bin) init();
    if (size > 0 && (data[0] == 'B' || data[0] == 'P')) {
        /* patch: pairs (offset LE u32, byte) applied to a copy of model.bin */
        int pk = data[0] == 'P';
        const unsigned char *b = pk ? pbin : bin, *h = pk ? pheader : header;
        size_t blen = pk ? pbin_len : bin_len, hlen = pk ? pheader_len : header_len;
        unsigned char *copy = malloc(blen);
        if (!copy) return 0;
        memcpy(copy, b, blen);
        for (size_t i = 1; i + 5 <= size; i += 5) {
            uint32_t off;
            memcpy(&off, data + i, 4);
            copy[off % blen] = data[i + 4];
        }
        size_t keep = size % 7 == 0 ? blen / 2 : blen; /* sometimes truncated */
        put("model.bin", copy, keep);
        put("model.json", h, hlen);
        free(copy);
    } else {
        put("model.bin", bin, bin_len);
        put("model.json", data, size);
    }
    at_model *m = NULL;
    at_error err = {0};
    static const at_dtype dtypes[3] = {AT_DTYPE_AUTO, AT_DTYPE_F16, AT_DTYPE_INT8};
    at_load_options lo = {dtypes[(size / 7) % 3], size % 5 == 0 ? 3 : 1};
    at_status st = at_model_load_opts(dir, &lo, &m, &err);
    FUZZ_ASSERT((st == AT_OK) == (m != NULL));
    FUZZ_ASSERT(st == AT_OK || err.message[0]);
    if (m) {
        /* a header that loads must describe a model that runs */
        at_session *s = NULL;
        if (at_session_new(m, &s, &err) == AT_OK) {
            at_result r;
            at_options o = at_default_options(m);
            o.beam_size = 2;
            o.max_input_tokens = o.max_input_tokens < 32 ? o.max_input_tokens : 32;
            o.max_length_factor = 1.0f, o.max_length_extra = 2;
            at_status ts = at_translate(s, "Hello world.", 12, &o, &r, &err);
            /* FORMAT: weights that overflow float give non-finite scores */
            FUZZ_ASSERT(ts == AT_OK || ts == AT_ERR_FORMAT || ts == AT_ERR_TOO_LONG ||
                        ts == AT_ERR_NOMEM);
            if (ts == AT_OK) { /* what the CLI prints: every hypothesis, finite scores */
                FUZZ_ASSERT(r.n_hyps >= 1);
                for (int k = 0; k < r.n_hyps; k++)
                    FUZZ_ASSERT(r.hyps[k].text && strlen(r.hyps[k].text) < 65536 &&
                                isfinite(r.hyps[k].score));
            }
            at_session_free(s);
        }
        at_model_free(m);
    }
    return 0;
}

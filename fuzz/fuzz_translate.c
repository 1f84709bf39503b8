/* fuzz_translate.c — arbitrary bytes translated by the tiny test model, alone and in
 * a batch with a fixed sentence, beam 1 to 3: every line gets a status, valid UTF-8
 * of reasonable length always gets a translation, and nothing crashes. */
#include "attn_translate.h"
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>

static at_model *model;
static at_session *session;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    at_error err;
    if (!model) {
        if (at_model_load("tests/fixtures/tiny/A", &model, &err) != AT_OK ||
            at_session_new(model, &session, &err) != AT_OK) {
            fprintf(stderr, "fuzz_translate: %s (run from the repository root)\n", err.message);
            abort();
        }
    }
    if (size > 4096) return 0;
    at_options o = at_default_options(model);
    o.beam_size = size ? 1 + data[0] % 3 : 1;
    o.n_best = o.beam_size;
    o.max_input_tokens = 128;
    o.max_length_factor = 1.0f, o.max_length_extra = 3;
    at_result r;
    at_status st = at_translate(session, (const char *)data, size, &o, &r, &err);
    FUZZ_ASSERT(st == AT_OK || st == AT_ERR_INPUT || st == AT_ERR_TOO_LONG);
    if (st == AT_OK) FUZZ_ASSERT(r.n_hyps >= 1 && r.hyps[0].text != NULL);
    const char *texts[2] = {(const char *)data, "The cat sleeps."};
    size_t lens[2] = {size, 15};
    at_result res[2];
    at_status sts[2];
    st = at_translate_batch(session, 2, texts, lens, &o, res, sts, NULL, &err);
    FUZZ_ASSERT(st == AT_OK && sts[1] == AT_OK);
    return 0;
}

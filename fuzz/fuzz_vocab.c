/* fuzz_vocab.c — arbitrary bytes as vocab.json: parsed and validated without a crash;
 * lib/json.c reads them as cJSON does; a vocabulary that loads also encodes a fixed
 * sentence. */
#include "fuzz.h"
#include "jsoncmp.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>

static void count_piece(void *ctx, const char *piece, size_t len, int32_t id) {
    (void)piece, (void)id;
    FUZZ_ASSERT(len > 0);
    ++*(size_t *)ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FUZZ_ASSERT(jsoncmp_text((const char *)data, size));
    at_vocab *v = NULL;
    at_error err;
    at_status st = at_vocab_parse((const char *)data, size, -1, &v, &err);
    FUZZ_ASSERT(st == AT_OK || st == AT_ERR_FORMAT || st == AT_ERR_NOMEM);
    if (st == AT_OK) {
        int32_t ids[256];
        size_t n = 0;
        static const char text[] = "The cat sleeps on the sofa, très bien ! 東京";
        st = at_vocab_encode(v, text, sizeof text - 1, ids, 256, &n, &err);
        FUZZ_ASSERT(st == AT_OK || st == AT_ERR_TOO_LONG);
        char out[4096];
        size_t len;
        if (st == AT_OK) at_vocab_decode(v, ids, n, out, sizeof out, &len, &err);
        /* the target SPM, and every id through the detokenizer */
        FUZZ_ASSERT(at_vocab_encode_pieces(v, 1, text, sizeof text - 1, count_piece, &n, &err) ==
                    AT_OK);
        int V = at_vocab_size(v);
        for (int32_t id = 0; id < V && id < 4096; id++) {
            st = at_vocab_decode(v, &id, 1, out, sizeof out, &len, &err);
            FUZZ_ASSERT(st == AT_OK || st == AT_ERR_TOO_LONG);
        }
    } else {
        FUZZ_ASSERT(v == NULL && err.message[0]);
    }
    at_vocab_free(v);
    return 0;
}

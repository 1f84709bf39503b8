/* marian_dump.c — the engine's raw outputs for comparisons with transformers
 * (scripts/parity_marian.py). Not a test by itself.
 *
 *   marian_dump [--dtype f32|f16|int8] [--beam K] [--n-best N] [--length-penalty A] MODEL_DIR
 *       stdin: one line per sentence, "MAX_LEN<TAB>TEXT" (MAX_LEN: generated tokens allowed,
 *       eos counted; 0 = the DECODING.md default 2 * S + 10).
 *       stdout: one JSON object per line:
 *       {"src_ids":[...eos],"max_len":M,"hyps":[{"ids":[...],"finished":true,"score":s,
 *        "logprob":l,"text":"..."}]}   ("finished": ended with eos, i.e. n_ids < max_len)
 *
 *   marian_dump --logits MODEL_DIR
 *       stdin: "SRC_IDS<TAB>DECODER_IDS" (space-separated; decoder ids start with the
 *       decoder start token); stdout: the raw logits, little-endian float32,
 *       len(DECODER_IDS) x vocab_size per line, teacher-forced. */
#include "attn_translate.h"
#include "model.h"
#include "session.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_ids(char *s, int32_t *out, int cap) {
    int n = 0;
    char *end;
    for (;;) {
        while (*s == ' ') s++;
        if (!*s) break;
        long v = strtol(s, &end, 10);
        if (end == s || n >= cap) return -1;
        out[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

static int dump_logits(at_model *m) {
    at_session *s = NULL;
    at_error err = {0};
    if (at_session_new(m, &s, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    static int32_t src[4096], dec[4096];
    static char buf[1 << 16];
    int V = m->cfg.vocab_size;
    while (fgets(buf, sizeof buf, stdin)) {
        buf[strcspn(buf, "\n")] = 0;
        char *tab = strchr(buf, '\t');
        if (!tab) return fprintf(stderr, "marian_dump: --logits line without a tab\n"), 1;
        *tab = 0;
        int S = parse_ids(buf, src, 4096), T = parse_ids(tab + 1, dec, 4096);
        if (S < 1 || T < 1) return fprintf(stderr, "marian_dump: bad ids\n"), 1;
        if (session_reserve(s, 1, S, S, T + 1, 1, &err))
            return fprintf(stderr, "%s\n", err.message), 1;
        s->attn_layer = -1;
        tf_encode(s, src, S);
        for (int t = 0; t < T; t++) {
            s->step_tokens[0] = dec[t];
            s->hist[t] = 0;
            tf_decode_step(s, 1, t, S);
            fwrite(s->logits, sizeof(float), (size_t)V, stdout);
        }
    }
    at_session_free(s);
    return 0;
}

int main(int argc, char **argv) {
    int beam = 1, n_best = 1, logits = 0, a = 1;
    double lp = 1.0;
    at_dtype dtype = AT_DTYPE_F32;
    for (; a < argc - 1 && !strncmp(argv[a], "--", 2); a++) {
        if (!strcmp(argv[a], "--logits")) logits = 1;
        else if (!strcmp(argv[a], "--beam")) beam = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--n-best")) n_best = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--length-penalty")) lp = atof(argv[++a]);
        else if (!strcmp(argv[a], "--dtype")) {
            int d = at_dtype_parse(argv[++a]);
            if (d < 0) return fprintf(stderr, "marian_dump: bad --dtype\n"), 2;
            dtype = (at_dtype)d;
        } else
            return fprintf(stderr, "marian_dump: unknown option %s\n", argv[a]), 2;
    }
    if (a != argc - 1) {
        fprintf(stderr, "usage: marian_dump [--dtype D] [--beam K] [--n-best N] "
                        "[--length-penalty A] [--logits] MODEL_DIR < input\n");
        return 2;
    }
    at_model *m = NULL;
    at_error err = {0};
    if (at_model_load_dtype(argv[a], dtype, &m, &err))
        return fprintf(stderr, "marian_dump: %s\n", err.message), 1;
    if (logits) {
        int rc = dump_logits(m);
        at_model_free(m);
        return rc;
    }
    at_session *s = NULL;
    if (at_session_new(m, &s, &err)) return fprintf(stderr, "marian_dump: %s\n", err.message), 1;
    static char buf[1 << 20];
    int rc = 0;
    while (fgets(buf, sizeof buf, stdin)) {
        buf[strcspn(buf, "\n")] = 0;
        char *tab = strchr(buf, '\t');
        if (!tab) {
            fprintf(stderr, "marian_dump: line without MAX_LEN<TAB>\n");
            rc = 1;
            break;
        }
        *tab = 0;
        int max_len = atoi(buf);
        at_options o = at_default_options(m);
        o.beam_size = beam, o.n_best = n_best, o.length_penalty = (float)lp;
        if (max_len > 0) o.max_length_factor = 0.0f, o.max_length_extra = max_len;
        at_result r;
        const char *text = tab + 1;
        if (at_translate(s, text, strlen(text), &o, &r, &err)) {
            fprintf(stderr, "marian_dump: %s\n", err.message);
            rc = 1;
            break;
        }
        int ml = s->sents[0].max_len;
        cJSON *j = cJSON_CreateObject(), *src = cJSON_AddArrayToObject(j, "src_ids");
        for (int i = 0; i < r.n_src; i++) cJSON_AddItemToArray(src, cJSON_CreateNumber(r.src_ids[i]));
        cJSON_AddNumberToObject(j, "max_len", ml);
        cJSON *hyps = cJSON_AddArrayToObject(j, "hyps");
        for (int h = 0; h < r.n_hyps; h++) {
            const at_hypothesis *hy = &r.hyps[h];
            cJSON *o2 = cJSON_CreateObject(), *ids = cJSON_AddArrayToObject(o2, "ids");
            for (int i = 0; i < hy->n_ids; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(hy->ids[i]));
            cJSON_AddBoolToObject(o2, "finished", hy->n_ids < ml);
            cJSON_AddNumberToObject(o2, "score", hy->score);
            cJSON_AddNumberToObject(o2, "logprob", hy->logprob);
            cJSON_AddStringToObject(o2, "text", hy->text);
            cJSON_AddItemToArray(hyps, o2);
        }
        char *out = cJSON_PrintUnformatted(j);
        puts(out);
        free(out);
        cJSON_Delete(j);
    }
    at_session_free(s);
    at_model_free(m);
    return rc;
}

/* test_hf_marian.c — the engine against transformers' own outputs
 * (tests/fixtures/marian-hf/expected.json, made by scripts/make_hf_fixture.py with
 * transformers' MarianMTModel.generate; run by tests/test_hf_marian.sh, which converts
 * the fixture's checkpoint first).
 *
 *   test_hf_marian EXPECTED_JSON MODEL_F32 MODEL_F16
 *
 * For every line and setting (greedy, beam 4, n-best 4, n-best 4 with length penalty 0.6,
 * and greedy / n-best 4 of the f16 file): the source ids (C tokenizer against
 * MarianTokenizer), the length limit (DECODING.md's 2 * S + 10, capped by the positions),
 * then every hypothesis: token ids identical, ended with eos or at the limit as
 * transformers', text identical, score within 1e-4 of sequences_scores (greedy: the
 * log-probability sum over the length^lp), sum of log-probabilities within 1e-4 +
 * 1e-5 per token. The
 * f16 file is run as f32 (widened) and with --dtype f16. Then the logits of the first
 * steps, teacher-forced (max abs error <= 1e-4), and the whole set as one batch. */
#include "attn_translate.h"
#include "check.h"
#include "model.h"
#include "session.h"
#include "testfile.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#define SCORE_TOL 1e-4
/* a sum of float32 log-probabilities (transformers adds them in float32): 1e-4 plus 1e-5
 * per generated token */
#define LOGPROB_TOL(n) (1e-4 + 1e-5 * ((n) + 1))
#define LOGIT_TOL 1e-4

static int json_ids(const cJSON *arr, int32_t *out, int cap) {
    int n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) if (n < cap) out[n++] = (int32_t)x->valueint;
    return n;
}

static int n_hyps_checked, n_eos, n_limit;
static double worst_score, worst_logprob, worst_logit;

/* one hypothesis against transformers' */
static void check_hyp(const at_hypothesis *g, const cJSON *want, int max_len, const char *what,
                      int li, int h) {
    int32_t ids[1024];
    int n = json_ids(cJSON_GetObjectItem(want, "ids"), ids, 1024);
    CHECK(n == g->n_ids && !memcmp(ids, g->ids, (size_t)n * sizeof *ids),
          "%s line %d hyp %d: ids differ (%d vs transformers' %d ids)", what, li, h, g->n_ids, n);
    int fin = cJSON_IsTrue(cJSON_GetObjectItem(want, "finished"));
    CHECK(fin == (g->n_ids < max_len), "%s line %d hyp %d: eos-ended %d, transformers %d", what,
          li, h, g->n_ids < max_len, fin);
    const char *text = cJSON_GetObjectItem(want, "text")->valuestring;
    CHECK(!strcmp(text, g->text), "%s line %d hyp %d: text \"%s\", transformers \"%s\"", what, li,
          h, g->text, text);
    double sc = cJSON_GetObjectItem(want, "score")->valuedouble;
    double lp = cJSON_GetObjectItem(want, "logprob")->valuedouble;
    CHECK(fabs(sc - g->score) <= SCORE_TOL, "%s line %d hyp %d: score %.7g, transformers %.7g",
          what, li, h, g->score, sc);
    CHECK(fabs(lp - g->logprob) <= LOGPROB_TOL(g->n_ids),
          "%s line %d hyp %d: sum log p %.7g, transformers %.7g", what, li, h, g->logprob, lp);
    n_hyps_checked++;
    if (fabs(sc - g->score) > worst_score) worst_score = fabs(sc - g->score);
    if (fabs(lp - g->logprob) > worst_logprob) worst_logprob = fabs(lp - g->logprob);
    if (fin) n_eos++;
    else n_limit++;
}

static void check_setting(at_model *m, const cJSON *root, const char *key, const cJSON *set,
                          const char *what) {
    at_session *s = NULL;
    at_error err = {0};
    CHECK(at_session_new(m, &s, &err) == AT_OK, "%s: session: %s", what, err.message);
    if (!s) return;
    at_options o = at_default_options(m);
    o.beam_size = cJSON_GetObjectItem(set, "beam")->valueint;
    o.n_best = cJSON_GetObjectItem(set, "n_best")->valueint;
    o.length_penalty = (float)cJSON_GetObjectItem(set, "length_penalty")->valuedouble;
    int li = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *src = cJSON_GetObjectItem(c, "src")->valuestring;
        at_result r;
        at_status st = at_translate(s, src, strlen(src), &o, &r, &err);
        CHECK(st == AT_OK, "%s line %d: %s", what, li, err.message);
        if (st != AT_OK) {
            li++;
            continue;
        }
        int32_t want_src[1024];
        int ns = json_ids(cJSON_GetObjectItem(c, "src_ids"), want_src, 1024);
        CHECK(ns == r.n_src && !memcmp(want_src, r.src_ids, (size_t)ns * sizeof *want_src),
              "%s line %d: source ids differ from MarianTokenizer's", what, li);
        int max_len = cJSON_GetObjectItem(c, "max_len")->valueint;
        CHECK(s->sents[0].max_len == max_len, "%s line %d: length limit %d, transformers %d", what,
              li, s->sents[0].max_len, max_len);
        const cJSON *hyps = cJSON_GetObjectItem(c, key);
        CHECK(cJSON_GetArraySize(hyps) == r.n_hyps, "%s line %d: %d hypotheses, transformers %d",
              what, li, r.n_hyps, cJSON_GetArraySize(hyps));
        for (int h = 0; h < r.n_hyps && h < cJSON_GetArraySize(hyps); h++)
            check_hyp(&r.hyps[h], cJSON_GetArrayItem(hyps, h), max_len, what, li, h);
        li++;
    }
    /* the same lines as one batch: identical ids */
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(root, "cases"));
    const char *texts[64];
    size_t lens[64];
    at_result res[64];
    at_status sts[64];
    for (int i = 0; i < n && i < 64; i++) {
        texts[i] = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cases"), i),
                                       "src")->valuestring;
        lens[i] = strlen(texts[i]);
    }
    if (n > 64) n = 64;
    at_status st = at_translate_batch(s, n, texts, lens, &o, res, sts, NULL, &err);
    CHECK(st == AT_OK, "%s batch: %s", what, err.message);
    int same = 0;
    for (int i = 0; st == AT_OK && i < n; i++) {
        const cJSON *hyps = cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cases"), i), key);
        int ok = sts[i] == AT_OK && res[i].n_hyps == cJSON_GetArraySize(hyps);
        for (int h = 0; ok && h < res[i].n_hyps; h++) {
            int32_t ids[1024];
            int k = json_ids(cJSON_GetObjectItem(cJSON_GetArrayItem(hyps, h), "ids"), ids, 1024);
            ok = k == res[i].hyps[h].n_ids && !memcmp(ids, res[i].hyps[h].ids, (size_t)k * sizeof *ids);
        }
        same += ok;
    }
    CHECK(same == n, "%s: batch of %d: %d lines equal transformers'", what, n, same);
    at_session_free(s);
}

static void check_logits(at_model *m, const cJSON *root) {
    at_session *s = NULL;
    at_error err = {0};
    at_session_new(m, &s, &err);
    int V = m->cfg.vocab_size, li = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "logits")) {
        int32_t src[1024], dec[1024];
        int S = json_ids(cJSON_GetObjectItem(c, "src_ids"), src, 1024);
        int T = json_ids(cJSON_GetObjectItem(c, "decoder_ids"), dec, 1024);
        CHECK(session_reserve(s, 1, S, S, T + 1, 1, &err) == AT_OK, "reserve: %s", err.message);
        s->attn_layer = -1;
        tf_encode(s, src, S);
        const cJSON *vals = cJSON_GetObjectItem(c, "values");
        for (int t = 0; t < T; t++) {
            s->step_tokens[0] = dec[t];
            s->hist[t] = 0;
            tf_decode_step(s, 1, t, S);
            const cJSON *row = cJSON_GetArrayItem(vals, t), *x;
            double e = cJSON_GetArraySize(row) == V ? 0 : INFINITY;
            int j = 0;
            cJSON_ArrayForEach(x, row) {
                double d = fabs((double)s->logits[j++] - x->valuedouble);
                if (!(d <= e)) e = d;
            }
            CHECK(e <= LOGIT_TOL, "logits line %d step %d: max abs error %g", li, t, e);
            if (e > worst_logit) worst_logit = e;
        }
        li++;
    }
    at_session_free(s);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: test_hf_marian EXPECTED_JSON MODEL_F32 MODEL_F16\n");
        return 2;
    }
    cJSON *root = load_json(argv[1]);
    CHECK(root != NULL, "cannot read %s", argv[1]);
    if (!root) return check_report("test_hf_marian");
    at_model *f32 = NULL, *f16w = NULL, *f16k = NULL;
    at_error err = {0};
    CHECK(at_model_load(argv[2], &f32, &err) == AT_OK, "%s: %s", argv[2], err.message);
    CHECK(at_model_load_dtype(argv[3], AT_DTYPE_F32, &f16w, &err) == AT_OK, "%s: %s", argv[3],
          err.message);
    CHECK(at_model_load_dtype(argv[3], AT_DTYPE_F16, &f16k, &err) == AT_OK, "%s: %s", argv[3],
          err.message);
    if (f32 && f16w && f16k) {
        const cJSON *set;
        cJSON_ArrayForEach(set, cJSON_GetObjectItem(root, "settings")) {
            char what[128];
            if (cJSON_IsTrue(cJSON_GetObjectItem(set, "f16"))) {
                snprintf(what, sizeof what, "%s (f16 file, widened)", set->string);
                check_setting(f16w, root, set->string, set, what);
                snprintf(what, sizeof what, "%s (f16 file, --dtype f16)", set->string);
                check_setting(f16k, root, set->string, set, what);
            } else {
                snprintf(what, sizeof what, "%s (f32)", set->string);
                check_setting(f32, root, set->string, set, what);
            }
        }
        check_logits(f32, root);
        CHECK(n_eos > 0 && n_limit > 0, "both endings covered: %d eos, %d at the limit", n_eos,
              n_limit);
        printf("test_hf_marian: %d hypotheses compared (%d ended with eos, %d at the limit); "
               "max |score - transformers| %.2g, |sum log p - transformers| %.2g, logits %.2g\n",
               n_hyps_checked, n_eos, n_limit, worst_score, worst_logprob, worst_logit);
    }
    at_model_free(f32);
    at_model_free(f16w);
    at_model_free(f16k);
    cJSON_Delete(root);
    return check_report("test_hf_marian");
}

/* test_attn.c — attention capture and the attention dumps (cmd/attnfmt.c):
 *   - the cross-attention of tiny model A equals the PyTorch reference's
 *     (tests/fixtures/tiny/A/attention.json, scripts/make_attn_fixture.py) within 1e-5,
 *     greedy and beam 4, every head; rows sum to 1; capture never changes the translation;
 *   - attn_select (mean, one head, all) and attn_alignment on hand-made matrices;
 *   - attn_write_json: one line, valid UTF-8 without raw controls, parses with cJSON,
 *     validates against docs/attention.schema.json (a small validator below), shapes
 *     match the tokens, even for invalid UTF-8 in the source;
 *   - attn_write_text against the golden grid tests/fixtures/attn_grid.txt. */
#define _POSIX_C_SOURCE 200809L
#include "attn_translate.h"
#include "check.h"
#include "testfile.h"
#include "../cmd/attnfmt.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-5
#define FIXTURE "tests/fixtures/tiny/A"
#define SCHEMA "docs/attention.schema.json"
#define GOLDEN "tests/fixtures/attn_grid.txt"

/* Everything f received since it was opened (a tmpfile), NUL-terminated. */
static char *slurp(FILE *f, size_t *len) {
    fflush(f);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (!buf) return NULL;
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = 0;
    return buf;
}

/* ---- a small JSON Schema validator: type, const, enum, anyOf, required, properties,
 * items, minItems, minimum, maximum, if/then (const on a property). Enough for
 * docs/attention.schema.json; unknown keywords are ignored. ---------------------- */

static int type_is(const cJSON *x, const char *t) {
    if (!strcmp(t, "string")) return cJSON_IsString(x);
    if (!strcmp(t, "number")) return cJSON_IsNumber(x);
    if (!strcmp(t, "integer")) return cJSON_IsNumber(x) && x->valuedouble == floor(x->valuedouble);
    if (!strcmp(t, "array")) return cJSON_IsArray(x);
    if (!strcmp(t, "object")) return cJSON_IsObject(x);
    if (!strcmp(t, "null")) return cJSON_IsNull(x);
    if (!strcmp(t, "boolean")) return cJSON_IsBool(x);
    return 0;
}

/* Returns NULL if x is valid, else a static description of the first problem. */
static const char *validate(const cJSON *s, const cJSON *x) {
    const cJSON *k;
    if ((k = cJSON_GetObjectItem(s, "type"))) {
        int ok = 0;
        if (cJSON_IsString(k)) ok = type_is(x, k->valuestring);
        const cJSON *t;
        if (cJSON_IsArray(k)) cJSON_ArrayForEach(t, k) ok |= type_is(x, t->valuestring);
        if (!ok) return "wrong type";
    }
    if ((k = cJSON_GetObjectItem(s, "const")) && !cJSON_Compare(k, x, 1)) return "const differs";
    if ((k = cJSON_GetObjectItem(s, "enum"))) {
        int ok = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, k) ok |= cJSON_Compare(e, x, 1);
        if (!ok) return "not in enum";
    }
    if ((k = cJSON_GetObjectItem(s, "anyOf"))) {
        int ok = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, k) ok |= validate(e, x) == NULL;
        if (!ok) return "matches no anyOf";
    }
    if (cJSON_IsNumber(x)) {
        if ((k = cJSON_GetObjectItem(s, "minimum")) && x->valuedouble < k->valuedouble) return "below minimum";
        if ((k = cJSON_GetObjectItem(s, "maximum")) && x->valuedouble > k->valuedouble) return "above maximum";
    }
    if (cJSON_IsArray(x)) {
        if ((k = cJSON_GetObjectItem(s, "minItems")) && cJSON_GetArraySize(x) < k->valueint) return "too few items";
        if ((k = cJSON_GetObjectItem(s, "items"))) {
            const cJSON *e;
            cJSON_ArrayForEach(e, x) {
                const char *why = validate(k, e);
                if (why) return why;
            }
        }
    }
    if (cJSON_IsObject(x)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(s, "required")) if (!cJSON_GetObjectItem(x, e->valuestring)) return "a required field is missing";
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(s, "properties")) {
            const cJSON *v = cJSON_GetObjectItem(x, e->string);
            const char *why = v ? validate(e, v) : NULL;
            if (why) return why;
        }
        const cJSON *cond = cJSON_GetObjectItem(s, "if"), *then = cJSON_GetObjectItem(s, "then");
        if (cond && then) {
            int holds = 1;
            cJSON_ArrayForEach(e, cJSON_GetObjectItem(cond, "properties")) {
                const cJSON *v = cJSON_GetObjectItem(x, e->string);
                holds &= v && validate(e, v) == NULL;
            }
            if (holds) {
                const char *why = validate(then, x);
                if (why) return why;
            }
        }
    }
    return NULL;
}

static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!len || i + len > n) return 0;
        uint32_t v = len == 1 ? c : c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            v = v << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
            (v >= 0xD800 && v <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* Writes v as JSON, checks the line and the schema, returns the parsed object (or NULL). */
static cJSON *json_of(const attn_view *v, const cJSON *schema, const char *what) {
    FILE *f = tmpfile();
    if (!f) return NULL;
    CHECK(attn_write_json(f, v) == 0, "%s: attn_write_json failed", what);
    size_t n = 0;
    char *s = slurp(f, &n);
    fclose(f);
    if (!s) return NULL;
    CHECK(n > 0 && s[n - 1] == '\n' && memchr(s, '\n', n) == s + n - 1, "%s: not one '\\n'-terminated line", what);
    int raw_ctl = 0;
    for (size_t i = 0; i + 1 < n; i++) raw_ctl |= (unsigned char)s[i] < 0x20;
    CHECK(!raw_ctl, "%s: raw control character in JSON", what);
    CHECK(valid_utf8((const unsigned char *)s, n), "%s: JSON is not valid UTF-8", what);
    cJSON *j = cJSON_ParseWithLength(s, n);
    CHECK(j != NULL, "%s: JSON does not parse: %.200s", what, s);
    free(s);
    if (!j) return NULL;
    const char *why = validate(schema, j);
    CHECK(why == NULL, "%s: JSON does not validate against %s: %s", what, SCHEMA, why);
    /* shapes the schema cannot say */
    int ns = cJSON_GetArraySize(cJSON_GetObjectItem(j, "src_tokens"));
    int nt = cJSON_GetArraySize(cJSON_GetObjectItem(j, "tgt_tokens"));
    const cJSON *att = cJSON_GetObjectItem(j, "attention"), *row;
    CHECK(ns == v->n_src && cJSON_GetArraySize(att) == nt, "%s: attention has %d rows for %d target tokens",
          what, cJSON_GetArraySize(att), nt);
    double worst = 0;
    cJSON_ArrayForEach(row, att) {
        CHECK(cJSON_GetArraySize(row) == ns, "%s: attention row of %d for %d source tokens", what,
              cJSON_GetArraySize(row), ns);
        double sum = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, row) sum += x->valuedouble;
        if (fabs(sum - 1) > worst) worst = fabs(sum - 1);
    }
    CHECK(worst <= TOL, "%s: JSON attention rows sum off by %g", what, worst);
    const cJSON *heads = cJSON_GetObjectItem(j, "heads");
    CHECK((heads != NULL) == (v->head == ATTN_HEAD_ALL), "%s: \"heads\" present iff head is all", what);
    if (heads && nt) {
        CHECK(cJSON_GetArraySize(heads) == v->n_heads_shown, "%s: %d head matrices", what, cJSON_GetArraySize(heads));
        const cJSON *m;
        cJSON_ArrayForEach(m, heads) {
            CHECK(cJSON_GetArraySize(m) == nt && cJSON_GetArraySize(cJSON_GetArrayItem(m, 0)) == ns,
                  "%s: head matrix shape", what);
        }
    }
    return j;
}

/* ---- reference attention ----------------------------------------------------------- */

static void check_reference(const cJSON *schema) {
    cJSON *root = load_json(FIXTURE "/attention.json");
    CHECK(root != NULL, "cannot read %s/attention.json (scripts/make_attn_fixture.py)", FIXTURE);
    if (!root) return;
    at_model *m = NULL;
    at_session *s = NULL, *plain = NULL;
    at_error err = {0};
    if (at_model_load(FIXTURE, &m, &err) || at_session_new(m, &s, &err) || at_session_new(m, &plain, &err)) {
        CHECK(0, "load %s: %s", FIXTURE, err.message);
        goto done;
    }
    int layer = cJSON_GetObjectItem(root, "layer")->valueint;
    int heads = cJSON_GetObjectItem(root, "heads")->valueint;
    const cJSON *set;
    cJSON_ArrayForEach(set, cJSON_GetObjectItem(root, "settings")) {
        at_options o = at_default_options(m);
        o.beam_size = cJSON_GetObjectItem(set, "beam")->valueint;
        o.n_best = cJSON_GetObjectItem(set, "n_best")->valueint;
        o.length_penalty = (float)cJSON_GetObjectItem(set, "length_penalty")->valuedouble;
        o.max_length_factor = (float)cJSON_GetObjectItem(set, "max_length_factor")->valuedouble;
        o.max_length_extra = cJSON_GetObjectItem(set, "max_length_extra")->valueint;
        at_options no_attn = o;
        o.attention_layer = layer;
        const cJSON *line;
        cJSON_ArrayForEach(line, cJSON_GetObjectItem(root, "lines")) {
            const char *src = cJSON_GetObjectItem(line, "src")->valuestring;
            int li = cJSON_GetObjectItem(line, "index")->valueint;
            const cJSON *want = cJSON_GetObjectItem(line, set->string);
            at_result r, r0;
            at_status st = at_translate(s, src, strlen(src), &o, &r, &err);
            CHECK(st == AT_OK, "line %d %s: %s", li, set->string, err.message);
            if (st) continue;
            const at_hypothesis *h = &r.hyps[0];
            /* the same translation as without capture */
            st = at_translate(plain, src, strlen(src), &no_attn, &r0, &err);
            CHECK(st == AT_OK && r0.hyps[0].n_ids == h->n_ids &&
                      !memcmp(r0.hyps[0].ids, h->ids, (size_t)h->n_ids * sizeof *h->ids) &&
                      !strcmp(r0.hyps[0].text, h->text) && r0.hyps[0].score == h->score &&
                      r0.hyps[0].attention == NULL && r0.attn_heads == 0,
                  "line %d %s: attention capture changed the translation", li, set->string);
            const cJSON *ids = cJSON_GetObjectItem(want, "ids"), *x;
            int n = 0, same = cJSON_GetArraySize(ids) == h->n_ids;
            cJSON_ArrayForEach(x, ids) same &= n < h->n_ids && h->ids[n++] == x->valueint;
            CHECK(same, "line %d %s: ids differ from the reference", li, set->string);
            const cJSON *att = cJSON_GetObjectItem(want, "attention");
            if (cJSON_IsNull(att)) {
                CHECK(h->attention == NULL && r.attn_heads == 0, "line %d: empty line has attention", li);
                continue;
            }
            int rows = cJSON_GetArraySize(cJSON_GetArrayItem(att, 0));
            CHECK(r.attn_heads == heads && cJSON_GetArraySize(att) == heads, "line %d %s: %d heads", li,
                  set->string, r.attn_heads);
            CHECK(h->attention && h->attn_rows == rows, "line %d %s: %d rows, reference %d", li, set->string,
                  h->attn_rows, rows);
            if (!h->attention || h->attn_rows != rows || r.attn_heads != heads) continue;
            int S = r.n_src;
            double err_max = 0, sum_err = 0;
            for (int hd = 0; hd < heads; hd++) {
                for (int t = 0; t < rows; t++) {
                    const cJSON *ref = cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetArrayItem(att, hd), t), 0);
                    const float *a = h->attention + ((size_t)hd * rows + t) * S;
                    double sum = 0;
                    for (int q = 0; q < S; q++, ref = ref ? ref->next : NULL) {
                        double d = ref ? fabs(a[q] - ref->valuedouble) : INFINITY;
                        if (!(d <= err_max)) err_max = d;
                        sum += a[q];
                    }
                    if (ref) err_max = INFINITY; /* the reference row is longer */
                    if (fabs(sum - 1) > sum_err) sum_err = fabs(sum - 1);
                }
            }
            CHECK(err_max <= TOL, "line %d %s: attention max abs error %g vs the reference", li, set->string, err_max);
            CHECK(sum_err <= TOL, "line %d %s: attention rows sum off by %g", li, set->string, sum_err);

            /* views and JSON of the real thing: mean, one head, all */
            int head_modes[3] = {ATTN_HEAD_MEAN, heads - 1, ATTN_HEAD_ALL};
            for (int k = 0; k < 3; k++) {
                attn_view v;
                CHECK(attn_view_init(&v, m, &r, 0, layer, head_modes[k], li + 1, src) == 0, "view");
                CHECK(v.n_tgt == rows && v.n_src == S && !strcmp(v.src_tokens[S - 1], "</s>") &&
                          (rows == h->n_ids || !strcmp(v.tgt_tokens[rows - 1], "</s>")),
                      "line %d: view tokens", li);
                char what[64];
                snprintf(what, sizeof what, "line %d %s head %d", li, set->string, head_modes[k]);
                cJSON *j = json_of(&v, schema, what);
                if (j) {
                    CHECK(!strcmp(cJSON_GetObjectItem(j, "translation")->valuestring, h->text) &&
                              !strcmp(cJSON_GetObjectItem(j, "source")->valuestring, src) &&
                              cJSON_GetObjectItem(j, "layer")->valueint == layer,
                          "%s: translation/source/layer", what);
                    /* JSON numbers (6 significant digits) against the reference */
                    double e = 0;
                    const cJSON *jrows = cJSON_GetObjectItem(j, "attention");
                    for (int t = 0; t < rows; t++)
                        for (int q = 0; q < S; q++) {
                            double ref = 0;
                            for (int hd = 0; hd < heads; hd++) {
                                if (head_modes[k] >= 0 && hd != head_modes[k]) continue;
                                ref += cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetArrayItem(att, hd), t), q)->valuedouble;
                            }
                            if (head_modes[k] < 0) ref /= heads;
                            double d = fabs(cJSON_GetArrayItem(cJSON_GetArrayItem(jrows, t), q)->valuedouble - ref);
                            if (!(d <= e)) e = d;
                        }
                    CHECK(e <= TOL, "%s: JSON attention vs reference: %g", what, e);
                    cJSON_Delete(j);
                }
                attn_view_release(&v);
            }
        }
    }
done:
    at_session_free(plain);
    at_session_free(s);
    at_model_free(m);
    cJSON_Delete(root);
}

/* ---- hand-made checks -------------------------------------------------------------- */

static void check_select(void) {
    /* 2 heads, 2 rows, 3 source positions */
    const float raw[12] = {0.2f, 0.3f, 0.5f, 1.0f, 0.0f, 0.0f,   /* head 0 */
                           0.6f, 0.1f, 0.3f, 0.0f, 0.5f, 0.5f};  /* head 1 */
    const float mean[6] = {0.4f, 0.2f, 0.4f, 0.5f, 0.25f, 0.25f};
    float out[12];
    attn_select(raw, 2, 2, 3, ATTN_HEAD_MEAN, out);
    double e = 0;
    for (int i = 0; i < 6; i++) e = fmax(e, fabs(out[i] - mean[i]));
    CHECK(e < 1e-7, "attn_select mean: error %g", e);
    attn_select(raw, 2, 2, 3, 1, out);
    CHECK(!memcmp(out, raw + 6, 6 * sizeof *out), "attn_select head 1");
    attn_select(raw, 2, 2, 3, 0, out);
    CHECK(!memcmp(out, raw, 6 * sizeof *out), "attn_select head 0");
    attn_select(raw, 2, 2, 3, ATTN_HEAD_ALL, out);
    CHECK(!memcmp(out, raw, 12 * sizeof *out), "attn_select all");
}

static void check_alignment(void) {
    /* source words: [▁The] [▁cat s] [▁sleep] ; </s>. target words: [▁Les] [▁chat s] [▁dorm ent] ; </s> */
    const char *src[] = {"\xe2\x96\x81The", "\xe2\x96\x81" "cat", "s", "\xe2\x96\x81sleep", "</s>"};
    const char *tgt[] = {"\xe2\x96\x81Les", "\xe2\x96\x81" "chat", "s", "\xe2\x96\x81" "dorm", "ent", "</s>"};
    const float w[6 * 5] = {
        0.70f, 0.10f, 0.10f, 0.05f, 0.05f,  /* ▁Les -> The */
        0.10f, 0.30f, 0.00f, 0.40f, 0.20f,  /* ▁chat: sleep 0.40 alone ... */
        0.00f, 0.10f, 0.40f, 0.10f, 0.40f,  /* s: ... but cat+s over the word = 0.80 > 0.50 */
        0.05f, 0.05f, 0.05f, 0.45f, 0.40f,  /* ▁dorm */
        0.30f, 0.10f, 0.10f, 0.10f, 0.40f,  /* ent: The 0.35 < sleep 0.55 over the word */
        0.00f, 0.00f, 0.00f, 0.00f, 1.00f,  /* </s>: no word */
    };
    attn_view v = {1, "The cats sleep", "Les chats dorment", -0.5f, src, 5, tgt, 6, w, 1, 1, ATTN_HEAD_MEAN};
    char buf[64];
    int n = attn_alignment(&v, buf, sizeof buf);
    CHECK(n == 11 && !strcmp(buf, "0-0 1-1 2-2"), "alignment \"%s\" (%d)", buf, n);
    char small[6];
    n = attn_alignment(&v, small, sizeof small);
    CHECK(n == 11 && !strcmp(small, "0-0 1"), "truncated alignment \"%s\" (%d)", small, n);
    CHECK(attn_alignment(&v, NULL, 0) == 11, "length only");

    /* ties go to the lower source word; a first piece without U+2581 starts a word */
    const char *src2[] = {"a", "b", "\xe2\x96\x81" "c", "</s>"};
    const char *tgt2[] = {"x", "\xe2\x96\x81y"};
    const float w2[2 * 4] = {0.25f, 0.25f, 0.5f, 0.0f,   /* word [a b] 0.5 ties [▁c] 0.5 -> 0 */
                             0.1f, 0.1f, 0.7f, 0.1f};
    attn_view v2 = {2, "ab c", "x y", 0, src2, 4, tgt2, 2, w2, 1, 1, 0};
    n = attn_alignment(&v2, buf, sizeof buf);
    CHECK(!strcmp(buf, "0-0 1-1") && n == 7, "tie / no marker alignment \"%s\"", buf);

    /* all heads shown: the alignment uses their mean */
    const float w3[2 * 2 * 4] = {1, 0, 0, 0, 0, 0, 1, 0,    /* head 0 */
                                 0, 0, 1, 0, 0, 0, 1, 0};   /* head 1: mean row 0 = .5 .0 .5 -> tie -> 0 */
    attn_view v3 = {3, "ab c", "x y", 0, src2, 4, tgt2, 2, w3, 2, 1, ATTN_HEAD_ALL};
    attn_alignment(&v3, buf, sizeof buf);
    CHECK(!strcmp(buf, "0-0 1-1"), "all-heads alignment \"%s\"", buf);

    /* nothing generated: empty */
    attn_view v4 = {4, "", "", 0, src2 + 3, 1, NULL, 0, NULL, 1, 1, ATTN_HEAD_MEAN};
    CHECK(attn_alignment(&v4, buf, sizeof buf) == 0 && buf[0] == 0, "empty alignment");
}

static void check_json_text(const cJSON *schema) {
    /* invalid UTF-8 and control characters in every string field */
    const char *bad = "a\xff" "b\xc3(c\xed\xa0\x80" "d\x01\"\\\t\xe2\x82" "e\xf4\x90\x80\x80\xc0\xaf \xc3\xa9";
    const char *want = "a\xef\xbf\xbd" "b\xef\xbf\xbd(c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                       "d\x01\"\\\t\xef\xbf\xbd\xef\xbf\xbd" "e\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                       "\xef\xbf\xbd\xef\xbf\xbd \xc3\xa9";
    const char *src[] = {"\xe2\x96\x81" "a\xff", "\x02", "</s>"};
    const char *tgt[] = {"\xe2\x96\x81\"q\"", "</s>"};
    const float w[2 * 3] = {0.5f, 0.25f, 0.25f, 0.125f, 0.125f, 0.75f};
    attn_view v = {7, bad, "x\xfe", -1.25f, src, 3, tgt, 2, w, 1, 1, ATTN_HEAD_MEAN};
    cJSON *j = json_of(&v, schema, "invalid UTF-8");
    if (j) {
        const cJSON *s = cJSON_GetObjectItem(j, "source");
        CHECK(cJSON_IsString(s) && !strcmp(s->valuestring, want), "invalid UTF-8 source decoded as \"%s\"",
              cJSON_IsString(s) ? s->valuestring : "?");
        CHECK(!strcmp(cJSON_GetObjectItem(j, "translation")->valuestring, "x\xef\xbf\xbd"), "translation");
        CHECK(!strcmp(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "src_tokens"), 1)->valuestring, "\x02"), "token");
        CHECK(cJSON_GetObjectItem(j, "line")->valueint == 7 && cJSON_GetObjectItem(j, "score")->valuedouble == -1.25,
              "line / score");
        CHECK(!strcmp(cJSON_GetObjectItem(j, "head")->valuestring, "mean"), "head mean");
        CHECK(!strcmp(cJSON_GetObjectItem(j, "alignment")->valuestring, "0-0"), "alignment field");
        cJSON_Delete(j);
    }
    /* one head, and all heads with their mean as "attention" */
    v.head = 1;
    j = json_of(&v, schema, "head 1");
    CHECK(j && cJSON_GetObjectItem(j, "head")->valueint == 1, "head 1 number");
    cJSON_Delete(j);
    const float w2[2 * 2 * 3] = {0.5f, 0.25f, 0.25f, 0.125f, 0.125f, 0.75f, 0.25f, 0.25f, 0.5f, 0.375f, 0.125f, 0.5f};
    attn_view va = {8, "s", "t", 0, src, 3, tgt, 2, w2, 2, 0, ATTN_HEAD_ALL};
    j = json_of(&va, schema, "all heads");
    if (j) {
        const cJSON *a = cJSON_GetObjectItem(j, "attention");
        CHECK(fabs(cJSON_GetArrayItem(cJSON_GetArrayItem(a, 1), 0)->valuedouble - 0.25) < 1e-9 &&
                  fabs(cJSON_GetArrayItem(cJSON_GetArrayItem(a, 0), 2)->valuedouble - 0.375) < 1e-9,
              "all heads: attention is the mean");
        const cJSON *hm = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "heads"), 1);
        CHECK(fabs(cJSON_GetArrayItem(cJSON_GetArrayItem(hm, 1), 0)->valuedouble - 0.375) < 1e-9, "heads[1][1][0]");
        cJSON_Delete(j);
    }
    /* nothing generated (an empty line) */
    attn_view ve = {9, "", "", 0, src + 2, 1, NULL, 0, NULL, 1, 1, ATTN_HEAD_MEAN};
    j = json_of(&ve, schema, "empty line");
    CHECK(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "attention")) == 0, "empty attention");
    cJSON_Delete(j);

    /* a bare view (a line that could not be translated): no tokens at all */
    attn_view vz = {.line = 10, .source = "x\xff", .translation = ""};
    j = json_of(&vz, schema, "bare view");
    CHECK(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "src_tokens")) == 0, "bare view tokens");
    cJSON_Delete(j);

    /* the text writer survives the same input and writes valid UTF-8 */
    FILE *f = tmpfile();
    if (f) {
        CHECK(attn_write_text(f, &v, 80, 1) == 0 && attn_write_text(f, &ve, 80, 0) == 0, "text write");
        size_t n = 0;
        char *s = slurp(f, &n);
        fclose(f);
        CHECK(s && valid_utf8((const unsigned char *)s, n), "text output is not valid UTF-8");
        int ctl = 0;
        for (size_t i = 0; s && i < n; i++) ctl |= (unsigned char)s[i] < 0x20 && s[i] != '\n';
        CHECK(!ctl, "control character in the text output");
        free(s);
    }
}

/* The golden grid: a fixed view with wide (CJK), combining, long and truncated tokens,
 * 0 and 100% cells, written as numbers at 40 columns (two column blocks) and 100, as
 * blocks, and all heads. */
static void check_golden(void) {
    const char *src[] = {"\xe2\x96\x81The", "\xe2\x96\x81" "cat", "s", "\xe2\x96\x81\xe6\x9d\xb1\xe4\xba\xac",
                         "\xe2\x96\x81nai\xcc\x88ve", "\xe2\x96\x81" "extraordinarily", ",", "\xe2\x96\x81ok", "</s>"};
    const char *tgt[] = {"\xe2\x96\x81Les", "\xe2\x96\x81" "chats", "\xe2\x96\x81" "extraordinairement",
                         "\xe2\x96\x81\xe6\x9d\xb1\xe4\xba\xac", "</s>"};
    const float w[5 * 9] = {
        0.62f, 0.10f, 0.004f, 0.05f, 0.03f, 0.02f, 0.006f, 0.07f, 0.10f,
        0.01f, 0.45f, 0.33f,  0.00f, 0.02f, 0.04f, 0.05f,  0.05f, 0.05f,
        0.00f, 0.00f, 0.00f,  0.00f, 0.00f, 1.00f, 0.00f,  0.00f, 0.00f,
        0.02f, 0.02f, 0.02f,  0.81f, 0.03f, 0.03f, 0.03f,  0.02f, 0.02f,
        0.11f, 0.11f, 0.11f,  0.11f, 0.11f, 0.11f, 0.11f,  0.11f, 0.12f,
    };
    attn_view v = {3, "The cats \xe6\x9d\xb1\xe4\xba\xac na\xc3\xafve, extraordinarily ok",
                   "Les chats extraordinairement \xe6\x9d\xb1\xe4\xba\xac", -1.5f, src, 9, tgt, 5, w, 1, 1,
                   ATTN_HEAD_MEAN};
    const char *src2[] = {"\xe2\x96\x81Hi", "!", "</s>"};
    const char *tgt2[] = {"\xe2\x96\x81Salut", "</s>"};
    const float w2[2 * 2 * 3] = {0.9f, 0.05f, 0.05f, 0.3f, 0.3f, 0.4f, 0.1f, 0.6f, 0.3f, 0.02f, 0.18f, 0.8f};
    attn_view va = {4, "Hi!", "Salut", -0.25f, src2, 3, tgt2, 2, w2, 2, 0, ATTN_HEAD_ALL};
    FILE *f = tmpfile();
    if (!f) return;
    attn_write_text(f, &v, 40, 0);
    attn_write_text(f, &v, 100, 0);
    attn_write_text(f, &v, 60, 1);
    attn_write_text(f, &va, 0, 1);
    size_t n = 0, gn = 0;
    char *got = slurp(f, &n);
    fclose(f);
    char *gold = read_file(GOLDEN, &gn);
    CHECK(gold != NULL, "cannot read %s", GOLDEN);
    if (getenv("ATTN_WRITE_GOLDEN")) { /* for inspection: never the test's own answer */
        FILE *o = fopen(getenv("ATTN_WRITE_GOLDEN"), "wb");
        if (o) fwrite(got, 1, n, o), fclose(o);
    }
    if (gold && got) {
        size_t i = 0;
        while (i < n && i < gn && got[i] == gold[i]) i++;
        CHECK(n == gn && i == n, "text grid differs from %s at byte %zu (got %zu bytes, golden %zu)", GOLDEN,
              i, n, gn);
    }
    free(got);
    free(gold);
}

int main(void) {
    cJSON *schema = load_json(SCHEMA);
    CHECK(schema != NULL, "cannot read %s", SCHEMA);
    if (!schema) return check_report("test_attn");
    check_select();
    check_alignment();
    check_json_text(schema);
    check_golden();
    check_reference(schema);
    cJSON_Delete(schema);
    return check_report("test_attn");
}

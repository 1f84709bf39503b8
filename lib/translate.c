/* translate.c — sessions, tokenizer entry points and the beam search
 * (docs/DECODING.md): greedy is beam search with one beam. */
#include "internal.h"
#include "nn.h"
#include "session.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AT_MAX_BEAM 64

/* ---- tokenizer wrappers ------------------------------------------------------- */

at_status at_tokenize(const at_model *m, const char *text, size_t len, int32_t *ids, size_t cap,
                      size_t *n_ids, at_error *err) {
    if (!m || (!text && len) || (!ids && cap) || !n_ids)
        return at_fail(err, AT_ERR_ARG, "at_tokenize: NULL argument");
    return at_vocab_encode(m->vocab, text ? text : "", len, ids, cap, n_ids, err);
}

at_status at_detokenize(const at_model *m, const int32_t *ids, size_t n, char *out, size_t cap,
                        size_t *out_len, at_error *err) {
    if (!m || (!ids && n) || (!out && cap) || !out_len)
        return at_fail(err, AT_ERR_ARG, "at_detokenize: NULL argument");
    return at_vocab_decode(m->vocab, ids, n, out, cap, out_len, err);
}

const char *at_token_text(const at_model *m, int32_t id) {
    return m ? at_vocab_token(m->vocab, id) : NULL;
}

/* ---- sessions ----------------------------------------------------------------- */

at_status at_session_new(const at_model *m, at_session **out, at_error *err) {
    if (!m || !out) return at_fail(err, AT_ERR_ARG, "at_session_new: NULL argument");
    at_session *s = calloc(1, sizeof *s);
    if (!s) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    s->m = m;
    *out = s;
    return AT_OK;
}

#define FREE(p) (free(p), (p) = NULL)

/* Frees everything session_reserve() allocates and zeroes the pointers. */
static void free_buffers(at_session *s) {
    int L = s->m->cfg.decoder_layers;
    FREE(s->x), FREE(s->q), FREE(s->k), FREE(s->v), FREE(s->ctx), FREE(s->tmp), FREE(s->ffn);
    FREE(s->scores), FREE(s->enc_out);
    for (int l = 0; l < L; l++) {
        if (s->cross_k) FREE(s->cross_k[l]);
        if (s->cross_v) FREE(s->cross_v[l]);
        if (s->self_k) FREE(s->self_k[l]);
        if (s->self_v) FREE(s->self_v[l]);
    }
    FREE(s->cross_k), FREE(s->cross_v), FREE(s->self_k), FREE(s->self_v);
    FREE(s->hist), FREE(s->hist_next), FREE(s->iscratch);
    FREE(s->logits), FREE(s->step_tokens), FREE(s->live), FREE(s->next), FREE(s->final);
    FREE(s->hyp_ids), FREE(s->cand), FREE(s->hyps), FREE(s->parent);
    s->cap_S = s->cap_T = s->cap_K = 0;
}

void at_session_free(at_session *s) {
    if (!s) return;
    free_buffers(s);
    free(s->src_ids);
    free(s->text);
    free(s->attn_steps);
    free(s->attn_out);
    free(s);
}

static int imax(int a, int b) { return a > b ? a : b; }
static int round_up(int x, int q) { return (x + q - 1) / q * q; }

at_status session_reserve(at_session *s, int S, int T, int K, at_error *err) {
    if (S <= s->cap_S && T <= s->cap_T && K <= s->cap_K) return AT_OK;
    /* round up so a stream of slowly growing inputs reallocates rarely */
    S = round_up(imax(S, s->cap_S), 64), T = round_up(imax(T, s->cap_T), 64);
    K = imax(K, s->cap_K);
    free_buffers(s);
    const at_config *c = &s->m->cfg;
    size_t d = (size_t)c->d_model, V = (size_t)c->vocab_size, L = (size_t)c->decoder_layers;
    size_t rows = (size_t)imax(S, K), F = (size_t)imax(c->encoder_ffn_dim, c->decoder_ffn_dim);
    size_t sc = (size_t)S * S;
    if ((size_t)K * S > sc) sc = (size_t)K * S;
    if ((size_t)T > sc) sc = (size_t)T;
    int ok = 1;
#define ALLOC(p, n) ok = ok && ((p) = malloc((n) * sizeof *(p))) != NULL
    ALLOC(s->x, rows * d), ALLOC(s->q, rows * d), ALLOC(s->k, rows * d), ALLOC(s->v, rows * d);
    ALLOC(s->ctx, rows * d), ALLOC(s->tmp, rows * d), ALLOC(s->ffn, rows * F);
    ALLOC(s->scores, sc), ALLOC(s->enc_out, (size_t)S * d);
    ok = ok && (s->cross_k = calloc(L, sizeof *s->cross_k)) &&
         (s->cross_v = calloc(L, sizeof *s->cross_v)) && (s->self_k = calloc(L, sizeof *s->self_k)) &&
         (s->self_v = calloc(L, sizeof *s->self_v));
    for (size_t l = 0; ok && l < L; l++) {
        ALLOC(s->cross_k[l], (size_t)S * d), ALLOC(s->cross_v[l], (size_t)S * d);
        ALLOC(s->self_k[l], (size_t)T * K * d), ALLOC(s->self_v[l], (size_t)T * K * d);
    }
    ALLOC(s->hist, (size_t)K * T), ALLOC(s->hist_next, (size_t)K * T);
    ALLOC(s->iscratch, rows), ALLOC(s->logits, (size_t)K * V), ALLOC(s->step_tokens, (size_t)K);
    ALLOC(s->live, (size_t)K), ALLOC(s->next, (size_t)K), ALLOC(s->final, (size_t)3 * K);
    ALLOC(s->hyp_ids, (size_t)5 * K * T), ALLOC(s->cand, (size_t)2 * K), ALLOC(s->hyps, (size_t)K);
    ALLOC(s->parent, (size_t)T * K);
#undef ALLOC
    if (!ok) {
        free_buffers(s);
        return at_fail(err, AT_ERR_NOMEM, "out of memory for a %d-token input, %d steps, beam %d",
                       S, T, K);
    }
    for (int j = 0; j < K; j++) {
        s->live[j].ids = s->hyp_ids + (size_t)j * T;
        s->next[j].ids = s->hyp_ids + (size_t)(K + j) * T;
    }
    for (int j = 0; j < 3 * K; j++) s->final[j].ids = s->hyp_ids + (size_t)(2 * K + j) * T;
    s->cap_S = S, s->cap_T = T, s->cap_K = K;
    return AT_OK;
}

/* ---- options ------------------------------------------------------------------ */

at_options at_default_options(const at_model *m) {
    at_options o;
    o.beam_size = m ? m->cfg.num_beams : 4;
    o.n_best = 1;
    o.length_penalty = m ? m->cfg.length_penalty : 1.0f;
    o.max_length_factor = 2.0f;
    o.max_length_extra = 10;
    o.max_input_tokens = m ? m->cfg.max_positions : 512;
    o.attention_layer = -1;
    return o;
}

static at_status check_options(const at_model *m, const at_options *o, at_error *err) {
    if (o->beam_size < 1 || o->beam_size > AT_MAX_BEAM)
        return at_fail(err, AT_ERR_ARG, "beam size %d is outside [1, %d]", o->beam_size, AT_MAX_BEAM);
    if (o->n_best < 1 || o->n_best > o->beam_size)
        return at_fail(err, AT_ERR_ARG, "n-best %d is outside [1, beam size %d]", o->n_best,
                       o->beam_size);
    if (!(o->max_length_factor >= 0.0f && o->max_length_factor <= 100.0f) ||
        o->max_length_extra < 0 || o->max_length_extra > 100000)
        return at_fail(err, AT_ERR_ARG, "max length factor/extra out of range");
    if (!(fabsf(o->length_penalty) <= 100.0f))
        return at_fail(err, AT_ERR_ARG, "length penalty out of range");
    if (o->attention_layer < -1 || o->attention_layer >= m->cfg.decoder_layers)
        return at_fail(err, AT_ERR_ARG, "attention layer %d is outside [0, %d]",
                       o->attention_layer, m->cfg.decoder_layers - 1);
    if (o->max_input_tokens < 1 || o->max_input_tokens > m->cfg.max_positions)
        return at_fail(err, AT_ERR_ARG, "max input tokens %d is outside [1, %d]",
                       o->max_input_tokens, m->cfg.max_positions);
    return AT_OK;
}

/* ---- beam search ---------------------------------------------------------------- */

/* Keeps cand[0..*n) sorted by total descending, at most cap entries; equal totals
 * keep arrival order (lower beam, then lower id, first). */
static void cand_push(struct cand *cand, int *n, int cap, double total, int b, int v) {
    if (*n == cap && !(total > cand[cap - 1].total)) return;
    int i = *n < cap ? (*n)++ : cap - 1;
    while (i > 0 && cand[i - 1].total < total) {
        cand[i] = cand[i - 1];
        i--;
    }
    cand[i].total = total, cand[i].b = b, cand[i].v = v;
}

static void add_final(at_session *s, const at_hyp_slot *h, int32_t last, double sum, int t,
                      float lp, int row) {
    at_hyp_slot *f = &s->final[s->n_final++];
    f->last_row = row;
    memcpy(f->ids, h->ids, (size_t)h->n * sizeof *f->ids);
    f->n = h->n;
    if (last >= 0) f->ids[f->n++] = last;
    f->sum = sum;
    f->score = sum / pow((double)t, (double)lp);
}

static void beam_search(at_session *s, int S, int max_len, const at_options *o) {
    const at_model *m = s->m;
    const at_config *c = &m->cfg;
    int K = o->beam_size, V = c->vocab_size, T = s->cap_T, eos = c->eos_id;
    float lp = o->length_penalty;
    int n_live = 1;
    s->live[0].n = 0, s->live[0].sum = 0.0;
    s->step_tokens[0] = c->decoder_start_id;
    s->n_final = 0;
    for (int t = 1; t <= max_len; t++) {
        int pos = t - 1;
        int *parent = s->parent + (size_t)pos * s->cap_K;
        for (int j = 0; j < n_live; j++) s->hist[(size_t)j * T + pos] = j;
        tf_decode_step(s, n_live, pos, S);
        int ncand = 0, cap = 2 * K;
        for (int b = 0; b < n_live; b++) {
            float *row = s->logits + (size_t)b * V;
            for (int i = 0; i < m->n_bad_ids; i++) row[m->bad_ids[i]] = -INFINITY;
            double base = s->live[b].sum - nn_logsumexp(row, V);
            for (int v = 0; v < V; v++)
                if (row[v] != -INFINITY) cand_push(s->cand, &ncand, cap, base + row[v], b, v);
        }
        int n_next = 0;
        for (int r = 0; r < ncand && n_next < K; r++) {
            const struct cand *cd = &s->cand[r];
            const at_hyp_slot *h = &s->live[cd->b];
            if (cd->v == eos) {
                if (r < K) add_final(s, h, eos, cd->total, t, lp, cd->b);
                continue;
            }
            at_hyp_slot *nx = &s->next[n_next];
            memcpy(nx->ids, h->ids, (size_t)h->n * sizeof *nx->ids);
            nx->ids[h->n] = cd->v;
            nx->n = h->n + 1;
            nx->sum = cd->total;
            parent[n_next++] = cd->b;
        }
        if (s->n_final >= K || n_next == 0) break;
        if (t == max_len) {
            for (int j = 0; j < n_next; j++)
                add_final(s, &s->next[j], -1, s->next[j].sum, t, lp, parent[j]);
            break;
        }
        /* reorder cache histories by parent; swap live and next */
        for (int j = 0; j < n_next; j++) {
            memcpy(s->hist_next + (size_t)j * T, s->hist + (size_t)parent[j] * T,
                   (size_t)t * sizeof *s->hist);
            s->step_tokens[j] = s->next[j].ids[s->next[j].n - 1];
        }
        int *th = s->hist;
        s->hist = s->hist_next, s->hist_next = th;
        at_hyp_slot *tl = s->live;
        s->live = s->next, s->next = tl;
        n_live = n_next;
    }
    /* stable sort of finals by score, best first (insertion sort: few entries) */
    for (int i = 1; i < s->n_final; i++) {
        at_hyp_slot f = s->final[i];
        int j = i;
        while (j > 0 && s->final[j - 1].score < f.score) {
            s->final[j] = s->final[j - 1];
            j--;
        }
        s->final[j] = f;
    }
}

/* Copies the captured cross-attention of final hypothesis f into out
 * (heads, rows, S), following the beam back-pointers from its last row. */
static void gather_attention(const at_session *s, const at_hyp_slot *f, int S, float *out) {
    int H = s->m->cfg.decoder_heads, rows = f->n, row = f->last_row;
    for (int r = rows - 1; r >= 0; r--) {
        for (int h = 0; h < H; h++)
            memcpy(out + ((size_t)h * rows + r) * S,
                   s->attn_steps + (((size_t)r * s->cap_K + row) * H + h) * s->cap_S,
                   (size_t)S * sizeof *out);
        if (r > 0) row = s->parent[(size_t)(r - 1) * s->cap_K + row];
    }
}

static at_status reserve_attention(at_session *s, int n_best, at_error *err) {
    size_t H = (size_t)s->m->cfg.decoder_heads;
    size_t need = (size_t)s->cap_T * s->cap_K * H * s->cap_S;
    size_t need_out = (size_t)n_best * H * s->cap_T * s->cap_S;
    if (need > s->attn_cap) {
        free(s->attn_steps);
        if (!(s->attn_steps = malloc(need * sizeof *s->attn_steps))) {
            s->attn_cap = 0;
            return at_fail(err, AT_ERR_NOMEM, "out of memory for attention capture");
        }
        s->attn_cap = need;
    }
    if (need_out > s->attn_out_cap) {
        free(s->attn_out);
        if (!(s->attn_out = malloc(need_out * sizeof *s->attn_out))) {
            s->attn_out_cap = 0;
            return at_fail(err, AT_ERR_NOMEM, "out of memory for attention capture");
        }
        s->attn_out_cap = need_out;
    }
    return AT_OK;
}

/* ---- translate ------------------------------------------------------------------- */

static at_status ensure_text(at_session *s, size_t need, at_error *err) {
    if (need <= s->text_cap) return AT_OK;
    size_t cap = need < 256 ? 256 : need * 2;
    char *t = realloc(s->text, cap);
    if (!t) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    s->text = t, s->text_cap = cap;
    return AT_OK;
}

/* Tokenizes into s->src_ids (grown as needed, contents kept across session_reserve)
 * and appends eos. */
static at_status tokenize_source(at_session *s, const char *text, size_t len, const at_options *o,
                                 int *S_out, at_error *err) {
    size_t n = 0;
    at_status st = AT_ERR_TOO_LONG;
    for (int attempt = 0; attempt < 2 && st == AT_ERR_TOO_LONG; attempt++) {
        if (attempt && n + 1 > (size_t)o->max_input_tokens) break;
        size_t want = attempt ? n + 1 : 256;
        if (want > s->src_cap) {
            int32_t *p = realloc(s->src_ids, want * sizeof *p);
            if (!p) return at_fail(err, AT_ERR_NOMEM, "out of memory");
            s->src_ids = p, s->src_cap = want;
        }
        st = at_vocab_encode(s->m->vocab, text, len, s->src_ids, s->src_cap - 1, &n, err);
    }
    if (st && st != AT_ERR_TOO_LONG) return st;
    if (st || n + 1 > (size_t)o->max_input_tokens)
        return at_fail(err, AT_ERR_TOO_LONG,
                       "input is %zu tokens long; the limit is %d (eos included)", n + 1,
                       o->max_input_tokens);
    s->src_ids[n] = s->m->cfg.eos_id;
    *S_out = (int)n + 1;
    return AT_OK;
}

at_status at_translate(at_session *s, const char *text, size_t len, const at_options *opts,
                       at_result *res, at_error *err) {
    if (!s || (!text && len) || !res) return at_fail(err, AT_ERR_ARG, "at_translate: NULL argument");
    const at_model *m = s->m;
    const at_config *c = &m->cfg;
    at_options o = opts ? *opts : at_default_options(m);
    at_status st = check_options(m, &o, err);
    if (st) return st;
    int S = 0;
    if ((st = tokenize_source(s, text ? text : "", len, &o, &S, err))) return st;
    s->n_src = S;

    int n_out = 0;
    if ((st = session_reserve(s, S, 1, 1, err))) return st;
    if (S > 1) {
        double ml = floor((double)o.max_length_factor * S) + o.max_length_extra;
        int max_len = (int)fmin(ml, fmin((double)c->max_length - 1, (double)c->max_positions - 1));
        if (max_len < 1) max_len = 1;
        if ((st = session_reserve(s, S, max_len + 1, o.beam_size, err))) return st;
        s->attn_layer = o.attention_layer;
        if (o.attention_layer >= 0 && (st = reserve_attention(s, o.n_best, err))) return st;
        tf_encode(s, s->src_ids, S);
        beam_search(s, S, max_len, &o);
        n_out = s->n_final < o.n_best ? s->n_final : o.n_best;
    } else {
        /* an empty line needs no model: one empty hypothesis */
        s->final[0].n = 0, s->final[0].sum = 0.0, s->final[0].score = 0.0;
        n_out = 1;
        s->attn_layer = -1;
    }
    /* detokenize into one buffer of NUL-separated strings */
    size_t used = 0, off[AT_MAX_BEAM];
    for (int i = 0; i < n_out; i++) {
        at_hyp_slot *f = &s->final[i];
        int n = f->n > 0 && f->ids[f->n - 1] == c->eos_id ? f->n - 1 : f->n;
        size_t need = 0;
        if ((st = ensure_text(s, used + 256, err))) return st;
        st = at_vocab_decode(m->vocab, f->ids, (size_t)n, s->text + used, s->text_cap - used, &need,
                             err);
        if (st == AT_ERR_TOO_LONG) {
            if ((st = ensure_text(s, used + need + 1, err))) return st;
            st = at_vocab_decode(m->vocab, f->ids, (size_t)n, s->text + used, s->text_cap - used,
                                 &need, err);
        }
        if (st) return st;
        off[i] = used;
        used += need + 1;
        s->hyps[i].ids = f->ids;
        s->hyps[i].n_ids = n;
        s->hyps[i].score = (float)f->score;
        s->hyps[i].logprob = (float)f->sum;
        s->hyps[i].attention = NULL;
        s->hyps[i].attn_rows = 0;
        if (s->attn_layer >= 0) {
            float *a = s->attn_out + (size_t)i * c->decoder_heads * s->cap_T * s->cap_S;
            gather_attention(s, f, S, a);
            s->hyps[i].attention = a;
            s->hyps[i].attn_rows = f->n;
        }
    }
    for (int i = 0; i < n_out; i++) s->hyps[i].text = s->text + off[i];
    res->src_ids = s->src_ids;
    res->n_src = S;
    res->hyps = s->hyps;
    res->n_hyps = n_out;
    res->attn_heads = s->attn_layer >= 0 ? c->decoder_heads : 0;
    return AT_OK;
}

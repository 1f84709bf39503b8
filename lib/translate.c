/* translate.c — sessions, tokenizer entry points and the beam search
 * (docs/DECODING.md): greedy is beam search with one beam. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, mremap */
#include "internal.h"
#include "nn.h"
#include "pool.h"
#include "session.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

at_status at_session_new_opts(const at_model *m, const at_session_options *opts, at_session **out,
                              at_error *err) {
    if (!m || !out) return at_fail(err, AT_ERR_ARG, "at_session_new: NULL argument");
    int threads = opts ? opts->threads : 1;
    if (threads > AT_SESSION_THREADS_MAX)
        return at_fail(err, AT_ERR_ARG, "session threads %d is above %d", threads,
                       AT_SESSION_THREADS_MAX);
    at_session *s = calloc(1, sizeof *s);
    if (!s) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    s->m = m;
    s->pool = pool_new(threads); /* NULL for one thread, or when no helper could start */
    s->gs.pool = s->pool;
    s->gs.threads = pool_threads(s->pool);
    const char *env = getenv("ATTN_TRANSLATE_SPLIT_NS");
    s->gs.split_ns = env && *env ? atof(env) : GEMM_SPLIT_NS;
    *out = s;
    return AT_OK;
}

at_status at_session_new(const at_model *m, at_session **out, at_error *err) {
    return at_session_new_opts(m, NULL, out, err);
}

int at_session_set_threads(at_session *s, int threads) {
    if (!s) return 0;
    int most = pool_threads(s->pool);
    s->gs.threads = threads < 1 ? 1 : threads > most ? most : threads;
    return s->gs.threads;
}

#define FREE(p) (free(p), (p) = NULL)

/* The session's buffers are mapped one by one, not taken from malloc's heap: when they
 * grow, the old ones go back to the system at once. From the heap, freed buffers stayed
 * resident (the heap cannot shrink below live blocks): a 500-line int8 beam-4 run of
 * the bench model peaked at 530-620 MB depending on the order of its reallocations, and
 * at 488 MB with every buffer mapped. Under AddressSanitizer they come from malloc, so
 * that ASan keeps checking their bounds. The size lives in front of the block. */
#if defined(__SANITIZE_ADDRESS__)
#define ROOM_MMAP 0
#else
#define ROOM_MMAP 1
#endif
#define ROOM_HEAD 64 /* keeps the block 64-byte aligned */
/* ThreadSanitizer does not intercept mremap: the shadow of a range that mremap vacates
 * keeps its old owner's accesses, and whatever is mapped there next by another thread
 * looks like a race with them. Under TSan a block grows by a new mapping instead. */
#if defined(__SANITIZE_THREAD__)
#define ROOM_MREMAP 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ROOM_MREMAP 0
#endif
#endif
#ifndef ROOM_MREMAP
#define ROOM_MREMAP ROOM_MMAP
#endif

static void *room_alloc(size_t bytes) {
    if (bytes > SIZE_MAX - ROOM_HEAD) return NULL;
    size_t total = bytes + ROOM_HEAD;
#if ROOM_MMAP
    char *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#else
    char *p = malloc(total);
    if (!p) return NULL;
#endif
    memcpy(p, &total, sizeof total);
    return p + ROOM_HEAD;
}

static void room_free(void *block) {
    if (!block) return;
    char *p = (char *)block - ROOM_HEAD;
#if ROOM_MMAP
    size_t total;
    memcpy(&total, p, sizeof total);
    munmap(p, total);
#else
    free(p);
#endif
}

/* A block of at least `bytes`: `block` itself, grown, or a new one. A mapped block
 * grows by mremap, which keeps the pages already touched: the session's buffers then
 * fault each page in once, however often they grow (each growth used to fault the whole
 * session in anew: 19k of 22k page faults in a 448-line run of the shipped model, at
 * several microseconds each in a virtual machine). The old contents mean nothing to the
 * new shapes: every buffer is written before it is read. On failure, `block` is freed
 * and the result is NULL. */
static void *room_grow(void *block, size_t bytes) {
    if (bytes > SIZE_MAX - ROOM_HEAD) {
        room_free(block);
        return NULL;
    }
    size_t total = bytes + ROOM_HEAD, had = 0;
    char *p = block ? (char *)block - ROOM_HEAD : NULL;
    if (p) memcpy(&had, p, sizeof had);
    if (p && had >= total) return block;
#if ROOM_MREMAP
    if (p) {
        char *q = mremap(p, had, total, MREMAP_MAYMOVE);
        if (q == MAP_FAILED) {
            room_free(block);
            return NULL;
        }
        memcpy(q, &total, sizeof total);
        return q + ROOM_HEAD;
    }
#endif
    room_free(block);
    return room_alloc(bytes);
}

#define RFREE(p) (room_free(p), (p) = NULL)

/* Frees everything session_reserve() allocates and zeroes the pointers. */
static void free_buffers(at_session *s) {
    int L = s->m->cfg.decoder_layers;
    RFREE(s->x), RFREE(s->q), RFREE(s->k), RFREE(s->v), RFREE(s->ctx), RFREE(s->tmp), RFREE(s->ffn);
    RFREE(s->scores), RFREE(s->enc_out), RFREE(s->gs.xq), RFREE(s->gs.xs), RFREE(s->gs.wide);
    for (int l = 0; l < L; l++) {
        if (s->cross_k) RFREE(s->cross_k[l]);
        if (s->cross_v) RFREE(s->cross_v[l]);
        if (s->self_k) RFREE(s->self_k[l]);
        if (s->self_v) RFREE(s->self_v[l]);
    }
    FREE(s->cross_k), FREE(s->cross_v), FREE(s->self_k), FREE(s->self_v);
    RFREE(s->hist), RFREE(s->hist_next), RFREE(s->parent), RFREE(s->iscratch), RFREE(s->kv_off);
    RFREE(s->logits), RFREE(s->step_tokens), RFREE(s->row_slot), RFREE(s->sents), RFREE(s->active);
    RFREE(s->slots), RFREE(s->hyp_ids), RFREE(s->cand), RFREE(s->hyps);
    s->cap_B = s->cap_K = s->cap_T = s->cap_src = s->cap_S = 0;
}

void at_session_free(at_session *s) {
    if (!s) return;
    pool_free(s->pool);
    free_buffers(s);
    free(s->src_ids);
    free(s->text);
    free(s->attn_steps);
    free(s->attn_out);
    free(s);
}

static int imax(int a, int b) { return a > b ? a : b; }
/* 2n, but at most limit, and at least n */
static int twice(int n, int limit) { return 2 * (long long)n >= limit ? imax(n, limit) : 2 * n; }
static int round_up(int x, int q) { return (x + q - 1) / q * q; }

static at_status reserve_src(at_session *s, size_t n, at_error *err) {
    if (n <= s->src_cap) return AT_OK;
    size_t cap = n < 256 ? 256 : n + n / 2;
    int32_t *p = realloc(s->src_ids, cap * sizeof *p);
    if (!p) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    s->src_ids = p, s->src_cap = cap;
    return AT_OK;
}

at_status session_reserve(at_session *s, int B, int src, int S, int T, int K, at_error *err) {
    at_status st = reserve_src(s, (size_t)src, err);
    if (st) return st;
    if (B <= s->cap_B && src <= s->cap_src && S <= s->cap_S && T <= s->cap_T && K <= s->cap_K)
        return AT_OK;
    /* When a length must grow, every length gets twice what this batch needs (S and T up to
     * the model's limit): a stream of growing batches then reallocates once or twice instead
     * of every other batch, and each reallocation faults every page of the session in anew
     * (a third of an int8 beam-4 run's page faults at batch 32 came from five of them). The
     * room is address space: pages are touched as they are used. */
    int lim = s->m->cfg.max_positions + 1;
    B = imax(B, s->cap_B), K = imax(K, s->cap_K);
    src = round_up(imax(twice(src, INT_MAX / 2), s->cap_src), 64);
    S = round_up(imax(twice(S, lim), s->cap_S), 16);
    T = round_up(imax(twice(T, lim), s->cap_T), 32);
    const at_config *c = &s->m->cfg;
    size_t d = (size_t)c->d_model, V = (size_t)c->vocab_size, L = (size_t)c->decoder_layers;
    size_t BK = (size_t)B * K, rows = (size_t)imax(src, (int)BK);
    size_t F = (size_t)imax(c->encoder_ffn_dim, c->decoder_ffn_dim);
    size_t sc = (size_t)S * S;
    if ((size_t)K * S > sc) sc = (size_t)K * S;
    /* the decoder's attention keeps every head's weights of a row (nn_attend_heads) */
    if ((size_t)c->decoder_heads * T > sc) sc = (size_t)c->decoder_heads * T;
    if ((size_t)c->decoder_heads * S > sc) sc = (size_t)c->decoder_heads * S;
    if ((size_t)c->encoder_heads * S > sc) sc = (size_t)c->encoder_heads * S; /* S <= 8 rows */
    int ok = 1;
#define ALLOC(p, n) ok = ok && ((p) = room_grow((p), (n) * sizeof *(p))) != NULL
    ALLOC(s->x, rows * d), ALLOC(s->q, rows * d), ALLOC(s->k, rows * d), ALLOC(s->v, rows * d);
    ALLOC(s->ctx, rows * d), ALLOC(s->tmp, rows * d);
    ALLOC(s->ffn, (rows < SESSION_FFN_ROWS ? rows : SESSION_FFN_ROWS) * F);
    ALLOC(s->scores, sc), ALLOC(s->enc_out, (size_t)src * d);
    size_t gq, gx, gw; /* the widest product input is F (fc2) */
    gemm_scratch_size((int)rows, (int)imax((int)F, (int)d), &gq, &gx, &gw);
    if (s->m->wtype != AT_W_F16 || s->m->isa >= GEMM_AVX2) gw = 1; /* only f16 without AVX2 widens */
    ALLOC(s->gs.xq, gq), ALLOC(s->gs.xs, gx), ALLOC(s->gs.wide, gw);
    if (!s->cross_k)
        ok = ok && (s->cross_k = calloc(L, sizeof *s->cross_k)) &&
             (s->cross_v = calloc(L, sizeof *s->cross_v)) &&
             (s->self_k = calloc(L, sizeof *s->self_k)) && (s->self_v = calloc(L, sizeof *s->self_v));
    for (size_t l = 0; ok && l < L; l++) {
        ALLOC(s->cross_k[l], (size_t)src * d), ALLOC(s->cross_v[l], (size_t)src * d);
        ALLOC(s->self_k[l], (size_t)T * BK * d), ALLOC(s->self_v[l], (size_t)T * BK * d);
    }
    ALLOC(s->hist, BK * T), ALLOC(s->hist_next, BK * T), ALLOC(s->parent, (size_t)T * BK);
    ALLOC(s->iscratch, rows), ALLOC(s->kv_off, (size_t)T), ALLOC(s->logits, BK * V), ALLOC(s->step_tokens, BK);
    ALLOC(s->row_slot, BK), ALLOC(s->sents, (size_t)B), ALLOC(s->active, (size_t)B);
    ALLOC(s->slots, BK * 5), ALLOC(s->hyp_ids, BK * 5 * T), ALLOC(s->cand, (size_t)2 * K);
    ALLOC(s->hyps, BK);
#undef ALLOC
    if (!ok) {
        free_buffers(s);
        return at_fail(err, AT_ERR_NOMEM,
                       "out of memory for %d sentences (%d tokens), %d steps, beam %d", B, src, T, K);
    }
    for (size_t i = 0; i < BK * 5; i++) s->slots[i].ids = s->hyp_ids + i * T;
    for (int b = 0; b < B; b++) {
        at_hyp_slot *base = s->slots + (size_t)b * 5 * K;
        s->sents[b].live = base, s->sents[b].next = base + K, s->sents[b].final = base + 2 * K;
    }
    s->cap_B = B, s->cap_K = K, s->cap_T = T, s->cap_src = src, s->cap_S = S;
    return AT_OK;
}

/* ---- options ------------------------------------------------------------------ */

at_options at_default_options(const at_model *m) {
    at_options o;
    /* the loader accepts generation.num_beams up to 256; beam search takes at most
     * AT_MAX_BEAM, so a model asking for more would fail every line by default */
    o.beam_size = m ? (m->cfg.num_beams < AT_MAX_BEAM ? m->cfg.num_beams : AT_MAX_BEAM) : 4;
    o.n_best = 1;
    o.length_penalty = m ? m->cfg.length_penalty : 1.0f;
    o.max_length_factor = 2.0f;
    o.max_length_extra = 10;
    o.max_input_tokens = m ? m->cfg.max_positions : 512;
    o.attention_layer = -1;
    o.no_scores = 0;
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

static void add_final(at_sent *st, const at_hyp_slot *h, int32_t last, double sum, int t,
                      float lp, int row) {
    at_hyp_slot *f = &st->final[st->n_final++];
    f->last_row = row;
    memcpy(f->ids, h->ids, (size_t)h->n * sizeof *f->ids);
    f->n = h->n;
    if (last >= 0) f->ids[f->n++] = last;
    f->sum = sum;
    f->score = sum / pow((double)t, (double)lp);
}

/* One step of docs/DECODING.md for sentence st, whose live beams' logits start
 * at row st->row0. Sets st->done when the sentence is finished. */
static void beam_step(at_session *s, at_sent *st, int t, const at_options *o) {
    const at_model *m = s->m;
    int K = o->beam_size, V = m->cfg.vocab_size, eos = m->cfg.eos_id, T = s->cap_T;
    int BK = s->cap_B * s->cap_K;
    float lp = o->length_penalty;
    int *parent = s->parent + (size_t)(t - 1) * BK + st->slot0;
    int ncand = 0, cap = 2 * K, argmax = K == 1 && o->no_scores;
    if (argmax) { /* greedy, unscored: the argmax, total NaN */
        float *row = s->logits + (size_t)st->row0 * V;
        for (int i = 0; i < m->n_bad_ids; i++) row[m->bad_ids[i]] = -INFINITY;
        int v = nn_argmax(row, V, m->isa);
        if (v < 0) { /* as below: no finite log-sum-exp */
            st->n_final = 0, st->done = 1;
            return;
        }
        s->cand[0].total = NAN, s->cand[0].b = 0, s->cand[0].v = v;
        ncand = 1;
    }
    for (int b = 0; !argmax && b < st->n_live; b++) {
        float *row = s->logits + (size_t)(st->row0 + b) * V;
        for (int i = 0; i < m->n_bad_ids; i++) row[m->bad_ids[i]] = -INFINITY;
        double lse = nn_logsumexp(row, V, s->m->isa);
        if (!isfinite(lse)) {
            /* NaN or infinite logits (finite weights whose products overflow float):
             * no hypothesis; at_translate_batch reports the line as failed */
            st->n_final = 0, st->done = 1;
            return;
        }
        double base = st->live[b].sum - lse;
        /* only logits that can still enter the top 2K reach cand_push, which decides
         * exactly in double; the float threshold errs on the side of letting one in */
        float floor_logit = -INFINITY;
        for (int v = 0; (v = nn_next_above(row, v, V, floor_logit, m->isa)) < V; v++) {
            cand_push(s->cand, &ncand, cap, base + row[v], b, v);
            if (ncand == cap)
                floor_logit = nextafterf((float)(s->cand[cap - 1].total - base), -INFINITY);
        }
    }
    int n_next = 0;
    for (int r = 0; r < ncand && n_next < K; r++) {
        const struct cand *cd = &s->cand[r];
        const at_hyp_slot *h = &st->live[cd->b];
        if (cd->v == eos) {
            if (r < K) add_final(st, h, eos, cd->total, t, lp, cd->b);
            continue;
        }
        at_hyp_slot *nx = &st->next[n_next];
        memcpy(nx->ids, h->ids, (size_t)h->n * sizeof *nx->ids);
        nx->ids[h->n] = cd->v;
        nx->n = h->n + 1;
        nx->sum = cd->total;
        parent[n_next++] = cd->b;
    }
    if (st->n_final >= K || n_next == 0) {
        st->done = 1;
    } else if (t == st->max_len) {
        for (int j = 0; j < n_next; j++)
            add_final(st, &st->next[j], -1, st->next[j].sum, t, lp, parent[j]);
        st->done = 1;
    } else {
        /* follow the parents: cache histories of the surviving beams */
        for (int j = 0; j < n_next; j++)
            memcpy(s->hist_next + (size_t)(st->slot0 + j) * T,
                   s->hist + (size_t)(st->slot0 + parent[j]) * T, (size_t)t * sizeof *s->hist);
        at_hyp_slot *tl = st->live;
        st->live = st->next, st->next = tl;
        st->n_live = n_next;
    }
    if (st->done) {
        /* stable sort of finals by score, best first (insertion sort: few entries) */
        for (int i = 1; i < st->n_final; i++) {
            at_hyp_slot f = st->final[i];
            int j = i;
            while (j > 0 && st->final[j - 1].score < f.score) {
                st->final[j] = st->final[j - 1];
                j--;
            }
            st->final[j] = f;
        }
    }
}

/* Beam search over every sentence of the batch in lockstep; finished sentences
 * leave the batch. */
static void beam_search(at_session *s, const at_options *o) {
    const at_config *c = &s->m->cfg;
    int T = s->cap_T, max_steps = 0;
    s->n_active = 0;
    for (int b = 0; b < s->n_sents; b++) {
        at_sent *st = &s->sents[b];
        st->n_live = 1, st->n_final = 0, st->done = 0;
        st->live[0].n = 0, st->live[0].sum = 0.0;
        s->active[s->n_active++] = b;
        if (st->max_len > max_steps) max_steps = st->max_len;
    }
    for (int t = 1; t <= max_steps && s->n_active > 0; t++) {
        int pos = t - 1, rows = 0;
        for (int a = 0; a < s->n_active; a++) {
            at_sent *st = &s->sents[s->active[a]];
            st->row0 = rows;
            for (int j = 0; j < st->n_live; j++, rows++) {
                int slot = st->slot0 + j;
                s->row_slot[rows] = slot;
                s->hist[(size_t)slot * T + pos] = rows; /* its K/V: cache row [pos][rows] */
                s->step_tokens[rows] = t == 1 ? c->decoder_start_id : st->live[j].ids[t - 2];
            }
        }
        tf_decode_step_batch(s, rows, pos);
        int still = 0;
        for (int a = 0; a < s->n_active; a++) {
            at_sent *st = &s->sents[s->active[a]];
            beam_step(s, st, t, o);
            if (!st->done) s->active[still++] = s->active[a];
        }
        s->n_active = still;
        int *th = s->hist;
        s->hist = s->hist_next, s->hist_next = th;
    }
}

/* Copies the captured cross-attention of final hypothesis f of sentence st into
 * out (heads, rows, S), following the beam back-pointers from its last row. */
static void gather_attention(const at_session *s, const at_sent *st, const at_hyp_slot *f,
                             float *out) {
    int H = s->m->cfg.decoder_heads, rows = f->n, beam = f->last_row, S = st->S;
    int BK = s->cap_B * s->cap_K;
    for (int r = rows - 1; r >= 0; r--) {
        for (int h = 0; h < H; h++)
            memcpy(out + ((size_t)h * rows + r) * S,
                   s->attn_steps + (((size_t)r * BK + st->slot0 + beam) * H + h) * s->cap_S,
                   (size_t)S * sizeof *out);
        if (r > 0) beam = s->parent[(size_t)(r - 1) * BK + st->slot0 + beam];
    }
}

/* Grows a float buffer to `need` elements (contents not kept). */
static int grow_floats(float **p, size_t *cap, size_t need) {
    if (need <= *cap) return 1;
    free(*p);
    *p = malloc(need * sizeof **p);
    *cap = *p ? need : 0;
    return *p != NULL;
}

static at_status reserve_attention(at_session *s, int n_best, at_error *err) {
    size_t H = (size_t)s->m->cfg.decoder_heads, BK = (size_t)s->cap_B * s->cap_K;
    if (!grow_floats(&s->attn_steps, &s->attn_cap, (size_t)s->cap_T * BK * H * s->cap_S) ||
        !grow_floats(&s->attn_out, &s->attn_out_cap,
                     (size_t)s->cap_B * n_best * H * s->cap_T * s->cap_S))
        return at_fail(err, AT_ERR_NOMEM, "out of memory for attention capture");
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

/* Tokenizes one line into s->src_ids at `off` (growing it) and appends eos;
 * *S_out gets the length with eos. */
static at_status tokenize_line(at_session *s, const char *text, size_t len, const at_options *o,
                               size_t off, int *S_out, at_error *err) {
    size_t n = 0;
    at_status st = reserve_src(s, off + 256, err);
    if (!st) st = at_vocab_encode(s->m->vocab, text, len, s->src_ids + off, s->src_cap - off - 1,
                                  &n, err);
    if (st == AT_ERR_TOO_LONG && n + 1 <= (size_t)o->max_input_tokens) {
        if ((st = reserve_src(s, off + n + 1, err))) return st;
        st = at_vocab_encode(s->m->vocab, text, len, s->src_ids + off, s->src_cap - off - 1, &n, err);
    }
    if (st && st != AT_ERR_TOO_LONG) return st;
    if (st || n + 1 > (size_t)o->max_input_tokens)
        return at_fail(err, AT_ERR_TOO_LONG,
                       "input is %zu tokens long; the limit is %d (eos included)", n + 1,
                       o->max_input_tokens);
    s->src_ids[off + n] = s->m->cfg.eos_id;
    *S_out = (int)n + 1;
    return AT_OK;
}

/* docs/DECODING.md: min(floor(factor * S) + extra, max_length - 1, max_positions - 1), >= 1 */
static int max_target_len(const at_config *c, const at_options *o, int S) {
    double ml = floor((double)o->max_length_factor * S) + o->max_length_extra;
    int len = (int)fmin(ml, fmin((double)c->max_length - 1, (double)c->max_positions - 1));
    return len < 1 ? 1 : len;
}

at_status at_translate_batch(at_session *s, int n, const char *const *texts, const size_t *lens,
                             const at_options *opts, at_result *results, at_status *statuses,
                             at_error *errors, at_error *err) {
    if (!s || n < 0 || (n && (!texts || !lens || !results || !statuses)))
        return at_fail(err, AT_ERR_ARG, "at_translate_batch: NULL argument");
    const at_model *m = s->m;
    const at_config *c = &m->cfg;
    at_options o = opts ? *opts : at_default_options(m);
    at_status st = check_options(m, &o, err);
    if (st) return st;
    if (n == 0) return AT_OK;
    if ((st = session_reserve(s, n, 1, 1, 1, o.beam_size, err))) return st;

    /* tokenize every line; lines that fail or are empty take no part in the batch.
     * sents[i] describes line i for now; the batch is compacted below. */
    int *line_of; /* batch index -> line: s->iscratch, which holds >= n ints */
    size_t off = 0;
    int B = 0, maxS = 1, maxT = 1;
    int *S_of = malloc((size_t)n * sizeof *S_of);
    size_t *off_of = malloc((size_t)n * sizeof *off_of);
    if (!S_of || !off_of) {
        free(S_of), free(off_of);
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        at_error *e = errors ? &errors[i] : NULL;
        S_of[i] = 0;
        statuses[i] = tokenize_line(s, texts[i] ? texts[i] : "", texts[i] ? lens[i] : 0, &o, off,
                                    &S_of[i], e);
        if (statuses[i] || S_of[i] <= 1) continue; /* failed, or empty: no model run */
        off_of[i] = off;
        off += (size_t)S_of[i];
        int max_len = max_target_len(c, &o, S_of[i]);
        if (S_of[i] > maxS) maxS = S_of[i];
        if (max_len + 1 > maxT) maxT = max_len + 1;
        B++;
    }
    st = session_reserve(s, n, (int)off, maxS, maxT, o.beam_size, err);
    if (!st) {
        B = 0;
        line_of = s->iscratch;
        for (int i = 0; i < n; i++) {
            if (statuses[i] || S_of[i] <= 1) continue;
            at_sent *se = &s->sents[B];
            se->S = S_of[i];
            se->src_off = (int)off_of[i];
            se->slot0 = B * s->cap_K;
            se->max_len = max_target_len(c, &o, se->S);
            line_of[B++] = i;
        }
        s->n_sents = B;
        s->attn_layer = o.attention_layer;
        if (B && o.attention_layer >= 0) st = reserve_attention(s, o.n_best, err);
    }
    free(off_of);
    if (st) {
        free(S_of);
        return st;
    }
    /* line -> batch index, for the results below (line_of lives in iscratch, which the
     * decoder overwrites) */
    int *batch_of = malloc((size_t)n * sizeof *batch_of);
    if (!batch_of) {
        free(S_of);
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) batch_of[i] = -1;
    for (int b = 0; b < B; b++) batch_of[line_of[b]] = b;

    if (B > 0) {
        tf_encode_batch(s);
        beam_search(s, &o);
    }

    /* results: detokenize every returned hypothesis into one text buffer; pointers
     * into it are set once it has stopped growing */
    size_t used = 0;
    int H = c->decoder_heads, n_empty = 0;
    for (int i = 0; i < n && !st; i++) {
        at_result *r = &results[i];
        memset(r, 0, sizeof *r);
        if (statuses[i]) continue;
        int b = batch_of[i];
        at_hypothesis *hy;
        r->n_src = S_of[i];
        if (b < 0) { /* an empty line needs no model: one empty hypothesis */
            hy = s->hyps + (size_t)(B + n_empty++) * s->cap_K;
            memset(hy, 0, sizeof *hy);
            s->eos_only = c->eos_id;
            r->src_ids = &s->eos_only;
            hy->ids = &s->eos_only; /* n_ids = 0 */
            r->n_src = 1;
            r->hyps = hy;
            r->n_hyps = 1;
            hy->text = (const char *)(uintptr_t)used;
            if (!(st = ensure_text(s, used + 1, err))) s->text[used++] = '\0';
            continue;
        }
        const at_sent *se = &s->sents[b];
        if (se->n_final == 0) { /* beam_step met non-finite scores */
            statuses[i] = at_fail(errors ? &errors[i] : NULL, AT_ERR_FORMAT,
                                  "the model computed non-finite scores (NaN or infinity) for "
                                  "this line: its weights overflow float32");
            continue;
        }
        hy = s->hyps + (size_t)b * s->cap_K;
        r->src_ids = s->src_ids + se->src_off;
        r->hyps = hy;
        r->n_hyps = se->n_final < o.n_best ? se->n_final : o.n_best;
        r->attn_heads = o.attention_layer >= 0 ? H : 0;
        for (int k = 0; k < r->n_hyps && !st; k++) {
            const at_hyp_slot *f = &se->final[k];
            int nid = f->n > 0 && f->ids[f->n - 1] == c->eos_id ? f->n - 1 : f->n;
            size_t need = 0;
            if ((st = ensure_text(s, used + 256, err))) break;
            st = at_vocab_decode(m->vocab, f->ids, (size_t)nid, s->text + used, s->text_cap - used,
                                 &need, err);
            if (st == AT_ERR_TOO_LONG) {
                if ((st = ensure_text(s, used + need + 1, err))) break;
                st = at_vocab_decode(m->vocab, f->ids, (size_t)nid, s->text + used,
                                     s->text_cap - used, &need, err);
            }
            if (st) break;
            hy[k].text = (const char *)(uintptr_t)used; /* an offset until the end */
            used += need + 1;
            hy[k].ids = f->ids;
            hy[k].n_ids = nid;
            hy[k].score = (float)f->score;
            hy[k].logprob = (float)f->sum;
            hy[k].length = f->n;
            hy[k].attention = NULL;
            hy[k].attn_rows = 0;
            if (o.attention_layer >= 0) {
                float *a = s->attn_out + ((size_t)b * o.n_best + k) * H * s->cap_T * s->cap_S;
                gather_attention(s, se, f, a);
                hy[k].attention = a;
                hy[k].attn_rows = f->n;
            }
        }
    }
    for (int i = 0; i < n && !st; i++)
        if (!statuses[i])
            for (int k = 0; k < results[i].n_hyps; k++) {
                at_hypothesis *hy = (at_hypothesis *)&results[i].hyps[k];
                hy->text = s->text + (uintptr_t)hy->text;
            }
    free(S_of);
    free(batch_of);
    return st;
}

at_status at_translate(at_session *s, const char *text, size_t len, const at_options *opts,
                       at_result *res, at_error *err) {
    if (!s || (!text && len) || !res) return at_fail(err, AT_ERR_ARG, "at_translate: NULL argument");
    at_status line_status;
    at_status st = at_translate_batch(s, 1, &text, &len, opts, res, &line_status, err, err);
    return st ? st : line_status;
}

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
    s->attn_layer = s->unk_layer = -1;
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

static int imax(int a, int b) { return a > b ? a : b; }

/* A "room" is a block with its size in front. The session's arena (below) is one,
 * mapped, not taken from malloc's heap: when it grows, the old pages go with it or back
 * to the system at once. From the heap, freed buffers stayed resident (the heap cannot
 * shrink below live blocks): a 500-line int8 beam-4 run of the bench model peaked at
 * 530-620 MB depending on the order of its reallocations. Under AddressSanitizer rooms
 * come from malloc, one per buffer, so that ASan keeps checking their bounds. */
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

/* Rooms of a huge page or more are mapped at a 2 MiB boundary and offered transparent
 * huge pages: a first touch then faults in 2 MiB at once instead of 4 KiB. */
#define ROOM_HUGE ((size_t)2 << 20)

#if ROOM_MMAP
/* `total` bytes of fresh address space at a ROOM_HUGE boundary, or MAP_FAILED. */
static char *room_map_aligned(size_t total) {
    if (total > SIZE_MAX - ROOM_HUGE) return MAP_FAILED;
    char *p = mmap(NULL, total + ROOM_HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return p;
    char *a = (char *)(((uintptr_t)p + ROOM_HUGE - 1) & ~(uintptr_t)(ROOM_HUGE - 1));
    if (a > p) munmap(p, (size_t)(a - p));
    if (a + total < p + total + ROOM_HUGE) munmap(a + total, (size_t)(p + total + ROOM_HUGE - (a + total)));
    return a;
}
#endif

static void *room_alloc(size_t bytes) {
    if (bytes > SIZE_MAX - ROOM_HEAD) return NULL;
    size_t total = bytes + ROOM_HEAD;
#if ROOM_MMAP
    char *p;
    if (total >= ROOM_HUGE) {
        p = room_map_aligned(total);
        if (p == MAP_FAILED ||
            mprotect(p, total, PROT_READ | PROT_WRITE) != 0) {
            if (p != MAP_FAILED) munmap(p, total);
            return NULL;
        }
#ifdef MADV_HUGEPAGE
        madvise(p, total, MADV_HUGEPAGE);
#endif
    } else {
        p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
    }
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
 * grows by mremap, which keeps the pages already touched; a huge-page one moves to a
 * 2 MiB boundary, where its huge pages stay whole. A small block that grows past 2 MiB
 * starts afresh instead: its small pages would keep its first 2 MiB from ever becoming
 * a huge page. The old contents are not kept. On failure, `block` is freed and the
 * result is NULL. */
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
    if (p && (total < ROOM_HUGE || had >= ROOM_HUGE)) {
        char *q;
        if (total < ROOM_HUGE) {
            q = mremap(p, had, total, MREMAP_MAYMOVE);
        } else {
            char *a = room_map_aligned(total);
            q = a == MAP_FAILED ? a : mremap(p, had, total, MREMAP_MAYMOVE | MREMAP_FIXED, a);
            if (a != MAP_FAILED && q == MAP_FAILED) munmap(a, total);
#ifdef MADV_HUGEPAGE
            if (q != MAP_FAILED) madvise(q, total, MADV_HUGEPAGE);
#endif
        }
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

/* ---- the session's buffers ------------------------------------------------------ */

/* Every buffer of a batch is laid out, tightly and for that batch's shape, in one
 * mapping per session (the arena), which only grows and keeps the pages it has touched:
 * each batch lays its buffers out afresh, and a page touched once is never faulted in
 * again. The arena is offered transparent huge pages, so its first touch faults in
 * 2 MiB at a time: a 4 KiB page fault costs ~10 us in the virtual machines these
 * numbers come from, and a 500-line int8 run of the shipped model took 14k of them
 * (5-8% of its time) when each buffer had its own mapping. Laid out tightly, the
 * resident set stays that of the largest batch, rounded up to 2 MiB. The buffers'
 * contents mean nothing from one batch to the next: every buffer is written before it
 * is read. Under AddressSanitizer each buffer is its own heap block instead, so that
 * ASan checks their bounds. */
typedef struct carver {
    enum { CARVE_MEASURE, CARVE_ASSIGN, CARVE_FREE } mode;
    char *base;  /* the arena (CARVE_ASSIGN) */
    size_t used; /* bytes laid out so far */
    int ok;
} carver;

static void *carve(carver *c, void *old, size_t bytes) {
#if ROOM_MMAP
    (void)old;
    if (c->mode == CARVE_FREE || !c->ok) return NULL;
    size_t at = c->used, size = bytes + 63;
    if (bytes > SIZE_MAX - 63 || size > SIZE_MAX - at) {
        c->ok = 0;
        return NULL;
    }
    c->used = at + (size & ~(size_t)63);
    return c->mode == CARVE_ASSIGN ? c->base + at : NULL;
#else
    if (c->mode == CARVE_FREE) {
        room_free(old);
        return NULL;
    }
    if (!c->ok) return old;
    void *p = room_grow(old, bytes);
    if (!p) c->ok = 0;
    return p;
#endif
}

/* Lays out (or frees, with CARVE_FREE) every buffer for B sentences, src source tokens
 * in all, S of the longest, T steps and K beams. The decoder's self-attention cache
 * goes last: a batch that stops early leaves its tail untouched. */
static void layout(at_session *s, carver *c, int B, int src, int S, int T, int K) {
    const at_config *cf = &s->m->cfg;
    size_t d = (size_t)cf->d_model, V = (size_t)cf->vocab_size, L = (size_t)cf->decoder_layers;
    size_t BK = (size_t)B * K, rows = (size_t)imax(src, (int)BK);
    size_t F = (size_t)imax(cf->encoder_ffn_dim, cf->decoder_ffn_dim);
    size_t sc = (size_t)S * S;
    if ((size_t)K * S > sc) sc = (size_t)K * S;
    /* the decoder's attention keeps every head's weights of a row (nn_attend_heads) */
    if ((size_t)cf->decoder_heads * T > sc) sc = (size_t)cf->decoder_heads * T;
    if ((size_t)cf->decoder_heads * S > sc) sc = (size_t)cf->decoder_heads * S;
    if ((size_t)cf->encoder_heads * S > sc) sc = (size_t)cf->encoder_heads * S; /* S <= 8 rows */
    size_t gq, gx, gw; /* the widest product input is F (fc2) */
    gemm_scratch_size((int)rows, (int)imax((int)F, (int)d), &gq, &gx, &gw);
    if (s->m->wtype != AT_W_F16 || s->m->isa >= GEMM_AVX2) gw = 1; /* only f16 without AVX2 widens */
#define TAKE(p, n) ((p) = carve(c, (p), (n) * sizeof *(p)))
    TAKE(s->x, rows * d), TAKE(s->q, rows * d), TAKE(s->k, rows * d), TAKE(s->v, rows * d);
    TAKE(s->ctx, rows * d), TAKE(s->tmp, rows * d);
    TAKE(s->ffn, (rows < SESSION_FFN_ROWS ? rows : SESSION_FFN_ROWS) * F);
    TAKE(s->scores, sc), TAKE(s->enc_out, (size_t)src * d);
    TAKE(s->gs.xq, gq), TAKE(s->gs.xs, gx), TAKE(s->gs.wide, gw);
    TAKE(s->hist, BK * T), TAKE(s->hist_next, BK * T), TAKE(s->parent, (size_t)T * BK);
    TAKE(s->iscratch, rows), TAKE(s->kv_off, (size_t)T), TAKE(s->logits, BK * V);
    TAKE(s->step_tokens, BK), TAKE(s->row_slot, BK), TAKE(s->sents, (size_t)B);
    TAKE(s->active, (size_t)B), TAKE(s->slots, BK * 5), TAKE(s->hyp_ids, BK * 5 * T);
    TAKE(s->cand, (size_t)2 * K), TAKE(s->hyps, BK);
    TAKE(s->unk_src, (size_t)T * BK), TAKE(s->unk_probs, (size_t)K * cf->decoder_heads * S);
    TAKE(s->unk_subst, (size_t)T);
    for (size_t l = 0; s->cross_k && l < L; l++) TAKE(s->cross_k[l], (size_t)src * d), TAKE(s->cross_v[l], (size_t)src * d);
    /* the self-attention caches of every layer, position by position: what a batch has
     * decoded so far is one prefix */
    TAKE(s->kv, (size_t)T * 2 * L * BK * d);
    s->kv_stride = 2 * L * BK * d;
    for (size_t l = 0; s->self_k && l < L; l++) {
        s->self_k[l] = s->kv ? s->kv + (2 * l) * BK * d : NULL;
        s->self_v[l] = s->kv ? s->kv + (2 * l + 1) * BK * d : NULL;
    }
#undef TAKE
}

/* Frees everything session_reserve() allocates and zeroes the pointers. */
static void free_buffers(at_session *s) {
    carver c = {CARVE_FREE, NULL, 0, 1};
    layout(s, &c, 0, 0, 0, 0, 0);
    room_free(s->arena), s->arena = NULL, s->arena_cap = 0;
    FREE(s->cross_k), FREE(s->cross_v), FREE(s->self_k), FREE(s->self_v);
    s->cap_B = s->cap_K = s->cap_T = s->cap_src = s->cap_S = 0;
}

void at_session_free(at_session *s) {
    if (!s) return;
    pool_free(s->pool);
    free_buffers(s);
    free(s->src_ids);
    free(s->src_surf);
    free(s->unk_text);
    free(s->text);
    free(s->attn_steps);
    free(s->attn_out);
    free(s);
}

static int round_up(int x, int q) { return (x + q - 1) / q * q; }

static at_status reserve_src(at_session *s, size_t n, at_error *err) {
    if (n <= s->src_cap) return AT_OK;
    size_t cap = n < 256 ? 256 : n + n / 2;
    int32_t *p = realloc(s->src_ids, cap * sizeof *p);
    if (p) s->src_ids = p;
    size_t *q = p ? realloc(s->src_surf, cap * sizeof *q) : NULL;
    if (!q) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    s->src_surf = q, s->src_cap = cap;
    return AT_OK;
}

/* Lays the session's buffers out for a batch of this shape (see layout()). Previous
 * results become invalid. */
at_status session_reserve(at_session *s, int B, int src, int S, int T, int K, at_error *err) {
    at_status st = reserve_src(s, (size_t)src, err);
    if (st) return st;
    src = round_up(src, 64), S = round_up(S, 16), T = round_up(T, 32);
    size_t L = (size_t)s->m->cfg.decoder_layers;
    int ok = 1;
    if (!s->cross_k)
        ok = (s->cross_k = calloc(L, sizeof *s->cross_k)) && (s->cross_v = calloc(L, sizeof *s->cross_v)) &&
             (s->self_k = calloc(L, sizeof *s->self_k)) && (s->self_v = calloc(L, sizeof *s->self_v));
    carver c = {CARVE_MEASURE, NULL, 0, ok};
#if ROOM_MMAP
    layout(s, &c, B, src, S, T, K);
    if (c.ok && c.used > s->arena_cap) {
        /* a quarter more address space than asked: the next larger batch need not move it */
        size_t want = c.used + c.used / 4 < c.used ? c.used : c.used + c.used / 4;
        s->arena = room_grow(s->arena, want);
        s->arena_cap = s->arena ? want : 0;
        c.ok = s->arena != NULL;
    }
    c.mode = CARVE_ASSIGN, c.base = s->arena, c.used = 0;
#else
    c.mode = CARVE_ASSIGN;
#endif
    if (c.ok) layout(s, &c, B, src, S, T, K);
    if (!c.ok) {
        free_buffers(s);
        return at_fail(err, AT_ERR_NOMEM,
                       "out of memory for %d sentences (%d tokens), %d steps, beam %d", B, src, T, K);
    }
    size_t BK = (size_t)B * K;
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
    o.replace_unknowns = 0;
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

/* The replacements of final hypothesis f's first nid tokens (at_options.replace_unknowns):
 * for each unknown token, the text of the unknown source piece its step weighed most
 * (unk_src, following the beam back-pointers as gather_attention does); NULL elsewhere.
 * Returns s->unk_subst, or NULL when f has no unknown token. */
static const char *const *unknown_texts(at_session *s, const at_sent *st, const at_hyp_slot *f,
                                        int nid) {
    int unk = s->m->cfg.unk_id, beam = f->last_row, BK = s->cap_B * s->cap_K, any = 0;
    for (int r = f->n - 1; r >= 0; r--) {
        if (r < nid) {
            int j = f->ids[r] == unk ? s->unk_src[(size_t)r * BK + st->slot0 + beam] : -1;
            s->unk_subst[r] = j >= 0 ? s->unk_text + s->src_surf[st->src_off + j] : NULL;
            any |= j >= 0;
        }
        if (r > 0) beam = s->parent[(size_t)(r - 1) * BK + st->slot0 + beam];
    }
    return any ? s->unk_subst : NULL;
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

/* Collects the texts of a line's unknown pieces (at_vocab_encode_pieces' callback). */
typedef struct surf_ctx {
    at_session *s;
    size_t pos; /* the piece's position in src_ids */
    size_t end; /* one past the line's last piece in src_ids */
    int oom;
    int mismatch; /* the pieces did not line up with the ids */
} surf_ctx;

static void collect_surface(void *ctx, const char *piece, size_t len, int32_t id) {
    surf_ctx *c = ctx;
    at_session *s = c->s;
    size_t pos = c->pos++;
    if (pos >= c->end || id != s->src_ids[pos]) c->mismatch = 1;
    if (id != s->m->cfg.unk_id || c->oom || c->mismatch) return;
    if (s->unk_text_n + len + 1 > s->unk_text_cap) {
        size_t cap = (s->unk_text_n + len + 1) * 2;
        char *t = realloc(s->unk_text, cap);
        if (!t) {
            c->oom = 1;
            return;
        }
        s->unk_text = t, s->unk_text_cap = cap;
    }
    s->src_surf[pos] = s->unk_text_n;
    memcpy(s->unk_text + s->unk_text_n, piece, len);
    s->unk_text[s->unk_text_n + len] = '\0';
    s->unk_text_n += len + 1;
}

/* Tokenizes one line into s->src_ids at `off` (growing it) and appends eos;
 * *S_out gets the length with eos. With o->replace_unknowns, *has_unk says whether the
 * line has an unknown piece, whose text then goes to unk_text (src_surf). */
static at_status tokenize_line(at_session *s, const char *text, size_t len, const at_options *o,
                               size_t off, int *S_out, int *has_unk, at_error *err) {
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
    *has_unk = 0;
    for (size_t i = 0; o->replace_unknowns && i < n && !*has_unk; i++)
        *has_unk = s->src_ids[off + i] == s->m->cfg.unk_id;
    if (*has_unk) { /* rare: the same segmentation again, for the unknown pieces' texts */
        surf_ctx c = {s, off, off + n, 0, 0};
        at_status st2 = at_vocab_encode_pieces(s->m->vocab, 0, text, len, collect_surface, &c, err);
        if (st2) return st2;
        if (c.oom) return at_fail(err, AT_ERR_NOMEM, "out of memory for unknown pieces' text");
        if (c.mismatch || c.pos != c.end)
            return at_fail(err, AT_ERR_FORMAT, "tokenizer: a second segmentation of the line "
                           "did not give the same %zu pieces (%zu, or other ids)", n, c.pos - off);
    }
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

    /* tokenize every line; lines that fail or are empty take no part in the batch.
     * sents[i] describes line i for now; the batch is compacted below. */
    int *line_of; /* batch index -> line: s->iscratch, which holds >= n ints */
    size_t off = 0;
    int B = 0, maxS = 1, maxT = 1;
    int *S_of = malloc((size_t)n * sizeof *S_of), *unk_of = malloc((size_t)n * sizeof *unk_of);
    size_t *off_of = malloc((size_t)n * sizeof *off_of);
    if (!S_of || !off_of || !unk_of) {
        free(S_of), free(off_of), free(unk_of);
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    }
    s->unk_text_n = 0;
    int any_unk = 0;
    for (int i = 0; i < n; i++) {
        at_error *e = errors ? &errors[i] : NULL;
        S_of[i] = 0, unk_of[i] = 0;
        statuses[i] = tokenize_line(s, texts[i] ? texts[i] : "", texts[i] ? lens[i] : 0, &o, off,
                                    &S_of[i], &unk_of[i], e);
        if (statuses[i] || S_of[i] <= 1) continue; /* failed, or empty: no model run */
        any_unk |= unk_of[i];
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
            se->has_unk = unk_of[i];
            line_of[B++] = i;
        }
        s->n_sents = B;
        s->unk_layer = any_unk ? c->decoder_layers - 1 : -1;
        s->attn_layer = o.attention_layer;
        if (B && o.attention_layer >= 0) st = reserve_attention(s, o.n_best, err);
    }
    free(off_of);
    free(unk_of);
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
            const char *const *subst = se->has_unk ? unknown_texts(s, se, f, nid) : NULL;
            if ((st = ensure_text(s, used + 256, err))) break;
            st = at_vocab_decode_subst(m->vocab, f->ids, (size_t)nid, subst, s->text + used,
                                       s->text_cap - used, &need, err);
            if (st == AT_ERR_TOO_LONG) {
                if ((st = ensure_text(s, used + need + 1, err))) break;
                st = at_vocab_decode_subst(m->vocab, f->ids, (size_t)nid, subst, s->text + used,
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

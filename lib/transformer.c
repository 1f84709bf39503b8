/* transformer.c — the Marian encoder and the incremental decoder. */
#include "gemm.h"
#include "nn.h"
#include "internal.h"
#include "session.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static void trace(at_session *s, const char *what, int layer, const float *x, int rows, int cols) {
    if (s->trace) s->trace(s->trace_ctx, what, layer, x, rows, cols);
}

/* x[i] = E[ids[i]] * scale + P[pos0 + i]. E as stored (model.h): f32 or half, rows or
 * packed16 ([V/16][d][16]: element (id, j) at block id/16, j * 16 + id % 16). Half
 * values are widened exactly, so every layout gives the same floats. With E->q, the
 * int8 form: (float)q * qscale[id], q at block id/16, (j/4) * 64 + (id % 16) * 4 + j % 4. */
static void embed(const at_model *m, const at_emb *E, const int32_t *ids, int n, const int *pos,
                  float *x) {
    int d = m->cfg.d_model;
    float scale = m->cfg.scale_embedding ? sqrtf((float)d) : 1.0f;
    for (int i = 0; i < n; i++) {
        const float *p = m->positions + (size_t)pos[i] * d;
        float *row = x + (size_t)i * d;
        size_t id = (size_t)ids[i], at = E->packed ? id / 16 * 16 * (size_t)d + id % 16 : id * d,
               step = E->packed ? 16 : 1;
        if (E->q) {
            const int8_t *q = E->q + id / 16 * 16 * (size_t)gemm_pad4(d) + id % 16 * 4;
            float qs = E->qscale[id];
            for (int j = 0; j < d; j++) row[j] = (float)q[j / 4 * 64 + j % 4] * qs * scale + p[j];
        } else if (E->half) {
            const uint16_t *e = (const uint16_t *)E->p + at;
            for (int j = 0; j < d; j++) row[j] = at_half_to_float(e[j * step]) * scale + p[j];
        } else {
            const float *e = (const float *)E->p + at;
            for (int j = 0; j < d; j++) row[j] = e[j * step] * scale + p[j];
        }
    }
}

/* Attention of n query rows (q, already scaled) over S key rows for all heads
 * at once: ctx[n,d] = concat_h softmax(q_h K_hᵀ) V_h. `probs` gets (n, S) per head. */
static void attend_dense(const float *q, int n, const float *K, const float *Vv, int S, int d,
                         int heads, float *probs, float *ctx, float *keep, int keep_S, int isa) {
    int hd = d / heads;
    if (n <= 8) { /* a few query rows (decoder steps): dot products, no sgemm packing;
                     probs gets (heads, S) per row */
        for (int i = 0; i < n; i++) {
            nn_attend_heads(q + (size_t)i * d, K, Vv, NULL, (size_t)d, S, hd, heads, probs,
                            ctx + (size_t)i * d, isa);
            for (int h = 0; keep && h < heads; h++)
                memcpy(keep + ((size_t)i * heads + h) * keep_S, probs + (size_t)h * S,
                       (size_t)S * sizeof *probs);
        }
        return;
    }
    for (int h = 0; h < heads; h++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, S, hd, 1.0f, q + h * hd, d,
                    K + h * hd, d, 0.0f, probs, S);
        for (int i = 0; i < n; i++) nn_softmax(probs + (size_t)i * S, S, isa);
        /* keep: (n, heads, keep_S) copy of the weights, for --show-attn */
        for (int i = 0; keep && i < n; i++)
            memcpy(keep + ((size_t)i * heads + h) * keep_S, probs + (size_t)i * S,
                   (size_t)S * sizeof *probs);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, S, 1.0f, probs, S,
                    Vv + h * hd, d, 0.0f, ctx + h * hd, d);
    }
}

static void scale_rows(float *x, size_t n, float a) {
    for (size_t i = 0; i < n; i++) x[i] *= a;
}

/* The feed-forward block SESSION_FFN_ROWS rows at a time (session.h). */
static void ffn(at_session *s, const at_ffn_weights *w, int n, int F) {
    const at_model *m = s->m;
    int d = m->cfg.d_model;
    for (int r0 = 0; r0 < n; r0 += SESSION_FFN_ROWS) {
        int r = n - r0 < SESSION_FFN_ROWS ? n - r0 : SESSION_FFN_ROWS;
        gemm_linear(m, &w->fc1, s->x + (size_t)r0 * d, r, s->ffn, &s->gs);
        nn_activate(s->ffn, (size_t)r * F, m->act, m->isa);
        gemm_linear(m, &w->fc2, s->ffn, r, s->tmp + (size_t)r0 * d, &s->gs);
    }
}

void tf_encode_batch(at_session *s) {
    const at_model *m = s->m;
    const at_config *c = &m->cfg;
    int d = c->d_model, H = c->encoder_heads;
    float qscale = 1.0f / sqrtf((float)(d / H));
    int R = 0; /* rows: every sentence's ids, concatenated */
    for (int b = 0; b < s->n_sents; b++)
        for (int i = 0; i < s->sents[b].S; i++) s->iscratch[R++] = i;
    embed(m, &m->enc_embed, s->src_ids, R, s->iscratch, s->x);
    trace(s, "encoder_embed", -1, s->x, R, d);
    for (int l = 0; l < c->encoder_layers; l++) {
        const at_enc_layer *L = &m->enc[l];
        gemm_linear(m, &L->self_attn.q, s->x, R, s->q, &s->gs);
        gemm_linear(m, &L->self_attn.k, s->x, R, s->k, &s->gs);
        gemm_linear(m, &L->self_attn.v, s->x, R, s->v, &s->gs);
        scale_rows(s->q, (size_t)R * d, qscale);
        for (int b = 0; b < s->n_sents; b++) {
            size_t off = (size_t)s->sents[b].src_off * d;
            int S = s->sents[b].S;
            attend_dense(s->q + off, S, s->k + off, s->v + off, S, d, H, s->scores, s->ctx + off,
                         NULL, 0, m->isa);
        }
        gemm_linear(m, &L->self_attn.o, s->ctx, R, s->tmp, &s->gs);
        nn_add_layernorm(s->x, s->tmp, R, d, &L->self_attn_ln, c->layer_norm_eps, m->isa);
        ffn(s, &L->ffn, R, c->encoder_ffn_dim);
        nn_add_layernorm(s->x, s->tmp, R, d, &L->final_ln, c->layer_norm_eps, m->isa);
        trace(s, "encoder_layer", l, s->x, R, d);
    }
    memcpy(s->enc_out, s->x, (size_t)R * d * sizeof *s->x);
    for (int l = 0; l < c->decoder_layers; l++) {
        const at_attn_weights *a = &m->dec[l].cross_attn;
        gemm_linear(m, &a->k, s->enc_out, R, s->cross_k[l], &s->gs);
        gemm_linear(m, &a->v, s->enc_out, R, s->cross_v[l], &s->gs);
    }
}

/* For each live row of st: the unknown source position whose attention weights, summed
 * over heads, are the largest (the first of equals), or -1 when the source has none.
 * probs: (n_live, heads, cap_S). For at_options.replace_unknowns. */
static void point_unknowns(const at_session *s, const at_sent *st, const float *probs, int *out) {
    int H = s->m->cfg.decoder_heads, unk = s->m->cfg.unk_id;
    const int32_t *src = s->src_ids + st->src_off;
    for (int i = 0; i < st->n_live; i++) {
        int best = -1;
        float top = -1.0f;
        for (int j = 0; j < st->S; j++) {
            if (src[j] != unk) continue;
            float w = 0.0f;
            for (int h = 0; h < H; h++) w += probs[((size_t)i * H + h) * s->cap_S + j];
            if (w > top) top = w, best = j;
        }
        out[i] = best;
    }
}

/* Causal self-attention of each row over its own history in the cache. */
static void attend_history(at_session *s, int l, int n, int pos) {
    const at_config *c = &s->m->cfg;
    int d = c->d_model, H = c->decoder_heads, hd = d / H;
    const float *Kc = s->self_k[l], *Vc = s->self_v[l];
    int isa = s->m->isa;
    size_t *off = s->kv_off;
    for (int j = 0; j < n; j++) {
        const int *hist = s->hist + (size_t)s->row_slot[j] * s->cap_T;
        for (int t = 0; t <= pos; t++) off[t] = (size_t)t * s->kv_stride + (size_t)hist[t] * d;
        nn_attend_heads(s->q + (size_t)j * d, Kc, Vc, off, 0, pos + 1, hd, H, s->scores,
                        s->ctx + (size_t)j * d, isa);
    }
}

void tf_decode_step_batch(at_session *s, int n, int pos) {
    const at_model *m = s->m;
    const at_config *c = &m->cfg;
    int d = c->d_model, H = c->decoder_heads, slots = s->cap_B * s->cap_K;
    float qscale = 1.0f / sqrtf((float)(d / H));
    for (int j = 0; j < n; j++) s->iscratch[j] = pos;
    embed(m, &m->dec_embed, s->step_tokens, n, s->iscratch, s->x);
    trace(s, "decoder_embed", -1, s->x, n, d);
    for (int l = 0; l < c->decoder_layers; l++) {
        const at_dec_layer *L = &m->dec[l];
        /* self-attention: this step's K/V go straight into the cache at [pos][row], then
         * each row attends over its history */
        size_t at = (size_t)pos * s->kv_stride;
        gemm_linear(m, &L->self_attn.q, s->x, n, s->q, &s->gs);
        gemm_linear(m, &L->self_attn.k, s->x, n, s->self_k[l] + at, &s->gs);
        gemm_linear(m, &L->self_attn.v, s->x, n, s->self_v[l] + at, &s->gs);
        scale_rows(s->q, (size_t)n * d, qscale);
        attend_history(s, l, n, pos);
        gemm_linear(m, &L->self_attn.o, s->ctx, n, s->tmp, &s->gs);
        nn_add_layernorm(s->x, s->tmp, n, d, &L->self_attn_ln, c->layer_norm_eps, m->isa);
        /* cross-attention: each sentence's rows over its own encoder output */
        gemm_linear(m, &L->cross_attn.q, s->x, n, s->q, &s->gs);
        scale_rows(s->q, (size_t)n * d, qscale);
        for (int a = 0; a < s->n_active; a++) {
            const at_sent *st = &s->sents[s->active[a]];
            size_t r0 = (size_t)st->row0 * d, src = (size_t)st->src_off * d;
            float *keep = l == s->attn_layer && s->attn_steps
                              ? s->attn_steps + ((size_t)pos * slots + st->slot0) * H * s->cap_S
                              : NULL;
            int unk = l == s->unk_layer && st->has_unk;
            if (unk && !keep) keep = s->unk_probs;
            attend_dense(s->q + r0, st->n_live, s->cross_k[l] + src, s->cross_v[l] + src, st->S,
                         d, H, s->scores, s->ctx + r0, keep, s->cap_S, m->isa);
            if (unk) point_unknowns(s, st, keep, s->unk_src + (size_t)pos * slots + st->slot0);
        }
        gemm_linear(m, &L->cross_attn.o, s->ctx, n, s->tmp, &s->gs);
        nn_add_layernorm(s->x, s->tmp, n, d, &L->cross_attn_ln, c->layer_norm_eps, m->isa);
        ffn(s, &L->ffn, n, c->decoder_ffn_dim);
        nn_add_layernorm(s->x, s->tmp, n, d, &L->final_ln, c->layer_norm_eps, m->isa);
        trace(s, "decoder_layer", l, s->x, n, d);
    }
    gemm_linear(m, &m->lm_head, s->x, n, s->logits, &s->gs);
}

/* ---- single-sentence forms, for tests ------------------------------------------- */

void tf_encode(at_session *s, const int32_t *ids, int S) {
    if (s->src_ids != ids) memcpy(s->src_ids, ids, (size_t)S * sizeof *ids);
    s->n_sents = 1;
    s->sents[0].S = S, s->sents[0].src_off = 0, s->sents[0].slot0 = 0;
    s->sents[0].has_unk = 0;
    tf_encode_batch(s);
}

void tf_decode_step(at_session *s, int n, int pos, int S) {
    s->n_sents = 1, s->n_active = 1, s->active[0] = 0;
    s->sents[0].S = S, s->sents[0].src_off = 0, s->sents[0].slot0 = 0;
    s->sents[0].row0 = 0, s->sents[0].n_live = n, s->sents[0].has_unk = 0;
    for (int j = 0; j < n; j++) s->row_slot[j] = j;
    tf_decode_step_batch(s, n, pos);
}

/* transformer.c — the Marian encoder and the incremental decoder. */
#include "nn.h"
#include "session.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static void trace(at_session *s, const char *what, int layer, const float *x, int rows, int cols) {
    if (s->trace) s->trace(s->trace_ctx, what, layer, x, rows, cols);
}

/* x[i] = E[ids[i]] * scale + P[pos0 + i] */
static void embed(const at_model *m, const float *E, const int32_t *ids, int n, const int *pos,
                  float *x) {
    int d = m->cfg.d_model;
    float scale = m->cfg.scale_embedding ? sqrtf((float)d) : 1.0f;
    for (int i = 0; i < n; i++) {
        const float *e = E + (size_t)ids[i] * d, *p = m->positions + (size_t)pos[i] * d;
        float *row = x + (size_t)i * d;
        for (int j = 0; j < d; j++) row[j] = e[j] * scale + p[j];
    }
}

/* Attention of n query rows (q, already scaled) over S key rows for all heads
 * at once: ctx[n,d] = concat_h softmax(q_h K_hᵀ) V_h. `probs` gets (n, S) per head. */
static void attend_dense(const float *q, int n, const float *K, const float *Vv, int S, int d,
                         int heads, float *probs, float *ctx, float *keep, int keep_S) {
    int hd = d / heads;
    for (int h = 0; h < heads; h++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, S, hd, 1.0f, q + h * hd, d,
                    K + h * hd, d, 0.0f, probs, S);
        for (int i = 0; i < n; i++) nn_softmax(probs + (size_t)i * S, S);
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

static void ffn(at_session *s, const at_ffn_weights *w, int n, int F) {
    const at_model *m = s->m;
    int d = m->cfg.d_model;
    nn_linear(s->x, n, d, w->fc1_w, w->fc1_b, F, s->ffn);
    nn_activate(s->ffn, (size_t)n * F, m->act);
    nn_linear(s->ffn, n, F, w->fc2_w, w->fc2_b, d, s->tmp);
}

void tf_encode(at_session *s, const int32_t *ids, int S) {
    const at_model *m = s->m;
    const at_config *c = &m->cfg;
    int d = c->d_model, H = c->encoder_heads;
    float qscale = 1.0f / sqrtf((float)(d / H));
    int *pos = s->iscratch;
    for (int i = 0; i < S; i++) pos[i] = i;
    embed(m, m->enc_embed, ids, S, pos, s->x);
    trace(s, "encoder_embed", -1, s->x, S, d);
    for (int l = 0; l < c->encoder_layers; l++) {
        const at_enc_layer *L = &m->enc[l];
        nn_linear(s->x, S, d, L->self_attn.wq, L->self_attn.bq, d, s->q);
        nn_linear(s->x, S, d, L->self_attn.wk, L->self_attn.bk, d, s->k);
        nn_linear(s->x, S, d, L->self_attn.wv, L->self_attn.bv, d, s->v);
        scale_rows(s->q, (size_t)S * d, qscale);
        attend_dense(s->q, S, s->k, s->v, S, d, H, s->scores, s->ctx, NULL, 0);
        nn_linear(s->ctx, S, d, L->self_attn.wo, L->self_attn.bo, d, s->tmp);
        nn_add_layernorm(s->x, s->tmp, S, d, &L->self_attn_ln, c->layer_norm_eps);
        ffn(s, &L->ffn, S, c->encoder_ffn_dim);
        nn_add_layernorm(s->x, s->tmp, S, d, &L->final_ln, c->layer_norm_eps);
        trace(s, "encoder_layer", l, s->x, S, d);
    }
    memcpy(s->enc_out, s->x, (size_t)S * d * sizeof *s->x);
    for (int l = 0; l < c->decoder_layers; l++) {
        const at_attn_weights *a = &m->dec[l].cross_attn;
        nn_linear(s->enc_out, S, d, a->wk, a->bk, d, s->cross_k[l]);
        nn_linear(s->enc_out, S, d, a->wv, a->bv, d, s->cross_v[l]);
    }
}

/* Causal self-attention of row j over its own history in the cache. */
static void attend_history(at_session *s, int l, int n, int pos) {
    const at_config *c = &s->m->cfg;
    int d = c->d_model, H = c->decoder_heads, hd = d / H, K = s->cap_K;
    const float *Kc = s->self_k[l], *Vc = s->self_v[l];
    for (int j = 0; j < n; j++) {
        const int *hist = s->hist + (size_t)j * s->cap_T;
        float *out = s->ctx + (size_t)j * d;
        memset(out, 0, (size_t)d * sizeof *out);
        for (int h = 0; h < H; h++) {
            const float *qh = s->q + (size_t)j * d + h * hd;
            float *p = s->scores;
            for (int t = 0; t <= pos; t++) {
                const float *kr = Kc + ((size_t)t * K + hist[t]) * d + h * hd;
                float dot = 0.0f;
                for (int i = 0; i < hd; i++) dot += qh[i] * kr[i];
                p[t] = dot;
            }
            nn_softmax(p, pos + 1);
            float *oh = out + h * hd;
            for (int t = 0; t <= pos; t++) {
                const float *vr = Vc + ((size_t)t * K + hist[t]) * d + h * hd;
                float w = p[t];
                for (int i = 0; i < hd; i++) oh[i] += w * vr[i];
            }
        }
    }
}

void tf_decode_step(at_session *s, int n, int pos, int S) {
    const at_model *m = s->m;
    const at_config *c = &m->cfg;
    int d = c->d_model, H = c->decoder_heads, K = s->cap_K;
    float qscale = 1.0f / sqrtf((float)(d / H));
    int *posv = s->iscratch;
    for (int j = 0; j < n; j++) posv[j] = pos;
    embed(m, m->dec_embed, s->step_tokens, n, posv, s->x);
    trace(s, "decoder_embed", -1, s->x, n, d);
    for (int l = 0; l < c->decoder_layers; l++) {
        const at_dec_layer *L = &m->dec[l];
        /* self-attention: append this step's K/V at [pos][row], then attend */
        float *kslot = s->self_k[l] + (size_t)pos * K * d, *vslot = s->self_v[l] + (size_t)pos * K * d;
        nn_linear(s->x, n, d, L->self_attn.wq, L->self_attn.bq, d, s->q);
        nn_linear(s->x, n, d, L->self_attn.wk, L->self_attn.bk, d, kslot);
        nn_linear(s->x, n, d, L->self_attn.wv, L->self_attn.bv, d, vslot);
        scale_rows(s->q, (size_t)n * d, qscale);
        attend_history(s, l, n, pos);
        nn_linear(s->ctx, n, d, L->self_attn.wo, L->self_attn.bo, d, s->tmp);
        nn_add_layernorm(s->x, s->tmp, n, d, &L->self_attn_ln, c->layer_norm_eps);
        /* cross-attention over the encoder output */
        nn_linear(s->x, n, d, L->cross_attn.wq, L->cross_attn.bq, d, s->q);
        scale_rows(s->q, (size_t)n * d, qscale);
        float *keep = l == s->attn_layer && s->attn_steps
                          ? s->attn_steps + (size_t)pos * K * H * s->cap_S
                          : NULL;
        attend_dense(s->q, n, s->cross_k[l], s->cross_v[l], S, d, H, s->scores, s->ctx, keep,
                     s->cap_S);
        nn_linear(s->ctx, n, d, L->cross_attn.wo, L->cross_attn.bo, d, s->tmp);
        nn_add_layernorm(s->x, s->tmp, n, d, &L->cross_attn_ln, c->layer_norm_eps);
        ffn(s, &L->ffn, n, c->decoder_ffn_dim);
        nn_add_layernorm(s->x, s->tmp, n, d, &L->final_ln, c->layer_norm_eps);
        trace(s, "decoder_layer", l, s->x, n, d);
    }
    nn_linear(s->x, n, d, m->lm_head, m->final_bias, c->vocab_size, s->logits);
}

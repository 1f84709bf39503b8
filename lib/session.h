/* session.h — per-thread decoding state. Private to lib/.
 * Everything here is allocated by session_reserve() before a sentence is
 * decoded; the decode loop itself never allocates. */
#ifndef AT_SESSION_H
#define AT_SESSION_H

#include "model.h"

/* Optional hook for tests: called with each layer's output. */
typedef void (*at_trace_fn)(void *ctx, const char *what, int layer, const float *x, int rows,
                            int cols);

typedef struct at_hyp_slot {
    int32_t *ids;   /* (cap_T) */
    int n;
    int last_row;   /* live row that produced the last token (attention back-pointer) */
    double sum;     /* sum of log-probabilities */
    double score;   /* sum / n^lp */
} at_hyp_slot;

struct at_session {
    const at_model *m;
    int cap_S, cap_T, cap_K; /* capacities currently allocated */

    /* activations, rows = max(cap_S, cap_K) */
    float *x;        /* (rows, d) hidden state */
    float *q, *k, *v; /* (rows, d) */
    float *ctx;      /* (rows, d) attention output before out_proj */
    float *tmp;      /* (rows, d) sub-layer output */
    float *ffn;      /* (rows, F_max) */
    float *scores;   /* (max(cap_S, cap_K), max(cap_S, cap_T)) attention weights */
    float *enc_out;  /* (cap_S, d) */

    /* caches */
    float **cross_k, **cross_v; /* (decoder_layers) x (cap_S, d) */
    float **self_k, **self_v;   /* (decoder_layers) x (cap_T, cap_K, d), [pos][slot] */
    int *hist, *hist_next;      /* (cap_K, cap_T): cache slot of row j at position p */
    int *iscratch;              /* (max(cap_S, cap_K)) positions */

    /* decoding */
    float *logits;           /* (cap_K, V) */
    int32_t *step_tokens;    /* (cap_K) token fed at this step, per live row */
    at_hyp_slot *live, *next; /* (cap_K) */
    at_hyp_slot *final;       /* (3 * cap_K) */
    int32_t *hyp_ids;         /* backing store for live/next/final ids */
    int n_final;
    struct cand { double total; int b, v; } *cand; /* (2 * cap_K) */
    int *parent;             /* (cap_T, cap_K): live row at step t came from row parent[t-1][j] */

    /* attention capture (only when requested: attn_layer >= 0) */
    int attn_layer;
    float *attn_steps;       /* (cap_T, cap_K, heads, cap_S) */
    size_t attn_cap;         /* floats allocated in attn_steps */
    float *attn_out;         /* (cap_K, heads, cap_T, cap_S) per returned hypothesis */
    size_t attn_out_cap;

    /* result */
    int32_t *src_ids;  /* (src_cap) source ids + eos; kept across session_reserve() */
    size_t src_cap;
    int n_src;
    at_hypothesis *hyps; /* (cap_K) */
    char *text;          /* detokenized hypotheses, NUL-separated */
    size_t text_cap;

    /* tests */
    at_trace_fn trace;
    void *trace_ctx;
};

/* Makes sure buffers hold S source ids, T target steps and K beams. */
at_status session_reserve(at_session *s, int S, int T, int K, at_error *err);

/* Runs the encoder over ids[S] (eos included): fills enc_out and the
 * cross-attention K/V of every decoder layer. */
void tf_encode(at_session *s, const int32_t *ids, int S);

/* One decoder step for n rows feeding s->step_tokens[j] at position `pos`.
 * Row j attends to cache slots hist[j][0..pos]; hist[j][pos] must be j.
 * Writes raw logits (final bias included) to s->logits (n, V). */
void tf_decode_step(at_session *s, int n, int pos, int S);

#endif

/* session.h — per-thread decoding state. Private to lib/.
 *
 * A session translates a batch of sentences at once. Their source tokens are
 * concatenated into one matrix (no padding): every linear layer is one matrix
 * product over all sentences, attention runs per sentence on its own slice.
 * The decoder likewise stacks the live hypotheses of every unfinished sentence.
 *
 * Everything here is allocated by session_reserve() before decoding starts; the
 * decode loop itself never allocates. */
#ifndef AT_SESSION_H
#define AT_SESSION_H

#include "gemm.h"
#include "model.h"

/* The feed-forward block runs this many rows at a time (fc1, activation, fc2): the
 * hidden activations (512 KB at F = 1024) stay in the core's cache between the three,
 * and the buffer is that small however many rows a batch has. A row's result does not
 * depend on the count. */
#define SESSION_FFN_ROWS 128

/* Optional hook for tests: called with each layer's output. */
typedef void (*at_trace_fn)(void *ctx, const char *what, int layer, const float *x, int rows,
                            int cols);

typedef struct at_hyp_slot {
    int32_t *ids;   /* (cap_T) */
    int n;
    int last_row;   /* beam that produced the last token (attention back-pointer) */
    double sum;     /* sum of log-probabilities */
    double score;   /* sum / n^lp */
} at_hyp_slot;

/* One sentence of the batch. */
typedef struct at_sent {
    int S;              /* source ids, eos included */
    int src_off;        /* its first row in the concatenated source */
    int max_len;        /* target steps allowed */
    int slot0;          /* its first cache slot: index * cap_K */
    int row0;           /* its first decoder row in the current step */
    int n_live, n_final, done;
    int has_unk;        /* options.replace_unknowns and the source has an unknown piece */
    at_hyp_slot *live, *next, *final; /* (cap_K), (cap_K), (3 * cap_K) */
} at_sent;

struct at_session {
    const at_model *m;
    struct at_pool *pool;   /* helper threads (at_session_options.threads - 1), or NULL */
    int cap_B, cap_K, cap_T, cap_src, cap_S; /* sentences, beams, steps, total and max source */
    void *arena;      /* every buffer below but src_ids, text and attention (translate.c) */
    size_t arena_cap; /* bytes the arena can hold */

    /* activations, rows = max(cap_src, cap_B * cap_K) */
    float *x;         /* (rows, d) hidden state */
    float *q, *k, *v; /* (rows, d) */
    float *ctx;       /* (rows, d) attention output before out_proj */
    float *tmp;       /* (rows, d) sub-layer output */
    float *ffn;       /* (rows, F_max) */
    float *scores;    /* (max(cap_S^2, cap_K * cap_S, cap_T)) attention weights scratch */
    float *enc_out;   /* (cap_src, d) */
    gemm_scratch gs;  /* quantized activations / widened f16 weights for each product */

    /* caches */
    float **cross_k, **cross_v; /* (decoder_layers) x (cap_src, d) */
    float *kv;                  /* (cap_T, decoder_layers, 2, cap_B * cap_K, d): [pos][layer]
                                   [K or V][row], the self-attention K/V of decoder row `row`
                                   of step pos; a position's rows are kv_stride floats apart */
    size_t kv_stride;
    float **self_k, **self_v;   /* (decoder_layers): layer l's K and V of position 0 in kv */
    int *hist, *hist_next;      /* (cap_B * cap_K, cap_T): the cache row that holds a beam's
                                   K/V at position p (its row at step p) */
    int *parent;                /* (cap_T, cap_B * cap_K): beam j of step t+1 came from beam
                                   parent[t][slot0 + j] of step t */
    int *iscratch;              /* (rows) positions */
    size_t *kv_off;             /* (cap_T) a row's cache offsets, one per position */

    /* the current step */
    float *logits;              /* (cap_B * cap_K, V) */
    int32_t *step_tokens;       /* (cap_B * cap_K) token fed to each row */
    int *row_slot;              /* (cap_B * cap_K) cache slot of each row */
    at_sent *sents;             /* (cap_B) */
    int n_sents;
    int *active;                /* (cap_B) indices of unfinished sentences */
    int n_active;
    at_hyp_slot *slots;         /* (cap_B * 5 * cap_K) backing live/next/final */
    int32_t *hyp_ids;           /* (cap_B * 5 * cap_K * cap_T) */
    struct cand { double total; int b, v; } *cand; /* (2 * cap_K) */

    /* source ids of the batch, concatenated, eos after each; kept across reserve */
    int32_t *src_ids;
    size_t src_cap;
    int32_t eos_only;    /* the source of an empty line */

    /* results */
    at_hypothesis *hyps; /* (cap_B * cap_K) */
    char *text;          /* detokenized hypotheses, NUL-separated */
    size_t text_cap;

    /* attention capture (only when requested: attn_layer >= 0) */
    int attn_layer;
    float *attn_steps;   /* (cap_T, cap_B * cap_K, heads, cap_S) */
    size_t attn_cap;
    float *attn_out;     /* (cap_B * n_best, heads, cap_T, cap_S) */
    size_t attn_out_cap;

    /* replacing unknown tokens (at_options.replace_unknowns), for sentences with has_unk */
    int unk_layer;              /* the decoder layer whose cross-attention points (the last),
                                   or -1: no sentence of the batch needs it */
    int *unk_src;               /* (cap_T, cap_B * cap_K): the unknown source position that row
                                   [pos][slot] weighed most, -1 for none */
    float *unk_probs;           /* (cap_K, heads, cap_S) the attention weights of a step */
    const char **unk_subst;     /* (cap_T) a hypothesis' replacements, for detokenizing */
    size_t *src_surf;           /* (src_cap) for an unknown source id: its text's offset in
                                   unk_text (NUL-terminated); other ids: unused */
    char *unk_text;             /* the batch's unknown source pieces' texts */
    size_t unk_text_n, unk_text_cap;

    /* tests */
    at_trace_fn trace;
    void *trace_ctx;
};

/* Makes sure buffers hold B sentences of at most S ids (src ids in total),
 * T target steps and K beams. Contents are not kept. */
at_status session_reserve(at_session *s, int B, int src, int S, int T, int K, at_error *err);

/* Runs the encoder over the batch: s->src_ids holds each sentence's ids at
 * s->sents[i].src_off. Fills enc_out and every decoder layer's cross K/V. */
void tf_encode_batch(at_session *s);

/* One decoder step at position `pos` for the live rows of the active sentences:
 * row r feeds step_tokens[r], writes its K/V to cache row [pos][r] (the matrix
 * products write there directly) and attends to the cache rows
 * hist[row_slot[r]][0..pos], of which entry pos must be r. Writes raw logits
 * (final bias included) to s->logits (rows, V). */
void tf_decode_step_batch(at_session *s, int rows, int pos);

/* Single-sentence forms for tests: ids[S] at row 0; n rows in slots 0..n-1. */
void tf_encode(at_session *s, const int32_t *ids, int S);
void tf_decode_step(at_session *s, int n, int pos, int S);

#endif

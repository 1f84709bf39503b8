/* model.h — the loaded model: config, weight pointers, tokenizer. Private to lib/. */
#ifndef AT_MODEL_H
#define AT_MODEL_H

#include "attn_translate.h"
#include "tokenizer.h"

typedef enum { AT_ACT_SWISH, AT_ACT_RELU, AT_ACT_GELU } at_activation;

typedef struct at_ln {
    const float *weight; /* (d) */
    const float *bias;   /* (d) */
} at_ln;

/* Storage of the weight matrices that feed linear layers (the model's compute dtype). */
typedef enum { AT_W_F32, AT_W_F16, AT_W_INT8 } at_wtype;

/* One linear layer y = x Wᵀ + b, W of shape (out, in) as in PyTorch. `w` always
 * points at the f32 weights while loading; after loading exactly one of w / h / q
 * is used, per the model's dtype (see gemm.h for the int8 layout). */
typedef struct at_lin {
    int out, in;
    const float *w;        /* (out, in) f32: in the mapping or widened from f16 */
    const float *b;        /* (out) */
    const uint16_t *h;     /* (out, in) IEEE half, dtype f16 */
    const int8_t *q;       /* packed int8 (gemm.h), dtype int8 */
    const float *pw;       /* packed f32 (gemm.h), dtype f32 with AVX2 */
    const uint16_t *ph;    /* packed half (gemm.h), dtype f16 with AVX2 */
    const float *qscale;   /* (out rounded up to 16) per-row scale: w ≈ q * qscale */
    const int32_t *qsum;   /* (out rounded up to 16) 128 * row sum of q */
    /* while loading an i8 file: the per-row scales of its int8 weights */
    const float *wscale;   /* (out) in the mapping: w = q * wscale */
} at_lin;

/* An embedding table (V, d) as stored: f32 or IEEE half, row-major or packed16 (the
 * [V/16][d][16] layout of gemm.h, when it doubles as the tied output projection).
 * Rows are looked up by embed() in transformer.c: the stored values, widened to f32,
 * or, when q is set, the int8 form of the table: element (id, j) = q · qscale[id].
 * q is set when the model computes in int8 and the table is also the output projection
 * (tied): its int8 form is then resident anyway, while a lookup in the stored table would
 * bring its pages back from the file (16 rows at a time when packed16), as much memory
 * again as the int8 weights on a large vocabulary. CTranslate2's int8 embeddings work
 * the same way. */
typedef struct at_emb {
    const void *p;
    int half, packed;
    const int8_t *q;      /* packed int8 (gemm.h: [V/16][d4/4][16][4]), or NULL */
    const float *qscale;  /* (V rounded up to 16) per-row scales of q */
} at_emb;

typedef struct at_attn_weights {
    at_lin q, k, v, o; /* (d, d) */
} at_attn_weights;

typedef struct at_ffn_weights {
    at_lin fc1; /* (F, d) */
    at_lin fc2; /* (d, F) */
} at_ffn_weights;

typedef struct at_enc_layer {
    at_attn_weights self_attn;
    at_ln self_attn_ln;
    at_ffn_weights ffn;
    at_ln final_ln;
} at_enc_layer;

typedef struct at_dec_layer {
    at_attn_weights self_attn;
    at_ln self_attn_ln;
    at_attn_weights cross_attn;
    at_ln cross_attn_ln;
    at_ffn_weights ffn;
    at_ln final_ln;
} at_dec_layer;

struct at_model {
    at_config cfg;
    at_activation act;
    /* weights: pointers into the mapping, into `arena` (converted or repacked linear
     * weights) or into `owned` (small widened tensors) */
    at_emb enc_embed;         /* (V, d) */
    at_emb dec_embed;         /* (V, d) */
    at_lin lm_head;           /* (V, d), bias = final_logits_bias */
    float *positions;         /* (max_positions, d), computed at load */
    at_enc_layer *enc;        /* (encoder_layers) */
    at_dec_layer *dec;        /* (decoder_layers) */
    int *bad_ids;             /* never generated */
    int n_bad_ids;
    at_vocab *vocab;
    at_wtype wtype;           /* how the linear weights are stored and multiplied */
    int auto_dtype;           /* loaded with AT_DTYPE_AUTO: i8 files compute in int8 */
    int isa;                  /* gemm_isa: the kernels chosen for this CPU */
    /* resources */
    int version;              /* model.json "version": 1, or 2 (packed16 layouts) */
    void *map;
    size_t map_len;
    void *arena_map;          /* one anonymous mapping for every converted weight */
    size_t arena_map_len;
    float **owned;
    int n_owned;
};

#endif

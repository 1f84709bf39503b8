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

typedef struct at_attn_weights {
    const float *wq, *wk, *wv, *wo; /* (d, d), PyTorch [out, in] */
    const float *bq, *bk, *bv, *bo; /* (d) */
} at_attn_weights;

typedef struct at_ffn_weights {
    const float *fc1_w; /* (F, d) */
    const float *fc1_b; /* (F) */
    const float *fc2_w; /* (d, F) */
    const float *fc2_b; /* (d) */
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
    /* weights: pointers into the mapping, or into `owned` for widened f16 */
    const float *enc_embed;   /* (V, d) */
    const float *dec_embed;   /* (V, d) */
    const float *lm_head;     /* (V, d) */
    const float *final_bias;  /* (V) */
    float *positions;         /* (max_positions, d), computed at load */
    at_enc_layer *enc;        /* (encoder_layers) */
    at_dec_layer *dec;        /* (decoder_layers) */
    int *bad_ids;             /* never generated */
    int n_bad_ids;
    at_vocab *vocab;
    /* resources */
    void *map;
    size_t map_len;
    float **owned;
    int n_owned;
};

#endif

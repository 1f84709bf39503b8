/* model.c — loading and validating a model directory (docs/FORMAT.md).
 *
 * Nothing in model.bin is trusted until the whole header has been checked:
 * every count against overflow, every byte range against the file, every
 * tensor name and shape against the config. Only then are pointers formed. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise */
#include "model.h"
#include "gemm.h"
#include "internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "attn-translate reads little-endian weights in place; big-endian hosts are not supported"
#endif

#define AT_HEADER_MAX (16u << 20)
#define AT_ALIGN 64
#define AT_PREAMBLE 64
static const char AT_MAGIC[8] = {'A', 'T', 'T', 'N', 'T', 'R', 'W', '\0'};

/* ---- expected tensor table ------------------------------------------------ */

typedef struct expected {
    char name[96];
    int ndim;
    int64_t shape[2];
    const float **slot; /* where the f32 pointer goes */
    at_lin *lin;        /* the linear layer whose weight matrix (or scales) this is */
    int scale_of;       /* >= 0: the optional per-row scales of entry scale_of (i8) */
    int seen;
    int f16, i8;
    uint64_t offset, nbytes;
} expected;

typedef struct table {
    expected *e;
    int n, cap;
} table;

static at_status table_add(table *t, const float **slot, int64_t d0, int64_t d1,
                           at_error *err, const char *fmt, ...) AT_PRINTF(6, 7);

static at_status table_add(table *t, const float **slot, int64_t d0, int64_t d1,
                           at_error *err, const char *fmt, ...) {
    if (t->n == t->cap) {
        int ncap = t->cap ? t->cap * 2 : 64;
        expected *ne = realloc(t->e, (size_t)ncap * sizeof *ne);
        if (!ne) return at_fail(err, AT_ERR_NOMEM, "out of memory");
        t->e = ne;
        t->cap = ncap;
    }
    expected *x = &t->e[t->n++];
    memset(x, 0, sizeof *x);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->name, sizeof x->name, fmt, ap);
    va_end(ap);
    x->slot = slot;
    x->scale_of = -1;
    x->shape[0] = d0;
    x->shape[1] = d1;
    x->ndim = d1 > 0 ? 2 : 1;
    return AT_OK;
}

/* A linear layer's weight (out, in) and bias (out): "<name>.weight", "<name>.bias". */
/* The weight matrix `name` of linear layer L and, if the file stores it as i8, its
 * per-row scales "<name>.scale". */
static at_status add_lin_weight(table *t, at_lin *L, int64_t out, int64_t in, const char *name,
                                at_error *err) {
    at_status s = table_add(t, &L->w, out, in, err, "%s", name);
    if (s) return s;
    int w = t->n - 1;
    t->e[w].lin = L;
    s = table_add(t, &L->wscale, out, 0, err, "%s.scale", name);
    if (!s) t->e[t->n - 1].lin = L, t->e[t->n - 1].scale_of = w;
    return s;
}

static at_status add_lin(table *t, at_lin *L, int64_t out, int64_t in, const char *name,
                         at_error *err) {
    L->out = (int)out, L->in = (int)in;
    char wname[96];
    snprintf(wname, sizeof wname, "%s.weight", name);
    at_status s = add_lin_weight(t, L, out, in, wname, err);
    if (!s) s = table_add(t, &L->b, out, 0, err, "%s.bias", name);
    return s;
}

static at_status add_attn(table *t, at_attn_weights *a, int64_t d, const char *prefix,
                          at_error *err) {
    static const char *proj[4] = {"q", "k", "v", "out"};
    at_lin *lin[4] = {&a->q, &a->k, &a->v, &a->o};
    char name[96];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s_proj", prefix, proj[i]);
        at_status s = add_lin(t, lin[i], d, d, name, err);
        if (s) return s;
    }
    return AT_OK;
}

static at_status add_ln(table *t, at_ln *ln, int64_t d, const char *prefix, at_error *err) {
    at_status s = table_add(t, &ln->weight, d, 0, err, "%s.weight", prefix);
    if (!s) s = table_add(t, &ln->bias, d, 0, err, "%s.bias", prefix);
    return s;
}

static at_status add_ffn(table *t, at_ffn_weights *f, int64_t d, int64_t ffn,
                         const char *prefix, at_error *err) {
    char name[96];
    snprintf(name, sizeof name, "%s.fc1", prefix);
    at_status s = add_lin(t, &f->fc1, ffn, d, name, err);
    snprintf(name, sizeof name, "%s.fc2", prefix);
    if (!s) s = add_lin(t, &f->fc2, d, ffn, name, err);
    return s;
}

static at_status build_table(at_model *m, table *t, at_error *err) {
    const at_config *c = &m->cfg;
    int64_t d = c->d_model, V = c->vocab_size;
    at_status s;
    char p[64];
    if (c->shared_embeddings) {
        s = table_add(t, &m->enc_embed, V, d, err, "shared.weight");
    } else {
        s = table_add(t, &m->enc_embed, V, d, err, "encoder.embed_tokens.weight");
        if (!s) s = table_add(t, &m->dec_embed, V, d, err, "decoder.embed_tokens.weight");
    }
    m->lm_head.out = (int)V, m->lm_head.in = (int)d;
    if (!s && !c->tied_lm_head) s = add_lin_weight(t, &m->lm_head, V, d, "lm_head.weight", err);
    if (!s) s = table_add(t, &m->lm_head.b, V, 0, err, "final_logits_bias");
    for (int i = 0; !s && i < c->encoder_layers; i++) {
        at_enc_layer *L = &m->enc[i];
        snprintf(p, sizeof p, "encoder.layers.%d.self_attn", i);
        s = add_attn(t, &L->self_attn, d, p, err);
        snprintf(p, sizeof p, "encoder.layers.%d.self_attn_layer_norm", i);
        if (!s) s = add_ln(t, &L->self_attn_ln, d, p, err);
        snprintf(p, sizeof p, "encoder.layers.%d", i);
        if (!s) s = add_ffn(t, &L->ffn, d, c->encoder_ffn_dim, p, err);
        snprintf(p, sizeof p, "encoder.layers.%d.final_layer_norm", i);
        if (!s) s = add_ln(t, &L->final_ln, d, p, err);
    }
    for (int i = 0; !s && i < c->decoder_layers; i++) {
        at_dec_layer *L = &m->dec[i];
        snprintf(p, sizeof p, "decoder.layers.%d.self_attn", i);
        s = add_attn(t, &L->self_attn, d, p, err);
        snprintf(p, sizeof p, "decoder.layers.%d.self_attn_layer_norm", i);
        if (!s) s = add_ln(t, &L->self_attn_ln, d, p, err);
        snprintf(p, sizeof p, "decoder.layers.%d.encoder_attn", i);
        if (!s) s = add_attn(t, &L->cross_attn, d, p, err);
        snprintf(p, sizeof p, "decoder.layers.%d.encoder_attn_layer_norm", i);
        if (!s) s = add_ln(t, &L->cross_attn_ln, d, p, err);
        snprintf(p, sizeof p, "decoder.layers.%d", i);
        if (!s) s = add_ffn(t, &L->ffn, d, c->decoder_ffn_dim, p, err);
        snprintf(p, sizeof p, "decoder.layers.%d.final_layer_norm", i);
        if (!s) s = add_ln(t, &L->final_ln, d, p, err);
    }
    return s;
}

/* ---- JSON helpers ------------------------------------------------------------ */

/* A JSON number that is an exact integer in [lo, hi]. */
static int json_int(const cJSON *item, int64_t lo, int64_t hi, int64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double v = item->valuedouble;
    if (!(v >= (double)lo && v <= (double)hi) || v != floor(v)) return 0;
    *out = (int64_t)v;
    return 1;
}

static at_status cfg_int(const cJSON *cfg, const char *key, int64_t lo, int64_t hi, int *out,
                         const char *file, at_error *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(cfg, key);
    int64_t v;
    if (!it) return at_fail(err, AT_ERR_FORMAT, "%s: config.%s is missing", file, key);
    if (!json_int(it, lo, hi, &v))
        return at_fail(err, AT_ERR_FORMAT,
                       "%s: config.%s must be an integer in [%lld, %lld]", file, key,
                       (long long)lo, (long long)hi);
    *out = (int)v;
    return AT_OK;
}

static at_status cfg_bool(const cJSON *cfg, const char *key, int *out, const char *file,
                          at_error *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!it) return at_fail(err, AT_ERR_FORMAT, "%s: config.%s is missing", file, key);
    if (!cJSON_IsBool(it))
        return at_fail(err, AT_ERR_FORMAT, "%s: config.%s must be true or false", file, key);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return AT_OK;
}

static at_status parse_config(at_model *m, const cJSON *root, const char *file,
                              at_error *err) {
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "attn-translate") != 0)
        return at_fail(err, AT_ERR_FORMAT,
                       "%s: not an attn-translate model header (\"format\" must be "
                       "\"attn-translate\")", file);
    int64_t version;
    if (!json_int(cJSON_GetObjectItemCaseSensitive(root, "version"), 0, INT32_MAX, &version))
        return at_fail(err, AT_ERR_FORMAT, "%s: \"version\" is missing or not an integer", file);
    if (version != 1)
        return at_fail(err, AT_ERR_FORMAT,
                       "%s: format version %lld is not supported (this build reads version 1)",
                       file, (long long)version);
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architecture");
    if (!cJSON_IsString(arch) || strcmp(arch->valuestring, "marian") != 0)
        return at_fail(err, AT_ERR_FORMAT, "%s: \"architecture\" must be \"marian\"", file);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(root, "config");
    if (!cJSON_IsObject(cfg)) return at_fail(err, AT_ERR_FORMAT, "%s: \"config\" is missing", file);

    at_config *c = &m->cfg;
    const int64_t big = 1 << 24, small = 4096;
    at_status s;
    if ((s = cfg_int(cfg, "vocab_size", 1, big, &c->vocab_size, file, err)) ||
        (s = cfg_int(cfg, "d_model", 2, 65536, &c->d_model, file, err)) ||
        (s = cfg_int(cfg, "encoder_layers", 1, 256, &c->encoder_layers, file, err)) ||
        (s = cfg_int(cfg, "decoder_layers", 1, 256, &c->decoder_layers, file, err)) ||
        (s = cfg_int(cfg, "encoder_attention_heads", 1, small, &c->encoder_heads, file, err)) ||
        (s = cfg_int(cfg, "decoder_attention_heads", 1, small, &c->decoder_heads, file, err)) ||
        (s = cfg_int(cfg, "encoder_ffn_dim", 1, 1 << 20, &c->encoder_ffn_dim, file, err)) ||
        (s = cfg_int(cfg, "decoder_ffn_dim", 1, 1 << 20, &c->decoder_ffn_dim, file, err)) ||
        (s = cfg_int(cfg, "max_position_embeddings", 2, 1 << 16, &c->max_positions, file, err)) ||
        (s = cfg_bool(cfg, "scale_embedding", &c->scale_embedding, file, err)) ||
        (s = cfg_bool(cfg, "share_encoder_decoder_embeddings", &c->shared_embeddings, file, err)) ||
        (s = cfg_bool(cfg, "tie_word_embeddings", &c->tied_lm_head, file, err)))
        return s;
    int64_t V = c->vocab_size - 1;
    if ((s = cfg_int(cfg, "pad_token_id", 0, V, &c->pad_id, file, err)) ||
        (s = cfg_int(cfg, "eos_token_id", 0, V, &c->eos_id, file, err)) ||
        (s = cfg_int(cfg, "unk_token_id", 0, V, &c->unk_id, file, err)) ||
        (s = cfg_int(cfg, "decoder_start_token_id", 0, V, &c->decoder_start_id, file, err)))
        return s;
    if (c->d_model % c->encoder_heads || c->d_model % c->decoder_heads)
        return at_fail(err, AT_ERR_FORMAT,
                       "%s: d_model %d is not divisible by the attention head counts (%d, %d)",
                       file, c->d_model, c->encoder_heads, c->decoder_heads);
    if (c->d_model % 2)
        return at_fail(err, AT_ERR_FORMAT, "%s: d_model %d must be even", file, c->d_model);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(cfg, "layer_norm_eps");
    if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1))
        return at_fail(err, AT_ERR_FORMAT, "%s: config.layer_norm_eps must be a number in (0, 1)",
                       file);
    c->layer_norm_eps = (float)eps->valuedouble;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "activation_function");
    if (!cJSON_IsString(act))
        return at_fail(err, AT_ERR_FORMAT, "%s: config.activation_function is missing", file);
    if (!strcmp(act->valuestring, "swish") || !strcmp(act->valuestring, "silu"))
        m->act = AT_ACT_SWISH;
    else if (!strcmp(act->valuestring, "relu"))
        m->act = AT_ACT_RELU;
    else if (!strcmp(act->valuestring, "gelu"))
        m->act = AT_ACT_GELU;
    else
        return at_fail(err, AT_ERR_FORMAT,
                       "%s: config.activation_function \"%.32s\" is not one of swish, relu, gelu",
                       file, act->valuestring);
    snprintf(c->activation, sizeof c->activation, "%s",
             m->act == AT_ACT_SWISH ? "swish" : m->act == AT_ACT_RELU ? "relu" : "gelu");

    /* generation defaults */
    c->num_beams = 4;
    c->max_length = c->max_positions;
    c->length_penalty = 1.0f;
    const cJSON *gen = cJSON_GetObjectItemCaseSensitive(root, "generation");
    if (gen && !cJSON_IsObject(gen))
        return at_fail(err, AT_ERR_FORMAT, "%s: \"generation\" must be an object", file);
    if (gen) {
        const cJSON *it;
        if ((it = cJSON_GetObjectItemCaseSensitive(gen, "num_beams")) &&
            (s = cfg_int(gen, "num_beams", 1, 256, &c->num_beams, file, err)))
            return s;
        if ((it = cJSON_GetObjectItemCaseSensitive(gen, "max_length")) &&
            (s = cfg_int(gen, "max_length", 2, 1 << 20, &c->max_length, file, err)))
            return s;
        if ((it = cJSON_GetObjectItemCaseSensitive(gen, "length_penalty"))) {
            if (!cJSON_IsNumber(it) || !(fabs(it->valuedouble) <= 100))
                return at_fail(err, AT_ERR_FORMAT, "%s: generation.length_penalty must be a number",
                               file);
            c->length_penalty = (float)it->valuedouble;
        }
        if ((it = cJSON_GetObjectItemCaseSensitive(gen, "bad_words_ids"))) {
            if (!cJSON_IsArray(it))
                return at_fail(err, AT_ERR_FORMAT, "%s: generation.bad_words_ids must be an array",
                               file);
            int n = cJSON_GetArraySize(it);
            if (n > 0) {
                m->bad_ids = calloc((size_t)n, sizeof *m->bad_ids);
                if (!m->bad_ids) return at_fail(err, AT_ERR_NOMEM, "out of memory");
            }
            const cJSON *x;
            cJSON_ArrayForEach(x, it) {
                /* transformers writes [[id], ...]; accept that and plain ids */
                const cJSON *v = cJSON_IsArray(x) && cJSON_GetArraySize(x) == 1 ? x->child : x;
                int64_t id;
                if (!json_int(v, 0, V, &id))
                    return at_fail(err, AT_ERR_FORMAT,
                                   "%s: generation.bad_words_ids holds an id outside [0, %lld]",
                                   file, (long long)V);
                if (id == c->eos_id)
                    return at_fail(err, AT_ERR_FORMAT,
                                   "%s: generation.bad_words_ids must not contain eos", file);
                m->bad_ids[m->n_bad_ids++] = (int)id;
            }
        }
    }
    return AT_OK;
}

/* ---- weights ----------------------------------------------------------------- */

float at_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Round-to-nearest-even float → IEEE half (overflow gives ±inf, caught by callers). */
uint16_t at_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504 */
    if (ax < 0x38800000u) {                                   /* half subnormal or zero */
        if (ax < 0x33000000u) return (uint16_t)sign;
        uint32_t man = (ax & 0x7fffffu) | 0x800000u, e = ax >> 23;
        uint32_t shift = 126 - e; /* brings the value to units of 2^-24 */
        uint32_t q = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax + 0xfffu + ((ax >> 13) & 1); /* round to nearest even at bit 13 */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

/* Index of the first NaN or infinity in p[0, n), or n. Blocks are scanned with a
 * branch-free (vectorisable) exponent test first. */
static size_t first_nonfinite(const float *p, size_t n) {
    const uint32_t *u = (const uint32_t *)(const void *)p;
    for (size_t b = 0; b < n; b += 4096) {
        size_t e = n - b < 4096 ? n : b + 4096;
        uint32_t bad = 0;
        for (size_t k = b; k < e; k++) bad |= (uint32_t)((u[k] & 0x7f800000u) == 0x7f800000u);
        if (bad)
            for (size_t k = b; k < e; k++)
                if (!isfinite(p[k])) return k;
    }
    return n;
}

/* malloc whose block the model frees */
static void *owned_alloc(at_model *m, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (p) m->owned[m->n_owned++] = p;
    return p;
}

/* Tells the kernel it may drop the mapped pages of [off, off + n): they are read
 * back from the file if touched again. */
static void release_range(at_model *m, uint64_t off, uint64_t n) {
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t page = pg > 0 ? (uint64_t)pg : 4096, a = (off + page - 1) / page * page,
             b = (off + n) / page * page;
    if (b > a) madvise((char *)m->map + a, (size_t)(b - a), MADV_DONTNEED);
}

/* Gives a linear layer its compute-dtype weights from its f32 ones. */
#define NO_MAP UINT64_MAX
#define CHUNK_ROWS 1024 /* a multiple of 16: whole int8 blocks */

/* Gives a linear layer its compute-dtype weights from its f32 ones, CHUNK_ROWS rows at
 * a time. When the f32 rows lie in the mapping (at byte `map_off`; NO_MAP otherwise)
 * each chunk's pages are dropped once converted, so the f32 matrix is never resident
 * whole. */
static at_status convert_lin(at_model *m, at_lin *L, const char *path, const char *name,
                             uint64_t map_off, at_error *err) {
    size_t in = (size_t)L->in;
    gemm_isa isa = (gemm_isa)m->isa;
    uint16_t *h = NULL;
    int8_t *q = NULL;
    float *scale = NULL;
    int32_t *qsum = NULL;
    if (m->wtype == AT_W_F16) {
        h = owned_alloc(m, (size_t)L->out * in * sizeof *h);
        if (!h) return at_fail(err, AT_ERR_NOMEM, "out of memory converting '%s' to f16", name);
    } else {
        size_t rows = (size_t)gemm_pad16(L->out);
        q = owned_alloc(m, gemm_q8_bytes(L->out, L->in));
        scale = owned_alloc(m, rows * sizeof *scale);
        qsum = owned_alloc(m, rows * sizeof *qsum);
        if (!q || !scale || !qsum)
            return at_fail(err, AT_ERR_NOMEM, "out of memory quantizing '%s' to int8", name);
    }
    for (int r0 = 0; r0 < L->out; r0 += CHUNK_ROWS) {
        int nr = L->out - r0 < CHUNK_ROWS ? L->out - r0 : CHUNK_ROWS;
        const float *w = L->w + (size_t)r0 * in;
        size_t n = (size_t)nr * in, k = first_nonfinite(w, n);
        if (k < n)
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value at "
                           "element %zu", path, name, (size_t)r0 * in + k);
        if (h) {
            k = gemm_to_half(isa, w, n, h + (size_t)r0 * in);
            if (k < n)
                return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' element %zu (%g) overflows "
                               "f16; load it as f32 or int8", path, name, (size_t)r0 * in + k,
                               (double)w[k]);
        } else if (gemm_q8_pack(isa, w, nr, L->in, q + (size_t)r0 * (size_t)gemm_pad4(L->in),
                                scale + r0, qsum + r0)) {
            return at_fail(err, AT_ERR_NOMEM, "out of memory quantizing '%s' to int8", name);
        }
        if (map_off != NO_MAP) release_range(m, map_off + (uint64_t)r0 * in * 4, (uint64_t)n * 4);
    }
    if (h) L->h = h;
    else L->q = q, L->qscale = scale, L->qsum = qsum;
    return AT_OK;
}

/* An i8 weight from the file: packed as it is for int8 compute; otherwise widened to
 * float32(q) * scale (then narrowed to half for f16 compute). */
static at_status convert_i8(at_model *m, at_lin *L, const char *path, const char *name,
                            at_error *err) {
    size_t numel = (size_t)L->out * (size_t)L->in;
    if (m->wtype == AT_W_INT8) {
        size_t rows = (size_t)gemm_pad16(L->out);
        int8_t *q = owned_alloc(m, gemm_q8_bytes(L->out, L->in));
        float *scale = owned_alloc(m, rows * sizeof *scale);
        int32_t *qsum = owned_alloc(m, rows * sizeof *qsum);
        if (!q || !scale || !qsum)
            return at_fail(err, AT_ERR_NOMEM, "out of memory packing '%s'", name);
        gemm_q8_pack_rows(L->qfile, L->wscale, L->out, L->in, q, scale, qsum);
        L->q = q, L->qscale = scale, L->qsum = qsum;
        return AT_OK;
    }
    int temp = m->wtype == AT_W_F16;
    float *w = temp ? malloc(numel * sizeof *w) : owned_alloc(m, numel * sizeof *w);
    if (!w) return at_fail(err, AT_ERR_NOMEM, "out of memory widening '%s'", name);
    for (size_t r = 0; r < (size_t)L->out; r++)
        for (size_t k = 0; k < (size_t)L->in; k++)
            w[r * L->in + k] = (float)L->qfile[r * L->in + k] * L->wscale[r];
    L->w = w;
    at_status s = AT_OK;
    if (temp) {
        s = convert_lin(m, L, path, name, NO_MAP, err);
        free(w);
        L->w = NULL;
    }
    return s;
}

/* Frees an owned block early (its slot is cleared). */
static void owned_free(at_model *m, const void *p) {
    for (int i = 0; i < m->n_owned; i++)
        if (m->owned[i] == p) {
            free(m->owned[i]);
            m->owned[i] = NULL;
        }
}

/* Drops the mapped pages under [p, p + bytes) if p lies in the mapping. */
static void release_ptr(at_model *m, const void *p, size_t bytes) {
    const char *c = p, *b = m->map;
    if (c >= b && c < b + m->map_len) release_range(m, (uint64_t)(c - b), bytes);
}

/* f32 and f16 compute with AVX2: each linear layer's weights repacked once for the
 * packed kernels (gemm.h), 1,024 rows at a time; the row-major source is released
 * (mapped pages) or freed (owned) as it is consumed. */
static at_status pack_lin(at_model *m, at_lin *L, const char *name, at_error *err) {
    int half = m->wtype == AT_W_F16;
    size_t in = (size_t)L->in, es = half ? sizeof *L->h : sizeof *L->w;
    const char *src = half ? (const char *)L->h : (const char *)L->w;
    char *p = owned_alloc(m, gemm_packed_elems(L->out, L->in) * es);
    if (!p) return at_fail(err, AT_ERR_NOMEM, "out of memory packing '%s'", name);
    for (int r0 = 0; r0 < L->out; r0 += CHUNK_ROWS) { /* r0 is a multiple of 16 */
        int nr = L->out - r0 < CHUNK_ROWS ? L->out - r0 : CHUNK_ROWS;
        size_t at = (size_t)r0 * in * es;
        if (half)
            gemm_pack_f16((const uint16_t *)(const void *)(src + at), nr, L->in,
                          (uint16_t *)(void *)(p + at));
        else
            gemm_pack_f32((const float *)(const void *)(src + at), nr, L->in,
                          (float *)(void *)(p + at));
        release_ptr(m, src + at, (size_t)nr * in * es);
    }
    if (half) {
        owned_free(m, L->h); /* a no-op when it lies in the mapping */
        L->h = NULL;
        L->ph = (const uint16_t *)(const void *)p;
    } else {
        L->pw = (const float *)(const void *)p;
    }
    return AT_OK;
}

static at_status pack_all(at_model *m, at_error *err) {
    if (m->isa < GEMM_AVX2 || m->wtype == AT_W_INT8) return AT_OK;
    at_status s = AT_OK;
    for (int l = 0; !s && l < m->cfg.encoder_layers; l++) {
        at_enc_layer *E = &m->enc[l];
        at_lin *lins[6] = {&E->self_attn.q, &E->self_attn.k, &E->self_attn.v, &E->self_attn.o,
                           &E->ffn.fc1, &E->ffn.fc2};
        for (int i = 0; !s && i < 6; i++) s = pack_lin(m, lins[i], "an encoder layer", err);
    }
    for (int l = 0; !s && l < m->cfg.decoder_layers; l++) {
        at_dec_layer *D = &m->dec[l];
        at_lin *lins[10] = {&D->self_attn.q,  &D->self_attn.k,  &D->self_attn.v,
                            &D->self_attn.o,  &D->cross_attn.q, &D->cross_attn.k,
                            &D->cross_attn.v, &D->cross_attn.o, &D->ffn.fc1, &D->ffn.fc2};
        for (int i = 0; !s && i < 10; i++) s = pack_lin(m, lins[i], "a decoder layer", err);
    }
    if (!s) s = pack_lin(m, &m->lm_head, "lm_head", err);
    return s;
}

static int cmp_range(const void *a, const void *b) {
    const expected *x = *(const expected *const *)a, *y = *(const expected *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static at_status map_weights(at_model *m, const cJSON *root, table *t, const char *dir,
                             const char *file, at_error *err) {
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "weights");
    if (!cJSON_IsObject(w)) return at_fail(err, AT_ERR_FORMAT, "%s: \"weights\" is missing", file);
    const cJSON *wf = cJSON_GetObjectItemCaseSensitive(w, "file");
    if (!cJSON_IsString(wf) || !wf->valuestring[0] || strchr(wf->valuestring, '/') ||
        !strcmp(wf->valuestring, "..") || strlen(wf->valuestring) > 255)
        return at_fail(err, AT_ERR_FORMAT, "%s: weights.file must be a plain file name", file);
    int64_t wbytes, align;
    if (!json_int(cJSON_GetObjectItemCaseSensitive(w, "bytes"), AT_PREAMBLE, INT64_C(1) << 50,
                  &wbytes))
        return at_fail(err, AT_ERR_FORMAT, "%s: weights.bytes is missing or invalid", file);
    if (!json_int(cJSON_GetObjectItemCaseSensitive(w, "alignment"), 1, 1 << 20, &align) ||
        align != AT_ALIGN)
        return at_fail(err, AT_ERR_FORMAT, "%s: weights.alignment must be %d", file, AT_ALIGN);

    /* tensor table: everything checked before the file is even opened */
    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    if (!cJSON_IsObject(tensors))
        return at_fail(err, AT_ERR_FORMAT, "%s: \"tensors\" is missing", file);
    const cJSON *it;
    cJSON_ArrayForEach(it, tensors) {
        const char *name = it->string;
        expected *x = NULL;
        for (int i = 0; i < t->n; i++)
            if (!strcmp(t->e[i].name, name)) {
                x = &t->e[i];
                break;
            }
        if (!x) return at_fail(err, AT_ERR_FORMAT, "%s: unknown tensor '%.100s'", file, name);
        if (x->seen) return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' appears twice", file, name);
        x->seen = 1;
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        int64_t off, nb;
        if (!cJSON_IsString(dt))
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' has no dtype", file, name);
        size_t esize;
        if (!strcmp(dt->valuestring, "f32"))
            esize = 4;
        else if (!strcmp(dt->valuestring, "f16"))
            esize = 2;
        else if (!strcmp(dt->valuestring, "i8"))
            esize = 1;
        else
            return at_fail(err, AT_ERR_FORMAT,
                           "%s: tensor '%s' has dtype \"%.16s\" (supported: f32, f16, i8)", file,
                           name, dt->valuestring);
        if (esize == 1 && (!x->lin || x->scale_of >= 0))
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' is i8, which is only for the "
                           "weights of linear layers", file, name);
        if (x->scale_of >= 0 && esize != 4)
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' (i8 scales) must be f32", file, name);
        /* shape */
        char got[96] = "", want[96];
        int nd = cJSON_IsArray(sh) ? cJSON_GetArraySize(sh) : -1;
        int ok = nd == x->ndim;
        uint64_t numel = 1;
        for (int i = 0; nd > 0 && i < nd && i < 4; i++) {
            int64_t v;
            const cJSON *dim = cJSON_GetArrayItem(sh, i);
            if (!json_int(dim, 0, INT64_C(1) << 40, &v)) {
                ok = 0;
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s?", i ? "," : "");
                continue;
            }
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
                     (long long)v);
            if (i < x->ndim && v != x->shape[i]) ok = 0;
            numel *= (uint64_t)v; /* each dim < 2^40 and checked against the config below */
        }
        if (x->ndim == 2)
            snprintf(want, sizeof want, "%lld,%lld", (long long)x->shape[0], (long long)x->shape[1]);
        else
            snprintf(want, sizeof want, "%lld", (long long)x->shape[0]);
        if (!ok)
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' has shape [%s], expected [%s]", file,
                           name, nd < 0 ? "not an array" : got, want);
        if (!json_int(cJSON_GetObjectItemCaseSensitive(it, "offset"), 0, INT64_C(1) << 52, &off) ||
            !json_int(cJSON_GetObjectItemCaseSensitive(it, "nbytes"), 0, INT64_C(1) << 52, &nb))
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' needs integer offset and nbytes",
                           file, name);
        if ((uint64_t)nb != numel * esize)
            return at_fail(err, AT_ERR_FORMAT,
                           "%s: tensor '%s' has nbytes %lld, expected %llu for [%s] %s", file, name,
                           (long long)nb, (unsigned long long)(numel * esize), want, dt->valuestring);
        if (off < AT_PREAMBLE || off % AT_ALIGN)
            return at_fail(err, AT_ERR_FORMAT,
                           "%s: tensor '%s' offset %lld is not a multiple of %d past the preamble",
                           file, name, (long long)off, AT_ALIGN);
        if (nb > wbytes || off > wbytes - nb)
            return at_fail(err, AT_ERR_FORMAT,
                           "%s: tensor '%s' bytes [%lld, %lld) lie past the end of the %lld-byte "
                           "weights file", file, name, (long long)off, (long long)(off + nb),
                           (long long)wbytes);
        x->offset = (uint64_t)off;
        x->nbytes = (uint64_t)nb;
        x->f16 = esize == 2;
        x->i8 = esize == 1;
    }
    int any_i8 = 0;
    for (int i = 0; i < t->n; i++) {
        expected *x = &t->e[i];
        any_i8 |= x->i8;
        if (x->scale_of >= 0) { /* scales go with i8 weights, and only with them */
            const expected *wt = &t->e[x->scale_of];
            if (wt->i8 && !x->seen)
                return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' is missing (the scales of i8 "
                               "tensor '%s')", file, x->name, wt->name);
            if (!wt->i8 && x->seen)
                return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' given but '%s' is not i8",
                               file, x->name, wt->name);
        } else if (!x->seen) {
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' is missing", file, x->name);
        }
    }
    if (any_i8 && m->wtype == AT_W_F32 && m->auto_dtype) m->wtype = AT_W_INT8; /* as stored */
    /* no overlaps */
    expected **order = malloc((size_t)t->n * sizeof *order);
    if (!order) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    int n_seen = 0;
    for (int i = 0; i < t->n; i++)
        if (t->e[i].seen) order[n_seen++] = &t->e[i];
    qsort(order, (size_t)n_seen, sizeof *order, cmp_range);
    for (int i = 1; i < n_seen; i++)
        if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset) {
            at_status s = at_fail(err, AT_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", file,
                                  order[i - 1]->name, order[i]->name);
            free(order);
            return s;
        }
    free(order);

    /* the file */
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, wf->valuestring) >= sizeof path)
        return at_fail(err, AT_ERR_ARG, "%s: path too long", dir);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return at_fail(err, AT_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return at_fail(err, AT_ERR_IO, "%s: not a regular file", path);
    }
    if ((int64_t)st.st_size != wbytes) {
        close(fd);
        return at_fail(err, AT_ERR_FORMAT,
                       "%s: file is %lld bytes, the header says %lld (truncated or wrong file?)",
                       path, (long long)st.st_size, (long long)wbytes);
    }
    void *map = mmap(NULL, (size_t)wbytes, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return at_fail(err, AT_ERR_IO, "%s: mmap: %s", path, strerror(errno));
    m->map = map;
    m->map_len = (size_t)wbytes;
    const unsigned char *base = map;
    uint32_t ver;
    memcpy(&ver, base + 8, 4);
    if (memcmp(base, AT_MAGIC, sizeof AT_MAGIC) != 0)
        return at_fail(err, AT_ERR_FORMAT, "%s: bad magic (not an attn-translate weights file)",
                       path);
    if (ver != 1)
        return at_fail(err, AT_ERR_FORMAT, "%s: weights version %u, expected 1", path, ver);

    /* form pointers; widen f16; check every value is finite; convert linear weights
     * to the compute dtype */
    m->owned = calloc((size_t)t->n * 4 + 4, sizeof *m->owned); /* at most 4 per tensor */
    if (!m->owned) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->n; i++) {
        expected *x = &t->e[i];
        const unsigned char *src = base + x->offset;
        if (!x->seen) continue; /* the scales of a weight that is not i8 */
        if (x->i8) {            /* converted below, once its scales are known */
            const int8_t *q = (const int8_t *)(const void *)src;
            for (size_t k = 0; k < x->nbytes; k++)
                if (q[k] == -128)
                    return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' holds -128 at element %zu "
                                   "(i8 weights lie in -127..127)", path, x->name, k);
            x->lin->qfile = q;
            continue;
        }
        if (x->scale_of >= 0) {
            const float *sc = (const float *)(const void *)src;
            for (size_t k = 0; k < x->nbytes / 4; k++)
                if (!(sc[k] >= 0.0f && sc[k] < INFINITY))
                    return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' holds %g at element %zu "
                                   "(scales are finite and >= 0)", path, x->name, (double)sc[k], k);
            *x->slot = sc;
            continue;
        }
        if (x->f16) {
            size_t numel = x->nbytes / 2;
            const uint16_t *h = (const uint16_t *)(const void *)src;
            for (size_t k = 0; k < numel; k++)
                if ((h[k] & 0x7c00u) == 0x7c00u)
                    return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value "
                                   "at element %zu", path, x->name, k);
            if (x->lin && m->wtype == AT_W_F16) { /* used in place, never widened */
                x->lin->h = h;
                continue;
            }
            int temp = x->lin && m->wtype == AT_W_INT8; /* widened only to be quantized */
            float *buf = temp ? malloc(numel * sizeof *buf) : owned_alloc(m, numel * sizeof *buf);
            if (!buf) return at_fail(err, AT_ERR_NOMEM, "out of memory widening '%s'", x->name);
            for (size_t k = 0; k < numel; k++) buf[k] = at_half_to_float(h[k]);
            *x->slot = buf;
            if (temp) {
                at_status s = convert_lin(m, x->lin, path, x->name, NO_MAP, err);
                free(buf);
                x->lin->w = NULL;
                if (s) return s;
            }
        } else {
            size_t numel = x->nbytes / 4;
            const float *p = (const float *)(const void *)src;
            *x->slot = p;
            if (x->lin && m->wtype != AT_W_F32) { /* checked and converted chunk by chunk */
                at_status s = convert_lin(m, x->lin, path, x->name, x->offset, err);
                if (s) return s;
                continue;
            }
            /* With f16 or int8 compute, f32 pages read only for the check are dropped
             * 1 MiB at a time; embedding rows fault back in as they are looked up. */
            size_t step = m->wtype == AT_W_F32 ? numel : (size_t)1 << 18;
            for (size_t b0 = 0; b0 < numel; b0 += step) {
                size_t n = numel - b0 < step ? numel - b0 : step, k = first_nonfinite(p + b0, n);
                if (k < n)
                    return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value "
                                   "at element %zu", path, x->name, b0 + k);
                if (m->wtype != AT_W_F32) release_range(m, x->offset + b0 * 4, n * 4);
            }
        }
    }
    for (int i = 0; i < t->n; i++) {
        expected *x = &t->e[i];
        if (!x->i8) continue;
        at_status s = convert_i8(m, x->lin, path, x->name, err);
        if (s) return s;
        release_range(m, x->offset, x->nbytes);
    }
    if (m->cfg.shared_embeddings) m->dec_embed = m->enc_embed;
    if (m->cfg.tied_lm_head) m->lm_head.w = m->dec_embed;
    if (m->cfg.tied_lm_head && m->wtype != AT_W_F32) {
        const float **emb = m->cfg.shared_embeddings ? &m->enc_embed : &m->dec_embed;
        uint64_t off = NO_MAP;
        for (int i = 0; i < t->n; i++)
            if (t->e[i].slot == emb && !t->e[i].f16) off = t->e[i].offset;
        at_status s = convert_lin(m, &m->lm_head, path, "lm_head (tied to the embeddings)", off, err);
        if (s) return s;
    }
    return pack_all(m, err);
}

static at_status make_positions(at_model *m, at_error *err) {
    int d = m->cfg.d_model, half = d / 2, n = m->cfg.max_positions;
    m->positions = malloc((size_t)n * (size_t)d * sizeof *m->positions);
    if (!m->positions) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    for (int p = 0; p < n; p++)
        for (int j = 0; j < half; j++) {
            double angle = p / pow(10000.0, 2.0 * j / d);
            m->positions[(size_t)p * d + j] = (float)sin(angle);
            m->positions[(size_t)p * d + half + j] = (float)cos(angle);
        }
    return AT_OK;
}

/* ---- public ------------------------------------------------------------------ */

at_status at_model_load(const char *dir, at_model **out, at_error *err) {
    return at_model_load_dtype(dir, AT_DTYPE_AUTO, out, err);
}

int at_dtype_parse(const char *name) {
    static const char *names[] = {"auto", "f32", "f16", "int8"};
    for (int i = 0; name && i < 4; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

const char *at_model_compute(const at_model *m) {
    if (!m) return "";
    static const char *const desc[3][3] = {
        {"f32, OpenBLAS", "f32, packed avx2 kernels", "f32, packed avx2 kernels"},
        {"f16, widened for OpenBLAS", "f16, packed f16c/avx2 kernels",
         "f16, packed f16c/avx2 kernels"},
        {"int8, scalar kernels", "int8, avx2 kernels", "int8, avx512-vnni kernels"}};
    return desc[m->wtype][m->isa];
}

at_status at_model_load_dtype(const char *dir, at_dtype dtype, at_model **out, at_error *err) {
    if (!dir || !out) return at_fail(err, AT_ERR_ARG, "at_model_load: NULL argument");
    if ((int)dtype < AT_DTYPE_AUTO || dtype > AT_DTYPE_INT8)
        return at_fail(err, AT_ERR_ARG, "at_model_load: unknown dtype %d", (int)dtype);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/model.json", dir) >= sizeof path)
        return at_fail(err, AT_ERR_ARG, "%s: path too long", dir);
    struct stat st;
    if (stat(dir, &st) != 0) return at_fail(err, AT_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return at_fail(err, AT_ERR_IO, "%s: not a directory (a model is a directory)", dir);

    at_model *m = calloc(1, sizeof *m);
    char *text = NULL;
    size_t len;
    cJSON *root = NULL;
    table t = {0};
    at_status s = m ? AT_OK : at_fail(err, AT_ERR_NOMEM, "out of memory");
    if (!s) s = at_read_file(path, AT_HEADER_MAX, &text, &len, err);
    if (!s && strlen(text) != len) s = at_fail(err, AT_ERR_FORMAT, "%s: contains a NUL byte", path);
    if (!s) {
        const char *where = NULL;
        root = cJSON_ParseWithOpts(text, &where, 1);
        if (!root)
            s = at_fail(err, AT_ERR_FORMAT, "%s: invalid JSON near byte %zu", path,
                        where ? (size_t)(where - text) : 0);
    }
    if (!s && !cJSON_IsObject(root)) s = at_fail(err, AT_ERR_FORMAT, "%s: not a JSON object", path);
    if (!s) s = parse_config(m, root, path, err);
    if (!s) {
        m->enc = calloc((size_t)m->cfg.encoder_layers, sizeof *m->enc);
        m->dec = calloc((size_t)m->cfg.decoder_layers, sizeof *m->dec);
        if (!m->enc || !m->dec) s = at_fail(err, AT_ERR_NOMEM, "out of memory");
    }
    if (!s) {
        m->wtype = dtype == AT_DTYPE_F16 ? AT_W_F16 : dtype == AT_DTYPE_INT8 ? AT_W_INT8 : AT_W_F32;
        m->auto_dtype = dtype == AT_DTYPE_AUTO;
        m->isa = (int)gemm_detect_isa();
    }
    if (!s) s = build_table(m, &t, err);
    if (!s) s = map_weights(m, root, &t, dir, path, err);
    if (!s) s = make_positions(m, err);
    if (!s) {
        char vpath[4096];
        snprintf(vpath, sizeof vpath, "%s/vocab.json", dir);
        s = at_vocab_load(vpath, m->cfg.vocab_size, &m->vocab, err);
    }
    if (!s) {
        int pad, eos, unk;
        at_vocab_special(m->vocab, &pad, &eos, &unk);
        if (pad != m->cfg.pad_id || eos != m->cfg.eos_id || unk != m->cfg.unk_id)
            s = at_fail(err, AT_ERR_FORMAT,
                        "%s/vocab.json: special ids pad=%d eos=%d unk=%d disagree with model.json "
                        "(pad=%d eos=%d unk=%d)", dir, pad, eos, unk, m->cfg.pad_id,
                        m->cfg.eos_id, m->cfg.unk_id);
    }
    free(t.e);
    cJSON_Delete(root);
    free(text);
    if (s) {
        at_model_free(m);
        return s;
    }
    *out = m;
    return AT_OK;
}

void at_model_free(at_model *m) {
    if (!m) return;
    if (m->map) munmap(m->map, m->map_len);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->positions);
    free(m->enc);
    free(m->dec);
    free(m->bad_ids);
    at_vocab_free(m->vocab);
    free(m);
}

const at_config *at_model_config(const at_model *m) { return m ? &m->cfg : NULL; }

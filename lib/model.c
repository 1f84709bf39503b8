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
#include <pthread.h>
#include <stdatomic.h>
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
#define AT_LOAD_THREADS_MAX 64
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
    at_emb *emb;        /* the embedding this is */
    int scale_of;       /* >= 0: the optional per-row scales of entry scale_of (i8) */
    int optional;       /* may be absent: a tied model's int8 output projection (v2) */
    int seen;
    int f16, i8, packed;
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
        s = table_add(t, NULL, V, d, err, "shared.weight");
        if (!s) t->e[t->n - 1].emb = &m->enc_embed;
    } else {
        s = table_add(t, NULL, V, d, err, "encoder.embed_tokens.weight");
        if (!s) t->e[t->n - 1].emb = &m->enc_embed;
        if (!s) s = table_add(t, NULL, V, d, err, "decoder.embed_tokens.weight");
        if (!s) t->e[t->n - 1].emb = &m->dec_embed;
    }
    m->lm_head.out = (int)V, m->lm_head.in = (int)d;
    if (!s) s = add_lin_weight(t, &m->lm_head, V, d, "lm_head.weight", err);
    if (!s && c->tied_lm_head) t->e[t->n - 2].optional = t->e[t->n - 1].optional = 1;
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
    if (version != 1 && version != 2)
        return at_fail(err, AT_ERR_FORMAT,
                       "%s: format version %lld is not supported (this build reads versions 1 and 2)",
                       file, (long long)version);
    m->version = (int)version;
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

/* ---- linear layers: checked, then used in place or converted ---------------------
 *
 * A weight matrix is read 16 rows (one packed block) at a time: the block's stored
 * values are checked (finite, -127..127, zero padding), then converted to the compute
 * form while they are in cache, and the mapped pages are given back to the kernel
 * every CHUNK_ROWS rows. When the stored form is the compute form (a packed16 file
 * for the packed kernels, a row-major one without AVX2) the weights are used in place
 * in the mapping: loading is then the checks alone. */

#define CHUNK_ROWS 1024 /* a multiple of 16 */

/* What a linear layer's weights become for the model's dtype and kernels. */
typedef enum { T_PF32, T_RF32, T_PF16, T_RF16, T_Q8 } target;

static target lin_target(const at_model *m) {
    int packed = m->isa >= GEMM_AVX2;
    if (m->wtype == AT_W_INT8) return T_Q8;
    if (m->wtype == AT_W_F16) return packed ? T_PF16 : T_RF16;
    return packed ? T_PF32 : T_RF32;
}

/* The stored form is the compute form. */
static int in_place(target tg, const expected *x) {
    int f32 = !x->f16 && !x->i8;
    switch (tg) {
    case T_PF32: return f32 && x->packed;
    case T_RF32: return f32 && !x->packed;
    case T_PF16: return x->f16 && x->packed;
    case T_RF16: return x->f16 && !x->packed;
    case T_Q8: return x->i8 && x->packed;
    }
    return 0;
}

/* Bytes of the arena that lin_convert takes for L (64 of slack per block taken). */
static size_t lin_bytes(const at_lin *L, target tg, const expected *x) {
    size_t out16 = (size_t)gemm_pad16(L->out), in = (size_t)L->in, out = (size_t)L->out;
    size_t n = tg == T_Q8 ? 2 * (out16 * 4 + 64) : 0; /* scales and row sums */
    if (in_place(tg, x)) return n;
    switch (tg) {
    case T_PF32: return out16 * in * 4 + 64;
    case T_RF32: return out * in * 4 + 64;
    case T_PF16: return out16 * in * 2 + 64;
    case T_RF16: return out * in * 2 + 64;
    case T_Q8: return n + gemm_q8_bytes(L->out, L->in) + 64;
    }
    return 0;
}

typedef struct loader {
    at_model *m;
    const unsigned char *base; /* the mapping */
    const char *path;          /* model.bin, for messages */
    char *at, *end;            /* the unused part of the arena */
    float *R;                  /* scratch: 16 rows as f32 */
    uint16_t *H;               /* scratch: 16 rows as half */
    int8_t *Q;                 /* scratch: 16 quantized rows */
    int32_t qsum[16];          /* row sums of the last packed i8 block checked */
} loader;

/* One anonymous mapping for every converted weight, aligned to 2 MiB and offered
 * transparent huge pages when it spans several: far fewer page faults than malloc'd
 * blocks, and fewer TLB misses in the kernels. Its start goes to *base. */
static at_status arena_reserve(at_model *m, size_t bytes, char **base, at_error *err) {
    const size_t huge = (size_t)2 << 20;
    *base = NULL;
    if (!bytes) return AT_OK;
    void *p = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return at_fail(err, AT_ERR_NOMEM, "out of memory (%zu MiB for the weights)", bytes >> 20);
    m->arena_map = p;
    m->arena_map_len = bytes + huge;
    *base = (char *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
#ifdef MADV_HUGEPAGE
    if (bytes >= 2 * huge) madvise(*base, bytes / huge * huge, MADV_HUGEPAGE);
#endif
    return AT_OK;
}

/* The next 64-byte aligned block of the window [ld->at, ld->end) planned for a layer. */
static void *arena_take(loader *ld, size_t bytes) {
    char *p = (char *)(((uintptr_t)ld->at + 63) & ~(uintptr_t)63);
    if (!ld->at || p > ld->end || (size_t)(ld->end - p) < bytes) return NULL; /* not planned */
    ld->at = p + bytes;
    return p;
}

/* ---- several loading threads ---------------------------------------------------- */

/* The linear layers are converted by `threads` workers taking them in order from a
 * shared counter, each with its own scratch and its own window of the arena (planned
 * up front, so where a layer goes does not depend on the threads). A worker stops
 * taking layers after any failure; every layer before the first failing one has been
 * taken by then and is finished, so the error reported is the first in layer order,
 * as with one thread. */
typedef struct convert_job {
    const loader *proto;       /* m, base, path */
    at_lin **lins;
    const expected **src;
    char **window;             /* each layer's arena window: [window[j], window[j + 1]) */
    at_status *status;
    at_error *errs;
    size_t in_max;
    int n;
    atomic_int next, failed;
} convert_job;

static at_status lin_convert(loader *ld, at_lin *L, const expected *x, const float *wscale,
                             int check_only, at_error *err);

static void *convert_worker(void *arg) {
    convert_job *job = arg;
    loader ld = *job->proto;
    ld.R = malloc(16 * job->in_max * sizeof *ld.R);
    ld.H = malloc(16 * job->in_max * sizeof *ld.H);
    ld.Q = malloc(16 * (size_t)gemm_pad4((int)job->in_max));
    for (;;) {
        int j = atomic_fetch_add(&job->next, 1);
        if (j >= job->n || atomic_load(&job->failed)) break;
        if (!ld.R || !ld.H || !ld.Q) {
            job->status[j] = at_fail(&job->errs[j], AT_ERR_NOMEM, "out of memory");
        } else {
            ld.at = job->window[j], ld.end = job->window[j + 1];
            job->status[j] = lin_convert(&ld, job->lins[j], job->src[j], job->lins[j]->wscale, 0,
                                         &job->errs[j]);
        }
        if (job->status[j]) atomic_store(&job->failed, 1);
    }
    free(ld.R);
    free(ld.H);
    free(ld.Q);
    return NULL;
}

/* Runs convert_worker on `threads` threads (the calling one included; fewer when
 * threads cannot be started). Returns the first failure in layer order. */
static at_status convert_all(convert_job *job, int threads, at_error *err) {
    pthread_t tid[AT_LOAD_THREADS_MAX];
    int started = 0;
    if (threads > AT_LOAD_THREADS_MAX) threads = AT_LOAD_THREADS_MAX;
    if (threads > job->n) threads = job->n;
    for (int i = 1; i < threads; i++)
        if (pthread_create(&tid[started], NULL, convert_worker, job) == 0) started++;
    convert_worker(job);
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    for (int j = 0; j < job->n; j++)
        if (job->status[j]) {
            if (err) *err = job->errs[j];
            return job->status[j];
        }
    return AT_OK;
}

static size_t esize_of(const expected *x) { return x->i8 ? 1 : x->f16 ? 2 : 4; }

/* Bytes of rows [r0, r0 + 16) of x, an (out, in) matrix, from the start of the tensor. */
static size_t block_at(const expected *x, size_t in, size_t r0) {
    return r0 * (x->i8 && x->packed ? (size_t)gemm_pad4((int)in) : in) * esize_of(x);
}

/* Element (row-major index) of value i of the packed16 f32 / f16 block at row r0. */
static size_t packed_elem(size_t r0, size_t in, size_t i) { return (r0 + i % 16) * in + i / 16; }

/* Checks the stored values of rows [r0, r0 + nr) of x, an (out, in) matrix (the whole
 * 16-row block, padding included, when it is packed16). */
static at_status check_block(loader *ld, const expected *x, size_t in, size_t r0, int nr,
                             at_error *err) {
    gemm_isa isa = (gemm_isa)ld->m->isa;
    const unsigned char *src = ld->base + x->offset + block_at(x, in, r0);
    if (x->i8 && x->packed) {
        const int8_t *blk = (const int8_t *)(const void *)src;
        long at = gemm_q8_check_block(isa, blk, nr, (int)in, ld->qsum);
        size_t r = (size_t)at / 4 % 16, k = (size_t)at / 64 * 4 + (size_t)at % 4;
        if (at >= 0 && (int)r < nr && k < in)
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' holds -128 at element %zu (i8 "
                           "weights lie in -127..127)", ld->path, x->name, (r0 + r) * in + k);
        if (at >= 0)
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' (packed16) has a nonzero padding "
                           "byte at offset %zu", ld->path, x->name,
                           block_at(x, in, r0) + (size_t)at);
        return AT_OK;
    }
    if (x->i8) {
        const int8_t *q = (const int8_t *)(const void *)src;
        for (size_t k = 0; k < (size_t)nr * in; k++)
            if (q[k] == -128)
                return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' holds -128 at element %zu (i8 "
                               "weights lie in -127..127)", ld->path, x->name, r0 * in + k);
        return AT_OK;
    }
    size_t es = esize_of(x), n = (x->packed ? 16 : (size_t)nr) * in, k;
    if (x->packed && nr < 16) /* padding lanes: every byte 0 */
        for (size_t kk = 0; kk < in; kk++)
            for (size_t b = (size_t)nr * es; b < 16 * es; b++)
                if (src[kk * 16 * es + b])
                    return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' (packed16) has a nonzero "
                                   "padding byte at offset %zu", ld->path, x->name,
                                   block_at(x, in, r0) + kk * 16 * es + b);
    k = x->f16 ? gemm_first_nonfinite_half(isa, (const uint16_t *)(const void *)src, n)
               : gemm_first_nonfinite(isa, (const float *)(const void *)src, n);
    if (k < n)
        return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value at element %zu",
                       ld->path, x->name, x->packed ? packed_elem(r0, in, k) : r0 * in + k);
    return AT_OK;
}

/* Rows [r0, r0 + nr) of x (checked) as row-major float32: in the mapping when they are
 * stored so, else widened, unpacked or dequantized (float32(q) · scale) into ld->R. */
static at_status rows_f32(loader *ld, const expected *x, const float *wscale, size_t in,
                          size_t r0, int nr, const float **out, at_error *err) {
    const unsigned char *src = ld->base + x->offset + block_at(x, in, r0);
    float *R = ld->R;
    size_t n = (size_t)nr * in;
    if (!x->f16 && !x->i8 && !x->packed) {
        *out = (const float *)(const void *)src;
        return AT_OK;
    }
    if (x->f16 && !x->packed) {
        gemm_widen((gemm_isa)ld->m->isa, (const uint16_t *)(const void *)src, n, R);
    } else if (!x->i8) {
        const float *f = (const float *)(const void *)src;
        const uint16_t *h = (const uint16_t *)(const void *)src;
        for (size_t r = 0; r < (size_t)nr; r++)
            for (size_t k = 0; k < in; k++)
                R[r * in + k] = x->f16 ? at_half_to_float(h[k * 16 + r]) : f[k * 16 + r];
    } else {
        const int8_t *q = (const int8_t *)(const void *)src;
        for (size_t r = 0; r < (size_t)nr; r++)
            for (size_t k = 0; k < in; k++) {
                int8_t v = x->packed ? q[k / 4 * 64 + r * 4 + k % 4] : q[r * in + k];
                R[r * in + k] = (float)v * wscale[r0 + r];
            }
        size_t k = gemm_first_nonfinite((gemm_isa)ld->m->isa, R, n);
        if (k < n)
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' element %zu (q x scale) overflows "
                           "f32", ld->path, x->name, r0 * in + k);
    }
    *out = R;
    return AT_OK;
}

static at_status half_overflow(loader *ld, const expected *x, size_t elem, at_error *err) {
    return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' element %zu overflows f16; load it as f32 "
                   "or int8", ld->path, x->name, elem);
}

/* Gives L its compute-form weights from the stored tensor x (wscale: its scales when
 * i8). `release`: drop x's mapped pages as they are consumed. With x == NULL-like use
 * (check_only), the tensor is only checked (the int8 output projection of a tied model
 * computing in f32 or f16). */
static at_status lin_convert(loader *ld, at_lin *L, const expected *x, const float *wscale,
                             int check_only, at_error *err) {
    at_model *m = ld->m;
    gemm_isa isa = (gemm_isa)m->isa;
    target tg = lin_target(m);
    int ip = !check_only && in_place(tg, x);
    size_t in = (size_t)L->in, out = (size_t)L->out, out16 = (size_t)gemm_pad16(L->out),
           in4 = (size_t)gemm_pad4(L->in);
    const unsigned char *src = ld->base + x->offset;
    float *pw = NULL, *w = NULL, *scale = NULL;
    uint16_t *ph = NULL, *h = NULL;
    int8_t *q = NULL;
    int32_t *qsum = NULL;
    if (!check_only) {
        if (tg == T_Q8) {
            scale = arena_take(ld, out16 * sizeof *scale);
            qsum = arena_take(ld, out16 * sizeof *qsum);
            if (!ip) q = arena_take(ld, gemm_q8_bytes(L->out, L->in));
            if (!scale || !qsum || (!ip && !q)) goto nomem;
        } else if (!ip) {
            void *p = arena_take(ld, (tg == T_PF32 || tg == T_PF16 ? out16 : out) * in *
                                         (tg == T_PF32 || tg == T_RF32 ? 4 : 2));
            if (!p) goto nomem;
            if (tg == T_PF32) pw = p;
            else if (tg == T_RF32) w = p;
            else if (tg == T_PF16) ph = p;
            else h = p;
        }
    }
    size_t released = 0;
    for (size_t r0 = 0; r0 < out; r0 += 16) {
        int nr = out - r0 < 16 ? (int)(out - r0) : 16;
        at_status s = check_block(ld, x, in, r0, nr, err);
        if (s) return s;
        const float *R = NULL;
        size_t k, n = (size_t)nr * in;
        if (check_only || ip) {
            /* nothing to convert */
        } else if (tg == T_PF32 && x->f16 && x->packed) { /* same layout: widen */
            gemm_widen(isa, (const uint16_t *)(const void *)src + r0 * in, 16 * in, pw + r0 * in);
        } else if (tg == T_PF16 && x->f16) { /* rows of half: pack */
            gemm_pack_f16((const uint16_t *)(const void *)src + r0 * in, nr, (int)in, ph + r0 * in);
        } else if (tg == T_PF16 && x->packed && !x->i8) { /* same layout: narrow */
            k = gemm_to_half(isa, (const float *)(const void *)src + r0 * in, 16 * in, ph + r0 * in);
            if (k < 16 * in) return half_overflow(ld, x, packed_elem(r0, in, k), err);
        } else if (tg == T_Q8 && x->packed && !x->f16 && !x->i8) { /* packed f32: quantize */
            gemm_q8_pack_block_packed(isa, (const float *)(const void *)src + r0 * in, (int)in,
                                      q + r0 * in4, scale + r0, qsum + r0);
        } else if (tg == T_Q8 && x->packed && x->f16) { /* packed half: widen, quantize */
            gemm_widen(isa, (const uint16_t *)(const void *)src + r0 * in, 16 * in, ld->R);
            gemm_q8_pack_block_packed(isa, ld->R, (int)in, q + r0 * in4, scale + r0, qsum + r0);
        } else if (tg == T_Q8 && x->i8) { /* rows of int8: lay out */
            gemm_q8_pack_rows_block((const int8_t *)(const void *)src + r0 * in, wscale + r0, nr,
                                    (int)in, q + r0 * in4, scale + r0, qsum + r0);
        } else {
            if ((s = rows_f32(ld, x, wscale, in, r0, nr, &R, err))) return s;
            switch (tg) {
            case T_PF32: gemm_pack_f32(R, nr, (int)in, pw + r0 * in); break;
            case T_RF32: memcpy(w + r0 * in, R, n * sizeof *R); break;
            case T_PF16:
                if ((k = gemm_to_half(isa, R, n, ld->H)) < n)
                    return half_overflow(ld, x, r0 * in + k, err);
                gemm_pack_f16(ld->H, nr, (int)in, ph + r0 * in);
                break;
            case T_RF16:
                if ((k = gemm_to_half(isa, R, n, h + r0 * in)) < n)
                    return half_overflow(ld, x, r0 * in + k, err);
                break;
            case T_Q8:
                gemm_q8_pack_block(isa, R, nr, (int)in, q + r0 * in4, scale + r0, qsum + r0, ld->Q);
                break;
            }
        }
        if (ip && tg == T_Q8) {
            memcpy(qsum + r0, ld->qsum, sizeof ld->qsum);
            for (int r = 0; r < 16; r++) scale[r0 + r] = r < nr ? wscale[r0 + r] : 0.0f;
        }
        size_t done = block_at(x, in, r0 + 16 < out ? r0 + 16 : out16);
        if (!ip && ((r0 + 16) % CHUNK_ROWS == 0 || r0 + 16 >= out)) {
            if (!x->packed && r0 + 16 >= out) done = x->nbytes;
            release_range(m, x->offset + released, done - released);
            released = done;
        }
    }
    if (check_only) return AT_OK;
    switch (tg) {
    case T_PF32: L->pw = ip ? (const float *)(const void *)src : pw; break;
    case T_RF32: L->w = ip ? (const float *)(const void *)src : w; break;
    case T_PF16: L->ph = ip ? (const uint16_t *)(const void *)src : ph; break;
    case T_RF16: L->h = ip ? (const uint16_t *)(const void *)src : h; break;
    case T_Q8:
        L->q = ip ? (const int8_t *)(const void *)src : q;
        L->qscale = scale, L->qsum = qsum;
        break;
    }
    return AT_OK;
nomem:
    return at_fail(err, AT_ERR_NOMEM, "out of memory converting '%s'", x->name);
}

/* The model's linear layers, in computation order. Returns how many. */
static int all_lins(at_model *m, at_lin **lins) {
    int n = 0;
    for (int l = 0; l < m->cfg.encoder_layers; l++) {
        at_enc_layer *E = &m->enc[l];
        at_lin *a[6] = {&E->self_attn.q, &E->self_attn.k, &E->self_attn.v, &E->self_attn.o,
                        &E->ffn.fc1, &E->ffn.fc2};
        for (int i = 0; i < 6; i++) lins[n++] = a[i];
    }
    for (int l = 0; l < m->cfg.decoder_layers; l++) {
        at_dec_layer *D = &m->dec[l];
        at_lin *a[10] = {&D->self_attn.q,  &D->self_attn.k,  &D->self_attn.v, &D->self_attn.o,
                         &D->cross_attn.q, &D->cross_attn.k, &D->cross_attn.v,
                         &D->cross_attn.o, &D->ffn.fc1,      &D->ffn.fc2};
        for (int i = 0; i < 10; i++) lins[n++] = a[i];
    }
    lins[n++] = &m->lm_head;
    return n;
}

static int cmp_range(const void *a, const void *b) {
    const expected *x = *(const expected *const *)a, *y = *(const expected *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Checks an embedding, a layer norm or a bias and points the model at it (f16 layer
 * norms and biases are widened: they are small). Embeddings are used as stored. */
static at_status plain_tensor(loader *ld, expected *x, at_error *err) {
    at_model *m = ld->m;
    const unsigned char *src = ld->base + x->offset;
    if (x->emb) {
        size_t V = (size_t)x->shape[0], d = (size_t)x->shape[1], released = 0;
        for (size_t r0 = 0; r0 < V; r0 += 16) {
            at_status s = check_block(ld, x, d, r0, V - r0 < 16 ? (int)(V - r0) : 16, err);
            if (s) return s;
            size_t done = r0 + 16 >= V ? x->nbytes : block_at(x, d, r0 + 16);
            if ((r0 + 16) % CHUNK_ROWS == 0 || r0 + 16 >= V) { /* looked-up rows fault back */
                release_range(m, x->offset + released, done - released);
                released = done;
            }
        }
        return AT_OK;
    }
    size_t numel = x->nbytes / esize_of(x), k;
    if (!x->f16) {
        if ((k = gemm_first_nonfinite((gemm_isa)m->isa, (const float *)(const void *)src, numel)) < numel)
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value at element "
                           "%zu", ld->path, x->name, k);
        *x->slot = (const float *)(const void *)src;
        return AT_OK;
    }
    const uint16_t *h = (const uint16_t *)(const void *)src;
    if ((k = gemm_first_nonfinite_half((gemm_isa)m->isa, h, numel)) < numel)
        return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value at element %zu",
                       ld->path, x->name, k);
    float *buf = owned_alloc(m, numel * sizeof *buf);
    if (!buf) return at_fail(err, AT_ERR_NOMEM, "out of memory widening '%s'", x->name);
    gemm_widen((gemm_isa)m->isa, h, numel, buf);
    *x->slot = buf;
    return AT_OK;
}

/* Checks every stored value and gives each linear layer its compute form. */
static at_status load_values(at_model *m, table *t, const unsigned char *base, const char *path,
                             int threads, at_error *err) {
    loader ld = {.m = m, .base = base, .path = path};
    size_t cap = (size_t)(6 * m->cfg.encoder_layers + 10 * m->cfg.decoder_layers + 1);
    at_lin **lins = malloc(cap * sizeof *lins);
    const expected **src = calloc(cap, sizeof *src), *tied_q8 = NULL, *emb_of_lm = NULL;
    if (!lins || !src) {
        free(lins);
        free((void *)src);
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    }
    int n_lins = all_lins(m, lins);
    target tg = lin_target(m);
    at_status s = AT_OK;
    size_t in_max = (size_t)m->cfg.d_model;
    if ((size_t)m->cfg.encoder_ffn_dim > in_max) in_max = (size_t)m->cfg.encoder_ffn_dim;
    if ((size_t)m->cfg.decoder_ffn_dim > in_max) in_max = (size_t)m->cfg.decoder_ffn_dim;

    /* where each linear layer's weights come from */
    for (int i = 0; i < t->n; i++) {
        expected *x = &t->e[i];
        if (!x->seen || !x->lin || x->scale_of >= 0) continue;
        if (x->optional) { /* a tied model's stored int8 output projection */
            tied_q8 = x;
            continue;
        }
        for (int j = 0; j < n_lins; j++)
            if (lins[j] == x->lin) src[j] = x;
    }
    if (m->cfg.tied_lm_head) {
        const at_emb *e = m->cfg.shared_embeddings ? &m->enc_embed : &m->dec_embed;
        if (tied_q8 && m->wtype == AT_W_INT8) {
            src[n_lins - 1] = tied_q8;
            tied_q8 = NULL;
        } else {
            for (int i = 0; i < t->n; i++)
                if (t->e[i].emb == e) emb_of_lm = src[n_lins - 1] = &t->e[i];
        }
    }

    /* scales, embeddings, layer norms, biases */
    for (int i = 0; !s && i < t->n; i++) {
        expected *x = &t->e[i];
        const unsigned char *p = base + x->offset;
        if (!x->seen) continue; /* the scales of a weight that is not i8 */
        if (x->emb) {
            at_emb *e = x->emb;
            e->p = p, e->half = x->f16, e->packed = x->packed;
            if (x == emb_of_lm) continue; /* checked as the output projection */
        } else if (x->lin && x->scale_of < 0) {
            continue; /* below */
        } else if (x->scale_of >= 0) {
            const float *sc = (const float *)(const void *)p;
            for (size_t k = 0; k < x->nbytes / 4; k++)
                if (!(sc[k] >= 0.0f && sc[k] < INFINITY)) {
                    s = at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' holds %g at element %zu "
                                "(scales are finite and >= 0)", path, x->name, (double)sc[k], k);
                    break;
                }
            *x->slot = sc;
            continue;
        }
        if (!s) s = plain_tensor(&ld, x, err);
    }
    if (m->cfg.shared_embeddings) m->dec_embed = m->enc_embed;

    /* the linear layers: each gets its window of the arena, then they are converted */
    size_t arena = 0;
    for (int j = 0; j < n_lins; j++) arena += lin_bytes(lins[j], tg, src[j]);
    char *abase = NULL, **window = malloc(((size_t)n_lins + 1) * sizeof *window);
    at_status *status = calloc((size_t)n_lins, sizeof *status);
    at_error *errs = calloc((size_t)n_lins, sizeof *errs);
    if (!s && (!window || !status || !errs)) s = at_fail(err, AT_ERR_NOMEM, "out of memory");
    if (!s) s = arena_reserve(m, arena, &abase, err);
    if (!s) {
        size_t at = 0;
        for (int j = 0; j < n_lins; j++) {
            window[j] = abase ? abase + at : NULL;
            at += lin_bytes(lins[j], tg, src[j]);
        }
        window[n_lins] = abase ? abase + at : NULL;
        convert_job job = {.proto = &ld, .lins = lins, .src = src, .window = window,
                           .status = status, .errs = errs, .in_max = in_max, .n = n_lins};
        atomic_init(&job.next, 0);
        atomic_init(&job.failed, 0);
        s = convert_all(&job, threads, err);
    }
    if (!s && tied_q8) /* not used by f32 / f16 compute, but checked all the same */
        s = lin_convert(&ld, &m->lm_head, tied_q8, m->lm_head.wscale, 1, err);
    if (!s && m->cfg.tied_lm_head && m->wtype == AT_W_INT8) { /* int8 lookups: model.h */
        at_emb *e = m->cfg.shared_embeddings ? &m->enc_embed : &m->dec_embed;
        e->q = m->lm_head.q, e->qscale = m->lm_head.qscale;
        if (m->cfg.shared_embeddings) m->dec_embed = m->enc_embed;
    }
    free(window);
    free(status);
    free(errs);
    free(lins);
    free((void *)src);
    return s;
}

static at_status map_weights(at_model *m, const cJSON *root, table *t, const char *dir,
                             const char *file, int threads, at_error *err) {
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
        if (x->optional && m->version < 2)
            return at_fail(err, AT_ERR_FORMAT, "%s: unknown tensor '%s' (a model with tied embeddings "
                           "stores its int8 output projection only in format version 2)", file, name);
        if (x->optional && x->scale_of < 0 && esize != 1)
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' must be i8 in a model with tied "
                           "embeddings (it is their int8 form)", file, name);
        /* layout (version 2): rows, or packed16 for linear-layer weights and embeddings */
        const cJSON *lay = cJSON_GetObjectItemCaseSensitive(it, "layout");
        int packed = 0;
        if (lay && m->version < 2)
            return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' has a \"layout\", which needs format "
                           "version 2", file, name);
        if (lay) {
            if (!cJSON_IsString(lay) ||
                (strcmp(lay->valuestring, "rows") && strcmp(lay->valuestring, "packed16")))
                return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' has an unknown layout (supported: "
                               "rows, packed16)", file, name);
            packed = !strcmp(lay->valuestring, "packed16");
            if (packed && !x->emb && !(x->lin && x->scale_of < 0))
                return at_fail(err, AT_ERR_FORMAT, "%s: tensor '%s' cannot be packed16 (only the "
                               "weights of linear layers and the embeddings are)", file, name);
        }
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
        if (packed) /* [out/16][in][16], i8: [out/16][in/4][16][4], zero-padded */
            numel = (uint64_t)gemm_pad16((int)x->shape[0]) *
                    (uint64_t)(esize == 1 ? gemm_pad4((int)x->shape[1]) : x->shape[1]);
        if ((uint64_t)nb != numel * esize)
            return at_fail(err, AT_ERR_FORMAT,
                           "%s: tensor '%s' has nbytes %lld, expected %llu for [%s] %s%s", file, name,
                           (long long)nb, (unsigned long long)(numel * esize), want, dt->valuestring,
                           packed ? " packed16" : "");
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
        x->packed = packed;
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
        } else if (!x->seen && !x->optional) {
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
    if (ver != (uint32_t)m->version)
        return at_fail(err, AT_ERR_FORMAT, "%s: weights version %u, but model.json says version %d",
                       path, ver, m->version);

    m->owned = calloc((size_t)t->n + 4, sizeof *m->owned); /* at most 1 per tensor */
    if (!m->owned) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    return load_values(m, t, base, path, threads, err);
}

static at_status make_positions(at_model *m, at_error *err) {
    int d = m->cfg.d_model, half = d / 2, n = m->cfg.max_positions;
    m->positions = malloc((size_t)n * (size_t)d * sizeof *m->positions);
    if (!m->positions) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    double *div = malloc((size_t)half * sizeof *div);
    if (!div) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    for (int j = 0; j < half; j++) div[j] = pow(10000.0, 2.0 * j / d); /* p / div: as before */
    for (int p = 0; p < n; p++)
        for (int j = 0; j < half; j++) {
            double angle = p / div[j];
            m->positions[(size_t)p * d + j] = (float)sin(angle);
            m->positions[(size_t)p * d + half + j] = (float)cos(angle);
        }
    free(div);
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
        {"f32, OpenBLAS", "f32, packed avx2 kernels", "f32, packed avx512 kernels"},
        {"f16, widened for OpenBLAS", "f16, packed f16c/avx2 kernels",
         "f16, packed f16c/avx512 kernels"},
        {"int8, scalar kernels", "int8, avx2 kernels", "int8, avx512-vnni kernels"}};
    return desc[m->wtype][m->isa];
}

/* vocab.json read on its own thread while the weights are checked */
typedef struct vocab_job {
    char path[4096];
    int size;
    at_vocab *vocab;
    at_status status;
    at_error err;
} vocab_job;

static void *vocab_worker(void *arg) {
    vocab_job *v = arg;
    v->status = at_vocab_load(v->path, v->size, &v->vocab, &v->err);
    return NULL;
}

at_status at_model_load_dtype(const char *dir, at_dtype dtype, at_model **out, at_error *err) {
    at_load_options o = {dtype, 1};
    return at_model_load_opts(dir, &o, out, err);
}

at_status at_model_load_opts(const char *dir, const at_load_options *opts, at_model **out,
                             at_error *err) {
    if (!dir || !out || !opts) return at_fail(err, AT_ERR_ARG, "at_model_load: NULL argument");
    at_dtype dtype = opts->dtype;
    int threads = opts->threads < 1 ? 1 : opts->threads;
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
    /* vocab.json on a thread of its own; its errors come after the weights' */
    vocab_job vj = {.size = 0, .vocab = NULL, .status = AT_OK};
    pthread_t vtid;
    int vthread = 0;
    if (!s) {
        snprintf(vj.path, sizeof vj.path, "%s/vocab.json", dir);
        vj.size = m->cfg.vocab_size;
        vthread = threads > 1 && pthread_create(&vtid, NULL, vocab_worker, &vj) == 0;
    }
    if (!s) s = map_weights(m, root, &t, dir, path, threads, err);
    if (!s) s = make_positions(m, err);
    if (vthread) pthread_join(vtid, NULL);
    else if (!s) vocab_worker(&vj);
    if (!s && vj.status) {
        s = vj.status;
        if (err) *err = vj.err;
    }
    if (!s) m->vocab = vj.vocab;
    else at_vocab_free(vj.vocab);
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
    if (m->arena_map) munmap(m->arena_map, m->arena_map_len);
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

/* gemm.c — linear-layer products for f32, f16 and int8 weights (see gemm.h).
 *
 * The SIMD kernels are compiled with per-function target attributes and chosen at
 * run time, so one binary built for baseline x86-64 uses AVX2 or AVX-512 VNNI
 * where the CPU has them. Other architectures get the scalar code. */
#include "gemm.h"
#include "internal.h"
#include "pool.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GEMM_X86 1
#include <immintrin.h>
#else
#define GEMM_X86 0
#endif

/* ---- ISA ---------------------------------------------------------------------- */

gemm_isa gemm_detect_isa(void) {
    gemm_isa best = GEMM_SCALAR;
#if GEMM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = GEMM_AVX2;
    if (best == GEMM_AVX2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512vnni"))
        best = GEMM_AVX512;
#endif
    const char *env = getenv("ATTN_TRANSLATE_ISA");
    if (env) {
        gemm_isa want = !strcmp(env, "scalar") ? GEMM_SCALAR
                        : !strcmp(env, "avx2") ? GEMM_AVX2
                                               : GEMM_AVX512;
        if (want < best) best = want;
    }
    return best;
}

const char *gemm_isa_name(gemm_isa isa) {
    switch (isa) {
    case GEMM_AVX512: return "avx512-vnni";
    case GEMM_AVX2: return "avx2";
    default: return "scalar";
    }
}

/* ---- int8: packing and quantization -------------------------------------------- */

size_t gemm_q8_bytes(int out, int in) { return (size_t)gemm_pad16(out) * (size_t)gemm_pad4(in); }

static float absmax(const float *x, int n) {
    float a = 0.0f;
    for (int i = 0; i < n; i++) a = fabsf(x[i]) > a ? fabsf(x[i]) : a;
    return a;
}

/* round-half-even of x·inv, clamped to ±127 (the clamp only catches rounding at the
 * edge). Adding and subtracting 1.5·2^23 rounds to an integer in the current (nearest-
 * even) mode exactly as lrintf does, for |x·inv| <= 2^22, without a library call. */
static int8_t q8(float x, float inv) {
    float v = x * inv, r = (v + 12582912.0f) - 12582912.0f;
    if (!(r == r)) return 0; /* NaN activations (an overflowing model): no UB; the
                                output is NaN anyway through the scale */
    return (int8_t)(r > 127.0f ? 127 : r < -127.0f ? -127 : (int)r);
}

/* Quantizes M rows of x (in values each) into xq rows of in4 bytes: signed, or
 * offset by 128 (unsigned) for VNNI. Padding holds the code of 0. */
static void quantize_rows(const float *x, int M, int in, int8_t *xq, float *xs, int offset) {
    int in4 = gemm_pad4(in);
    for (int m = 0; m < M; m++) {
        const float *row = x + (size_t)m * in;
        int8_t *dst = xq + (size_t)m * in4;
        float amax = absmax(row, in), inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        xs[m] = amax / 127.0f;
        if (offset) {
            uint8_t *u = (uint8_t *)dst;
            for (int k = 0; k < in; k++) u[k] = (uint8_t)(q8(row[k], inv) + 128);
            for (int k = in; k < in4; k++) u[k] = 128;
        } else {
            for (int k = 0; k < in; k++) dst[k] = q8(row[k], inv);
            for (int k = in; k < in4; k++) dst[k] = 0;
        }
    }
}

/* The shared epilogue, written once so every kernel rounds the same way:
 * y = fma((float)acc, xs·ws, b). */
static float q8_out(int32_t acc, float xs, float ws, float b) {
    return fmaf((float)acc, xs * ws, b);
}

/* Outputs [n0, n1) of every row. */
static void q8_scalar(const int8_t *xq, const float *xs, int M, const at_lin *L, float *y, int n0,
                      int n1) {
    int in4 = gemm_pad4(L->in), K4 = in4 / 4;
    for (int m = 0; m < M; m++) {
        const int8_t *xr = xq + (size_t)m * in4;
        for (int n = n0; n < n1; n++) {
            const int8_t *w = L->q + ((size_t)(n / 16) * K4 * 16 + (size_t)(n % 16)) * 4;
            int32_t acc = 0;
            for (int k4 = 0; k4 < K4; k4++, w += 64)
                for (int j = 0; j < 4; j++) acc += (int32_t)xr[4 * k4 + j] * w[j];
            y[(size_t)m * L->out + n] = q8_out(acc, xs[m], L->qscale[n], L->b ? L->b[n] : 0.0f);
        }
    }
}

#if GEMM_X86
#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))
#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
/* the tile loops have constant trip counts: unrolled, their accumulators live in
 * registers (at -O2 GCC would keep them in memory) */
#define UNROLL _Pragma("GCC unroll 16")

#ifndef Q8_PREFETCH
#define Q8_PREFETCH 1024 /* bytes ahead in each 16-row weight block */
#endif

/* acc += x (unsigned bytes) · w (signed bytes), in fours: the instruction of
 * _mm512_dpbusd_epi32, as inline assembly. With the intrinsic, GCC 12 copied every
 * accumulator of a 4x4 tile out of its register and back at each step (33 moves and a
 * spill for 16 vpdpbusd); the kernel ran at 250 GMAC/s on one Zen 5 core, and at 340
 * with this (16 or more independent vpdpbusd chains reach 440 there). The bits are the
 * same. */
#define DPBUSD(acc, x, w) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "vm"(w))

/* One tile: MR activation rows × NR blocks of 16 outputs, over all of in4. */
#define VNNI_TILE(MR, NR)                                                                       \
    AVX512_TARGET static void vnni_tile_##MR##_##NR(const uint8_t *x, int in4, const int8_t *w, \
                                                     __m512i acc[MR][NR]) {                     \
        int K4 = in4 / 4;                                                                       \
        UNROLL for (int i = 0; i < MR; i++)                                                     \
            UNROLL for (int j = 0; j < NR; j++) acc[i][j] = _mm512_setzero_si512();             \
        for (int k4 = 0; k4 < K4; k4++) {                                                       \
            __m512i wv[NR];                                                                     \
            UNROLL for (int j = 0; j < NR; j++)                                                 \
            {                                                                                   \
                _mm_prefetch((const char *)(w + ((size_t)j * K4 + k4) * 64) + Q8_PREFETCH,      \
                             _MM_HINT_T0);                                                      \
                wv[j] = _mm512_loadu_si512((const void *)(w + ((size_t)j * K4 + k4) * 64));     \
            }                                                                                   \
            UNROLL for (int i = 0; i < MR; i++) {                                               \
                int32_t x4;                                                                     \
                memcpy(&x4, x + (size_t)i * in4 + 4 * k4, 4);                                   \
                __m512i xb = _mm512_set1_epi32(x4);                                             \
                UNROLL for (int j = 0; j < NR; j++)                                             \
                    DPBUSD(acc[i][j], xb, wv[j]);                                               \
            }                                                                                   \
        }                                                                                       \
    }
VNNI_TILE(4, 4)
VNNI_TILE(3, 4)
VNNI_TILE(2, 4)
VNNI_TILE(1, 4)
VNNI_TILE(4, 1)
VNNI_TILE(1, 1)

AVX512_TARGET static inline __attribute__((always_inline)) void
vnni_store(__m512i acc, const at_lin *L, int n0, float xs, float *y) {
    int left = L->out - n0;
    __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
    __m512i a = _mm512_sub_epi32(acc, _mm512_loadu_si512((const void *)(L->qsum + n0)));
    __m512 s = _mm512_mul_ps(_mm512_set1_ps(xs), _mm512_loadu_ps(L->qscale + n0));
    __m512 b = L->b ? _mm512_maskz_loadu_ps(k, L->b + n0) : _mm512_setzero_ps();
    _mm512_mask_storeu_ps(y + n0, k, _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), s, b));
}

#define VNNI_RUN(MR, NR)                                                                        \
    do {                                                                                        \
        __m512i acc[MR][NR];                                                                    \
        vnni_tile_##MR##_##NR(xq + (size_t)m * in4, in4, wb, acc);                              \
        UNROLL for (int i = 0; i < MR; i++)                                                     \
            UNROLL for (int j = 0; j < NR; j++)                                                 \
                vnni_store(acc[i][j], L, (nb + j) * 16, xs[m + i], y + (size_t)(m + i) * L->out); \
    } while (0)

/* quantize_rows(offset = 1) with AVX-512: vcvtps2dq rounds half to even like lrintf
 * and |x · inv| <= 127 (up to one rounding), so the bytes are the scalar ones. */
AVX512_TARGET static void quantize_rows_avx512(const float *x, int M, int in, uint8_t *xq,
                                               float *xs) {
    int in4 = gemm_pad4(in), in16 = in & ~15;
    for (int m = 0; m < M; m++) {
        const float *row = x + (size_t)m * in;
        uint8_t *dst = xq + (size_t)m * in4;
        __m512 mx = _mm512_setzero_ps();
        for (int k = 0; k < in16; k += 16)
            mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(row + k)));
        float amax = _mm512_reduce_max_ps(mx);
        for (int k = in16; k < in; k++) amax = fabsf(row[k]) > amax ? fabsf(row[k]) : amax;
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        xs[m] = amax / 127.0f;
        __m512 vi = _mm512_set1_ps(inv);
        const __m128i off = _mm_set1_epi8((char)0x80);
        for (int k = 0; k < in16; k += 16) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(row + k), vi));
            _mm_storeu_si128((__m128i *)(dst + k), _mm_xor_si128(_mm512_cvtsepi32_epi8(q), off));
        }
        for (int k = in16; k < in; k++) dst[k] = (uint8_t)(q8(row[k], inv) + 128);
        for (int k = in; k < in4; k++) dst[k] = 128;
    }
}

/* Output blocks [nb0, NB) of 16 (q8_avx2 alike): 4 rows x 64 outputs at a time, and
 * the last 1-3 rows together (a batch whose sentences are ending has few rows). */
AVX512_TARGET static void q8_avx512(const uint8_t *xq, const float *xs, int M, const at_lin *L,
                                    float *y, int nb0, int NB) {
    int in4 = gemm_pad4(L->in);
    for (int nb = nb0; nb < NB;) {
        const int8_t *wb = L->q + (size_t)nb * in4 * 16;
        if (nb + 4 <= NB) {
            int m = 0;
            for (; m + 4 <= M; m += 4) VNNI_RUN(4, 4);
            if (M - m == 3) VNNI_RUN(3, 4);
            else if (M - m == 2) VNNI_RUN(2, 4);
            else if (M - m == 1) VNNI_RUN(1, 4);
            nb += 4;
        } else {
            int m = 0;
            for (; m + 4 <= M; m += 4) VNNI_RUN(4, 1);
            for (; m < M; m++) VNNI_RUN(1, 1);
            nb += 1;
        }
    }
}

/* AVX2 has no VNNI: |x| (unsigned) times w with x's sign (signed) through
 * vpmaddubsw never saturates (127·127·2 < 32767), then vpmaddwd sums pairs. */
#define AVX2_TILE(MR)                                                                           \
    AVX2_TARGET static void avx2_tile_##MR(const int8_t *x, int in4, const int8_t *w,           \
                                           __m256i acc[MR][2]) {                                \
        int K4 = in4 / 4;                                                                       \
        const __m256i ones = _mm256_set1_epi16(1);                                              \
        UNROLL for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();     \
        for (int k4 = 0; k4 < K4; k4++) {                                                       \
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(w + (size_t)k4 * 64));            \
            __m256i w1 = _mm256_loadu_si256((const __m256i *)(w + (size_t)k4 * 64 + 32));       \
            UNROLL for (int i = 0; i < MR; i++) {                                               \
                int32_t x4;                                                                     \
                memcpy(&x4, x + (size_t)i * in4 + 4 * k4, 4);                                   \
                __m256i xb = _mm256_set1_epi32(x4), ax = _mm256_sign_epi8(xb, xb);              \
                __m256i p0 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w0, xb));                \
                __m256i p1 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w1, xb));                \
                acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(p0, ones));           \
                acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(p1, ones));           \
            }                                                                                   \
        }                                                                                       \
    }
AVX2_TILE(4)
AVX2_TILE(1)

AVX2_TARGET static void avx2_store(__m256i acc, const at_lin *L, int n0, float xs, float *y) {
    int left = L->out - n0;
    __m256 s = _mm256_mul_ps(_mm256_set1_ps(xs), _mm256_loadu_ps(L->qscale + n0));
    __m256 f = _mm256_cvtepi32_ps(acc);
    if (left >= 8) {
        __m256 b = L->b ? _mm256_loadu_ps(L->b + n0) : _mm256_setzero_ps();
        _mm256_storeu_ps(y + n0, _mm256_fmadd_ps(f, s, b));
    } else {
        float tmp[8], sc[8];
        int32_t a[8];
        _mm256_storeu_ps(sc, s);
        _mm256_storeu_si256((__m256i *)a, acc);
        (void)f;
        for (int j = 0; j < left; j++) /* sc = xs * ws already: fma((float)a, sc, b) */
            tmp[j] = fmaf((float)a[j], sc[j], L->b ? L->b[n0 + j] : 0.0f);
        memcpy(y + n0, tmp, (size_t)left * sizeof *tmp);
    }
}

#define AVX2_RUN(MR)                                                                            \
    do {                                                                                        \
        __m256i acc[MR][2];                                                                     \
        avx2_tile_##MR(xq + (size_t)m * in4, in4, wb, acc);                                     \
        UNROLL for (int i = 0; i < MR; i++)                                                     \
            for (int j = 0; j < 2 && nb * 16 + j * 8 < L->out; j++)                             \
                avx2_store(acc[i][j], L, nb * 16 + j * 8, xs[m + i],                            \
                           y + (size_t)(m + i) * L->out);                                       \
    } while (0)

AVX2_TARGET static void q8_avx2(const int8_t *xq, const float *xs, int M, const at_lin *L,
                                float *y, int nb0, int NB) {
    int in4 = gemm_pad4(L->in);
    for (int nb = nb0; nb < NB; nb++) {
        const int8_t *wb = L->q + (size_t)nb * in4 * 16;
        int m = 0;
        for (; m + 4 <= M; m += 4) AVX2_RUN(4);
        for (; m < M; m++) AVX2_RUN(1);
    }
}
#endif /* GEMM_X86 */

/* ---- int8: quantizing and packing weights ------------------------------------------ */

#if GEMM_X86
AVX2_TARGET static float absmax_avx2(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 mx = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= n; k += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
    float t[8], a = 0.0f;
    _mm256_storeu_ps(t, mx);
    for (int j = 0; j < 8; j++) a = t[j] > a ? t[j] : a;
    for (; k < n; k++) a = fabsf(x[k]) > a ? fabsf(x[k]) : a;
    return a;
}

/* q8(row[k], inv) for a finite row and a finite inv: vcvtps2dq rounds half to even as
 * q8 does, and |row[k] · inv| <= 127 up to one rounding, so the bytes are q8's. */
AVX2_TARGET static void q8_row_avx2(const float *row, int in, float inv, int8_t *dst) {
    const __m256 vi = _mm256_set1_ps(inv);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    int k = 0;
    for (; k + 8 <= in; k += 8) {
        __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(row + k), vi));
        q = _mm256_max_epi32(_mm256_min_epi32(q, hi), lo);
        __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)(void *)(dst + k), _mm_packs_epi16(w16, w16));
    }
    for (; k < in; k++) dst[k] = q8(row[k], inv);
}
#endif

/* quantize_rows(offset 0) for weight rows, with the same bytes on every ISA. Rows whose
 * inverse scale overflows (amax below ~4e-37) take the scalar path: there x · inv is
 * ±inf or NaN, which only q8 maps as the scalar kernel does. */
static void quantize_weight_rows(gemm_isa isa, const float *W, int nr, int in, int8_t *rows,
                                 float *scale) {
    int in4 = gemm_pad4(in);
    for (int r = 0; r < nr; r++) {
        const float *row = W + (size_t)r * in;
        int8_t *dst = rows + (size_t)r * in4;
#if GEMM_X86
        float amax = isa >= GEMM_AVX2 ? absmax_avx2(row, in) : absmax(row, in);
#else
        float amax = absmax(row, in);
#endif
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        scale[r] = amax / 127.0f;
#if GEMM_X86
        if (isa >= GEMM_AVX2 && inv < INFINITY) {
            q8_row_avx2(row, in, inv, dst);
        } else
#endif
            for (int k = 0; k < in; k++) dst[k] = q8(row[k], inv);
        for (int k = in; k < in4; k++) dst[k] = 0;
    }
    (void)isa;
}

/* Lays out 16 quantized rows (rows: 16 x in4, zero past nr) as one packed block and
 * sets qsum; scale[nr..16) = 0. */
static void q8_lay_block(const int8_t *rows, int nr, int in4, int8_t *blk, float *scale,
                         int32_t *qsum) {
    for (int r = 0; r < 16; r++) {
        int32_t sum = 0;
        for (int k = 0; k < in4; k++) sum += rows[(size_t)r * in4 + k];
        if (r >= nr) scale[r] = 0.0f;
        qsum[r] = 128 * sum;
    }
    for (int k4 = 0; k4 < in4 / 4; k4++)
        for (int r = 0; r < 16; r++)
            memcpy(blk + ((size_t)k4 * 16 + r) * 4, rows + (size_t)r * in4 + 4 * k4, 4);
}

void gemm_q8_pack_block(gemm_isa isa, const float *W, int nr, int in, int8_t *blk, float *scale,
                        int32_t *qsum, int8_t *rows) {
    int in4 = gemm_pad4(in);
    quantize_weight_rows(isa, W, nr, in, rows, scale);
    memset(rows + (size_t)nr * in4, 0, (size_t)(16 - nr) * in4);
    q8_lay_block(rows, nr, in4, blk, scale, qsum);
}

/* gemm_q8_pack_block from a packed16 f32 block P ([in][16], padding lanes zero): the same
 * amax, scales and bytes (q8 of the same products), without unpacking the rows. */
#if GEMM_X86
AVX2_TARGET static void q8_from_packed_avx2(const float *P, int in, const float *inv, int8_t *blk,
                                            int32_t *qsum) {
    const __m256 i0 = _mm256_loadu_ps(inv), i1 = _mm256_loadu_ps(inv + 8);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;
    int in4 = gemm_pad4(in);
    for (int k4 = 0; k4 < in4; k4 += 4) {
        __m128i t[4];
        for (int j = 0; j < 4; j++) {
            int k = k4 + j;
            if (k >= in) {
                t[j] = _mm_setzero_si128();
                continue;
            }
            __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(P + (size_t)k * 16), i0));
            __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(P + (size_t)k * 16 + 8), i1));
            a = _mm256_max_epi32(_mm256_min_epi32(a, hi), lo);
            b = _mm256_max_epi32(_mm256_min_epi32(b, hi), lo);
            s0 = _mm256_add_epi32(s0, a);
            s1 = _mm256_add_epi32(s1, b);
            __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8); /* r0..15 */
            __m256i y = _mm256_packs_epi16(w, w);
            t[j] = _mm_unpacklo_epi64(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
        }
        /* 4 inputs x 16 rows -> 16 rows x 4 inputs: the block's layout */
        __m128i ab0 = _mm_unpacklo_epi8(t[0], t[1]), ab1 = _mm_unpackhi_epi8(t[0], t[1]);
        __m128i cd0 = _mm_unpacklo_epi8(t[2], t[3]), cd1 = _mm_unpackhi_epi8(t[2], t[3]);
        __m128i *o = (__m128i *)(void *)(blk + (size_t)k4 * 16);
        _mm_storeu_si128(o, _mm_unpacklo_epi16(ab0, cd0));
        _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(ab0, cd0));
        _mm_storeu_si128(o + 2, _mm_unpacklo_epi16(ab1, cd1));
        _mm_storeu_si128(o + 3, _mm_unpackhi_epi16(ab1, cd1));
    }
    int32_t t0[8], t1[8];
    _mm256_storeu_si256((__m256i *)(void *)t0, s0);
    _mm256_storeu_si256((__m256i *)(void *)t1, s1);
    for (int r = 0; r < 8; r++) qsum[r] = 128 * t0[r], qsum[8 + r] = 128 * t1[r];
}
#endif

void gemm_q8_pack_block_packed(gemm_isa isa, const float *P, int in, int8_t *blk, float *scale,
                               int32_t *qsum) {
    float amax[16] = {0}, inv[16];
    int finite = 1;
    for (int k = 0; k < in; k++)
        for (int r = 0; r < 16; r++) {
            float a = fabsf(P[(size_t)k * 16 + r]);
            amax[r] = a > amax[r] ? a : amax[r];
        }
    for (int r = 0; r < 16; r++) {
        inv[r] = amax[r] > 0.0f ? 127.0f / amax[r] : 0.0f;
        scale[r] = amax[r] / 127.0f;
        finite &= inv[r] < INFINITY;
    }
#if GEMM_X86
    if (isa >= GEMM_AVX2 && finite) {
        q8_from_packed_avx2(P, in, inv, blk, qsum);
        return;
    }
#endif
    (void)isa, (void)finite;
    int in4 = gemm_pad4(in);
    memset(blk, 0, (size_t)16 * in4);
    for (int r = 0; r < 16; r++) {
        int32_t sum = 0;
        for (int k = 0; k < in; k++) {
            int8_t q = q8(P[(size_t)k * 16 + r], inv[r]);
            blk[(size_t)(k / 4) * 64 + (size_t)r * 4 + (size_t)(k % 4)] = q;
            sum += q;
        }
        qsum[r] = 128 * sum;
    }
}

/* Packs 16 rows at a time: each row is quantized like an activation row (the same
 * bytes as quantize_rows), then the block is laid out 4 bytes per row per group of 4
 * inputs. */
int gemm_q8_pack(gemm_isa isa, const float *W, int out, int in, int8_t *q, float *scale,
                 int32_t *qsum) {
    int out16 = gemm_pad16(out), in4 = gemm_pad4(in);
    int8_t *rows = malloc((size_t)16 * in4);
    if (!rows) return -1;
    for (int n0 = 0; n0 < out16; n0 += 16) {
        int nr = out - n0 < 16 ? (out - n0 > 0 ? out - n0 : 0) : 16;
        gemm_q8_pack_block(isa, W + (size_t)n0 * in, nr, in, q + (size_t)n0 * in4, scale + n0,
                           qsum + n0, rows);
    }
    free(rows);
    return 0;
}

void gemm_q8_pack_rows_block(const int8_t *W, const float *wscale, int nr, int in, int8_t *blk,
                             float *scale, int32_t *qsum) {
    int in4 = gemm_pad4(in);
    memset(blk, 0, (size_t)16 * in4);
    for (int r = 0; r < 16; r++) {
        int32_t sum = 0;
        if (r < nr) {
            int8_t *dst = blk + (size_t)r * 4;
            for (int k = 0; k < in; k++) {
                int8_t v = W[(size_t)r * in + k];
                dst[(size_t)(k / 4) * 64 + (size_t)(k % 4)] = v;
                sum += v;
            }
        }
        scale[r] = r < nr ? wscale[r] : 0.0f;
        qsum[r] = 128 * sum;
    }
}

/* Checks one packed int8 block as stored in a file: no -128, zero padding (rows past
 * nr, inputs past in); sets qsum. Returns the offset of the first bad byte, or -1. */
#if GEMM_X86
AVX2_TARGET static long q8_check_avx2(const int8_t *blk, int in4, int32_t *qsum) {
    const __m256i bad = _mm256_set1_epi8((char)0x80), ones8 = _mm256_set1_epi8(1),
                  ones16 = _mm256_set1_epi16(1);
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, any = s0;
    for (int k4 = 0; k4 < in4 / 4; k4++) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(blk + (size_t)k4 * 64));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(blk + (size_t)k4 * 64 + 32));
        any = _mm256_or_si256(any, _mm256_or_si256(_mm256_cmpeq_epi8(a, bad), _mm256_cmpeq_epi8(b, bad)));
        /* vpmaddubsw(1, q): pairs of signed bytes, no saturation; vpmaddwd: the 4 of a row */
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, a), ones16));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, b), ones16));
    }
    if (!_mm256_testz_si256(any, any)) return 0; /* located by the caller's scalar pass */
    int32_t t[16];
    _mm256_storeu_si256((__m256i *)(void *)t, s0);
    _mm256_storeu_si256((__m256i *)(void *)(t + 8), s1);
    for (int r = 0; r < 16; r++) qsum[r] = 128 * t[r];
    return -1;
}
#endif

long gemm_q8_check_block(gemm_isa isa, const int8_t *blk, int nr, int in, int32_t *qsum) {
    int in4 = gemm_pad4(in);
    for (int r = 0; r < 16; r++) /* padding: rows past nr, inputs past in */
        for (int k = r < nr ? in : 0; k < in4; k++) {
            size_t at = (size_t)(k / 4) * 64 + (size_t)r * 4 + (size_t)(k % 4);
            if (blk[at]) return (long)at;
        }
#if GEMM_X86
    if (isa >= GEMM_AVX2 && q8_check_avx2(blk, in4, qsum) < 0) return -1;
#endif
    (void)isa;
    int32_t sum[16] = {0};
    for (size_t i = 0; i < (size_t)16 * in4; i++) {
        if (blk[i] == -128) return (long)i;
        sum[(i / 4) % 16] += blk[i];
    }
    for (int r = 0; r < 16; r++) qsum[r] = 128 * sum[r];
    return -1;
}

/* ---- checks of stored values ---------------------------------------------------------- */

#if GEMM_X86
AVX2_TARGET static int any_nonfinite_avx2(const uint32_t *u, size_t n) {
    const __m256i e = _mm256_set1_epi32(0x7f800000);
    __m256i bad = _mm256_setzero_si256();
    size_t k = 0;
    for (; k + 32 <= n; k += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(u + k));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(u + k + 8));
        __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(u + k + 16));
        __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)(u + k + 24));
        a = _mm256_cmpeq_epi32(_mm256_and_si256(a, e), e);
        b = _mm256_cmpeq_epi32(_mm256_and_si256(b, e), e);
        c = _mm256_cmpeq_epi32(_mm256_and_si256(c, e), e);
        d = _mm256_cmpeq_epi32(_mm256_and_si256(d, e), e);
        bad = _mm256_or_si256(bad, _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d)));
    }
    int r = !_mm256_testz_si256(bad, bad);
    for (; k < n; k++) r |= (u[k] & 0x7f800000u) == 0x7f800000u;
    return r;
}

AVX2_TARGET static int any_nonfinite_half_avx2(const uint16_t *h, size_t n) {
    const __m256i e = _mm256_set1_epi16(0x7c00);
    __m256i bad = _mm256_setzero_si256();
    size_t k = 0;
    for (; k + 32 <= n; k += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(h + k));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(h + k + 16));
        a = _mm256_cmpeq_epi16(_mm256_and_si256(a, e), e);
        b = _mm256_cmpeq_epi16(_mm256_and_si256(b, e), e);
        bad = _mm256_or_si256(bad, _mm256_or_si256(a, b));
    }
    int r = !_mm256_testz_si256(bad, bad);
    for (; k < n; k++) r |= (h[k] & 0x7c00u) == 0x7c00u;
    return r;
}
#endif

/* Blocks of 4,096 are tested branch-free first; only a block with a bad value is
 * searched for the first one. */
size_t gemm_first_nonfinite(gemm_isa isa, const float *p, size_t n) {
    const uint32_t *u = (const uint32_t *)(const void *)p;
    for (size_t b = 0; b < n; b += 4096) {
        size_t e = n - b < 4096 ? n : b + 4096, k;
        int bad = 0;
#if GEMM_X86
        if (isa >= GEMM_AVX2)
            bad = any_nonfinite_avx2(u + b, e - b);
        else
#endif
            for (k = b; k < e; k++) bad |= (u[k] & 0x7f800000u) == 0x7f800000u;
        if (bad)
            for (k = b; k < e; k++)
                if ((u[k] & 0x7f800000u) == 0x7f800000u) return k;
    }
    (void)isa;
    return n;
}

size_t gemm_first_nonfinite_half(gemm_isa isa, const uint16_t *h, size_t n) {
    for (size_t b = 0; b < n; b += 4096) {
        size_t e = n - b < 4096 ? n : b + 4096, k;
        int bad = 0;
#if GEMM_X86
        if (isa >= GEMM_AVX2)
            bad = any_nonfinite_half_avx2(h + b, e - b);
        else
#endif
            for (k = b; k < e; k++) bad |= (h[k] & 0x7c00u) == 0x7c00u;
        if (bad)
            for (k = b; k < e; k++)
                if ((h[k] & 0x7c00u) == 0x7c00u) return k;
    }
    (void)isa;
    return n;
}

/* ---- f32 and f16 ----------------------------------------------------------------- */

static void set_bias(float *y, int M, const at_lin *L) {
    for (int i = 0; i < M; i++) memcpy(y + (size_t)i * L->out, L->b, (size_t)L->out * sizeof *y);
}

#if GEMM_X86
/* ---- packed f32 / f16: [out16 / 16][in][16 outputs] -------------------------------- */

/* MR activation rows x 16 outputs over all K: per k, two 8-wide weight loads (f32, or
 * half widened by F16C), MR broadcasts and 2·MR FMAs; no packing at run time. */
#define LOADP_0(p) _mm256_loadu_ps((const float *)(p))
#define LOADP_1(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define PK_TILE(MR, H)                                                                          \
    AVX2_TARGET static void pk_tile_##MR##_##H(const float *x, int K, const char *wb,           \
                                               const char *pf, const at_lin *L, int n0,         \
                                               float *y) {                                      \
        const size_t es = H ? sizeof(uint16_t) : sizeof(float);                                 \
        __m256 acc[MR][2];                                                                      \
        UNROLL for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();        \
        for (int k = 0; k < K; k++) {                                                           \
            __m256 w0 = LOADP_##H(wb + (size_t)k * 16 * es);                                    \
            __m256 w1 = LOADP_##H(wb + ((size_t)k * 16 + 8) * es);                              \
            _mm_prefetch(pf + (size_t)k * 16 * es, _MM_HINT_T0);                                \
            UNROLL for (int i = 0; i < MR; i++) {                                               \
                __m256 xb = _mm256_broadcast_ss(x + (size_t)i * K + k);                         \
                acc[i][0] = _mm256_fmadd_ps(w0, xb, acc[i][0]);                                 \
                acc[i][1] = _mm256_fmadd_ps(w1, xb, acc[i][1]);                                 \
            }                                                                                   \
        }                                                                                       \
        int left = L->out - n0 < 16 ? L->out - n0 : 16;                                         \
        UNROLL for (int i = 0; i < MR; i++) {                                                   \
            float t[16];                                                                        \
            _mm256_storeu_ps(t, acc[i][0]);                                                     \
            _mm256_storeu_ps(t + 8, acc[i][1]);                                                 \
            float *yr = y + (size_t)i * L->out + n0;                                            \
            for (int j = 0; j < left; j++) yr[j] = t[j] + (L->b ? L->b[n0 + j] : 0.0f);         \
        }                                                                                       \
    }
#define X(m) (x + (size_t)(m) * K)
#define Y(m) (y + (size_t)(m) * L->out)
#define PK_SET(H)                                                                               \
    PK_TILE(6, H)                                                                               \
    PK_TILE(5, H)                                                                               \
    PK_TILE(4, H)                                                                               \
    PK_TILE(3, H)                                                                               \
    PK_TILE(2, H)                                                                               \
    PK_TILE(1, H)                                                                               \
    AVX2_TARGET static void packed_##H(const float *x, int M, const at_lin *L, float *y,        \
                                       int nb0, int NB) {                                       \
        int K = L->in;                                                                          \
        const char *w = H ? (const char *)L->ph : (const char *)L->pw;                          \
        const size_t blk = (size_t)K * 16 * (H ? sizeof(uint16_t) : sizeof(float));             \
        for (int nb = nb0; nb < NB; nb++) {                                                     \
            const char *wb = w + (size_t)nb * blk;                                              \
            const char *pf = nb + 1 < NB ? wb + blk : wb; /* the next block's weights */        \
            int m = 0;                                                                          \
            for (; m + 6 <= M; m += 6) pk_tile_6_##H(X(m), K, wb, pf, L, nb * 16, Y(m));        \
            switch (M - m) { /* the 1-5 rows left: one pass */                                  \
            case 5: pk_tile_5_##H(X(m), K, wb, pf, L, nb * 16, Y(m)); break;                    \
            case 4: pk_tile_4_##H(X(m), K, wb, pf, L, nb * 16, Y(m)); break;                    \
            case 3: pk_tile_3_##H(X(m), K, wb, pf, L, nb * 16, Y(m)); break;                    \
            case 2: pk_tile_2_##H(X(m), K, wb, pf, L, nb * 16, Y(m)); break;                    \
            case 1: pk_tile_1_##H(X(m), K, wb, pf, L, nb * 16, Y(m)); break;                    \
            default: break;                                                                     \
            }                                                                                   \
        }                                                                                       \
    }
PK_SET(0)
PK_SET(1)

/* The same products with AVX-512: MR rows x NB blocks of 16 outputs (one zmm each), so a
 * 12x32 tile holds 24 accumulators. Each output is the same chain of FMAs over k from
 * zero, then + bias, as in the AVX2 tiles: the results are bit for bit theirs. */
#define LOADQ_0(p) _mm512_loadu_ps((const float *)(p))
#define LOADQ_1(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define PQ_TILE(MR, NB, H)                                                                      \
    AVX512_TARGET static void pq_tile_##MR##_##NB##_##H(const float *x, int K, const char *wb,   \
                                                        const char *pf, size_t blk,            \
                                                        const at_lin *L, int n0, float *y) {   \
        const size_t es = H ? sizeof(uint16_t) : sizeof(float);                                 \
        __m512 acc[MR][NB];                                                                     \
        UNROLL for (int i = 0; i < MR; i++)                                                     \
            UNROLL for (int j = 0; j < NB; j++) acc[i][j] = _mm512_setzero_ps();                \
        for (int k = 0; k < K; k++) {                                                           \
            __m512 w[NB];                                                                       \
            UNROLL for (int j = 0; j < NB; j++) w[j] = LOADQ_##H(wb + j * blk + (size_t)k * 16 * es); \
            UNROLL for (int j = 0; j < NB; j++)                                                 \
                _mm_prefetch(pf + j * blk + (size_t)k * 16 * es, _MM_HINT_T0);                  \
            UNROLL for (int i = 0; i < MR; i++) {                                               \
                __m512 xb = _mm512_set1_ps(x[(size_t)i * K + k]);                               \
                UNROLL for (int j = 0; j < NB; j++) acc[i][j] = _mm512_fmadd_ps(w[j], xb, acc[i][j]); \
            }                                                                                   \
        }                                                                                       \
        UNROLL for (int j = 0; j < NB; j++) {                                                   \
            int left = L->out - (n0 + 16 * j);                                                  \
            __mmask16 mk = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);      \
            __m512 b = L->b ? _mm512_maskz_loadu_ps(mk, L->b + n0 + 16 * j) : _mm512_setzero_ps(); \
            UNROLL for (int i = 0; i < MR; i++)                                                 \
                _mm512_mask_storeu_ps(y + (size_t)i * L->out + n0 + 16 * j, mk,                 \
                                      _mm512_add_ps(acc[i][j], b));                              \
        }                                                                                       \
    }
/* Rows in tiles of 12, then the 1-11 rows left in one tile of their own, so that a batch
 * whose sentences are ending (any number of rows) still passes over each block of weights
 * at most ceil(M / 12) times. */
#define PQ_T(MR, NB, H) pq_tile_##MR##_##NB##_##H(X(m), K, wb, pf, blk, L, nb * 16, Y(m))
#define PQ_ROWS(NB, H)                                                                          \
    do {                                                                                        \
        int m = 0;                                                                              \
        for (; m + 12 <= M; m += 12) PQ_T(12, NB, H);                                           \
        switch (M - m) {                                                                        \
        case 11: PQ_T(11, NB, H); break;                                                        \
        case 10: PQ_T(10, NB, H); break;                                                        \
        case 9: PQ_T(9, NB, H); break;                                                          \
        case 8: PQ_T(8, NB, H); break;                                                          \
        case 7: PQ_T(7, NB, H); break;                                                          \
        case 6: PQ_T(6, NB, H); break;                                                          \
        case 5: PQ_T(5, NB, H); break;                                                          \
        case 4: PQ_T(4, NB, H); break;                                                          \
        case 3: PQ_T(3, NB, H); break;                                                          \
        case 2: PQ_T(2, NB, H); break;                                                          \
        case 1: PQ_T(1, NB, H); break;                                                          \
        default: break;                                                                         \
        }                                                                                       \
    } while (0)
#define PQ_TILES(NB, H)                                                                         \
    PQ_TILE(12, NB, H) PQ_TILE(11, NB, H) PQ_TILE(10, NB, H) PQ_TILE(9, NB, H)                  \
    PQ_TILE(8, NB, H) PQ_TILE(7, NB, H) PQ_TILE(6, NB, H) PQ_TILE(5, NB, H)                     \
    PQ_TILE(4, NB, H) PQ_TILE(3, NB, H) PQ_TILE(2, NB, H) PQ_TILE(1, NB, H)
#define PQ_SET(H)                                                                               \
    PQ_TILES(2, H)                                                                              \
    PQ_TILES(1, H)                                                                              \
    AVX512_TARGET static void packed512_##H(const float *x, int M, const at_lin *L, float *y,   \
                                            int nb0, int NBS) {                                 \
        int K = L->in;                                                                          \
        const char *w = H ? (const char *)L->ph : (const char *)L->pw;                          \
        const size_t blk = (size_t)K * 16 * (H ? sizeof(uint16_t) : sizeof(float));             \
        int nb = nb0;                                                                           \
        for (; nb + 2 <= NBS; nb += 2) {                                                        \
            const char *wb = w + (size_t)nb * blk;                                              \
            const char *pf = nb + 4 <= NBS ? wb + 2 * blk : wb; /* the next pair's weights */   \
            PQ_ROWS(2, H);                                                                      \
        }                                                                                       \
        for (; nb < NBS; nb++) {                                                                \
            const char *wb = w + (size_t)nb * blk, *pf = wb;                                    \
            PQ_ROWS(1, H);                                                                      \
        }                                                                                       \
    }
PQ_SET(0)
PQ_SET(1)

AVX2_TARGET static void widen_f16c(const uint16_t *h, size_t n, float *out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) out[i] = _cvtsh_ss(h[i]);
}

AVX2_TARGET static void narrow_f16c(const float *f, size_t n, uint16_t *h) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(f + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) h[i] = at_float_to_half(f[i]);
}
#endif

size_t gemm_to_half(gemm_isa isa, const float *f, size_t n, uint16_t *h) {
#if GEMM_X86
    if (isa >= GEMM_AVX2)
        narrow_f16c(f, n, h);
    else
#endif
        for (size_t i = 0; i < n; i++) h[i] = at_float_to_half(f[i]);
    (void)isa;
    for (size_t i = 0; i < n; i++)
        if ((h[i] & 0x7c00u) == 0x7c00u) return i;
    return n;
}

void gemm_widen(gemm_isa isa, const uint16_t *h, size_t n, float *out) {
#if GEMM_X86
    if (isa >= GEMM_AVX2) {
        widen_f16c(h, n, out);
        return;
    }
#endif
    (void)isa;
    for (size_t i = 0; i < n; i++) out[i] = at_half_to_float(h[i]);
}

static void sgemm_rows(const float *x, int M, const at_lin *L, const float *W, int n0, int nr,
                       float *y) {
    float beta = L->b ? 1.0f : 0.0f;
    if (M == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, nr, L->in, 1.0f, W, L->in, x, 1, beta, y + n0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nr, L->in, 1.0f, x, L->in, W,
                    L->in, beta, y + n0, L->out);
}

/* ---- products split by output blocks ---------------------------------------------- */

enum { K_Q8_SCALAR, K_Q8_AVX2, K_Q8_AVX512, K_PK_F32, K_PK_F16, K_PQ_F32, K_PQ_F16 };

/* One product: the kernel `kind` over output blocks of 16, handed out in `parts` runs of
 * whole `unit`s of blocks (the widest tile the kernel takes). Every output is computed by
 * the same chain of operations whichever run it falls in, so the split never changes a
 * bit of y. */
typedef struct gemm_job {
    const at_lin *L;
    const float *x;
    float *y;
    const gemm_scratch *ws;
    int M, kind, NB, unit, parts;
} gemm_job;

static void gemm_blocks(const gemm_job *j, int nb0, int nb1) {
    const at_lin *L = j->L;
    switch (j->kind) {
#if GEMM_X86
    case K_Q8_AVX512: q8_avx512((const uint8_t *)j->ws->xq, j->ws->xs, j->M, L, j->y, nb0, nb1); return;
    case K_Q8_AVX2: q8_avx2(j->ws->xq, j->ws->xs, j->M, L, j->y, nb0, nb1); return;
    case K_PK_F32: packed_0(j->x, j->M, L, j->y, nb0, nb1); return;
    case K_PK_F16: packed_1(j->x, j->M, L, j->y, nb0, nb1); return;
    case K_PQ_F32: packed512_0(j->x, j->M, L, j->y, nb0, nb1); return;
    case K_PQ_F16: packed512_1(j->x, j->M, L, j->y, nb0, nb1); return;
#endif
    default: q8_scalar(j->ws->xq, j->ws->xs, j->M, L, j->y, nb0 * 16, nb1 * 16 < L->out ? nb1 * 16 : L->out);
    }
}

static void gemm_part(void *arg, int i) {
    const gemm_job *j = arg;
    long long units = (j->NB + j->unit - 1) / j->unit;
    int nb0 = (int)(units * i / j->parts) * j->unit, nb1 = (int)(units * (i + 1) / j->parts) * j->unit;
    if (nb1 > j->NB) nb1 = j->NB;
    if (nb0 < nb1) gemm_blocks(j, nb0, nb1);
}

/* Quantizes x for the int8 kernels of `isa` into ws and returns the kernel. */
static int q8_prepare(gemm_isa isa, const at_lin *L, const float *x, int M, const gemm_scratch *ws) {
#if GEMM_X86
    if (isa == GEMM_AVX512) {
        quantize_rows_avx512(x, M, L->in, (uint8_t *)ws->xq, ws->xs);
        return K_Q8_AVX512;
    }
#endif
    quantize_rows(x, M, L->in, ws->xq, ws->xs, 0);
    return isa == GEMM_AVX2 && GEMM_X86 ? K_Q8_AVX2 : K_Q8_SCALAR;
}

void gemm_q8_linear(gemm_isa isa, const at_lin *L, const float *x, int M, float *y,
                    const gemm_scratch *ws) {
    gemm_job j = {L, x, y, ws, M, q8_prepare(isa, L, x, M, ws), gemm_pad16(L->out) / 16, 1, 1};
    gemm_blocks(&j, 0, j.NB);
}

void gemm_linear(const at_model *m, const at_lin *L, const float *x, int M, float *y,
                 const gemm_scratch *ws) {
    gemm_isa isa = (gemm_isa)m->isa;
    gemm_job j = {L, x, y, ws, M, -1, gemm_pad16(L->out) / 16, 1, 1};
    if (m->wtype == AT_W_INT8) {
        j.kind = q8_prepare(isa, L, x, M, ws);
        j.unit = j.kind == K_Q8_AVX512 ? 4 : 1;
    }
#if GEMM_X86
    else if (isa >= GEMM_AVX2 && (m->wtype == AT_W_F16 ? L->ph != NULL : L->pw != NULL)) {
        int half = m->wtype == AT_W_F16;
        j.kind = isa >= GEMM_AVX512 ? (half ? K_PQ_F16 : K_PQ_F32) : (half ? K_PK_F16 : K_PK_F32);
        j.unit = isa >= GEMM_AVX512 ? 2 : 1;
    }
#endif
    if (j.kind >= 0) {
        int units = (j.NB + j.unit - 1) / j.unit;
        int q8 = m->wtype == AT_W_INT8;
        double w_bytes = (double)L->in * L->out * (q8 ? 1 : m->wtype == AT_W_F16 ? 2 : 4);
        double ns = w_bytes / 100.0 + (double)M * L->in * L->out / (q8 ? 200.0 : 50.0);
        j.parts = ws->pool && ns >= ws->split_ns ? ws->threads : 1;
        if (j.parts > units) j.parts = units;
        if (j.parts > 1)
            pool_run(ws->pool, j.parts, gemm_part, &j);
        else
            gemm_blocks(&j, 0, j.NB);
        return;
    }
    if (L->b) set_bias(y, M, L);
    if (m->wtype == AT_W_F32) {
        sgemm_rows(x, M, L, L->w, 0, L->out, y);
        return;
    }
    /* f16, many rows: widen GEMM_WIDE_ROWS weight rows at a time */
    for (int n0 = 0; n0 < L->out; n0 += GEMM_WIDE_ROWS) {
        int nr = L->out - n0 < GEMM_WIDE_ROWS ? L->out - n0 : GEMM_WIDE_ROWS;
        gemm_widen(isa, L->h + (size_t)n0 * L->in, (size_t)nr * L->in, ws->wide);
        sgemm_rows(x, M, L, ws->wide, n0, nr, y);
    }
}

size_t gemm_packed_elems(int out, int in) { return (size_t)gemm_pad16(out) * (size_t)in; }

/* One 16-row block at a time, written sequentially (16 read streams). */
#define PACK_BODY(T, W, out, in, p)                                                             \
    for (int n0 = 0; n0 < (out); n0 += 16) {                                                    \
        T *blk = (p) + (size_t)n0 * (in);                                                       \
        int nr = (out) - n0 < 16 ? (out) - n0 : 16;                                             \
        if (nr < 16) memset(blk, 0, (size_t)16 * (in) * sizeof(T));                             \
        for (int r = 0; r < nr; r++) {                                                          \
            const T *row = (W) + (size_t)(n0 + r) * (in);                                       \
            for (int k = 0; k < (in); k++) blk[(size_t)k * 16 + r] = row[k];                    \
        }                                                                                       \
    }

void gemm_pack_f32(const float *W, int out, int in, float *p) { PACK_BODY(float, W, out, in, p) }

void gemm_pack_f16(const uint16_t *H, int out, int in, uint16_t *p) {
    PACK_BODY(uint16_t, H, out, in, p)
}

void gemm_scratch_size(int rows, int in_max, size_t *xq_bytes, size_t *xs_floats,
                       size_t *wide_floats) {
    *xq_bytes = (size_t)rows * (size_t)gemm_pad4(in_max) + 64;
    *xs_floats = (size_t)rows + 16;
    *wide_floats = (size_t)GEMM_WIDE_ROWS * (size_t)in_max;
}

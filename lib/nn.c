/* nn.c — numeric kernels besides the matrix products (gemm.c): straight loops the
 * compiler vectorises. */
#include "nn.h"
#include "gemm.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NN_X86 1
#include <immintrin.h>
#define AVX2_TARGET __attribute__((target("avx2,fma")))

/* Cephes' expf constants, shared by exp8 and exp16 so that both compute the same lanes */
#define EXP_LO -87.3365478515625f
#define EXP_HI 88.3762626647949f
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO -2.12194440e-4f
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

/* e^x for 8 floats, Cephes' expf: x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial
 * for e^r, then 2^n through the exponent bits. Within 2 ulp of expf over the normal
 * range; below -87.34 (and for -inf) it gives 0; large inputs saturate near FLT_MAX. */
AVX2_TARGET static inline __attribute__((always_inline)) __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(EXP_LO), hi = _mm256_set1_ps(EXP_HI);
    __m256 zero = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), r);
    __m256 y = _mm256_set1_ps(EXP_P0);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P4));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P5));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(zero, y);
}

AVX2_TARGET static float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

AVX2_TARGET static float rowmax_avx2(const float *x, int n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    float mx = hmax8(m);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

/* x[i] = exp(x[i] - mx) from i on, the sums going on in `acc`'s 8 float lanes (lane k
 * adds the elements k mod 8 in order); returns the total (the lanes in order, then the
 * tail, in double) */
AVX2_TARGET static inline __attribute__((always_inline)) double
exp_sub_from_avx2(float *x, int i, int n, float mx, int store, __m256 acc) {
    __m256 m = _mm256_set1_ps(mx);
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        if (store) _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float lane[8];
    _mm256_storeu_ps(lane, acc);
    double sum = 0.0;
    for (int k = 0; k < 8; k++) sum += lane[k];
    if (i < n) { /* the tail through the same polynomial, padded with -inf */
        float t[8];
        for (int k = 0; k < 8; k++) t[k] = i + k < n ? x[i + k] : -INFINITY;
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(t), m));
        _mm256_storeu_ps(t, e);
        for (int k = 0; i + k < n; k++) {
            if (store) x[i + k] = t[k];
            sum += t[k];
        }
    }
    return sum;
}

/* x[i] = exp(x[i] - mx); returns the sum (float lanes, then double) */
AVX2_TARGET static double exp_sub_avx2(float *x, int n, float mx, int store) {
    return exp_sub_from_avx2(x, 0, n, mx, store, _mm256_setzero_ps());
}

/* The same with AVX-512: 16 exponentials at a time by the same operations (each lane
 * is exp8's), added to the 8 lanes as two halves in order, so every sum and every
 * stored value is exp_sub_avx2's, bit for bit. */
#define AVX512_TARGET __attribute__((target("avx512f,avx512vl,avx2,fma")))
AVX512_TARGET static inline __attribute__((always_inline)) __m512 exp16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(EXP_LO), hi = _mm512_set1_ps(EXP_HI);
    __mmask16 zero = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_max_ps(_mm512_min_ps(x, hi), lo);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
    __m512 y = _mm512_set1_ps(EXP_P0);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P1));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P2));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P4));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P5));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    y = _mm512_mul_ps(y, _mm512_castsi512_ps(e));
    return _mm512_maskz_mov_ps((__mmask16)~zero, y);
}

AVX512_TARGET static double exp_sub_avx512(float *x, int n, float mx, int store) {
    __m256 acc = _mm256_setzero_ps();
    __m512 m = _mm512_set1_ps(mx);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
        if (store) _mm512_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, _mm512_castps512_ps256(e));
        acc = _mm256_add_ps(acc, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1)));
    }
    return exp_sub_from_avx2(x, i, n, mx, store, acc);
}

AVX512_TARGET static float rowmax_avx512(const float *x, int n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    float mx = _mm512_reduce_max_ps(m);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

AVX2_TARGET static void swish_avx2(float *x, size_t n) {
    size_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), v));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

/* x / (1 + e^-x): 16 at a time, each lane computed as swish_avx2 computes it (exp16
 * is exp8 lane for lane, and the division is exact), the rest by swish_avx2. */
AVX512_TARGET static void swish_avx512(float *x, size_t n) {
    size_t i = 0;
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), v));
        _mm512_storeu_ps(x + i, _mm512_div_ps(v, _mm512_add_ps(one, e)));
    }
    swish_avx2(x + i, n - i);
}

/* LayerNorm of one row in 8 float lanes (the same arithmetic as the scalar loop,
 * summed in a different order) */
AVX2_TARGET static void layernorm_avx2(float *row, const float *r, int d, const at_ln *ln, float eps) {
    int d8 = d & ~7, j;
    __m256 s = _mm256_setzero_ps();
    for (j = 0; j < d8; j += 8) {
        __m256 v = _mm256_loadu_ps(row + j);
        if (r) {
            v = _mm256_add_ps(v, _mm256_loadu_ps(r + j));
            _mm256_storeu_ps(row + j, v);
        }
        s = _mm256_add_ps(s, v);
    }
    float lane[8], mean = 0.0f, var = 0.0f;
    _mm256_storeu_ps(lane, s);
    for (int k = 0; k < 8; k++) mean += lane[k];
    for (; j < d; j++) {
        if (r) row[j] += r[j];
        mean += row[j];
    }
    mean /= (float)d;
    __m256 mv = _mm256_set1_ps(mean);
    s = _mm256_setzero_ps();
    for (j = 0; j < d8; j += 8) {
        __m256 c = _mm256_sub_ps(_mm256_loadu_ps(row + j), mv);
        s = _mm256_fmadd_ps(c, c, s);
    }
    _mm256_storeu_ps(lane, s);
    for (int k = 0; k < 8; k++) var += lane[k];
    for (; j < d; j++) var += (row[j] - mean) * (row[j] - mean);
    var /= (float)d;
    float inv = 1.0f / sqrtf(var + eps);
    __m256 iv = _mm256_set1_ps(inv);
    for (j = 0; j < d8; j += 8) {
        __m256 c = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(row + j), mv), iv);
        _mm256_storeu_ps(row + j, _mm256_fmadd_ps(c, _mm256_loadu_ps(ln->weight + j),
                                                  _mm256_loadu_ps(ln->bias + j)));
    }
    for (; j < d; j++) row[j] = (row[j] - mean) * inv * ln->weight[j] + ln->bias[j];
}

AVX2_TARGET static float dot_avx2(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s0 = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float s = _mm_cvtss_f32(h);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

AVX2_TARGET static void axpy_avx2(float *y, float a, const float *x, int n) {
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

AVX2_TARGET static int next_above_avx2(const float *x, int i, int n, float thr) {
    __m256 t = _mm256_set1_ps(thr);
    for (; i + 8 <= n; i += 8) {
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), t, _CMP_GT_OQ));
        if (mask) return i + __builtin_ctz((unsigned)mask);
    }
    for (; i < n; i++)
        if (x[i] > thr) return i;
    return n;
}

/* p[t] = q·K_t for 8 keys t (rows k[0..7], n floats each, n % 8 == 0), as 8 float lanes */
AVX2_TARGET static inline __attribute__((always_inline)) __m256
dot8_avx2(const float *q, const float *const *k, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int c = 0; c < n; c += 8) {
        __m256 qv = _mm256_loadu_ps(q + c);
        a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[0] + c), a0);
        a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[1] + c), a1);
        a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[2] + c), a2);
        a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[3] + c), a3);
        a4 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[4] + c), a4);
        a5 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[5] + c), a5);
        a6 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[6] + c), a6);
        a7 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[7] + c), a7);
    }
    /* transpose-and-add: lane t of the result is the sum of a_t's 8 lanes */
    __m256 s0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    __m256 s1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
    return _mm256_add_ps(_mm256_permute2f128_ps(s0, s1, 0x20), _mm256_permute2f128_ps(s0, s1, 0x31));
}

/* out[0..64) = Σ_t p[t] v_t[0..64), the sums in eight registers */
AVX2_TARGET static void wsum64_avx2(const float *p, const float *V, const size_t *off,
                                    size_t stride, int S, float *out) {
    __m256 o0 = _mm256_setzero_ps(), o1 = o0, o2 = o0, o3 = o0, o4 = o0, o5 = o0, o6 = o0, o7 = o0;
    for (int t = 0; t < S; t++) {
        __m256 pv = _mm256_broadcast_ss(p + t);
        const float *v = V + (off ? off[t] : (size_t)t * stride);
        o0 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(v), o0);
        o1 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + 8), o1);
        o2 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + 16), o2);
        o3 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + 24), o3);
        o4 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + 32), o4);
        o5 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + 40), o5);
        o6 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + 48), o6);
        o7 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + 56), o7);
    }
    _mm256_storeu_ps(out, o0), _mm256_storeu_ps(out + 8, o1), _mm256_storeu_ps(out + 16, o2);
    _mm256_storeu_ps(out + 24, o3), _mm256_storeu_ps(out + 32, o4), _mm256_storeu_ps(out + 40, o5);
    _mm256_storeu_ps(out + 48, o6), _mm256_storeu_ps(out + 56, o7);
}

/* out[0..n) = Σ_t p[t] v_t[0..n), n % 8 == 0: 64 columns at a time in registers, then 8 */
AVX2_TARGET static void wsum_avx2(const float *p, const float *V, const size_t *off,
                                  size_t stride, int S, int n, float *out) {
    int c = 0;
    for (; c + 64 <= n; c += 64) wsum64_avx2(p, V + c, off, stride, S, out + c);
    for (; c < n; c += 8) {
        __m256 o = _mm256_setzero_ps();
        for (int t = 0; t < S; t++)
            o = _mm256_fmadd_ps(_mm256_broadcast_ss(p + t),
                                _mm256_loadu_ps(V + (off ? off[t] : (size_t)t * stride) + c), o);
        _mm256_storeu_ps(out + c, o);
    }
}

AVX2_TARGET static void attend_avx2(const float *q, const float *K, const float *V,
                                    const size_t *off, size_t stride, int S, int n, float *p,
                                    float *out) {
    const float *k[8];
    for (int t = 0; t < S; t += 8) {
        int m = S - t < 8 ? S - t : 8;
        for (int i = 0; i < 8; i++) { /* past the last key: key t again */
            size_t u = (size_t)t + (size_t)(i < m ? i : 0);
            k[i] = K + (off ? off[u] : u * stride);
        }
        __m256 d8 = dot8_avx2(q, k, n);
        if (m == 8) {
            _mm256_storeu_ps(p + t, d8);
        } else {
            float lane[8];
            _mm256_storeu_ps(lane, d8);
            for (int i = 0; i < m; i++) p[t + i] = lane[i];
        }
    }
    float mx = rowmax_avx2(p, S);
    float inv = (float)(1.0 / exp_sub_avx2(p, S, mx, 1));
    for (int i = 0; i < S; i++) p[i] *= inv;
    wsum_avx2(p, V, off, stride, S, n, out);
}

/* nn_attend_heads: the scores of every head for 8 keys at a time (each key row read
 * once, whole), then per head the same softmax and weighted sum as attend_avx2. */
AVX2_TARGET static void attend_heads_avx2(const float *q, const float *K, const float *V,
                                          const size_t *off, size_t stride, int S, int n, int H,
                                          float *p, float *out) {
    const float *k[8], *kh[8];
    for (int t = 0; t < S; t += 8) {
        int m = S - t < 8 ? S - t : 8;
        for (int i = 0; i < 8; i++) { /* past the last key: key t again */
            size_t u = (size_t)t + (size_t)(i < m ? i : 0);
            k[i] = K + (off ? off[u] : u * stride);
        }
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < 8; i++) kh[i] = k[i] + (size_t)h * n;
            __m256 d8 = dot8_avx2(q + (size_t)h * n, kh, n);
            float *ph = p + (size_t)h * S;
            if (m == 8) {
                _mm256_storeu_ps(ph + t, d8);
            } else {
                float lane[8];
                _mm256_storeu_ps(lane, d8);
                for (int i = 0; i < m; i++) ph[t + i] = lane[i];
            }
        }
    }
    for (int h = 0; h < H; h++) {
        float *ph = p + (size_t)h * S;
        float mx = rowmax_avx2(ph, S);
        float inv = (float)(1.0 / exp_sub_avx2(ph, S, mx, 1));
        for (int i = 0; i < S; i++) ph[i] *= inv;
        wsum_avx2(ph, V + (size_t)h * n, off, stride, S, n, out + (size_t)h * n);
    }
}
#else
#define NN_X86 0
#endif

void nn_attend_heads(const float *q, const float *K, const float *V, const size_t *off,
                     size_t stride, int S, int n, int H, float *p, float *out, int isa) {
#if NN_X86
    if (isa >= GEMM_AVX2 && n % 8 == 0) {
        attend_heads_avx2(q, K, V, off, stride, S, n, H, p, out);
        return;
    }
#endif
    for (int h = 0; h < H; h++)
        nn_attend(q + (size_t)h * n, K + (size_t)h * n, V + (size_t)h * n, off, stride, S, n,
                  p + (size_t)h * S, out + (size_t)h * n, isa);
}

float nn_dot(const float *a, const float *b, int n, int isa) {
#if NN_X86
    if (isa >= GEMM_AVX2) return dot_avx2(a, b, n);
#endif
    (void)isa;
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void nn_axpy(float *y, float a, const float *x, int n, int isa) {
#if NN_X86
    if (isa >= GEMM_AVX2) {
        axpy_avx2(y, a, x, n);
        return;
    }
#endif
    (void)isa;
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

void nn_attend(const float *q, const float *K, const float *V, const size_t *off, size_t stride,
               int S, int n, float *p, float *out, int isa) {
#if NN_X86
    if (isa >= GEMM_AVX2 && n % 8 == 0) {
        attend_avx2(q, K, V, off, stride, S, n, p, out);
        return;
    }
#endif
    for (int t = 0; t < S; t++) p[t] = nn_dot(q, K + (off ? off[t] : (size_t)t * stride), n, isa);
    nn_softmax(p, S, isa);
    memset(out, 0, (size_t)n * sizeof *out);
    for (int t = 0; t < S; t++) nn_axpy(out, p[t], V + (off ? off[t] : (size_t)t * stride), n, isa);
}

int nn_next_above(const float *x, int i, int n, float thr, int isa) {
#if NN_X86
    if (isa >= GEMM_AVX2) return next_above_avx2(x, i, n, thr);
#endif
    (void)isa;
    for (; i < n; i++)
        if (x[i] > thr) return i;
    return n;
}

float nn_exp_test(float x, int isa) {
#if NN_X86
    if (isa >= GEMM_AVX2) {
        float t = x;
        exp_sub_avx2(&t, 1, 0.0f, 1);
        return t;
    }
#endif
    (void)isa;
    return expf(x);
}

void nn_add_layernorm(float *x, const float *r, int M, int d, const at_ln *ln, float eps, int isa) {
#if NN_X86
    if (isa >= GEMM_AVX2) {
        for (int i = 0; i < M; i++)
            layernorm_avx2(x + (size_t)i * d, r ? r + (size_t)i * d : NULL, d, ln, eps);
        return;
    }
#endif
    (void)isa;
    for (int i = 0; i < M; i++) {
        float *row = x + (size_t)i * d;
        if (r) {
            const float *rr = r + (size_t)i * d;
            for (int j = 0; j < d; j++) row[j] += rr[j];
        }
        float mean = 0.0f;
        for (int j = 0; j < d; j++) mean += row[j];
        mean /= (float)d;
        float var = 0.0f;
        for (int j = 0; j < d; j++) {
            float c = row[j] - mean;
            var += c * c;
        }
        var /= (float)d;
        float inv = 1.0f / sqrtf(var + eps);
        for (int j = 0; j < d; j++) row[j] = (row[j] - mean) * inv * ln->weight[j] + ln->bias[j];
    }
}

void nn_activate(float *x, size_t n, at_activation act, int isa) {
    switch (act) {
    case AT_ACT_SWISH:
#if NN_X86
        if (isa >= GEMM_AVX512) {
            swish_avx512(x, n);
            break;
        }
        if (isa >= GEMM_AVX2) {
            swish_avx2(x, n);
            break;
        }
#endif
        for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    case AT_ACT_RELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case AT_ACT_GELU:
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
    }
}

void nn_softmax(float *x, int n, int isa) {
#if NN_X86
    if (isa >= GEMM_AVX512) {
        float mx = rowmax_avx512(x, n);
        float inv = (float)(1.0 / exp_sub_avx512(x, n, mx, 1));
        for (int i = 0; i < n; i++) x[i] *= inv;
        return;
    }
    if (isa >= GEMM_AVX2) {
        float mx = rowmax_avx2(x, n);
        float inv = (float)(1.0 / exp_sub_avx2(x, n, mx, 1));
        for (int i = 0; i < n; i++) x[i] *= inv;
        return;
    }
#endif
    (void)isa;
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

#if NN_X86
/* the largest value, and whether a NaN was seen */
AVX512_TARGET static float max_nan_avx512(const float *x, int n, int *nan) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    __mmask16 bad = 0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m = _mm512_max_ps(m, v);
    }
    float mx = _mm512_reduce_max_ps(m);
    for (; i < n; i++) {
        bad |= x[i] != x[i];
        mx = x[i] > mx ? x[i] : mx;
    }
    *nan = bad != 0;
    return mx;
}

AVX2_TARGET static float max_nan_avx2(const float *x, int n, int *nan) {
    __m256 m = _mm256_set1_ps(-INFINITY), bad = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        m = _mm256_max_ps(m, v);
    }
    float mx = hmax8(m);
    int b = _mm256_movemask_ps(bad);
    for (; i < n; i++) {
        b |= x[i] != x[i];
        mx = x[i] > mx ? x[i] : mx;
    }
    *nan = b != 0;
    return mx;
}
#endif

int nn_argmax(const float *x, int n, int isa) {
    int nan = 0;
    float mx = -INFINITY;
#if NN_X86
    if (isa >= GEMM_AVX512)
        mx = max_nan_avx512(x, n, &nan);
    else if (isa >= GEMM_AVX2)
        mx = max_nan_avx2(x, n, &nan);
    else
#endif
        for (int i = 0; i < n; i++) {
            nan |= x[i] != x[i];
            mx = x[i] > mx ? x[i] : mx;
        }
    if (nan || !isfinite(mx)) return -1;
    /* the first x > the float just below mx is the first x == mx */
    return nn_next_above(x, 0, n, nextafterf(mx, -INFINITY), isa);
}

double nn_logsumexp(const float *x, int n, int isa) {
#if NN_X86
    if (isa >= GEMM_AVX512) {
        float mx = rowmax_avx512(x, n);
        return (double)mx + log(exp_sub_avx512((float *)x, n, mx, 0));
    }
    if (isa >= GEMM_AVX2) {
        float mx = rowmax_avx2(x, n);
        return (double)mx + log(exp_sub_avx2((float *)x, n, mx, 0)); /* store = 0: read only */
    }
#endif
    (void)isa;
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    /* float exponentials (vectorised), summed in 8 float lanes, then in double */
    float lane[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) lane[k] += expf(x[i + k] - mx);
    double sum = 0.0;
    for (int k = 0; k < 8; k++) sum += lane[k];
    for (; i < n; i++) sum += expf(x[i] - mx);
    return (double)mx + log(sum);
}

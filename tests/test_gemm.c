/* test_gemm.c — the linear-layer kernels (lib/gemm.c):
 *   - against numpy's golden outputs (tests/fixtures/gemm/gemm.json, made by
 *     scripts/make_gemm_fixture.py): int8 within 2 float32 ulps (the integer part is
 *     exact, the epilogue rounds once), f16 and f32 within 1e-5 relative;
 *   - float → half conversion bit for bit against numpy;
 *   - every int8 kernel this CPU runs (AVX-512 VNNI, AVX2) bit-identical to the
 *     scalar one, and a row's output independent of the other rows, on awkward shapes;
 *   - the packed f32/f16 kernels against sgemm, and row-independent bit for bit;
 *   - int8 error against the f32 product bounded by the quantization steps;
 *   - the vectorised exp (softmax, log-sum-exp, swish) within 2 ulp of expf, and the
 *     softmax / log-sum-exp built on it against double precision; the AVX-512 ones bit
 *     for bit the AVX2 ones;
 *   - the fork-join pool (lib/pool.c): every task of every job runs exactly once, with
 *     helpers spinning, asleep, or more tasks than threads;
 *   - products split over 2 and 3 threads bit-identical to one thread, every dtype and
 *     kernel, on shapes whose blocks do not divide evenly. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "check.h"
#include "testfile.h"
#include "gemm.h"
#include "internal.h"
#include "model.h"
#include "nn.h"
#include "pool.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static float *json_floats(const cJSON *arr, int n) {
    float *v = malloc((size_t)n * sizeof *v);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) if (i < n) v[i++] = (float)x->valuedouble;
    if (i != n) {
        free(v);
        return NULL;
    }
    return v;
}

/* A linear layer and its compute forms, all owned here. */
typedef struct layer {
    at_lin L;
    int8_t *q;
    float *qscale;
    int32_t *qsum;
    uint16_t *h;
    float *pw;
    uint16_t *ph;
} layer;

static void layer_init(layer *y, const float *W, const float *b, int out, int in, gemm_isa isa) {
    memset(y, 0, sizeof *y);
    y->L.out = out, y->L.in = in, y->L.w = W, y->L.b = b;
    y->q = malloc(gemm_q8_bytes(out, in));
    y->qscale = malloc((size_t)gemm_pad16(out) * sizeof *y->qscale);
    y->qsum = malloc((size_t)gemm_pad16(out) * sizeof *y->qsum);
    y->h = malloc((size_t)out * in * sizeof *y->h);
    gemm_q8_pack(isa, W, out, in, y->q, y->qscale, y->qsum);
    for (size_t i = 0; i < (size_t)out * in; i++) y->h[i] = at_float_to_half(W[i]);
    y->L.q = y->q, y->L.qscale = y->qscale, y->L.qsum = y->qsum, y->L.h = y->h;
    size_t np = gemm_packed_elems(out, in);
    y->pw = malloc(np * sizeof *y->pw);
    y->ph = malloc(np * sizeof *y->ph);
    gemm_pack_f32(W, out, in, y->pw);
    gemm_pack_f16(y->h, out, in, y->ph);
    y->L.pw = y->pw, y->L.ph = y->ph; /* used by the AVX2 kernels; scalar uses w / h */
}

static void layer_free(layer *y) {
    free(y->q), free(y->qscale), free(y->qsum), free(y->h), free(y->pw), free(y->ph);
}

static gemm_scratch scratch_new(int rows, int in) {
    size_t a, b, c;
    gemm_scratch_size(rows, in, &a, &b, &c);
    gemm_scratch s = {.xq = malloc(a), .xs = malloc(b * sizeof(float)), .wide = malloc(c * sizeof(float))};
    return s;
}

static void scratch_free(gemm_scratch *s) { free(s->xq), free(s->xs), free(s->wide); }

/* a model shell that only carries the dtype and the kernels */
static at_model shell(at_wtype wt, gemm_isa isa) {
    at_model m;
    memset(&m, 0, sizeof m);
    m.wtype = wt, m.isa = (int)isa;
    return m;
}

static double ulps(float a, float b) {
    if (a == b) return 0;
    float m = fabsf(a) > fabsf(b) ? fabsf(a) : fabsf(b);
    return fabs((double)a - b) / (nextafterf(m, INFINITY) - m);
}

static void check_fixture(gemm_isa best) {
    const char *path = "tests/fixtures/gemm/gemm.json";
    cJSON *root = load_json(path);
    CHECK(root != NULL, "cannot read %s", path);
    if (!root) return;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        int M = cJSON_GetObjectItem(c, "M")->valueint, out = cJSON_GetObjectItem(c, "out")->valueint,
            in = cJSON_GetObjectItem(c, "in")->valueint;
        float *x = json_floats(cJSON_GetObjectItem(c, "x"), M * in);
        float *W = json_floats(cJSON_GetObjectItem(c, "W"), out * in);
        float *b = json_floats(cJSON_GetObjectItem(c, "b"), out);
        float *y8 = json_floats(cJSON_GetObjectItem(c, "y_int8"), M * out);
        float *y16 = json_floats(cJSON_GetObjectItem(c, "y_f16"), M * out);
        float *y32 = json_floats(cJSON_GetObjectItem(c, "y_f32"), M * out);
        CHECK(x && W && b && y8 && y16 && y32, "case %dx%dx%d: bad arrays", M, out, in);
        if (!(x && W && b && y8 && y16 && y32)) continue;
        layer ly;
        layer_init(&ly, W, b, out, in, GEMM_SCALAR);
        gemm_scratch ws = scratch_new(M, in);
        float *y = malloc((size_t)M * out * sizeof *y);
        for (int isa = GEMM_SCALAR; isa <= (int)best; isa++) {
            gemm_q8_linear((gemm_isa)isa, &ly.L, x, M, y, &ws);
            double worst = 0;
            for (int i = 0; i < M * out; i++) worst = fmax(worst, ulps(y[i], y8[i]));
            CHECK(worst <= 2, "int8 %s %dx%dx%d: %g ulps from numpy", gemm_isa_name((gemm_isa)isa),
                  M, out, in, worst);
            for (int wt = AT_W_F32; wt <= AT_W_F16; wt++) {
                at_model m = shell((at_wtype)wt, (gemm_isa)isa);
                gemm_linear(&m, &ly.L, x, M, y, &ws);
                const float *want = wt == AT_W_F32 ? y32 : y16;
                double err = 0;
                for (int i = 0; i < M * out; i++)
                    err = fmax(err, fabs(y[i] - want[i]) / (1.0 + fabs(want[i])));
                CHECK(err <= 1e-5, "%s %s %dx%dx%d: relative error %g", wt == AT_W_F32 ? "f32" : "f16",
                      gemm_isa_name((gemm_isa)isa), M, out, in, err);
            }
        }
        free(y);
        scratch_free(&ws);
        layer_free(&ly);
        free(x), free(W), free(b), free(y8), free(y16), free(y32);
    }
    const cJSON *h = cJSON_GetObjectItem(root, "half");
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(h, "float"));
    float *v = json_floats(cJSON_GetObjectItem(h, "float"), n);
    const cJSON *bits = cJSON_GetObjectItem(h, "half_bits");
    for (int i = 0; v && i < n; i++) {
        unsigned want = (unsigned)cJSON_GetArrayItem(bits, i)->valueint, got = at_float_to_half(v[i]);
        CHECK(got == want, "float_to_half(%.9g) = 0x%04x, numpy 0x%04x", (double)v[i], got, want);
        if ((want & 0x7c00u) != 0x7c00u) /* and back, exactly */
            CHECK(at_float_to_half(at_half_to_float((uint16_t)want)) == want, "half round trip 0x%04x", want);
    }
    free(v);
    cJSON_Delete(root);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23)) - 1.0);
}

static void check_kernels(gemm_isa best) {
    static const int shapes[][2] = {{1, 1}, {15, 3}, {16, 4}, {17, 5}, {31, 63}, {64, 64},
                                    {100, 36}, {37, 130}, {512, 512}, {1000, 512}, {512, 2048}};
    /* every remainder tile: AVX-512 f32 takes rows in 12s then 1-11, AVX2 in 6s then 1-5 */
    static const int Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 17, 23, 33};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int out = shapes[si][0], in = shapes[si][1], Mmax = 33;
        float *W = malloc((size_t)out * in * sizeof *W), *b = malloc((size_t)out * sizeof *b);
        float *x = malloc((size_t)Mmax * in * sizeof *x);
        for (size_t i = 0; i < (size_t)out * in; i++) W[i] = frand() * (i % 97 == 0 ? 4.0f : 0.3f);
        for (int i = 0; i < out; i++) b[i] = frand();
        for (size_t i = 0; i < (size_t)Mmax * in; i++) x[i] = frand() * 2.0f;
        layer ly;
        layer_init(&ly, W, b, out, in, best);
        { /* packing gives the same bytes with every isa */
            layer l0;
            layer_init(&l0, W, b, out, in, GEMM_SCALAR);
            size_t nb = gemm_q8_bytes(out, in), nr = (size_t)gemm_pad16(out);
            CHECK(!memcmp(l0.q, ly.q, nb) && !memcmp(l0.qscale, ly.qscale, nr * sizeof *l0.qscale) &&
                      !memcmp(l0.qsum, ly.qsum, nr * sizeof *l0.qsum),
                  "pack %dx%d: %s differs from scalar", out, in, gemm_isa_name(best));
            layer_free(&l0);
            /* the loader's paths: 16 rows at a time, from row-major and from packed16 f32
             * (gemm_q8_pack_block_packed), with a row of subnormals (127 / amax overflows:
             * the scalar q8 for that row) and a zero row; the same bytes on every isa */
            float *W2 = malloc((size_t)out * in * sizeof *W2), *P = malloc(gemm_packed_elems(out, in) * sizeof *P);
            memcpy(W2, W, (size_t)out * in * sizeof *W2);
            if (out > 3)
                for (int k = 0; k < in; k++) W2[(size_t)3 * in + k] = frand() * 1e-39f, W2[(size_t)1 * in + k] = 0.0f;
            gemm_pack_f32(W2, out, in, P);
            int8_t *q0 = malloc(nb), *q1 = malloc(nb), *rows = malloc((size_t)16 * gemm_pad4(in));
            float *s0 = malloc(nr * sizeof *s0), *s1 = malloc(nr * sizeof *s1);
            int32_t *u0 = malloc(nr * sizeof *u0), *u1 = malloc(nr * sizeof *u1);
            gemm_q8_pack(GEMM_SCALAR, W2, out, in, q0, s0, u0);
            for (int isa = GEMM_SCALAR; isa <= (int)best; isa++)
                for (int from_packed = 0; from_packed < 2; from_packed++) {
                    memset(q1, 0x55, nb);
                    for (int n0 = 0; n0 < out; n0 += 16) {
                        int8_t *blk = q1 + (size_t)n0 * gemm_pad4(in);
                        if (from_packed)
                            gemm_q8_pack_block_packed((gemm_isa)isa, P + (size_t)n0 * in, in, blk, s1 + n0, u1 + n0);
                        else
                            gemm_q8_pack_block((gemm_isa)isa, W2 + (size_t)n0 * in, out - n0 < 16 ? out - n0 : 16,
                                               in, blk, s1 + n0, u1 + n0, rows);
                    }
                    CHECK(!memcmp(q0, q1, nb) && !memcmp(s0, s1, nr * sizeof *s0) && !memcmp(u0, u1, nr * sizeof *u0),
                          "pack %dx%d by blocks (%s, from %s) differs from gemm_q8_pack", out, in,
                          gemm_isa_name((gemm_isa)isa), from_packed ? "packed16" : "rows");
                }
            if (out > 3) { /* the subnormal row: the scalar q8 of x * inf */
                int q = 0;
                for (int k = 0; k < in; k++) q |= q0[(size_t)(k / 4) * 64 + 3 * 4 + k % 4] != 0;
                CHECK(q && !(127.0f / (s0[3] * 127.0f) < INFINITY), "pack %dx%d: the subnormal row", out, in);
            }
            free(W2), free(P), free(q0), free(q1), free(rows), free(s0), free(s1), free(u0), free(u1);
        }
        gemm_scratch ws = scratch_new(Mmax, in);
        size_t ny = (size_t)Mmax * out;
        float *ref = malloc(ny * sizeof *ref), *y = malloc(ny * sizeof *y), *f32 = malloc(ny * sizeof *f32);
        for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++) {
            int M = Ms[mi];
            gemm_q8_linear(GEMM_SCALAR, &ly.L, x, M, ref, &ws);
            for (int isa = GEMM_AVX2; isa <= (int)best; isa++) {
                gemm_q8_linear((gemm_isa)isa, &ly.L, x, M, y, &ws);
                CHECK(!memcmp(y, ref, (size_t)M * out * sizeof *y), "int8 %s %dx%dx%d differs from scalar",
                      gemm_isa_name((gemm_isa)isa), M, out, in);
            }
            /* row independence: the last row alone gives the same bits */
            gemm_q8_linear(best, &ly.L, x + (size_t)(M - 1) * in, 1, y, &ws);
            CHECK(!memcmp(y, ref + (size_t)(M - 1) * out, (size_t)out * sizeof *y),
                  "int8 %dx%dx%d: last row alone differs", M, out, in);
            /* error against f32: each product term is off by at most half a step of x
             * times |w| plus half a step of w times |x| (plus their product) */
            at_model m32 = shell(AT_W_F32, GEMM_SCALAR);
            gemm_linear(&m32, &ly.L, x, M, f32, &ws);
            int bad = 0;
            for (int r = 0; r < M; r++) {
                float ax = 0;
                for (int k = 0; k < in; k++) ax = fmaxf(ax, fabsf(x[(size_t)r * in + k]));
                for (int n = 0; n < out; n++) {
                    double bound = 1e-5, aw = 0;
                    for (int k = 0; k < in; k++) aw = fmax(aw, fabsf(W[(size_t)n * in + k]));
                    for (int k = 0; k < in; k++) {
                        double xv = fabs(x[(size_t)r * in + k]), wv = fabs(W[(size_t)n * in + k]);
                        bound += 0.5 * ax / 127 * (wv + 0.5 * aw / 127) + 0.5 * aw / 127 * xv;
                    }
                    if (fabs(ref[(size_t)r * out + n] - f32[(size_t)r * out + n]) > bound) bad++;
                }
            }
            CHECK(bad == 0, "int8 %dx%dx%d: %d outputs beyond the quantization bound", M, out, in, bad);
            /* packed f32 / f16 kernels against sgemm; and a row alone gives the same bits */
            if (best >= GEMM_AVX2) {
                at_model mf = shell(AT_W_F32, best), mh = shell(AT_W_F16, best),
                         mh0 = shell(AT_W_F16, GEMM_SCALAR);
                gemm_linear(&mf, &ly.L, x, M, y, &ws);
                double err = 0;
                for (size_t i = 0; i < (size_t)M * out; i++)
                    err = fmax(err, fabs(y[i] - f32[i]) / (1.0 + fabs(f32[i])));
                double tol = 3e-5 * (in > 512 ? in / 512.0 : 1.0); /* float sums drift with length */
                CHECK(err <= tol, "f32 %dx%dx%d: %g from sgemm", M, out, in, err);
                gemm_linear(&mh0, &ly.L, x, M, ref, &ws);
                gemm_linear(&mh, &ly.L, x, M, y, &ws);
                err = 0;
                for (size_t i = 0; i < (size_t)M * out; i++)
                    err = fmax(err, fabs(y[i] - ref[i]) / (1.0 + fabs(ref[i])));
                CHECK(err <= tol, "f16 %dx%dx%d: %g from widened sgemm", M, out, in, err);
                gemm_linear(&mf, &ly.L, x, M, y, &ws);
                gemm_linear(&mf, &ly.L, x + (size_t)(M - 1) * in, 1, ref, &ws);
                CHECK(!memcmp(ref, y + (size_t)(M - 1) * out, (size_t)out * sizeof *y),
                      "packed f32 %dx%dx%d: last row alone differs", M, out, in);
                /* the AVX-512 tiles give the AVX2 tiles' bits (the same FMA chain per output) */
                for (int wt = AT_W_F32; best >= GEMM_AVX512 && wt <= AT_W_F16; wt++) {
                    at_model m2 = shell((at_wtype)wt, GEMM_AVX2), m5 = shell((at_wtype)wt, GEMM_AVX512);
                    gemm_linear(&m2, &ly.L, x, M, ref, &ws);
                    gemm_linear(&m5, &ly.L, x, M, y, &ws);
                    CHECK(!memcmp(ref, y, (size_t)M * out * sizeof *y),
                          "packed %s %dx%dx%d: avx512 differs from avx2", wt == AT_W_F32 ? "f32" : "f16",
                          M, out, in);
                }
            }
        }
        free(ref), free(y), free(f32), free(W), free(b), free(x);
        scratch_free(&ws);
        layer_free(&ly);
    }
}

static void check_exp(gemm_isa best) {
    for (int isa = GEMM_SCALAR; isa <= (int)best; isa++) {
        double worst = 0;
        int bad = 0;
        for (float x = -87.3f; x < 88.3f; x += 0.000731f) {
            float got = nn_exp_test(x, isa), want = expf(x);
            double u = ulps(got, want);
            worst = fmax(worst, u);
            bad += !(u <= 2);
        }
        CHECK(bad == 0, "exp %s: %d values beyond 2 ulp (worst %g)", gemm_isa_name((gemm_isa)isa), bad, worst);
        CHECK(nn_exp_test(-INFINITY, isa) == 0.0f && nn_exp_test(-100.0f, isa) <= 1.2e-38f &&
              nn_exp_test(0.0f, isa) == 1.0f && nn_exp_test(100.0f, isa) >= 1e38f,
              "exp %s: limits", gemm_isa_name((gemm_isa)isa));
        /* softmax and log-sum-exp over a vocabulary-sized row with -inf entries */
        int n = 59514;
        float *row = malloc((size_t)n * sizeof *row), *sm = malloc((size_t)n * sizeof *sm);
        for (int i = 0; i < n; i++) row[i] = i % 1000 == 7 ? -INFINITY : frand() * 12.0f;
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < n; i++) mx = fmax(mx, row[i]);
        for (int i = 0; i < n; i++) sum += exp((double)row[i] - mx);
        double lse = mx + log(sum), got = nn_logsumexp(row, n, isa);
        CHECK(fabs(got - lse) <= 1e-6 * fabs(lse), "logsumexp %s: %.9g vs %.9g",
              gemm_isa_name((gemm_isa)isa), got, lse);
        memcpy(sm, row, (size_t)n * sizeof *sm);
        nn_softmax(sm, n, isa);
        double err = 0, total = 0;
        for (int i = 0; i < n; i++) {
            err = fmax(err, fabs(sm[i] - exp((double)row[i] - lse)) / (exp((double)row[i] - lse) + 1e-30));
            total += sm[i];
        }
        CHECK(err <= 1e-5 && fabs(total - 1) <= 1e-5, "softmax %s: relative error %g, sum %.9g",
              gemm_isa_name((gemm_isa)isa), err, total);
        free(row), free(sm);
    }
    if (best < GEMM_AVX512) return;
    /* the AVX-512 softmax and log-sum-exp: the AVX2 ones' bits, on every length's tail */
    int bad = 0, cases = 0;
    static const int lens[] = {1, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 100, 16000, 16001, 59514};
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        int n = lens[li];
        float *row = malloc((size_t)n * sizeof *row), *a = malloc((size_t)n * sizeof *a),
              *b = malloc((size_t)n * sizeof *b);
        for (int i = 0; i < n; i++) row[i] = i % 97 == 5 ? -INFINITY : frand() * 30.0f;
        double l2 = nn_logsumexp(row, n, GEMM_AVX2), l5 = nn_logsumexp(row, n, GEMM_AVX512);
        memcpy(a, row, (size_t)n * sizeof *a), memcpy(b, row, (size_t)n * sizeof *b);
        nn_softmax(a, n, GEMM_AVX2), nn_softmax(b, n, GEMM_AVX512);
        bad += memcmp(&l2, &l5, sizeof l2) != 0 || memcmp(a, b, (size_t)n * sizeof *a) != 0;
        cases++;
        free(row), free(a), free(b);
    }
    CHECK(bad == 0, "AVX-512 softmax / log-sum-exp differ from AVX2's on %d of %d lengths", bad, cases);
}

/* nn_argmax on every ISA against a plain loop: the first index of the largest value
 * (ties, -inf entries, a maximum in the vector body or the tail), and -1 for a NaN
 * anywhere, a +inf maximum, or nothing but -inf. */
static void check_argmax(gemm_isa best) {
    static const int lens[] = {1, 7, 8, 9, 15, 16, 17, 33, 16000, 16001, 59514};
    int bad = 0, cases = 0;
    for (int isa = GEMM_SCALAR; isa <= (int)best; isa++)
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
            int n = lens[li];
            float *row = malloc((size_t)n * sizeof *row);
            for (int trial = 0; trial < 6; trial++) {
                for (int i = 0; i < n; i++) row[i] = i % 97 == 5 ? -INFINITY : frand() * 30.0f;
                int at = (int)((unsigned)(trial * 7919 + n) % (unsigned)n);
                row[at] = 40.0f;
                if (trial % 2 && at + 1 < n) row[n - 1] = 40.0f; /* a tie: the first wins */
                int want = 0;
                for (int i = 1; i < n; i++) want = row[i] > row[want] ? i : want;
                bad += nn_argmax(row, n, isa) != want, cases++;
                row[(at + n / 2) % n] = trial < 2 ? NAN : trial < 4 ? INFINITY : row[at];
                if (trial >= 4)
                    for (int i = 0; i < n; i++) row[i] = -INFINITY;
                bad += nn_argmax(row, n, isa) != -1, cases++;
            }
            free(row);
        }
    CHECK(bad == 0, "argmax: %d of %d cases wrong", bad, cases);
}

/* nn_attend against float64 arithmetic: every ISA, head sizes on and off the 8-float fast
 * path (and past 64 columns), key counts around the 8-key blocks, keys at a stride or at
 * scattered offsets (the decoder's cache), the weights it returns and the output. */
static void check_attend(gemm_isa best) {
    const int ns[] = {8, 12, 16, 64, 72, 128}, Ss[] = {1, 2, 7, 8, 9, 16, 31, 77};
    int cap = 77, width = 160, rows = 2 * cap + 3;
    float *K = malloc((size_t)rows * width * sizeof *K), *V = malloc((size_t)rows * width * sizeof *V);
    float q[160], p[77], out[160];
    size_t off[77];
    for (int i = 0; i < rows * width; i++) K[i] = frand() * 2.0f, V[i] = frand() * 3.0f;
    for (int i = 0; i < 160; i++) q[i] = frand() * 0.5f;
    for (int isa = GEMM_SCALAR; isa <= (int)best; isa++)
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof Ss / sizeof *Ss; b++)
                for (int scattered = 0; scattered < 2; scattered++) {
                    int n = ns[a], S = Ss[b];
                    const float *Kh = K + 3, *Vh = V + 5; /* an unaligned head */
                    for (int t = 0; t < S; t++) /* scattered: rows 2t + 1, in reverse */
                        off[t] = (size_t)(scattered ? 2 * (S - 1 - t) + 1 : t) * width;
                    nn_attend(q, Kh, Vh, scattered ? off : NULL, (size_t)width, S, n, p, out, isa);
                    double w[77], mx = -INFINITY, sum = 0, perr = 0, oerr = 0;
                    for (int t = 0; t < S; t++) {
                        w[t] = 0;
                        for (int j = 0; j < n; j++) w[t] += (double)q[j] * Kh[off[t] + j];
                        mx = fmax(mx, w[t]);
                    }
                    for (int t = 0; t < S; t++) sum += (w[t] = exp(w[t] - mx));
                    for (int t = 0; t < S; t++) perr = fmax(perr, fabs(p[t] - w[t] / sum));
                    for (int j = 0; j < n; j++) {
                        double o = 0;
                        for (int t = 0; t < S; t++) o += w[t] / sum * Vh[off[t] + j];
                        oerr = fmax(oerr, fabs(out[j] - o));
                    }
                    CHECK(perr <= 1e-5 && oerr <= 4e-5,
                          "attend %s n=%d S=%d %s: weights off by %g, output by %g",
                          gemm_isa_name((gemm_isa)isa), n, S, scattered ? "scattered" : "strided",
                          perr, oerr);
                }
    /* nn_attend_heads (the decoder's self-attention): H heads side by side in each key and
     * value row, the same bits as nn_attend head by head */
    int bad = 0, cases = 0;
    for (int isa = GEMM_SCALAR; isa <= (int)best; isa++)
        for (int H = 1; H <= 3; H++)
            for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
                for (size_t b = 0; b < sizeof Ss / sizeof *Ss; b++) {
                    int n = ns[a], S = Ss[b];
                    if (H * n > width) continue;
                    float ph[3 * 77], oh[160], p1[77], o1[160];
                    for (int t = 0; t < S; t++) off[t] = (size_t)(2 * (S - 1 - t) + 1) * width + 3;
                    for (int strided = 0; strided < 2; strided++) {
                        const size_t *o = strided ? NULL : off; /* strided: key t at t·width + 3 */
                        nn_attend_heads(q, K + 3 * strided, V + 3 * strided, o, (size_t)width, S, n,
                                        H, ph, oh, isa);
                        for (int h = 0; h < H; h++) {
                            nn_attend(q + h * n, K + 3 * strided + h * n, V + 3 * strided + h * n,
                                      o, (size_t)width, S, n, p1, o1, isa);
                            bad += memcmp(p1, ph + h * S, (size_t)S * sizeof *p1) != 0 ||
                                   memcmp(o1, oh + h * n, (size_t)n * sizeof *o1) != 0;
                            cases++;
                        }
                    }
                }
    CHECK(bad == 0, "attend_heads differs from attend head by head in %d of %d cases", bad, cases);
    free(K), free(V);
}

/* swish on every ISA against double precision, and the AVX-512 one bit for bit the
 * AVX2 one, on lengths around the 8- and 16-float blocks */
static void check_swish(gemm_isa best) {
    static const size_t lens[] = {1, 7, 8, 9, 15, 16, 17, 23, 24, 31, 33, 1024, 1031};
    int bad = 0, diff = 0, cases = 0;
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        size_t n = lens[li];
        float x[1031], y[3][1031];
        for (size_t i = 0; i < n; i++) x[i] = (frand() - 0.5f) * 40.0f;
        for (int isa = GEMM_SCALAR; isa <= (int)best; isa++) {
            memcpy(y[isa], x, n * sizeof *x);
            nn_activate(y[isa], n, AT_ACT_SWISH, isa);
            for (size_t i = 0; i < n; i++) {
                double want = x[i] / (1.0 + exp(-(double)x[i]));
                bad += !(fabs(y[isa][i] - want) <= 4e-7 * fabs(want) + 1e-30);
            }
            cases++;
        }
        if (best >= GEMM_AVX512) diff += memcmp(y[GEMM_AVX2], y[GEMM_AVX512], n * sizeof *x) != 0;
    }
    CHECK(bad == 0, "swish: %d values off double precision (%d ISA x length cases)", bad, cases);
    CHECK(diff == 0, "swish: AVX-512 differs from AVX2 on %d lengths", diff);
}

/* ---- the pool and split products ------------------------------------------------ */

#define POOL_CHECK_TASKS 100

typedef struct pool_job {
    int n;
    int hits[POOL_CHECK_TASKS];
} pool_job;

static void pool_task(void *arg, int i) {
    pool_job *j = arg;
    j->hits[i]++; /* each task runs once per job, on one thread: no race */
}

static void check_pool(void) {
    CHECK(pool_new(1) == NULL && pool_new(0) == NULL && pool_threads(NULL) == 1,
          "a pool of one thread is no pool");
    pool_job j = {0};
    pool_run(NULL, 5, pool_task, &j);
    CHECK(j.hits[0] == 1 && j.hits[4] == 1 && j.hits[5] == 0, "pool_run(NULL) runs each task once");
    for (int threads = 2; threads <= 3; threads++) {
        at_pool *p = pool_new(threads);
        CHECK(p && pool_threads(p) == threads, "pool of %d threads", threads);
        if (!p) continue;
        int bad = 0, jobs = 0;
        for (int r = 0; r < 20000; r++, jobs++) {
            memset(&j, 0, sizeof j);
            j.n = 1 + r % POOL_CHECK_TASKS; /* up to 100: above 64 all run on the caller */
            if (r % 2000 == 1) { /* let the helpers fall asleep: waking them must work */
                struct timespec ts = {0, 2000000};
                nanosleep(&ts, NULL);
            }
            pool_run(p, j.n, pool_task, &j);
            for (int i = 0; i < POOL_CHECK_TASKS; i++) bad += j.hits[i] != (i < j.n);
        }
        CHECK(bad == 0, "pool of %d: %d tasks not run exactly once in %d jobs", threads, bad, jobs);
        pool_free(p);
    }
    pool_free(NULL);
}

static void check_split(gemm_isa best) {
    static const int shapes[][2] = {{1, 5}, {17, 64}, {33, 130}, {100, 36}, {257, 64}, {1000, 96}};
    static const int Ms[] = {1, 3, 13};
    at_pool *pools[2] = {pool_new(2), pool_new(3)};
    CHECK(pools[0] && pools[1], "pools for the split products");
    if (!pools[0] || !pools[1]) return;
    int cases = 0, bad = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int out = shapes[si][0], in = shapes[si][1], Mmax = 13;
        float *W = malloc((size_t)out * in * sizeof *W), *b = malloc((size_t)out * sizeof *b);
        float *x = malloc((size_t)Mmax * in * sizeof *x);
        float *ref = malloc((size_t)Mmax * out * sizeof *ref), *y = malloc((size_t)Mmax * out * sizeof *y);
        for (size_t i = 0; i < (size_t)out * in; i++) W[i] = frand() * 0.3f;
        for (int i = 0; i < out; i++) b[i] = frand();
        for (size_t i = 0; i < (size_t)Mmax * in; i++) x[i] = frand() * 2.0f;
        layer ly;
        layer_init(&ly, W, b, out, in, best);
        gemm_scratch ws = scratch_new(Mmax, in);
        for (int isa = GEMM_SCALAR; isa <= (int)best; isa++)
            for (int wt = AT_W_F32; wt <= AT_W_INT8; wt++) {
                at_model m = shell((at_wtype)wt, (gemm_isa)isa);
                for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++) {
                    int M = Ms[mi];
                    ws.pool = NULL, ws.threads = 1, ws.split_ns = 0;
                    gemm_linear(&m, &ly.L, x, M, ref, &ws);
                    for (int pi = 0; pi < 2; pi++) {
                        ws.pool = pools[pi], ws.threads = pool_threads(pools[pi]);
                        memset(y, 0xff, (size_t)M * out * sizeof *y);
                        gemm_linear(&m, &ly.L, x, M, y, &ws);
                        cases++;
                        if (memcmp(y, ref, (size_t)M * out * sizeof *y)) {
                            bad++;
                            fprintf(stderr, "split %s wt %d %dx%dx%d over %d threads differs\n",
                                    gemm_isa_name((gemm_isa)isa), wt, M, out, in, ws.threads);
                        }
                    }
                }
            }
        scratch_free(&ws);
        layer_free(&ly);
        free(W), free(b), free(x), free(ref), free(y);
    }
    CHECK(bad == 0, "%d of %d split products differ from one thread's", bad, cases);
    pool_free(pools[0]), pool_free(pools[1]);
}

int main(void) {
    gemm_isa best = gemm_detect_isa();
    printf("test_gemm: kernels up to %s\n", gemm_isa_name(best));
    check_fixture(best);
    check_kernels(best);
    check_exp(best);
    check_argmax(best);
    check_attend(best);
    check_swish(best);
    check_pool();
    check_split(best);
    return check_report("test_gemm");
}

/* bench_sgemm.c — this machine's OpenBLAS single-precision ceilings, which
 * scripts/bench.py compares attn-translate's achieved GFLOP/s with.
 *
 *   cc -O2 tests/bench_sgemm.c -lopenblas -o bench_sgemm
 *   bench_sgemm [THREADS...] [--seconds S]      (default: threads 1 and 2, 0.4 s a shape)
 *
 * For each thread count (openblas_set_num_threads) it times, as the engine calls them
 * (row-major activations [M, K] times transposed weights [N, K]):
 *   sgemm 512x2048x512   an FFN fc1 over a batch of 512 tokens
 *   sgemm 1024x1024x1024 the classic square shape
 *   sgemv 59514x512      one token through the OPUS-MT output projection (122 MB of
 *                        weights: bound by memory bandwidth, also printed in GB/s)
 *   sgemv 2048x512       one token through fc1 (4 MB: cache resident)
 * Output, one line per measurement (parsed by bench.py):
 *   CONFIG <openblas_get_config()>
 *   RESULT <kind> <M> <N> <K> <threads> <GFLOP/s> <GB/s of weights read>
 *   PEAK <threads> <best sgemm GFLOP/s>
 */
#define _POSIX_C_SOURCE 199309L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern void openblas_set_num_threads(int);
extern char *openblas_get_config(void);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static float *filled(size_t n, int mod) {
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_sgemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = (float)((int)(i % (size_t)mod) - mod / 2) * 0.01f;
    return p;
}

/* best of several timed windows: robust against a busy, shared machine */
static double gemm(int M, int N, int K, double seconds) {
    float *a = filled((size_t)M * K, 7), *b = filled((size_t)N * K, 5), *c = filled((size_t)M * N, 3);
    double best = 0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    for (int w = 0; w < 4; w++) {
        int reps = 0;
        double t0 = now(), t;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
            reps++;
        } while ((t = now() - t0) < seconds / 4);
        double gf = 2.0 * M * N * K * reps / t / 1e9;
        if (gf > best) best = gf;
    }
    free(a), free(b), free(c);
    return best;
}

static double gemv(int N, int K, double seconds) {
    float *w = filled((size_t)N * K, 5), *x = filled((size_t)K, 7), *y = filled((size_t)N, 3);
    double best = 0;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1, w, K, x, 1, 0, y, 1);
    for (int r = 0; r < 4; r++) {
        int reps = 0;
        double t0 = now(), t;
        do {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1, w, K, x, 1, 0, y, 1);
            reps++;
        } while ((t = now() - t0) < seconds / 4);
        double gf = 2.0 * N * K * reps / t / 1e9;
        if (gf > best) best = gf;
    }
    free(w), free(x), free(y);
    return best;
}

int main(int argc, char **argv) {
    int threads[16], nt = 0;
    double seconds = 0.4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (nt < 16 && atoi(argv[i]) > 0)
            threads[nt++] = atoi(argv[i]);
        else {
            fprintf(stderr, "usage: bench_sgemm [THREADS...] [--seconds S]\n");
            return 2;
        }
    }
    if (nt == 0) threads[nt++] = 1, threads[nt++] = 2;
    printf("CONFIG %s\n", openblas_get_config());
    static const int gemms[][3] = {{512, 2048, 512}, {1024, 1024, 1024}};
    static const int gemvs[][2] = {{59514, 512}, {2048, 512}};
    for (int t = 0; t < nt; t++) {
        openblas_set_num_threads(threads[t]);
        double peak = 0;
        for (size_t s = 0; s < sizeof gemms / sizeof *gemms; s++) {
            int M = gemms[s][0], N = gemms[s][1], K = gemms[s][2];
            double gf = gemm(M, N, K, seconds);
            printf("RESULT sgemm %d %d %d %d %.2f %.2f\n", M, N, K, threads[t], gf,
                   gf / (2.0 * M) * 4);  /* weights [N,K] bytes per FLOP x FLOP/s */
            if (gf > peak) peak = gf;
            fflush(stdout);
        }
        for (size_t s = 0; s < sizeof gemvs / sizeof *gemvs; s++) {
            int N = gemvs[s][0], K = gemvs[s][1];
            double gf = gemv(N, K, seconds);
            printf("RESULT sgemv 1 %d %d %d %.2f %.2f\n", N, K, threads[t], gf, gf / 2.0 * 4);
            fflush(stdout);
        }
        printf("PEAK %d %.2f\n", threads[t], peak);
    }
    return 0;
}

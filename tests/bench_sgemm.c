/* bench_sgemm.c — this machine's OpenBLAS sgemm throughput, the ceiling that
 * scripts/bench.py compares the engine's achieved GFLOP/s with.
 * Usage: bench_sgemm THREADS  → prints "GFLOPS <best over shapes>" */
#define _POSIX_C_SOURCE 199309L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern void openblas_set_num_threads(int);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    openblas_set_num_threads(threads);
    const int shapes[][3] = {{256, 2048, 512}, {512, 512, 2048}, {1024, 1024, 1024}};
    double best = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)N * K * 4), *c = malloc((size_t)M * N * 4);
        if (!a || !b || !c) return 1;
        for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.01f;
        for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 5) * 0.01f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
        int reps = 0;
        double t0 = now(), t;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
            reps++;
        } while ((t = now() - t0) < 0.5);
        double gf = 2.0 * M * N * K * reps / t / 1e9;
        if (gf > best) best = gf;
        free(a), free(b), free(c);
    }
    printf("GFLOPS %.1f\n", best);
    return 0;
}

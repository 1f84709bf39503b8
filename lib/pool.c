/* pool.c — the fork-join pool of pool.h.
 *
 * A job is published as one 64-bit word: its generation (48 bits, never wrapping in
 * practice) and its task count. Each task has a claim word holding the generation that
 * last claimed it; a thread claims task i of generation g by compare-and-swap from an
 * older generation to g, then checks that g is still the published job before running
 * it (a thread that woke late may have claimed for a job that is over: it runs nothing,
 * and the newer job still sees the task as unclaimed). Thread t tries task t first, so
 * with as many tasks as threads each thread keeps its own share of the weights in its
 * own cache from one product to the next, and takes the other tasks only when their
 * owner is late. The caller starts no new job before every task of the current one is
 * done, so the job's fields are always those of the job whose task was claimed. */
#define _POSIX_C_SOURCE 200809L
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef POOL_SPIN_NS
#define POOL_SPIN_NS 200000 /* how long an idle helper spins before it sleeps */
#endif

#define POOL_TASKS_MAX 64

/* Words that different threads write live on cache lines of their own. */
struct claim {
    _Alignas(64) _Atomic uint64_t gen; /* generation that last claimed the task */
};

struct at_pool {
    _Alignas(64) _Atomic uint64_t job; /* (generation << 16) | tasks; written by the caller */
    void (*fn)(void *, int);
    void *arg;
    _Atomic int sleepers; /* helpers waiting on cv */
    _Atomic int stop;
    _Alignas(64) _Atomic int done; /* tasks of the current job finished */
    struct claim claim[POOL_TASKS_MAX];
    int threads, started;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

struct helper_arg {
    at_pool *p;
    int id;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Claims and runs tasks of the job word `job`, task `home` first. */
static void work(at_pool *p, uint64_t job, int home) {
    uint64_t g = job >> 16;
    int n = (int)(job & 0xFFFF);
    for (int k = 0; k < n; k++) {
        int i = (home + k) % n;
        uint64_t v = atomic_load_explicit(&p->claim[i].gen, memory_order_relaxed);
        if (v >= g || !atomic_compare_exchange_strong_explicit(&p->claim[i].gen, &v, g,
                                                              memory_order_acq_rel,
                                                              memory_order_relaxed))
            continue; /* done or taken in this job (or a newer one) */
        if (atomic_load_explicit(&p->job, memory_order_acquire) != job) return; /* over */
        p->fn(p->arg, i);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static void *helper(void *arg) {
    at_pool *p = ((struct helper_arg *)arg)->p;
    int id = ((struct helper_arg *)arg)->id;
    free(arg);
    uint64_t seen = atomic_load(&p->job);
    for (;;) {
        uint64_t job = atomic_load_explicit(&p->job, memory_order_acquire);
        if (job == seen) {
            uint64_t t0 = now_ns();
            for (int i = 0; job == seen; i++) {
                cpu_relax();
                if (atomic_load_explicit(&p->stop, memory_order_relaxed)) return NULL;
                job = atomic_load_explicit(&p->job, memory_order_acquire);
                if (job == seen && (i & 63) == 63 && now_ns() - t0 > POOL_SPIN_NS) {
                    /* sleep: sleepers is raised before the job word is read again, and
                     * the caller reads sleepers after publishing (both sequentially
                     * consistent), so one of the two sees the other */
                    pthread_mutex_lock(&p->mu);
                    atomic_fetch_add(&p->sleepers, 1);
                    while ((job = atomic_load(&p->job)) == seen && !atomic_load(&p->stop))
                        pthread_cond_wait(&p->cv, &p->mu);
                    atomic_fetch_sub(&p->sleepers, 1);
                    pthread_mutex_unlock(&p->mu);
                    if (atomic_load(&p->stop)) return NULL;
                    break;
                }
            }
        }
        seen = job;
        work(p, job, id % (int)(job & 0xFFFF));
    }
}

at_pool *pool_new(int threads) {
    if (threads < 2) return NULL;
    at_pool *p = aligned_alloc(64, sizeof *p); /* sizeof is a multiple of the alignment */
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->threads = threads;
    p->tid = calloc((size_t)threads - 1, sizeof *p->tid);
    if (!p->tid || pthread_mutex_init(&p->mu, NULL)) {
        free(p->tid), free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->cv, NULL)) {
        pthread_mutex_destroy(&p->mu), free(p->tid), free(p);
        return NULL;
    }
    while (p->started < threads - 1) {
        struct helper_arg *ha = malloc(sizeof *ha);
        if (!ha) break;
        *ha = (struct helper_arg){p, p->started + 1};
        if (pthread_create(&p->tid[p->started], NULL, helper, ha) != 0) {
            free(ha);
            break;
        }
        p->started++;
    }
    if (p->started < threads - 1) {
        pool_free(p);
        return NULL;
    }
    return p;
}

void pool_free(at_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->tid[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->tid);
    free(p);
}

int pool_threads(const at_pool *p) { return p ? p->threads : 1; }

void pool_run(at_pool *p, int n, void (*fn)(void *arg, int i), void *arg) {
    if (!p || n <= 1 || n > POOL_TASKS_MAX) {
        for (int i = 0; i < n; i++) fn(arg, i);
        return;
    }
    p->fn = fn, p->arg = arg;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    uint64_t job = ((atomic_load_explicit(&p->job, memory_order_relaxed) >> 16) + 1) << 16 | (uint64_t)n;
    atomic_store(&p->job, job); /* publishes the job */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    work(p, job, 0);
    while (atomic_load_explicit(&p->done, memory_order_acquire) < n) cpu_relax();
}

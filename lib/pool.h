/* pool.h — a fork-join pool: one session's helper threads, for splitting a product's
 * output columns when a single sentence leaves cores idle. Private to lib/.
 *
 * pool_run() hands out the tasks of one job to the calling thread and the helpers,
 * first come first served, and returns when all are done. A task that no helper has
 * claimed by the time the caller is free runs on the caller, so a helper that is slow
 * to wake delays nothing. Helpers spin briefly after a job (the next product of a
 * decoder step follows within microseconds), then sleep on a condition variable. */
#ifndef AT_POOL_H
#define AT_POOL_H

typedef struct at_pool at_pool;

/* A pool of `threads` threads in all: the caller of pool_run() and threads - 1 helpers,
 * started here. Returns NULL when threads < 2 or a thread or allocation fails (the
 * caller then computes alone). Release with pool_free(). */
at_pool *pool_new(int threads);

/* Stops and joins the helpers and frees the pool. Accepts NULL. */
void pool_free(at_pool *p);

/* Threads a job can use: 1 for NULL. */
int pool_threads(const at_pool *p);

/* Runs fn(arg, i) for every i in [0, n) and returns when all have returned. Tasks may
 * run in any order and on any of the pool's threads, task i on thread i (the caller is
 * thread 0) unless that thread is late; fn must not call pool_run. Only one thread may
 * call pool_run on a pool at a time. p may be NULL, and n above 64 runs all on the
 * caller. */
void pool_run(at_pool *p, int n, void (*fn)(void *arg, int i), void *arg);

#endif

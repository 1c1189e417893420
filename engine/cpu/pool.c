/* pool: the CPU backend's worker threads, started once and reused, so that splitting an operation over rows
 * costs a wake-up rather than a thread creation per call. */
#include "engine/cpu/cpu.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

/* Multiply-adds below which handing a range to another thread costs more than it saves (a wake-up is ~10 us).
 */
#define POOL_GRAIN 32768

static struct {
    pthread_mutex_t busy; /* held by the one caller using the workers; a concurrent caller runs inline */
    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t start, finish;
    pthread_t tid[CPU_MAX_THREADS];
    unsigned long born[CPU_MAX_THREADS]; /* the job generation current when worker i was started */
    int workers;                         /* started threads; worker i (1-based) runs range i */
    int hooks;                           /* atexit / atfork handlers registered */
    unsigned long gen;                   /* bumped for each job */
    int pending;                         /* workers still running the current job */
    int quit;
    cpu_range_fn fn;
    void *ctx;
    size_t n;
    int parts;
} pool = {.busy = PTHREAD_MUTEX_INITIALIZER,
          .mu = PTHREAD_MUTEX_INITIALIZER,
          .start = PTHREAD_COND_INITIALIZER,
          .finish = PTHREAD_COND_INITIALIZER};

/* Range i of `parts` contiguous ranges covering [0, n). */
static void pool_range(size_t n, int parts, int i, size_t *begin, size_t *end) {
    *begin = n / parts * i + (n % parts < (size_t)i ? n % parts : (size_t)i);
    *end = *begin + n / parts + ((size_t)i < n % parts);
}

static void *pool_worker(void *arg) {
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&pool.mu);
    unsigned long seen = pool.born[id];
    for (;;) {
        while (!pool.quit && pool.gen == seen)
            pthread_cond_wait(&pool.start, &pool.mu);
        if (pool.quit)
            break;
        seen = pool.gen;
        if (id >= pool.parts)
            continue;
        cpu_range_fn fn = pool.fn;
        void *ctx = pool.ctx;
        size_t begin, end;
        pool_range(pool.n, pool.parts, id, &begin, &end);
        pthread_mutex_unlock(&pool.mu);
        fn(ctx, begin, end);
        pthread_mutex_lock(&pool.mu);
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.finish);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

/* At exit, stop and join the workers (so leak checkers see a clean process). */
static void pool_stop(void) {
    pthread_mutex_lock(&pool.busy);
    pthread_mutex_lock(&pool.mu);
    pool.quit = 1;
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 1; i <= pool.workers; i++)
        pthread_join(pool.tid[i], NULL);
    pool.workers = 0;
    pool.quit = 0;
    pthread_mutex_unlock(&pool.busy);
}

/* A forked child has none of the parent's threads: start afresh. */
static void pool_after_fork(void) {
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.start, NULL);
    pthread_cond_init(&pool.finish, NULL);
    pool.workers = 0;
    pool.pending = 0;
    pool.quit = 0;
}

/* Starts workers up to parts - 1 (the caller runs range 0); returns how many ranges can run. Called with busy
 * held, so no job is in flight. */
static int pool_grow(int parts) {
    if (!pool.hooks) {
        atexit(pool_stop);
        pthread_atfork(NULL, NULL, pool_after_fork);
        pool.hooks = 1;
    }
    while (pool.workers < parts - 1) {
        int id = pool.workers + 1;
        pool.born[id] = pool.gen;
        if (pthread_create(&pool.tid[id], NULL, pool_worker, (void *)(intptr_t)id) != 0)
            break; /* fewer threads only costs speed: results do not depend on the split */
        pool.workers = id;
    }
    return parts < pool.workers + 1 ? parts : pool.workers + 1;
}

static int pool_parts(size_t n, size_t cost) {
    size_t parts = (size_t)cpu_threads();
    if (parts > n)
        parts = n;
    size_t work = cost && n > SIZE_MAX / cost ? SIZE_MAX : n * (cost ? cost : 1);
    if (parts > work / POOL_GRAIN)
        parts = work / POOL_GRAIN;
    return parts < 1 ? 1 : (int)parts;
}

void cpu_parallel(size_t n, size_t cost, cpu_range_fn fn, void *ctx) {
    int parts = pool_parts(n, cost);
    if (parts <= 1 || pthread_mutex_trylock(&pool.busy) != 0) {
        fn(ctx, 0, n); /* nested or concurrent callers run inline */
        return;
    }
    parts = pool_grow(parts);
    pthread_mutex_lock(&pool.mu);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.parts = parts;
    pool.pending = parts - 1;
    pool.gen++;
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.mu);

    size_t begin, end;
    pool_range(n, parts, 0, &begin, &end);
    fn(ctx, begin, end);

    pthread_mutex_lock(&pool.mu);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.finish, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.busy);
}

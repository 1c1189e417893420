/* sha256_behind: hashing a buffer behind its writer, on a thread of its own (util/sha256_behind.h). */
#include "util/sha256_behind.h"
#include "util/buf.h"

#include <pthread.h>
#include <stdlib.h>

struct sha256_behind {
    struct sha256 *h;
    const unsigned char *base;
    pthread_t thread;
    int threaded;
    pthread_mutex_t mu;
    pthread_cond_t more; /* ready grew, or stop was set */
    size_t ready;        /* bytes the writer has finished; under mu */
    int stop;            /* 1: hash what is ready, then end; 2: end now; under mu */
    size_t hashed;       /* the thread's own progress (or the caller's, without a thread) */
};

#define BEHIND_PIECE (4u << 20)

/* Hashes what the writer has finished, a piece at a time, until told to stop. */
static void *behind_run(void *arg) {
    struct sha256_behind *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (b->ready == b->hashed && !b->stop)
            pthread_cond_wait(&b->more, &b->mu);
        size_t to = b->ready;
        int stop = b->stop;
        pthread_mutex_unlock(&b->mu);
        if (stop == 2 || (stop && to == b->hashed))
            return NULL;
        if (to - b->hashed > BEHIND_PIECE) /* so that an abort waits for one piece at most */
            to = b->hashed + BEHIND_PIECE;
        sha256_update(b->h, b->base + b->hashed, to - b->hashed);
        b->hashed = to;
    }
}

struct sha256_behind *sha256_behind_start(const void *base) {
    struct sha256_behind *b = xcalloc(1, sizeof *b);
    b->h = sha256_new();
    b->base = base;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->more, NULL);
    b->threaded = pthread_create(&b->thread, NULL, behind_run, b) == 0;
    return b;
}

void sha256_behind_ready(struct sha256_behind *b, size_t n) {
    if (!b->threaded) {
        sha256_update(b->h, b->base + b->hashed, n - b->hashed);
        b->hashed = n;
        return;
    }
    pthread_mutex_lock(&b->mu);
    b->ready = n;
    pthread_cond_signal(&b->more);
    pthread_mutex_unlock(&b->mu);
}

/* Tells the thread how to end, waits for it, frees everything but the digest state. */
static void behind_stop(struct sha256_behind *b, int how) {
    if (b->threaded) {
        pthread_mutex_lock(&b->mu);
        b->stop = how;
        pthread_cond_signal(&b->more);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
    }
    pthread_cond_destroy(&b->more);
    pthread_mutex_destroy(&b->mu);
}

void sha256_behind_finish(struct sha256_behind *b, char id[HASH_ID_SIZE]) {
    behind_stop(b, 1);
    sha256_final_id(b->h, id);
    free(b);
}

void sha256_behind_abort(struct sha256_behind *b) {
    behind_stop(b, 2);
    sha256_free(b->h);
    free(b);
}

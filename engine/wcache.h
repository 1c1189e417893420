/* wcache: a backend's copies of frozen weights, for the bf16 tables (engine/ops.h's weights_frozen): the
 * operand a product would otherwise round from the fp32 weight on every call, made once. The registry only:
 * each backend makes, reads and drops its own copies (engine/cpu/matmul.c, engine/cuda/matmul.cu).
 *
 * Entries are found by the weight's exact pointer and size; weights_forget drops every entry inside an
 * address range, which is how a changed or freed weight stops being read from a stale copy. A model holds a
 * few hundred product weights, and a lookup is a scan of them: nothing beside a product's cost. Not
 * thread-safe: operations are called from one thread. */
#ifndef PULSE_ENGINE_WCACHE_H
#define PULSE_ENGINE_WCACHE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct wcache_entry {
    const float *w; /* the fp32 weight */
    size_t n;       /* its elements */
    void *copy;     /* the backend's copy */
    size_t bytes;   /* what the copy holds */
};

struct wcache {
    struct wcache_entry *e;
    size_t n, cap;
    size_t bytes; /* what the copies hold together */
};

/* The copy of w[n], or NULL. */
void *wcache_find(const struct wcache *c, const float *w, size_t n);
/* Records copy as w[n]'s (w must not have one yet), holding `bytes`. */
void wcache_add(struct wcache *c, const float *w, size_t n, void *copy, size_t bytes);
/* Calls drop on, and removes, every entry whose weight overlaps [p, p + n floats); the rest keep their
 * order. drop gets each entry's own weight, size and copy. Returns how many were dropped. */
size_t wcache_forget(struct wcache *c, const float *p, size_t n,
                     void (*drop)(const float *w, size_t n, void *copy));

#ifdef __cplusplus
}
#endif

#endif

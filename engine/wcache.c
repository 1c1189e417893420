/* wcache: the registry of a backend's frozen-weight copies (engine/wcache.h). */
#include "engine/wcache.h"

#include "util/buf.h"

#include <stdint.h>

void *wcache_find(const struct wcache *c, const float *w, size_t n) {
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].w == w && c->e[i].n == n)
            return c->e[i].copy;
    return NULL;
}

void wcache_add(struct wcache *c, const float *w, size_t n, void *copy, size_t bytes) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->e = xrealloc(c->e, c->cap * sizeof *c->e);
    }
    c->e[c->n++] = (struct wcache_entry){.w = w, .n = n, .copy = copy, .bytes = bytes};
    c->bytes += bytes;
}

/* Addresses compared as integers: the range and a weight may belong to different allocations. */
static int overlaps(const float *w, size_t wn, const float *p, size_t pn) {
    uintptr_t a = (uintptr_t)w, ae = a + wn * sizeof(float), b = (uintptr_t)p, be = b + pn * sizeof(float);
    return a < be && b < ae;
}

size_t wcache_forget(struct wcache *c, const float *p, size_t n,
                     void (*drop)(const float *w, size_t n, void *copy)) {
    size_t kept = 0, dropped = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct wcache_entry e = c->e[i];
        if (overlaps(e.w, e.n, p, n)) {
            drop(e.w, e.n, e.copy);
            c->bytes -= e.bytes;
            dropped++;
        } else {
            c->e[kept++] = e;
        }
    }
    c->n = kept;
    return dropped;
}

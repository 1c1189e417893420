/* buf: a growable byte buffer (always NUL-terminated), the building block for text the program writes. */
#ifndef PULSE_UTIL_BUF_H
#define PULSE_UTIL_BUF_H

#include <stddef.h>

struct buf {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;
};

/* All appends abort the process on out-of-memory: there is no sensible recovery for a few bytes of text. */
void buf_append(struct buf *b, const void *data, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (never NULL: an empty buffer gives ""), resetting b. */
char *buf_take(struct buf *b);
void buf_free(struct buf *b);

/* xmalloc and friends: allocation that cannot fail (aborts with a message on out-of-memory). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif

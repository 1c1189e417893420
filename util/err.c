/* err: the thread-local one-line error message behind err_set/err_errno/err_prefix. */
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ERR_CAP 1024

static _Thread_local char err_buf[ERR_CAP];

/* Messages are printed as one line, so any newline a caller smuggles in becomes a space. */
static void err_flatten(void) {
    for (char *p = err_buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

int err_set(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    err_flatten();
    return -1;
}

int err_errno(const char *fmt, ...) {
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    size_t used = strlen(err_buf);
    snprintf(err_buf + used, sizeof err_buf - used, ": %s", strerror(saved));
    err_flatten();
    errno = saved;
    return -1;
}

int err_prefix(const char *fmt, ...) {
    char old[ERR_CAP];
    memcpy(old, err_buf, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    size_t used = strlen(err_buf);
    snprintf(err_buf + used, sizeof err_buf - used, ": %s", old);
    err_flatten();
    return -1;
}

const char *err_msg(void) {
    return err_buf;
}

void err_clear(void) {
    err_buf[0] = '\0';
}

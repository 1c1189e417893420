/* err: the one error-reporting convention of pulse-pipe.
 *
 * A function that fails stores one line with err_set() and returns -1 (or NULL); callers may add context in
 * front with err_prefix(); whoever finally gives up prints err_msg() once, as "pulse-pipe: <message>".
 * The message lives in thread-local storage, so threads do not clobber each other's errors. */
#ifndef PULSE_UTIL_ERR_H
#define PULSE_UTIL_ERR_H

#include <stdarg.h>

/* Replaces the current message; returns -1 so callers can write `return err_set(...)`. */
int err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like err_set with strerror(errno) appended as ": <reason>". */
int err_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prepends "<context>: " to the current message; returns -1. */
int err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *err_msg(void);
void err_clear(void);

#endif

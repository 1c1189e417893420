/* fsio: the I/O seam. Every byte the store makes durable goes through these calls, so that tests can
 * prove crash and disk-full safety:
 *
 *   PULSE_FAULT=<op>:<n>:<errno>  the n-th call (1-based) of <op> in this process fails with that errno
 *                                 (op: open, write, fsync, rename, mkdir, any; errno: ENOSPC, EIO, ...)
 *   PULSE_CRASH_AT=<n>            the process kills itself with SIGKILL at its n-th durability point
 *                                 (after every fsync, rename and directory fsync)
 *   PULSE_FAULT_LOG=<file>        appends one line per durability point ("point <n> <what>")
 *
 * The variables are read only in builds with PULSE_FAULT_INJECTION defined; elsewhere the calls are plain
 * POSIX with EINTR and short writes handled. All functions return 0 (or an fd) on success and -1 with
 * err_set() on failure, naming the path. */
#ifndef PULSE_UTIL_FSIO_H
#define PULSE_UTIL_FSIO_H

#include <stddef.h>

/* Creates a new file with a unique name in dir (O_CREAT|O_EXCL, mode 0644); path receives its name. */
int fsio_create_tmp(const char *dir, char *path, size_t cap);
int fsio_write_all(int fd, const void *data, size_t n, const char *path);
int fsio_fsync(int fd, const char *path);
int fsio_close(int fd, const char *path);
/* rename(2), then fsync of the destination's directory (both are durability points). */
int fsio_rename(const char *from, const char *to);
int fsio_fsync_dir(const char *dir);
/* mkdir -p; fsyncs each parent in which it created a directory. When the final directory was there already,
 * its creator may have died before fsyncing its parent, so that parent is fsynced too, once per process per
 * directory (a mutex-protected set remembers which), so that a file written into it is durable. */
int fsio_mkdir_p(const char *path);
int fsio_unlink(const char *path);
/* Writes path atomically: a temp file in tmpdir (same file system), fsync, rename, directory fsync. */
int fsio_write_atomic(const char *tmpdir, const char *path, const void *data, size_t n);
/* Reads a whole regular file (refusing files over max bytes, and with "<path>: not a regular file" anything
 * else: a FIFO or device could block or never end) into a NUL-terminated malloc'd buffer. */
int fsio_read_file(const char *path, size_t max, char **data, size_t *n);
/* Marks a durability point explicitly (for points outside fsio, e.g. after an audit commit). */
void fsio_point(const char *what);

/* For tests: replaces the PULSE_FAULT / PULSE_CRASH_AT settings (fault in PULSE_FAULT's syntax or NULL,
 * crash_at 0 for none), re-reads PULSE_FAULT_LOG and resets all counters. No-op without injection. */
void fsio_fault_set(const char *fault, long crash_at);
/* 1 when this build has the fault-injection seam (PULSE_FAULT_INJECTION), else 0. */
int fsio_fault_enabled(void);

#endif

/* fsio: durable file I/O (EINTR and short writes handled) with the fault-injection and crash-point seam
 * described in fsio.h. */
#include "util/fsio.h"
#include "util/buf.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef PULSE_FAULT_INJECTION

/* ---- fault injection ----------------------------------------------------------------------------------- */

static const char *const fault_ops[] = {"open", "write", "fsync", "rename", "mkdir"};
#define NOPS (sizeof fault_ops / sizeof fault_ops[0])

static struct {
    pthread_mutex_t mu;
    char op[16]; /* "" = no fault configured */
    long nth;
    int err;
    long crash_at;
    char *log;
    long calls[NOPS], any_calls, points;
} fault = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t fault_once = PTHREAD_ONCE_INIT;

static const struct {
    const char *name;
    int err;
} errno_names[] = {{"ENOSPC", ENOSPC}, {"EIO", EIO},         {"EDQUOT", EDQUOT}, {"EROFS", EROFS},
                   {"EACCES", EACCES}, {"EPERM", EPERM},     {"ENOENT", ENOENT}, {"EEXIST", EEXIST},
                   {"EMFILE", EMFILE}, {"ENFILE", ENFILE},   {"ENOMEM", ENOMEM}, {"EFBIG", EFBIG},
                   {"EINVAL", EINVAL}, {"EXDEV", EXDEV},     {"EBUSY", EBUSY},   {"EAGAIN", EAGAIN},
                   {"EINTR", EINTR},   {"ENOTDIR", ENOTDIR}, {"EISDIR", EISDIR}};

static int errno_parse(const char *s) {
    for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
        if (strcmp(errno_names[i].name, s) == 0)
            return errno_names[i].err;
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v > 0 && v < 4096 ? (int)v : 0;
}

static int op_known(const char *op) {
    if (strcmp(op, "any") == 0)
        return 1;
    for (size_t i = 0; i < NOPS; i++)
        if (strcmp(fault_ops[i], op) == 0)
            return 1;
    return 0;
}

/* Parses "<op>:<n>:<errno>" into the config (caller holds the lock); a malformed spec is reported once on
 * stderr and ignored, since this seam has no caller to return an error to. */
static void fault_parse(const char *spec) {
    fault.op[0] = '\0';
    if (!spec || !*spec)
        return;
    char op[16], name[32];
    long nth;
    int err = 0;
    if (sscanf(spec, "%15[a-z]:%ld:%31s", op, &nth, name) == 3 && op_known(op) && nth > 0 &&
        (err = errno_parse(name)) != 0) {
        snprintf(fault.op, sizeof fault.op, "%s", op);
        fault.nth = nth;
        fault.err = err;
        return;
    }
    fprintf(stderr, "pulse-pipe: ignoring malformed PULSE_FAULT=%s (want <op>:<n>:<errno>)\n", spec);
}

static void fault_reset_locked(const char *spec, long crash_at) {
    fault_parse(spec);
    fault.crash_at = crash_at;
    free(fault.log);
    const char *log = getenv("PULSE_FAULT_LOG");
    fault.log = log && *log ? xstrdup(log) : NULL;
    memset(fault.calls, 0, sizeof fault.calls);
    fault.any_calls = fault.points = 0;
}

static void fault_init(void) {
    const char *crash = getenv("PULSE_CRASH_AT");
    pthread_mutex_lock(&fault.mu);
    fault_reset_locked(getenv("PULSE_FAULT"), crash ? strtol(crash, NULL, 10) : 0);
    pthread_mutex_unlock(&fault.mu);
}

void fsio_fault_set(const char *spec, long crash_at) {
    pthread_once(&fault_once, fault_init);
    pthread_mutex_lock(&fault.mu);
    fault_reset_locked(spec, crash_at);
    pthread_mutex_unlock(&fault.mu);
}

int fsio_fault_enabled(void) {
    return 1;
}

/* Counts one call of op; when it is the configured one, fails it before it does anything. */
static int fault_check(const char *op, const char *path) {
    pthread_once(&fault_once, fault_init);
    pthread_mutex_lock(&fault.mu);
    long mine = 0, any = ++fault.any_calls;
    for (size_t i = 0; i < NOPS; i++)
        if (strcmp(fault_ops[i], op) == 0)
            mine = ++fault.calls[i];
    int hit = fault.op[0] && (strcmp(fault.op, "any") == 0 ? any == fault.nth
                                                           : strcmp(fault.op, op) == 0 && mine == fault.nth);
    int err = fault.err;
    pthread_mutex_unlock(&fault.mu);
    if (!hit)
        return 0;
    err_set("%s %s: %s", op, path, strerror(err));
    errno = err;
    return -1;
}

static void fault_log(const char *log, long n, const char *what, const char *path) {
    char line[4200];
    int len = path ? snprintf(line, sizeof line, "point %ld %s %s\n", n, what, path)
                   : snprintf(line, sizeof line, "point %ld %s\n", n, what);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof line)
        len = sizeof line - 1;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    /* One write with O_APPEND keeps lines from concurrent writers whole; a failed log line is not fatal. */
    ssize_t w = write(fd, line, (size_t)len);
    (void)w;
    close(fd);
}

static void durability_point(const char *what, const char *path) {
    int saved = errno;
    pthread_once(&fault_once, fault_init);
    pthread_mutex_lock(&fault.mu);
    long n = ++fault.points, crash_at = fault.crash_at;
    char *log = fault.log ? xstrdup(fault.log) : NULL;
    pthread_mutex_unlock(&fault.mu);
    if (log)
        fault_log(log, n, what, path);
    free(log);
    if (crash_at > 0 && n == crash_at)
        raise(SIGKILL);
    errno = saved;
}

#else /* !PULSE_FAULT_INJECTION */

void fsio_fault_set(const char *spec, long crash_at) {
    (void)spec;
    (void)crash_at;
}

int fsio_fault_enabled(void) {
    return 0;
}

static int fault_check(const char *op, const char *path) {
    (void)op;
    (void)path;
    return 0;
}

static void durability_point(const char *what, const char *path) {
    (void)what;
    (void)path;
}

#endif

void fsio_point(const char *what) {
    durability_point(what, NULL);
}

/* ---- I/O ----------------------------------------------------------------------------------------------- */

static atomic_ulong tmp_counter;

static unsigned tmp_random(void) {
    unsigned r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (unsigned)atomic_fetch_add(&tmp_counter, 0x9e3779b9u) ^ (unsigned)getpid(); /* still unique-ish */
    return r;
}

int fsio_create_tmp(const char *dir, char *path, size_t cap) {
    for (int tries = 0; tries < 100; tries++) {
        unsigned long c = atomic_fetch_add(&tmp_counter, 1);
        int len = snprintf(path, cap, "%s/tmp-%ld-%lu-%08x", dir, (long)getpid(), c, tmp_random());
        if (len < 0 || (size_t)len >= cap)
            return err_set("create a temporary file in %s: path too long", dir);
        if (fault_check("open", path) < 0)
            return -1;
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST && errno != EINTR)
            return err_errno("create %s", path);
    }
    return err_set("create a temporary file in %s: no unused name after 100 tries", dir);
}

int fsio_write_all(int fd, const void *data, size_t n, const char *path) {
    if (fault_check("write", path) < 0)
        return -1;
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return err_errno("write %s", path);
        if (w == 0) {
            errno = EIO;
            return err_set("write %s: wrote nothing", path);
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int fsio_fsync(int fd, const char *path) {
    if (fault_check("fsync", path) < 0)
        return -1;
    int rc;
    while ((rc = fsync(fd)) < 0 && errno == EINTR)
        ;
    if (rc < 0)
        return err_errno("fsync %s", path);
    durability_point("fsync", path);
    return 0;
}

int fsio_close(int fd, const char *path) {
    /* On Linux the descriptor is gone even when close reports EINTR, so retrying would be wrong. */
    if (close(fd) < 0 && errno != EINTR)
        return err_errno("close %s", path);
    return 0;
}

int fsio_fsync_dir(const char *dir) {
    if (fault_check("fsync", dir) < 0)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_errno("open directory %s", dir);
    int rc;
    while ((rc = fsync(fd)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        err_errno("fsync directory %s", dir);
        close(fd);
        return -1;
    }
    close(fd);
    durability_point("fsync_dir", dir);
    return 0;
}

/* The directory holding path ("." for a bare name), malloc'd. */
static char *parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    while (slash && slash > path && slash[1] == '\0') /* "a/b/" names b */
        slash = memrchr(path, '/', (size_t)(slash - path));
    if (!slash)
        return xstrdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = xmalloc(n + 1);
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

int fsio_rename(const char *from, const char *to) {
    char what[4200];
    snprintf(what, sizeof what, "%s -> %s", from, to);
    if (fault_check("rename", what) < 0)
        return -1;
    if (rename(from, to) < 0)
        return err_errno("rename %s", what);
    durability_point("rename", to);
    char *dir = parent_dir(to);
    int rc = fsio_fsync_dir(dir);
    free(dir);
    return rc;
}

int fsio_unlink(const char *path) {
    if (unlink(path) < 0)
        return err_errno("unlink %s", path);
    return 0;
}

/* Directories this process has made durable (created, or found and their parent fsynced), so that each costs
 * one directory fsync per process, not one per object written into it. A set of paths (open addressing). */
static struct {
    pthread_mutex_t mu;
    char **slot;
    size_t cap, n;
} durable = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t durable_find(char **slot, size_t cap, const char *path) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = path; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    size_t i = (size_t)h & (cap - 1);
    while (slot[i] && strcmp(slot[i], path) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

static int durable_has(const char *path) {
    pthread_mutex_lock(&durable.mu);
    int has = durable.cap && durable.slot[durable_find(durable.slot, durable.cap, path)];
    pthread_mutex_unlock(&durable.mu);
    return has;
}

static void durable_add(const char *path) {
    pthread_mutex_lock(&durable.mu);
    if (2 * (durable.n + 1) > durable.cap) {
        size_t cap = durable.cap ? 2 * durable.cap : 64;
        char **slot = xcalloc(cap, sizeof *slot);
        for (size_t i = 0; i < durable.cap; i++)
            if (durable.slot[i])
                slot[durable_find(slot, cap, durable.slot[i])] = durable.slot[i];
        free(durable.slot);
        durable.slot = slot;
        durable.cap = cap;
    }
    size_t i = durable_find(durable.slot, durable.cap, path);
    if (!durable.slot[i]) {
        durable.slot[i] = xstrdup(path);
        durable.n++;
    }
    pthread_mutex_unlock(&durable.mu);
}

static int fsync_parent(const char *dir) {
    char *parent = parent_dir(dir);
    int rc = fsio_fsync_dir(parent);
    free(parent);
    return rc;
}

/* Creates one directory whose parent exists, and makes its entry durable: 1 if it made it, 0 if it was
 * there already, -1 on error. */
static int mkdir_one(const char *dir) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        errno = ENOTDIR;
        return err_set("mkdir %s: exists and is not a directory", dir);
    }
    if (errno != ENOENT)
        return err_errno("mkdir %s", dir);
    if (fault_check("mkdir", dir) < 0)
        return -1;
    if (mkdir(dir, 0755) < 0) {
        if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return 0; /* another process won the race: fine */
        return err_errno("mkdir %s", dir);
    }
    return fsync_parent(dir) < 0 ? -1 : 1;
}

/* A directory that was already there may be one whose creator died before fsyncing its parent (or is a
 * racing process that has not got to it yet): an object written into it would then not be durable. */
static int make_durable(const char *dir, int created) {
    if (!created && !durable_has(dir) && fsync_parent(dir) < 0)
        return -1;
    durable_add(dir);
    return 0;
}

int fsio_mkdir_p(const char *path) {
    if (!path || !*path)
        return err_set("mkdir: empty path");
    char *p = xstrdup(path);
    size_t len = strlen(p), last = 0;
    int rc = 0;
    for (size_t i = 1; i <= len && rc >= 0; i++) {
        if ((i < len && p[i] != '/') || p[i - 1] == '/')
            continue;
        char save = p[i];
        p[i] = '\0';
        rc = mkdir_one(p);
        p[i] = save;
        last = i;
    }
    if (rc >= 0 && last) {
        p[last] = '\0';
        rc = make_durable(p, rc);
    }
    free(p);
    return rc < 0 ? -1 : 0;
}

int fsio_write_atomic(const char *tmpdir, const char *path, const void *data, size_t n) {
    char tmp[4096];
    int fd = fsio_create_tmp(tmpdir, tmp, sizeof tmp);
    if (fd < 0)
        return -1;
    if (fsio_write_all(fd, data, n, tmp) < 0 || fsio_fsync(fd, tmp) < 0) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (fsio_close(fd, tmp) < 0 || fsio_rename(tmp, path) < 0) {
        unlink(tmp); /* after a failed directory fsync the tmp is already gone: ENOENT is fine */
        return -1;
    }
    return 0;
}

/* Reads fd to the end into b, failing once more than max bytes arrive. */
static int read_all(int fd, const char *path, size_t max, struct buf *b) {
    char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return err_errno("read %s", path);
        if (r == 0)
            return 0;
        if ((size_t)r > max - b->len) {
            errno = EFBIG;
            return err_set("read %s: file is larger than the limit of %zu bytes", path, max);
        }
        buf_append(b, chunk, (size_t)r);
    }
}

/* Refuses anything but a regular file (a FIFO or a device could block or never end) and files over max,
 * before reading a byte. */
static int read_precheck(int fd, const char *path, size_t max) {
    struct stat st;
    if (fstat(fd, &st) < 0)
        return err_errno("stat %s", path);
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return err_set("%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)max) {
        errno = EFBIG;
        return err_set("read %s: file is larger than the limit of %zu bytes", path, max);
    }
    return 0;
}

int fsio_read_file(const char *path, size_t max, char **data, size_t *n) {
    /* O_NONBLOCK: opening a FIFO with no writer must not hang before fstat can refuse it */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return err_errno("open %s", path);
    struct buf b = {0};
    int rc = read_precheck(fd, path, max);
    if (rc == 0)
        rc = read_all(fd, path, max, &b);
    close(fd);
    if (rc < 0) {
        buf_free(&b);
        return -1;
    }
    if (n)
        *n = b.len;
    *data = buf_take(&b);
    return 0;
}

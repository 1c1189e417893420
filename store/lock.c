/* lock: flock-based advisory locks on locks/<name>.lock inside a store. */
#include "store/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/err.h"

/* Names come from the program, but a bad one must not reach outside locks/. */
static int lock_name_ok(const char *name) {
    return name && *name && !strchr(name, '/') && !strstr(name, "..") && strlen(name) <= 200;
}

static int flock_retry(int fd, int op) {
    int rc;
    do
        rc = flock(fd, op);
    while (rc < 0 && errno == EINTR);
    return rc;
}

int lock_take(struct store *s, const char *name, enum lock_mode mode, int wait) {
    if (!lock_name_ok(name))
        return err_set("lock '%.80s': invalid lock name", name ? name : "(null)");
    char path[4096];
    if (store_path(s, path, sizeof path, "locks/%s.lock", name) < 0)
        return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_errno("lock %s: cannot open %s", name, path);
    int op = (mode == LOCK_EXCLUSIVE ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB);
    if (flock_retry(fd, op) == 0)
        return fd;
    int busy = errno == EWOULDBLOCK;
    if (!busy)
        err_errno("lock %s: flock %s", name, path);
    close(fd);
    return busy ? -2 : -1;
}

void lock_drop(int fd) {
    /* Closing the only descriptor of the open file releases its flock. */
    if (fd >= 0)
        close(fd);
}

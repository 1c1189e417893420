/* test_store_lock: flock locks between processes: exclusive vs shared, non-blocking -2, waiting, release on
 * SIGKILL, and refused names. */
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "store/lock.h"
#include "store/store.h"
#include "util/err.h"

static char base[] = "/tmp/pulse-test-lock-XXXXXX";
static char root[512];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* A child that takes a lock, reports the result on a pipe, then holds it until killed or for hold_ms. */
static pid_t holder(const char *name, enum lock_mode mode, int hold_ms, int *result) {
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        struct store *s;
        int fd = store_open(root, 0, &s) < 0 ? -1 : lock_take(s, name, mode, 0);
        if (write(p[1], &fd, sizeof fd) != sizeof fd)
            _exit(2);
        if (hold_ms < 0)
            for (;;)
                pause();
        usleep((useconds_t)hold_ms * 1000);
        _exit(0);
    }
    close(p[1]);
    *result = -9;
    if (pid < 0 || read(p[0], result, sizeof *result) != sizeof *result)
        *result = -9;
    close(p[0]);
    return pid;
}

static void reap(pid_t pid, int kill_it) {
    int status;
    if (pid <= 0)
        return;
    if (kill_it)
        kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

static void test_exclusive(struct store *s) {
    int got;
    pid_t pid = holder("stage-x", LOCK_EXCLUSIVE, -1, &got);
    CHECK(pid > 0 && got >= 0);
    CHECK(lock_take(s, "stage-x", LOCK_EXCLUSIVE, 0) == -2);
    CHECK(lock_take(s, "stage-x", LOCK_SHARED, 0) == -2);
    int other = lock_take(s, "stage-y", LOCK_EXCLUSIVE, 0); /* other names are independent */
    CHECK(other >= 0);
    lock_drop(other);
    reap(pid, 1);
    int fd = lock_take(s, "stage-x", LOCK_EXCLUSIVE, 0); /* the kernel dropped the dead child's lock */
    CHECK(fd >= 0);
    lock_drop(fd);
}

static void test_shared(struct store *s) {
    int mine = lock_take(s, "store", LOCK_SHARED, 0);
    CHECK(mine >= 0);
    int also = lock_take(s, "store", LOCK_SHARED, 0);
    CHECK(also >= 0);
    int got;
    pid_t pid = holder("store", LOCK_SHARED, 0, &got);
    CHECK(pid > 0 && got >= 0);
    reap(pid, 0);
    pid = holder("store", LOCK_EXCLUSIVE, 0, &got);
    CHECK(got == -2);
    reap(pid, 0);
    lock_drop(mine);
    lock_drop(also);
    pid = holder("store", LOCK_EXCLUSIVE, 0, &got);
    CHECK(got >= 0);
    reap(pid, 0);
}

static void test_wait(struct store *s) {
    int got;
    struct timespec t0, t1;
    pid_t pid = holder("audit", LOCK_EXCLUSIVE, 300, &got);
    CHECK(got >= 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int fd = lock_take(s, "audit", LOCK_EXCLUSIVE, 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(fd >= 0);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(waited > 0.1);
    lock_drop(fd);
    reap(pid, 0);
}

static void test_names(struct store *s) {
    const char *bad[] = {"", "a/b", "..", "x..y", "/etc/passwd"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(lock_take(s, bad[i], LOCK_EXCLUSIVE, 0) == -1);
        CHECK_HAS(err_msg(), "invalid lock name");
    }
    CHECK(lock_take(s, NULL, LOCK_SHARED, 0) == -1);
    int fd = lock_take(s, "named", LOCK_SHARED, 0);
    CHECK(fd >= 0);
    lock_drop(fd);
    char path[700];
    struct stat st;
    snprintf(path, sizeof path, "%s/locks/named.lock", root);
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));
    lock_drop(-1); /* harmless */
}

int main(void) {
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(root, sizeof root, "%s/store", base);
    struct store *s;
    CHECK(store_open(root, 1, &s) == 0);
    if (s) {
        test_exclusive(s);
        test_shared(s);
        test_wait(s);
        test_names(s);
        store_close(s);
    }
    nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_done("test_store_lock");
}

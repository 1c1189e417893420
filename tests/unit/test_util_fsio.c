/* test_util_fsio: atomic writes, mkdir -p and bounded reads of regular files only; with the fault seam
 * compiled in, injected ENOSPC/EIO at every step leave the destination and tmp/ clean, crash points kill the
 * process where asked, the point log records each durability point, and mkdir -p makes an existing
 * directory's entry durable once per process. */
#include "check.h"
#include "util/err.h"
#include "util/fsio.h"

#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char root[64], tmpdir[128], dest[128];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Whole content of path, or "(missing)"; static storage, good until the next call. */
static const char *slurp(const char *path) {
    static char out[2048];
    char *data = NULL;
    size_t n = 0;
    if (fsio_read_file(path, sizeof out - 1, &data, &n) < 0)
        return "(missing)";
    memcpy(out, data, n + 1);
    free(data);
    return out;
}

static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static int put(const char *text) {
    return fsio_write_atomic(tmpdir, dest, text, strlen(text));
}

static void test_basics(void) {
    char deep[256];
    snprintf(deep, sizeof deep, "%s/a//b/c/", root);
    CHECK(fsio_mkdir_p(deep) == 0);
    CHECK(fsio_mkdir_p(deep) == 0); /* idempotent */
    snprintf(deep, sizeof deep, "%s/a/b/c", root);
    struct stat st;
    CHECK(stat(deep, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(fsio_mkdir_p(tmpdir) == 0);

    CHECK(put("first") == 0);
    CHECK_STR(slurp(dest), "first");
    CHECK(put("second, longer") == 0);
    CHECK_STR(slurp(dest), "second, longer");
    CHECK(fsio_write_atomic(tmpdir, dest, "", 0) == 0);
    CHECK_STR(slurp(dest), "");
    CHECK(put("old") == 0);
    CHECK(dir_entries(tmpdir) == 0);

    char file_as_dir[256];
    snprintf(file_as_dir, sizeof file_as_dir, "%s/x/y", dest);
    CHECK(fsio_mkdir_p(file_as_dir) == -1);
    CHECK_HAS(err_msg(), dest);

    char *data = NULL;
    size_t n = 0;
    CHECK(fsio_read_file(dest, 2, &data, &n) == -1);
    CHECK_HAS(err_msg(), "larger than the limit of 2 bytes");
    CHECK_HAS(err_msg(), dest);
    CHECK(fsio_read_file(dest, 3, &data, &n) == 0 && n == 3 && strcmp(data, "old") == 0);
    free(data);
    CHECK(fsio_read_file(root, 100, &data, &n) == -1);
    CHECK_HAS(err_msg(), root);
    CHECK_HAS(err_msg(), "not a regular file");
    snprintf(deep, sizeof deep, "%s/missing", root);
    CHECK(fsio_read_file(deep, 100, &data, &n) == -1);
    CHECK_HAS(err_msg(), "missing: No such file or directory");
    CHECK(fsio_write_atomic(deep, dest, "x", 1) == -1); /* no tmp dir: nothing happens */
    CHECK_STR(slurp(dest), "old");
}

/* A FIFO with no writer would block a plain open and read forever: refused at once. */
static void test_not_regular(void) {
    char fifo[256], want[300], *data = NULL;
    size_t n = 0;
    snprintf(fifo, sizeof fifo, "%s/fifo", root);
    CHECK(mkfifo(fifo, 0644) == 0);
    CHECK(fsio_read_file(fifo, 100, &data, &n) == -1 && !data);
    snprintf(want, sizeof want, "%s: not a regular file", fifo);
    CHECK_STR(err_msg(), want);
    CHECK(fsio_read_file("/dev/null", 100, &data, &n) == -1);
    CHECK_STR(err_msg(), "/dev/null: not a regular file");
    unlink(fifo);
}

static void test_tmp_names(void) {
    char a[256], b[256], prefix[160];
    int fa = fsio_create_tmp(tmpdir, a, sizeof a), fb = fsio_create_tmp(tmpdir, b, sizeof b);
    snprintf(prefix, sizeof prefix, "%s/tmp-%ld-", tmpdir, (long)getpid());
    CHECK(fa >= 0 && fb >= 0 && strcmp(a, b) != 0);
    CHECK(strncmp(a, prefix, strlen(prefix)) == 0);
    CHECK(strlen(strrchr(a, '-') + 1) == 8);
    CHECK(fsio_write_all(fa, "abc", 3, a) == 0 && fsio_close(fa, a) == 0 && fsio_close(fb, b) == 0);
    CHECK_STR(slurp(a), "abc");
    CHECK(fsio_unlink(a) == 0 && fsio_unlink(b) == 0);
    CHECK(fsio_unlink(a) == -1);
    CHECK_HAS(err_msg(), a);
    char tiny[16];
    CHECK(fsio_create_tmp(tmpdir, tiny, sizeof tiny) == -1);
    CHECK(dir_entries(tmpdir) == 0);
}

/* One injected fault during an atomic write: fails with the reason, old content and an empty tmp/ remain. */
static void expect_fault(const char *spec, const char *reason, const char *names) {
    CHECK(put("old") == 0);
    fsio_fault_set(spec, 0);
    err_clear();
    CHECK(put("new") == -1);
    if (!strstr(err_msg(), reason))
        fprintf(stderr, "  fault %s\n", spec);
    CHECK_HAS(err_msg(), reason);
    CHECK_HAS(err_msg(), names);
    CHECK_STR(slurp(dest), "old");
    CHECK(dir_entries(tmpdir) == 0);
    CHECK(put("again") == 0); /* only the n-th call fails */
    CHECK_STR(slurp(dest), "again");
    fsio_fault_set(NULL, 0);
}

static void test_faults(void) {
    expect_fault("write:1:ENOSPC", "No space left on device", "write ");
    expect_fault("write:1:EIO", "Input/output error", tmpdir);
    expect_fault("fsync:1:ENOSPC", "No space left on device", "fsync ");
    expect_fault("fsync:1:EIO", "Input/output error", tmpdir);
    expect_fault("rename:1:ENOSPC", "No space left on device", dest);
    expect_fault("rename:1:EIO", "Input/output error", "rename ");
    expect_fault("open:1:ENOSPC", "No space left on device", tmpdir);
    expect_fault("any:1:EDQUOT", "quota", "open ");
    expect_fault("any:2:EIO", "Input/output error", "write ");
    expect_fault("any:3:EIO", "Input/output error", "fsync ");
    expect_fault("any:4:ENOSPC", "No space left on device", "rename ");

    /* the 5th op is the directory fsync after the rename: the new content is in place, but it reports */
    CHECK(put("old") == 0);
    fsio_fault_set("any:5:EIO", 0);
    CHECK(put("new") == -1);
    CHECK_HAS(err_msg(), "fsync ");
    CHECK(dir_entries(tmpdir) == 0);
    fsio_fault_set(NULL, 0);

    /* counting is per op: the second write fails, not the first */
    fsio_fault_set("write:2:ENOSPC", 0);
    CHECK(put("one") == 0);
    CHECK(put("two") == -1);
    CHECK_STR(slurp(dest), "one");
    fsio_fault_set(NULL, 0);

    char d[256];
    snprintf(d, sizeof d, "%s/m1/m2/m3", root);
    fsio_fault_set("mkdir:2:EROFS", 0);
    CHECK(fsio_mkdir_p(d) == -1);
    CHECK_HAS(err_msg(), "m1/m2: Read-only file system");
    fsio_fault_set(NULL, 0);
    CHECK(fsio_mkdir_p(d) == 0);
}

/* A directory that exists (made by someone who may have died before fsyncing its parent): the first mkdir -p
 * of it in this process fsyncs the parent, later ones do not. An injected fsync failure shows which do. */
static void test_mkdir_durable(void) {
    char d[256];
    snprintf(d, sizeof d, "%s/made-by-another", root);
    CHECK(mkdir(d, 0755) == 0);
    fsio_fault_set("fsync:1:EIO", 0);
    CHECK(fsio_mkdir_p(d) == -1);
    CHECK_HAS(err_msg(), "Input/output error");
    CHECK_HAS(err_msg(), root);
    fsio_fault_set("fsync:1:EIO", 0);
    CHECK(fsio_mkdir_p(d) == -1); /* a failed fsync is not remembered as done */
    fsio_fault_set(NULL, 0);
    CHECK(fsio_mkdir_p(d) == 0);
    fsio_fault_set("fsync:1:EIO", 0);
    CHECK(fsio_mkdir_p(d) == 0); /* once per process */
    /* one it creates itself is durable already */
    snprintf(d, sizeof d, "%s/made-here", root);
    fsio_fault_set(NULL, 0);
    CHECK(fsio_mkdir_p(d) == 0);
    fsio_fault_set("fsync:1:EIO", 0);
    CHECK(fsio_mkdir_p(d) == 0);
    fsio_fault_set(NULL, 0);
}

struct writer_arg {
    int id, failed;
};

static void *writer(void *p) {
    struct writer_arg *a = p;
    char path[160];
    snprintf(path, sizeof path, "%s/thread%d", root, a->id);
    for (int i = 0; i < 25; i++)
        a->failed += fsio_write_atomic(tmpdir, path, "t", 1) < 0;
    return NULL;
}

/* Counters are process-wide: among 100 writes from 4 threads exactly one is the 50th. */
static void test_threads(void) {
    pthread_t t[4];
    struct writer_arg a[4];
    fsio_fault_set("write:50:ENOSPC", 0);
    for (int i = 0; i < 4; i++) {
        a[i] = (struct writer_arg){i, 0};
        pthread_create(&t[i], NULL, writer, &a[i]);
    }
    int failed = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        failed += a[i].failed;
    }
    fsio_fault_set(NULL, 0);
    CHECK(failed == 1);
    CHECK(dir_entries(tmpdir) == 0);
}

/* Runs an atomic write in a child that crashes at point n; returns how the child ended. */
static int crash_child(long n) {
    pid_t pid = fork();
    if (pid == 0) {
        fsio_fault_set(NULL, n);
        put("crashed");
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

static void test_crash(void) {
    CHECK(put("old") == 0);
    int status = crash_child(2); /* 1: fsync of the tmp, 2: the rename */
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK_STR(slurp(dest), "crashed");
    CHECK(dir_entries(tmpdir) == 0);

    CHECK(put("old") == 0);
    status = crash_child(1); /* before the rename: the old content stays, a tmp file is left over */
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK_STR(slurp(dest), "old");
    CHECK(dir_entries(tmpdir) == 1);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* what a store's tmp/ sweep would do */
    CHECK(fsio_mkdir_p(tmpdir) == 0);

    status = crash_child(4); /* an atomic write has only 3 points */
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_STR(slurp(dest), "crashed");
}

static void test_log(void) {
    char log[160], want[512];
    snprintf(log, sizeof log, "%s/points.log", root);
    setenv("PULSE_FAULT_LOG", log, 1);
    fsio_fault_set(NULL, 0);
    CHECK(put("logged") == 0);
    fsio_point("audit commit");
    int status = crash_child(2);
    CHECK(WIFSIGNALED(status));
    unsetenv("PULSE_FAULT_LOG");
    fsio_fault_set(NULL, 0);
    CHECK(put("quiet") == 0);

    const char *text = slurp(log);
    CHECK_HAS(text, "point 1 fsync ");
    snprintf(want, sizeof want,
             "point 2 rename %s\npoint 3 fsync_dir %s\npoint 4 audit commit\npoint 1 fsync ", dest, root);
    CHECK_HAS(text, want);
    snprintf(want, sizeof want, "point 2 rename %s\n", dest);
    size_t tl = strlen(text), wl = strlen(want);
    CHECK(tl >= wl && strcmp(text + tl - wl, want) == 0); /* the child's last line, then nothing */
    int lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    CHECK(lines == 6);
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/pulse-fsio-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "%s/tmp", root);
    snprintf(dest, sizeof dest, "%s/dest", root);
    test_basics();
    test_not_regular();
    test_tmp_names();
    if (fsio_fault_enabled()) {
        test_faults();
        test_mkdir_durable();
        test_crash();
        test_log();
        test_threads(); /* last: forked children would report the thread stacks glibc caches */
    } else {
        printf("test_util_fsio: built without PULSE_FAULT_INJECTION, skipping the fault tests\n");
    }
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_done("test_util_fsio");
}

/* audit: the store's hash-chained history of published records, kept in the bare git repository audit.git
 * (libgit2). See audit.h for the layout of the branch. */
#include "store/audit.h"

#include <dirent.h>
#include <errno.h>
#include <git2.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/lock.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/sha256.h"

#define AUDIT_REF "refs/heads/main"
#define KEY_PREFIX "sha256:"

static pthread_once_t git_once = PTHREAD_ONCE_INIT;
static int git_init_failed;

/* libgit2's last message on one line (its messages occasionally carry a newline). */
static const char *git_msg(char *msg, size_t cap) {
    const git_error *e = git_error_last();
    snprintf(msg, cap, "%s", e && e->message ? e->message : "unknown libgit2 error");
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return msg;
}

static int git_fail(void) {
    char msg[512];
    return err_set("audit log: %s", git_msg(msg, sizeof msg));
}

/* The user's and the system's git configuration must not change how a store is written (templates, hooks,
 * fsync settings), so libgit2 is pointed at no configuration files at all. */
static void git_init_once(void) {
    static const int levels[] = {GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG, GIT_CONFIG_LEVEL_GLOBAL,
                                 GIT_CONFIG_LEVEL_PROGRAMDATA};
    if (git_libgit2_init() < 0) {
        git_init_failed = 1;
        return;
    }
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, levels[i], "") < 0)
            git_init_failed = 1;
    if (git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1) < 0 ||
        git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, 1) < 0)
        git_init_failed = 1;
}

static void audit_close(struct store *s) {
    git_repository_free(s->audit_repo);
    s->audit_repo = NULL;
}

/* Accepts a key as "sha256:<64 hex>" (what records carry) or as the bare 64 hex digits. */
static int key_hex(const char *key, char hex[65]) {
    const char *h = strncmp(key, KEY_PREFIX, strlen(KEY_PREFIX)) == 0 ? key + strlen(KEY_PREFIX) : key;
    if (strlen(h) != 64 || !hash_hex_valid(h, 64))
        return err_set("audit log: invalid key '%.80s'", key);
    memcpy(hex, h, 65);
    return 0;
}

/* Opens audit.git, creating it when create != 0 (callers hold the "audit" lock then). Returns 1 with *out, 0
 * when there is no log yet and create == 0, -1 on error. A repository whose HEAD is missing is taken as not
 * created yet: libgit2 writes HEAD last when it initialises one. */
static int repo_open(struct store *s, int create, git_repository **out) {
    char dir[PATH_MAX], head[PATH_MAX];
    git_repository *repo = NULL;
    if ((*out = s->audit_repo))
        return 1;
    pthread_once(&git_once, git_init_once);
    if (git_init_failed)
        return err_set("audit log: cannot initialise libgit2");
    if (store_path(s, dir, sizeof dir, "audit.git") < 0 ||
        store_path(s, head, sizeof head, "audit.git/HEAD") < 0)
        return -1;
    if (access(head, F_OK) == 0) {
        if (git_repository_open_bare(&repo, dir) < 0)
            return git_fail();
    } else if (errno != ENOENT) {
        return err_errno("audit log: %s", head);
    } else if (!create) {
        return 0;
    } else {
        git_repository_init_options o;
        git_repository_init_options_init(&o, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
        o.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
        o.initial_head = "main";
        if (git_repository_init_ext(&repo, dir, &o) < 0)
            return git_fail();
        if (fsio_fsync_dir(s->root) < 0) {
            git_repository_free(repo);
            return -1;
        }
    }
    s->audit_repo = repo;
    s->close_hook = audit_close;
    *out = repo;
    return 1;
}

/* The commit refs/heads/main points at; *out = NULL when nothing has been committed yet. */
static int head_commit(git_repository *repo, git_commit **out) {
    git_oid oid;
    *out = NULL;
    int rc = git_reference_name_to_id(&oid, repo, AUDIT_REF);
    if (rc == GIT_ENOTFOUND)
        return 0;
    if (rc < 0 || git_commit_lookup(out, repo, &oid) < 0)
        return git_fail();
    return 0;
}

/* The records/ tree under root; *out = NULL when root has none. */
static int records_subtree(git_repository *repo, const git_tree *root, git_tree **out) {
    const git_tree_entry *e = git_tree_entry_byname(root, "records");
    *out = NULL;
    if (!e)
        return 0;
    if (git_tree_entry_type(e) != GIT_OBJECT_TREE)
        return err_set("audit log: records is not a tree");
    return git_tree_lookup(out, repo, git_tree_entry_id(e)) < 0 ? git_fail() : 0;
}

/* The head's records/ tree; *out = NULL when the log is empty. */
static int head_records(struct store *s, git_tree **out) {
    git_repository *repo;
    git_commit *c = NULL;
    git_tree *root = NULL;
    *out = NULL;
    int rc = repo_open(s, 0, &repo);
    if (rc <= 0)
        return rc;
    if (head_commit(repo, &c) < 0)
        return -1;
    if (!c)
        return 0;
    rc = git_commit_tree(&root, c) < 0 ? git_fail() : records_subtree(repo, root, out);
    git_tree_free(root);
    git_commit_free(c);
    return rc;
}

/* Removes *.lock files in dir (and below it when deep): a SIGKILLed commit leaves them behind, and while we
 * hold the "audit" flock nobody else can be committing, so every one of them is stale. */
static int clear_locks(const char *dir, int deep) {
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : err_errno("audit log: %s", dir);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        char path[PATH_MAX];
        struct stat st;
        size_t len = strlen(e->d_name);
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path)
            rc = err_set("audit log: path too long in %s", dir);
        else if (lstat(path, &st) < 0)
            rc = errno == ENOENT ? 0 : err_errno("audit log: %s", path);
        else if (S_ISREG(st.st_mode) && len > 5 && !strcmp(e->d_name + len - 5, ".lock"))
            rc = fsio_unlink(path);
        else if (S_ISDIR(st.st_mode) && deep)
            rc = clear_locks(path, 1);
    }
    closedir(d);
    return rc;
}

static int clear_stale_locks(struct store *s) {
    char top[PATH_MAX], refs[PATH_MAX];
    if (store_path(s, top, sizeof top, "audit.git") < 0 ||
        store_path(s, refs, sizeof refs, "audit.git/refs") < 0)
        return -1;
    return clear_locks(top, 0) < 0 || clear_locks(refs, 1) < 0 ? -1 : 0;
}

/* Writes the tree of parent (or an empty one) with its records/ tree changed by edit. */
static int edit_tree(git_repository *repo, git_commit *parent, int (*edit)(git_treebuilder *, void *),
                     void *arg, git_oid *out) {
    git_tree *root = NULL, *recs = NULL;
    git_treebuilder *rb = NULL, *tb = NULL;
    git_oid recs_id;
    int rc = parent && git_commit_tree(&root, parent) < 0 ? git_fail() : 0;
    if (rc == 0 && root)
        rc = records_subtree(repo, root, &recs);
    if (rc == 0 && git_treebuilder_new(&rb, repo, recs) < 0)
        rc = git_fail();
    if (rc == 0)
        rc = edit(rb, arg);
    if (rc == 0 && (git_treebuilder_write(&recs_id, rb) < 0 || git_treebuilder_new(&tb, repo, root) < 0 ||
                    git_treebuilder_insert(NULL, tb, "records", &recs_id, GIT_FILEMODE_TREE) < 0 ||
                    git_treebuilder_write(out, tb) < 0))
        rc = git_fail();
    git_treebuilder_free(tb);
    git_treebuilder_free(rb);
    git_tree_free(recs);
    git_tree_free(root);
    return rc;
}

/* One commit of tree on refs/heads/main after parent (NULL: the first). */
static int commit_tree(git_repository *repo, git_commit *parent, const git_oid *tree_id,
                       const char *message) {
    git_tree *tree = NULL;
    git_signature *sig = NULL;
    git_oid commit_id;
    struct buf msg = {0};
    buf_puts(&msg, message);
    if (!msg.len || msg.data[msg.len - 1] != '\n')
        buf_putc(&msg, '\n');
    const git_commit *parents[1] = {parent};
    int rc = git_tree_lookup(&tree, repo, tree_id) < 0 ||
                     git_signature_new(&sig, "pulse-pipe", "pulse-pipe@localhost", (git_time_t)time(NULL),
                                       0) < 0 ||
                     git_commit_create(&commit_id, repo, AUDIT_REF, sig, sig, NULL, msg.data, tree,
                                       parent ? 1 : 0, parents) < 0
                 ? git_fail()
                 : 0;
    buf_free(&msg);
    git_signature_free(sig);
    git_tree_free(tree);
    return rc;
}

struct blob_entry {
    const char *hex;
    const void *data;
    size_t n;
    git_repository *repo;
};

static int insert_record(git_treebuilder *rb, void *arg) {
    const struct blob_entry *b = arg;
    git_oid blob;
    char name[80];
    snprintf(name, sizeof name, "%s.json", b->hex);
    return git_blob_create_from_buffer(&blob, b->repo, b->data, b->n) < 0 ||
                   git_treebuilder_insert(NULL, rb, name, &blob, GIT_FILEMODE_BLOB) < 0
               ? git_fail()
               : 0;
}

/* One commit on refs/heads/main. A key that is already logged with the same bytes still gets a commit: a
 * re-publication (e.g. a forced re-run) is part of the history. */
static int commit_record(git_repository *repo, const char *hex, const void *data, size_t n,
                         const char *message) {
    git_commit *parent = NULL;
    git_oid tree_id;
    struct blob_entry b = {hex, data, n, repo};
    if (head_commit(repo, &parent) < 0)
        return -1;
    int rc = edit_tree(repo, parent, insert_record, &b, &tree_id);
    if (rc == 0)
        rc = commit_tree(repo, parent, &tree_id, message);
    git_commit_free(parent);
    return rc;
}

struct drop_list {
    char *const *keys;
    size_t n;
};

/* Removes each key's entry; one that is not there is skipped. */
static int remove_records(git_treebuilder *rb, void *arg) {
    const struct drop_list *d = arg;
    for (size_t i = 0; i < d->n; i++) {
        char hex[65], name[80];
        if (key_hex(d->keys[i], hex) < 0)
            return -1;
        snprintf(name, sizeof name, "%s.json", hex);
        if (git_treebuilder_get(rb, name) && git_treebuilder_remove(rb, name) < 0)
            return git_fail();
    }
    return 0;
}

int audit_lock(struct store *s) {
    int fd = lock_take(s, "audit", LOCK_EXCLUSIVE, 1);
    if (fd < 0)
        return fd == -2 ? err_set("audit log: lock busy") : -1;
    if (clear_stale_locks(s) < 0) {
        lock_drop(fd);
        return -1;
    }
    return fd;
}

int audit_commit_locked(struct store *s, const char *key, const void *record, size_t n, const char *message) {
    char hex[65];
    git_repository *repo;
    if (key_hex(key, hex) < 0 || repo_open(s, 1, &repo) < 0 ||
        commit_record(repo, hex, record, n, message) < 0)
        return -1;
    fsio_point("audit commit");
    return 0;
}

int audit_drop_locked(struct store *s, char *const *keys, size_t n, const char *message) {
    git_repository *repo;
    git_commit *parent = NULL;
    git_oid tree_id;
    struct drop_list d = {keys, n};
    if (repo_open(s, 1, &repo) < 0 || head_commit(repo, &parent) < 0)
        return -1;
    int rc = edit_tree(repo, parent, remove_records, &d, &tree_id);
    if (rc == 0)
        rc = commit_tree(repo, parent, &tree_id, message);
    git_commit_free(parent);
    if (rc == 0)
        fsio_point("audit drop");
    return rc;
}

int audit_commit(struct store *s, const char *key, const void *record, size_t n, const char *message) {
    char hex[65];
    if (key_hex(key, hex) < 0) /* before taking the lock: a bad key is the caller's error, not the store's */
        return -1;
    int fd = audit_lock(s);
    if (fd < 0)
        return -1;
    int rc = audit_commit_locked(s, key, record, n, message);
    lock_drop(fd);
    return rc;
}

int audit_check(struct store *s, const char *key, const void *record, size_t n) {
    char hex[65], name[80];
    git_tree *recs;
    if (key_hex(key, hex) < 0 || head_records(s, &recs) < 0)
        return -1;
    if (!recs)
        return 0;
    snprintf(name, sizeof name, "%s.json", hex);
    const git_tree_entry *e = git_tree_entry_byname(recs, name);
    int rc = 0;
    if (e) {
        /* Hashing the candidate bytes as a blob answers without reading the logged blob. */
        git_oid want;
        if (git_odb_hash(&want, record, n, GIT_OBJECT_BLOB) < 0)
            rc = git_fail();
        else
            rc = git_tree_entry_type(e) == GIT_OBJECT_BLOB && git_oid_equal(&want, git_tree_entry_id(e)) ? 1
                                                                                                         : 2;
    }
    git_tree_free(recs);
    return rc;
}

/* The key an entry of records/ logs, or 0 when its name is not "<64 hex>.json". */
static int entry_key(const git_tree_entry *e, char key[HASH_ID_SIZE]) {
    const char *name = git_tree_entry_name(e);
    if (strlen(name) != 69 || !hash_hex_valid(name, 64) || strcmp(name + 64, ".json") != 0 ||
        git_tree_entry_type(e) != GIT_OBJECT_BLOB)
        return 0;
    snprintf(key, HASH_ID_SIZE, KEY_PREFIX "%.64s", name);
    return 1;
}

int audit_foreach(struct store *s, int (*cb)(void *arg, const char *key, const void *record, size_t n),
                  void *arg) {
    git_tree *recs;
    if (head_records(s, &recs) < 0)
        return -1;
    int rc = 0;
    size_t count = recs ? git_tree_entrycount(recs) : 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const git_tree_entry *e = git_tree_entry_byindex(recs, i);
        char key[HASH_ID_SIZE];
        git_blob *blob;
        if (!entry_key(e, key))
            continue; /* audit_verify reports it */
        if (git_blob_lookup(&blob, git_tree_owner(recs), git_tree_entry_id(e)) < 0) {
            char msg[512];
            rc = err_set("audit log: records/%s: %s", git_tree_entry_name(e), git_msg(msg, sizeof msg));
            break;
        }
        rc = cb(arg, key, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob));
        git_blob_free(blob);
    }
    git_tree_free(recs);
    return rc;
}

/* Walks the history from refs/heads/main (newest first, or oldest first) calling cb per commit. */
static int walk_history(struct store *s, int oldest_first, int (*cb)(void *arg, const git_commit *c),
                        void *arg) {
    git_repository *repo;
    git_revwalk *walk = NULL;
    git_oid oid;
    int rc = repo_open(s, 0, &repo);
    if (rc <= 0)
        return rc;
    rc = git_reference_name_to_id(&oid, repo, AUDIT_REF);
    if (rc == GIT_ENOTFOUND)
        return 0;
    if (rc < 0 || git_revwalk_new(&walk, repo) < 0 ||
        git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | (oldest_first ? GIT_SORT_REVERSE : 0)) < 0 ||
        git_revwalk_push(walk, &oid) < 0) {
        git_revwalk_free(walk);
        return git_fail();
    }
    rc = 0;
    while (rc == 0) {
        git_commit *c;
        int next = git_revwalk_next(&oid, walk);
        if (next == GIT_ITEROVER)
            break;
        if (next < 0 || git_commit_lookup(&c, repo, &oid) < 0) {
            rc = git_fail();
            break;
        }
        rc = cb(arg, c);
        git_commit_free(c);
    }
    git_revwalk_free(walk);
    return rc;
}

static const char *summary(const git_commit *c) {
    const char *m = git_commit_summary((git_commit *)c);
    return m ? m : "";
}

static int print_one(void *arg, const git_commit *c) {
    char hex[GIT_OID_HEXSZ + 1], when[32];
    time_t t = (time_t)git_commit_time(c);
    struct tm tm;
    git_oid_tostr(hex, sizeof hex, git_commit_id(c));
    /* A commit time comes from the repository's bytes: one too large for a struct tm has no calendar date. */
    if (!gmtime_r(&t, &tm) || !strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(when, sizeof when, "@%lld", (long long)t);
    fprintf(arg, "%.12s %s %s\n", hex, when, summary(c));
    return 0;
}

int audit_print_log(struct store *s, FILE *out) {
    return walk_history(s, 0, print_one, out);
}

static int history_one(void *arg, const git_commit *c) {
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, git_commit_id(c));
    buf_printf(arg, "%s %lld %s\n", hex, (long long)git_commit_time(c), summary(c));
    return 0;
}

int audit_history(struct store *s, char **text, size_t *n) {
    struct buf b = {0};
    *text = NULL;
    *n = 0;
    if (walk_history(s, 1, history_one, &b) < 0) {
        buf_free(&b);
        return -1;
    }
    *n = b.len;
    *text = buf_take(&b);
    return 0;
}

/* A set of object ids, so that verify reads each tree and blob once however many commits share it. */
struct oidset {
    git_oid *v;
    size_t cap, n;
};

static size_t oid_slot(const git_oid *o, size_t cap) {
    uint64_t h;
    memcpy(&h, o->id, sizeof h);
    return (size_t)h & (cap - 1);
}

/* 1 if o was new (and is now in the set), 0 if it was there already. */
static int oidset_add(struct oidset *set, const git_oid *o) {
    static const git_oid zero;
    if (2 * (set->n + 1) > set->cap) {
        struct oidset big = {.cap = set->cap ? 2 * set->cap : 1024};
        big.v = xcalloc(big.cap, sizeof(git_oid));
        for (size_t i = 0; i < set->cap; i++)
            if (!git_oid_equal(&set->v[i], &zero))
                oidset_add(&big, &set->v[i]);
        free(set->v);
        *set = big;
    }
    size_t i = oid_slot(o, set->cap);
    for (; !git_oid_equal(&set->v[i], &zero); i = (i + 1) & (set->cap - 1))
        if (git_oid_equal(&set->v[i], o))
            return 0;
    set->v[i] = *o;
    set->n++;
    return 1;
}

struct verify_ctx {
    git_repository *repo;
    FILE *out;
    int *bad;
    struct oidset seen;
    char commit[13];
    int head; /* checking the head commit: also report entries that are not records */
};

static int problem(struct verify_ctx *v, const char *path, const char *what) {
    fprintf(v->out, "audit log: commit %s: %s%s%s\n", v->commit, path, *path ? ": " : "", what);
    (*v->bad)++;
    return 0;
}

static int git_problem(struct verify_ctx *v, const char *path) {
    char msg[512];
    return problem(v, path, git_msg(msg, sizeof msg));
}

/* Reads each tree entry once; reading is what makes libgit2 re-hash the object (strict verification). */
static int verify_entry(const char *root, const git_tree_entry *e, void *arg) {
    struct verify_ctx *v = arg;
    char key[HASH_ID_SIZE];
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s", root, git_tree_entry_name(e));
    if (v->head && !strcmp(root, "records/") && !entry_key(e, key))
        problem(v, path, "not a record (want records/<64 hex>.json)");
    if (!oidset_add(&v->seen, git_tree_entry_id(e)))
        return git_tree_entry_type(e) == GIT_OBJECT_TREE ? 1 : 0;
    if (git_tree_entry_type(e) == GIT_OBJECT_BLOB) {
        git_blob *b;
        if (git_blob_lookup(&b, v->repo, git_tree_entry_id(e)) < 0) {
            return git_problem(v, path);
        }
        git_blob_free(b);
    }
    return 0;
}

static int verify_commit(void *arg, const git_commit *c) {
    struct verify_ctx *v = arg;
    git_tree *tree;
    git_oid_tostr(v->commit, sizeof v->commit, git_commit_id(c));
    if (git_commit_tree(&tree, c) < 0) {
        git_problem(v, "");
    } else {
        if (oidset_add(&v->seen, git_tree_id(tree)) &&
            git_tree_walk(tree, GIT_TREEWALK_PRE, verify_entry, v) < 0) {
            git_problem(v, "");
        }
        git_tree_free(tree);
    }
    v->head = 0;
    return 0;
}

int audit_verify(struct store *s, FILE *out, int *bad) {
    struct verify_ctx v = {.out = out, .bad = bad, .head = 1};
    *bad = 0;
    int rc = repo_open(s, 0, &v.repo);
    if (rc <= 0)
        return rc;
    strcpy(v.commit, "?");
    if (walk_history(s, 0, verify_commit, &v) < 0) {
        /* A commit that cannot be read stops the walk: that is damage to report, not a failure of verify. */
        fprintf(out, "%s\n", err_msg());
        (*bad)++;
    }
    free(v.seen.v);
    return 0;
}

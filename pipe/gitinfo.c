/* gitinfo: which commit of which repository a manifest came from, and whether its work tree was dirty, so a
 * record can say exactly what code declared it. */
#include <git2.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "pipe/pipe.h"
#include "util/buf.h"

static int dirty(git_repository *repo) {
    git_status_options so;
    git_status_options_init(&so, GIT_STATUS_OPTIONS_VERSION);
    so.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
    so.flags = GIT_STATUS_OPT_EXCLUDE_SUBMODULES; /* untracked files do not make a checkout dirty */
    git_status_list *list;
    if (git_status_list_new(&list, repo, &so) != 0)
        return 1;
    int d = git_status_list_entrycount(list) > 0;
    git_status_list_free(list);
    return d;
}

struct json *gitinfo_for(const char *path) {
    struct json *info = json_obj();
    json_set(info, "path", json_str(path));
    json_set(info, "commit", json_null());
    json_set(info, "dirty", json_bool(0));
    char *copy = xstrdup(path);
    git_libgit2_init();
    git_repository *repo = NULL;
    git_oid oid;
    if (git_repository_open_ext(&repo, dirname(copy), 0, NULL) == 0 && !git_repository_is_bare(repo) &&
        git_reference_name_to_id(&oid, repo, "HEAD") == 0) {
        char hex[GIT_OID_HEXSZ + 1];
        git_oid_tostr(hex, sizeof hex, &oid);
        json_set(info, "commit", json_str(hex));
        json_set(info, "dirty", json_bool(dirty(repo)));
    }
    git_repository_free(repo);
    git_libgit2_shutdown();
    free(copy);
    return info;
}

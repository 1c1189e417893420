/* show, cat, log, kinds: read-only views of a stage's record and outputs, the audit history and the kinds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe/pipe.h"
#include "stages/registry.h"
#include "store/audit.h"
#include "store/lock.h"
#include "store/object.h"
#include "store/record.h"
#include "util/err.h"

/* Records may come from another store (import): print "?" for what is missing rather than trust it. */
static const char *str(const struct json *o, const char *key) {
    const char *v = json_get_str(o, key);
    return v ? v : "?";
}

static void show_text(const struct json *r) {
    int64_t threads = 0;
    double wall = 0;
    json_get_int(r, "threads", &threads);
    json_get_num(r, "wall_s", &wall);
    printf("stage    %s\nkind     %s\nkey      %s\ncreated  %s (%.1fs on %s)\n", str(r, "name"),
           str(r, "kind"), str(r, "key"), str(r, "created"), wall, str(r, "device"));
    const char *sections[] = {"params", "inputs", "metrics"};
    for (int s = 0; s < 3; s++) {
        const struct json *o = json_get(r, sections[s]);
        printf("%s\n", sections[s]);
        for (size_t k = 0; o && o->type == JSON_OBJ && k < o->len; k++) {
            const struct json *v = o->items[k];
            char *t = v->type == JSON_NUM ? NULL : json_write(v, JSON_CANONICAL, NULL);
            if (v->type == JSON_NUM) /* for people: 9930, not the canonical 9.93e+03 */
                printf("  %-20s %.10g\n", o->keys[k], v->n);
            else
                printf("  %-20s %s\n", o->keys[k], t ? t : "?");
            free(t);
        }
    }
    const struct json *outs = json_get(r, "outputs");
    printf("outputs\n");
    for (size_t k = 0; outs && outs->type == JSON_OBJ && k < outs->len; k++) {
        int64_t size = 0;
        json_get_int(outs->items[k], "size", &size);
        printf("  %-20s %s  %lld bytes  %s\n", outs->keys[k], json_get_str(outs->items[k], "id"),
               (long long)size, json_get_str(outs->items[k], "type"));
    }
}

/* What show and cat take: --help (anywhere), exactly max positional arguments, --manifest M and, with
 * json_ok, --json. */
struct view {
    const char *pos[2];
    const char *manifest;
    int json;
};

/* Parses the arguments, then opens the store: NULL with *code the exit code (EXIT_OK after the usage, else
 * after one line on stderr). */
static struct store *view_open(const struct pipe_opts *o, int argc, char **argv, const char *cmd,
                               const char *usage, int max, int json_ok, struct view *v, int *code) {
    int n = 0, bad = 0;
    *code = EXIT_USAGE;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0)
            return *code = EXIT_OK, puts(usage), NULL;
    for (int i = 1; i < argc; i++) {
        const char *m = opt_value(argc, argv, &i, "--manifest", &bad);
        if (m)
            v->manifest = m;
        else if (json_ok && strcmp(argv[i], "--json") == 0)
            v->json = 1;
        else if (!bad && argv[i][0] != '-' && n < max)
            v->pos[n++] = argv[i];
        else if (bad)
            return NULL; /* opt_value said what is missing */
        else
            return fprintf(stderr, "pulse-pipe: %s: unexpected argument '%s'\n", cmd, argv[i]), NULL;
    }
    if (n < max)
        return fprintf(stderr, "pulse-pipe: %s: which %s? (pulse-pipe %s --help)\n", cmd,
                       n ? "output" : "stage", cmd),
               NULL;
    struct store *s = pipe_store(o, 0);
    *code = s ? EXIT_OK : EXIT_FAILED;
    return s;
}

static const char show_usage[] =
    "usage: pulse-pipe show NAME [--manifest MANIFEST] [--json]\n"
    "The record of stage NAME: parameters, inputs, outputs (object ids), metrics, timing. NAME's last\n"
    "record (published or reused by a run), or with --manifest the record of that manifest's stage NAME\n"
    "as its inputs resolve now. NAME may also be a cache key.";

int cmd_show(const struct pipe_opts *o, int argc, char **argv) {
    struct view v = {0};
    int code;
    struct store *s = view_open(o, argc, argv, "show", show_usage, 1, 1, &v, &code);
    if (!s)
        return code;
    struct json *r = NULL;
    code = pick_record(s, "show", v.pos[0], v.manifest, &r);
    if (code == EXIT_OK && v.json) {
        char *t = json_write(r, JSON_PRETTY, NULL);
        fputs(t, stdout);
        free(t);
    } else if (code == EXIT_OK) {
        show_text(r);
    }
    json_free(r);
    store_close(s);
    return code == EXIT_OK ? EXIT_OK : pipe_fail(code);
}

int cmd_log(const struct pipe_opts *o, int argc, char **argv) {
    if (argc > 1) {
        puts("usage: pulse-pipe log\nThe store's audit history, newest first: commit, time, stage, kind, "
             "key.");
        return strcmp(argv[1], "--help") == 0 ? EXIT_OK : EXIT_USAGE;
    }
    struct store *s = pipe_store(o, 0);
    if (!s)
        return EXIT_FAILED;
    int rc = audit_print_log(s, stdout);
    store_close(s);
    return rc == 0 ? EXIT_OK : pipe_fail(EXIT_FAILED);
}

static void print_kind(const struct stage_kind *k) {
    const struct kind_schema *s = &k->schema;
    printf("%s (version %d): %s\n  outputs:", s->name, s->version, k->summary);
    for (size_t i = 0; i < s->noutputs; i++)
        printf(" %s", s->outputs[i]);
    printf("\n");
    for (size_t i = 0; i < s->nparams; i++) {
        const struct param_spec *p = &s->params[i];
        printf("  %-14s %-22s %s%s%s\n", p->name, param_type_name(p->type), p->doc,
               p->def ? "; default " : "", p->def ? p->def : "");
    }
}

int cmd_kinds(const struct pipe_opts *o, int argc, char **argv) {
    (void)o;
    if (argc > 1 && argv[1][0] == '-') {
        puts("usage: pulse-pipe kinds [KIND]\nThe stage kinds this build has (or one of them): version, "
             "summary, outputs, and each\nparameter with its type, meaning and default.");
        return strcmp(argv[1], "--help") == 0 ? EXIT_OK : EXIT_USAGE;
    }
    size_t n;
    const struct stage_kind *const *all = registry_all(&n);
    int shown = 0;
    for (size_t i = 0; i < n; i++)
        if (argc < 2 || strcmp(argv[1], all[i]->schema.name) == 0) {
            print_kind(all[i]);
            shown++;
        }
    if (!shown) {
        fprintf(stderr, "pulse-pipe: kinds: no stage kind named '%s'\n", argv[1]);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static int write_out(void *arg, const void *data, size_t n) {
    return fwrite(data, 1, n, arg) == n ? 0 : err_errno("writing standard output");
}

static const char cat_usage[] =
    "usage: pulse-pipe cat NAME OUTPUT [--manifest MANIFEST] > FILE\n"
    "Writes output OUTPUT of stage NAME to standard output, verified against its id as it streams,\n"
    "e.g. pulse-pipe cat world contact_sheet > sheet.png. NAME's last record, or with --manifest that\n"
    "manifest's stage NAME (see pulse-pipe show --help).";

/* cat NAME OUTPUT: an output's bytes on standard output, verified against their id as they stream. */
int cmd_cat(const struct pipe_opts *o, int argc, char **argv) {
    struct view v = {0};
    int code;
    struct store *s = view_open(o, argc, argv, "cat", cat_usage, 2, 0, &v, &code);
    if (!s)
        return code;
    const char **pos = v.pos;
    /* Shared, as a run holds it: a gc --keep waits for the stream to end before it prunes its object. */
    int lock = lock_take(s, "store", LOCK_SHARED, 1);
    struct json *r = NULL;
    code = lock < 0 ? EXIT_FAILED : pick_record(s, "cat", pos[0], v.manifest, &r);
    const char *id = code ? NULL : json_get_str(json_get(json_get(r, "outputs"), pos[1]), "id");
    if (!code && !id)
        code = (err_set("cat: stage '%s' has no output '%s'", pos[0], pos[1]), EXIT_FAILED);
    else if (!code && (store_read(s, id, write_out, stdout) != 0 || fflush(stdout) != 0))
        code = EXIT_FAILED;
    if (lock >= 0)
        lock_drop(lock);
    json_free(r);
    store_close(s);
    return code == EXIT_OK ? EXIT_OK : pipe_fail(code);
}

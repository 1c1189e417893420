/* status: for each stage of a manifest, done or to run, and why (what changed since the last record of that
 * stage name, field by field). Reads the store; writes nothing but a missing layout directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipe/pipe.h"
#include "store/record.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/schema.h"

static void value_text(struct buf *b, const struct json *v) {
    char *t = v ? json_write(v, JSON_CANONICAL, NULL) : NULL;
    buf_puts(b, t ? t : "(none)");
    free(t);
}

static void sep(struct buf *b) {
    if (b->len)
        buf_puts(b, "; ");
}

/* Parameters that differ between the last record and the manifest, "param lr: 0.001 -> 0.002". */
static void diff_params(struct buf *b, const struct json *was, const struct json *now) {
    if (!was || was->type != JSON_OBJ) { /* a record from elsewhere may be malformed: say so, do not guess */
        sep(b);
        buf_puts(b, "the last record's parameters are unreadable");
        return;
    }
    const struct json *sides[2] = {now, was};
    for (int s = 0; s < 2; s++)
        for (size_t k = 0; sides[s] && k < sides[s]->len; k++) {
            const char *name = sides[s]->keys[k];
            const struct json *a = json_get(was, name), *c = json_get(now, name);
            if ((s == 1 && c) || (a && c && json_equal(a, c)) || !schema_param_keyed(name))
                continue; /* the second pass only reports removed parameters; unkeyed ones never count */
            sep(b);
            buf_printf(b, "param %s: ", name);
            value_text(b, a);
            buf_puts(b, " -> ");
            value_text(b, c);
        }
}

static void diff_inputs(struct buf *b, const struct plan *p, size_t i, const struct json *was) {
    const struct dag_stage *st = &p->dag.stages[i];
    for (size_t k = 0; k < st->ninputs; k++) {
        const struct dag_input *di = &st->inputs[k];
        const char *from = p->dag.stages[di->from].name;
        if (!p->inputs[i] && !p->records[di->from]) {
            sep(b);
            buf_printf(b, "input %s: waits for '%s'", di->param, from);
        } else if (p->inputs[i] && (k == 0 || strcmp(st->inputs[k - 1].param, di->param) != 0) &&
                   !json_equal(json_get(was, di->param), json_get(p->inputs[i], di->param))) {
            sep(b); /* one line per changed parameter, however many outputs it lists */
            buf_printf(b, "input %s changed (from '%s')", di->param, from);
        }
    }
}

/* Files on disk whose content changed since the last record, "path data: /x/data.txt changed". */
static void diff_paths(struct buf *b, const struct json *was, const struct json *now) {
    for (size_t k = 0; now && k < now->len; k++) {
        const char *old = json_get_str(json_get(was, now->keys[k]), "sha256");
        if (old && strcmp(old, json_get_str(now->items[k], "sha256")) == 0)
            continue;
        sep(b);
        buf_printf(b, "path %s: %s changed", now->keys[k], json_get_str(now->items[k], "path"));
    }
}

static char *reason(struct plan *p, struct store *s, size_t i) {
    struct json *last = NULL;
    if (!s || record_by_name(s, p->dag.stages[i].name, &last) != 1)
        return xstrdup(s && record_named(s, p->dag.stages[i].name) == 1
                           ? "its last record is gone (gc --keep prunes; verify finds damage)"
                           : "new stage");
    struct buf b = {0};
    const struct dag_stage *st = &p->dag.stages[i];
    const char *kind = json_get_str(last, "kind");
    int64_t ver = 0;
    json_get_int(last, "kind_version", &ver);
    if (!kind || strcmp(kind, st->kind->name) != 0)
        buf_printf(&b, "kind %s -> %s", kind ? kind : "?", st->kind->name);
    else if (ver != st->kind->version)
        buf_printf(&b, "kind %s version %lld -> %d", kind, (long long)ver, st->kind->version);
    diff_params(&b, json_get(last, "params"), st->params);
    diff_inputs(&b, p, i, json_get(last, "inputs"));
    diff_paths(&b, json_get(last, "paths"), p->paths[i]);
    if (!b.len)
        buf_puts(&b, p->keys[i][0] && strcmp(p->keys[i], json_get_str(last, "key")) == 0
                         ? "recorded outputs are missing from the store"
                         : "inputs not built yet");
    json_free(last);
    return buf_take(&b);
}

static int print_status(struct plan *p, struct store *s, int as_json) {
    struct json *list = json_arr();
    for (size_t k = 0; k < p->dag.n; k++) {
        size_t i = p->dag.order[k];
        int done = plan_resolve(p, i) == 0 && s && plan_lookup(p, s, i) == 1;
        char *why = done ? xstrdup("") : reason(p, s, i);
        if (as_json) {
            struct json *o = json_obj();
            json_set(o, "name", json_str(p->dag.stages[i].name));
            json_set(o, "kind", json_str(p->dag.stages[i].kind->name));
            json_set(o, "state", json_str(done ? "done" : "todo"));
            json_set(o, "reason", json_str(why));
            json_push(list, o);
        } else {
            if (done)
                printf("done  %s\n", p->dag.stages[i].name);
            else
                printf("todo  %-28s %s\n", p->dag.stages[i].name, why);
        }
        free(why);
    }
    if (as_json) {
        struct json *top = json_obj();
        json_set(top, "stages", list);
        char *t = json_write(top, JSON_PRETTY, NULL);
        fputs(t, stdout);
        free(t);
        json_free(top);
    } else {
        json_free(list);
    }
    return EXIT_OK;
}

int cmd_status(const struct pipe_opts *o, int argc, char **argv) {
    const char *manifest = NULL;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            puts(
                "usage: pulse-pipe status MANIFEST [--json]\n"
                "For each stage: done, or todo with the reason (new stage, which parameter or input changed\n"
                "against the last record of that stage name). --json prints\n"
                "{\"stages\": [{\"name\", \"kind\", \"state\": \"done\"|\"todo\", \"reason\"}]}.");
            return EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else if (argv[i][0] == '-' || manifest) {
            fprintf(stderr, "pulse-pipe: status: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        } else {
            manifest = argv[i];
        }
    }
    if (!manifest) {
        fprintf(stderr, "pulse-pipe: status: which manifest? (usage: pulse-pipe status MANIFEST)\n");
        return EXIT_USAGE;
    }
    struct plan p;
    if (plan_load(&p, manifest) != 0) {
        plan_free(&p);
        return pipe_fail(EXIT_USAGE);
    }
    struct store *s = NULL; /* a store that does not exist yet simply holds nothing */
    if (access(o->store, F_OK) == 0 && !(s = pipe_store(o, 0))) {
        plan_free(&p);
        return EXIT_FAILED;
    }
    int rc = print_status(&p, s, as_json);
    if (s)
        store_close(s);
    plan_free(&p);
    return rc;
}

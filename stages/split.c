/* split: per-person roles from a split.json (stages/split.h). */
#include "stages/split.h"

#include <stdlib.h>

#include "util/err.h"
#include "util/json.h"

static int mark(struct stage_ctx *c, const struct ds_people *people, const struct json *ids, char r,
                char *role) {
    if (!ids || ids->type != JSON_ARR)
        return err_set("%s: split: a %s list is not a list", c->name, r == 'f' ? "forget" : "retain");
    for (size_t i = 0; i < ids->len; i++) {
        long p = ids->items[i]->type == JSON_STR ? ds_find_person(people, ids->items[i]->s) : -1;
        if (p < 0)
            return err_set("%s: split: person %zu of the %s list is not among the world's people", c->name,
                           i + 1, r == 'f' ? "forget" : "retain");
        if (role[p] && role[p] != r)
            return err_set("%s: split: %s is both forgotten and retained", c->name, ids->items[i]->s);
        role[p] = r;
    }
    return 0;
}

int split_roles(struct stage_ctx *c, const struct ds_people *people, const char *param, int64_t first,
                int64_t last, char *role) {
    void *data;
    size_t n;
    if (stage_input_read(c, "split", 0, &data, &n) != 0)
        return -1;
    struct json *s = json_parse(data, n);
    free(data);
    const struct json *forget = s ? json_get(s, "forget") : NULL, *retain = s ? json_get(s, "retain") : NULL;
    const struct json *groups = s ? json_get(s, "groups") : NULL;
    int rc = 0;
    if (!forget || forget->type != JSON_ARR || !retain || retain->type != JSON_ARR || !groups ||
        groups->type != JSON_ARR)
        rc = err_set("%s: split: not a split (forget, retain and groups lists)", c->name);
    else if (first < 0 || last < first || (size_t)last > groups->len)
        rc = err_set("%s: %s is %lld but the split has %zu groups", c->name, param, (long long)last,
                     groups->len);
    for (int64_t g = first; rc == 0 && g >= 1 && g <= last; g++)
        rc = mark(c, people, groups->items[g - 1], 'f', role);
    if (rc == 0 && first == 0)
        rc = mark(c, people, forget, 'f', role);
    if (rc == 0)
        rc = mark(c, people, retain, 'r', role);
    json_free(s);
    return rc;
}

/* dag: the stages a manifest declared and the edges between them; a deterministic topological order and a
 * readable cycle when there is none. */
#include "lua/dag.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"

/* Arrays grow to the next power of two, so the count alone tells when (no capacity field needed). */
static int needs_growth(size_t n) {
    return (n & (n - 1)) == 0;
}

/* ---- the name index: open addressing, linear probing; a slot holds a stage index + 1, 0 when empty ---- */

struct dag_names {
    size_t *slots;
    size_t cap;   /* a power of two, more than twice count */
    size_t count; /* stages indexed: d->n while the index is current */
};

static size_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (size_t)h;
}

/* The slot holding name, or the empty slot where it would go. */
static size_t *names_slot(const struct dag *d, const char *name) {
    const struct dag_names *ix = d->names;
    size_t mask = ix->cap - 1, i = name_hash(name) & mask;
    while (ix->slots[i] && strcmp(d->stages[ix->slots[i] - 1].name, name) != 0)
        i = (i + 1) & mask;
    return &ix->slots[i];
}

/* Indexes stages [0, n): a fresh table with room to grow. The first of equal names wins, as in a scan. */
static void names_rebuild(struct dag *d, size_t n) {
    struct dag_names *ix = d->names;
    if (!ix)
        ix = d->names = xcalloc(1, sizeof *ix);
    free(ix->slots);
    for (ix->cap = 16; ix->cap <= 2 * n; ix->cap *= 2)
        ;
    ix->slots = xcalloc(ix->cap, sizeof *ix->slots);
    ix->count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t *slot = names_slot(d, d->stages[i].name);
        if (!*slot)
            *slot = i + 1;
    }
    ix->count = n;
}

/* Adds stage d->n (already in d->stages, not yet counted). */
static void names_add(struct dag *d) {
    struct dag_names *ix = d->names;
    if (!ix || ix->count != d->n || 2 * (d->n + 1) >= ix->cap) {
        names_rebuild(d, d->n + 1);
        return;
    }
    *names_slot(d, d->stages[d->n].name) = d->n + 1;
    ix->count++;
}

long dag_add(struct dag *d, const char *name, const struct kind_schema *kind, struct json *params,
             const char *file, int line) {
    long old = dag_find(d, name);
    if (old >= 0) {
        const struct dag_stage *o = &d->stages[old];
        json_free(params);
        return err_set("stage '%s' is already declared at %s:%d", name, o->file, o->line);
    }
    if (needs_growth(d->n))
        d->stages = xrealloc(d->stages, (d->n ? 2 * d->n : 1) * sizeof *d->stages);
    struct dag_stage *s = &d->stages[d->n];
    memset(s, 0, sizeof *s);
    s->name = xstrdup(name);
    s->kind = kind;
    s->params = params;
    s->file = xstrdup(file ? file : "");
    s->line = line;
    names_add(d);
    free(d->order); /* a new stage makes any earlier order incomplete */
    d->order = NULL;
    return (long)d->n++;
}

void dag_add_input(struct dag *d, size_t stage, const char *param, size_t index, size_t from,
                   const char *output) {
    if (stage >= d->n)
        return;
    struct dag_stage *s = &d->stages[stage];
    if (needs_growth(s->ninputs))
        s->inputs = xrealloc(s->inputs, (s->ninputs ? 2 * s->ninputs : 1) * sizeof *s->inputs);
    struct dag_input *in = &s->inputs[s->ninputs++];
    in->param = xstrdup(param);
    in->index = index;
    in->from = from;
    in->output = xstrdup(output);
    free(d->order);
    d->order = NULL;
}

long dag_find(const struct dag *d, const char *name) {
    if (d->names && d->names->count == d->n && d->n > 0) {
        size_t v = *names_slot(d, name);
        return v ? (long)v - 1 : -1;
    }
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->stages[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* The first place in s where the len bytes of piece start, or NULL. */
static const char *find_piece(const char *s, const char *piece, size_t len) {
    for (;; s++) {
        if (strncmp(s, piece, len) == 0)
            return s;
        if (!*s)
            return NULL;
    }
}

/* A glob with '*' only: the text between stars must appear in order, the first piece at the start and the
 * last at the end. Taking each middle piece's first occurrence is enough (a later one never leaves more
 * room). */
static int glob_match(const char *pat, const char *name) {
    const char *star = strchr(pat, '*');
    size_t head = star ? (size_t)(star - pat) : strlen(pat);
    if (strncmp(pat, name, head) != 0)
        return 0;
    if (!star)
        return name[head] == '\0';
    name += head;
    for (pat = star + 1; (star = strchr(pat, '*')); pat = star + 1) {
        size_t len = (size_t)(star - pat);
        if (!(name = find_piece(name, pat, len)))
            return 0;
        name += len;
    }
    size_t tail = strlen(pat), left = strlen(name);
    return left >= tail && strcmp(name + left - tail, pat) == 0;
}

static void select_one(const struct dag *d, size_t i, unsigned char *mark, int closure) {
    if (closure)
        dag_closure(d, i, mark);
    else
        mark[i] = 1;
}

size_t dag_select(const struct dag *d, const char *name, unsigned char *mark, int closure) {
    if (!strchr(name, '*')) {
        long i = dag_find(d, name);
        if (i >= 0)
            select_one(d, (size_t)i, mark, closure);
        return i >= 0;
    }
    size_t hits = 0;
    for (size_t i = 0; i < d->n; i++)
        if (glob_match(name, d->stages[i].name)) {
            select_one(d, i, mark, closure);
            hits++;
        }
    return hits;
}

/* ---- a min-heap of stage indices: Kahn's algorithm always takes the earliest declared ready stage ---- */

struct heap {
    size_t *v;
    size_t n;
};

static void heap_push(struct heap *h, size_t x) {
    size_t i = h->n++;
    while (i > 0 && h->v[(i - 1) / 2] > x) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = x;
}

static size_t heap_pop(struct heap *h) {
    size_t top = h->v[0], last = h->v[--h->n], i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1] < h->v[c])
            c++;
        if (h->v[c] >= last)
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0)
        h->v[i] = last;
    return top;
}

/* Consumers of each stage as compressed rows: consumers of s are cons[start[s] .. start[s + 1]). One entry
 * per input, so in-degrees count edges, not distinct producers. */
struct edges {
    size_t *start, *cons;
};

static void edges_build(const struct dag *d, struct edges *e, size_t *indeg) {
    e->start = xcalloc(d->n + 1, sizeof *e->start);
    size_t total = 0;
    for (size_t s = 0; s < d->n; s++)
        for (size_t k = 0; k < d->stages[s].ninputs; k++) {
            e->start[d->stages[s].inputs[k].from + 1]++;
            indeg[s]++;
            total++;
        }
    for (size_t s = 0; s < d->n; s++)
        e->start[s + 1] += e->start[s];
    e->cons = xmalloc((total ? total : 1) * sizeof *e->cons);
    size_t *fill = xmalloc((d->n ? d->n : 1) * sizeof *fill);
    memcpy(fill, e->start, d->n * sizeof *fill);
    for (size_t s = 0; s < d->n; s++)
        for (size_t k = 0; k < d->stages[s].ninputs; k++)
            e->cons[fill[d->stages[s].inputs[k].from]++] = s;
    free(fill);
}

static int check_inputs(const struct dag *d) {
    for (size_t s = 0; s < d->n; s++)
        for (size_t k = 0; k < d->stages[s].ninputs; k++)
            if (d->stages[s].inputs[k].from >= d->n)
                return err_set("%s:%d: stage '%s' has an input from a stage that does not exist",
                               d->stages[s].file, d->stages[s].line, d->stages[s].name);
    return 0;
}

/* The earliest declared remaining producer of s (every stage left after Kahn's algorithm has one). */
static size_t remaining_producer(const struct dag *d, size_t s, const size_t *indeg) {
    size_t best = d->n;
    for (size_t k = 0; k < d->stages[s].ninputs; k++) {
        size_t f = d->stages[s].inputs[k].from;
        if (indeg[f] > 0 && f < best)
            best = f;
    }
    return best;
}

/* Walks from the earliest remaining stage to its producers until a stage repeats; prints the loop in the
 * direction data flows, starting at its earliest declared stage. */
static int report_cycle(const struct dag *d, const size_t *indeg) {
    size_t *seen_at = xmalloc(d->n * sizeof *seen_at), *path = xmalloc(d->n * sizeof *path), len = 0;
    for (size_t i = 0; i < d->n; i++)
        seen_at[i] = (size_t)-1;
    size_t s = 0;
    while (indeg[s] == 0)
        s++;
    while (seen_at[s] == (size_t)-1) {
        seen_at[s] = len;
        path[len++] = s;
        s = remaining_producer(d, s, indeg);
    }
    size_t from = seen_at[s], n = len - from, first = 0;
    for (size_t i = 1; i < n; i++) /* path runs consumer to producer: reverse while printing */
        if (path[from + i] < path[from + first])
            first = i;
    const struct dag_stage *head = &d->stages[path[from + first]];
    struct buf b = {0};
    buf_printf(&b, "%s:%d: cycle: %s", head->file, head->line, head->name);
    for (size_t i = 1; i <= n; i++)
        buf_printf(&b, " -> %s", d->stages[path[from + (first + n - i) % n]].name);
    err_set("%s", b.data);
    buf_free(&b);
    free(seen_at);
    free(path);
    return -1;
}

int dag_sort(struct dag *d) {
    free(d->order);
    d->order = NULL;
    if (check_inputs(d) < 0)
        return -1;
    size_t *indeg = xcalloc(d->n + 1, sizeof *indeg), *order = xmalloc((d->n + 1) * sizeof *order), done = 0;
    struct edges e;
    edges_build(d, &e, indeg);
    struct heap h = {xmalloc((d->n + 1) * sizeof *h.v), 0};
    for (size_t s = 0; s < d->n; s++)
        if (indeg[s] == 0)
            heap_push(&h, s);
    while (h.n > 0) {
        size_t s = heap_pop(&h);
        order[done++] = s;
        for (size_t k = e.start[s]; k < e.start[s + 1]; k++)
            if (--indeg[e.cons[k]] == 0)
                heap_push(&h, e.cons[k]);
    }
    int rc = done == d->n ? 0 : report_cycle(d, indeg);
    if (rc == 0)
        d->order = order;
    else
        free(order);
    free(h.v);
    free(e.start);
    free(e.cons);
    free(indeg);
    return rc;
}

void dag_closure(const struct dag *d, size_t stage, unsigned char *keep) {
    if (stage >= d->n)
        return;
    size_t *stack = xmalloc((d->n + 1) * sizeof *stack), top = 0;
    keep[stage] = 1;
    stack[top++] = stage;
    while (top > 0) {
        const struct dag_stage *s = &d->stages[stack[--top]];
        for (size_t k = 0; k < s->ninputs; k++) {
            size_t f = s->inputs[k].from;
            if (f < d->n && !keep[f]) {
                keep[f] = 1;
                stack[top++] = f;
            }
        }
    }
    free(stack);
}

void dag_free(struct dag *d) {
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        struct dag_stage *s = &d->stages[i];
        for (size_t k = 0; k < s->ninputs; k++) {
            free(s->inputs[k].param);
            free(s->inputs[k].output);
        }
        free(s->inputs);
        free(s->name);
        free(s->file);
        json_free(s->params);
    }
    free(d->stages);
    free(d->order);
    if (d->names)
        free(d->names->slots);
    free(d->names);
    memset(d, 0, sizeof *d);
}

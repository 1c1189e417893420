/* report: the stage kind that turns the metrics objects of `evaluate` stages into the PULSE protocol's
 * results: three tables in Markdown (knowledge type x method, sustainability over sequential rounds, the
 * update-target ablation), every number in CSV and canonical JSON, and the sustainability curves as SVG and
 * PNG. The headline accuracy is the one the evaluations were scored by (their `scoring`: the greedy letter,
 * or likelihood); a report shows one scoring.
 *
 * Inputs come from other stages but are still outside data here: each one is checked and refused with one
 * line naming its index (position in `metrics`, from 0). Entries are sorted by their labels, so the outputs
 * do not depend on the order of the inputs. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/report.h"
#include "stages/stage.h"
#include "util/buf.h"
#include "util/err.h"

#define MAX_ROUND 1000 /* sequential rounds: bounds the chart's x axis */
#define MAX_ID 64      /* bytes in a method name, a set name or an extra label's key */

const char *const report_col_set[REPORT_NCOLS] = {"forget_mm", "forget_text", "retain_mm", "retain_text",
                                                  "general"};
const char *const report_col_title[REPORT_NCOLS] = {"forget MM", "forget text", "retain MM", "retain text",
                                                    "general"};

static const char *const knowledges[] = {"finetuned", "pretrained"}; /* table order */
static const char *const methods[] = {"none", "ga", "ga_klr", "npo"};
static const char *const settings[] = {"single", "sequential"};
static const char *const targets[] = {"proj+llm", "llm"};
static const char *const core_labels[] = {"knowledge", "method", "setting", "round", "target"};
/* evaluate's `scoring`, and the set field that holds each one's headline accuracy */
static const char *const scorings[] = {"letter", "likelihood"};
static const char *const headline[] = {"greedy", "likelihood"};
#define COUNT(a) (sizeof a / sizeof a[0])

/* One input; or one run: the inputs whose five labels are the same, which must then differ in their `seed`
 * label (a sweep over seeds), with the mean of their numbers and the spread of their headline. */
struct entry {
    size_t index;                                      /* position in `metrics` (a run: its first member's) */
    const char *knowledge, *method, *setting, *target; /* point into labels */
    int64_t round;
    int has_seed; /* labels.seed: an integer, the seed of a sweep's member */
    int64_t seed;
    int scoring; /* index in scorings: letter when the metrics do not say (evaluate before version 2) */
    struct json *labels, *sets; /* a run's are its first member's, not its own */
    double greedy[REPORT_NCOLS], option[REPORT_NCOLS], likelihood[REPORT_NCOLS]; /* -1: absent */
    double acc[REPORT_NCOLS]; /* the headline: greedy or likelihood, by scoring */
    /* a run's: its members (consecutive in sorted order), and the sample standard deviation of acc over
     * those that have the set (-1 with fewer than two) */
    const struct entry *first;
    size_t members;
    double sd[REPORT_NCOLS];
};

struct report {
    struct entry *e; /* the inputs, sorted */
    size_t n;
    struct entry *run; /* what the views and the chart show */
    size_t nrun;
    int seeds;   /* some run has more than one member: the tables show means, spreads and a seeds column */
    int scoring; /* every entry's */
};

static void report_free(struct report *r) {
    for (size_t i = 0; i < r->n; i++) {
        json_free(r->e[i].labels);
        json_free(r->e[i].sets);
    }
    free(r->e);
    free(r->run);
}

/* ---- reading and checking the inputs ------------------------------------------------------------------- */

static int bad(size_t index, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(size_t index, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return err_set("report: metrics %zu: %s", index, what);
}

/* An id: what may name a method, a set or a label, and appear unquoted in every output. */
static int is_id(const char *s, size_t len) {
    if (len == 0 || len > MAX_ID || strlen(s) != len)
        return 0;
    for (size_t k = 0; k < len; k++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.+", s[k]))
            return 0;
    return 1;
}

static int keys_are_ids(const struct json *obj) {
    for (size_t k = 0; k < obj->len; k++)
        if (!is_id(obj->keys[k], strlen(obj->keys[k])))
            return 0;
    return 1;
}

/* Position of s in list, or -1. */
static int find_in(const char *s, const char *const *list, size_t n) {
    for (size_t k = 0; s && k < n; k++)
        if (strcmp(s, list[k]) == 0)
            return (int)k;
    return -1;
}

static const char *label_one_of(const struct json *labels, const char *key, const char *const *allowed,
                                size_t index) {
    const struct json *v = json_get(labels, key);
    if (v && v->type == JSON_STR && strlen(v->s) == v->len && find_in(v->s, allowed, 2) >= 0)
        return v->s;
    bad(index, "'labels.%s' must be \"%s\" or \"%s\"", key, allowed[0], allowed[1]);
    return NULL;
}

static int check_round(struct entry *e) {
    int none = strcmp(e->method, "none") == 0, seq = strcmp(e->setting, "sequential") == 0;
    if (none && e->round != 0)
        return bad(e->index, "'labels.round' must be 0 for method none, got %lld", (long long)e->round);
    if (!none && !seq && e->round != 1)
        return bad(e->index, "'labels.round' must be 1 for setting single, got %lld", (long long)e->round);
    if (!none && seq && (e->round < 1 || e->round > MAX_ROUND))
        return bad(e->index, "'labels.round' must be between 1 and %d for setting sequential, got %lld",
                   MAX_ROUND, (long long)e->round);
    return 0;
}

static int check_labels(const struct json *labels, struct entry *e) {
    if (!labels || labels->type != JSON_OBJ)
        return bad(e->index, "'labels' must be an object");
    if (!keys_are_ids(labels))
        return bad(e->index, "'labels' has a key that is not an id (1 to %d of A-Z a-z 0-9 _ - . +)", MAX_ID);
    if (!(e->knowledge = label_one_of(labels, "knowledge", knowledges, e->index)))
        return -1;
    const struct json *m = json_get(labels, "method");
    if (!m || m->type != JSON_STR || !is_id(m->s, m->len))
        return bad(e->index, "'labels.method' must be an id (1 to %d of A-Z a-z 0-9 _ - . +)", MAX_ID);
    e->method = m->s;
    if (!(e->setting = label_one_of(labels, "setting", settings, e->index)))
        return -1;
    if (json_get_int(labels, "round", &e->round) != 0)
        return bad(e->index, "'labels.round' must be an integer");
    if (!(e->target = label_one_of(labels, "target", targets, e->index)))
        return -1;
    e->has_seed = json_get(labels, "seed") != NULL;
    if (e->has_seed && json_get_int(labels, "seed", &e->seed) != 0)
        return bad(e->index, "'labels.seed' must be an integer");
    return check_round(e);
}

/* One set's numbers: v[0] greedy, v[1] option, v[2] likelihood (-1 when absent; required under likelihood
 * scoring). */
static int check_set(const struct json *set, const char *name, const struct entry *e, double v[3]) {
    size_t index = e->index;
    double *greedy = &v[0], *option = &v[1], *likelihood = &v[2];
    int64_t items, unparsed;
    if (set->type != JSON_OBJ)
        return bad(index, "'sets.%s' must be an object", name);
    if (json_get_int(set, "items", &items) != 0 || items < 0)
        return bad(index, "'sets.%s.items' must be a non-negative integer", name);
    if (json_get_num(set, "greedy", greedy) != 0 || !(*greedy >= 0 && *greedy <= 1))
        return bad(index, "'sets.%s.greedy' must be a number between 0 and 1", name);
    if (json_get_num(set, "option", option) != 0 || !(*option >= 0 && *option <= 1))
        return bad(index, "'sets.%s.option' must be a number between 0 and 1", name);
    if (json_get_int(set, "unparsed", &unparsed) != 0 || unparsed < 0)
        return bad(index, "'sets.%s.unparsed' must be a non-negative integer", name);
    *likelihood = -1;
    if ((e->scoring == 1 || json_get(set, "likelihood")) &&
        (json_get_num(set, "likelihood", likelihood) != 0 || !(*likelihood >= 0 && *likelihood <= 1)))
        return bad(index, "'sets.%s.likelihood' must be a number between 0 and 1", name);
    return 0;
}

static int check_sets(const struct json *sets, struct entry *e) {
    if (!sets || sets->type != JSON_OBJ)
        return bad(e->index, "'sets' must be an object");
    if (!keys_are_ids(sets))
        return bad(e->index, "'sets' has a key that is not an id (1 to %d of A-Z a-z 0-9 _ - . +)", MAX_ID);
    for (int k = 0; k < REPORT_NCOLS; k++)
        e->greedy[k] = e->option[k] = e->likelihood[k] = e->acc[k] = -1;
    for (size_t k = 0; k < sets->len; k++) {
        double v[3];
        if (check_set(sets->items[k], sets->keys[k], e, v) != 0)
            return -1;
        int col = find_in(sets->keys[k], report_col_set, REPORT_NCOLS);
        if (col >= 0) {
            e->greedy[col] = v[0], e->option[col] = v[1], e->likelihood[col] = v[2];
            e->acc[col] = e->scoring == 1 ? v[2] : v[0];
        }
    }
    return 0;
}

/* `scoring`: absent (metrics from evaluate version 1, which scored by letter only) or one of scorings. */
static int check_scoring(const struct json *doc, struct entry *e) {
    const struct json *v = json_get(doc, "scoring");
    e->scoring = v && v->type == JSON_STR && strlen(v->s) == v->len ? find_in(v->s, scorings, 2) : v ? -1 : 0;
    return e->scoring >= 0 ? 0 : bad(e->index, "'scoring' must be \"letter\" or \"likelihood\"");
}

/* Reads input `index` into e: labels and sets kept (extra keys included), everything else dropped. */
static int read_entry(struct stage_ctx *c, size_t index, struct entry *e) {
    void *data;
    size_t n;
    memset(e, 0, sizeof *e);
    e->index = index;
    if (stage_input_read(c, "metrics", index, &data, &n) != 0)
        return err_prefix("report");
    struct json *doc = json_parse(data, n);
    free(data);
    if (!doc)
        return err_prefix("report: metrics %zu: not JSON", index);
    int rc = doc->type == JSON_OBJ ? 0 : bad(index, "not a JSON object");
    if (rc == 0)
        e->labels = json_clone(json_get(doc, "labels"));
    if (rc == 0)
        rc = check_scoring(doc, e);
    if (rc == 0 && (rc = check_labels(e->labels, e)) == 0) {
        e->sets = json_clone(json_get(doc, "sets"));
        rc = check_sets(e->sets, e);
    }
    json_free(doc);
    return rc;
}

static int rank_of(const char *s, const char *const *list, size_t n) {
    int k = find_in(s, list, n);
    return k < 0 ? (int)n : k;
}

/* Knowledge in table order, methods none/ga/ga_klr/npo then others bytewise, single before sequential, the
 * default target first, then rounds. */
static int cmp_core(const struct entry *a, const struct entry *b) {
    int d = rank_of(a->knowledge, knowledges, 2) - rank_of(b->knowledge, knowledges, 2);
    if (!d)
        d = rank_of(a->method, methods, COUNT(methods)) - rank_of(b->method, methods, COUNT(methods));
    if (!d)
        d = strcmp(a->method, b->method);
    if (!d)
        d = rank_of(a->setting, settings, 2) - rank_of(b->setting, settings, 2);
    if (!d)
        d = rank_of(a->target, targets, 2) - rank_of(b->target, targets, 2);
    if (!d)
        d = (a->round > b->round) - (a->round < b->round);
    return d;
}

/* The five labels, then the seed (none first), then the position. */
static int cmp_entry(const void *pa, const void *pb) {
    const struct entry *a = pa, *b = pb;
    int d = cmp_core(a, b);
    if (!d)
        d = a->has_seed - b->has_seed;
    if (!d)
        d = (a->seed > b->seed) - (a->seed < b->seed);
    return d ? d : (a->index > b->index) - (a->index < b->index);
}

/* Inputs with the same five labels are one run only when each has a seed of its own (a, b: neighbours in
 * sorted order, so a lacks a seed if either does). The message names the two by position, lower first. */
static int check_members(const struct entry *a, const struct entry *b) {
    size_t lo = a->index < b->index ? a->index : b->index, hi = a->index < b->index ? b->index : a->index;
    if (!a->has_seed)
        return err_set("report: metrics %zu and %zu have the same labels (knowledge, method, setting, round, "
                       "target) and no seed label to tell them apart",
                       lo, hi);
    if (a->seed == b->seed)
        return err_set("report: metrics %zu and %zu have the same labels and the same seed (%lld)", lo, hi,
                       (long long)a->seed);
    return 0;
}

/* An entry's numbers by field: greedy, option, likelihood, the headline. */
enum { F_GREEDY, F_OPTION, F_LIKELIHOOD, F_ACC, NFIELDS };
static double *field(struct entry *e, int f) {
    double *const v[NFIELDS] = {e->greedy, e->option, e->likelihood, e->acc};
    return v[f];
}

/* The mean of field f's column k over the members that have it (-1 when none does), and into *sd the sample
 * standard deviation (-1 with fewer than two) when sd is not NULL. Members are summed in sorted order, so the
 * bits do not depend on the inputs' order. */
static double member_mean(struct entry *first, size_t members, int f, int k, double *sd) {
    double sum = 0, dev = 0;
    size_t n = 0;
    for (size_t m = 0; m < members; m++) {
        double x = field(&first[m], f)[k];
        if (x >= 0)
            sum += x, n++;
    }
    double mean = n ? sum / (double)n : -1;
    for (size_t m = 0; n > 1 && m < members; m++) {
        double x = field(&first[m], f)[k];
        if (x >= 0)
            dev += (x - mean) * (x - mean);
    }
    if (sd)
        *sd = n > 1 ? sqrt(dev / (double)(n - 1)) : -1;
    return mean;
}

/* A run of `members` sorted inputs from `first`: their labels, and the means of their numbers. */
static void run_make(struct entry *first, size_t members, struct entry *run) {
    *run = *first;
    run->first = first;
    run->members = members;
    for (int f = 0; f < NFIELDS; f++)
        for (int k = 0; k < REPORT_NCOLS; k++)
            field(run, f)[k] = member_mean(first, members, f, k, f == F_ACC ? &run->sd[k] : NULL);
}

/* Groups the sorted inputs into runs. */
static int runs_make(struct report *r) {
    r->run = xcalloc(r->n ? r->n : 1, sizeof *r->run);
    for (size_t i = 0, end; i < r->n; i = end) {
        for (end = i + 1; end < r->n && cmp_core(&r->e[i], &r->e[end]) == 0; end++)
            if (check_members(&r->e[end - 1], &r->e[end]) != 0)
                return -1;
        run_make(&r->e[i], end - i, &r->run[r->nrun++]);
        r->seeds |= end - i > 1;
    }
    return 0;
}

static int read_all(struct stage_ctx *c, struct report *r) {
    size_t n = stage_input_count(c, "metrics");
    r->e = xcalloc(n ? n : 1, sizeof *r->e);
    for (r->n = 0; r->n < n; r->n++)
        if (read_entry(c, r->n, &r->e[r->n]) != 0) {
            r->n++; /* what it holds is freed with the rest */
            return -1;
        }
    /* One scoring per report: the numbers of two scorings side by side would not compare. */
    for (size_t i = 1; i < r->n; i++)
        if (r->e[i].scoring != r->e[0].scoring)
            return err_set(
                "report: metrics 0 is scored by %s but metrics %zu by %s: a report shows one scoring",
                scorings[r->e[0].scoring], i, scorings[r->e[i].scoring]);
    r->scoring = r->n ? r->e[0].scoring : 0;
    qsort(r->e, r->n, sizeof *r->e, cmp_entry);
    return runs_make(r);
}

/* ---- views --------------------------------------------------------------------------------------------- */

struct vrow {
    char cell[3][MAX_ID + 16];
    const struct entry *e;
};

/* What a view is: its names, its label columns' titles and its value columns (indices into report_col_set).
 */
struct view_spec {
    const char *key, *title, *empty;
    const char *const *labels;
    size_t nlabels;
    const int *cols;
    size_t ncols;
};

struct view {
    const struct view_spec *s;
    struct vrow *rows;
    size_t n, cap;
};

static void view_add(struct view *v, const struct entry *e, const char *a, const char *b, const char *c) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 16;
        v->rows = xrealloc(v->rows, v->cap * sizeof *v->rows);
    }
    struct vrow *row = &v->rows[v->n++];
    const char *cells[3] = {a, b, c};
    for (int k = 0; k < 3; k++)
        snprintf(row->cell[k], sizeof row->cell[k], "%s", cells[k] ? cells[k] : "");
    row->e = e;
}

static int is(const char *a, const char *b) {
    return strcmp(a, b) == 0;
}

/* The "before unlearning" entry of a knowledge type (of a target too, unless target is NULL): the first
 * method-none entry in sorted order. */
static const struct entry *before(const struct report *r, const char *knowledge, const char *target) {
    for (size_t i = 0; i < r->nrun; i++)
        if (is(r->run[i].knowledge, knowledge) && is(r->run[i].method, "none") &&
            (!target || is(r->run[i].target, target)))
            return &r->run[i];
    return NULL;
}

static const struct entry *single_run(const struct report *r, const char *knowledge, const char *method,
                                      const char *target) {
    for (size_t i = 0; i < r->nrun; i++) {
        const struct entry *e = &r->run[i];
        if (is(e->knowledge, knowledge) && is(e->method, method) && is(e->setting, "single") &&
            is(e->target, target))
            return e;
    }
    return NULL;
}

/* A round of a sequential curve: what the sustainability view and the chart show. */
static int is_curve(const struct entry *e, const char *knowledge) {
    return is(e->knowledge, knowledge) && !is(e->method, "none") && is(e->setting, "sequential") &&
           is(e->target, "proj+llm");
}

static void view_knowledge_method(const struct report *r, struct view *v) {
    for (size_t k = 0; k < COUNT(knowledges); k++) {
        const struct entry *b = before(r, knowledges[k], NULL);
        if (b)
            view_add(v, b, knowledges[k], "none", NULL);
        for (size_t i = 0; i < r->nrun; i++) {
            const struct entry *e = &r->run[i];
            if (is(e->knowledge, knowledges[k]) && !is(e->method, "none") && is(e->setting, "single") &&
                is(e->target, "proj+llm"))
                view_add(v, e, e->knowledge, e->method, NULL);
        }
    }
}

static void add_single_shot(const struct report *r, struct view *v, const struct entry *last) {
    const struct entry *s = single_run(r, last->knowledge, last->method, "proj+llm");
    if (s)
        view_add(v, s, s->knowledge, s->method, "single-shot");
}

static void view_sustainability(const struct report *r, struct view *v) {
    for (size_t k = 0; k < COUNT(knowledges); k++) {
        const struct entry *prev = NULL;
        for (size_t i = 0; i < r->nrun; i++) {
            const struct entry *e = &r->run[i];
            if (!is_curve(e, knowledges[k]))
                continue;
            const struct entry *b = prev ? NULL : before(r, knowledges[k], NULL);
            if (b)
                view_add(v, b, b->knowledge, "none", "before");
            if (prev && !is(prev->method, e->method))
                add_single_shot(r, v, prev);
            char round[24];
            snprintf(round, sizeof round, "%lld", (long long)e->round);
            view_add(v, e, e->knowledge, e->method, round);
            prev = e;
        }
        if (prev)
            add_single_shot(r, v, prev);
    }
}

/* Methods shown in the ablation: none, ga, and any method run with more than one target. */
static int in_ablation(const struct report *r, const char *method) {
    if (is(method, "none") || is(method, "ga"))
        return 1;
    int n = 0;
    for (size_t k = 0; k < COUNT(targets); k++)
        n += single_run(r, "pretrained", method, targets[k]) != NULL;
    return n > 1;
}

static void view_ablation(const struct report *r, struct view *v) {
    for (size_t i = 0; i < r->nrun; i++) {
        const struct entry *e = &r->run[i];
        if (!is(e->knowledge, "pretrained") || !in_ablation(r, e->method))
            continue;
        if (is(e->method, "none") ? before(r, "pretrained", e->target) == e : is(e->setting, "single"))
            view_add(v, e, e->method, e->target, NULL);
    }
}

static const char *const km_labels[] = {"knowledge", "method"};
static const char *const sus_labels[] = {"knowledge", "method", "round"};
static const char *const abl_labels[] = {"method", "target"};
static const int all_cols[] = {0, 1, 2, 3, 4}, abl_cols[] = {0, 1, 4};
#define NVIEWS 3

static const struct view_spec specs[NVIEWS] = {
    {"knowledge_method", "Knowledge type x method",
     "No single-shot runs (target proj+llm) and no runs before unlearning.", km_labels, 2, all_cols, 5},
    {"sustainability", "Sustainability", "No sequential runs (target proj+llm).", sus_labels, 3, all_cols, 5},
    {"ablation", "Ablation: update target", "No pretrained-knowledge runs of none or ga.", abl_labels, 2,
     abl_cols, 3},
};

static void views_make(const struct report *r, struct view v[NVIEWS]) {
    memset(v, 0, NVIEWS * sizeof *v);
    for (int k = 0; k < NVIEWS; k++)
        v[k].s = &specs[k];
    view_knowledge_method(r, &v[0]);
    view_sustainability(r, &v[1]);
    view_ablation(r, &v[2]);
}

static void views_free(struct view v[NVIEWS]) {
    for (int k = 0; k < NVIEWS; k++)
        free(v[k].rows);
}

/* ---- Markdown ------------------------------------------------------------------------------------------ */

static void put_percent(struct buf *b, double v) {
    if (v < 0)
        buf_puts(b, "-");
    else
        buf_printf(b, "%.1f", v * 100.0);
}

/* A table; with seeds, a cell is the mean and its spread ("81.2 ± 3.4", or the mean alone from one seed),
 * and a last column counts the row's seeds. */
static void md_table(struct buf *b, const struct view *v, int seeds) {
    size_t nvalues = v->s->ncols + (seeds != 0);
    for (size_t k = 0; k < v->s->nlabels; k++)
        buf_printf(b, "| %s ", v->s->labels[k]);
    for (size_t k = 0; k < v->s->ncols; k++)
        buf_printf(b, "| %s ", report_col_title[v->s->cols[k]]);
    buf_puts(b, seeds ? "| seeds |\n" : "|\n");
    for (size_t k = 0; k < v->s->nlabels + nvalues; k++)
        buf_puts(b, k < v->s->nlabels ? "|---" : "|---:");
    buf_puts(b, "|\n");
    for (size_t i = 0; i < v->n; i++) {
        const struct entry *e = v->rows[i].e;
        for (size_t k = 0; k < v->s->nlabels; k++)
            buf_printf(b, "| %s ", v->rows[i].cell[k]);
        for (size_t k = 0; k < v->s->ncols; k++) {
            buf_puts(b, "| ");
            put_percent(b, e->acc[v->s->cols[k]]);
            if (e->sd[v->s->cols[k]] >= 0)
                buf_printf(b, " ± %.1f", e->sd[v->s->cols[k]] * 100.0);
            buf_puts(b, " ");
        }
        if (seeds)
            buf_printf(b, "| %zu ", e->members);
        buf_puts(b, "|\n");
    }
}

/* A title is one line of text: control characters become spaces. */
static void put_line_text(struct buf *b, const char *s) {
    for (; *s; s++)
        buf_putc(b, (unsigned char)*s < 0x20 ? ' ' : *s);
}

/* What the tables show, and where the rest is, for each scoring. */
static const char *const md_intro[] = {
    "Greedy accuracy in % (the first generated token must be the right letter: MLLMU-Bench's score). \"-\": "
    "the set was not evaluated.\n",
    "Likelihood accuracy in % (each option written into the answer sentence and scored by the sum of its "
    "tokens' log-probabilities; the most likely option is the answer: lm-evaluation-harness's acc). \"-\": "
    "the set was not evaluated.\n"};
static const char *const md_rest[] = {
    "\nOption-letter scores (the accuracy of the highest-scoring option letter), item counts and unparsed "
    "answers are in the `csv` and `json` outputs.\n",
    "\nMLLMU-Bench's greedy-letter and option-letter scores, item counts and unparsed answers are in the "
    "`csv` and `json` outputs.\n"};

static const char md_seeds[] =
    "Runs that differ only in their seed are one row: the mean over the seeds ± the sample standard "
    "deviation (over the seeds that have the set; the mean alone from one); `seeds` counts them.\n";

static char *make_markdown(const char *title, const struct report *r, const struct view v[NVIEWS],
                           size_t *n) {
    struct buf b = {0};
    buf_puts(&b, "# ");
    put_line_text(&b, title);
    buf_printf(&b, "\n\n%s%s", md_intro[r->scoring], r->seeds ? md_seeds : "");
    for (int k = 0; k < NVIEWS; k++) {
        buf_printf(&b, "\n## %s\n\n", v[k].s->title);
        if (v[k].n)
            md_table(&b, &v[k], r->seeds);
        else
            buf_printf(&b, "%s\n", v[k].s->empty);
    }
    buf_puts(&b, md_rest[r->scoring]);
    *n = b.len;
    return buf_take(&b);
}

/* ---- CSV ----------------------------------------------------------------------------------------------- */

/* RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled. */
static void csv_field(struct buf *b, const char *s, size_t len) {
    if (!memchr(s, ',', len) && !memchr(s, '"', len) && !memchr(s, '\n', len) && !memchr(s, '\r', len)) {
        buf_append(b, s, len);
        return;
    }
    buf_putc(b, '"');
    for (size_t k = 0; k < len; k++) {
        if (s[k] == '"')
            buf_putc(b, '"');
        buf_putc(b, s[k]);
    }
    buf_putc(b, '"');
}

/* A value as CSV: strings as themselves, anything else as canonical JSON. */
static void csv_value(struct buf *b, const struct json *v) {
    if (!v)
        return;
    if (v->type == JSON_STR) {
        csv_field(b, v->s, v->len);
        return;
    }
    size_t len;
    char *text = json_write(v, JSON_CANONICAL, &len);
    if (text)
        csv_field(b, text, len);
    free(text);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keys of the labels beyond the protocol's five, over all entries: sorted, each once. */
static size_t extra_keys(const struct report *r, const char ***out) {
    size_t n = 0, cap = 8;
    const char **keys = xmalloc(cap * sizeof *keys);
    for (size_t i = 0; i < r->n; i++)
        for (size_t k = 0; k < r->e[i].labels->len; k++) {
            const char *key = r->e[i].labels->keys[k];
            if (find_in(key, core_labels, COUNT(core_labels)) >= 0)
                continue;
            if (n == cap)
                keys = xrealloc(keys, (cap *= 2) * sizeof *keys);
            keys[n++] = key;
        }
    qsort(keys, n, sizeof *keys, cmp_str);
    size_t u = 0;
    for (size_t k = 0; k < n; k++)
        if (u == 0 || strcmp(keys[u - 1], keys[k]) != 0)
            keys[u++] = keys[k];
    *out = keys;
    return u;
}

/* Sets in column order, then the others bytewise. */
static int cmp_set_name(const void *pa, const void *pb) {
    const char *a = *(const char *const *)pa, *b = *(const char *const *)pb;
    int d = rank_of(a, report_col_set, REPORT_NCOLS) - rank_of(b, report_col_set, REPORT_NCOLS);
    return d ? d : strcmp(a, b);
}

/* A set's number as canonical JSON writes a double, then a comma; nothing but the comma when it is absent. */
static void csv_num(struct buf *b, const struct json *set, const char *key) {
    double x;
    if (json_get_num(set, key, &x) == 0) {
        struct json *j = json_num(x);
        csv_value(b, j);
        json_free(j);
    }
    buf_putc(b, ',');
}

/* set, items, accuracy (the headline of the scoring), greedy, option, likelihood, unparsed. */
static void csv_set(struct buf *b, const struct json *sets, const char *name, int scoring) {
    const struct json *s = json_get(sets, name);
    buf_printf(b, "%s,", name);
    csv_value(b, json_get(s, "items"));
    buf_putc(b, ',');
    csv_num(b, s, headline[scoring]);
    csv_num(b, s, "greedy");
    csv_num(b, s, "option");
    csv_num(b, s, "likelihood");
    csv_value(b, json_get(s, "unparsed"));
}

/* One row per set of the entry; an entry without sets still gets one row, its set fields empty. */
static void csv_entry(struct buf *b, const struct entry *e, const char **extra, size_t nextra) {
    const char **names = xmalloc((e->sets->len ? e->sets->len : 1) * sizeof *names);
    for (size_t k = 0; k < e->sets->len; k++)
        names[k] = e->sets->keys[k];
    qsort(names, e->sets->len, sizeof *names, cmp_set_name);
    for (size_t k = 0; k < (e->sets->len ? e->sets->len : 1); k++) {
        buf_printf(b, "%s,%s,%s,%lld,%s,%s,", e->knowledge, e->method, e->setting, (long long)e->round,
                   e->target, scorings[e->scoring]);
        if (e->sets->len)
            csv_set(b, e->sets, names[k], e->scoring);
        else
            buf_puts(b, ",,,,,,");
        for (size_t x = 0; x < nextra; x++) {
            buf_putc(b, ',');
            csv_value(b, json_get(e->labels, extra[x]));
        }
        buf_puts(b, "\n");
    }
    free(names);
}

static char *make_csv(const struct report *r, size_t *n) {
    struct buf b = {0};
    const char **extra;
    size_t nextra = extra_keys(r, &extra);
    buf_puts(&b, "knowledge,method,setting,round,target,scoring,set,items,accuracy,greedy,option,likelihood,"
                 "unparsed");
    for (size_t x = 0; x < nextra; x++)
        buf_printf(&b, ",%s", extra[x]);
    buf_puts(&b, "\n");
    for (size_t i = 0; i < r->n; i++)
        csv_entry(&b, &r->e[i], extra, nextra);
    free(extra);
    *n = b.len;
    return buf_take(&b);
}

/* ---- JSON ---------------------------------------------------------------------------------------------- */

static struct json *str_list(const char *const *s, size_t n) {
    struct json *a = json_arr();
    for (size_t k = 0; k < n; k++)
        json_push(a, json_str(s[k]));
    return a;
}

static struct json *values(const double *v, const struct view *view) {
    struct json *a = json_arr();
    for (size_t k = 0; k < view->s->ncols; k++) {
        double x = v[view->s->cols[k]];
        json_push(a, x < 0 ? json_null() : json_num(x));
    }
    return a;
}

/* A view as JSON, the table's shape: its label columns and value columns, and per row the cells as shown,
 * the run's labels (without `seed`), its members' seeds (empty when they have none), and its accuracies,
 * means over the seeds (null where the set, or a score of it, is absent): `accuracy` as the table shows it
 * (the report's scoring), `spread` (its sample standard deviation; null from fewer than two seeds), `greedy`,
 * `option` and `likelihood`. */
static struct json *view_json(const struct view *v) {
    struct json *o = json_obj(), *rows = json_arr(), *cols = json_arr();
    for (size_t k = 0; k < v->s->ncols; k++)
        json_push(cols, json_str(report_col_set[v->s->cols[k]]));
    for (size_t i = 0; i < v->n; i++) {
        struct json *row = json_obj(), *cells = json_arr();
        for (size_t k = 0; k < v->s->nlabels; k++)
            json_push(cells, json_str(v->rows[i].cell[k]));
        const struct entry *e = v->rows[i].e;
        struct json *labels = json_clone(e->labels), *seeds = json_arr();
        json_del(labels, "seed");
        for (size_t m = 0; m < e->members; m++)
            if (e->first[m].has_seed)
                json_push(seeds, json_int(e->first[m].seed));
        json_set(row, "cells", cells);
        json_set(row, "labels", labels);
        json_set(row, "seeds", seeds);
        json_set(row, "accuracy", values(e->acc, v));
        json_set(row, "spread", values(e->sd, v));
        json_set(row, "greedy", values(e->greedy, v));
        json_set(row, "option", values(e->option, v));
        json_set(row, "likelihood", values(e->likelihood, v));
        json_push(rows, row);
    }
    json_set(o, "title", json_str(v->s->title));
    json_set(o, "label_columns", str_list(v->s->labels, v->s->nlabels));
    json_set(o, "columns", cols);
    json_set(o, "rows", rows);
    return o;
}

static char *make_json(const char *title, const struct report *r, const struct view v[NVIEWS], size_t *n) {
    struct json *doc = json_obj(), *entries = json_arr(), *views = json_obj();
    for (size_t i = 0; i < r->n; i++) {
        struct json *e = json_obj();
        json_set(e, "labels", json_clone(r->e[i].labels));
        json_set(e, "sets", json_clone(r->e[i].sets));
        json_push(entries, e);
    }
    for (int k = 0; k < NVIEWS; k++)
        json_set(views, v[k].s->key, view_json(&v[k]));
    json_set(doc, "title", json_str(title));
    json_set(doc, "scoring", json_str(scorings[r->scoring]));
    json_set(doc, "entries", entries);
    json_set(doc, "views", views);
    char *text = json_write(doc, JSON_CANONICAL, n);
    json_free(doc);
    return text;
}

/* ---- the chart ----------------------------------------------------------------------------------------- */

static void curve_fill(const struct report *r, const char *knowledge, const char *method, int nrounds,
                       struct report_curve *cv) {
    size_t n = ((size_t)nrounds + 1) * REPORT_NCOLS;
    cv->method = method;
    cv->y = xmalloc(n * sizeof *cv->y);
    cv->sd = xmalloc(n * sizeof *cv->sd);
    for (size_t k = 0; k < n; k++)
        cv->y[k] = cv->sd[k] = -1;
    const struct entry *b = before(r, knowledge, NULL), *s = single_run(r, knowledge, method, "proj+llm");
    if (b)
        memcpy(cv->y, b->acc, sizeof b->acc), memcpy(cv->sd, b->sd, sizeof b->sd);
    for (int k = 0; k < REPORT_NCOLS; k++)
        cv->single[k] = s ? s->acc[k] : -1;
    for (size_t i = 0; i < r->nrun; i++) {
        const struct entry *e = &r->run[i];
        if (is_curve(e, knowledge) && is(e->method, method)) {
            memcpy(cv->y + (size_t)e->round * REPORT_NCOLS, e->acc, sizeof e->acc);
            memcpy(cv->sd + (size_t)e->round * REPORT_NCOLS, e->sd, sizeof e->sd);
        }
    }
}

/* One curve per method with sequential runs; entries are sorted, so methods arrive in table order. */
static void chart_row(const struct report *r, const char *knowledge, int nrounds, struct report_row *row) {
    row->knowledge = knowledge;
    row->ncurves = 0;
    row->curves = NULL;
    const char *last = NULL;
    for (size_t i = 0; i < r->nrun; i++) {
        if (!is_curve(&r->run[i], knowledge) || (last && is(last, r->run[i].method)))
            continue;
        last = r->run[i].method;
        row->curves = xrealloc(row->curves, (row->ncurves + 1) * sizeof *row->curves);
        curve_fill(r, knowledge, last, nrounds, &row->curves[row->ncurves++]);
    }
}

static void chart_make(const struct report *r, const char *title, struct report_chart *c) {
    memset(c, 0, sizeof *c);
    c->title = title;
    c->scoring = headline[r->scoring];
    c->seeds = r->seeds;
    c->rows = xcalloc(REPORT_MAX_ROWS, sizeof *c->rows);
    for (size_t i = 0; i < r->nrun; i++)
        for (size_t k = 0; k < COUNT(knowledges); k++)
            if (is_curve(&r->run[i], knowledges[k]) && r->run[i].round > c->nrounds)
                c->nrounds = (int)r->run[i].round;
    for (size_t k = 0; k < COUNT(knowledges); k++) {
        chart_row(r, knowledges[k], c->nrounds, &c->rows[c->nrows]);
        if (c->rows[c->nrows].ncurves)
            c->nrows++;
    }
}

static void chart_free(struct report_chart *c) {
    for (size_t k = 0; k < c->nrows; k++) {
        for (size_t j = 0; j < c->rows[k].ncurves; j++) {
            free(c->rows[k].curves[j].y);
            free(c->rows[k].curves[j].sd);
        }
        free(c->rows[k].curves);
    }
    free(c->rows);
}

/* ---- the kind ------------------------------------------------------------------------------------------ */

/* Takes text; *n is read only here, after the call's arguments (which write it) are evaluated. */
static int output_text(struct stage_ctx *c, const char *name, char *text, const size_t *n, const char *type) {
    int rc = text ? stage_output(c, name, text, *n, type) : err_prefix("report: %s", name);
    free(text);
    return rc;
}

static int write_chart(struct stage_ctx *c, const struct report *r, const char *title) {
    struct report_chart chart;
    chart_make(r, title, &chart);
    size_t n;
    void *png = NULL;
    int rc = output_text(c, "svg", report_svg(&chart, &n), &n, "svg");
    if (rc == 0 && (rc = report_png(&chart, &png, &n)) == 0)
        rc = stage_output(c, "png", png, n, "png");
    free(png);
    chart_free(&chart);
    return rc;
}

static int report_run(struct stage_ctx *c) {
    const char *title = stage_str(c, "title");
    struct report r = {0};
    struct view v[NVIEWS];
    if (read_all(c, &r) != 0) {
        report_free(&r);
        return -1;
    }
    views_make(&r, v);
    size_t n = 0;
    int rc = output_text(c, "markdown", make_markdown(title, &r, v, &n), &n, "text");
    if (rc == 0)
        rc = output_text(c, "csv", make_csv(&r, &n), &n, "text");
    if (rc == 0)
        rc = output_text(c, "json", make_json(title, &r, v, &n), &n, "json");
    if (rc == 0)
        rc = write_chart(c, &r, title);
    if (rc == 0)
        stage_metric(c, "entries", (double)r.n);
    views_free(v);
    report_free(&r);
    return rc;
}

static const struct param_spec report_params[] = {
    {"metrics", PARAM_REFS, NULL, "the metrics objects of evaluate stages"},
    {"title", PARAM_STR, "\"PULSE results\"", "the report's title"},
};
static const char *const report_outputs[] = {"markdown", "csv", "json", "svg", "png"};

const struct stage_kind kind_report = {
    .schema = {"report", 3, report_params, 2, report_outputs, 5},
    .summary = "tables (Markdown, CSV, JSON) and sustainability plots (SVG, PNG) of evaluate metrics",
    .run = report_run,
};

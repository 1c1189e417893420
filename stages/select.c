/* select: who is forgotten and who is retained. Scores a model on the ten questions of every person of a
 * group, ranks them (combined accuracy by the `scoring` chosen, greedy letter or likelihood; ties by id),
 * keeps the best `top`, and splits them by seed into `forget` people (cut into `rounds` ordered groups for
 * sequential unlearning) and the retained rest (docs/protocol.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/quiz.h"
#include "stages/trainer.h"
#include "util/buf.h"
#include "util/err.h"

struct person_score {
    size_t person; /* index in w->people */
    const char *id;
    struct quiz_tally mm, text;
    double acc; /* combined accuracy by the stage's scoring */
    const char *role;
};

struct select_ctx {
    const struct world *w;
    const char *group;
    long *slot; /* per person: its index among the scored people, or -1 */
    enum quiz_scoring scoring;
};

static int keep_item(void *arg, size_t i) {
    struct select_ctx *s = arg;
    const struct ds_item *it = &s->w->items.v[i];
    if (strcmp(it->set, "person") != 0 || !it->person)
        return 0;
    long p = ds_find_person(&s->w->people, it->person);
    return p >= 0 && s->slot[p] >= 0;
}

static int by_accuracy(const void *a, const void *b) {
    const struct person_score *x = a, *y = b;
    if (x->acc != y->acc)
        return x->acc < y->acc ? 1 : -1;
    return strcmp(x->id, y->id);
}

/* Scores the group's people; returns how many there are, or -1. */
static long score_people(struct stage_ctx *c, struct model *md, const struct world *w, struct select_ctx *s,
                         struct person_score **out) {
    long n = 0;
    for (size_t p = 0; p < w->people.n; p++)
        s->slot[p] = strcmp(w->people.v[p].group, s->group) == 0 ? n++ : -1;
    struct person_score *ps = calloc(n ? (size_t)n : 1, sizeof *ps);
    for (size_t p = 0; p < w->people.n; p++)
        if (s->slot[p] >= 0) {
            ps[s->slot[p]].person = p;
            ps[s->slot[p]].id = w->people.v[p].id;
        }
    struct quiz q;
    if (quiz_run(c, md, w, s->scoring, keep_item, s, &q) != 0) {
        quiz_free(&q);
        free(ps);
        return -1;
    }
    for (size_t i = 0; i < q.cp.n; i++) {
        const struct ds_item *it = &w->items.v[q.cp.e[i].src];
        struct person_score *x = &ps[s->slot[ds_find_person(&w->people, it->person)]];
        quiz_count(strcmp(it->modality, "image") == 0 ? &x->mm : &x->text, &q.res[i], it->answer);
    }
    for (long i = 0; i < n; i++) {
        size_t items = ps[i].mm.items + ps[i].text.items;
        size_t right = quiz_right(&ps[i].mm, s->scoring) + quiz_right(&ps[i].text, s->scoring);
        ps[i].acc = items ? (double)right / (double)items : 0;
        ps[i].role = "-";
    }
    quiz_free(&q);
    *out = ps;
    return n;
}

static struct json *id_list(const struct world *w, const struct person_score *ps, const size_t *order,
                            size_t from, size_t to) {
    struct json *a = json_arr();
    for (size_t i = from; i < to; i++)
        json_push(a, json_str(w->people.v[ps[order[i]].person].id));
    return a;
}

/* The split: the top people in a seeded order, the first `forget` forgotten, in `rounds` groups. */
static struct json *split_json(struct stage_ctx *c, const struct world *w, struct person_score *ps,
                               size_t top) {
    size_t forget = (size_t)stage_int(c, "forget"), rounds = (size_t)stage_int(c, "rounds"),
           *order = malloc((top ? top : 1) * sizeof *order);
    trainer_shuffle(order, top, (uint64_t)stage_int(c, "seed"), 0);
    for (size_t i = 0; i < top; i++)
        ps[order[i]].role = i < forget ? "forget" : "retain";
    for (size_t i = forget + (size_t)stage_int(c, "retain"); stage_int(c, "retain") && i < top; i++)
        ps[order[i]].role = "-";
    struct json *o = json_obj(), *groups = json_arr();
    json_set(o, "forget", id_list(w, ps, order, 0, forget));
    size_t retain = (size_t)stage_int(c, "retain");
    if (retain == 0 || forget + retain > top)
        retain = top - forget;
    json_set(o, "retain", id_list(w, ps, order, forget, forget + retain));
    for (size_t g = 0; rounds > 1 && g < rounds; g++)
        json_push(groups, id_list(w, ps, order, g * forget / rounds, (g + 1) * forget / rounds));
    json_set(o, "groups", groups);
    free(order);
    return o;
}

/* Right answers by the stage's scoring. */
static void scores_csv(struct buf *b, const struct world *w, const struct person_score *ps, size_t n,
                       enum quiz_scoring s) {
    buf_puts(b, "rank,id,name,mm_right,mm_items,text_right,text_items,accuracy,role\n");
    for (size_t i = 0; i < n; i++) {
        const struct person_score *x = &ps[i];
        const struct ds_person *p = &w->people.v[x->person];
        buf_printf(b, "%zu,%s,%s,%zu,%zu,%zu,%zu,%.4f,%s\n", i + 1, p->id, p->name, quiz_right(&x->mm, s),
                   x->mm.items, quiz_right(&x->text, s), x->text.items, x->acc, x->role);
    }
}

static int check_params(struct stage_ctx *c, long n) {
    int64_t top = stage_int(c, "top"), forget = stage_int(c, "forget"), rounds = stage_int(c, "rounds");
    if (top == 0)
        top = n;
    if (top < 1 || top > n)
        return err_set("%s: top must be between 1 and the %ld people of group '%s' (0: all), got %lld",
                       c->name, n, stage_str(c, "group"), (long long)stage_int(c, "top"));
    if (forget < 1 || forget > top)
        return err_set("%s: forget must be between 1 and top (%lld), got %lld", c->name, (long long)top,
                       (long long)forget);
    if (stage_int(c, "retain") < 0 || forget + stage_int(c, "retain") > top)
        return err_set("%s: forget + retain must not exceed top (%lld)", c->name, (long long)top);
    if (rounds < 1 || forget % rounds != 0)
        return err_set("%s: rounds (%lld) must divide forget (%lld)", c->name, (long long)rounds,
                       (long long)forget);
    return (int)top;
}

static int select_outputs(struct stage_ctx *c, const struct world *w, struct person_score *ps, long n,
                          size_t top, enum quiz_scoring scoring) {
    struct json *split = split_json(c, w, ps, top);
    char *text = json_write(split, JSON_CANONICAL, NULL);
    int rc = stage_output(c, "split", text, strlen(text), "json");
    free(text);
    json_free(split);
    struct buf csv = {0};
    scores_csv(&csv, w, ps, (size_t)n, scoring);
    if (rc == 0)
        rc = stage_output(c, "scores", csv.data, csv.len, "csv");
    buf_free(&csv);
    double sel = 0;
    for (size_t i = 0; i < top; i++)
        sel += ps[i].acc;
    stage_metric(c, "selected_accuracy", top ? sel / (double)top : 0);
    stage_metric(c, "people", (double)n);
    return rc;
}

static int select_run(struct stage_ctx *c) {
    struct model md;
    struct world w;
    struct person_score *ps = NULL;
    enum quiz_scoring scoring = QUIZ_LETTER;
    memset(&md, 0, sizeof md);
    memset(&w, 0, sizeof w);
    int rc = quiz_scoring(c, &scoring); /* before reading the model and the world: a typo fails at once */
    if (rc == 0)
        rc = model_read(c, &md);
    if (rc == 0)
        rc = world_read(c, WORLD_PEOPLE | WORLD_ITEMS | WORLD_IMAGES, &w);
    struct select_ctx s = {&w, stage_str(c, "group"), calloc(w.people.n + 1, sizeof(long)), scoring};
    long members = 0;
    for (size_t p = 0; p < w.people.n; p++)
        members += strcmp(w.people.v[p].group, s.group) == 0;
    int top = rc == 0 ? check_params(c, members) : -1; /* before the scoring pass, which is the long part */
    long n = top < 0 ? -1 : score_people(c, &md, &w, &s, &ps);
    rc = n < 0 ? -1 : 0;
    if (rc == 0) {
        qsort(ps, (size_t)n, sizeof *ps, by_accuracy);
        rc = select_outputs(c, &w, ps, n, (size_t)top, scoring);
    }
    free(ps);
    free(s.slot);
    world_free(&w);
    model_free(&md);
    return rc;
}

static const struct param_spec select_params[] = {
    MODEL_PARAMS,
    PRECISION_PARAM,
    {"people", PARAM_REF, NULL, "the world's people"},
    {"items", PARAM_REF, NULL, "the world's questions"},
    {"images", PARAM_REF, NULL, "the world's images"},
    {"group", PARAM_STR, "\"real\"", "whose knowledge: real (pretrained) or fictitious (fine-tuned)"},
    {"top", PARAM_INT, "45", "the best-known people kept (0: the whole group)"},
    {"forget", PARAM_INT, "20", "people to forget, drawn from the kept ones"},
    {"retain", PARAM_INT, "0", "people retained, drawn after the forget set (0: all the others kept)"},
    {"rounds", PARAM_INT, "1", "sequential rounds the forget set is cut into"},
    {"seed", PARAM_INT, "1", "the draw of the forget set and its order"},
    QUIZ_SCORING_PARAM,
};
static const char *const select_outputs_names[] = {"split", "scores"};

const struct stage_kind kind_select = {
    .schema = {"select", 2, select_params, sizeof select_params / sizeof select_params[0],
               select_outputs_names, 2},
    .summary = "rank people by what a model knows and split them into forget and retain sets",
    .run = select_run,
    .memory = quiz_memory,
};

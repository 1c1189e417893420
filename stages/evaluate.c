/* evaluate: a model's accuracy on the protocol's question sets: the forget and the retain people, each split
 * into multimodal (with the portrait) and text-only questions, and the general suite; the letter scores of
 * engine/mcq.h, and its likelihood score when `scoring` is likelihood. The metrics say which scoring is the
 * headline (`scoring`), and the labels (knowledge, method, setting, round, target) travel with the numbers so
 * that `report` can place them (docs/stages.md). */
#include <stdlib.h>
#include <string.h>

#include "stages/quiz.h"
#include "stages/split.h"
#include "util/err.h"

enum { FORGET_MM, FORGET_TEXT, RETAIN_MM, RETAIN_TEXT, GENERAL, NSETS };
static const char *const set_names[NSETS] = {"forget_mm", "forget_text", "retain_mm", "retain_text",
                                             "general"};

struct eval_ctx {
    const struct world *w;
    char *role;  /* per person: 'f' forget, 'r' retain, 0 neither */
    int *set_of; /* per item: its set, or -1 */
};

static int keep_item(void *arg, size_t i) {
    return ((struct eval_ctx *)arg)->set_of[i] >= 0;
}

static void assign_sets(struct eval_ctx *e, int general) {
    for (size_t i = 0; i < e->w->items.n; i++) {
        const struct ds_item *it = &e->w->items.v[i];
        int mm = strcmp(it->modality, "image") == 0;
        long p = it->person ? ds_find_person(&e->w->people, it->person) : -1;
        e->set_of[i] = -1;
        if (strcmp(it->set, "general") == 0 && strcmp(it->split, "eval") == 0 && general)
            e->set_of[i] = GENERAL;
        else if (p >= 0 && e->role[p] == 'f')
            e->set_of[i] = mm ? FORGET_MM : FORGET_TEXT;
        else if (p >= 0 && e->role[p] == 'r')
            e->set_of[i] = mm ? RETAIN_MM : RETAIN_TEXT;
    }
}

static struct json *labels_json(struct stage_ctx *c) {
    struct json *l = json_obj();
    json_set(l, "knowledge", json_str(stage_str(c, "knowledge")));
    json_set(l, "method", json_str(stage_str(c, "method")));
    json_set(l, "setting", json_str(stage_str(c, "setting")));
    json_set(l, "round", json_int(stage_int(c, "round")));
    json_set(l, "target", json_str(stage_str(c, "target")));
    return l;
}

static int eval_outputs(struct stage_ctx *c, enum quiz_scoring scoring, const struct quiz_tally *t) {
    struct json *o = json_obj(), *sets = json_obj();
    json_set(o, "labels", labels_json(c));
    json_set(o, "scoring", json_str(scoring == QUIZ_LIKELIHOOD ? "likelihood" : "letter"));
    for (int s = 0; s < NSETS; s++) {
        if (t[s].items == 0)
            continue;
        struct json *x = json_obj();
        double n = (double)t[s].items;
        json_set(x, "items", json_int((int64_t)t[s].items));
        json_set(x, "greedy", json_num((double)t[s].greedy / n));
        json_set(x, "option", json_num((double)t[s].option / n));
        if (scoring == QUIZ_LIKELIHOOD)
            json_set(x, "likelihood", json_num((double)t[s].likelihood / n));
        json_set(x, "unparsed", json_int((int64_t)t[s].unparsed));
        json_set(sets, set_names[s], x);
        stage_metric(c, set_names[s], (double)quiz_right(&t[s], scoring) / n);
    }
    json_set(o, "sets", sets);
    char *text = json_write(o, JSON_CANONICAL, NULL);
    int rc = stage_output(c, "metrics", text, strlen(text), "json");
    free(text);
    json_free(o);
    return rc;
}

static int evaluate_run(struct stage_ctx *c) {
    struct model md;
    struct world w;
    struct quiz q;
    enum quiz_scoring scoring = QUIZ_LETTER;
    memset(&q, 0, sizeof q);
    memset(&w, 0, sizeof w);
    memset(&md, 0, sizeof md);
    int rc = quiz_scoring(c, &scoring); /* before reading the model and the world: a typo fails at once */
    if (rc == 0)
        rc = model_read(c, &md);
    if (rc == 0)
        rc = world_read(c, WORLD_PEOPLE | WORLD_ITEMS | WORLD_IMAGES, &w);
    struct eval_ctx e = {&w, calloc(w.people.n + 1, 1), calloc(w.items.n + 1, sizeof(int))};
    if (rc == 0)
        rc = split_roles(c, &w.people, "rounds", stage_int(c, "rounds") > 0 ? 1 : 0, stage_int(c, "rounds"),
                         e.role);
    if (rc == 0) {
        assign_sets(&e, stage_bool(c, "general"));
        rc = quiz_run(c, &md, &w, scoring, keep_item, &e, &q);
    }
    struct quiz_tally t[NSETS];
    memset(t, 0, sizeof t);
    for (size_t i = 0; rc == 0 && i < q.cp.n; i++) {
        const struct ds_item *it = &w.items.v[q.cp.e[i].src];
        quiz_count(&t[e.set_of[q.cp.e[i].src]], &q.res[i], it->answer);
    }
    if (rc == 0)
        rc = eval_outputs(c, scoring, t);
    quiz_free(&q);
    free(e.role);
    free(e.set_of);
    world_free(&w);
    model_free(&md);
    return rc;
}

static const struct param_spec evaluate_params[] = {
    MODEL_PARAMS,
    PRECISION_PARAM,
    {"people", PARAM_REF, NULL, "the world's people"},
    {"items", PARAM_REF, NULL, "the world's questions"},
    {"images", PARAM_REF, NULL, "the world's images"},
    {"split", PARAM_REF, NULL, "who is forgotten and retained (a select's `split`)"},
    {"rounds", PARAM_INT, "0",
     "the forget set: the split's first `rounds` groups (0: its whole forget list)"},
    {"general", PARAM_BOOL, "true", "score the general suite too"},
    QUIZ_SCORING_PARAM,
    {"knowledge", PARAM_STR, "\"\"", "label: pretrained or finetuned"},
    {"method", PARAM_STR, "\"none\"", "label: the unlearning method (none: before unlearning)"},
    {"setting", PARAM_STR, "\"single\"", "label: single or sequential"},
    {"round", PARAM_INT, "0", "label: the round just finished"},
    {"target", PARAM_STR, "\"proj+llm\"", "label: the update target"},
};
static const char *const evaluate_outputs[] = {"metrics"};

const struct stage_kind kind_evaluate = {
    .schema = {"evaluate", 2, evaluate_params, sizeof evaluate_params / sizeof evaluate_params[0],
               evaluate_outputs, 1},
    .summary = "accuracy on the forget, retain and general question sets",
    .run = evaluate_run,
};

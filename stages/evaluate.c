/* evaluate: a model's accuracy on the protocol's question sets: the forget and the retain people, each split
 * into multimodal (with the portrait) and text-only questions, and the general suite; the letter scores of
 * engine/mcq.h, and its likelihood score when `scoring` is likelihood. The metrics say which scoring is the
 * headline (`scoring`), and the labels (knowledge, method, setting, round, target; seed in a sweep) travel
 * with the numbers so that `report` can place them (docs/stages.md). `answers` gives every item's answers,
 * and with `generate` its greedy generation (engine/generate.h) too. */
#include <stdlib.h>
#include <string.h>

#include "engine/generate.h"
#include "engine/llava_plan.h"
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
    if (stage_int(c, "seed") != 0)
        json_set(l, "seed", json_int(stage_int(c, "seed")));
    return l;
}

/* o as the output `name` (canonical JSON); o is freed. */
static int json_output(struct stage_ctx *c, const char *name, struct json *o) {
    char *text = json_write(o, JSON_CANONICAL, NULL);
    int rc = stage_output(c, name, text, strlen(text), "json");
    free(text);
    json_free(o);
    return rc;
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
    return json_output(c, "metrics", o);
}

/* A score's letter, or null (an unparsed greedy answer, a likelihood not scored). */
static struct json *letter(int k) {
    char s[2] = {(char)('A' + k), 0};
    return k >= 0 && k < 4 ? json_str(s) : json_null();
}

/* Every question's greedy generation of up to max_new tokens (engine/generate.h), stopped by the tokenizer's
 * </s>: ids [questions * max_new], n [questions] (the stop token counted when met). */
struct gens {
    size_t max_new;
    int32_t *ids;
    size_t *n;
};

static int generate_all(struct stage_ctx *c, struct model *md, const struct quiz *q, struct gens *g) {
    struct llava_gen opt = {.max_new = g->max_new, .eos = md->tok->eos};
    g->ids = malloc(q->cp.n * g->max_new * sizeof *g->ids + 1);
    g->n = calloc(q->cp.n + 1, sizeof *g->n);
    if (!g->ids || !g->n)
        return err_set("%s: out of memory for %zu generations", c->name, q->cp.n);
    stage_progress(c, "generating up to %zu tokens for %zu questions", g->max_new, q->cp.n);
    if (llava_generate_corpus(&md->m, c->ops, &q->cp, &opt, g->ids, g->n) != 0)
        return err_prefix("%s", c->name);
    return 0;
}

/* Question i's `generated`: the text as a grader reads it (decoded without special tokens, so without the
 * stop token), and `generated_ids`: the new ids themselves, the stop token included when it came. */
static void generated_fields(struct json *x, const struct tokenizer *t, const struct gens *g, size_t i) {
    const int32_t *ids = g->ids + i * g->max_new;
    struct json *arr = json_arr();
    for (size_t k = 0; k < g->n[i]; k++)
        json_push(arr, json_int(ids[k]));
    char *text = tokenizer_decode(t, ids, g->n[i], 1);
    json_set(x, "generated", json_str(text));
    json_set(x, "generated_ids", arr);
    free(text);
}

/* `answers`: per item, in the corpus's order, its set, the right letter and each score's letter, plus the
 * generation when there is one (g NULL: none). */
static int answers_output(struct stage_ctx *c, const struct eval_ctx *e, const struct quiz *q,
                          enum quiz_scoring scoring, const struct tokenizer *t, const struct gens *g) {
    struct json *o = json_obj(), *items = json_arr();
    for (size_t i = 0; i < q->cp.n; i++) {
        const struct ds_item *it = &e->w->items.v[q->cp.e[i].src];
        struct json *x = json_obj();
        json_set(x, "id", json_str(it->id));
        json_set(x, "set", json_str(set_names[e->set_of[q->cp.e[i].src]]));
        json_set(x, "answer", letter(it->answer));
        json_set(x, "greedy", letter(q->res[i].greedy));
        json_set(x, "option", letter(q->res[i].option));
        if (scoring == QUIZ_LIKELIHOOD)
            json_set(x, "likelihood", letter(q->res[i].likelihood));
        if (g)
            generated_fields(x, t, g, i);
        json_push(items, x);
    }
    json_set(o, "items", items);
    return json_output(c, "answers", o);
}

/* The `generate` parameter: 0 (off) to LLAVA_GEN_MAX tokens. */
static int generate_param(struct stage_ctx *c, size_t *max_new) {
    int64_t v = stage_int(c, "generate");
    if (v < 0 || v > LLAVA_GEN_MAX)
        return err_set("%s: generate must be 0 to %d, got %lld", c->name, LLAVA_GEN_MAX, (long long)v);
    *max_new = (size_t)v;
    return 0;
}

/* The per-item output, with the generations when asked for (max_new > 0). */
static int answers(struct stage_ctx *c, struct model *md, const struct eval_ctx *e, const struct quiz *q,
                   enum quiz_scoring scoring, size_t max_new) {
    struct gens g = {.max_new = max_new};
    int rc = max_new && q->cp.n ? generate_all(c, md, q, &g) : 0;
    if (rc == 0)
        rc = answers_output(c, e, q, scoring, md->tok, max_new ? &g : NULL);
    free(g.ids);
    free(g.n);
    return rc;
}

static int evaluate_run(struct stage_ctx *c) {
    struct model md;
    struct world w;
    struct quiz q;
    enum quiz_scoring scoring = QUIZ_LETTER;
    size_t max_new = 0;
    memset(&q, 0, sizeof q);
    memset(&w, 0, sizeof w);
    memset(&md, 0, sizeof md);
    int rc = quiz_scoring(c, &scoring); /* before reading the model and the world: a typo fails at once */
    if (rc == 0)
        rc = generate_param(c, &max_new);
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
    if (rc == 0)
        rc = answers(c, &md, &e, &q, scoring, max_new);
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
    {"generate", PARAM_INT, "0",
     "also generate up to this many tokens greedily per item, written as `generated` in `answers` (0: off)"},
    {"knowledge", PARAM_STR, "\"\"", "label: pretrained or finetuned"},
    {"method", PARAM_STR, "\"none\"", "label: the unlearning method (none: before unlearning)"},
    {"setting", PARAM_STR, "\"single\"", "label: single or sequential"},
    {"round", PARAM_INT, "0", "label: the round just finished"},
    {"target", PARAM_STR, "\"proj+llm\"", "label: the update target"},
    {"seed", PARAM_INT, "0", "label: the seed of the sweep's member this model belongs to (0: not a sweep)"},
};
static const char *const evaluate_outputs[] = {"metrics", "answers"};

/* The scoring's plan (quiz_memory), and generation's K/V cache when `generate` asks for it. */
static int evaluate_memory(struct stage_ctx *c, const struct llava_config *cfg, struct llava_plan_opts *o,
                           struct lora *l) {
    return quiz_memory(c, cfg, o, l) != 0 ? -1 : generate_param(c, &o->gen_tokens);
}

const struct stage_kind kind_evaluate = {
    .schema = {"evaluate", 4, evaluate_params, sizeof evaluate_params / sizeof evaluate_params[0],
               evaluate_outputs, 2},
    .summary = "accuracy on the forget, retain and general question sets",
    .run = evaluate_run,
    .memory = evaluate_memory,
};

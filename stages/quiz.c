/* quiz: scoring a chosen set of questions on a model (stages/quiz.h). */
#include "stages/quiz.h"

#include <stdlib.h>
#include <string.h>

#include "engine/ops.h"
#include "util/err.h"

int quiz_scoring(struct stage_ctx *c, enum quiz_scoring *s) {
    const char *v = stage_str(c, "scoring");
    if (strcmp(v, "letter") == 0)
        *s = QUIZ_LETTER;
    else if (strcmp(v, "likelihood") == 0)
        *s = QUIZ_LIKELIHOOD;
    else
        return err_set("%s: scoring must be letter or likelihood, got '%.64s'", c->name, v);
    return 0;
}

/* The options' sequences of the same questions, their tower features computed once per image (a question's
 * four options share its image). */
static int quiz_likelihood(struct stage_ctx *c, struct model *md, struct quiz *q) {
    stage_progress(c, "scoring %zu questions by likelihood (%zu sequences)", q->cloze.nitems, q->cloze.cp.n);
    if (corpus_features(&q->cloze.cp, &md->m, c->ops) != 0 ||
        mcq_likelihood(&md->m, c->ops, &q->cloze, NULL, q->res) != 0)
        return err_prefix("%s", c->name);
    return 0;
}

int quiz_run(struct stage_ctx *c, struct model *md, const struct world *w, enum quiz_scoring scoring,
             int (*keep)(void *arg, size_t i), void *arg, struct quiz *q) {
    memset(q, 0, sizeof *q);
    if (corpus_from_items(&q->cp, &w->items, w->images, md->tok, &md->cfg, keep, arg) != 0)
        return err_prefix("%s", c->name);
    if (q->cp.n == 0)
        return 0;
    size_t T = q->cp.maxlen;
    if (scoring == QUIZ_LIKELIHOOD) {
        if (mcq_cloze_build(&q->cloze, &w->items, w->images, md->tok, &md->cfg, keep, arg) != 0)
            return err_prefix("%s", c->name);
        if (q->cloze.nitems != q->cp.n) /* both take the items keep() takes, in order */
            return err_set("%s: %zu questions but %zu by likelihood", c->name, q->cp.n, q->cloze.nitems);
        T = q->cloze.cp.maxlen > T ? q->cloze.cp.maxlen : T;
    }
    if (model_build(c, md, QUIZ_BATCH, T) != 0)
        return -1;
    q->res = calloc(q->cp.n, sizeof *q->res);
    stage_progress(c, "scoring %zu questions", q->cp.n);
    if (mcq_score(&md->m, c->ops, &q->cp, md->tok, q->res) != 0)
        return err_prefix("%s", c->name);
    return scoring == QUIZ_LIKELIHOOD ? quiz_likelihood(c, md, q) : 0;
}

void quiz_free(struct quiz *q) {
    corpus_free(&q->cp);
    mcq_cloze_free(&q->cloze);
    free(q->res);
    memset(q, 0, sizeof *q);
}

void quiz_count(struct quiz_tally *t, const struct mcq_result *r, int answer) {
    t->items++;
    t->greedy += r->greedy == answer;
    t->option += r->option == answer;
    t->likelihood += r->likelihood == answer;
    t->unparsed += r->greedy < 0;
}

size_t quiz_right(const struct quiz_tally *t, enum quiz_scoring s) {
    return s == QUIZ_LIKELIHOOD ? t->likelihood : t->greedy;
}

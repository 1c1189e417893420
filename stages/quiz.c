/* quiz: scoring a chosen set of questions on a model (stages/quiz.h). */
#include "stages/quiz.h"

#include <stdlib.h>
#include <string.h>

#include "engine/ops.h"
#include "util/err.h"

int quiz_run(struct stage_ctx *c, struct model *md, const struct world *w, int (*keep)(void *arg, size_t i),
             void *arg, struct quiz *q) {
    memset(q, 0, sizeof *q);
    if (corpus_from_items(&q->cp, &w->items, w->images, md->tok, &md->cfg, keep, arg) != 0)
        return err_prefix("%s", c->name);
    if (q->cp.n == 0)
        return 0;
    if (model_build(c, md, QUIZ_BATCH, q->cp.maxlen) != 0)
        return -1;
    q->res = calloc(q->cp.n, sizeof *q->res);
    stage_progress(c, "scoring %zu questions", q->cp.n);
    if (mcq_score(&md->m, c->ops, &q->cp, md->tok, q->res) != 0)
        return err_prefix("%s", c->name);
    return 0;
}

void quiz_free(struct quiz *q) {
    corpus_free(&q->cp);
    free(q->res);
    memset(q, 0, sizeof *q);
}

void quiz_count(struct quiz_tally *t, const struct mcq_result *r, int answer) {
    t->items++;
    t->greedy += r->greedy == answer;
    t->option += r->option == answer;
    t->unparsed += r->greedy < 0;
}

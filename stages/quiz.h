/* quiz: a model answering a chosen set of a world's multiple-choice questions, the step `select` and
 * `evaluate` share: the questions as a corpus, the model built to fit them, every question scored both ways
 * (engine/mcq.h). */
#ifndef PULSE_STAGES_QUIZ_H
#define PULSE_STAGES_QUIZ_H

#include "engine/corpus.h"
#include "engine/mcq.h"
#include "stages/model.h"
#include "stages/world.h"

#define QUIZ_BATCH 16 /* questions per forward */

struct quiz {
    struct corpus cp;       /* the questions taken; cp.e[i].src is the item's index in w->items */
    struct mcq_result *res; /* [cp.n] */
};

/* Scores the items keep() takes on the model md (model_read done; quiz builds it). */
int quiz_run(struct stage_ctx *c, struct model *md, const struct world *w, int (*keep)(void *arg, size_t i),
             void *arg, struct quiz *q);
void quiz_free(struct quiz *q);

/* Tallies for a set of questions: right by each score, unparsed greedy answers. */
struct quiz_tally {
    size_t items, greedy, option, unparsed;
};
void quiz_count(struct quiz_tally *t, const struct mcq_result *r, int answer);

#endif

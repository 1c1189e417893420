/* quiz: a model answering a chosen set of a world's multiple-choice questions, the step `select` and
 * `evaluate` share: the questions as a corpus, the model built to fit them, every question scored by the
 * greedy and option letters and, when asked, by likelihood (engine/mcq.h). */
#ifndef PULSE_STAGES_QUIZ_H
#define PULSE_STAGES_QUIZ_H

#include "engine/corpus.h"
#include "engine/mcq.h"
#include "stages/model.h"
#include "stages/world.h"

#define QUIZ_BATCH 16 /* sequences per forward: questions, or options when scoring by likelihood */

/* How a stage scores (its `scoring` parameter): MLLMU-Bench's greedy letter, or the options' likelihood. */
enum quiz_scoring { QUIZ_LETTER, QUIZ_LIKELIHOOD };
/* The stage's `scoring` parameter: 0 with *s set, or -1 with one line naming the stage. */
int quiz_scoring(struct stage_ctx *c, enum quiz_scoring *s);
#define QUIZ_SCORING_PARAM                                                                                   \
    {                                                                                                        \
        "scoring", PARAM_STR, "\"letter\"",                                                                  \
            "letter (MLLMU-Bench: the greedy first token must be the right letter) or likelihood (the "      \
            "option whose answer sentence the model finds most likely: lm-evaluation-harness's acc)"         \
    }

struct quiz {
    struct corpus cp;       /* the questions taken; cp.e[i].src is the item's index in w->items */
    struct mcq_result *res; /* [cp.n]; res[i].likelihood is -1 unless scored by likelihood */
    struct mcq_cloze cloze; /* likelihood only: the options of the same questions, in the same order */
};

/* Scores the items keep() takes on the model md (model_read done; quiz builds it): the letters always, the
 * likelihood too when `scoring` says so (the options' sequences from cached tower features). */
int quiz_run(struct stage_ctx *c, struct model *md, const struct world *w, enum quiz_scoring scoring,
             int (*keep)(void *arg, size_t i), void *arg, struct quiz *q);
void quiz_free(struct quiz *q);

/* A scoring stage's memory (stage_kind.memory): batch QUIZ_BATCH, forwards only in the recomputation layout
 * quiz_run chooses, the sequence the longest of every world question's (an upper bound: the stage takes a
 * set of them); without the inputs in the store, T = 0. */
int quiz_memory(struct stage_ctx *c, const struct llava_config *cfg, struct llava_plan_opts *o,
                struct lora *l);

/* Tallies for a set of questions: right by each score, unparsed greedy answers. */
struct quiz_tally {
    size_t items, greedy, option, likelihood, unparsed;
};
void quiz_count(struct quiz_tally *t, const struct mcq_result *r, int answer);
/* The right answers by the scoring a stage uses: greedy for letter, likelihood for likelihood. */
size_t quiz_right(const struct quiz_tally *t, enum quiz_scoring s);

#endif

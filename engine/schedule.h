/* schedule: learning-rate schedules with warm-up, as Hugging Face transformers defines them
 * (get_constant_schedule_with_warmup, get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup with
 * half a cycle), so that a recipe copied from MLLMU-Bench or LLaVA trains with the same learning rates.
 *
 * `step` is the 0-based index of the optimizer step, as HF's LambdaLR sees it: the first step of a run with
 * warm-up uses a learning rate of 0, exactly as there. */
#ifndef PULSE_ENGINE_SCHEDULE_H
#define PULSE_ENGINE_SCHEDULE_H

enum schedule_kind { SCHEDULE_CONSTANT, SCHEDULE_LINEAR, SCHEDULE_COSINE };

/* "constant", "linear" or "cosine"; -1 with err_set otherwise. */
int schedule_parse(const char *name, enum schedule_kind *kind);
/* The learning rate of step `step` of `total`, `warmup` of them warming up linearly from 0 to `base`. */
double schedule_lr(enum schedule_kind kind, double base, long step, long warmup, long total);

#endif

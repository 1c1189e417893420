/* schedule: Hugging Face's warm-up learning-rate schedules, as plain functions of the step. */
#include "engine/schedule.h"

#include <math.h>
#include <string.h>

#include "util/err.h"

int schedule_parse(const char *name, enum schedule_kind *kind) {
    static const char *const names[] = {"constant", "linear", "cosine"};
    for (int k = 0; k < 3; k++)
        if (strcmp(name, names[k]) == 0) {
            *kind = (enum schedule_kind)k;
            return 0;
        }
    return err_set("unknown learning-rate schedule '%s' (constant, linear or cosine)", name);
}

static double max1(long x) {
    return x > 1 ? (double)x : 1.0;
}

double schedule_lr(enum schedule_kind kind, double base, long step, long warmup, long total) {
    if (step < warmup)
        return base * (double)step / max1(warmup);
    double progress = (double)(step - warmup) / max1(total - warmup);
    switch (kind) {
    case SCHEDULE_LINEAR:
        return base * fmax(0.0, (double)(total - step) / max1(total - warmup));
    case SCHEDULE_COSINE:
        return base * fmax(0.0, 0.5 * (1.0 + cos(M_PI * progress)));
    case SCHEDULE_CONSTANT:
        break;
    }
    return base;
}

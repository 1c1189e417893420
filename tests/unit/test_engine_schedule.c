/* test_engine_schedule: the schedules give the learning rates transformers' LambdaLR would, worked out by
 * hand from its formulas for small cases. */
#include <math.h>

#include "check.h"
#include "engine/schedule.h"
#include "util/err.h"

static int near(double a, double b) {
    return fabs(a - b) <= 1e-12 * fmax(1.0, fabs(b));
}

static void check_linear(void) {
    /* warm-up 2 of 10: 0, 0.5, then (10 - s) / 8 down to 0 at step 10. */
    const double want[] = {0, 0.5, 1, 7.0 / 8, 6.0 / 8, 5.0 / 8, 4.0 / 8, 3.0 / 8, 2.0 / 8, 1.0 / 8, 0, 0};
    for (long s = 0; s < 12; s++)
        CHECK(near(schedule_lr(SCHEDULE_LINEAR, 1.0, s, 2, 10), want[s]));
    /* no warm-up: the first step already uses the full rate (MLLMU-Bench's recipe) */
    CHECK(near(schedule_lr(SCHEDULE_LINEAR, 2e-5, 0, 0, 100), 2e-5));
    CHECK(near(schedule_lr(SCHEDULE_LINEAR, 2e-5, 50, 0, 100), 1e-5));
}

static void check_cosine(void) {
    /* warm-up 4 of 12: rises to 1 at step 4, half at step 8, 0 at 12, cos^2 shape between. */
    CHECK(near(schedule_lr(SCHEDULE_COSINE, 1.0, 0, 4, 12), 0.0));
    CHECK(near(schedule_lr(SCHEDULE_COSINE, 1.0, 2, 4, 12), 0.5));
    CHECK(near(schedule_lr(SCHEDULE_COSINE, 1.0, 4, 4, 12), 1.0));
    CHECK(near(schedule_lr(SCHEDULE_COSINE, 1.0, 8, 4, 12), 0.5));
    CHECK(near(schedule_lr(SCHEDULE_COSINE, 1.0, 6, 4, 12), 0.5 * (1 + cos(M_PI / 4))));
    CHECK(fabs(schedule_lr(SCHEDULE_COSINE, 1.0, 12, 4, 12)) < 1e-15);
    /* past the end HF's formula rises again (it only clamps below at 0): the same here */
    CHECK(near(schedule_lr(SCHEDULE_COSINE, 1.0, 13, 4, 12), 0.5 * (1 + cos(M_PI * 9.0 / 8))));
}

static void check_constant_and_names(void) {
    CHECK(near(schedule_lr(SCHEDULE_CONSTANT, 3.0, 1, 3, 10), 1.0));
    CHECK(near(schedule_lr(SCHEDULE_CONSTANT, 3.0, 3, 3, 10), 3.0));
    CHECK(near(schedule_lr(SCHEDULE_CONSTANT, 3.0, 99, 3, 10), 3.0));
    enum schedule_kind k = SCHEDULE_CONSTANT;
    CHECK(schedule_parse("cosine", &k) == 0 && k == SCHEDULE_COSINE);
    CHECK(schedule_parse("linear", &k) == 0 && k == SCHEDULE_LINEAR);
    CHECK(schedule_parse("warmup", &k) == -1);
    CHECK_HAS(err_msg(), "unknown learning-rate schedule 'warmup'");
}

int main(void) {
    check_linear();
    check_cosine();
    check_constant_and_names();
    return check_done("test_engine_schedule");
}

/* prof_ops: a timing wrapper around an operation table (bench_train --profile). */
#ifndef PULSE_BENCH_PROF_OPS_H
#define PULSE_BENCH_PROF_OPS_H

#include "engine/ops.h"

#include <stdio.h>

/* A table that times every call and forwards it to `inner`; resets the counters. One at a time. */
const struct ops *prof_ops(const struct ops *inner);
/* Per operation: wall ms per step, the calling thread's CPU ms per step (all of the work with one thread),
 * calls per step, share of `step_total` seconds (all steps). */
void prof_report(FILE *f, int steps, double step_total);

#endif

/* act16: operation tables that take bf16 storage (engine/mem.h, mem_alloc_bf16). engine/act16.c defines what
 * an operation on bf16 storage computes, for every backend: the inner table's operation on the values
 * widened to fp32, everything it writes rounded back to bf16 once. ops_precision "bf16-act" is this around a
 * backend's bf16 twin. */
#ifndef PULSE_ENGINE_ACT16_H
#define PULSE_ENGINE_ACT16_H

#include "engine/ops.h"

/* The table around `inner` (the same one for the same inner table), with the non-NULL entries of `native`
 * (may be NULL: none) in place of the wrapper's: the backend's own operations that take bf16 storage
 * themselves. NULL with err_set past the few instances a process may have (a backend's twins: two backends,
 * with a test's extra). */
const struct ops *act16_wrap(const struct ops *inner, const struct ops *native);
/* The table act16_wrap wrapped, when `table` is one of its tables; else NULL. */
const struct ops *act16_inner(const struct ops *table);
/* The fp32 scratch the tables hold for widened arguments (mem_alloc'd, grown to the largest operation seen:
 * in mem_peak, outside the memory plans, which count the model's blocks). */
size_t act16_scratch_bytes(void);

#endif

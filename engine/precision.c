/* precision: ops_precision (engine/ops.h), the choice between a backend's fp32 table and its bf16 twin. The
 * twins live beside their tables (engine/cpu/ops.c, engine/cuda/ops.cu); this file only asks each backend
 * whether the table is its own. */
#include "engine/act16.h"
#include "engine/cpu/cpu.h"
#include "engine/ops.h"

#include <string.h>

#include "util/err.h"

#ifdef PULSE_HAVE_CUDA
const struct ops *cuda_ops_bf16(const struct ops *table);        /* engine/cuda/ops.cu */
const struct ops *cuda_ops_bf16_native(const struct ops *table); /* its entries taking bf16 storage */
#endif

/* The entries of a backend's bf16 twin that take bf16 storage themselves (act16_wrap), or NULL. */
static const struct ops *native_of(const struct ops *twin) {
#ifdef PULSE_HAVE_CUDA
    return cuda_ops_bf16_native(twin);
#else
    (void)twin;
    return NULL;
#endif
}

const struct ops *ops_precision(const struct ops *table, const char *precision) {
    int fp32 = precision && strcmp(precision, "fp32") == 0,
        bf16 = precision && strcmp(precision, "bf16") == 0,
        act = precision && strcmp(precision, "bf16-act") == 0;
    if (!fp32 && !bf16 && !act) {
        err_set("precision: unknown '%s' (fp32, bf16 or bf16-act)", precision ? precision : "(null)");
        return NULL;
    }
    if (!table) {
        err_set("precision: no operation table");
        return NULL;
    }
    if (fp32)
        return table;
    const struct ops *in =
        ops_checked_inner(table); /* PULSE_CHECK_OPS: the twin of the wrapped table, checked */
    if (in) {
        const struct ops *twin = ops_precision(in, precision);
        return twin ? ops_checked(twin) : NULL;
    }
    const struct ops *twin = cpu_ops_bf16(table);
#ifdef PULSE_HAVE_CUDA
    if (!twin)
        twin = cuda_ops_bf16(table);
#endif
    if (!twin)
        err_set("precision: table '%s' is not a backend's own (choose the precision before wrapping a table)",
                table->name ? table->name : "?");
    return twin && act ? act16_wrap(twin, native_of(twin)) : twin;
}

int ops_takes_bf16(const struct ops *table) {
    return table && table->bf16_storage;
}

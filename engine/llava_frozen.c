/* llava_frozen: the model's side of ops weights_frozen (engine/ops.h). Before a forward it tells the table
 * which product weights do not train, so a bf16 table rounds each of them once (and on CUDA keeps them in
 * bf16 only); whatever may change a weight (trainable flags, loading, merging an adapter, freeing the model)
 * first makes every table that was told forget the whole parameter block. */
#include "engine/llava.h"

/* Keeps fn among the forget entries to call. One per backend is enough (a backend's tables share its copies),
 * but a wrapper (PULSE_CHECK_OPS, the benchmark's profiler) brings its own; when the list is full, every copy
 * is dropped first, so none is ever left behind. */
static void remember(struct llava *m, void (*fn)(const float *p, size_t n)) {
    for (int k = 0; k < m->nforget; k++)
        if (m->forget[k] == fn)
            return;
    if (m->nforget == LLAVA_FORGET_MAX)
        llava_frozen_forget(m);
    m->forget[m->nforget++] = fn;
}

void llava_frozen_tell(struct llava *m, const struct ops *ops) {
    if (m->frozen_told == ops)
        return;
    remember(m, ops->weights_forget);
    for (size_t i = 0; i < m->nptab; i++) {
        const struct llava_tensor *t = &m->ptab[i];
        if (t->product && !t->trainable)
            ops->weights_frozen(m->params + t->offset, t->n);
    }
    ops->sync(); /* the forward that tells fills its inputs on the host next */
    m->frozen_told = ops;
}

void llava_frozen_forget(struct llava *m) {
    for (int k = 0; k < m->nforget; k++)
        m->forget[k](m->params, m->nparams);
    m->nforget = 0;
    m->frozen_told = NULL;
}

/* llava_io: random initialisation and safetensors output of a LLaVA model (engine/llava_io.h). */
#include "engine/llava_io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"
#include "util/err.h"

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

/* Norm weights start at 1 and biases at 0, as torch's LayerNorm / RMSNorm / Linear(bias) initialise them. */
static float init_value(const char *name, uint64_t key, size_t e, float std) {
    if (strstr(name, "norm") && ends_with(name, ".weight"))
        return 1.0f;
    if (ends_with(name, ".bias"))
        return 0.0f;
    return (float)(std * rng_normal(key, e));
}

/* The table's parameters as st_out rows pointing into tab->params. */
static struct st_out *table_rows(const struct llava *tab, enum st_dtype dtype) {
    struct st_out *outs = calloc(tab->nptab, sizeof *outs);
    for (size_t i = 0; i < tab->nptab; i++) {
        const struct llava_tensor *t = &tab->ptab[i];
        outs[i] = (struct st_out){
            .name = t->name, .data = tab->params + t->offset, .ndim = t->ndim, .dtype = dtype};
        for (int d = 0; d < t->ndim; d++)
            outs[i].shape[d] = (int64_t)t->shape[d];
    }
    return outs;
}

int llava_save(const struct llava *m, void **data, size_t *len) {
    return llava_save_as(m, ST_F32, data, len);
}

int llava_save_as(const struct llava *m, enum st_dtype dtype, void **data, size_t *len) {
    static const char *const meta[] = {"format", "pt"};
    struct st_out *outs = table_rows(m, dtype);
    int rc = st_write(outs, m->nptab, meta, 1, data, len);
    free(outs);
    return rc;
}

int llava_save_prefix(const struct llava *m, const char *prefix, void **data, size_t *len) {
    static const char *const meta[] = {"format", "pt"};
    struct st_out *outs = table_rows(m, ST_F32);
    size_t n = 0;
    for (size_t i = 0; i < m->nptab; i++)
        if (strncmp(outs[i].name, prefix, strlen(prefix)) == 0)
            outs[n++] = outs[i];
    int rc = st_write(outs, n, meta, 1, data, len);
    free(outs);
    return rc;
}

/* The parameters are drawn into a bare size table, written as an in-memory safetensors file and loaded by
 * llava_init: the one loading path checks them like any checkpoint. */
int llava_init_random(struct llava *m, const struct llava_config *cfg, uint64_t seed, float std, size_t B,
                      size_t T) {
    struct llava tab;
    memset(&tab, 0, sizeof tab);
    tab.cfg = *cfg;
    llava_param_table(&tab);
    for (size_t i = 0; i < tab.nptab; i++) {
        const struct llava_tensor *t = &tab.ptab[i];
        uint64_t key = rng_key(seed, i);
        for (size_t e = 0; e < t->n; e++)
            tab.params[t->offset + e] = init_value(t->name, key, e, std);
    }
    void *data;
    size_t len;
    int rc = llava_save(&tab, &data, &len);
    llava_free(&tab);
    if (rc != 0)
        return -1;
    struct st_file f;
    if ((rc = st_parse(data, len, "random weights", &f)) == 0) {
        rc = llava_init(m, cfg, &f, 1, B, T);
        st_close(&f);
    }
    free(data);
    return rc;
}

/* peft: reads and writes LoRA adapters as PEFT's adapter_config.json + adapter_model.safetensors (see
 * peft.h). */
#include "engine/peft.h"

#include "engine/safetensors.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PEFT_PREFIX "base_model.model."
#define PEFT_A ".lora_A.weight"
#define PEFT_B ".lora_B.weight"
#define PEFT_MAX_CONFIG (1u << 20)
#define PEFT_MAX_R 65536

/* Every key PEFT 0.21.2 writes for a LoraConfig, with its defaults; peft_encode fills in the adapter's own
 * values. peft_version is left out: the file was not written by PEFT. */
static const char peft_defaults[] =
    "{\"alora_invocation_tokens\":null,\"alpha_pattern\":{},\"arrow_config\":null,\"auto_mapping\":null,"
    "\"base_model_name_or_path\":null,\"bias\":\"none\",\"corda_config\":null,\"ensure_weight_tying\":false,"
    "\"eva_config\":null,\"exclude_modules\":null,\"fan_in_fan_out\":false,\"inference_mode\":true,"
    "\"init_lora_weights\":true,\"kasa_config\":null,\"layer_replication\":null,\"layers_pattern\":null,"
    "\"layers_to_transform\":null,\"loftq_config\":{},\"lora_alpha\":8,\"lora_bias\":false,"
    "\"lora_dropout\":0.0,\"lora_ga_config\":null,\"megatron_config\":null,\"megatron_core\":\"megatron."
    "core\","
    "\"modules_to_save\":null,\"monteclora_config\":null,\"peft_type\":\"LORA\",\"qalora_group_size\":16,"
    "\"r\":8,\"rank_pattern\":{},\"revision\":null,\"target_modules\":null,\"target_parameters\":null,"
    "\"task_type\":null,\"trainable_token_indices\":null,\"use_bdlora\":null,\"use_dora\":false,"
    "\"use_qalora\":false,\"use_rslora\":false,\"velora_config\":null}";

/* Options that change what a module computes; pulse-pipe implements plain LoRA only, so a config must leave
 * each absent, null, false or empty. */
static const char *const peft_unsupported[] = {
    "use_dora",
    "use_rslora",
    "fan_in_fan_out",
    "lora_bias",
    "use_qalora",
    "use_bdlora",
    "rank_pattern",
    "alpha_pattern",
    "modules_to_save",
    "layer_replication",
    "alora_invocation_tokens",
    "trainable_token_indices",
    "target_parameters",
};

void peft_meta_free(struct peft_meta *meta) {
    if (!meta)
        return;
    free(meta->base_model);
    free(meta->task_type);
    meta->base_model = meta->task_type = NULL;
}

/* ---- writing ------------------------------------------------------------------------------------------ */

static struct json *str_or_null(const char *s) {
    return s ? json_str(s) : json_null();
}

/* lora_alpha as PEFT writes it: an integer when it is one (PEFT's type is int), else a float. */
static struct json *alpha_json(double alpha) {
    if (alpha == floor(alpha) && fabs(alpha) < 9007199254740992.0)
        return json_int((int64_t)alpha);
    return json_num(alpha);
}

static struct json *targets_json(const struct lora *l) {
    if (l->target_regex)
        return json_str(l->target_regex);
    struct json *arr = json_arr();
    for (size_t i = 0; i < l->ntargets; i++)
        json_push(arr, json_str(l->targets[i]));
    return arr;
}

/* The module of a saved parameter: its name without the last component (malloc'd), or NULL if it has none. */
static char *saved_module(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name || !dot[1])
        return NULL;
    char *m = xmalloc((size_t)(dot - name) + 1);
    memcpy(m, name, (size_t)(dot - name));
    m[dot - name] = 0;
    return m;
}

/* modules_to_save: the saved tensors' modules, each once, in order of first appearance; null when none. */
static struct json *saved_json(const struct st_out *saved, size_t nsaved) {
    if (nsaved == 0)
        return json_null();
    struct json *arr = json_arr();
    for (size_t i = 0; i < nsaved; i++) {
        char *m = saved_module(saved[i].name);
        int seen = 0;
        for (size_t j = 0; j < arr->len && !seen; j++)
            seen = strcmp(arr->items[j]->s, m) == 0;
        if (!seen)
            json_push(arr, json_str(m));
        free(m);
    }
    return arr;
}

static char *config_encode(const struct lora *l, const struct peft_meta *meta, const struct st_out *saved,
                           size_t nsaved, size_t *len) {
    struct json *c = json_parse(peft_defaults, sizeof peft_defaults - 1);
    if (!c)
        return NULL;
    json_set(c, "r", json_int(l->r));
    json_set(c, "lora_alpha", alpha_json(l->alpha));
    json_set(c, "lora_dropout", json_num(l->dropout));
    json_set(c, "target_modules", targets_json(l));
    json_set(c, "modules_to_save", saved_json(saved, nsaved));
    json_set(c, "base_model_name_or_path", str_or_null(meta ? meta->base_model : NULL));
    json_set(c, "task_type", str_or_null(meta ? meta->task_type : NULL));
    char *text = json_write(c, JSON_PRETTY, len);
    json_free(c);
    return text;
}

static char *key_name(const char *module, const char *suffix) {
    struct buf b = {0};
    buf_printf(&b, PEFT_PREFIX "%s%s", module, suffix);
    return buf_take(&b);
}

/* The LoRA pairs, then the saved tensors under PEFT's prefix (st_write sorts them by name). */
static int tensors_encode(const struct lora *l, const struct st_out *saved, size_t nsaved, void **data,
                          size_t *len) {
    size_t nt = 2 * l->n + nsaved;
    struct st_out *t = xcalloc(nt + 1, sizeof *t);
    for (size_t i = 0; i < l->n; i++) {
        const struct lora_module *m = &l->m[i];
        t[2 * i] = (struct st_out){key_name(m->name, PEFT_A), m->A, 2, {l->r, (int64_t)m->in}, ST_F32};
        t[2 * i + 1] = (struct st_out){key_name(m->name, PEFT_B), m->B, 2, {(int64_t)m->out, l->r}, ST_F32};
    }
    for (size_t i = 0; i < nsaved; i++) {
        t[2 * l->n + i] = saved[i];
        t[2 * l->n + i].name = key_name(saved[i].name, "");
        t[2 * l->n + i].dtype = ST_F32;
    }
    static const char *const meta[] = {"format", "pt"};
    int rc = st_write(t, nt, meta, 1, data, len);
    for (size_t i = 0; i < nt; i++)
        free((char *)t[i].name);
    free(t);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A saved tensor must name a parameter of a module that the adapter does not also adapt: PEFT cannot both
 * wrap a module in LoRA and replace it. */
static int saved_check(const struct lora *l, const struct st_out *saved, size_t nsaved) {
    for (size_t i = 0; i < nsaved; i++) {
        char *m = saved_module(saved[i].name);
        int rc = 0;
        if (!m || ends_with(saved[i].name, PEFT_A) || ends_with(saved[i].name, PEFT_B))
            rc = err_set("saved tensor \"%s\" is not a module's parameter", saved[i].name);
        else if (lora_find(l, m))
            rc = err_set("module %s is both adapted and saved in full", m);
        free(m);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int peft_encode(const struct lora *l, const struct peft_meta *meta, char **config, size_t *config_len,
                void **tensors, size_t *tensors_len) {
    return peft_encode_saved(l, meta, NULL, 0, config, config_len, tensors, tensors_len);
}

int peft_encode_saved(const struct lora *l, const struct peft_meta *meta, const struct st_out *saved,
                      size_t nsaved, char **config, size_t *config_len, void **tensors, size_t *tensors_len) {
    *config = NULL;
    *tensors = NULL;
    if (l->r <= 0 || l->n == 0)
        return err_set("peft write: the adapter has %s", l->r <= 0 ? "no rank" : "no modules");
    if (saved_check(l, saved, nsaved) < 0 || tensors_encode(l, saved, nsaved, tensors, tensors_len) < 0)
        return err_prefix("peft write");
    *config = config_encode(l, meta, saved, nsaved, config_len);
    if (!*config) {
        free(*tensors);
        *tensors = NULL;
        return err_prefix("peft write");
    }
    return 0;
}

static int write_file(const char *dir, const char *name, const void *data, size_t n) {
    struct buf path = {0};
    buf_printf(&path, "%s/%s", dir, name);
    int rc = fsio_write_atomic(dir, path.data, data, n);
    buf_free(&path);
    return rc;
}

int peft_write(const char *dir, const struct lora *l, const struct peft_meta *meta) {
    char *config;
    void *tensors;
    size_t clen, tlen;
    if (peft_encode(l, meta, &config, &clen, &tensors, &tlen) < 0)
        return -1;
    int rc = fsio_mkdir_p(dir);
    if (rc == 0)
        rc = write_file(dir, "adapter_model.safetensors", tensors, tlen);
    if (rc == 0)
        rc = write_file(dir, "adapter_config.json", config, clen);
    free(config);
    free(tensors);
    return rc;
}

/* ---- reading the config ------------------------------------------------------------------------------- */

/* Absent, null, false, or an empty list / object: the value that leaves PEFT's computation plain LoRA. */
static int is_neutral(const struct json *v) {
    return !v || v->type == JSON_NULL || (v->type == JSON_BOOL && !v->b) ||
           ((v->type == JSON_ARR || v->type == JSON_OBJ) && v->len == 0);
}

static int dup_str_or_null(const struct json *c, const char *key, char **out) {
    const struct json *v = json_get(c, key);
    *out = NULL;
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_STR)
        return err_set("%s must be a string or null", key);
    *out = xstrdup(v->s);
    return 0;
}

static int config_targets(const struct json *c, struct lora *l) {
    const struct json *t = json_get(c, "target_modules");
    if (t && t->type == JSON_STR) {
        lora_set_target_regex(l, t->s);
        return 0;
    }
    if (!t || t->type != JSON_ARR)
        return err_set("target_modules must be a string or a list of strings");
    for (size_t i = 0; i < t->len; i++)
        if (t->items[i]->type != JSON_STR)
            return err_set("target_modules must be a string or a list of strings");
    const char **names = xcalloc(t->len + 1, sizeof *names);
    for (size_t i = 0; i < t->len; i++)
        names[i] = t->items[i]->s;
    lora_set_targets(l, names, t->len);
    free(names);
    return 0;
}

static int config_plain_lora(const struct json *c) {
    const char *type = json_get_str(c, "peft_type");
    if (!type || strcmp(type, "LORA") != 0)
        return err_set("peft_type is %s%s%s, not \"LORA\"", type ? "\"" : "", type ? type : "missing",
                       type ? "\"" : "");
    const struct json *bias = json_get(c, "bias");
    if (bias && (bias->type != JSON_STR || strcmp(bias->s, "none") != 0))
        return err_set("bias must be \"none\" (pulse-pipe's adapters have no bias terms)");
    for (size_t i = 0; i < sizeof peft_unsupported / sizeof *peft_unsupported; i++)
        if (!is_neutral(json_get(c, peft_unsupported[i])))
            return err_set("%s is set: pulse-pipe implements plain LoRA only", peft_unsupported[i]);
    return 0;
}

static int config_numbers(const struct json *c, struct lora *l) {
    int64_t r;
    double alpha, dropout = 0;
    if (json_get_int(c, "r", &r) < 0)
        return err_set("r must be an integer");
    if (r <= 0 || r > PEFT_MAX_R)
        return err_set("r must be in 1..%d, got %lld", PEFT_MAX_R, (long long)r);
    if (json_get_num(c, "lora_alpha", &alpha) < 0)
        return err_set("lora_alpha must be a number");
    if (json_get(c, "lora_dropout") && json_get_num(c, "lora_dropout", &dropout) < 0)
        return err_set("lora_dropout must be a number");
    return lora_create(l, (int)r, alpha, dropout);
}

static int config_decode(const char *text, size_t n, struct lora *l, struct peft_meta *meta) {
    struct json *c = json_parse(text, n);
    if (!c)
        return -1;
    int rc = c->type == JSON_OBJ ? 0 : err_set("not a JSON object");
    if (rc == 0)
        rc = config_plain_lora(c);
    if (rc == 0)
        rc = config_numbers(c, l);
    if (rc == 0)
        rc = config_targets(c, l);
    if (rc == 0 && meta)
        rc = dup_str_or_null(c, "base_model_name_or_path", &meta->base_model);
    if (rc == 0 && meta)
        rc = dup_str_or_null(c, "task_type", &meta->task_type);
    json_free(c);
    return rc;
}

/* ---- reading the tensors ------------------------------------------------------------------------------ */

/* The module path of a PEFT key ending in suffix (malloc'd), or NULL when the key is not of that form. */
static char *key_module(const char *key, const char *suffix) {
    size_t kl = strlen(key), pl = strlen(PEFT_PREFIX), sl = strlen(suffix);
    if (kl <= pl + sl || strncmp(key, PEFT_PREFIX, pl) != 0 || strcmp(key + kl - sl, suffix) != 0)
        return NULL;
    char *m = xmalloc(kl - pl - sl + 1);
    memcpy(m, key + pl, kl - pl - sl);
    m[kl - pl - sl] = 0;
    return m;
}

/* The module path of a lora_A / lora_B key (malloc'd, *is_a set), or NULL with err_set for any other key. */
static char *key_split(const char *key, int *is_a) {
    char *mod = key_module(key, PEFT_A);
    *is_a = mod != NULL;
    if (!mod)
        mod = key_module(key, PEFT_B);
    if (!mod)
        err_set("unexpected tensor \"%s\" (only " PEFT_PREFIX "<module>.lora_{A,B}.weight)", key);
    return mod;
}

/* Every key must be a lora_A or lora_B weight (all names are checked first, so a stray tensor is named as
 * such), and each must have its partner. */
static int tensors_pair(const struct st_file *f) {
    int is_a;
    for (size_t i = 0; i < f->n; i++) {
        char *mod = key_split(f->t[i].name, &is_a);
        if (!mod)
            return -1;
        free(mod);
    }
    for (size_t i = 0; i < f->n; i++) {
        char *mod = key_split(f->t[i].name, &is_a), *other = key_name(mod, is_a ? PEFT_B : PEFT_A);
        int found = st_find(f, other) != NULL;
        if (!found)
            err_set("module %s has lora_%c but no lora_%c", mod, is_a ? 'A' : 'B', is_a ? 'B' : 'A');
        free(other);
        free(mod);
        if (!found)
            return -1;
    }
    return 0;
}

/* Checks one module's A [r, in] and B [out, r] against r and the base model, and returns in / out. */
static int module_shape(const char *mod, const struct st_tensor *a, const struct st_tensor *b, int r,
                        peft_shape_fn shape, void *ctx, size_t *in, size_t *out) {
    if (a->ndim != 2 || b->ndim != 2)
        return err_set("module %s: lora_A and lora_B must be matrices", mod);
    if (a->shape[0] != r || b->shape[1] != r)
        return err_set("module %s: lora_A is [%lld, %lld] and lora_B [%lld, %lld], but r is %d", mod,
                       (long long)a->shape[0], (long long)a->shape[1], (long long)b->shape[0],
                       (long long)b->shape[1], r);
    *in = (size_t)a->shape[1];
    *out = (size_t)b->shape[0];
    if (*in == 0 || *out == 0)
        return err_set("module %s: a zero dimension (%zu in, %zu out)", mod, *in, *out);
    size_t want_in, want_out;
    if (shape && shape(ctx, mod, &want_in, &want_out) < 0)
        return err_set("module %s is not a linear layer of the base model", mod);
    if (shape && (want_in != *in || want_out != *out))
        return err_set("module %s: the adapter is %zu -> %zu, the base model's layer %zu -> %zu", mod, *in,
                       *out, want_in, want_out);
    return 0;
}

static int tensors_decode(const struct st_file *f, peft_shape_fn shape, void *ctx, struct lora *l) {
    if (tensors_pair(f) < 0)
        return -1;
    for (size_t i = 0; i < f->n; i++) {
        char *mod = key_module(f->t[i].name, PEFT_A);
        if (!mod)
            continue;
        char *bkey = key_name(mod, PEFT_B);
        const struct st_tensor *a = &f->t[i], *b = st_find(f, bkey);
        size_t in = 0, out = 0;
        int rc = module_shape(mod, a, b, l->r, shape, ctx, &in, &out);
        if (rc == 0)
            rc = lora_add(l, mod, in, out);
        if (rc == 0) {
            st_to_f32(a, l->m[l->n - 1].A);
            st_to_f32(b, l->m[l->n - 1].B);
        }
        free(bkey);
        free(mod);
        if (rc < 0)
            return -1;
    }
    return l->n ? 0 : err_set("no LoRA tensors");
}

/* Decodes the config, then the already-parsed tensors of file `tname`; on failure l and meta are emptied. */
static int decode_parsed(const char *config, size_t config_len, const struct st_file *f, const char *what,
                         const char *tname, peft_shape_fn shape, void *ctx, struct lora *l,
                         struct peft_meta *meta) {
    int rc = 0;
    if (config_decode(config, config_len, l, meta) < 0)
        rc = err_prefix("%s/adapter_config.json", what);
    else if (tensors_decode(f, shape, ctx, l) < 0)
        rc = err_prefix("%s", tname);
    if (rc < 0) {
        lora_free(l);
        peft_meta_free(meta);
    }
    return rc;
}

int peft_decode(const char *config, size_t config_len, const void *tensors, size_t tensors_len,
                const char *what, peft_shape_fn shape, void *ctx, struct lora *l, struct peft_meta *meta) {
    memset(l, 0, sizeof *l);
    if (meta)
        memset(meta, 0, sizeof *meta);
    struct buf tname = {0};
    buf_printf(&tname, "%s/adapter_model.safetensors", what);
    struct st_file f;
    int rc = st_parse(tensors, tensors_len, tname.data, &f);
    if (rc == 0) {
        rc = decode_parsed(config, config_len, &f, what, tname.data, shape, ctx, l, meta);
        st_close(&f);
    }
    buf_free(&tname);
    return rc;
}

int peft_read(const char *dir, peft_shape_fn shape, void *ctx, struct lora *l, struct peft_meta *meta) {
    memset(l, 0, sizeof *l);
    if (meta)
        memset(meta, 0, sizeof *meta);
    struct buf cpath = {0}, tpath = {0};
    buf_printf(&cpath, "%s/adapter_config.json", dir);
    buf_printf(&tpath, "%s/adapter_model.safetensors", dir);
    char *config = NULL;
    size_t clen = 0;
    struct st_file f = {0};
    int rc = fsio_read_file(cpath.data, PEFT_MAX_CONFIG, &config, &clen);
    if (rc == 0)
        rc = st_open(tpath.data, &f);
    if (rc == 0) {
        rc = decode_parsed(config, clen, &f, dir, tpath.data, shape, ctx, l, meta);
        st_close(&f);
    }
    free(config);
    buf_free(&cpath);
    buf_free(&tpath);
    return rc;
}

/* ---- several rounds as one adapter -------------------------------------------------------------------- */

static struct lora_module *module_named(struct lora *l, const char *name) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->m[i].name, name) == 0)
            return &l->m[i];
    return NULL;
}

/* Every module any round adapts, zero-filled, in order of first appearance; rounds must agree on shapes. */
static int sum_modules(const struct lora *rounds, size_t n, struct lora *out) {
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < rounds[k].n; i++) {
            const struct lora_module *m = &rounds[k].m[i], *have = lora_find(out, m->name);
            if (!have && lora_add(out, m->name, m->in, m->out) < 0)
                return -1;
            if (have && (have->in != m->in || have->out != m->out))
                return err_set("module %s is %zu -> %zu in adapter %zu but %zu -> %zu in an earlier one",
                               m->name, m->in, m->out, k + 1, have->in, have->out);
        }
    return 0;
}

/* Round k's blocks at rank offset off: its A rows as they are, its B columns times its scale. */
static void sum_blocks(const struct lora *round, size_t off, struct lora *out) {
    size_t r = (size_t)round->r, R = (size_t)out->r;
    float scale = lora_scale(round);
    for (size_t i = 0; i < round->n; i++) {
        const struct lora_module *m = &round->m[i];
        struct lora_module *d = module_named(out, m->name);
        memcpy(d->A + off * m->in, m->A, r * m->in * sizeof(float));
        for (size_t o = 0; o < m->out; o++)
            for (size_t j = 0; j < r; j++)
                d->B[o * R + off + j] = m->B[o * r + j] * scale;
    }
}

int peft_sum(const struct lora *rounds, size_t n, struct lora *out) {
    memset(out, 0, sizeof *out);
    long long total = 0;
    for (size_t k = 0; k < n; k++)
        total += rounds[k].r;
    if (n == 0)
        return err_set("peft sum: no adapters");
    if (total > PEFT_MAX_R)
        return err_set("peft sum: the ranks add up to %lld, more than PEFT's %d", total, PEFT_MAX_R);
    int rc = lora_create(out, (int)total, (double)total, 0.0);
    if (rc == 0 && sum_modules(rounds, n, out) < 0)
        rc = err_prefix("peft sum");
    if (rc < 0) {
        lora_free(out);
        return -1;
    }
    size_t off = 0;
    for (size_t k = 0; k < n; k++) {
        sum_blocks(&rounds[k], off, out);
        off += (size_t)rounds[k].r;
    }
    const char **names = xcalloc(out->n, sizeof *names);
    for (size_t i = 0; i < out->n; i++)
        names[i] = out->m[i].name;
    lora_set_targets(out, names, out->n);
    free(names);
    return 0;
}

/* test_engine_peft: LoRA adapters against PEFT itself: reading an adapter PEFT saved, merging it as PEFT's
 * merge_and_unload did, writing it back to the same config and tensors, PEFT's initialisation, and a table of
 * hostile adapters that must each be refused with one line. Fixtures: tests/reference/make_peft_fixture.py.
 */
#include "check.h"
#include "engine/lora.h"
#include "engine/peft.h"
#include "engine/safetensors.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/json.h"

#include <math.h>
#include <stdint.h>
#include <unistd.h>

static char data_dir[1024];

static char *data_path(const char *name) {
    struct buf b = {0};
    buf_printf(&b, "%s/%s", data_dir, name);
    return buf_take(&b);
}

/* The tiny config's decoder (hidden 64, intermediate 176, 4 heads of 16, 2 kv heads): in/out by suffix. */
static int tiny_shape(void *ctx, const char *module, size_t *in, size_t *out) {
    (void)ctx;
    if (strncmp(module, "model.language_model.layers.", 28) != 0)
        return -1;
    const char *leaf = strrchr(module, '.') + 1;
    static const struct {
        const char *name;
        size_t in, out;
    } t[] = {{"q_proj", 64, 64},     {"k_proj", 64, 32},   {"v_proj", 64, 32},    {"o_proj", 64, 64},
             {"gate_proj", 64, 176}, {"up_proj", 64, 176}, {"down_proj", 176, 64}};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (strcmp(leaf, t[i].name) == 0) {
            *in = t[i].in;
            *out = t[i].out;
            return 0;
        }
    return -1;
}

/* Says whether the shape callback was asked about this module, and lies about it: a base model mismatch. */
static int wrong_shape(void *ctx, const char *module, size_t *in, size_t *out) {
    (void)ctx;
    int rc = tiny_shape(NULL, module, in, out);
    *out += 1;
    return rc;
}

static char *read_text(const char *path, size_t *n) {
    char *text = NULL;
    if (fsio_read_file(path, 1 << 20, &text, n) < 0)
        fprintf(stderr, "%s\n", err_msg());
    return text;
}

/* ---- reading PEFT's adapter -----------------------------------------------------------------------------
 */

static void test_read_fixture(void) {
    char *dir = data_path("peft_adapter");
    struct lora l;
    struct peft_meta meta;
    int rc = peft_read(dir, tiny_shape, NULL, &l, &meta);
    CHECK(rc == 0);
    if (rc < 0) {
        fprintf(stderr, "%s\n", err_msg());
        free(dir);
        return;
    }
    CHECK(l.r == 4 && l.alpha == 8 && l.dropout == 0.05);
    CHECK(l.n == 14); /* 7 projections x 2 layers, the CLIP tower's q/k/v untouched */
    CHECK_STR(meta.base_model, "pulse-pipe/tiny-llava");
    CHECK_STR(meta.task_type, "CAUSAL_LM");
    CHECK_STR(l.target_regex,
              ".*language_model.*\\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)");
    const struct lora_module *down = lora_find(&l, "model.language_model.layers.1.mlp.down_proj");
    CHECK(down && down->in == 176 && down->out == 64);
    const struct lora_module *k = lora_find(&l, "model.language_model.layers.0.self_attn.k_proj");
    CHECK(k && k->in == 64 && k->out == 32);
    /* PEFT drew A with kaiming_uniform_(a = sqrt 5): inside lora_init_bound; our fixture's B is non-zero. */
    int a_in = 1, b_nonzero = 0;
    for (size_t i = 0; i < l.n; i++) {
        float bound = lora_init_bound(l.m[i].in);
        for (size_t j = 0; j < (size_t)l.r * l.m[i].in; j++)
            a_in &= fabsf(l.m[i].A[j]) <= bound;
        for (size_t j = 0; j < l.m[i].out * (size_t)l.r; j++)
            b_nonzero += l.m[i].B[j] != 0;
    }
    CHECK(a_in);
    CHECK(b_nonzero > 0);
    /* The values are the file's, bit for bit. */
    char *st_path = data_path("peft_adapter/adapter_model.safetensors");
    struct st_file f;
    CHECK(st_open(st_path, &f) == 0);
    const struct st_tensor *t =
        st_find(&f, "base_model.model.model.language_model.layers.1.mlp.down_proj.lora_B.weight");
    CHECK(t && down && t->nelem == 64 * 4 && memcmp(t->data, down->B, t->nbytes) == 0);
    st_close(&f);
    /* The regex targets the decoder only, as PEFT did. */
    CHECK(lora_targets(&l, "model.language_model.layers.0.self_attn.q_proj") == 1);
    CHECK(lora_targets(&l, "model.vision_tower.encoder.layers.0.self_attn.q_proj") == 0);
    CHECK(lora_targets(&l, "model.language_model.layers.0.self_attn.q_proj.extra") == 0);
    free(st_path);
    lora_free(&l);
    peft_meta_free(&meta);
    free(dir);
}

/* ---- merging as PEFT did ------------------------------------------------------------------------------ */

static void merge_one(const struct lora *l, const struct st_file *f, const char *module) {
    struct buf bn = {0}, mn = {0};
    buf_printf(&bn, "%s.base", module);
    buf_printf(&mn, "%s.merged", module);
    const struct st_tensor *base = st_find(f, bn.data), *want = st_find(f, mn.data);
    const struct lora_module *m = lora_find(l, module);
    CHECK(base && want && m && base->nelem == m->in * m->out);
    if (base && want && m) {
        float *w = xmalloc(base->nelem * sizeof(float)), *ref = xmalloc(base->nelem * sizeof(float));
        st_to_f32(base, w);
        st_to_f32(want, ref);
        CHECK(memcmp(w, ref, base->nelem * sizeof(float)) != 0); /* the merge must change something */
        lora_merge(w, l, m);
        double maxdiff = 0, maxref = 0;
        size_t same = 0;
        for (size_t i = 0; i < base->nelem; i++) {
            maxdiff = fmax(maxdiff, fabs((double)w[i] - ref[i]));
            maxref = fmax(maxref, fabs(ref[i]));
            same += w[i] == ref[i];
        }
        printf("  merge %s: max |diff| / max |W| = %.3g, %zu of %zu bit-identical\n", module,
               maxdiff / maxref, same, base->nelem);
        CHECK(maxdiff <= 1e-6 * maxref);
        free(w);
        free(ref);
    }
    buf_free(&bn);
    buf_free(&mn);
}

static void test_merge(void) {
    char *dir = data_path("peft_adapter"), *mpath = data_path("peft_merge.safetensors");
    struct lora l;
    struct st_file f;
    int rc = peft_read(dir, tiny_shape, NULL, &l, NULL);
    CHECK(rc == 0);
    CHECK(st_open(mpath, &f) == 0);
    if (rc == 0 && f.n == 6) {
        CHECK(lora_scale(&l) == 2.0f);
        merge_one(&l, &f, "model.language_model.layers.0.self_attn.q_proj");
        merge_one(&l, &f, "model.language_model.layers.1.self_attn.v_proj");
        merge_one(&l, &f, "model.language_model.layers.1.mlp.down_proj");
    }
    st_close(&f);
    if (rc == 0)
        lora_free(&l);
    free(dir);
    free(mpath);
}

/* ---- writing back ------------------------------------------------------------------------------------- */

/* Same tensor names, shapes and bytes (the files' headers may be laid out differently). */
static void same_tensors(const char *a_path, const char *b_path) {
    struct st_file a, b;
    int ra = st_open(a_path, &a), rb = st_open(b_path, &b);
    CHECK(ra == 0 && rb == 0);
    if (ra == 0 && rb == 0) {
        CHECK(a.n == b.n && a.n == 28);
        for (size_t i = 0; i < a.n && a.n == b.n; i++) {
            CHECK_STR(a.t[i].name, b.t[i].name);
            CHECK(a.t[i].ndim == 2 && a.t[i].shape[0] == b.t[i].shape[0] &&
                  a.t[i].shape[1] == b.t[i].shape[1]);
            CHECK(a.t[i].dtype == ST_F32 && b.t[i].dtype == ST_F32);
            CHECK(a.t[i].nbytes == b.t[i].nbytes && memcmp(a.t[i].data, b.t[i].data, a.t[i].nbytes) == 0);
        }
        CHECK(b.nmeta == 1 && strcmp(b.meta_keys[0], "format") == 0 && strcmp(b.meta_values[0], "pt") == 0);
    }
    if (ra == 0)
        st_close(&a);
    if (rb == 0)
        st_close(&b);
}

/* PEFT's config, peft_version aside, key for key and value for value. */
static void same_config(const char *py_path, const char *c_path) {
    size_t np, nc;
    char *tp = read_text(py_path, &np), *tc = read_text(c_path, &nc);
    struct json *jp = tp ? json_parse(tp, np) : NULL, *jc = tc ? json_parse(tc, nc) : NULL;
    CHECK(jp && jc);
    if (jp && jc) {
        CHECK(json_get(jp, "peft_version") && !json_get(jc, "peft_version"));
        json_del(jp, "peft_version");
        CHECK(json_equal(jp, jc));
        CHECK(json_get(jc, "lora_alpha")->type == JSON_INT);
    }
    json_free(jp);
    json_free(jc);
    free(tp);
    free(tc);
}

static void test_write_back(const char *tmp) {
    char *dir = data_path("peft_adapter");
    struct lora l;
    struct peft_meta meta;
    if (peft_read(dir, tiny_shape, NULL, &l, &meta) < 0) {
        CHECK(0);
        free(dir);
        return;
    }
    struct buf out = {0};
    buf_printf(&out, "%s/written/adapter", tmp);
    CHECK(peft_write(out.data, &l, &meta) == 0);
    struct buf a = {0}, b = {0}, c = {0}, d = {0};
    buf_printf(&a, "%s/adapter_model.safetensors", dir);
    buf_printf(&b, "%s/adapter_model.safetensors", out.data);
    buf_printf(&c, "%s/adapter_config.json", dir);
    buf_printf(&d, "%s/adapter_config.json", out.data);
    same_tensors(a.data, b.data);
    same_config(c.data, d.data);
    /* And it reads back to the same adapter. */
    struct lora back;
    CHECK(peft_read(out.data, tiny_shape, NULL, &back, NULL) == 0);
    CHECK(back.n == l.n && back.r == l.r && back.alpha == l.alpha && back.dropout == l.dropout);
    for (size_t i = 0; i < back.n && back.n == l.n; i++)
        CHECK(strcmp(back.m[i].name, l.m[i].name) == 0 &&
              memcmp(back.m[i].A, l.m[i].A, (size_t)l.r * l.m[i].in * sizeof(float)) == 0);
    lora_free(&back);
    lora_free(&l);
    peft_meta_free(&meta);
    buf_free(&a);
    buf_free(&b);
    buf_free(&c);
    buf_free(&d);
    buf_free(&out);
    free(dir);
}

/* A target list (PEFT's other spelling) and a fractional alpha survive encode / decode. */
static void test_list_targets(void) {
    struct lora l, back;
    CHECK(lora_create(&l, 2, 3.5, 0.1) == 0);
    const char *names[] = {"q_proj", "v_proj"};
    lora_set_targets(&l, names, 2);
    CHECK(lora_targets(&l, "a.b.q_proj") == 1);
    CHECK(lora_targets(&l, "q_proj") == 1);
    CHECK(lora_targets(&l, "a.b.xq_proj") == 0);
    CHECK(lora_targets(&l, "a.b.k_proj") == 0);
    CHECK(lora_add(&l, "x.q_proj", 3, 5) == 0);
    CHECK(lora_add(&l, "x.q_proj", 3, 5) < 0);
    CHECK_HAS(err_msg(), "added twice");
    lora_init(&l, 1);
    char *config;
    void *tensors;
    size_t clen, tlen;
    CHECK(peft_encode(&l, NULL, &config, &clen, &tensors, &tlen) == 0);
    CHECK(peft_decode(config, clen, tensors, tlen, "mem", NULL, NULL, &back, NULL) == 0);
    CHECK(back.ntargets == 2 && !back.target_regex && strcmp(back.targets[1], "v_proj") == 0);
    CHECK(back.alpha == 3.5 && back.dropout == 0.1 && back.n == 1);
    CHECK(lora_scale(&back) == (float)(3.5 / 2.0));
    struct json *j = json_parse(config, clen);
    CHECK(j && json_get(j, "task_type")->type == JSON_NULL && json_get(j, "lora_alpha")->type == JSON_NUM);
    json_free(j);
    free(config);
    free(tensors);
    lora_free(&back);
    lora_free(&l);
}

/* ---- PEFT's initialisation ---------------------------------------------------------------------------- */

static void test_init(void) {
    struct lora l, l2;
    CHECK(lora_create(&l, 8, 16, 0) == 0 && lora_create(&l2, 8, 16, 0) == 0);
    CHECK(lora_add(&l, "m0", 256, 32) == 0 && lora_add(&l, "m1", 256, 48) == 0);
    CHECK(lora_add(&l2, "m0", 256, 32) == 0 && lora_add(&l2, "m1", 256, 48) == 0);
    CHECK(fabsf(lora_init_bound(256) - 1.0f / 16.0f) < 1e-8f);
    l.m[0].B[3] = 1; /* init resets B */
    lora_init(&l, 42);
    lora_init(&l2, 42);
    size_t na = 8 * 256;
    float bound = lora_init_bound(256), amax = 0;
    double sum = 0, sq = 0;
    int inside = 1;
    for (size_t j = 0; j < na; j++) {
        float a = l.m[0].A[j];
        inside &= a >= -bound && a < bound;
        amax = fmaxf(amax, fabsf(a));
        sum += a;
        sq += (double)a * a;
    }
    double mean = sum / na, var = sq / na - mean * mean, want_var = (double)bound * bound / 3;
    printf("  init: bound %.6g, max |A| %.6g, mean %.3g, var %.4g (uniform: %.4g)\n", bound, amax, mean, var,
           want_var);
    CHECK(inside);
    CHECK(amax > 0.98f * bound);
    CHECK(fabs(mean) < 4 * bound / sqrt(3.0 * na));
    CHECK(fabs(var / want_var - 1) < 0.1);
    int b_zero = 1;
    for (size_t j = 0; j < 32 * 8; j++)
        b_zero &= l.m[0].B[j] == 0;
    CHECK(b_zero);
    CHECK(memcmp(l.m[0].A, l2.m[0].A, na * sizeof(float)) == 0);
    CHECK(memcmp(l.m[1].A, l2.m[1].A, na * sizeof(float)) == 0);
    CHECK(memcmp(l.m[0].A, l.m[1].A, na * sizeof(float)) != 0); /* one stream per module */
    lora_init(&l2, 43);
    CHECK(memcmp(l.m[0].A, l2.m[0].A, na * sizeof(float)) != 0);
    lora_free(&l);
    lora_free(&l2);
    CHECK(lora_create(&l2, 0, 1, 0) < 0);
    CHECK_HAS(err_msg(), "r must be positive");
    CHECK(lora_create(&l2, 4, 1, 1.0) < 0);
    CHECK_HAS(err_msg(), "lora_dropout");
}

static void test_scale_rounding(void) {
    struct lora l;
    CHECK(lora_create(&l, 3, 16, 0) == 0);
    CHECK(lora_scale(&l) == (float)(16.0 / 3.0));
    lora_free(&l);
}

/* ---- hostile adapters --------------------------------------------------------------------------------- */

struct hostile {
    const char *config_edit; /* "key=json value" applied to PEFT's config, or NULL */
    const char *config_raw;  /* replaces the config entirely, or NULL */
    int tensors; /* 0 PEFT's, 1 A without B, 2 A of the wrong rank, 3 stray tensor, 4 none, 5 junk */
    peft_shape_fn shape;
    const char *want;
};

/* A one-module adapter of rank 4 whose tensors are spoiled as `kind` says. */
static void *spoiled_tensors(int kind, size_t *len) {
    static float z[176 * 8];
    const char *mod = "base_model.model.model.language_model.layers.0.self_attn.q_proj";
    char an[256], bn[256];
    snprintf(an, sizeof an, "%s.lora_A.weight", mod);
    snprintf(bn, sizeof bn, "%s%s", mod, kind == 3 ? ".lora_magnitude_vector" : ".lora_B.weight");
    struct st_out t[2] = {{an, z, 2, {kind == 2 ? 3 : 4, 64}, ST_F32}, {bn, z, 2, {64, 4}, ST_F32}};
    void *data = NULL;
    size_t n = kind == 1 ? 1 : kind == 4 ? 0 : 2;
    if (kind == 5) {
        *len = 7;
        return xcalloc(1, 8);
    }
    if (st_write(kind == 1 ? t : t, n, NULL, 0, &data, len) < 0)
        fprintf(stderr, "%s\n", err_msg());
    return data;
}

static char *edited_config(const char *py, size_t n, const char *edit, size_t *len) {
    struct json *j = json_parse(py, n);
    const char *eq = strchr(edit, '=');
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)(eq - edit), edit);
    json_set(j, key, json_parse(eq + 1, strlen(eq + 1)));
    char *text = json_write(j, JSON_CANONICAL, len);
    json_free(j);
    return text;
}

static void test_hostile(void) {
    static const struct hostile cases[] = {
        {NULL, "{\"r\": 4,", 0, NULL, "mem/adapter_config.json: json:"},
        {NULL, "[1]", 0, NULL, "mem/adapter_config.json: not a JSON object"},
        {"peft_type=\"PREFIX_TUNING\"", NULL, 0, NULL, "peft_type is \"PREFIX_TUNING\", not \"LORA\""},
        {"r=0", NULL, 0, NULL, "adapter_config.json: r must be in 1..65536, got 0"},
        {"r=4.5", NULL, 0, NULL, "r must be an integer"},
        {"lora_alpha=\"8\"", NULL, 0, NULL, "lora_alpha must be a number"},
        {"lora_dropout=1.5", NULL, 0, NULL, "lora_dropout must be in [0, 1)"},
        {"target_modules=5", NULL, 0, NULL, "target_modules must be a string or a list of strings"},
        {"target_modules=[\"q_proj\",3]", NULL, 0, NULL, "target_modules must be a string or a list"},
        {"use_dora=true", NULL, 0, NULL, "use_dora is set: pulse-pipe implements plain LoRA only"},
        {"use_rslora=true", NULL, 0, NULL, "use_rslora is set"},
        {"rank_pattern={\"q_proj\":8}", NULL, 0, NULL, "rank_pattern is set"},
        {"modules_to_save=[\"lm_head\"]", NULL, 0, NULL, "modules_to_save is set"},
        {"bias=\"all\"", NULL, 0, NULL, "bias must be \"none\""},
        {"task_type=7", NULL, 0, NULL, "task_type must be a string or null"},
        {NULL, NULL, 1, NULL,
         "mem/adapter_model.safetensors: module model.language_model.layers.0.self_attn.q_proj "
         "has lora_A but no lora_B"},
        {NULL, NULL, 2, NULL, "lora_A is [3, 64] and lora_B [64, 4], but r is 4"},
        {NULL, NULL, 3, NULL,
         "unexpected tensor \"base_model.model.model.language_model.layers.0.self_attn.q_"},
        {NULL, NULL, 4, NULL, "mem/adapter_model.safetensors: no LoRA tensors"},
        {NULL, NULL, 5, NULL, "mem/adapter_model.safetensors: 7 bytes is too short"},
        {NULL, NULL, 0, wrong_shape, "the adapter is 64 -> 64, the base model's layer 64 -> 65"},
    };
    char *cpath = data_path("peft_adapter/adapter_config.json");
    size_t pyn;
    char *py = read_text(cpath, &pyn);
    for (size_t i = 0; py && i < sizeof cases / sizeof *cases; i++) {
        const struct hostile *h = &cases[i];
        size_t clen, tlen;
        char *config = h->config_raw    ? xstrdup(h->config_raw)
                       : h->config_edit ? edited_config(py, pyn, h->config_edit, &clen)
                                        : xstrdup(py);
        clen = strlen(config);
        void *tensors = spoiled_tensors(h->tensors, &tlen);
        struct lora l;
        struct peft_meta meta;
        err_clear();
        int rc = peft_decode(config, clen, tensors, tlen, "mem", h->shape, NULL, &l, &meta);
        CHECK(rc < 0);
        CHECK_HAS(err_msg(), h->want);
        CHECK(!strchr(err_msg(), '\n') && l.n == 0 && !meta.base_model);
        if (rc == 0)
            lora_free(&l);
        free(config);
        free(tensors);
    }
    /* The control: the unspoiled one-module adapter is accepted, so each refusal above is its own. */
    size_t tlen;
    void *tensors = spoiled_tensors(0, &tlen);
    struct lora l;
    CHECK(py && peft_decode(py, pyn, tensors, tlen, "mem", tiny_shape, NULL, &l, NULL) == 0 && l.n == 1);
    if (l.n == 1)
        lora_free(&l);
    free(tensors);
    free(py);
    free(cpath);
    /* Files that are not there. */
    struct lora none;
    CHECK(peft_read("/nonexistent/adapter", NULL, NULL, &none, NULL) < 0);
    CHECK_HAS(err_msg(), "/nonexistent/adapter/adapter_config.json");
}

int main(void) {
    const char *d = getenv("PULSE_TEST_DATA");
    snprintf(data_dir, sizeof data_dir, "%s", d ? d : "tests/data");
    char tmp[] = "/tmp/test_engine_peft.XXXXXX";
    if (!mkdtemp(tmp))
        return 1;
    test_read_fixture();
    test_merge();
    test_write_back(tmp);
    test_list_targets();
    test_init();
    test_scale_rounding();
    test_hostile();
    struct buf rm = {0};
    buf_printf(&rm, "rm -rf '%s'", tmp);
    if (system(rm.data) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    buf_free(&rm);
    return check_done("test_engine_peft");
}

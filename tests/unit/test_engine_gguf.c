/* test_engine_gguf: GGUF LoRA adapters against llama.cpp's own Python writer (gguf-py's GGUFWriter): the
 * engine must write the same bytes from the same PEFT adapter, in f32 and f16. Then the reader round-trip,
 * alignment, fp16 rounding, the q/k row order, and hostile files and adapters refused with one line.
 * Fixtures: tests/reference/make_gguf_fixture.py. PULSE_GGUF_DUMP=DIR writes the engine's two files there
 * for that script's --check (gguf-py's GGUFReader). */
#include "check.h"
#include "engine/config.h"
#include "engine/gguf.h"
#include "engine/peft.h"
#include "engine/safetensors.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"

#include <math.h>
#include <stdint.h>

static char data_dir[1024];

static char *slurp(const char *name, size_t *n) {
    struct buf p = {0};
    buf_printf(&p, "%s/%s", data_dir, name);
    char *data = NULL;
    if (fsio_read_file(p.data, 1u << 24, &data, n) != 0) {
        fprintf(stderr, "%s\n", err_msg());
        exit(1);
    }
    buf_free(&p);
    return data;
}

static int one_line(void) {
    return strchr(err_msg(), '\n') == NULL && *err_msg();
}

static struct text_config tiny_text(void) {
    size_t n;
    char *json = slurp("llava_config_tiny.json", &n);
    struct llava_config c;
    CHECK(config_parse(json, n, "tiny", &c) == 0);
    free(json);
    return c.text;
}

static void read_fixture_adapter(struct text_config *t, struct lora *l) {
    size_t nc, nt;
    char *cfg = slurp("gguf/adapter/adapter_config.json", &nc),
         *ten = slurp("gguf/adapter/adapter_model.safetensors", &nt);
    CHECK(peft_decode(cfg, nc, ten, nt, "fixture", gguf_lora_shape, t, l, NULL) == 0);
    free(cfg);
    free(ten);
}

static void dump(const char *name, const void *data, size_t n) {
    const char *dir = getenv("PULSE_GGUF_DUMP");
    if (!dir)
        return;
    struct buf p = {0};
    buf_printf(&p, "%s/%s", dir, name);
    CHECK(fsio_mkdir_p(dir) == 0 && fsio_write_atomic(dir, p.data, data, n) == 0);
    buf_free(&p);
}

/* ---- against GGUFWriter ---- */

static void test_fixture(void) {
    struct text_config t = tiny_text();
    struct lora l = {0};
    read_fixture_adapter(&t, &l);
    const char *tags[2] = {"f32", "f16"};
    for (int k = 0; k < 2; k++) {
        void *data;
        size_t n, wn;
        CHECK(gguf_lora_encode(&l, &t, k ? GGUF_DT_F16 : GGUF_DT_F32, &data, &n) == 0);
        char name[64];
        snprintf(name, sizeof name, "gguf/expected_%s.gguf", tags[k]);
        char *want = slurp(name, &wn);
        CHECK(n == wn && memcmp(data, want, n) == 0);
        snprintf(name, sizeof name, "engine_%s.gguf", tags[k]);
        dump(name, data, n);
        free(want);
        free(data);
    }
    lora_free(&l);
}

/* ---- the reader's view of an exported adapter ---- */

static float tensor_at(const struct gguf_tensor *t, size_t i) {
    float *v = malloc(t->nelem * sizeof *v);
    gguf_tensor_f32(t, v);
    float x = v[i];
    free(v);
    return x;
}

static void check_kvs(const struct gguf_file *f, double alpha) {
    const struct gguf_value *v = gguf_get(f, "general.architecture");
    CHECK(v && v->type == GGUF_STR && strcmp(v->s, "llama") == 0);
    v = gguf_get(f, "general.type");
    CHECK(v && v->type == GGUF_STR && strcmp(v->s, "adapter") == 0);
    v = gguf_get(f, "adapter.type");
    CHECK(v && v->type == GGUF_STR && strcmp(v->s, "lora") == 0);
    v = gguf_get(f, "adapter.lora.alpha");
    CHECK(v && v->type == GGUF_F32 && v->f == (float)alpha);
}

/* q's B rows go from [head][half][j] to [head][j][half]; v's are untouched; A is as PEFT has it. */
static void check_rows(const struct gguf_file *f, const struct lora *l) {
    const struct lora_module *q = lora_find(l, "model.language_model.layers.1.self_attn.q_proj");
    const struct lora_module *v = lora_find(l, "model.language_model.layers.0.self_attn.v_proj");
    const struct gguf_tensor *qa = gguf_find(f, "blk.1.attn_q.weight.lora_a"),
                             *qb = gguf_find(f, "blk.1.attn_q.weight.lora_b"),
                             *vb = gguf_find(f, "blk.0.attn_v.weight.lora_b");
    CHECK(q && v && qa && qb && vb);
    if (!q || !v || !qa || !qb || !vb)
        return;
    CHECK(qa->ne[0] == 64 && qa->ne[1] == 2 && qb->ne[0] == 2 && qb->ne[1] == 64);
    CHECK(tensor_at(qa, 2 * 64 - 1) == q->A[2 * 64 - 1]);
    /* head 2, pair j = 3, second of the pair: new row 2*16 + 2*3 + 1 = 39, old row 2*16 + 8 + 3 = 43 */
    CHECK(tensor_at(qb, 39 * 2 + 1) == q->B[43 * 2 + 1]);
    CHECK(tensor_at(qb, 38 * 2) == q->B[35 * 2]);
    CHECK(tensor_at(vb, 31 * 2 + 1) == v->B[31 * 2 + 1]);
}

static void test_roundtrip(void) {
    struct text_config t = tiny_text();
    struct lora l = {0};
    read_fixture_adapter(&t, &l);
    void *data;
    size_t n;
    CHECK(gguf_lora_encode(&l, &t, GGUF_DT_F32, &data, &n) == 0);
    struct gguf_file f;
    CHECK(gguf_parse(data, n, "export", &f) == 0);
    CHECK(f.version == 3 && f.nkv == 4 && f.nt == 2 * l.n && f.alignment == 32);
    check_kvs(&f, l.alpha);
    check_rows(&f, &l);
    CHECK(strcmp(f.t[0].name, "blk.0.attn_q.weight.lora_a") == 0);
    CHECK(strcmp(f.t[f.nt - 1].name, "blk.1.ffn_down.weight.lora_b") == 0);
    gguf_free(&f);
    void *again;
    size_t n2;
    CHECK(gguf_lora_encode(&l, &t, GGUF_DT_F32, &again, &n2) == 0 && n2 == n && memcmp(again, data, n) == 0);
    free(again);
    free(data);
    lora_free(&l);
}

/* ---- the format ---- */

static void test_alignment(void) {
    float a[5] = {1, 2, 3, 4, 5}, b[3] = {-1, 0.5f, 7};
    for (int k = 0; k < 2; k++) {
        uint32_t al = k ? 64 : 32;
        struct gguf_kv kv[2] = {{"general.architecture", {.type = GGUF_STR, .s = "llama", .len = 5}},
                                {"general.alignment", {.type = GGUF_U32, .u = 64}}};
        struct gguf_tensor_in t[2] = {{"a", a, 1, {5}, GGUF_DT_F32}, {"b", b, 2, {3, 1}, GGUF_DT_F16}};
        void *data;
        size_t n;
        CHECK(gguf_write(kv, k ? 2 : 1, t, 2, &data, &n) == 0);
        struct gguf_file f;
        CHECK(gguf_parse(data, n, "aligned", &f) == 0);
        CHECK(f.alignment == al && f.data_start % al == 0 && n % al == 0);
        CHECK(f.nt == 2 && f.t[0].offset == 0 && f.t[1].offset == al);
        CHECK(f.t[1].ndim == 2 && f.t[1].ne[0] == 1 && f.t[1].ne[1] == 3 && f.t[1].type == GGUF_DT_F16);
        const uint8_t *p = data;
        int zero = 1;
        for (size_t i = f.data_start + 20; i < f.data_start + al; i++)
            zero &= p[i] == 0;
        CHECK(zero);
        CHECK(tensor_at(&f.t[0], 4) == 5 && tensor_at(&f.t[1], 1) == 0.5f);
        gguf_free(&f);
        free(data);
    }
    struct gguf_kv bad = {"general.alignment", {.type = GGUF_U32, .u = 48}};
    float x = 1;
    struct gguf_tensor_in t = {"x", &x, 1, {1}, GGUF_DT_F32};
    void *data;
    size_t n;
    CHECK(gguf_write(&bad, 1, &t, 1, &data, &n) == -1 && one_line());
}

static uint16_t f16_bits_written(float x) {
    struct gguf_tensor_in t = {"x", &x, 1, {1}, GGUF_DT_F16};
    void *data;
    size_t n;
    struct gguf_file f;
    uint16_t h = 0xdead;
    if (gguf_write(NULL, 0, &t, 1, &data, &n) == 0 && gguf_parse(data, n, "h", &f) == 0) {
        const uint8_t *p = f.t[0].data;
        h = (uint16_t)(p[0] | p[1] << 8);
        gguf_free(&f);
        free(data);
    }
    return h;
}

static void test_f16(void) {
    CHECK(f16_bits_written(1.0f) == 0x3c00);
    CHECK(f16_bits_written(-2.0f) == 0xc000);
    CHECK(f16_bits_written(65504.0f) == 0x7bff);
    CHECK(f16_bits_written(70000.0f) == 0x7c00);           /* overflow: inf */
    CHECK(f16_bits_written(1.0f + 1.0f / 2048) == 0x3c00); /* a tie: to even */
    CHECK(f16_bits_written(1.0f + 3.0f / 2048) == 0x3c02); /* a tie: to even, upwards */
    CHECK(f16_bits_written(5.9604645e-8f) == 0x0001);      /* the smallest subnormal */
    CHECK(f16_bits_written(0.1f) == 0x2e66);
    CHECK(f16_bits_written(-0.0f) == 0x8000);
}

/* ---- hostile files ---- */

static void put(struct buf *b, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++)
        buf_putc(b, (char)(uint8_t)(v >> (8 * i)));
}

static void put_s(struct buf *b, const char *s) {
    put(b, strlen(s), 8);
    buf_puts(b, s);
}

/* A header with one tensor "t" of ne[0] = 4 (F32, offset `off`), after `kvs` (raw key-values, nkv of them).
 */
static void hostile(struct buf *b, uint64_t nkv, const char *kvs, size_t kvlen, uint64_t type, uint64_t off) {
    buf_append(b, "GGUF", 4);
    put(b, 3, 4);
    put(b, 1, 8);
    put(b, nkv, 8);
    buf_append(b, kvs, kvlen);
    put_s(b, "t");
    put(b, 1, 4);
    put(b, 4, 8);
    put(b, type, 4);
    put(b, off, 8);
    while (b->len % 32)
        buf_putc(b, 0);
    for (int i = 0; i < 32; i++)
        buf_putc(b, 0);
}

static void expect_refused(const struct buf *b, const char *needle) {
    struct gguf_file f;
    CHECK(gguf_parse(b->data, b->len, "bad.gguf", &f) == -1);
    CHECK(one_line());
    CHECK_HAS(err_msg(), needle);
    CHECK(f.t == NULL && f.kv == NULL);
}

static void kv_case(const char *kvs, size_t len, uint64_t nkv, const char *needle) {
    struct buf b = {0};
    hostile(&b, nkv, kvs, len, 0, 0);
    expect_refused(&b, needle);
    buf_free(&b);
}

static void test_hostile_kvs(void) {
    struct buf k = {0};
    put_s(&k, "a");
    put(&k, 99, 4);
    kv_case(k.data, k.len, 1, "unknown value type 99");
    k.len = 0;
    put_s(&k, "a");
    put(&k, GGUF_ARR, 4);
    put(&k, GGUF_ARR, 4);
    put(&k, 1, 8);
    kv_case(k.data, k.len, 1, "array of value type 9");
    k.len = 0;
    put_s(&k, "a");
    put(&k, GGUF_ARR, 4);
    put(&k, GGUF_U32, 4);
    put(&k, 1ull << 61, 8);
    kv_case(k.data, k.len, 1, "runs past the end");
    k.len = 0;
    for (int i = 0; i < 2; i++) {
        put_s(&k, "dup");
        put(&k, GGUF_U8, 4);
        put(&k, 1, 1);
    }
    kv_case(k.data, k.len, 2, "duplicate key 'dup'");
    k.len = 0;
    put_s(&k, "b");
    put(&k, GGUF_BOOL, 4);
    put(&k, 2, 1);
    kv_case(k.data, k.len, 1, "bool value 2");
    k.len = 0;
    put_s(&k, "general.alignment");
    put(&k, GGUF_U32, 4);
    put(&k, 24, 4);
    kv_case(k.data, k.len, 1, "power of two");
    k.len = 0;
    put(&k, 1ull << 40, 8);
    kv_case(k.data, k.len, 1, "runs past the end");
    kv_case("", 0, 1ull << 60, "cannot fit");
    buf_free(&k);
}

static void test_hostile_tensors(void) {
    struct buf b = {0};
    hostile(&b, 0, "", 0, 2, 0);
    expect_refused(&b, "ggml type 2");
    b.len = 0;
    hostile(&b, 0, "", 0, 0, 8);
    expect_refused(&b, "not aligned");
    b.len = 0;
    hostile(&b, 0, "", 0, 0, 64);
    expect_refused(&b, "past the end");
    b.len = 0;
    hostile(&b, 0, "", 0, 0, 0);
    for (int i = 0; i < 64; i++)
        buf_putc(&b, 1);
    expect_refused(&b, "after the last tensor");
    b.len = 0;
    hostile(&b, 0, "", 0, 0, 0);
    memcpy(b.data + 4, "\2\0\0\0", 4);
    expect_refused(&b, "version 2");
    memcpy(b.data, "GGUX", 4);
    expect_refused(&b, "no magic");
    buf_free(&b);
    /* two tensors at one offset, the same name, a zero dimension, too many dimensions */
    float x[4] = {0};
    struct gguf_tensor_in t[2] = {{"p", x, 1, {4}, GGUF_DT_F32}, {"q", x, 1, {4}, GGUF_DT_F32}};
    void *data;
    size_t n;
    CHECK(gguf_write(NULL, 0, t, 2, &data, &n) == 0);
    struct gguf_file f;
    uint8_t *p = data;
    size_t q_off = 24 + (8 + 1 + 4 + 8 + 4 + 8) + (8 + 1 + 4 + 8 + 4);
    p[q_off] = 0; /* q's offset 32 -> 0 */
    CHECK(gguf_parse(data, n, "x", &f) == -1 && strstr(err_msg(), "overlaps"));
    p[24 + 8] = 'q'; /* p's name -> q */
    CHECK(gguf_parse(data, n, "x", &f) == -1 && strstr(err_msg(), "duplicate tensor 'q'"));
    memset(p + 24 + 8 + 1 + 4, 0, 8);
    CHECK(gguf_parse(data, n, "x", &f) == -1 && strstr(err_msg(), "dimension 0 is 0"));
    p[24 + 8 + 1] = 5;
    CHECK(gguf_parse(data, n, "x", &f) == -1 && strstr(err_msg(), "5 dimensions"));
    free(data);
    t[1].name = "p";
    CHECK(gguf_write(NULL, 0, t, 2, &data, &n) == -1 && one_line());
}

/* Every prefix of a real file short of its last tensor's data fails, and no flipped byte crashes. */
static void test_truncation_and_flips(void) {
    struct text_config t = tiny_text();
    struct lora l = {0};
    read_fixture_adapter(&t, &l);
    void *data;
    size_t n;
    CHECK(gguf_lora_encode(&l, &t, GGUF_DT_F16, &data, &n) == 0);
    lora_free(&l);
    struct gguf_file f;
    CHECK(gguf_parse(data, n, "x", &f) == 0);
    size_t end = f.data_start + f.t[f.nt - 1].offset + f.t[f.nt - 1].nbytes;
    gguf_free(&f);
    int all = 1;
    for (size_t k = 0; k < end; k++)
        all &= gguf_parse(data, k, "x", &f) == -1 && one_line();
    CHECK(all);
    uint8_t *p = data;
    for (size_t i = 0; i < 1800 && i < n; i++) {
        p[i] ^= 0xa5;
        if (gguf_parse(data, n, "x", &f) == 0)
            gguf_free(&f);
        p[i] ^= 0xa5;
    }
    free(data);
}

/* ---- hostile adapters ---- */

static void test_lora_errors(void) {
    struct text_config t = tiny_text();
    struct lora l;
    void *data;
    size_t n, in, out;
    CHECK(gguf_lora_shape(&t, "model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj", &in,
                          &out) == -1);
    CHECK(gguf_lora_shape(&t, "model.language_model.layers.2.self_attn.q_proj", &in, &out) == -1);
    CHECK(gguf_lora_shape(&t, "model.language_model.layers.01.self_attn.q_proj", &in, &out) == -1);
    CHECK(gguf_lora_shape(&t, "language_model.model.layers.1.mlp.down_proj", &in, &out) == 0 && in == 176 &&
          out == 64);
    const char *cases[4][2] = {
        {"model.multi_modal_projector.linear_1", "no llama.cpp tensor"},
        {"model.language_model.layers.0.self_attn.k_proj", "the base model's is [32, 64]"},
        {"language_model.model.layers.0.mlp.up_proj", "the same module"},
        {"model.language_model.layers.1.self_attn.q_proj", "odd"},
    };
    for (int k = 0; k < 4; k++) {
        CHECK(lora_create(&l, 2, 4, 0) == 0);
        CHECK(lora_add(&l, "model.language_model.layers.0.mlp.up_proj", 64, 176) == 0);
        CHECK(lora_add(&l, cases[k][0], 64, k == 1 ? 64 : k == 2 ? 176 : 64) == 0);
        struct text_config u = t;
        if (k == 3)
            u.heads = 8, u.kv_heads = 8, u.hidden = 72; /* head size 9 */
        CHECK(gguf_lora_encode(&l, k == 3 ? &u : &t, GGUF_DT_F32, &data, &n) == -1 && one_line());
        CHECK_HAS(err_msg(), cases[k][1]);
        lora_free(&l);
    }
}

int main(void) {
    const char *d = getenv("PULSE_TEST_DATA");
    snprintf(data_dir, sizeof data_dir, "%s", d ? d : "tests/data");
    test_fixture();
    test_roundtrip();
    test_alignment();
    test_f16();
    test_hostile_kvs();
    test_hostile_tensors();
    test_truncation_and_flips();
    test_lora_errors();
    return check_done("test_engine_gguf");
}

/* gguf: GGUF v3 writer and strict reader, and LoRA adapters in llama.cpp's layout (see gguf.h). */
#include "engine/gguf.h"

#include "engine/safetensors.h"
#include "util/buf.h"
#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_MAX_NAME 63 /* llama.cpp's GGML_MAX_NAME (64) less the NUL: a longer name does not load */

static const size_t vsize[GGUF_NVTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static size_t align_up(size_t x, size_t a) {
    return (x + a - 1) / a * a;
}

static int is_pow2(uint64_t a) {
    return a && (a & (a - 1)) == 0;
}

/* ---- writing ------------------------------------------------------------------------------------------ */

static void put_le(struct buf *b, uint64_t v, size_t n) {
    uint8_t x[8];
    for (size_t i = 0; i < n; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    buf_append(b, x, n);
}

static void put_str(struct buf *b, const char *s, size_t len) {
    put_le(b, len, 8);
    buf_append(b, s, len);
}

static uint64_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static int put_value(struct buf *b, const struct gguf_value *v) {
    if (v->type >= GGUF_NVTYPES || v->type == GGUF_ARR)
        return err_set("value type %d cannot be written", (int)v->type);
    put_le(b, (uint64_t)v->type, 4);
    switch (v->type) {
    case GGUF_STR:
        put_str(b, v->s, v->len);
        break;
    case GGUF_F32:
        put_le(b, f32_bits((float)v->f), 4);
        break;
    case GGUF_F64: {
        uint64_t u;
        memcpy(&u, &v->f, 8);
        put_le(b, u, 8);
        break;
    }
    case GGUF_I8:
    case GGUF_I16:
    case GGUF_I32:
    case GGUF_I64:
        put_le(b, (uint64_t)v->i, vsize[v->type]);
        break;
    default:
        put_le(b, v->u, vsize[v->type]);
    }
    return 0;
}

/* general.alignment when the key-values set it (a U32 power of two), else the default; 0 when invalid. */
static uint32_t kv_alignment(const struct gguf_kv *kv, size_t nkv) {
    for (size_t i = 0; i < nkv; i++)
        if (strcmp(kv[i].key, "general.alignment") == 0)
            return kv[i].v.type == GGUF_U32 && is_pow2(kv[i].v.u) && kv[i].v.u <= 1u << 30
                       ? (uint32_t)kv[i].v.u
                       : 0;
    return GGUF_DEFAULT_ALIGNMENT;
}

static int tensor_bytes(const struct gguf_tensor_in *t, size_t *nbytes) {
    if (t->ndim < 1 || t->ndim > GGUF_MAX_DIMS)
        return err_set("tensor '%s': %d dimensions (1 to %d)", t->name, t->ndim, GGUF_MAX_DIMS);
    size_t n = t->type == GGUF_DT_F16 ? 2 : 4;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0 || t->shape[d] > SIZE_MAX / 8 / n)
            return err_set("tensor '%s': dimension %d is %llu", t->name, d, (unsigned long long)t->shape[d]);
        n *= t->shape[d];
    }
    *nbytes = n;
    return 0;
}

static int check_names(const struct gguf_kv *kv, size_t nkv, const struct gguf_tensor_in *t, size_t nt) {
    for (size_t i = 0; i < nkv; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(kv[i].key, kv[j].key) == 0)
                return err_set("duplicate key '%s'", kv[i].key);
    for (size_t i = 0; i < nt; i++) {
        if (!*t[i].name || strlen(t[i].name) > GGUF_MAX_NAME)
            return err_set("tensor name '%s' is empty or over %d bytes", t[i].name, GGUF_MAX_NAME);
        if (t[i].type != GGUF_DT_F32 && t[i].type != GGUF_DT_F16)
            return err_set("tensor '%s': type %d is not F32 or F16", t[i].name, (int)t[i].type);
        for (size_t j = 0; j < i; j++)
            if (strcmp(t[i].name, t[j].name) == 0)
                return err_set("duplicate tensor '%s'", t[i].name);
    }
    return 0;
}

/* Header, key-values and tensor infos; *offsets receives each tensor's offset in the data section. */
static int write_meta(struct buf *b, const struct gguf_kv *kv, size_t nkv, const struct gguf_tensor_in *t,
                      size_t nt, size_t align, size_t *offsets, size_t *data_len) {
    buf_append(b, GGUF_MAGIC, 4);
    put_le(b, GGUF_VERSION, 4);
    put_le(b, nt, 8);
    put_le(b, nkv, 8);
    for (size_t i = 0; i < nkv; i++) {
        put_str(b, kv[i].key, strlen(kv[i].key));
        if (put_value(b, &kv[i].v) != 0)
            return err_prefix("key '%s'", kv[i].key);
    }
    size_t at = 0;
    for (size_t i = 0; i < nt; i++) {
        size_t nbytes = 0;
        if (tensor_bytes(&t[i], &nbytes) != 0)
            return -1;
        put_str(b, t[i].name, strlen(t[i].name));
        put_le(b, (uint64_t)t[i].ndim, 4);
        for (int d = t[i].ndim - 1; d >= 0; d--)
            put_le(b, t[i].shape[d], 8);
        put_le(b, (uint64_t)t[i].type, 4);
        put_le(b, at, 8);
        offsets[i] = at;
        at = align_up(at + nbytes, align);
    }
    *data_len = at;
    return 0;
}

static void put_tensor_data(uint8_t *dst, const struct gguf_tensor_in *t, size_t nelem) {
    for (size_t i = 0; i < nelem; i++) {
        uint64_t bits = t->type == GGUF_DT_F16 ? st_f32_to_half(t->data[i]) : f32_bits(t->data[i]);
        size_t w = t->type == GGUF_DT_F16 ? 2 : 4;
        for (size_t k = 0; k < w; k++)
            dst[i * w + k] = (uint8_t)(bits >> (8 * k));
    }
}

int gguf_write(const struct gguf_kv *kv, size_t nkv, const struct gguf_tensor_in *t, size_t nt, void **data,
               size_t *len) {
    *data = NULL;
    *len = 0;
    uint32_t align = kv_alignment(kv, nkv);
    if (!align)
        return err_set("gguf write: general.alignment must be a U32 power of two");
    if (check_names(kv, nkv, t, nt) != 0)
        return err_prefix("gguf write");
    struct buf b = {0};
    size_t *offsets = xcalloc(nt + 1, sizeof *offsets), data_len = 0;
    if (write_meta(&b, kv, nkv, t, nt, align, offsets, &data_len) != 0) {
        buf_free(&b);
        free(offsets);
        return err_prefix("gguf write");
    }
    size_t start = align_up(b.len, align);
    uint8_t *out = xcalloc(start + data_len + 1, 1); /* zero: the padding */
    memcpy(out, b.data, b.len);
    for (size_t i = 0; i < nt; i++) {
        size_t nelem = 1;
        for (int d = 0; d < t[i].ndim; d++)
            nelem *= t[i].shape[d];
        put_tensor_data(out + start + offsets[i], &t[i], nelem);
    }
    buf_free(&b);
    free(offsets);
    *data = out;
    *len = start + data_len;
    return 0;
}

/* ---- reading ------------------------------------------------------------------------------------------ */

struct cur {
    const uint8_t *p;
    size_t n, at;
};

static size_t left(const struct cur *c) {
    return c->n - c->at;
}

static int get_le(struct cur *c, size_t w, uint64_t *v) {
    *v = 0; /* set on every path: callers read it only on success, but GCC -O3 cannot see that */
    if (left(c) < w)
        return err_set("truncated at byte %zu", c->at);
    for (size_t i = 0; i < w; i++)
        *v |= (uint64_t)c->p[c->at + i] << (8 * i);
    c->at += w;
    return 0;
}

/* A string's bytes, copied and NUL-terminated. */
static int get_str(struct cur *c, char **s, size_t *len) {
    uint64_t n;
    if (get_le(c, 8, &n) != 0)
        return -1;
    if (n > left(c))
        return err_set("string of %llu bytes at byte %zu runs past the end", (unsigned long long)n,
                       c->at - 8);
    *s = xmalloc((size_t)n + 1);
    memcpy(*s, c->p + c->at, (size_t)n);
    (*s)[n] = 0;
    *len = (size_t)n;
    c->at += (size_t)n;
    return 0;
}

static int skip_array(struct cur *c, struct gguf_value *v) {
    uint64_t at, n;
    if (get_le(c, 4, &at) != 0 || get_le(c, 8, &n) != 0)
        return -1;
    if (at >= GGUF_NVTYPES || at == GGUF_ARR)
        return err_set("array of value type %llu", (unsigned long long)at);
    v->atype = (enum gguf_vtype)at;
    v->raw = c->p + c->at;
    if (at != GGUF_STR) {
        if (n > left(c) / vsize[at])
            return err_set("array of %llu elements runs past the end", (unsigned long long)n);
        c->at += (size_t)n * vsize[at];
    } else {
        if (n > left(c) / 8)
            return err_set("array of %llu strings runs past the end", (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t len;
            if (get_le(c, 8, &len) != 0)
                return -1;
            if (len > left(c))
                return err_set("array string %llu runs past the end", (unsigned long long)i);
            c->at += (size_t)len;
        }
    }
    v->n = (size_t)n;
    return 0;
}

static int get_value(struct cur *c, struct gguf_value *v) {
    uint64_t type, x;
    if (get_le(c, 4, &type) != 0)
        return -1;
    if (type >= GGUF_NVTYPES)
        return err_set("unknown value type %llu", (unsigned long long)type);
    v->type = (enum gguf_vtype)type;
    if (type == GGUF_STR)
        return get_str(c, &v->s, &v->len);
    if (type == GGUF_ARR)
        return skip_array(c, v);
    if (get_le(c, vsize[type], &x) != 0)
        return -1;
    int bits = (int)(8 * vsize[type]);
    if (type == GGUF_I8 || type == GGUF_I16 || type == GGUF_I32 || type == GGUF_I64)
        v->i = bits == 64 ? (int64_t)x : (int64_t)(x ^ (1ull << (bits - 1))) - (int64_t)(1ull << (bits - 1));
    else if (type == GGUF_F32) {
        float f;
        uint32_t u = (uint32_t)x;
        memcpy(&f, &u, 4);
        v->f = f;
    } else if (type == GGUF_F64)
        memcpy(&v->f, &x, 8);
    else
        v->u = x;
    if (type == GGUF_BOOL && x > 1)
        return err_set("bool value %llu", (unsigned long long)x);
    return 0;
}

static int bad_name(const char *s, size_t len) {
    return len == 0 || strlen(s) != len;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A name that occurs twice among n records of `step` bytes whose first member is the name; NULL if none. */
static const char *find_dup(const void *base, size_t n, size_t step) {
    const char **v = xcalloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        memcpy(&v[i], (const char *)base + i * step, sizeof *v);
    qsort(v, n, sizeof *v, cmp_str);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (strcmp(v[i], v[i - 1]) == 0)
            dup = v[i];
    free(v);
    return dup;
}

static int read_kvs(struct cur *c, struct gguf_file *f, uint64_t nkv) {
    if (nkv > left(c) / 13) /* key length, one byte of key, type, one byte of value */
        return err_set("%llu key-values cannot fit in the file", (unsigned long long)nkv);
    f->kv = xcalloc((size_t)nkv + 1, sizeof *f->kv);
    for (; f->nkv < nkv; f->nkv++) {
        struct gguf_kv *kv = &f->kv[f->nkv];
        size_t len;
        if (get_str(c, &kv->key, &len) != 0)
            return err_prefix("key-value %zu", f->nkv);
        if (bad_name(kv->key, len))
            return err_set("key-value %zu: the key is empty or holds a NUL", f->nkv);
        if (get_value(c, &kv->v) != 0)
            return err_prefix("key '%s'", kv->key);
    }
    const char *dup = find_dup(f->kv, f->nkv, sizeof *f->kv);
    return dup ? err_set("duplicate key '%s'", dup) : 0;
}

static int read_alignment(struct gguf_file *f) {
    const struct gguf_value *a = gguf_get(f, "general.alignment");
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!a)
        return 0;
    if (a->type != GGUF_U32 || !is_pow2(a->u) || a->u > 1u << 30)
        return err_set("general.alignment must be a U32 power of two");
    f->alignment = (uint32_t)a->u;
    return 0;
}

static int read_tensor_info(struct cur *c, struct gguf_tensor *t) {
    size_t len;
    uint64_t nd, type;
    if (get_str(c, &t->name, &len) != 0)
        return -1;
    if (bad_name(t->name, len) || len > GGUF_MAX_NAME)
        return err_set("a tensor name is empty, holds a NUL or is over %d bytes", GGUF_MAX_NAME);
    if (get_le(c, 4, &nd) != 0)
        return -1;
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return err_set("tensor '%s': %llu dimensions", t->name, (unsigned long long)nd);
    t->ndim = (int)nd;
    t->nelem = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (get_le(c, 8, &t->ne[d]) != 0)
            return -1;
        if (t->ne[d] == 0 || t->ne[d] > (SIZE_MAX / 8) / t->nelem)
            return err_set("tensor '%s': dimension %d is %llu", t->name, d, (unsigned long long)t->ne[d]);
        t->nelem *= (size_t)t->ne[d];
    }
    if (get_le(c, 4, &type) != 0 || get_le(c, 8, &t->offset) != 0)
        return -1;
    if (type != GGUF_DT_F32 && type != GGUF_DT_F16)
        return err_set("tensor '%s': ggml type %llu (only F32 and F16 are read)", t->name,
                       (unsigned long long)type);
    t->type = (enum gguf_dtype)type;
    t->nbytes = t->nelem * (type == GGUF_DT_F16 ? 2 : 4);
    return 0;
}

static int cmp_offset(const void *a, const void *b) {
    const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a,
                             *y = *(const struct gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Every tensor aligned, inside the file, none overlapping; nothing but padding after the last. */
static int place_tensors(const struct cur *c, struct gguf_file *f) {
    size_t room = c->n - f->data_start, end = 0;
    const struct gguf_tensor **v = xcalloc(f->nt + 1, sizeof *v);
    for (size_t i = 0; i < f->nt; i++)
        v[i] = &f->t[i];
    qsort(v, f->nt, sizeof *v, cmp_offset);
    int rc = 0;
    for (size_t i = 0; i < f->nt && rc == 0; i++) {
        const struct gguf_tensor *t = v[i];
        if (t->offset % f->alignment != 0)
            rc = err_set("tensor '%s': offset %llu is not aligned to %u", t->name,
                         (unsigned long long)t->offset, f->alignment);
        else if (t->offset < end)
            rc = err_set("tensor '%s' overlaps another", t->name);
        else if (t->offset > room || t->nbytes > room - t->offset)
            rc = err_set("tensor '%s' runs past the end of the file", t->name);
        else
            end = (size_t)t->offset + t->nbytes;
    }
    free(v);
    if (rc == 0 && room > align_up(end, f->alignment))
        rc = err_set("%zu bytes after the last tensor", room - end);
    for (size_t i = 0; i < f->nt && rc == 0; i++)
        f->t[i].data = c->p + f->data_start + f->t[i].offset;
    return rc;
}

static int read_tensors(struct cur *c, struct gguf_file *f, uint64_t nt) {
    if (nt > left(c) / 25) /* name length, one byte of name, n_dims, one dim, type, offset */
        return err_set("%llu tensors cannot fit in the file", (unsigned long long)nt);
    f->t = xcalloc((size_t)nt + 1, sizeof *f->t);
    for (; f->nt < nt; f->nt++)
        if (read_tensor_info(c, &f->t[f->nt]) != 0)
            return err_prefix("tensor info %zu", f->nt);
    const char *dup = find_dup(f->t, f->nt, sizeof *f->t);
    if (dup)
        return err_set("duplicate tensor '%s'", dup);
    f->data_start = align_up(c->at, f->alignment);
    if (f->data_start > c->n && f->nt)
        return err_set("the data section is missing");
    if (f->data_start > c->n) /* no tensors: a writer may leave out the final padding */
        f->data_start = c->n;
    return place_tensors(c, f);
}

static int parse(struct cur *c, struct gguf_file *f) {
    uint64_t version, nt, nkv;
    if (c->n < 4 || memcmp(c->p, GGUF_MAGIC, 4) != 0)
        return err_set("not a GGUF file (no magic)");
    c->at = 4;
    if (get_le(c, 4, &version) != 0 || get_le(c, 8, &nt) != 0 || get_le(c, 8, &nkv) != 0)
        return -1;
    if (version != GGUF_VERSION)
        return err_set("GGUF version %llu (only 3 is read)", (unsigned long long)version);
    f->version = (uint32_t)version;
    if (read_kvs(c, f, nkv) != 0 || read_alignment(f) != 0)
        return -1;
    return read_tensors(c, f, nt);
}

int gguf_parse(const void *data, size_t n, const char *what, struct gguf_file *f) {
    memset(f, 0, sizeof *f);
    struct cur c = {data, n, 0};
    if (parse(&c, f) == 0)
        return 0;
    gguf_free(f);
    return err_prefix("%s", what);
}

void gguf_free(struct gguf_file *f) {
    for (size_t i = 0; f->kv && i <= f->nkv; i++) {
        free(f->kv[i].key);
        free(f->kv[i].v.s);
    }
    for (size_t i = 0; f->t && i <= f->nt; i++)
        free(f->t[i].name);
    free(f->kv);
    free(f->t);
    memset(f, 0, sizeof *f);
}

const struct gguf_value *gguf_get(const struct gguf_file *f, const char *key) {
    for (size_t i = 0; i < f->nkv; i++)
        if (strcmp(f->kv[i].key, key) == 0)
            return &f->kv[i].v;
    return NULL;
}

const struct gguf_tensor *gguf_find(const struct gguf_file *f, const char *name) {
    for (size_t i = 0; i < f->nt; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    return NULL;
}

void gguf_tensor_f32(const struct gguf_tensor *t, float *out) {
    const uint8_t *p = t->data;
    for (size_t i = 0; i < t->nelem; i++) {
        if (t->type == GGUF_DT_F16) {
            out[i] = st_half_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        } else {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                         (uint32_t)p[4 * i + 3] << 24;
            memcpy(&out[i], &u, 4);
        }
    }
}

/* ---- LoRA adapters ------------------------------------------------------------------------------------ */

#define NPROJ 7
enum { P_Q, P_K, P_V, P_O, P_GATE, P_UP, P_DOWN };
static const char *const hf_proj[NPROJ] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                           "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                           "mlp.down_proj"};
static const char *const gg_proj[NPROJ] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                           "ffn_gate", "ffn_up", "ffn_down"};
static const char *const lm_prefix[2] = {"model.language_model.layers.", "language_model.model.layers."};

/* Layer and projection of a decoder module; -1 when it is not one. The layer is decimal without a sign or
 * leading zeros, as PyTorch names it. */
static int parse_module(const char *name, const struct text_config *t, int *layer, int *proj) {
    for (int k = 0; k < 2; k++) {
        size_t pl = strlen(lm_prefix[k]), nd = 0;
        if (strncmp(name, lm_prefix[k], pl) != 0)
            continue;
        const char *s = name + pl;
        long l = 0;
        while (s[nd] >= '0' && s[nd] <= '9' && nd < 6)
            l = l * 10 + (s[nd++] - '0');
        if (nd == 0 || s[nd] != '.' || (nd > 1 && s[0] == '0') || l >= t->layers)
            return -1;
        for (int p = 0; p < NPROJ; p++)
            if (strcmp(s + nd + 1, hf_proj[p]) == 0) {
                *layer = (int)l;
                *proj = p;
                return 0;
            }
    }
    return -1;
}

static void proj_shape(const struct text_config *t, int p, size_t *in, size_t *out) {
    size_t c = (size_t)t->hidden, kv = c / (size_t)t->heads * (size_t)t->kv_heads,
           im = (size_t)t->intermediate;
    const size_t ins[NPROJ] = {c, c, c, c, c, c, im}, outs[NPROJ] = {c, kv, kv, c, im, im, c};
    *in = ins[p];
    *out = outs[p];
}

int gguf_lora_shape(void *ctx, const char *module, size_t *in, size_t *out) {
    const struct text_config *t = ctx;
    int l, p;
    if (parse_module(module, t, &l, &p) != 0)
        return -1;
    proj_shape(t, p, in, out);
    return 0;
}

/* B [out, r] with its rows reordered per head: row h*hd + 2j + s of the result is row h*hd + s*hd/2 + j of
 * B (llama.cpp's converter reshapes q/k weights to [heads, 2, hd/2, ...] and swaps the middle axes). */
static float *permute_rows(const float *B, size_t out, size_t r, size_t heads) {
    size_t hd = out / heads, half = hd / 2;
    float *P = xmalloc(out * r * sizeof *P);
    for (size_t h = 0; h < heads; h++)
        for (size_t j = 0; j < half; j++)
            for (size_t s = 0; s < 2; s++)
                memcpy(P + (h * hd + 2 * j + s) * r, B + (h * hd + s * half + j) * r, r * sizeof *P);
    return P;
}

struct lora_entry {
    const struct lora_module *m;
    int key; /* layer * NPROJ + projection: the file's order */
};

static int cmp_entry(const void *a, const void *b) {
    const struct lora_entry *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

static int map_modules(const struct lora *l, const struct text_config *t, struct lora_entry *e) {
    if ((t->hidden / t->heads) % 2 != 0)
        return err_set("the head size %d is odd: llama.cpp's rotary layout needs pairs",
                       t->hidden / t->heads);
    for (size_t i = 0; i < l->n; i++) {
        const struct lora_module *m = &l->m[i];
        int layer, p;
        size_t in, out;
        if (parse_module(m->name, t, &layer, &p) != 0)
            return err_set("module '%s' has no llama.cpp tensor (only the decoder's projections map)",
                           m->name);
        proj_shape(t, p, &in, &out);
        if (m->in != in || m->out != out)
            return err_set("module '%s' is [%zu, %zu], the base model's is [%zu, %zu]", m->name, m->out,
                           m->in, out, in);
        e[i] = (struct lora_entry){m, layer * NPROJ + p};
    }
    qsort(e, l->n, sizeof *e, cmp_entry);
    for (size_t i = 1; i < l->n; i++)
        if (e[i].key == e[i - 1].key)
            return err_set("modules '%s' and '%s' are the same module", e[i - 1].m->name, e[i].m->name);
    return 0;
}

static char *tensor_name(int key, const char *ab) {
    struct buf b = {0};
    buf_printf(&b, "blk.%d.%s.weight.%s", key / NPROJ, gg_proj[key % NPROJ], ab);
    return buf_take(&b);
}

/* Two tensors per module; permuted copies of B for q and k are left in perm[i] (freed by the caller). */
static void lora_tensors(const struct lora *l, const struct text_config *t, const struct lora_entry *e,
                         enum gguf_dtype type, struct gguf_tensor_in *ti, float **perm) {
    size_t r = (size_t)l->r;
    for (size_t i = 0; i < l->n; i++) {
        const struct lora_module *m = e[i].m;
        int p = e[i].key % NPROJ;
        const float *B = m->B;
        if (p == P_Q || p == P_K)
            B = perm[i] = permute_rows(m->B, m->out, r, (size_t)(p == P_Q ? t->heads : t->kv_heads));
        ti[2 * i] = (struct gguf_tensor_in){tensor_name(e[i].key, "lora_a"), m->A, 2, {r, m->in}, type};
        ti[2 * i + 1] = (struct gguf_tensor_in){tensor_name(e[i].key, "lora_b"), B, 2, {m->out, r}, type};
    }
}

static int lora_write(const struct lora *l, const struct gguf_tensor_in *ti, void **data, size_t *len) {
    struct gguf_kv kv[4] = {
        {"general.architecture", {.type = GGUF_STR, .s = "llama", .len = 5}},
        {"general.type", {.type = GGUF_STR, .s = "adapter", .len = 7}},
        {"adapter.type", {.type = GGUF_STR, .s = "lora", .len = 4}},
        {"adapter.lora.alpha", {.type = GGUF_F32, .f = (float)l->alpha}},
    };
    return gguf_write(kv, 4, ti, 2 * l->n, data, len);
}

int gguf_lora_encode(const struct lora *l, const struct text_config *t, enum gguf_dtype type, void **data,
                     size_t *len) {
    *data = NULL;
    *len = 0;
    if (l->r <= 0 || l->n == 0)
        return err_set("gguf lora: the adapter has %s", l->r <= 0 ? "no rank" : "no modules");
    if (!isfinite((float)l->alpha))
        return err_set("gguf lora: lora_alpha %g does not fit a float", l->alpha);
    if (t->heads <= 0 || t->kv_heads <= 0 || t->hidden % t->heads != 0 || t->heads % t->kv_heads != 0)
        return err_set("gguf lora: the base model's head counts are inconsistent");
    struct lora_entry *e = xcalloc(l->n, sizeof *e);
    struct gguf_tensor_in *ti = xcalloc(2 * l->n, sizeof *ti);
    float **perm = xcalloc(l->n, sizeof *perm);
    int rc = map_modules(l, t, e);
    if (rc == 0) {
        lora_tensors(l, t, e, type, ti, perm);
        rc = lora_write(l, ti, data, len);
    }
    for (size_t i = 0; i < l->n; i++) {
        free((char *)ti[2 * i].name);
        free((char *)ti[2 * i + 1].name);
        free(perm[i]);
    }
    free(e);
    free(ti);
    free(perm);
    return rc == 0 ? 0 : err_prefix("gguf lora");
}

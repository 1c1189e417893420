/* safetensors: reading (strict validation of every header field before any byte of data is trusted), writing
 * (canonical, deterministic bytes) and the exact fp16/bf16 <-> fp32 conversions. */
#include "engine/safetensors.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation's limit: the largest real headers are a few MB. */
#define ST_MAX_HEADER (100u * 1000u * 1000u)
#define ST_MAX_DIMS 8

static const char *const st_dtype_names[] = {"F32", "F16", "BF16"};
static const size_t st_dtype_sizes[] = {4, 2, 2};

/* ---- fp16 / bf16 --------------------------------------------------------------------------------------- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Subnormal halves are mant * 2^-24, computed from an integer: the result is an fp32 normal, so a
 * flush-to-zero FPU mode (which the CPU kernels may set) cannot change it. */
static inline float half_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, em = h & 0x7fffu;
    uint32_t normal = (em << 13) + ((127 - 15) << 23);      /* rebias the exponent, widen the mantissa */
    uint32_t special = (em << 13) | 0x7f800000u;            /* inf, or NaN with its payload kept */
    uint32_t sub = f32_bits((float)(h & 0x3ff) * 0x1p-24f); /* zero or subnormal */
    uint32_t r = em >= 0x7c00 ? special : em < 0x400 ? sub : normal;
    return bits_f32(r | sign);
}

float st_half_to_f32(uint16_t h) {
    return half_to_f32(h);
}

/* Rounds m * 2^-shift to the nearest integer, ties to even (shift >= 1). */
static uint32_t shift_rne(uint32_t m, int shift) {
    if (shift > 31)
        return 0;
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return r + (rem > half || (rem == half && (r & 1)));
}

uint16_t st_f32_to_half(float f) {
    uint32_t x = f32_bits(f), abs = x & 0x7fffffffu;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    if (abs > 0x7f800000u) { /* NaN: keep the top payload bits, and never let it become infinity */
        uint16_t m = (uint16_t)((abs >> 13) & 0x3ff);
        return sign | 0x7c00 | (m ? m : 0x200);
    }
    if (abs >= 0x477ff000u) /* >= 65520, halfway past the largest half (65504): rounds to infinity */
        return sign | 0x7c00;
    if (abs < 0x38800000u) { /* below 2^-14: a half subnormal (or zero) = round(|f| * 2^24) */
        uint32_t e = abs >> 23;
        if (e == 0) /* fp32 zero or subnormal: far below half's smallest subnormal */
            return sign;
        /* |f| * 2^24 = (mant | 2^23) * 2^(e - 127 - 23 + 24), shift = 126 - e >= 14 */
        return sign | (uint16_t)shift_rne((abs & 0x7fffffu) | 0x800000u, 126 - (int)e);
    }
    /* Normal: rebias the exponent, drop 13 mantissa bits rounding to even (a carry into the exponent is the
     * correct result, up to 65504 by the check above). */
    uint32_t h = (abs >> 13) - ((127 - 15) << 10), rem = abs & 0x1fff;
    h += rem > 0x1000 || (rem == 0x1000 && (h & 1));
    return sign | (uint16_t)h;
}

float st_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) { /* NaN: truncate, keeping it a NaN */
        uint16_t h = (uint16_t)(x >> 16);
        return (h & 0x7f) ? h : (uint16_t)(h | 0x40);
    }
    /* Round to nearest even; a carry out of the mantissa correctly reaches the next binade or infinity. */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* ---- conversion of a whole tensor ---------------------------------------------------------------------- */

/* Data in a file need not be aligned for its type: elements are loaded through memcpy or byte by byte
 * (little-endian), never through a cast pointer. */
static inline uint16_t load_le16(const unsigned char *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint16_t v;
    memcpy(&v, p, 2); /* one unaligned load */
    return v;
#else
    return (uint16_t)(p[0] | p[1] << 8);
#endif
}

static uint32_t load_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void st_to_f32(const struct st_tensor *t, float *out) {
    const unsigned char *p = t->data;
    size_t n = t->nelem;
    if (t->dtype == ST_F32) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (n)
            memcpy(out, p, n * 4);
#else
        for (size_t i = 0; i < n; i++)
            out[i] = bits_f32(load_le32(p + 4 * i));
#endif
    } else if (t->dtype == ST_F16) {
        for (size_t i = 0; i < n; i++)
            out[i] = half_to_f32(load_le16(p + 2 * i));
    } else {
        for (size_t i = 0; i < n; i++)
            out[i] = st_bf16_to_f32(load_le16(p + 2 * i));
    }
}

/* ---- parsing ------------------------------------------------------------------------------------------- */

static int dtype_parse(const char *s, enum st_dtype *out) {
    for (int i = 0; i < 3; i++)
        if (strcmp(s, st_dtype_names[i]) == 0) {
            *out = (enum st_dtype)i;
            return 0;
        }
    return -1;
}

/* Element count and byte size of a shape, refusing negative dims and any overflow of size_t. */
static int shape_size(const int64_t *shape, int ndim, size_t elem, size_t *nelem, size_t *nbytes) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return -1;
        if ((uint64_t)shape[d] > SIZE_MAX || (shape[d] && n > SIZE_MAX / (size_t)shape[d]))
            return -1;
        n *= (size_t)shape[d];
    }
    if (n > SIZE_MAX / elem)
        return -1;
    *nelem = n;
    *nbytes = n * elem;
    return 0;
}

static int shape_parse(const struct json *v, const char *name, struct st_tensor *t) {
    if (!v || v->type != JSON_ARR)
        return err_set("tensor \"%s\": \"shape\" must be an array of integers", name);
    if (v->len > ST_MAX_DIMS)
        return err_set("tensor \"%s\": %zu dimensions (at most %d)", name, v->len, ST_MAX_DIMS);
    t->ndim = (int)v->len;
    for (size_t d = 0; d < v->len; d++) {
        if (v->items[d]->type != JSON_INT || v->items[d]->i < 0)
            return err_set("tensor \"%s\": shape[%zu] is not a non-negative integer", name, d);
        t->shape[d] = v->items[d]->i;
    }
    if (shape_size(t->shape, t->ndim, st_dtype_sizes[t->dtype], &t->nelem, &t->nbytes) < 0)
        return err_set("tensor \"%s\": shape is too large (its size overflows)", name);
    return 0;
}

/* Reads [begin, end] and checks it against the shape and the data region; *begin is kept for the coverage
 * check. */
static int offsets_parse(const struct json *v, const char *name, struct st_tensor *t,
                         const unsigned char *base, size_t data_len, size_t *begin) {
    if (!v || v->type != JSON_ARR || v->len != 2 || v->items[0]->type != JSON_INT ||
        v->items[1]->type != JSON_INT || v->items[0]->i < 0 || v->items[1]->i < 0)
        return err_set("tensor \"%s\": \"data_offsets\" must be two non-negative integers", name);
    uint64_t b = (uint64_t)v->items[0]->i, e = (uint64_t)v->items[1]->i;
    if (b > e)
        return err_set("tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin", name,
                       b, e);
    if (e > data_len)
        return err_set("tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                       "] run past the data region (%zu bytes)",
                       name, b, e, data_len);
    if (e - b != t->nbytes)
        return err_set("tensor \"%s\": %s shape needs %zu bytes but data_offsets span %" PRIu64, name,
                       st_dtype_names[t->dtype], t->nbytes, e - b);
    *begin = (size_t)b;
    t->data = base + b;
    return 0;
}

static int tensor_parse(const char *name, const struct json *v, const unsigned char *base, size_t data_len,
                        struct st_tensor *t, size_t *begin) {
    if (v->type != JSON_OBJ)
        return err_set("tensor \"%s\": its entry is not an object", name);
    for (size_t i = 0; i < v->len; i++)
        if (strcmp(v->keys[i], "dtype") && strcmp(v->keys[i], "shape") && strcmp(v->keys[i], "data_offsets"))
            return err_set("tensor \"%s\": unexpected field \"%s\"", name, v->keys[i]);
    const char *dt = json_get_str(v, "dtype");
    if (!dt)
        return err_set("tensor \"%s\": \"dtype\" is missing or not a string", name);
    if (dtype_parse(dt, &t->dtype) < 0)
        return err_set("tensor \"%s\": dtype \"%.20s\" is not supported (F32, F16, BF16)", name, dt);
    if (shape_parse(json_get(v, "shape"), name, t) < 0)
        return -1;
    if (offsets_parse(json_get(v, "data_offsets"), name, t, base, data_len, begin) < 0)
        return -1;
    t->name = xstrdup(name);
    return 0;
}

static int meta_parse(const struct json *v, struct st_file *f) {
    if (v->type != JSON_OBJ)
        return err_set("\"__metadata__\" must be an object of strings");
    f->meta_keys = xcalloc(v->len ? v->len : 1, sizeof *f->meta_keys);
    f->meta_values = xcalloc(v->len ? v->len : 1, sizeof *f->meta_values);
    for (size_t i = 0; i < v->len; i++) {
        const struct json *s = v->items[i];
        if (s->type != JSON_STR || strlen(s->s) != s->len)
            return err_set("\"__metadata__\" value of \"%s\" is not a string", v->keys[i]);
        f->meta_keys[f->nmeta] = xstrdup(v->keys[i]);
        f->meta_values[f->nmeta++] = xstrdup(s->s);
    }
    return 0;
}

/* A tensor's place in the data region, for the coverage check. */
struct span {
    size_t begin, end;
    const char *name;
};

static int span_cmp(const void *a, const void *b) {
    const struct span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The tensors must tile the data region exactly: sorted by offset, each begins where the previous ended. */
static int coverage_check(struct span *s, size_t n, size_t data_len) {
    qsort(s, n, sizeof *s, span_cmp);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].begin < at)
            return err_set("tensor \"%s\" overlaps the previous tensor (bytes %zu..%zu)", s[i].name,
                           s[i].begin, at);
        if (s[i].begin > at)
            return err_set("hole in the data region: bytes %zu..%zu before tensor \"%s\" belong to no tensor",
                           at, s[i].begin, s[i].name);
        at = s[i].end;
    }
    if (at != data_len)
        return err_set("data region is %zu bytes but the tensors cover %zu", data_len, at);
    return 0;
}

static int tensor_name_cmp(const void *a, const void *b) {
    return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

/* Walks the parsed header: every entry is a tensor except "__metadata__". */
static int header_walk(const struct json *h, const unsigned char *base, size_t data_len, struct st_file *f) {
    size_t cap = h->len ? h->len : 1;
    f->t = xcalloc(cap, sizeof *f->t);
    struct span *spans = xcalloc(cap, sizeof *spans);
    int rc = 0;
    for (size_t i = 0; i < h->len && rc == 0; i++) {
        if (strcmp(h->keys[i], "__metadata__") == 0) {
            rc = meta_parse(h->items[i], f);
            continue;
        }
        struct st_tensor *t = &f->t[f->n];
        rc = tensor_parse(h->keys[i], h->items[i], base, data_len, t, &spans[f->n].begin);
        if (rc == 0) {
            spans[f->n].end = spans[f->n].begin + t->nbytes;
            spans[f->n++].name = t->name;
        }
    }
    if (rc == 0)
        rc = coverage_check(spans, f->n, data_len);
    free(spans);
    if (rc == 0)
        qsort(f->t, f->n, sizeof *f->t, tensor_name_cmp);
    return rc;
}

static int header_parse(const unsigned char *p, size_t n, struct st_file *f) {
    if (n < 8)
        return err_set("%zu bytes is too short for a safetensors file (an 8-byte header length comes first)",
                       n);
    uint64_t hlen = (uint64_t)load_le32(p) | (uint64_t)load_le32(p + 4) << 32;
    if (hlen > ST_MAX_HEADER)
        return err_set("header length %" PRIu64 " exceeds the 100 MB limit", hlen);
    if (hlen > n - 8)
        return err_set("header length %" PRIu64 " runs past the end of the file (%zu bytes)", hlen, n);
    if (hlen == 0 || p[8] != '{')
        return err_set("header does not start with '{'");
    struct json *h = json_parse((const char *)p + 8, (size_t)hlen);
    if (!h)
        return err_prefix("header");
    int rc = h->type == JSON_OBJ ? header_walk(h, p + 8 + hlen, n - 8 - (size_t)hlen, f)
                                 : err_set("header is not a JSON object");
    json_free(h);
    return rc;
}

int st_parse(const void *data, size_t n, const char *what, struct st_file *f) {
    memset(f, 0, sizeof *f);
    if (header_parse(data, n, f) < 0) {
        st_close(f);
        return err_prefix("%s", what);
    }
    return 0;
}

/* ---- files --------------------------------------------------------------------------------------------- */

/* The whole file in memory: mmap'd (read-only, private), or read when mmap is not possible. */
static int file_load(int fd, const char *path, size_t size, struct st_file *f) {
    void *m = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    if (m != MAP_FAILED) {
        f->map = m;
        f->mapped = 1;
        return 0;
    }
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf)
        return err_set("%s: out of memory for %zu bytes", path, size);
    for (size_t got = 0; got < size;) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(buf);
            return r < 0 ? err_errno("%s: read", path) : err_set("%s: file shrank while being read", path);
        }
        got += (size_t)r;
    }
    f->map = buf;
    f->mapped = 0;
    return 0;
}

int st_open(const char *path, struct st_file *f) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_errno("%s: cannot open", path);
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? err_errno("%s: stat", path) : 0;
    if (rc == 0 && !S_ISREG(st.st_mode))
        rc = err_set("%s: not a regular file", path);
    if (rc == 0 && (uint64_t)st.st_size > SIZE_MAX)
        rc = err_set("%s: too large to map", path);
    if (rc == 0)
        rc = file_load(fd, path, (size_t)st.st_size, f);
    close(fd);
    if (rc < 0)
        return -1;
    void *map = f->map;
    int mapped = f->mapped;
    size_t size = (size_t)st.st_size;
    if (st_parse(map, size, path, f) < 0) {
        if (mapped)
            munmap(map, size);
        else
            free(map);
        return -1;
    }
    f->map = map;
    f->mapped = mapped;
    f->size = size;
    return 0;
}

void st_close(struct st_file *f) {
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->t[i].name);
    free(f->t);
    for (size_t i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    if (f->map && f->mapped)
        munmap(f->map, f->size);
    else
        free(f->map);
    memset(f, 0, sizeof *f);
}

const struct st_tensor *st_find(const struct st_file *f, const char *name) {
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->t[mid].name);
        if (c == 0)
            return &f->t[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- writing ------------------------------------------------------------------------------------------- */

static int out_name_cmp(const void *a, const void *b) {
    return strcmp((*(const struct st_out *const *)a)->name, (*(const struct st_out *const *)b)->name);
}

/* Checks one tensor to be written and returns its byte size in *nbytes. */
static int out_check(const struct st_out *t, size_t *nelem, size_t *nbytes) {
    if (!t->name)
        return err_set("safetensors write: a tensor has no name");
    if (strcmp(t->name, "__metadata__") == 0)
        return err_set("safetensors write: \"__metadata__\" cannot name a tensor");
    if ((unsigned)t->dtype > ST_BF16)
        return err_set("safetensors write: tensor \"%s\": unknown dtype %d", t->name, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
        return err_set("safetensors write: tensor \"%s\": %d dimensions (0 to %d)", t->name, t->ndim,
                       ST_MAX_DIMS);
    if (shape_size(t->shape, t->ndim, st_dtype_sizes[t->dtype], nelem, nbytes) < 0)
        return err_set("safetensors write: tensor \"%s\": negative or overflowing shape", t->name);
    if (*nelem && !t->data)
        return err_set("safetensors write: tensor \"%s\": no data", t->name);
    return 0;
}

static struct json *out_entry(const struct st_out *t, size_t begin, size_t nbytes) {
    struct json *e = json_obj(), *shape = json_arr(), *off = json_arr();
    for (int d = 0; d < t->ndim; d++)
        json_push(shape, json_int(t->shape[d]));
    json_push(off, json_int((int64_t)begin));
    json_push(off, json_int((int64_t)(begin + nbytes)));
    json_set(e, "dtype", json_str(st_dtype_names[t->dtype]));
    json_set(e, "shape", shape);
    json_set(e, "data_offsets", off);
    return e;
}

static struct json *meta_obj(const char *const *kv, size_t npairs) {
    struct json *m = json_obj();
    for (size_t i = 0; i < npairs; i++) {
        if (!kv[2 * i] || !kv[2 * i + 1] || json_get(m, kv[2 * i])) {
            json_free(m);
            err_set("safetensors write: metadata key %zu is missing, has no value or repeats", i);
            return NULL;
        }
        json_set(m, kv[2 * i], json_str(kv[2 * i + 1]));
    }
    return m;
}

/* Builds the header object for tensors in `order` (sorted by name, sizes in nbytes). */
static struct json *out_header(const struct st_out *const *order, const size_t *nbytes, size_t n,
                               const char *const *meta_kv, size_t nmeta) {
    struct json *h = json_obj();
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        json_set(h, order[i]->name, out_entry(order[i], at, nbytes[i]));
        at += nbytes[i];
    }
    if (nmeta) {
        struct json *m = meta_obj(meta_kv, nmeta);
        if (!m) {
            json_free(h);
            return NULL;
        }
        json_set(h, "__metadata__", m);
    }
    return h;
}

static void out_data(const struct st_out *t, size_t nelem, unsigned char *p) {
    for (size_t i = 0; i < nelem; i++) {
        if (t->dtype == ST_F32) {
            uint32_t u = f32_bits(t->data[i]);
            for (int b = 0; b < 4; b++)
                p[4 * i + b] = (unsigned char)(u >> (8 * b));
        } else {
            uint16_t h = t->dtype == ST_F16 ? st_f32_to_half(t->data[i]) : st_f32_to_bf16(t->data[i]);
            p[2 * i] = (unsigned char)h;
            p[2 * i + 1] = (unsigned char)(h >> 8);
        }
    }
}

/* Sorts the tensors by name and checks them all (names unique, shapes valid, total size representable);
 * fills nelem / nbytes per sorted position and the total. */
static int out_prepare(const struct st_out **order, size_t n, size_t *nelem, size_t *nbytes, size_t *total) {
    for (size_t i = 0; i < n; i++)
        if (!order[i]->name)
            return err_set("safetensors write: a tensor has no name");
    qsort(order, n, sizeof *order, out_name_cmp);
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        if (out_check(order[i], &nelem[i], &nbytes[i]) < 0)
            return -1;
        if (i && strcmp(order[i - 1]->name, order[i]->name) == 0)
            return err_set("safetensors write: tensor name \"%s\" repeats", order[i]->name);
        if (*total > SIZE_MAX / 2 - nbytes[i])
            return err_set("safetensors write: the tensors are too large in total");
        *total += nbytes[i];
    }
    return 0;
}

/* Lays out length, header padded with spaces to a multiple of 8 (so the data starts 8-aligned), data. */
static void *out_assemble(const struct st_out *const *order, const size_t *nelem, const size_t *nbytes,
                          size_t n, const char *hdr, size_t hlen, size_t total, size_t *len) {
    size_t padded = (hlen + 7) / 8 * 8;
    unsigned char *out = xmalloc(8 + padded + total);
    for (int b = 0; b < 8; b++)
        out[b] = (unsigned char)((uint64_t)padded >> (8 * b));
    memcpy(out + 8, hdr, hlen);
    memset(out + 8 + hlen, ' ', padded - hlen);
    unsigned char *p = out + 8 + padded;
    for (size_t i = 0; i < n; i++) {
        out_data(order[i], nelem[i], p);
        p += nbytes[i];
    }
    *len = 8 + padded + total;
    return out;
}

int st_write(const struct st_out *tensors, size_t n, const char *const *meta_kv, size_t nmeta_pairs,
             void **data, size_t *len) {
    *data = NULL;
    *len = 0;
    const struct st_out **order = xcalloc(n ? n : 1, sizeof *order);
    size_t *nelem = xcalloc(n ? n : 1, sizeof *nelem), *nbytes = xcalloc(n ? n : 1, sizeof *nbytes);
    for (size_t i = 0; i < n; i++)
        order[i] = &tensors[i];
    size_t total = 0, hlen = 0;
    char *hdr = NULL;
    if (out_prepare(order, n, nelem, nbytes, &total) == 0) {
        struct json *h = out_header(order, nbytes, n, meta_kv, nmeta_pairs);
        hdr = h ? json_write(h, JSON_CANONICAL, &hlen) : NULL;
        json_free(h);
    }
    if (hdr && hlen > ST_MAX_HEADER)
        err_set("safetensors write: header of %zu bytes exceeds the 100 MB limit", hlen);
    else if (hdr)
        *data = out_assemble(order, nelem, nbytes, n, hdr, hlen, total, len);
    free(hdr);
    free(order);
    free(nelem);
    free(nbytes);
    return *data ? 0 : -1;
}

/* test_engine_safetensors: exhaustive fp16/bf16 conversions, write/read round trips, a file written by the
 * Python safetensors package, and a table of hostile files that must each be refused with one clear line. */
#include "check.h"
#include "engine/safetensors.h"
#include "util/err.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The neighbours of a positive finite float (local, so the test needs no libm). */
static float next_down(float f) {
    return from_bits(bits(f) - 1);
}

static float next_up(float f) {
    return from_bits(bits(f) + 1);
}

/* m * 2^e, exact (powers of two are exact in double for these ranges). */
static double scale2(double m, int e) {
    for (; e > 0; e--)
        m *= 2;
    for (; e < 0; e++)
        m /= 2;
    return m;
}

/* ---- conversions --------------------------------------------------------------------------------------- */

/* The value of a half computed independently of the bit tricks: (-1)^s * 2^(e-15) * (1 + m/1024). */
static double half_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? scale2(m, -24) : e == 31 ? (m ? NAN : INFINITY) : scale2(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_half_exhaustive(void) {
    int bad_rt = 0, bad_val = 0, bad_nan = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = st_half_to_f32(h);
        bad_rt += st_f32_to_half(f) != h;
        double want = half_value(h);
        if (isnan(want))
            bad_nan += !isnan(f);
        else
            bad_val += (double)f != want || !signbit(f) != !signbit(want);
    }
    CHECK(bad_rt == 0);
    CHECK(bad_val == 0);
    CHECK(bad_nan == 0);
}

static void test_bf16_exhaustive(void) {
    int bad_rt = 0, bad_val = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = st_bf16_to_f32(h);
        bad_rt += st_f32_to_bf16(f) != h;
        bad_val += bits(f) != i << 16;
    }
    CHECK(bad_rt == 0);
    CHECK(bad_val == 0);
}

/* Between every pair of neighbouring finite values (a, b) of a 16-bit format, the midpoint (exact in fp32)
 * must round to the even one of the two, and one fp32 ulp either side of it to the nearer. */
static int rounding_errors(float (*to32)(uint16_t), uint16_t (*from32)(float), uint16_t last_finite) {
    int bad = 0;
    for (uint32_t a = 0; a < last_finite; a++) {
        float fa = to32((uint16_t)a), fb = to32((uint16_t)(a + 1));
        float mid = (float)(((double)fa + (double)fb) / 2);
        uint16_t even = (a & 1) ? (uint16_t)(a + 1) : (uint16_t)a;
        bad += from32(mid) != even;
        bad += from32(next_down(mid)) != a;
        bad += from32(next_up(mid)) != a + 1;
        bad += from32(-mid) != (even | 0x8000);
    }
    return bad;
}

static void test_rounding(void) {
    CHECK(rounding_errors(st_half_to_f32, st_f32_to_half, 0x7bff) == 0);
    CHECK(rounding_errors(st_bf16_to_f32, st_f32_to_bf16, 0x7f7f) == 0);
    /* Past the largest finite value: ties to even reach infinity, just below stays finite. */
    CHECK(st_f32_to_half(65520.0f) == 0x7c00);
    CHECK(st_f32_to_half(next_down(65520.0f)) == 0x7bff);
    CHECK(st_f32_to_half(-1e30f) == 0xfc00);
    CHECK(st_f32_to_half(INFINITY) == 0x7c00);
    CHECK(st_f32_to_bf16(INFINITY) == 0x7f80);
    CHECK(st_f32_to_bf16(3.4028235e38f) == 0x7f80); /* FLT_MAX rounds up to infinity in bf16 */
    /* Tiny values: half's smallest subnormal is 2^-24; half of it ties to even (zero), a hair more rounds up.
     */
    CHECK(st_f32_to_half(0x1p-25f) == 0);
    CHECK(st_f32_to_half(next_up(0x1p-25f)) == 1);
    CHECK(st_f32_to_half(0x1p-149f) == 0);
    CHECK(st_f32_to_half(-0.0f) == 0x8000);
    /* NaNs stay NaNs, even when the payload sits only in the bits that are dropped. */
    float nan_low = from_bits(0x7f800001);
    CHECK(isnan(st_half_to_f32(st_f32_to_half(nan_low))));
    CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(nan_low))));
    CHECK(isnan(st_half_to_f32(st_f32_to_half(-NAN))));
}

/* ---- round trip ---------------------------------------------------------------------------------------- */

static const float vals[6] = {1.0f, -2.5f, 0.1f, 3.14159265f, -65504.0f, 1e-7f};

static int write_sample(void **data, size_t *len, int reversed) {
    static const float scalar = 42.5f;
    struct st_out t[5] = {
        {"b.f32", vals, 2, {2, 3}, ST_F32},      {"a.f16", vals, 1, {6}, ST_F16},
        {"c.bf16", vals, 3, {3, 1, 2}, ST_BF16}, {"d.scalar", &scalar, 0, {0}, ST_F32},
        {"e.empty", NULL, 2, {0, 4}, ST_F16},
    };
    if (reversed)
        for (int i = 0; i < 2; i++) {
            struct st_out x = t[i];
            t[i] = t[4 - i];
            t[4 - i] = x;
        }
    const char *meta[] = {"format", "pt", "note", "unit \"test\""};
    return st_write(t, 5, meta, 2, data, len);
}

static void check_sample(const struct st_file *f) {
    CHECK(f->n == 5);
    CHECK_STR(f->t[0].name, "a.f16");
    CHECK_STR(f->t[4].name, "e.empty");
    const struct st_tensor *t = st_find(f, "b.f32");
    float out[6];
    CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->nelem == 6);
    if (t) {
        st_to_f32(t, out);
        CHECK(memcmp(out, vals, sizeof out) == 0);
    }
    t = st_find(f, "a.f16");
    CHECK(t && t->dtype == ST_F16 && t->nbytes == 12);
    if (t) {
        st_to_f32(t, out);
        for (int i = 0; i < 6; i++)
            CHECK(out[i] == st_half_to_f32(st_f32_to_half(vals[i])));
        CHECK(out[0] == 1.0f && out[4] == -65504.0f && out[2] != 0.1f);
    }
    t = st_find(f, "c.bf16");
    CHECK(t && t->dtype == ST_BF16 && t->ndim == 3 && t->shape[2] == 2);
    if (t) {
        st_to_f32(t, out);
        for (int i = 0; i < 6; i++)
            CHECK(out[i] == st_bf16_to_f32(st_f32_to_bf16(vals[i])));
    }
    t = st_find(f, "d.scalar");
    CHECK(t && t->ndim == 0 && t->nelem == 1 && t->nbytes == 4);
    if (t) {
        st_to_f32(t, out);
        CHECK(out[0] == 42.5f);
    }
    t = st_find(f, "e.empty");
    CHECK(t && t->ndim == 2 && t->nelem == 0 && t->nbytes == 0);
    CHECK(st_find(f, "missing") == NULL && st_find(f, "a") == NULL && st_find(f, "zzz") == NULL);
    CHECK(f->nmeta == 2);
    if (f->nmeta == 2) {
        CHECK_STR(f->meta_keys[0], "format");
        CHECK_STR(f->meta_values[0], "pt");
        CHECK_STR(f->meta_values[1], "unit \"test\"");
    }
}

static void test_round_trip(void) {
    void *d1, *d2;
    size_t n1, n2;
    CHECK(write_sample(&d1, &n1, 0) == 0);
    CHECK(write_sample(&d2, &n2, 1) == 0);
    CHECK(n1 == n2 && memcmp(d1, d2, n1) == 0); /* the order given does not matter */
    uint64_t hlen = 0;
    memcpy(&hlen, d1, 8);
    CHECK(hlen % 8 == 0 && hlen < n1);
    CHECK(((char *)d1)[8] == '{');
    CHECK(((char *)d1)[8 + hlen - 1] == ' ' || ((char *)d1)[8 + hlen - 1] == '}');
    struct st_file f;
    CHECK(st_parse(d1, n1, "mem", &f) == 0);
    check_sample(&f);
    CHECK(f.map == NULL); /* st_parse borrows the caller's bytes */
    st_close(&f);

    /* Through a file: st_open maps it. */
    char path[] = "/tmp/test_st_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, d1, n1) == (ssize_t)n1);
    close(fd);
    CHECK(st_open(path, &f) == 0);
    CHECK(f.mapped == 1 && f.size == n1);
    check_sample(&f);
    st_close(&f);
    unlink(path);
    CHECK(st_open(path, &f) < 0);
    CHECK_HAS(err_msg(), "cannot open");
    CHECK(st_open("/tmp", &f) < 0);
    CHECK_HAS(err_msg(), "not a regular file");
    char empty[] = "/tmp/test_st_XXXXXX";
    fd = mkstemp(empty); /* an empty file cannot be mapped: it is read, then refused */
    close(fd);
    CHECK(st_open(empty, &f) < 0);
    CHECK_HAS(err_msg(), "0 bytes is too short");
    CHECK_HAS(err_msg(), empty);
    unlink(empty);
    free(d1);
    free(d2);

    /* An empty file: just "{}" padded. */
    CHECK(st_write(NULL, 0, NULL, 0, &d1, &n1) == 0);
    CHECK(n1 == 16 && memcmp((char *)d1 + 8, "{}      ", 8) == 0);
    CHECK(st_parse(d1, n1, "empty", &f) == 0 && f.n == 0 && f.nmeta == 0);
    st_close(&f);
    free(d1);
}

static void test_write_errors(void) {
    void *d;
    size_t n;
    float x[2] = {0};
    struct st_out dup[2] = {{"w", x, 1, {1}, ST_F32}, {"w", x, 1, {1}, ST_F16}};
    CHECK(st_write(dup, 2, NULL, 0, &d, &n) < 0 && d == NULL);
    CHECK_HAS(err_msg(), "\"w\" repeats");
    struct st_out neg = {"w", x, 1, {-1}, ST_F32};
    CHECK(st_write(&neg, 1, NULL, 0, &d, &n) < 0);
    CHECK_HAS(err_msg(), "negative or overflowing");
    struct st_out deep = {"w", x, 9, {1}, ST_F32};
    CHECK(st_write(&deep, 1, NULL, 0, &d, &n) < 0);
    CHECK_HAS(err_msg(), "9 dimensions");
    struct st_out meta = {"__metadata__", x, 1, {1}, ST_F32};
    CHECK(st_write(&meta, 1, NULL, 0, &d, &n) < 0);
    CHECK_HAS(err_msg(), "cannot name a tensor");
    const char *kv[] = {"k", "1", "k", "2"};
    CHECK(st_write(NULL, 0, kv, 2, &d, &n) < 0);
    CHECK_HAS(err_msg(), "metadata key 1");
}

/* ---- a file from the Python safetensors package -------------------------------------------------------- */

static void test_python_fixture(void) {
    const char *dir = getenv("PULSE_TEST_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/safetensors_py.safetensors", dir ? dir : "tests/data");
    struct st_file f;
    if (st_open(path, &f) < 0) {
        fprintf(stderr, "%s\n", err_msg());
        CHECK(!"fixture readable");
        return;
    }
    /* Values written by tests/reference/make_safetensors_fixture.py (torch does the fp16/bf16 rounding). */
    static const float src[6] = {0.1f, -1.5f, 3.14159265f, 65504.0f, -1e-6f, 1e30f};
    float out[6];
    const struct st_tensor *t = st_find(&f, "weights.f32");
    CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    if (t) {
        st_to_f32(t, out);
        CHECK(memcmp(out, src, sizeof out) == 0);
    }
    t = st_find(&f, "weights.f16");
    CHECK(t && t->dtype == ST_F16 && t->nelem == 6);
    if (t) {
        st_to_f32(t, out);
        for (int i = 0; i < 6; i++)
            CHECK(bits(out[i]) == bits(st_half_to_f32(st_f32_to_half(src[i]))));
        CHECK(isinf(out[5]));
    }
    t = st_find(&f, "weights.bf16");
    CHECK(t && t->dtype == ST_BF16 && t->ndim == 3 && t->shape[0] == 3 && t->shape[1] == 2 &&
          t->shape[2] == 1);
    if (t) {
        st_to_f32(t, out);
        for (int i = 0; i < 6; i++)
            CHECK(bits(out[i]) == bits(st_bf16_to_f32(st_f32_to_bf16(src[i]))));
    }
    t = st_find(&f, "scalar");
    CHECK(t && t->ndim == 0 && t->nelem == 1);
    if (t) {
        st_to_f32(t, out);
        CHECK(out[0] == 7.25f);
    }
    t = st_find(&f, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 5 && t->nbytes == 0);
    CHECK(f.nmeta == 2);
    if (f.nmeta == 2) {
        CHECK_STR(f.meta_keys[0], "format");
        CHECK_STR(f.meta_values[0], "pt");
        CHECK_STR(f.meta_keys[1], "source");
        CHECK_STR(f.meta_values[1], "pulse-pipe fixture");
    }
    st_close(&f);
}

/* ---- hostile files ------------------------------------------------------------------------------------- */

/* A file: the declared header length, the header text, then data_len bytes. */
static unsigned char *mkfile(uint64_t declared, const char *hdr, size_t data_len, size_t *n) {
    size_t h = strlen(hdr);
    unsigned char *p = calloc(1, 8 + h + data_len);
    for (int b = 0; b < 8; b++)
        p[b] = (unsigned char)(declared >> (8 * b));
    memcpy(p + 8, hdr, h);
    *n = 8 + h + data_len;
    return p;
}

struct hostile {
    const char *hdr;
    size_t data_len;
    const char *want;
};

#define T(name, dt, shape, b, e)                                                                             \
    "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static const struct hostile hostile[] = {
    {"{" T("a", "F32", "[1]", 0, 4) "}", 4, NULL},       /* control: valid */
    {"{" T("a", "F32", "[1]", 0, 4) "}      ", 4, NULL}, /* padded with spaces: valid */
    {"not json", 0, "does not start with '{'"},
    {" {}", 0, "does not start with '{'"},
    {"{\"a\":}", 0, "header: json: line 1"},
    {"{" T("a", "I64", "[1]", 0, 8) "}", 8, "dtype \"I64\" is not supported"},
    {"{" T("a", "F32", "[3]", 0, 8) "}", 8, "needs 12 bytes but data_offsets span 8"},
    {"{" T("a", "F32", "[2]", 0, 8) "}", 4, "run past the data region"},
    {"{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[2]", 4, 12) "}", 12, "overlaps"},
    {"{" T("a", "F32", "[1]", 0, 4) "," T("b", "F32", "[1]", 8, 12) "}", 12, "hole in the data region"},
    {"{" T("a", "F32", "[1]", 0, 4) "}", 8, "data region is 8 bytes but the tensors cover 4"},
    {"{" T("a", "F32", "[-1]", 0, 4) "}", 4, "shape[0] is not a non-negative integer"},
    {"{" T("a", "F32", "[4294967296,4294967296,16]", 0, 4) "}", 4, "overflows"},
    {"{" T("a", "F32", "[1]", 0, 4) "," T("a", "F32", "[1]", 4, 8) "}", 8, "duplicate key \"a\""},
    {"{\"__metadata__\":{\"k\":1}," T("a", "F32", "[1]", 0, 4) "}", 4, "value of \"k\" is not a string"},
    {"{\"__metadata__\":[]}", 0, "\"__metadata__\" must be an object"},
    {"{" T("a", "F32", "[1]", 4, 0) "}", 4, "end before they begin"},
    {"{" T("a", "F32", "[1.5]", 0, 4) "}", 4, "shape[0] is not a non-negative integer"},
    {"{" T("a", "F32", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 4, "9 dimensions"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "\"data_offsets\" must be two"},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"dtype\" is missing"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unexpected field \"x\""},
    {"{\"a\":[1]}", 4, "entry is not an object"},
    {"{" T("a", "F32", "[1]", 0, 18446744073709551615) "}", 4, "\"data_offsets\" must be two"},
};

static void check_one_line(const char *m) {
    CHECK(m && *m && !strchr(m, '\n'));
}

static void test_hostile_table(void) {
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        size_t n;
        unsigned char *p = mkfile(strlen(hostile[i].hdr), hostile[i].hdr, hostile[i].data_len, &n);
        struct st_file f;
        err_clear();
        int rc = st_parse(p, n, "evil.safetensors", &f);
        if (!hostile[i].want) {
            CHECK(rc == 0 && f.n == 1);
            st_close(&f);
        } else {
            CHECK(rc < 0 && f.n == 0 && f.t == NULL);
            CHECK_HAS(err_msg(), hostile[i].want);
            CHECK_HAS(err_msg(), "evil.safetensors: ");
            check_one_line(err_msg());
        }
        free(p);
    }
}

static void test_hostile_lengths(void) {
    struct st_file f;
    size_t n;
    unsigned char five[5] = {1, 0, 0, 0, 0};
    CHECK(st_parse(five, 5, "t", &f) < 0);
    CHECK_HAS(err_msg(), "5 bytes is too short");
    unsigned char *p = mkfile(1000, "{}", 8, &n);
    CHECK(st_parse(p, n, "t", &f) < 0);
    CHECK_HAS(err_msg(), "header length 1000 runs past the end of the file (18 bytes)");
    free(p);
    p = mkfile(200000000, "{}", 0, &n);
    CHECK(st_parse(p, n, "t", &f) < 0);
    CHECK_HAS(err_msg(), "exceeds the 100 MB limit");
    free(p);
    p = mkfile(UINT64_MAX, "{}", 0, &n);
    CHECK(st_parse(p, n, "t", &f) < 0);
    CHECK_HAS(err_msg(), "exceeds the 100 MB limit");
    free(p);
    p = mkfile(0, "", 0, &n);
    CHECK(st_parse(p, n, "t", &f) < 0);
    CHECK_HAS(err_msg(), "does not start with '{'");
    free(p);
    p = mkfile(1, "{", 0, &n);
    CHECK(st_parse(p, n, "t", &f) < 0);
    free(p);
    p = mkfile(2, "[]", 0, &n);
    CHECK(st_parse(p, n, "t", &f) < 0);
    CHECK_HAS(err_msg(), "does not start with '{'");
    free(p);
}

/* Every truncation and many single-byte corruptions of a valid file: parsed or refused, never a crash or an
 * out-of-bounds read (run under valgrind), and a refusal always has its one line. */
static void test_mutations(void) {
    void *d;
    size_t n;
    CHECK(write_sample(&d, &n, 0) == 0);
    unsigned char *buf = malloc(n);
    int refused = 0, accepted = 0;
    for (size_t cut = 0; cut < n; cut++) {
        memcpy(buf, d, cut);
        struct st_file f;
        if (st_parse(buf, cut, "cut", &f) == 0) {
            accepted++;
            st_close(&f);
        } else {
            refused++;
            check_one_line(err_msg());
        }
    }
    CHECK(accepted == 0 && refused == (int)n);
    static const unsigned char repl[] = {0, '0', '9', '-', '"', '}', ']', ',', 0xff, 'F'};
    for (size_t at = 0; at < n; at++)
        for (size_t r = 0; r < sizeof repl; r++) {
            memcpy(buf, d, n);
            buf[at] = repl[r];
            struct st_file f;
            if (st_parse(buf, n, "mut", &f) == 0) {
                for (size_t i = 0; i < f.n; i++)
                    CHECK((const unsigned char *)f.t[i].data + f.t[i].nbytes <= buf + n);
                st_close(&f);
            } else {
                check_one_line(err_msg());
            }
        }
    free(buf);
    free(d);
}

int main(void) {
    test_half_exhaustive();
    test_bf16_exhaustive();
    test_rounding();
    test_round_trip();
    test_write_errors();
    test_python_fixture();
    test_hostile_table();
    test_hostile_lengths();
    test_mutations();
    return check_done("test_engine_safetensors");
}

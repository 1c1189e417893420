/* json: tree, strict RFC 8259 parser and canonical/pretty writer (see json.h for the rules). */
#include "util/json.h"
#include "util/buf.h"
#include "util/err.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

/* ---- tree ---------------------------------------------------------------------------------------------- */

static struct json *json_new(enum json_type t) {
    struct json *v = xcalloc(1, sizeof *v);
    v->type = t;
    return v;
}

struct json *json_null(void) {
    return json_new(JSON_NULL);
}

struct json *json_bool(bool b) {
    struct json *v = json_new(JSON_BOOL);
    v->b = b;
    return v;
}

struct json *json_int(int64_t i) {
    struct json *v = json_new(JSON_INT);
    v->i = i;
    return v;
}

struct json *json_num(double n) {
    struct json *v = json_new(JSON_NUM);
    v->n = n;
    return v;
}

struct json *json_strn(const char *s, size_t n) {
    struct json *v = json_new(JSON_STR);
    v->s = xmalloc(n + 1);
    if (n)
        memcpy(v->s, s, n);
    v->s[n] = '\0';
    v->len = n;
    return v;
}

struct json *json_str(const char *s) {
    return s ? json_strn(s, strlen(s)) : json_strn("", 0);
}

struct json *json_arr(void) {
    return json_new(JSON_ARR);
}

struct json *json_obj(void) {
    return json_new(JSON_OBJ);
}

void json_free(struct json *v) {
    if (!v)
        return;
    for (size_t i = 0; i < v->len && (v->type == JSON_ARR || v->type == JSON_OBJ); i++) {
        json_free(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->s);
    free(v);
}

static void json_grow(struct json *v) {
    if (v->len < v->cap)
        return;
    v->cap = v->cap ? v->cap * 2 : 4;
    v->items = xrealloc(v->items, v->cap * sizeof *v->items);
    if (v->type == JSON_OBJ)
        v->keys = xrealloc(v->keys, v->cap * sizeof *v->keys);
}

void json_push(struct json *arr, struct json *val) {
    if (!arr || arr->type != JSON_ARR) {
        json_free(val); /* ownership was handed over; dropping it beats leaking it */
        return;
    }
    json_grow(arr);
    arr->items[arr->len++] = val;
}

static long json_find(const struct json *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJ || !key)
        return -1;
    for (size_t i = 0; i < obj->len; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return (long)i;
    return -1;
}

/* Appends without checking for an existing key (the parser has its own duplicate check). */
static void json_append_key(struct json *obj, char *key, struct json *val) {
    json_grow(obj);
    obj->keys[obj->len] = key;
    obj->items[obj->len++] = val;
}

void json_set(struct json *obj, const char *key, struct json *val) {
    if (!obj || obj->type != JSON_OBJ || !key) {
        json_free(val);
        return;
    }
    long i = json_find(obj, key);
    if (i >= 0) {
        json_free(obj->items[i]);
        obj->items[i] = val;
        return;
    }
    json_append_key(obj, xstrdup(key), val);
}

void json_del(struct json *obj, const char *key) {
    long i = json_find(obj, key);
    if (i < 0)
        return;
    json_free(obj->items[i]);
    free(obj->keys[i]);
    size_t rest = obj->len - (size_t)i - 1;
    memmove(obj->items + i, obj->items + i + 1, rest * sizeof *obj->items);
    memmove(obj->keys + i, obj->keys + i + 1, rest * sizeof *obj->keys);
    obj->len--;
}

struct json *json_clone(const struct json *v) {
    if (!v)
        return NULL;
    if (v->type == JSON_STR)
        return json_strn(v->s, v->len);
    struct json *c = json_new(v->type);
    c->b = v->b;
    c->i = v->i;
    c->n = v->n;
    for (size_t k = 0; k < v->len && (v->type == JSON_ARR || v->type == JSON_OBJ); k++) {
        if (v->type == JSON_ARR)
            json_push(c, json_clone(v->items[k]));
        else
            json_append_key(c, xstrdup(v->keys[k]), json_clone(v->items[k]));
    }
    return c;
}

/* Same value as canonical JSON sees it: -0.0 differs from 0.0, NaN equals NaN, key order does not matter. */
static bool json_num_equal(double a, double b) {
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return a == b && signbit(a) == signbit(b);
}

bool json_equal(const struct json *a, const struct json *b) {
    if (!a || !b)
        return a == b;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case JSON_NULL:
        return true;
    case JSON_BOOL:
        return a->b == b->b;
    case JSON_INT:
        return a->i == b->i;
    case JSON_NUM:
        return json_num_equal(a->n, b->n);
    case JSON_STR:
        return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    case JSON_ARR:
        if (a->len != b->len)
            return false;
        for (size_t i = 0; i < a->len; i++)
            if (!json_equal(a->items[i], b->items[i]))
                return false;
        return true;
    case JSON_OBJ:
        if (a->len != b->len)
            return false;
        for (size_t i = 0; i < a->len; i++)
            if (!json_equal(a->items[i], json_get(b, a->keys[i])))
                return false;
        return true;
    }
    return false;
}

/* ---- look-ups ------------------------------------------------------------------------------------------ */

const struct json *json_get(const struct json *obj, const char *key) {
    long i = json_find(obj, key);
    return i < 0 ? NULL : obj->items[i];
}

const char *json_get_str(const struct json *obj, const char *key) {
    const struct json *v = json_get(obj, key);
    return v && v->type == JSON_STR ? v->s : NULL;
}

int json_get_int(const struct json *obj, const char *key, int64_t *out) {
    const struct json *v = json_get(obj, key);
    if (!v || v->type != JSON_INT)
        return -1;
    *out = v->i;
    return 0;
}

int json_get_num(const struct json *obj, const char *key, double *out) {
    const struct json *v = json_get(obj, key);
    if (v && v->type == JSON_NUM)
        *out = v->n;
    else if (v && v->type == JSON_INT)
        *out = (double)v->i;
    else
        return -1;
    return 0;
}

/* ---- UTF-8 --------------------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (n bytes available), 0 if ill-formed: no overlongs, no
 * encoded surrogates, nothing above U+10FFFF (RFC 3629). */
static size_t utf8_seq(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t need = c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
    if (!need || n < need)
        return 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return need;
}

static void utf8_put(struct buf *b, unsigned long cp) {
    char out[4];
    size_t n;
    if (cp < 0x80) {
        out[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_append(b, out, n);
}

/* ---- parser -------------------------------------------------------------------------------------------- */

struct parser {
    const unsigned char *s;
    size_t len, pos;
    int depth;
};

/* Reports an error at byte offset at, as a 1-based line and byte column. */
static struct json *perr_at(const struct parser *p, size_t at, const char *what) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < p->len; i++) {
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    err_set("json: line %zu col %zu: %s", line, col, what);
    return NULL;
}

static struct json *perr(const struct parser *p, const char *what) {
    return perr_at(p, p->pos, what);
}

static int perr_int(const struct parser *p, size_t at, const char *what) {
    perr_at(p, at, what);
    return -1;
}

/* Names the offending byte, or the end of input. */
static struct json *perr_unexpected(const struct parser *p) {
    char what[64];
    if (p->pos >= p->len)
        return perr(p, "unexpected end of input");
    unsigned c = p->s[p->pos];
    if (c >= 0x20 && c < 0x7F)
        snprintf(what, sizeof what, "unexpected character '%c'", (char)c);
    else
        snprintf(what, sizeof what, "unexpected byte 0x%02x", c);
    return perr(p, what);
}

static void skip_ws(struct parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int peek(const struct parser *p) {
    return p->pos < p->len ? p->s[p->pos] : -1;
}

static struct json *parse_value(struct parser *p);

static struct json *parse_literal(struct parser *p, const char *word, struct json *v) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
        json_free(v);
        return perr(p, "invalid literal (expected true, false or null)");
    }
    p->pos += n;
    return v;
}

static int hex4(const struct parser *p, size_t at, unsigned long *out) {
    if (p->len - at < 4)
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < 4; i++) {
        int c = p->s[at + i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + (unsigned long)d;
    }
    *out = v;
    return 0;
}

/* p->pos is at the 'u' of "\uXXXX"; consumes one code point (two escapes for a surrogate pair). */
static int parse_uescape(struct parser *p, struct buf *b) {
    size_t at = p->pos - 1;
    unsigned long cp, lo;
    if (hex4(p, p->pos + 1, &cp) < 0)
        return perr_int(p, at, "invalid \\u escape (expected 4 hex digits)");
    p->pos += 5;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return perr_int(p, at, "lone low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
            hex4(p, p->pos + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
            return perr_int(p, at, "lone high surrogate in \\u escape");
        p->pos += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    utf8_put(b, cp);
    return 0;
}

/* p->pos is just after a backslash. */
static int parse_escape(struct parser *p, struct buf *b) {
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    int c = peek(p);
    if (c == 'u')
        return parse_uescape(p, b);
    const char *hit = c > 0 ? strchr(from, c) : NULL;
    if (!hit) {
        p->pos--;
        return perr_int(p, p->pos, "invalid escape in string");
    }
    buf_putc(b, to[hit - from]);
    p->pos++;
    return 0;
}

/* Parses a string starting at '"' into b (may hold NUL bytes; b->len is the length). */
static int parse_string_into(struct parser *p, struct buf *b) {
    p->pos++;
    for (;;) {
        if (p->pos >= p->len)
            return perr_int(p, p->pos, "unterminated string");
        unsigned char c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            return 0;
        }
        if (c < 0x20)
            return perr_int(p, p->pos, "control character in string (must be escaped)");
        if (c == '\\') {
            p->pos++;
            if (parse_escape(p, b) < 0)
                return -1;
            continue;
        }
        size_t n = utf8_seq(p->s + p->pos, p->len - p->pos);
        if (!n)
            return perr_int(p, p->pos, "invalid UTF-8 in string");
        buf_append(b, p->s + p->pos, n);
        p->pos += n;
    }
}

static struct json *parse_string(struct parser *p) {
    struct buf b = {0};
    if (parse_string_into(p, &b) < 0) {
        buf_free(&b);
        return NULL;
    }
    struct json *v = json_new(JSON_STR);
    v->len = b.len;
    v->s = buf_take(&b);
    return v;
}

static bool is_digit(int c) {
    return c >= '0' && c <= '9';
}

static int skip_digits(struct parser *p, const char *what) {
    if (!is_digit(peek(p)))
        return perr_int(p, p->pos, what);
    while (is_digit(peek(p)))
        p->pos++;
    return 0;
}

/* An integer literal as int64, or -1 when it does not fit (it then becomes a double). */
static int number_as_int(const struct parser *p, size_t start, int64_t *out) {
    bool neg = p->s[start] == '-';
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (size_t i = start + neg; i < p->pos; i++) {
        unsigned d = p->s[i] - '0';
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

static struct json *number_as_double(const struct parser *p, size_t start) {
    size_t n = p->pos - start;
    char small[64], *tok = n < sizeof small ? small : xmalloc(n + 1);
    memcpy(tok, p->s + start, n);
    tok[n] = '\0';
    double d = strtod(tok, NULL);
    if (tok != small)
        free(tok);
    if (isinf(d))
        return perr_at(p, start, "number out of range");
    return json_num(d);
}

static struct json *parse_number(struct parser *p) {
    size_t start = p->pos;
    bool integral = true;
    if (peek(p) == '-')
        p->pos++;
    if (peek(p) == '0') {
        p->pos++;
        if (is_digit(peek(p)))
            return perr(p, "leading zero in number");
    } else if (skip_digits(p, "invalid number (expected a digit)") < 0) {
        return NULL;
    }
    if (peek(p) == '.') {
        p->pos++;
        integral = false;
        if (skip_digits(p, "invalid number (expected a digit after '.')") < 0)
            return NULL;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        integral = false;
        if (peek(p) == '+' || peek(p) == '-')
            p->pos++;
        if (skip_digits(p, "invalid number (expected a digit in the exponent)") < 0)
            return NULL;
    }
    int64_t i;
    if (integral && number_as_int(p, start, &i) == 0)
        return json_int(i);
    return number_as_double(p, start);
}

static struct json *parse_array(struct parser *p) {
    struct json *arr = json_arr();
    p->pos++;
    skip_ws(p);
    if (peek(p) == ']') {
        p->pos++;
        return arr;
    }
    for (;;) {
        struct json *item = parse_value(p);
        if (!item)
            break;
        json_push(arr, item);
        skip_ws(p);
        if (peek(p) == ']') {
            p->pos++;
            return arr;
        }
        if (peek(p) != ',') {
            perr(p, p->pos < p->len ? "expected ',' or ']' in array" : "unexpected end of input in array");
            break;
        }
        p->pos++;
    }
    json_free(arr);
    return NULL;
}

/* Duplicate-key detection for objects being parsed: an open-addressing set of key indices, so that huge
 * objects (a tokenizer's vocabulary) stay linear. */
struct keyset {
    size_t *slot; /* index + 1; 0 = empty */
    size_t cap;   /* power of two */
};

static size_t key_hash(const char *k) {
    uint64_t h = 1469598103934665603ULL;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return (size_t)h;
}

/* Finds key's slot: the one holding it, or the empty one where it belongs. */
static size_t *keyset_slot(const struct keyset *ks, char *const *keys, const char *key) {
    size_t i = key_hash(key) & (ks->cap - 1);
    while (ks->slot[i] && strcmp(keys[ks->slot[i] - 1], key) != 0)
        i = (i + 1) & (ks->cap - 1);
    return &ks->slot[i];
}

/* Records keys[n] = key (keys[0..n-1] already in the set); -1 if key is already there. */
static int keyset_add(struct keyset *ks, char *const *keys, size_t n, const char *key) {
    if (2 * (n + 1) > ks->cap) {
        free(ks->slot);
        ks->cap = ks->cap ? ks->cap * 2 : 16;
        ks->slot = xcalloc(ks->cap, sizeof *ks->slot);
        for (size_t i = 0; i < n; i++)
            *keyset_slot(ks, keys, keys[i]) = i + 1;
    }
    size_t *s = keyset_slot(ks, keys, key);
    if (*s)
        return -1;
    *s = n + 1;
    return 0;
}

/* Parses `"key" :` into a malloc'd key, refusing NULs (keys are C strings) and duplicates. */
static char *parse_key(struct parser *p, struct keyset *ks, const struct json *obj) {
    size_t at = p->pos;
    struct buf b = {0};
    if (peek(p) != '"') {
        perr(p, p->pos < p->len ? "expected a string key in object" : "unexpected end of input in object");
        return NULL;
    }
    if (parse_string_into(p, &b) < 0)
        goto fail;
    size_t klen = b.len;
    char *key = buf_take(&b);
    if (strlen(key) != klen) {
        free(key);
        perr_at(p, at, "object key contains \\u0000");
        return NULL;
    }
    if (keyset_add(ks, obj->keys, obj->len, key) < 0) {
        char what[96];
        snprintf(what, sizeof what, "duplicate key \"%.40s\" in object", key);
        perr_at(p, at, what);
        free(key);
        return NULL;
    }
    skip_ws(p);
    if (peek(p) == ':') {
        p->pos++;
        return key;
    }
    free(key);
    perr(p, "expected ':' after object key");
    return NULL;
fail:
    buf_free(&b);
    return NULL;
}

static struct json *parse_object(struct parser *p) {
    struct json *obj = json_obj();
    struct keyset ks = {0};
    p->pos++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->pos++;
        return obj;
    }
    for (;;) {
        char *key = parse_key(p, &ks, obj);
        struct json *val = key ? parse_value(p) : NULL;
        if (!val) {
            free(key);
            break;
        }
        json_append_key(obj, key, val);
        skip_ws(p);
        if (peek(p) == '}') {
            p->pos++;
            free(ks.slot);
            return obj;
        }
        if (peek(p) != ',') {
            perr(p, p->pos < p->len ? "expected ',' or '}' in object" : "unexpected end of input in object");
            break;
        }
        p->pos++;
        skip_ws(p);
    }
    free(ks.slot);
    json_free(obj);
    return NULL;
}

static struct json *parse_container(struct parser *p) {
    if (p->depth >= JSON_MAX_DEPTH)
        return perr(p, "nesting deeper than 64 levels");
    p->depth++;
    struct json *v = peek(p) == '[' ? parse_array(p) : parse_object(p);
    p->depth--;
    return v;
}

static struct json *parse_value(struct parser *p) {
    skip_ws(p);
    switch (peek(p)) {
    case '{':
    case '[':
        return parse_container(p);
    case '"':
        return parse_string(p);
    case 't':
        return parse_literal(p, "true", json_bool(true));
    case 'f':
        return parse_literal(p, "false", json_bool(false));
    case 'n':
        return parse_literal(p, "null", json_null());
    default:
        if (peek(p) == '-' || is_digit(peek(p)))
            return parse_number(p);
        return perr_unexpected(p);
    }
}

struct json *json_parse(const char *text, size_t len) {
    struct parser p = {(const unsigned char *)text, text ? len : 0, 0, 0};
    struct json *v = parse_value(&p);
    if (!v)
        return NULL;
    skip_ws(&p);
    if (p.pos < p.len) {
        json_free(v);
        return perr(&p, "unexpected text after the value");
    }
    return v;
}

/* ---- writer -------------------------------------------------------------------------------------------- */

static int write_value(struct buf *b, const struct json *v, int mode, int depth);

/* Shortest "%.{p}g" that reads back to the same double, with ".0" added so a float never looks integral. */
static int write_double(struct buf *b, double d) {
    if (!isfinite(d))
        return err_set("json: cannot write %s (not representable in JSON)", isnan(d) ? "NaN" : "infinity");
    char tmp[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    buf_puts(b, tmp);
    if (!strpbrk(tmp, ".eni"))
        buf_puts(b, ".0");
    return 0;
}

/* Only the escapes JSON requires; '/' and non-ASCII pass through, so each string has one spelling. */
static int write_string(struct buf *b, const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    buf_putc(b, '"');
    for (size_t i = 0; i < len;) {
        unsigned c = u[i];
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\n' ? "\\n"
                          : c == '\t' ? "\\t"
                          : c == '\r' ? "\\r"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                                      : NULL;
        if (esc)
            buf_puts(b, esc);
        else if (c < 0x20)
            buf_printf(b, "\\u%04x", c);
        if (esc || c < 0x20) {
            i++;
            continue;
        }
        size_t n = utf8_seq(u + i, len - i);
        if (!n)
            return err_set("json: cannot write a string that is not valid UTF-8 (byte %zu)", i);
        buf_append(b, u + i, n);
        i += n;
    }
    buf_putc(b, '"');
    return 0;
}

static void write_newline(struct buf *b, int mode, int depth) {
    if (mode != JSON_PRETTY)
        return;
    buf_putc(b, '\n');
    for (int i = 0; i < depth; i++)
        buf_puts(b, "  ");
}

static int write_array(struct buf *b, const struct json *v, int mode, int depth) {
    buf_putc(b, '[');
    for (size_t i = 0; i < v->len; i++) {
        if (i)
            buf_putc(b, ',');
        write_newline(b, mode, depth + 1);
        if (write_value(b, v->items[i], mode, depth + 1) < 0)
            return -1;
    }
    if (v->len)
        write_newline(b, mode, depth);
    buf_putc(b, ']');
    return 0;
}

struct member {
    const char *key;
    const struct json *val;
};

static int member_cmp(const void *a, const void *b) {
    return strcmp(((const struct member *)a)->key, ((const struct member *)b)->key);
}

static int write_object(struct buf *b, const struct json *v, int mode, int depth) {
    struct member *m = xmalloc((v->len ? v->len : 1) * sizeof *m);
    for (size_t i = 0; i < v->len; i++)
        m[i] = (struct member){v->keys[i], v->items[i]};
    qsort(m, v->len, sizeof *m, member_cmp);
    int rc = 0;
    buf_putc(b, '{');
    for (size_t i = 0; i < v->len && rc == 0; i++) {
        if (i)
            buf_putc(b, ',');
        write_newline(b, mode, depth + 1);
        rc = write_string(b, m[i].key, strlen(m[i].key));
        buf_puts(b, mode == JSON_PRETTY ? ": " : ":");
        if (rc == 0)
            rc = write_value(b, m[i].val, mode, depth + 1);
    }
    free(m);
    if (v->len)
        write_newline(b, mode, depth);
    buf_putc(b, '}');
    return rc;
}

static int write_value(struct buf *b, const struct json *v, int mode, int depth) {
    if (!v)
        return err_set("json: cannot write a missing (NULL) value");
    switch (v->type) {
    case JSON_NULL:
        buf_puts(b, "null");
        return 0;
    case JSON_BOOL:
        buf_puts(b, v->b ? "true" : "false");
        return 0;
    case JSON_INT:
        buf_printf(b, "%" PRId64, v->i);
        return 0;
    case JSON_NUM:
        return write_double(b, v->n);
    case JSON_STR:
        return write_string(b, v->s, v->len);
    case JSON_ARR:
        return write_array(b, v, mode, depth);
    case JSON_OBJ:
        return write_object(b, v, mode, depth);
    }
    return err_set("json: cannot write a value of unknown type %d", (int)v->type);
}

char *json_write(const struct json *v, int mode, size_t *len) {
    struct buf b = {0};
    if (write_value(&b, v, mode, 0) < 0) {
        buf_free(&b);
        return NULL;
    }
    if (mode == JSON_PRETTY)
        buf_putc(&b, '\n');
    if (len)
        *len = b.len;
    return buf_take(&b);
}

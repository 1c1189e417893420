/* test_util_json: strict parsing (every malformed class refused with line/col), canonical and pretty output,
 * number spelling, round trips, and the tree helpers. */
#include "check.h"
#include "util/err.h"
#include "util/json.h"

#include <math.h>
#include <stdint.h>

static struct json *parse(const char *s) {
    return json_parse(s, strlen(s));
}

/* Canonical form of text, or "(error) <message>"; static storage, good until the next call. */
static const char *canon(const char *text) {
    static char out[4096];
    struct json *v = parse(text);
    if (!v) {
        snprintf(out, sizeof out, "(error) %s", err_msg());
        return out;
    }
    char *w = json_write(v, JSON_CANONICAL, NULL);
    snprintf(out, sizeof out, "%s", w ? w : "(write error)");
    free(w);
    json_free(v);
    return out;
}

static const char *num_text(double d) {
    static char out[64];
    struct json *v = json_num(d);
    char *w = json_write(v, JSON_CANONICAL, NULL);
    snprintf(out, sizeof out, "%s", w ? w : "(null)");
    free(w);
    json_free(v);
    return out;
}

static void test_canonical(void) {
    CHECK_STR(canon("{\"b\":1,\"a\":[1.5,2.0,\"x\"]}"), "{\"a\":[1.5,2.0,\"x\"],\"b\":1}");
    CHECK_STR(canon(" \n\t{ \"z\" : { \"y\" : null , \"x\" : true } , \"\" : false }\r\n"),
              "{\"\":false,\"z\":{\"x\":true,\"y\":null}}");
    CHECK_STR(canon("[]"), "[]");
    CHECK_STR(canon("{}"), "{}");
    CHECK_STR(canon("\"a/b\\/c\""), "\"a/b/c\"");
    CHECK_STR(canon("\"\\u00e9\\u4e2d\\ud83d\\ude00 \xc3\xa9\""),
              "\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80 \xc3\xa9\"");
    CHECK_STR(canon("\"\\u0001\\u001F\\b\\f\\n\\r\\t\\\"\\\\\\u007f\""),
              "\"\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\\x7f\"");
    /* bytewise key order: uppercase before lowercase, and a prefix before its extensions */
    CHECK_STR(canon("{\"b\":0,\"B\":0,\"ab\":0,\"a\":0,\"\xc3\xa9\":0}"),
              "{\"B\":0,\"a\":0,\"ab\":0,\"b\":0,\"\xc3\xa9\":0}");
    CHECK_STR(canon("-0"), "0");
    CHECK_STR(canon("1E2"), "1e+02"); /* "%.1g" is the shortest that reads back */
    CHECK_STR(canon("12.50e-1"), "1.25");
}

static void test_numbers(void) {
    CHECK_STR(num_text(0.1), "0.1");
    CHECK_STR(num_text(2.0), "2.0");
    CHECK_STR(num_text(-0.0), "-0.0");
    CHECK_STR(num_text(0.0), "0.0");
    CHECK_STR(num_text(1e300), "1e+300");
    CHECK_STR(num_text(1.0 / 3.0), "0.3333333333333333");
    CHECK_STR(num_text(5e-324), "5e-324");
    CHECK_STR(num_text(1e21), "1e+21");
    CHECK_STR(num_text(123456789.0), "123456789.0");
    CHECK_STR(num_text(1e17), "1e+17");
    CHECK_STR(canon("9223372036854775807"), "9223372036854775807");
    CHECK_STR(canon("-9223372036854775808"), "-9223372036854775808");
    CHECK_STR(canon("9223372036854775808"), "9.223372036854776e+18"); /* too big for int64: a double */
    struct json *v = parse("[9223372036854775807,-9223372036854775808,9223372036854775808,1.0,1e0,7]");
    CHECK(v && v->len == 6);
    if (v && v->len == 6) {
        CHECK(v->items[0]->type == JSON_INT && v->items[0]->i == INT64_MAX);
        CHECK(v->items[1]->type == JSON_INT && v->items[1]->i == INT64_MIN);
        CHECK(v->items[2]->type == JSON_NUM && v->items[2]->n == 9223372036854775808.0);
        CHECK(v->items[3]->type == JSON_NUM && v->items[4]->type == JSON_NUM);
        CHECK(v->items[5]->type == JSON_INT && v->items[5]->i == 7);
    }
    json_free(v);
    /* every double survives write -> parse bit for bit */
    double samples[] = {0.1, 1e-7, 123.456, 6.02214076e23, -2.5e-300, 1.7976931348623157e308, 4.9e-324, 3.0};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        struct json *p = parse(num_text(samples[i]));
        CHECK(p && p->type == JSON_NUM && memcmp(&p->n, &samples[i], sizeof(double)) == 0);
        json_free(p);
    }
}

static void test_not_finite(void) {
    double bad[] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        struct json *a = json_arr();
        json_push(a, json_num(bad[i]));
        err_clear();
        CHECK(json_write(a, JSON_CANONICAL, NULL) == NULL);
        CHECK_HAS(err_msg(), "json:");
        CHECK(json_write(a, JSON_PRETTY, NULL) == NULL);
        json_free(a);
    }
}

static void test_pretty(void) {
    struct json *v = parse("{\"b\":{},\"a\":[1,[],{\"k\":\"v\"}]}");
    size_t len = 0;
    char *w = json_write(v, JSON_PRETTY, &len);
    CHECK_STR(w, "{\n  \"a\": [\n    1,\n    [],\n    {\n      \"k\": \"v\"\n    }\n  ],\n  \"b\": {}\n}\n");
    CHECK(w && len == strlen(w));
    struct json *back = w ? parse(w) : NULL;
    CHECK(json_equal(v, back));
    json_free(back);
    free(w);
    json_free(v);
    struct json *s = json_str("x");
    w = json_write(s, JSON_PRETTY, NULL);
    CHECK_STR(w, "\"x\"\n");
    free(w);
    json_free(s);
}

static void test_strings_with_nul(void) {
    struct json *v = parse("\"a\\u0000b\"");
    CHECK(v && v->type == JSON_STR && v->len == 3 && memcmp(v->s, "a\0b", 4) == 0);
    size_t len;
    char *w = v ? json_write(v, JSON_CANONICAL, &len) : NULL;
    CHECK_STR(w, "\"a\\u0000b\"");
    free(w);
    json_free(v);
    CHECK_HAS(canon("{\"a\\u0000b\":1}"), "col 2");
    struct json *bad = json_strn("\xff", 1); /* the writer refuses what the parser would refuse */
    CHECK(json_write(bad, JSON_CANONICAL, NULL) == NULL);
    CHECK_HAS(err_msg(), "UTF-8");
    json_free(bad);
}

/* Each malformed input is refused with a message that points at the right line and column. */
static void test_malformed(void) {
    static const struct {
        const char *text, *where;
    } cases[] = {
        {"", "line 1 col 1: unexpected end"},
        {"   ", "line 1 col 4"},
        {"[1,2,]", "line 1 col 6"},
        {"{\"a\":1,}", "line 1 col 8"},
        {"{\"a\" 1}", "line 1 col 6: expected ':'"},
        {"{a:1}", "line 1 col 2: expected a string key"},
        {"[1 2]", "line 1 col 4"},
        {"[1,\n2,\n  x]", "line 3 col 3: unexpected character 'x'"},
        {"// c\n1", "line 1 col 1"},
        {"/* c */ 1", "line 1 col 1"},
        {"NaN", "line 1 col 1"},
        {"Infinity", "line 1 col 1"},
        {"-Infinity", "line 1 col 2"},
        {"tru", "line 1 col 1: invalid literal"},
        {"nul", "line 1 col 1"},
        {"True", "line 1 col 1"},
        {"01", "line 1 col 2: leading zero"},
        {"-", "line 1 col 2"},
        {"+1", "line 1 col 1"},
        {"1.", "line 1 col 3"},
        {".5", "line 1 col 1"},
        {"1e", "line 1 col 3"},
        {"1e+", "line 1 col 4"},
        {"0x10", "line 1 col 2: unexpected text after"},
        {"1e400", "line 1 col 1: number out of range"},
        {"1 2", "line 1 col 3: unexpected text after"},
        {"{} x", "line 1 col 4"},
        {"\"abc", "line 1 col 5: unterminated"},
        {"\"a\tb\"", "line 1 col 3: control character"},
        {"\"a\nb\"", "line 1 col 3: control character"},
        {"\"\\x\"", "line 1 col 2: invalid escape"},
        {"\"\\u12g4\"", "line 1 col 2: invalid \\u escape"},
        {"\"\\u12\"", "line 1 col 2"},
        {"\"\\ud800\"", "line 1 col 2: lone high surrogate"},
        {"\"\\ud800\\u0041\"", "line 1 col 2: lone high surrogate"},
        {"\"\\udc00\"", "line 1 col 2: lone low surrogate"},
        {"\"\xff\"", "line 1 col 2: invalid UTF-8"},
        {"\"\xc0\xaf\"", "line 1 col 2: invalid UTF-8"},         /* overlong '/' */
        {"\"\xe0\x80\xaf\"", "line 1 col 2: invalid UTF-8"},     /* overlong, 3 bytes */
        {"\"\xed\xa0\x80\"", "line 1 col 2: invalid UTF-8"},     /* encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", "line 1 col 2: invalid UTF-8"}, /* above U+10FFFF */
        {"\"\xe4\xb8\"", "line 1 col 2: invalid UTF-8"},         /* truncated */
        {"\"ab\x80\"", "line 1 col 4: invalid UTF-8"},           /* stray continuation byte */
        {"{\"a\":1,\"a\":2}", "line 1 col 8: duplicate key \"a\""},
        {"[", "line 1 col 2: unexpected end"},
        {"{\"a\":", "line 1 col 6"},
        {"{\"a\"", "line 1 col 5"},
        {"[1", "line 1 col 3"},
        {"\xef\xbb\xbf{}", "line 1 col 1"}, /* a byte order mark is not JSON */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err_clear();
        struct json *v = parse(cases[i].text);
        CHECK(v == NULL);
        json_free(v);
        if (!strstr(err_msg(), cases[i].where) || strncmp(err_msg(), "json: ", 6) != 0)
            fprintf(stderr, "case %zu: %s\n", i, cases[i].text);
        CHECK_HAS(err_msg(), cases[i].where);
    }
    /* an embedded NUL byte is not whitespace; the length, not the NUL, ends the text */
    CHECK(json_parse("1\0", 2) == NULL);
    CHECK_HAS(err_msg(), "col 2");
    struct json *v = json_parse("[1]xyz", 3);
    CHECK(v && v->len == 1);
    json_free(v);
}

static char *nested(int depth, const char *open, const char *close) {
    char *s = malloc((size_t)depth * 2 + 2);
    size_t n = 0;
    for (int i = 0; i < depth; i++)
        s[n++] = open[i % 2];
    s[n++] = '1';
    for (int i = depth - 1; i >= 0; i--)
        s[n++] = close[i % 2];
    s[n] = '\0';
    return s;
}

static void test_depth(void) {
    char *ok = nested(64, "[[", "]]");
    struct json *v = parse(ok);
    CHECK(v != NULL);
    json_free(v);
    free(ok);
    char *deep = nested(65, "[[", "]]");
    CHECK(parse(deep) == NULL);
    CHECK_HAS(err_msg(), "line 1 col 65: nesting deeper than 64");
    free(deep);
    char *huge = nested(100000, "[[", "]]"); /* must not blow the stack */
    CHECK(parse(huge) == NULL);
    free(huge);
}

static void test_big_object(void) {
    /* a tokenizer-sized object: the duplicate check must stay fast and still catch the last key */
    size_t cap = 50000 * 24 + 16, n = 0;
    char *text = malloc(cap);
    text[n++] = '{';
    for (int i = 0; i < 50000; i++)
        n += (size_t)snprintf(text + n, cap - n, "%s\"tok%d\":%d", i ? "," : "", i, i);
    text[n++] = '}';
    struct json *v = json_parse(text, n);
    CHECK(v && v->len == 50000);
    int64_t got = 0;
    CHECK(json_get_int(v, "tok49999", &got) == 0 && got == 49999);
    json_free(v);
    n--;
    n += (size_t)snprintf(text + n, cap - n, ",\"tok123\":0}");
    CHECK(json_parse(text, n) == NULL);
    CHECK_HAS(err_msg(), "duplicate key \"tok123\"");
    free(text);
}

static void test_tree(void) {
    struct json *o = json_obj();
    json_set(o, "s", json_str("hi"));
    json_set(o, "i", json_int(-3));
    json_set(o, "n", json_num(2.5));
    json_set(o, "b", json_bool(true));
    json_set(o, "z", json_null());
    struct json *a = json_arr();
    json_push(a, json_strn("a\0b", 3));
    json_set(o, "a", a);
    json_set(o, "i", json_int(4)); /* replaces, keeps one entry */
    CHECK(o->len == 6);
    CHECK_STR(json_get_str(o, "s"), "hi");
    CHECK(json_get_str(o, "i") == NULL);
    CHECK(json_get(o, "missing") == NULL);
    CHECK(json_get(a, "s") == NULL);
    int64_t i = 0;
    double d = 0;
    CHECK(json_get_int(o, "i", &i) == 0 && i == 4);
    CHECK(json_get_int(o, "n", &i) == -1);
    CHECK(json_get_num(o, "n", &d) == 0 && d == 2.5);
    CHECK(json_get_num(o, "i", &d) == 0 && d == 4.0);
    CHECK(json_get_num(o, "s", &d) == -1);

    struct json *c = json_clone(o);
    CHECK(json_equal(o, c));
    char *w1 = json_write(o, JSON_CANONICAL, NULL), *w2 = json_write(c, JSON_CANONICAL, NULL);
    CHECK_STR(w1, "{\"a\":[\"a\\u0000b\"],\"b\":true,\"i\":4,\"n\":2.5,\"s\":\"hi\",\"z\":null}");
    CHECK_STR(w2, w1);
    struct json *back = w1 ? parse(w1) : NULL;
    CHECK(json_equal(back, o));
    json_free(back);
    free(w1);
    free(w2);

    json_del(c, "s");
    json_del(c, "nope");
    CHECK(c->len == 5 && json_get(c, "s") == NULL && json_get(c, "z") != NULL);
    CHECK(!json_equal(o, c));
    json_set(c, "s", json_str("hi")); /* same members in another order are equal */
    CHECK(json_equal(o, c));
    json_set(c, "s", json_str("ho"));
    CHECK(!json_equal(o, c));
    json_free(c);

    struct json *x = json_num(0.0), *y = json_num(-0.0), *z = json_int(0);
    CHECK(!json_equal(x, y));
    CHECK(!json_equal(x, z));
    json_free(x);
    json_free(y);
    json_free(z);
    struct json *arr1 = parse("[1,2]"), *arr2 = parse("[2,1]");
    CHECK(!json_equal(arr1, arr2));
    json_free(arr1);
    json_free(arr2);
    json_free(o);
    json_free(NULL);
}

int main(void) {
    test_canonical();
    test_numbers();
    test_not_finite();
    test_pretty();
    test_strings_with_nul();
    test_malformed();
    test_depth();
    test_big_object();
    test_tree();
    return check_done("test_util_json");
}

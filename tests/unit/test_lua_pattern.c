/* test_lua_pattern: the worst-case cost model of Lua's pattern matcher: backtracking bombs and huge plain
 * searches cost more than any budget, ordinary patterns stay near linear, malformed patterns stay bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lua/pattern.h"

#define NO_LIMIT 1e18

static double cost(const char *s, const char *p, enum pattern_use use) {
    return pattern_cost(s, strlen(s), p, strlen(p), use, NO_LIMIT);
}

static char *repeat(const char *piece, size_t times, const char *tail) {
    size_t n = strlen(piece), t = strlen(tail);
    char *s = malloc(n * times + t + 1);
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * n, piece, n);
    memcpy(s + n * times, tail, t + 1);
    return s;
}

static void test_bombs(void) {
    char *s = repeat("a", 26, ""), *p = repeat("a*", 26, "b");
    CHECK(cost(s, p, PATTERN_ONCE) > 1e30);
    CHECK(cost(s, p, PATTERN_GMATCH) > 1e30);
    free(p);
    p = repeat("a-", 10, "b");
    char *s5000 = repeat("a", 5000, "");
    CHECK(cost(s5000, p, PATTERN_GSUB) > 1e30);
    CHECK(cost(s5000, "a*b", PATTERN_ONCE) > 5000.0 * 5000.0); /* truly quadratic */
    free(p);
    free(s);
    free(s5000);
    /* a 4 MiB needle in a 16 MiB haystack */
    CHECK(pattern_plain_cost((size_t)16 << 20, ((size_t)4 << 20) + 1) > 1e13);
    CHECK(pattern_plain_cost(10, 0) == 1 && pattern_plain_cost(3, 5) == 1);
    CHECK(pattern_plain_cost(10, 3) == 8 * 4);
}

static void test_ordinary(void) {
    double name = cost("unlearn/npo/round12", "^unlearn/(%w+)/round(%d+)$", PATTERN_ONCE);
    CHECK(name > 19 && name < 1000);
    CHECK(cost("unlearn/npo/round12", "unlearn/(%w+)/round(%d+)$", PATTERN_ONCE) > name);
    CHECK(cost("a,b,c", "[^,]+", PATTERN_GMATCH) < 400);
    CHECK(cost("key = value", "^(.-)%s*=%s*(.*)$", PATTERN_ONCE) < 10000);
    CHECK(cost("x", "%f[%w]%w+", PATTERN_ONCE) < 100);
    CHECK(cost("f(a(b)c)d", "%b()", PATTERN_ONCE) < 400);
    /* gmatch and gsub may start once per position and once more per match */
    CHECK(cost("abcabc", "b", PATTERN_GMATCH) >= 2 * cost("abcabc", "b", PATTERN_ONCE) - 20);
    /* '^' anchors find, match and gsub, not gmatch */
    CHECK(cost("abcabc", "^b", PATTERN_GSUB) < cost("abcabc", "^b", PATTERN_GMATCH));
}

/* Runs measured in the subject keep common patterns on long text near linear; without measuring (no budget
 * left to pay for it) the bound is the loose quadratic one. */
static void test_runs(void) {
    char *text = repeat("word ", 2000, "");
    size_t n = strlen(text);
    double tight = pattern_cost(text, n, "%s+", 3, PATTERN_GSUB, NO_LIMIT);
    double loose = pattern_cost(text, n, "%s+", 3, PATTERN_GSUB, 0);
    CHECK(tight < 30.0 * (double)n);
    CHECK(loose > (double)n * (double)n);
    CHECK(pattern_cost(text, n, "%a+%s", 5, PATTERN_GMATCH, NO_LIMIT) < 50.0 * (double)n);
    /* '.' matches everything: its run is the whole subject, with nothing to measure */
    CHECK(pattern_cost(text, n, "(.*)x", 5, PATTERN_ONCE, NO_LIMIT) > (double)n * (double)n);
    /* a lazy or greedy item followed only by captures succeeds on its first try */
    CHECK(pattern_cost(text, n, "(.-)", 4, PATTERN_ONCE, NO_LIMIT) < 20.0 * (double)n);
    CHECK(pattern_cost(text, n, "^(.*)", 5, PATTERN_ONCE, NO_LIMIT) < 20.0 * (double)n);
    /* a set is tested item by item */
    char *set = repeat("q", 1000, "]"), *pat = malloc(strlen(set) + 2);
    snprintf(pat, strlen(set) + 2, "[%s", set);
    CHECK(cost("abc", pat, PATTERN_ONCE) > 3000);
    free(set);
    free(pat);
    free(text);
}

/* Lua raises its error on reaching the broken part; the bound covers what comes before. */
static void test_malformed(void) {
    static const char *const bad[] = {"[a", "%", "%b(", "%f", "%fx", "(", "[^", "[%", "[%]", "x*%"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double c = cost("some subject text", bad[i], PATTERN_ONCE);
        CHECK(c >= 1 && c < 1000);
    }
    CHECK(cost("]]]", "[]]+", PATTERN_ONCE) < 100); /* the first ']' of a set is a member */
    CHECK(cost("", "", PATTERN_ONCE) >= 1 && cost("", "", PATTERN_GMATCH) >= 1);
    /* an embedded NUL is an ordinary character, and never taken for a quantifier */
    CHECK(pattern_cost("a\0b", 3, "a\0", 2, PATTERN_ONCE, NO_LIMIT) < 100);
}

int main(void) {
    test_bombs();
    test_ordinary();
    test_runs();
    test_malformed();
    return check_done("test_lua_pattern");
}

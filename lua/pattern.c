/* pattern: the worst-case cost of one call of Lua's pattern matcher, from the pattern's items and the
 * subject's runs (the model is in pattern.h). */
#include "lua/pattern.h"

#include <ctype.h>
#include <string.h>

#define COST_CAP 1e300 /* keeps sums and products finite (no inf * 0), far above any budget */
#define START_STEPS 4  /* a start position's own overhead, and in gsub a match's copying, in steps */

/* (fmin without libm, which pulse_lua does not link) */
static double least(double a, double b) {
    return a < b ? a : b;
}

enum item_kind { IT_SINGLE, IT_OPEN, IT_CLOSE, IT_POSITION, IT_END, IT_BALANCE, IT_FRONTIER, IT_BACKREF };

struct item {
    enum item_kind kind;
    const char *cls, *cls_end; /* IT_SINGLE, IT_FRONTIER: the class ("%a", "[^,]", ".", "x") */
    char quant;                /* IT_SINGLE: '*', '+', '-', '?' or 0 */
};

/* End of the class at p ("%x", "[set]" or one character); NULL when the pattern ends inside it. The first
 * character of a set, after an optional '^', never closes it, so "[]]" holds ']'. */
static const char *class_end(const char *p, const char *end) {
    if (*p == '%')
        return p + 1 < end ? p + 2 : NULL;
    if (*p != '[')
        return p + 1;
    const char *q = p + 1;
    if (q < end && *q == '^')
        q++;
    for (;;) {
        if (q >= end)
            return NULL;
        if (*q++ == '%') {
            if (q >= end)
                return NULL;
            q++;
        }
        if (q >= end)
            return NULL;
        if (*q == ']')
            return q + 1;
    }
}

/* Lua's %x classes, judged in the current locale as Lua does; any other character after '%' is itself. */
static int class_letter(unsigned char cl, unsigned char c) {
    int r;
    switch (tolower(cl)) {
    case 'a':
        r = isalpha(c);
        break;
    case 'c':
        r = iscntrl(c);
        break;
    case 'd':
        r = isdigit(c);
        break;
    case 'g':
        r = isgraph(c);
        break;
    case 'l':
        r = islower(c);
        break;
    case 'p':
        r = ispunct(c);
        break;
    case 's':
        r = isspace(c);
        break;
    case 'u':
        r = isupper(c);
        break;
    case 'w':
        r = isalnum(c);
        break;
    case 'x':
        r = isxdigit(c);
        break;
    default:
        return cl == c;
    }
    return isupper(cl) ? !r : r != 0;
}

/* Whether the set from p ('[') to ec (its closing ']') holds c. */
static int set_has(const char *p, const char *ec, unsigned char c) {
    int in = 1;
    p++;
    if (*p == '^') {
        in = 0;
        p++;
    }
    while (p < ec) {
        if (*p == '%' && p + 1 < ec) {
            if (class_letter((unsigned char)p[1], c))
                return in;
            p += 2;
        } else if (p + 2 < ec && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return in;
            p += 3;
        } else {
            if ((unsigned char)*p == c)
                return in;
            p++;
        }
    }
    return !in;
}

static int class_has(const struct item *it, unsigned char c) {
    switch (it->cls[0]) {
    case '.':
        return 1;
    case '%':
        return class_letter((unsigned char)it->cls[1], c);
    case '[':
        return set_has(it->cls, it->cls_end - 1, c);
    default:
        return (unsigned char)it->cls[0] == c;
    }
}

/* Steps to test one character against the class: a set is scanned item by item. */
static double class_steps(const struct item *it) {
    return it->cls && it->cls[0] == '[' ? (double)(it->cls_end - it->cls) : 1.0;
}

/* The longest stretch of s that the class matches, which bounds how far '*', '+' and '-' can expand. */
static size_t longest_run(const struct item *it, const char *s, size_t ls) {
    if (it->cls[0] == '.')
        return ls;
    size_t best = 0, cur = 0;
    for (size_t i = 0; i < ls; i++) {
        cur = class_has(it, (unsigned char)s[i]) ? cur + 1 : 0;
        if (cur > best)
            best = cur;
    }
    return best;
}

/* The item at *pp, in the order Lua's matcher dispatches: 1 and advances, 0 at the end, -1 if malformed. */
static int next_item(const char **pp, const char *end, struct item *it) {
    const char *p = *pp, *ep;
    if (p >= end)
        return 0;
    memset(it, 0, sizeof *it);
    if (*p == '(' || *p == ')') {
        int position = *p == '(' && p + 1 < end && p[1] == ')';
        it->kind = position ? IT_POSITION : *p == '(' ? IT_OPEN : IT_CLOSE;
        *pp = p + (position ? 2 : 1);
        return 1;
    }
    if (*p == '$' && p + 1 == end) {
        it->kind = IT_END;
        *pp = end;
        return 1;
    }
    if (*p == '%' && p + 1 < end && (p[1] == 'b' || p[1] == 'f' || isdigit((unsigned char)p[1]))) {
        if (p[1] == 'b') {
            if (end - p < 4)
                return -1;
            it->kind = IT_BALANCE;
            *pp = p + 4;
            return 1;
        }
        if (p[1] == 'f') {
            ep = p + 2 < end && p[2] == '[' ? class_end(p + 2, end) : NULL;
            if (!ep)
                return -1;
            it->kind = IT_FRONTIER;
            it->cls = p + 2;
            it->cls_end = ep;
            *pp = ep;
            return 1;
        }
        it->kind = IT_BACKREF;
        *pp = p + 2;
        return 1;
    }
    if (!(ep = class_end(p, end)))
        return -1;
    it->kind = IT_SINGLE;
    it->cls = p;
    it->cls_end = ep;
    if (ep < end && memchr("*+-?", *ep, 4))
        it->quant = *ep++;
    *pp = ep;
    return 1;
}

/* Items whose failure cannot send the matcher back: captures always succeed. */
static int is_capture(const struct item *it) {
    return it->kind == IT_OPEN || it->kind == IT_CLOSE || it->kind == IT_POSITION;
}

/* The cost of item k is a + b * (the cost of the items after it); last: only captures follow. */
static void item_terms(const struct item *it, int last, double run, double ls, double *a, double *b) {
    double steps = class_steps(it);
    *b = 1;
    if (it->kind == IT_BALANCE || it->kind == IT_BACKREF) {
        *a = ls + 1;
    } else if (it->kind == IT_FRONTIER) {
        *a = 2 * steps;
    } else if (it->kind != IT_SINGLE || !it->quant) {
        *a = it->kind == IT_SINGLE ? steps : 1;
    } else if (it->quant == '?') {
        *a = steps;
        *b = last ? 1 : 2;
    } else { /* '*', '+', '-': up to run + 1 tests of the class and tries of the rest */
        *a = last && it->quant == '-' ? 0 : (run + 1) * steps;
        *b = last ? 1 : run + 1;
    }
}

struct shape {
    size_t last_solid; /* index of the last item that is not a capture, or SIZE_MAX */
    double scan;       /* steps to measure the runs of every quantified class */
};

static struct shape pattern_shape(const char *p, const char *end, size_t ls) {
    struct shape sh = {(size_t)-1, 0};
    struct item it;
    for (size_t k = 0; next_item(&p, end, &it) > 0; k++) {
        if (!is_capture(&it))
            sh.last_solid = k;
        if (it.kind == IT_SINGLE && it.quant && it.quant != '?' && it.cls[0] != '.')
            sh.scan += (double)ls * class_steps(&it);
    }
    return sh;
}

/* The bound for one start position; measure: use each class's longest run instead of the subject's length. */
static double per_start(const char *s, size_t ls, const char *p, const char *end, const struct shape *sh,
                        int measure) {
    double sum = 0, prod = 1, a, b;
    struct item it;
    for (size_t k = 0; next_item(&p, end, &it) > 0; k++) {
        double run = (double)ls;
        if (measure && it.kind == IT_SINGLE && it.quant && it.quant != '?')
            run = (double)longest_run(&it, s, ls);
        item_terms(&it, k == sh->last_solid, run, (double)ls, &a, &b);
        sum = least(sum + prod * a, COST_CAP);
        prod = least(prod * b, COST_CAP);
    }
    return least(sum + prod, COST_CAP);
}

double pattern_cost(const char *s, size_t ls, const char *p, size_t lp, enum pattern_use use, double limit) {
    int anchor = use != PATTERN_GMATCH && lp > 0 && p[0] == '^';
    if (anchor) {
        p++;
        lp--;
    }
    const char *end = p + lp;
    struct shape sh = pattern_shape(p, end, ls);
    /* gmatch and gsub start again after each match: at most one start per position plus one per match */
    double starts = anchor ? 1 : (use == PATTERN_ONCE ? 1 : 2) * ((double)ls + 1);
    double parse = 3 * (double)lp + 1;
    double loose = least(parse + starts * (START_STEPS + per_start(s, ls, p, end, &sh, 0)), COST_CAP);
    if (sh.scan <= 0 || sh.scan >= loose || sh.scan > limit)
        return loose;
    double tight = parse + sh.scan + starts * (START_STEPS + per_start(s, ls, p, end, &sh, 1));
    return least(loose, tight);
}

double pattern_plain_cost(size_t ls, size_t lp) {
    if (lp == 0 || lp > ls)
        return 1;
    return ((double)(ls - lp) + 1) * ((double)lp + 1);
}

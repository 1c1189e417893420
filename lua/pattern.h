/* pattern: an upper bound on the work of Lua's pattern matcher, so that the sandbox can charge string.find,
 * match, gmatch and gsub to the instruction budget before they run. The count hook does not fire inside C,
 * and a pattern such as ("a*"):rep(26) .. "b" backtracks exponentially.
 *
 * The bound follows the matcher's structure: only quantified items branch. '*', '+' and '-' try at most
 * run + 1 continuations, where run is the longest stretch of the subject that their class matches; '?' tries
 * 2; everything else goes straight on (a set costs its length per character, %b and back-references up to
 * the subject's length). A greedy or lazy item followed only by captures succeeds on its first try. The
 * bound for one start position is multiplied by the number of start positions. */
#ifndef PULSE_LUA_PATTERN_H
#define PULSE_LUA_PATTERN_H

#include <stddef.h>

enum pattern_use {
    PATTERN_ONCE,   /* find, match: one search; a leading '^' anchors */
    PATTERN_GSUB,   /* gsub: restarts after each match; a leading '^' anchors */
    PATTERN_GMATCH, /* gmatch, the whole iteration: restarts after each match; '^' is an ordinary character */
};

/* Upper bound, in matcher steps, on one call with the subject s[0..ls) (from the first position tried) and
 * the pattern p[0..lp). Measuring the runs costs about ls steps per quantified item; it is done, and included
 * in the result, only when it lowers the result and costs at most limit. A malformed pattern is bounded up to
 * where it breaks (Lua raises its error on reaching that point). */
double pattern_cost(const char *s, size_t ls, const char *p, size_t lp, enum pattern_use use, double limit);

/* The same for a plain search of a needle of lp bytes (string.find with plain = true). */
double pattern_plain_cost(size_t ls, size_t lp);

#endif

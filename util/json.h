/* json: a small JSON tree with a strict parser and a canonical writer.
 *
 * Records, cache keys and stage parameters are JSON. Cache keys need one spelling per value, so the writer
 * has a canonical mode: keys sorted bytewise, no spaces, integers in decimal, other numbers in the shortest
 * form that reads back to the same double (always with a '.' or an exponent, so 2.0 stays a float), strings
 * with only the required escapes. The parser refuses anything outside RFC 8259 (trailing commas, comments,
 * NaN, lone surrogates), nesting deeper than 64, and duplicate keys. */
#ifndef PULSE_UTIL_JSON_H
#define PULSE_UTIL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_INT, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ };

struct json {
    enum json_type type;
    bool b;              /* JSON_BOOL */
    int64_t i;           /* JSON_INT: a number without fraction or exponent that fits int64 */
    double n;            /* JSON_NUM */
    char *s;             /* JSON_STR: NUL-terminated, may contain NUL bytes (see len) */
    size_t len;          /* JSON_STR: bytes; JSON_ARR / JSON_OBJ: number of items */
    size_t cap;          /* allocated slots of items / keys */
    struct json **items; /* JSON_ARR items; JSON_OBJ values, in insertion order */
    char **keys;         /* JSON_OBJ keys, parallel to items */
};

/* Parses exactly one value (surrounding whitespace allowed). NULL with err_set("json: line L col C: ...")
 * on error. */
struct json *json_parse(const char *text, size_t len);
void json_free(struct json *v);
struct json *json_clone(const struct json *v);
bool json_equal(const struct json *a, const struct json *b);

struct json *json_null(void);
struct json *json_bool(bool b);
struct json *json_int(int64_t i);
struct json *json_num(double n);
struct json *json_str(const char *s);
struct json *json_strn(const char *s, size_t n);
struct json *json_arr(void);
struct json *json_obj(void);

/* Takes ownership of val. json_set replaces an existing key (freeing the old value). */
void json_push(struct json *arr, struct json *val);
void json_set(struct json *obj, const char *key, struct json *val);
/* Removes key if present (freeing its value). */
void json_del(struct json *obj, const char *key);

/* Look-ups return NULL when obj is not an object, the key is missing, or the type differs. */
const struct json *json_get(const struct json *obj, const char *key);
const char *json_get_str(const struct json *obj, const char *key);
/* Return 0 and set *out, or -1 (no err_set) when missing or mistyped. json_get_num accepts JSON_INT too. */
int json_get_int(const struct json *obj, const char *key, int64_t *out);
int json_get_num(const struct json *obj, const char *key, double *out);

enum { JSON_CANONICAL = 0, JSON_PRETTY = 1 };
/* Serialises v (keys sorted in both modes; PRETTY indents by 2 and ends with a newline). Returns a malloc'd
 * NUL-terminated string, its length in *len if len is non-NULL; NULL with err_set if v holds NaN or infinity.
 */
char *json_write(const struct json *v, int mode, size_t *len);

#endif

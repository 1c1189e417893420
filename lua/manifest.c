/* manifest: the pulse prelude (stage, ref) in the sandbox, the checks of every declaration against its kind's
 * schema, and the resolution of references into a sorted dag. */
#include "lua/manifest.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua/sandbox.h"
#include "util/buf.h"
#include "util/err.h"

#define REF_META "pulse.ref"
#define OUTS_META "pulse.outputs"
#define HANDLE_META "pulse.stage"
#define STAGE_NAME_MAX 200
#define MSG_CAP 1024
#define MALLOC_OVERHEAD 16 /* what malloc adds to each block, for the memory a declaration is charged */
#define BYTES_PER_STEP 16  /* building a parameter costs about one VM instruction per this many bytes */

/* A reference to a stage output, made by h.out.x (stage known at once) or ref() (resolved by name at the
 * end). Lua holds only its index, in a full userdata, so a plain table cannot pass for one. */
struct mref {
    long stage;
    char *stage_name; /* ref() only */
    char *output;
    char *file;
    int line;
};

struct minput {
    size_t stage;
    const char *param; /* the schema's own string */
    size_t index;
    size_t ref;
};

struct mctx {
    const char *path;
    const struct kind_schema *const *kinds;
    size_t nkinds;
    struct dag dag;
    struct mref *refs;
    size_t nrefs;
    struct minput *inputs;
    size_t ninputs;
    /* The declaration being checked. Owned here, not by the C stack, because a Lua error jumps past frames.
     */
    struct json *pending_params;
    struct minput *pending;
    size_t npending;
    int finished;
};

/* ---- small helpers ---- */

static struct mctx *ctx_of(lua_State *L) {
    return lua_touserdata(L, lua_upvalueindex(1));
}

static void *grow(void *p, size_t n, size_t size) {
    return (n & (n - 1)) == 0 ? xrealloc(p, (n ? 2 * n : 1) * size) : p;
}

/* The innermost frame running a file (load() cannot make "@" chunk names, so these are real files). */
static void caller_pos(lua_State *L, const struct mctx *c, const char **file, int *line) {
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++)
        if (lua_getinfo(L, "Sl", &ar) && ar.source[0] == '@' && ar.currentline > 0) {
            *file = ar.source + 1;
            *line = ar.currentline;
            return;
        }
    *file = c->path;
    *line = 0;
}

static int raise_msg(lua_State *L, const char *msg) {
    const char *file;
    int line;
    caller_pos(L, ctx_of(L), &file, &line);
    lua_pushfstring(L, "%s:%d: %s", file, line, msg);
    return lua_error(L);
}

static int raise_fmt(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int raise_fmt(lua_State *L, const char *fmt, ...) {
    char msg[MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return raise_msg(L, msg);
}

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    size_t *row = xmalloc((lb + 1) * sizeof *row);
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    size_t d = row[lb];
    free(row);
    return d;
}

/* " (did you mean 'x'?)" for the first candidate within distance 2 of the closest, or "". */
static void suggest(const char *word, const char *const *cands, size_t n, char *out, size_t cap) {
    size_t best = 3, wl = strlen(word);
    const char *pick = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t cl = strlen(cands[i]);
        if ((cl > wl ? cl - wl : wl - cl) > 2)
            continue;
        size_t d = edit_distance(word, cands[i]);
        if (d < best) {
            best = d;
            pick = cands[i];
        }
    }
    if (pick)
        snprintf(out, cap, " (did you mean '%s'?)", pick);
    else
        out[0] = '\0';
}

static void outputs_text(const struct kind_schema *k, char *out, size_t cap) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < k->noutputs && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? ", " : "", k->outputs[i]);
    if (k->noutputs == 0)
        snprintf(out, cap, "none");
}

static int no_output_err(const char *prefix, const char *stage, const struct kind_schema *k,
                         const char *output) {
    char outs[512];
    outputs_text(k, outs, sizeof outs);
    return err_set("%sstage '%s' (kind %s) has no output '%s'; outputs: %s", prefix, stage, k->name, output,
                   outs);
}

/* ---- text that ends up in cache keys ---- */

enum text_fault { TEXT_OK, TEXT_UTF8, TEXT_NUL }; /* in order of precedence when several strings are bad */

/* Bytes in the well-formed UTF-8 sequence at u (n > 0 bytes left); 0 when it is ill-formed: overlong forms,
 * UTF-16 surrogates and code points above U+10FFFF are refused (RFC 3629), as json_write does. */
static size_t utf8_sequence(const unsigned char *u, size_t n) {
    if (u[0] < 0x80)
        return 1;
    size_t len = u[0] >= 0xC2 && u[0] <= 0xDF   ? 2
                 : u[0] >= 0xE0 && u[0] <= 0xEF ? 3
                 : u[0] >= 0xF0 && u[0] <= 0xF4 ? 4
                                                : 0;
    if (len == 0 || len > n)
        return 0;
    unsigned char lo = u[0] == 0xE0 ? 0xA0 : u[0] == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = u[0] == 0xED ? 0x9F : u[0] == 0xF4 ? 0x8F : 0xBF;
    if (u[1] < lo || u[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((u[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/* Whether s[0..len) can be a string in canonical JSON and a C string: valid UTF-8 without NUL bytes. */
static enum text_fault text_fault(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0, n; i < len; i += n) {
        if (u[i] == 0)
            return TEXT_NUL;
        if (!(n = utf8_sequence(u + i, len - i)))
            return TEXT_UTF8;
    }
    return TEXT_OK;
}

static enum text_fault value_fault(lua_State *L, int idx) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    return text_fault(s, len);
}

static const char *fault_phrase(enum text_fault f) {
    return f == TEXT_NUL ? "contains a NUL byte" : "is not valid UTF-8";
}

/* The string at idx, or NULL with err_set("<what> <fault>"). */
static const char *checked_text(lua_State *L, int idx, size_t *len, const char *what) {
    const char *s = lua_tolstring(L, idx, len);
    enum text_fault f = text_fault(s, *len);
    if (f == TEXT_OK)
        return s;
    err_set("%s %s", what, fault_phrase(f));
    return NULL;
}

/* ---- references ---- */

static size_t ref_id(lua_State *L, int idx) {
    const size_t *id = luaL_testudata(L, idx, REF_META);
    return id ? *id : SIZE_MAX;
}

static void push_ref(lua_State *L, struct mctx *c, long stage, const char *stage_name, const char *output) {
    const char *file;
    int line;
    caller_pos(L, c, &file, &line);
    size_t bytes =
        sizeof(struct mref) + strlen(output) + strlen(file) + (stage_name ? strlen(stage_name) : 0);
    sandbox_charge(L, 1, bytes + 3 * MALLOC_OVERHEAD);
    size_t *id = lua_newuserdatauv(L, sizeof *id, 0);
    luaL_setmetatable(L, REF_META);
    c->refs = grow(c->refs, c->nrefs, sizeof *c->refs);
    struct mref *r = &c->refs[c->nrefs];
    r->stage = stage;
    r->stage_name = stage_name ? xstrdup(stage_name) : NULL;
    r->output = xstrdup(output);
    r->file = xstrdup(file);
    r->line = line;
    *id = c->nrefs++;
}

static const char *ref_stage_name(const struct mctx *c, const struct mref *r) {
    return r->stage_name ? r->stage_name : c->dag.stages[r->stage].name;
}

static int l_ref(lua_State *L) {
    struct mctx *c = ctx_of(L);
    if (c->finished)
        return raise_fmt(L, "ref: called after the manifest finished");
    if (lua_type(L, 1) != LUA_TSTRING || lua_type(L, 2) != LUA_TSTRING)
        return raise_fmt(L, "ref: expected ref(\"stage\", \"output\"), got ref(%s, %s)", luaL_typename(L, 1),
                         luaL_typename(L, 2));
    size_t len;
    const char *stage = checked_text(L, 1, &len, "ref: the stage name");
    const char *output = stage ? checked_text(L, 2, &len, "ref: the output name") : NULL;
    if (!output)
        return raise_msg(L, err_msg());
    push_ref(L, c, -1, stage, output);
    return 1;
}

static int l_ref_tostring(lua_State *L) {
    struct mctx *c = ctx_of(L);
    const struct mref *r = &c->refs[*(const size_t *)luaL_checkudata(L, 1, REF_META)];
    lua_pushfstring(L, "ref(%s, %s)", ref_stage_name(c, r), r->output);
    return 1;
}

/* h.out.x: a reference, checked against the kind's outputs at once. */
static int l_outputs_index(lua_State *L) {
    struct mctx *c = ctx_of(L);
    const size_t *stage = luaL_checkudata(L, 1, OUTS_META);
    const struct dag_stage *s = &c->dag.stages[*stage];
    if (lua_type(L, 2) != LUA_TSTRING)
        return raise_fmt(L, "outputs of stage '%s' are named by strings, got %s", s->name,
                         luaL_typename(L, 2));
    char what[STAGE_NAME_MAX + 64];
    snprintf(what, sizeof what, "an output name of stage '%s'", s->name);
    size_t len;
    const char *name = checked_text(L, 2, &len, what);
    if (!name)
        return raise_msg(L, err_msg());
    if (!schema_has_output(s->kind, name)) {
        no_output_err("", s->name, s->kind, name);
        return raise_msg(L, err_msg());
    }
    push_ref(L, c, (long)*stage, NULL, name);
    return 1;
}

static int l_outputs_newindex(lua_State *L) {
    const size_t *stage = luaL_checkudata(L, 1, OUTS_META);
    return raise_fmt(L, "the outputs of stage '%s' are read-only", ctx_of(L)->dag.stages[*stage].name);
}

static int l_outputs_tostring(lua_State *L) {
    const size_t *stage = luaL_checkudata(L, 1, OUTS_META);
    lua_pushfstring(L, "outputs of stage '%s'", ctx_of(L)->dag.stages[*stage].name);
    return 1;
}

/* ---- stage names ---- */

static int name_char_ok(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
           ch == '.' || ch == '-' || ch == '/';
}

static int check_segments(const char *name) {
    for (const char *seg = name; seg;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0)
            return err_set("stage name '%s' has an empty segment", name);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return err_set("stage name '%s' has a '%.*s' segment", name, (int)n, seg);
        seg = end ? end + 1 : NULL;
    }
    return 0;
}

static int check_stage_name(const char *name, size_t len) {
    if (len == 0)
        return err_set("stage name is empty");
    if (len > STAGE_NAME_MAX)
        return err_set("stage name '%.40s...' is longer than %d characters", name, STAGE_NAME_MAX);
    for (size_t i = 0; i < len; i++)
        if (!name_char_ok(name[i])) {
            unsigned char ch = (unsigned char)name[i];
            if (ch >= 0x20 && ch < 0x7f)
                return err_set("stage name '%s' contains '%c' (allowed: letters, digits, '_', '.', '-', '/')",
                               name, ch);
            return err_set(
                "stage name contains the byte 0x%02x (allowed: letters, digits, '_', '.', '-', '/')", ch);
        }
    if (name[0] == '/' || name[len - 1] == '/')
        return err_set("stage name '%s' starts or ends with '/'", name);
    return check_segments(name);
}

/* ---- parameters ---- */

static const char *type_phrase(enum param_type t) {
    switch (t) {
    case PARAM_INT:
        return "an integer";
    case PARAM_NUM:
        return "a number";
    case PARAM_STR:
        return "a string";
    case PARAM_BOOL:
        return "a boolean";
    case PARAM_STRS:
        return "a list of strings";
    case PARAM_NUMS:
        return "a list of numbers";
    case PARAM_REF:
        return "a stage output (h.out.name or ref(...))";
    case PARAM_REFS:
        return "a list of stage outputs";
    case PARAM_PATH:
        return "a path (string)";
    }
    return "a value";
}

/* What the user gave, for messages. */
static const char *describe(lua_State *L, int idx) {
    if (luaL_testudata(L, idx, REF_META))
        return "a stage output";
    if (luaL_testudata(L, idx, OUTS_META))
        return "the outputs table of a stage (pick one: .out.name)";
    if (lua_type(L, idx) == LUA_TTABLE && lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, HANDLE_META);
        int handle = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (handle)
            return "a stage handle (use h.out.name)";
    }
    return luaL_typename(L, idx);
}

static int type_err(lua_State *L, const char *stage, const struct param_spec *p, int idx) {
    return err_set("parameter '%s' of stage '%s' must be %s, got %s", p->name, stage, type_phrase(p->type),
                   describe(L, idx));
}

static int to_int64(lua_State *L, int idx, int64_t *out) {
    if (lua_isinteger(L, idx)) {
        *out = (int64_t)lua_tointeger(L, idx);
        return 0;
    }
    double f = lua_tonumber(L, idx);
    if (f != floor(f) || f < -0x1p63 || f >= 0x1p63)
        return -1;
    *out = (int64_t)f;
    return 0;
}

static struct json *scalar_value(lua_State *L, const char *stage, const struct param_spec *p, int idx) {
    int t = lua_type(L, idx);
    if (p->type == PARAM_INT && t == LUA_TNUMBER) {
        int64_t v;
        if (to_int64(L, idx, &v) == 0)
            return json_int(v);
        err_set("parameter '%s' of stage '%s' must be an integer, got %.17g", p->name, stage,
                lua_tonumber(L, idx));
        return NULL;
    }
    if (p->type == PARAM_NUM && t == LUA_TNUMBER) {
        double v = lua_tonumber(L, idx);
        if (v == 0)
            v = 0.0; /* -0.0 and 0.0 are the same parameter, so they must make the same cache key */
        if (isfinite(v))
            return json_num(v);
        err_set("parameter '%s' of stage '%s' must be a finite number, got %g", p->name, stage, v);
        return NULL;
    }
    if ((p->type == PARAM_STR || p->type == PARAM_PATH) && t == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        enum text_fault f = text_fault(s, len);
        if (f == TEXT_OK)
            return json_strn(s, len);
        err_set("parameter '%s' of stage '%s' %s", p->name, stage, fault_phrase(f));
        return NULL;
    }
    if (p->type == PARAM_BOOL && t == LUA_TBOOLEAN)
        return json_bool(lua_toboolean(L, idx));
    type_err(L, stage, p, idx);
    return NULL;
}

/* What the keys of a would-be list look like; the worst key in a fixed order is kept, so the message does not
 * depend on hash order: string keys (bytewise first), then other types, then integers below 1. */
struct keyscan {
    size_t count, min_len;
    const char *min_str; /* stays valid: it is a key of the table */
    int bad_type, below;
    lua_Integer min_int;
};

static void scan_keys(lua_State *L, int idx, struct keyscan *k) {
    memset(k, 0, sizeof *k);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        k->count++;
        int t = lua_type(L, -1);
        if (lua_isinteger(L, -1)) {
            lua_Integer i = lua_tointeger(L, -1); /* one above count leaves a hole in 1..count */
            if (i < 1 && (!k->below || i < k->min_int))
                k->min_int = i;
            k->below |= i < 1;
        } else if (t == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            if (!k->min_str || strcmp(s, k->min_str) < 0) {
                k->min_str = s;
                k->min_len = len;
            }
        } else if (!k->bad_type || t < k->bad_type) {
            k->bad_type = t;
        }
    }
}

/* Checks that the table at idx is a proper sequence 1..n; sets *n. */
static int check_list(lua_State *L, const char *stage, const struct param_spec *p, int idx, size_t *n) {
    struct keyscan k;
    scan_keys(L, idx, &k);
    const char *what = type_phrase(p->type);
    if (k.min_str)
        return err_set("parameter '%s' of stage '%s' must be %s (keys 1..n), it has key '%.*s'", p->name,
                       stage, what, (int)(k.min_len > 100 ? 100 : k.min_len), k.min_str);
    if (k.bad_type)
        return err_set("parameter '%s' of stage '%s' must be %s (keys 1..n), it has a key of type %s",
                       p->name, stage, what, lua_typename(L, k.bad_type));
    if (k.below)
        return err_set("parameter '%s' of stage '%s' must be %s (keys 1..n), it has key %lld", p->name, stage,
                       what, (long long)k.min_int);
    for (size_t i = 1; i <= k.count; i++) {
        int t = lua_rawgeti(L, idx, (lua_Integer)i);
        lua_pop(L, 1);
        if (t == LUA_TNIL)
            return err_set("parameter '%s' of stage '%s' must be %s without holes, index %zu is missing",
                           p->name, stage, what, i);
    }
    *n = k.count;
    return 0;
}

static int element_err(lua_State *L, const char *stage, const struct param_spec *p, size_t i, int idx) {
    return err_set("parameter '%s' of stage '%s' must be %s, element %zu is %s", p->name, stage,
                   type_phrase(p->type), i, describe(L, idx));
}

static struct json *list_value(lua_State *L, const char *stage, const struct param_spec *p, int idx) {
    size_t n;
    if (lua_type(L, idx) != LUA_TTABLE) {
        type_err(L, stage, p, idx);
        return NULL;
    }
    if (check_list(L, stage, p, idx, &n) < 0)
        return NULL;
    struct json *arr = json_arr();
    struct param_spec elem = {p->name, p->type == PARAM_STRS ? PARAM_STR : PARAM_NUM, NULL, NULL};
    int want = elem.type == PARAM_STR ? LUA_TSTRING : LUA_TNUMBER;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i);
        struct json *v = NULL;
        enum text_fault f = TEXT_OK;
        if (lua_type(L, -1) != want)
            element_err(L, stage, p, i, -1);
        else if (want == LUA_TSTRING && (f = value_fault(L, -1)) != TEXT_OK)
            err_set("element %zu of parameter '%s' of stage '%s' %s", i, p->name, stage, fault_phrase(f));
        else
            v = scalar_value(L, stage, &elem, lua_gettop(L));
        lua_pop(L, 1);
        if (!v) {
            json_free(arr);
            return NULL;
        }
        json_push(arr, v);
    }
    return arr;
}

static void add_pending(struct mctx *c, const char *param, size_t index, size_t ref) {
    c->pending = grow(c->pending, c->npending, sizeof *c->pending);
    c->pending[c->npending++] = (struct minput){0, param, index, ref};
}

static int ref_value(lua_State *L, struct mctx *c, const char *stage, const struct param_spec *p, int idx) {
    if (p->type == PARAM_REF) {
        size_t id = ref_id(L, idx);
        if (id == SIZE_MAX)
            return type_err(L, stage, p, idx);
        add_pending(c, p->name, 0, id);
        return 0;
    }
    size_t n;
    if (lua_type(L, idx) != LUA_TTABLE)
        return type_err(L, stage, p, idx);
    if (check_list(L, stage, p, idx, &n) < 0)
        return -1;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i);
        size_t id = ref_id(L, -1);
        if (id == SIZE_MAX)
            return element_err(L, stage, p, i, -1);
        lua_pop(L, 1);
        add_pending(c, p->name, i - 1, id);
    }
    return 0;
}

/* Brings a parsed default to the parameter's canonical type in place (integral numbers for PARAM_INT,
 * doubles for PARAM_NUM, no negative zero); 0 when the result does not fit the parameter (schema.c decides).
 */
static int canonical_default(enum param_type t, struct json *v) {
    if (t == PARAM_INT && v->type == JSON_NUM && v->n == floor(v->n) && v->n >= -0x1p63 && v->n < 0x1p63) {
        v->i = (int64_t)v->n;
        v->type = JSON_INT;
    } else if (t == PARAM_NUM && v->type == JSON_INT) {
        v->n = (double)v->i;
        v->type = JSON_NUM;
    }
    if (t == PARAM_NUM && v->type == JSON_NUM && v->n == 0)
        v->n = 0.0; /* a default of -0.0 keys like one of 0.0 */
    if ((t == PARAM_STRS || t == PARAM_NUMS) && v->type == JSON_ARR)
        for (size_t i = 0; i < v->len; i++)
            canonical_default(t == PARAM_STRS ? PARAM_STR : PARAM_NUM, v->items[i]);
    return schema_value_fits(t, v);
}

static struct json *default_value(const struct kind_schema *k, const struct param_spec *p) {
    struct json *v = json_parse(p->def, strlen(p->def));
    if (v && canonical_default(p->type, v))
        return v;
    json_free(v);
    err_set("kind '%s': the default of parameter '%s' is not %s: %s", k->name, p->name, type_phrase(p->type),
            p->def);
    return NULL;
}

/* A parameter left out: its default, nothing (refs that default to null or []), or an error. */
static int absent_param(struct mctx *c, const char *stage, const struct kind_schema *k,
                        const struct param_spec *p) {
    if (!p->def)
        return err_set("stage '%s' (kind %s) is missing required parameter '%s'", stage, k->name, p->name);
    if (p->type == PARAM_REF || p->type == PARAM_REFS) {
        if (strcmp(p->def, "null") == 0 || strcmp(p->def, "[]") == 0)
            return 0;
        return err_set("kind '%s': the default of parameter '%s' must be null or []", k->name, p->name);
    }
    struct json *v = default_value(k, p);
    if (!v)
        return -1;
    json_set(c->pending_params, p->name, v);
    return 0;
}

/* Converts one parameter (its value on top of the stack) into pending_params or pending inputs. */
static int one_param(lua_State *L, struct mctx *c, const char *stage, const struct kind_schema *k,
                     const struct param_spec *p) {
    int idx = lua_gettop(L);
    if (lua_isnil(L, idx))
        return absent_param(c, stage, k, p);
    if (p->type == PARAM_REF || p->type == PARAM_REFS)
        return ref_value(L, c, stage, p, idx);
    struct json *v = p->type == PARAM_STRS || p->type == PARAM_NUMS ? list_value(L, stage, p, idx)
                                                                    : scalar_value(L, stage, p, idx);
    if (!v)
        return -1;
    json_set(c->pending_params, p->name, v);
    return 0;
}

/* ---- declarations ---- */

static int lookup_kind(const struct mctx *c, const char *kind, const struct kind_schema **out) {
    const char **names = xmalloc((c->nkinds + 1) * sizeof *names);
    *out = NULL;
    for (size_t i = 0; i < c->nkinds; i++) {
        names[i] = c->kinds[i]->name;
        if (!*out && strcmp(kind, names[i]) == 0)
            *out = c->kinds[i];
    }
    char hint[256];
    if (!*out)
        suggest(kind, names, c->nkinds, hint, sizeof hint);
    free(names);
    return *out ? 0 : err_set("unknown stage kind '%s'%s", kind, hint);
}

/* The kind on top of the stack is a name to look up: NUL bytes would cut it short. */
static int kind_text(lua_State *L, const char *stage) {
    enum text_fault f = value_fault(L, -1);
    if (f != TEXT_OK)
        err_set("the kind of stage '%s' %s", stage, fault_phrase(f));
    return f == TEXT_OK;
}

static int check_kind(lua_State *L, const struct mctx *c, const char *stage, const struct kind_schema **out) {
    lua_pushliteral(L, "kind");
    int t = lua_rawget(L, 1), rc;
    if (t == LUA_TNIL)
        rc = err_set("stage '%s' has no kind (add kind = \"...\")", stage);
    else if (t != LUA_TSTRING)
        rc = err_set("the kind of stage '%s' must be a string, got %s", stage, describe(L, -1));
    else
        rc = kind_text(L, stage) ? lookup_kind(c, lua_tostring(L, -1), out) : -1;
    lua_pop(L, 1);
    return rc;
}

/* Every key must name a parameter; the bytewise-first unknown one is reported, whatever the hash order. */
static int check_keys(lua_State *L, const char *stage, const struct kind_schema *k) {
    const char *unknown = NULL;
    int bad_type = 0;
    enum text_fault fault = TEXT_OK;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        int t = lua_type(L, -1);
        if (t != LUA_TSTRING) {
            bad_type = !bad_type || t < bad_type ? t : bad_type;
            continue;
        }
        size_t len;
        const char *key = lua_tolstring(L, -1, &len); /* stays valid: it is a key of the spec */
        enum text_fault f = text_fault(key, len);
        fault = f > fault ? f : fault;
        if (strcmp(key, "kind") != 0 && !schema_param(k, key) && (!unknown || strcmp(key, unknown) < 0))
            unknown = key;
    }
    if (bad_type)
        return err_set("stage '%s': every parameter needs a name (name = value), found a key of type %s",
                       stage, lua_typename(L, bad_type));
    if (fault != TEXT_OK) /* before the names: "bytes\0x" would pass for "bytes" */
        return err_set("stage '%s': a parameter name %s", stage, fault_phrase(fault));
    if (!unknown)
        return 0;
    const char **names = xmalloc((k->nparams + 1) * sizeof *names);
    for (size_t i = 0; i < k->nparams; i++)
        names[i] = k->params[i].name;
    char hint[256];
    suggest(unknown, names, k->nparams, hint, sizeof hint);
    free(names);
    return err_set("stage '%s' (kind %s) has no parameter '%.100s'%s", stage, k->name, unknown, hint);
}

static void discard_pending(struct mctx *c) {
    json_free(c->pending_params);
    c->pending_params = NULL;
    c->npending = 0;
}

/* Checks the spec table (slot 1) against the kind, filling pending_params and pending inputs. */
static int build_stage(lua_State *L, struct mctx *c, const char *stage, const struct kind_schema **k) {
    if (check_kind(L, c, stage, k) < 0 || check_keys(L, stage, *k) < 0)
        return -1;
    c->pending_params = json_obj();
    for (size_t i = 0; i < (*k)->nparams; i++) {
        const struct param_spec *p = &(*k)->params[i];
        lua_pushstring(L, p->name);
        lua_rawget(L, 1);
        int rc = one_param(L, c, stage, *k, p);
        lua_settop(L, 1);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* About the C memory a value takes: its nodes, strings and item arrays. */
static size_t json_bytes(const struct json *v) {
    size_t n = sizeof *v + MALLOC_OVERHEAD;
    if (v->type == JSON_STR)
        n += v->len + 1 + MALLOC_OVERHEAD;
    if (v->type != JSON_ARR && v->type != JSON_OBJ)
        return n;
    n += v->cap * sizeof *v->items * (v->type == JSON_OBJ ? 2 : 1) + MALLOC_OVERHEAD;
    for (size_t i = 0; i < v->len; i++)
        n += json_bytes(v->items[i]) + (v->type == JSON_OBJ ? strlen(v->keys[i]) + 1 + MALLOC_OVERHEAD : 0);
    return n;
}

/* A declaration's parameters and inputs live in C, outside the Lua allocator: they are charged to the
 * sandbox's limits, so that a loop reusing one big list cannot fill the machine's memory. */
static void charge_stage(lua_State *L, const struct mctx *c, const char *name, const char *file) {
    size_t bytes = json_bytes(c->pending_params) + sizeof(struct dag_stage) + strlen(name) + strlen(file) +
                   4 * sizeof(size_t) + 2 * MALLOC_OVERHEAD;
    bytes += c->npending * (sizeof(struct minput) + sizeof(struct dag_input) + 64 + 2 * MALLOC_OVERHEAD);
    sandbox_charge(L, (long long)(bytes / BYTES_PER_STEP), bytes);
}

static void push_handle(lua_State *L, const struct mctx *c, size_t stage) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, c->dag.stages[stage].name);
    lua_setfield(L, -2, "name");
    size_t *p = lua_newuserdatauv(L, sizeof *p, 0);
    *p = stage;
    luaL_setmetatable(L, OUTS_META);
    lua_setfield(L, -2, "out");
    luaL_setmetatable(L, HANDLE_META);
}

/* stage "name" { ... }: the second call. Upvalues: the context, the name. */
static int l_stage_spec(lua_State *L) {
    struct mctx *c = ctx_of(L);
    const char *name = lua_tostring(L, lua_upvalueindex(2));
    if (c->finished)
        return raise_fmt(L, "stage: called after the manifest finished");
    if (lua_type(L, 1) != LUA_TTABLE)
        return raise_fmt(L, "stage '%s': expected a table of parameters { kind = ... }, got %s", name,
                         describe(L, 1));
    if (lua_getmetatable(L, 1))
        return raise_fmt(L,
                         "stage '%s': the parameter table must be a plain table (it is read without "
                         "metamethods)",
                         name);
    lua_settop(L, 1);
    discard_pending(c);
    const struct kind_schema *k;
    if (build_stage(L, c, name, &k) < 0) {
        discard_pending(c);
        return raise_msg(L, err_msg());
    }
    const char *file;
    int line;
    caller_pos(L, c, &file, &line);
    charge_stage(L, c, name, file);
    long idx = dag_add(&c->dag, name, k, c->pending_params, file, line);
    c->pending_params = NULL;
    if (idx < 0) {
        discard_pending(c);
        return raise_msg(L, err_msg());
    }
    for (size_t i = 0; i < c->npending; i++) {
        c->inputs = grow(c->inputs, c->ninputs, sizeof *c->inputs);
        c->inputs[c->ninputs] = c->pending[i];
        c->inputs[c->ninputs++].stage = (size_t)idx;
    }
    c->npending = 0;
    push_handle(L, c, (size_t)idx);
    return 1;
}

/* stage "name": checks the name and returns the function that takes the parameters. stage("name", {...})
 * does both at once. */
static int l_stage(lua_State *L) {
    if (lua_type(L, 1) != LUA_TSTRING)
        return raise_fmt(L, "stage: the name must be a string (stage \"name\" { ... }), got %s",
                         describe(L, 1));
    size_t len;
    const char *name = lua_tolstring(L, 1, &len);
    if (check_stage_name(name, len) < 0)
        return raise_msg(L, err_msg());
    int direct = lua_gettop(L) >= 2;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, l_stage_spec, 2);
    if (direct) {
        lua_pushvalue(L, 2);
        lua_call(L, 1, 1);
    }
    return 1;
}

static void set_closure(lua_State *L, struct mctx *c, const char *field, lua_CFunction f) {
    lua_pushlightuserdata(L, c);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, -2, field);
}

static void set_string(lua_State *L, const char *field, const char *value) {
    lua_pushstring(L, value);
    lua_setfield(L, -2, field);
}

/* Runs protected (allocation may fail): the metatables and the prelude globals. */
static int setup(lua_State *L) {
    struct mctx *c = lua_touserdata(L, 1);
    luaL_newmetatable(L, REF_META);
    set_closure(L, c, "__tostring", l_ref_tostring);
    set_string(L, "__metatable", "stage output");
    luaL_newmetatable(L, OUTS_META);
    set_closure(L, c, "__index", l_outputs_index);
    set_closure(L, c, "__newindex", l_outputs_newindex);
    set_closure(L, c, "__tostring", l_outputs_tostring);
    set_string(L, "__metatable", "stage outputs");
    luaL_newmetatable(L, HANDLE_META);
    set_string(L, "__metatable", "stage handle");
    lua_pushglobaltable(L);
    set_closure(L, c, "stage", l_stage);
    set_closure(L, c, "ref", l_ref);
    return 0;
}

/* ---- after the manifest ran ---- */

static int resolve_ref(struct mctx *c, struct mref *r) {
    long s = dag_find(&c->dag, r->stage_name);
    if (s < 0) {
        const char **names = xmalloc((c->dag.n + 1) * sizeof *names);
        for (size_t i = 0; i < c->dag.n; i++)
            names[i] = c->dag.stages[i].name;
        char hint[256];
        suggest(r->stage_name, names, c->dag.n, hint, sizeof hint);
        free(names);
        return err_set("%s:%d: ref: no stage named '%s'%s", r->file, r->line, r->stage_name, hint);
    }
    const struct dag_stage *st = &c->dag.stages[s];
    if (!schema_has_output(st->kind, r->output)) {
        char prefix[MSG_CAP];
        snprintf(prefix, sizeof prefix, "%s:%d: ref: ", r->file, r->line);
        return no_output_err(prefix, st->name, st->kind, r->output);
    }
    r->stage = s;
    return 0;
}

/* Resolves every ref() in the order they were made, then adds the edges (stage, parameter, index order). */
static int finish(struct mctx *c) {
    c->finished = 1;
    for (size_t i = 0; i < c->nrefs; i++)
        if (c->refs[i].stage_name && resolve_ref(c, &c->refs[i]) < 0)
            return -1;
    for (size_t i = 0; i < c->ninputs; i++) {
        const struct minput *in = &c->inputs[i];
        const struct mref *r = &c->refs[in->ref];
        dag_add_input(&c->dag, in->stage, in->param, in->index, (size_t)r->stage, r->output);
    }
    return dag_sort(&c->dag);
}

static void ctx_free(struct mctx *c) {
    for (size_t i = 0; i < c->nrefs; i++) {
        free(c->refs[i].stage_name);
        free(c->refs[i].output);
        free(c->refs[i].file);
    }
    free(c->refs);
    free(c->inputs);
    free(c->pending);
    json_free(c->pending_params);
}

/* "" for a bare file name (modules then resolve against the working directory, like the manifest). */
static char *module_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        return xstrdup("");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *dir = xmalloc(n + 1);
    memcpy(dir, path, n);
    dir[n] = '\0';
    return dir;
}

static int run(struct mctx *c, const struct manifest_limits *lim) {
    char *dir = module_dir(c->path);
    struct sandbox *sb = sandbox_new(lim->memory, lim->instructions, dir);
    free(dir);
    if (!sb)
        return err_prefix("%s", c->path);
    lua_State *L = sandbox_lua(sb);
    lua_pushcfunction(L, setup);
    lua_pushlightuserdata(L, c);
    int rc = lua_pcall(L, 1, 0, 0) == LUA_OK
                 ? 0
                 : err_set("%s: cannot set up the manifest environment (memory limit too small)", c->path);
    lua_settop(L, 0);
    if (rc == 0)
        rc = sandbox_run_file(sb, c->path);
    c->finished = 1;
    sandbox_free(sb);
    return rc;
}

int manifest_load(const char *path, const struct kind_schema *const *kinds, size_t nkinds,
                  const struct manifest_limits *limits, struct dag *out) {
    struct manifest_limits lim = {(size_t)256 << 20, 200000000LL};
    if (limits && limits->memory)
        lim.memory = limits->memory;
    if (limits && limits->instructions)
        lim.instructions = limits->instructions;
    memset(out, 0, sizeof *out);
    struct mctx c = {0};
    c.path = path;
    c.kinds = kinds;
    c.nkinds = nkinds;
    int rc = run(&c, &lim);
    if (rc == 0)
        rc = finish(&c);
    ctx_free(&c);
    if (rc == 0)
        *out = c.dag;
    else
        dag_free(&c.dag);
    return rc;
}

/* sandbox: the Lua 5.4 state a manifest runs in: a curated, deterministic environment, a memory cap and an
 * instruction budget that pcall cannot swallow, and error messages reduced to one "<file>:<line>: " line. */
#include "lua/sandbox.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua/pattern.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"

#define HOOK_EVERY 1000
#define MODULE_NAME_MAX 200
#define MSG_CAP 1024
#define BYTES_PER_STEP 16  /* allocating and filling this many bytes costs about one VM instruction */
#define NUMBER_TEXT_MAX 64 /* longest text of a number that gsub uses as a replacement string */

enum kill_reason { KILL_NONE, KILL_BUDGET, KILL_MEMORY };

struct sandbox {
    lua_State *L;
    int ready; /* the state is fully built: the allocator may look at the call stack */
    size_t mem_cap, mem_used;
    int refusals; /* growths refused in a row; 2 means Lua's retry after a full collection failed too */
    long long budget, spent;
    enum kill_reason killed;
    int kill_file, kill_line; /* where the limit broke (index into files, -1 unknown) */
    int mem_file, mem_line;   /* where growth was last refused */
    lua_Integer next_id;      /* for tostring of tables and functions (addresses would differ between runs) */
    char *module_dir;         /* NULL: require is unavailable */
    char **files;             /* every chunk loaded from disk; only these may head a message */
    size_t nfiles;
    lua_CFunction orig_format, orig_rep, orig_move, orig_setmetatable;
    lua_CFunction orig_find, orig_match, orig_gmatch, orig_gsub;
};

/* Registry keys (their addresses are the keys). */
static const char KEY_IDS = 0, KEY_LOADED = 0, KEY_KILLED = 0;

static struct sandbox *sb_of(lua_State *L) {
    return *(struct sandbox **)lua_getextraspace(L);
}

static int sb_known_file(const struct sandbox *sb, const char *path) {
    for (size_t i = 0; i < sb->nfiles; i++)
        if (strcmp(sb->files[i], path) == 0)
            return (int)i;
    return -1;
}

static void sb_add_file(struct sandbox *sb, const char *path) {
    if (sb_known_file(sb, path) >= 0)
        return;
    sb->files = xrealloc(sb->files, (sb->nfiles + 1) * sizeof *sb->files);
    sb->files[sb->nfiles++] = xstrdup(path);
}

/* The innermost frame running a file's code: chunks from load() are skipped (they are not files), and only
 * files this sandbox loaded count, since load() cannot make "@" chunk names. Reads the stack, allocates
 * nothing, so the allocator may call it. */
static int sb_where(struct sandbox *sb, lua_State *L, int *line) {
    lua_Debug ar;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.source[0] != '@' || ar.currentline <= 0)
            continue;
        int f = sb_known_file(sb, ar.source + 1);
        if (f >= 0) {
            *line = ar.currentline;
            return f;
        }
    }
    *line = 0;
    return -1;
}

/* ---- limits ---- */

static void sb_hook(lua_State *L, lua_Debug *ar);

static void sb_kill(struct sandbox *sb, lua_State *L, enum kill_reason why) {
    if (sb->killed)
        return;
    sb->killed = why;
    if (why == KILL_MEMORY) {
        sb->kill_file = sb->mem_file;
        sb->kill_line = sb->mem_line;
    } else {
        sb->kill_file = sb_where(sb, L, &sb->kill_line);
    }
    /* From now on every instruction fails, so no handler can keep going. */
    lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
}

/* The error object itself does not matter (the message is rebuilt from sb->killed), so a preallocated one is
 * used: raising must work even when no byte can be allocated. */
static int sb_raise_killed(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_KILLED);
    return lua_error(L);
}

static void sb_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    struct sandbox *sb = sb_of(L);
    if (!sb->killed) {
        sb->spent += HOOK_EVERY;
        if (sb->spent <= sb->budget)
            return;
        sb_kill(sb, L, KILL_BUDGET);
    }
    sb_raise_killed(L);
}

/* Charges work done inside C functions, where the count hook does not fire. */
static void sb_charge(lua_State *L, long long n) {
    struct sandbox *sb = sb_of(L);
    if (!sb->killed && n <= sb->budget - sb->spent) {
        sb->spent += n;
        return;
    }
    sb_kill(sb, L, KILL_BUDGET);
    sb_raise_killed(L);
}

static void sb_refuse(struct sandbox *sb) {
    if (sb->ready && !sb->killed)
        sb->mem_file = sb_where(sb, sb->L, &sb->mem_line);
    if (++sb->refusals >= 2 && sb->ready)
        sb_kill(sb, sb->L, KILL_MEMORY);
}

/* Charges the bytes a growth allocates: strings are filled by copying in C (s .. t in a loop, upper, rep,
 * gsub), where the hook cannot see the work. Called from the allocator, so it cannot raise: the kill makes
 * the next instruction fail. */
static void sb_charge_bytes(struct sandbox *sb, size_t bytes) {
    sb->spent += (long long)(bytes / BYTES_PER_STEP);
    if (sb->spent > sb->budget && sb->ready && !sb->killed)
        sb_kill(sb, sb->L, KILL_BUDGET);
}

static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    struct sandbox *sb = ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        sb->mem_used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > sb->mem_cap - sb->mem_used) {
        sb_refuse(sb);
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    sb->mem_used = sb->mem_used - old + nsize;
    if (nsize > old) {
        sb->refusals = 0;
        sb_charge_bytes(sb, nsize - old);
    }
    return p;
}

/* ---- messages ---- */

static int sb_error(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Raises "<file>:<line>: <message>" for the innermost file frame. */
static int sb_error(lua_State *L, const char *fmt, ...) {
    char msg[MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct sandbox *sb = sb_of(L);
    int line, f = sb_where(sb, L, &line);
    if (f >= 0)
        lua_pushfstring(L, "%s:%d: %s", sb->files[f], line, msg);
    else
        lua_pushstring(L, msg);
    return lua_error(L);
}

/* Length of a "<file>:<digits>:" head naming a known file, or 0. */
static size_t sb_position_len(const struct sandbox *sb, const char *s) {
    for (size_t i = 0; i < sb->nfiles; i++) {
        size_t n = strlen(sb->files[i]);
        if (strncmp(s, sb->files[i], n) != 0 || s[n] != ':' || !isdigit((unsigned char)s[n + 1]))
            continue;
        size_t j = n + 1;
        while (isdigit((unsigned char)s[j]))
            j++;
        if (s[j] == ':')
            return j;
    }
    return 0;
}

/* Lua shortens long chunk names to "...<tail>" in its own messages; put the full path back. */
static void sb_unshorten(const struct sandbox *sb, char *msg, size_t cap) {
    if (strncmp(msg, "...", 3) != 0)
        return;
    char *colon = strchr(msg + 3, ':');
    if (!colon || !isdigit((unsigned char)colon[1]))
        return;
    size_t tail = (size_t)(colon - (msg + 3));
    for (size_t i = 0; i < sb->nfiles; i++) {
        size_t n = strlen(sb->files[i]);
        if (n < tail || memcmp(sb->files[i] + n - tail, msg + 3, tail) != 0)
            continue;
        char rest[MSG_CAP];
        snprintf(rest, sizeof rest, "%s", colon);
        snprintf(msg, cap, "%s%s", sb->files[i], rest);
        return;
    }
}

/* Turns any message into exactly one line that starts with a position: Lua's own position when it names a
 * file, else the given one (file < 0: the main file without a line). */
static void sb_normalize(const struct sandbox *sb, const char *in, int file, int line, char *out,
                         size_t cap) {
    char msg[MSG_CAP];
    snprintf(msg, sizeof msg, "%s", in);
    char *tb = strstr(msg, "\nstack traceback:");
    if (tb)
        *tb = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == ' ')
        msg[--n] = '\0';
    sb_unshorten(sb, msg, sizeof msg);
    if (sb_position_len(sb, msg) > 0)
        snprintf(out, cap, "%s", msg);
    else if (file >= 0)
        snprintf(out, cap, "%s:%d: %s", sb->files[file], line, msg);
    else
        snprintf(out, cap, "%s: %s", sb->nfiles ? sb->files[0] : "manifest", msg);
}

static int sb_msgh(lua_State *L) {
    struct sandbox *sb = sb_of(L);
    if (sb->killed)
        return 1;
    char what[64];
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        snprintf(what, sizeof what, "(error object is a %s value)", luaL_typename(L, 1));
        msg = what;
    }
    char out[MSG_CAP];
    int line, f = sb_where(sb, L, &line);
    sb_normalize(sb, msg, f, line, out, sizeof out);
    lua_pushstring(L, out);
    return 1;
}

static void sb_size_text(size_t bytes, char *out, size_t cap) {
    if (bytes % (1024 * 1024) == 0)
        snprintf(out, cap, "%zu MiB", bytes / (1024 * 1024));
    else if (bytes % 1024 == 0)
        snprintf(out, cap, "%zu KiB", bytes / 1024);
    else
        snprintf(out, cap, "%zu bytes", bytes);
}

static void sb_report_limit(const struct sandbox *sb, const char *path, int file, int line,
                            const char *what) {
    if (file >= 0)
        err_set("%s:%d: manifest exceeded its %s", sb->files[file], line, what);
    else
        err_set("%s: manifest exceeded its %s", path, what);
}

/* err_set()s the one line for a failed load or run; the error object is on top of the stack. */
static int sb_report(struct sandbox *sb, int status, const char *path) {
    char what[96];
    if (sb->killed == KILL_BUDGET) {
        snprintf(what, sizeof what, "instruction budget (%lld)", sb->budget);
        sb_report_limit(sb, path, sb->kill_file, sb->kill_line, what);
        return -1;
    }
    if (sb->killed == KILL_MEMORY || status == LUA_ERRMEM) {
        char size[32];
        sb_size_text(sb->mem_cap, size, sizeof size);
        snprintf(what, sizeof what, "memory limit (%s)", size);
        int file = sb->killed ? sb->kill_file : sb->mem_file;
        sb_report_limit(sb, path, file, sb->killed ? sb->kill_line : sb->mem_line, what);
        return -1;
    }
    const char *msg = lua_tostring(sb->L, -1);
    char out[MSG_CAP];
    sb_normalize(sb, msg ? msg : "(error object is not a string)", -1, 0, out, sizeof out);
    return err_set("%s", out);
}

/* ---- the replaced base functions ---- */

static int sb_finish_pcall(lua_State *L, int status, int base) {
    struct sandbox *sb = sb_of(L);
    if (status == LUA_ERRMEM)
        sb_kill(sb, L, KILL_MEMORY);
    if (sb->killed)
        return sb_raise_killed(L);
    if (status != LUA_OK) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - base;
}

static int sb_pcall(lua_State *L) {
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    int status = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
    return sb_finish_pcall(L, status, 0);
}

/* An error raised by the count hook reaches the message handler while Lua still has hooks switched off, so
 * a user handler could loop unchecked: once killed, the handler is skipped. */
static int sb_xpcall_handler(lua_State *L) {
    if (sb_of(L)->killed)
        return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int sb_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, sb_xpcall_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* f, handler, true, f, args... */
    int status = lua_pcall(L, n - 2, LUA_MULTRET, 2);
    return sb_finish_pcall(L, status, 2);
}

/* tostring without addresses: tables, functions and the like get a number in order of first sight. */
static const char *sb_tolstring(lua_State *L, int idx, size_t *len) {
    idx = lua_absindex(L, idx);
    int t = lua_type(L, idx);
    if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
        lua_pop(L, 1);
        return luaL_tolstring(L, idx, len);
    }
    if (t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TSTRING)
        return luaL_tolstring(L, idx, len);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_IDS);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    lua_Integer id = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (id == 0) {
        id = ++sb_of(L)->next_id;
        lua_pushvalue(L, idx);
        lua_pushinteger(L, id);
        lua_rawset(L, -3);
    }
    lua_pop(L, 1);
    lua_pushfstring(L, "%s: %I", luaL_typename(L, idx), (LUAI_UACINT)id);
    return lua_tolstring(L, -1, len);
}

static int sb_tostring(lua_State *L) {
    luaL_checkany(L, 1);
    sb_tolstring(L, 1, NULL);
    return 1;
}

static int sb_print(lua_State *L) {
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = sb_tolstring(L, i, &len);
        sb_charge(L, (long long)len);
        if (i > 1)
            fputc('\t', stderr);
        fwrite(s, 1, len, stderr);
        lua_pop(L, 1);
    }
    fputc('\n', stderr);
    return 0;
}

/* load: text chunks only, in the sandbox's environment unless one is passed. A chunk name starting with '@'
 * would pass for a file in messages, so it becomes '='. */
static int sb_load(lua_State *L) {
    if (lua_type(L, 1) != LUA_TSTRING)
        return sb_error(L, "load: only string chunks are available in manifests");
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    sb_charge(L, (long long)len); /* parsing reads it all, allocating little for blanks or comments */
    const char *name = luaL_optstring(L, 2, s);
    int has_env = !lua_isnone(L, 4);
    lua_settop(L, 4);
    if (name[0] == '@')
        name = lua_pushfstring(L, "=%s", name + 1);
    int status = luaL_loadbufferx(L, s, len, name, "t");
    if (status == LUA_OK) {
        if (has_env) {
            lua_pushvalue(L, 4);
            if (!lua_setupvalue(L, -2, 1))
                lua_pop(L, 1);
        }
        return 1;
    }
    if (status == LUA_ERRMEM) {
        sb_kill(sb_of(L), L, KILL_MEMORY);
        return sb_raise_killed(L);
    }
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

static int sb_collectgarbage(lua_State *L) {
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") != 0)
        return sb_error(L, "collectgarbage: option '%s' is not available in manifests (only \"count\")", opt);
    int kb = lua_gc(L, LUA_GCCOUNT, 0), b = lua_gc(L, LUA_GCCOUNTB, 0);
    lua_pushnumber(L, (lua_Number)kb + (lua_Number)b / 1024.0);
    return 1;
}

/* Finalizers would run user code at moments that depend on the collector and could swallow errors, so objects
 * with __gc cannot be made (Lua only marks an object for finalization when setmetatable sees __gc). */
static int sb_setmetatable(lua_State *L) {
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        int has_gc = lua_rawget(L, 2) != LUA_TNIL;
        lua_pop(L, 1);
        if (has_gc)
            return sb_error(L, "setmetatable: __gc metamethods are not available in manifests");
    }
    return sb_of(L)->orig_setmetatable(L);
}

/* ---- deterministic pairs and next ----
 * Lua's own order follows string hashes seeded from the clock and addresses; these iterate numbers first
 * (ascending), then strings (bytewise), then false and true. Other key types have no stable order. */

struct tkey {
    int rank; /* 0 number, 1 string, 2 boolean */
    int isint;
    lua_Integer i;
    lua_Number f;
    const char *s;
    size_t len;
    lua_Integer pos; /* where the key sits in the scratch table */
};

/* Reads the key at idx (never converts it, so lua_next stays valid). -1 for a type without a stable order. */
static int key_read(lua_State *L, int idx, struct tkey *k) {
    memset(k, 0, sizeof *k);
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        k->isint = lua_isinteger(L, idx);
        if (k->isint)
            k->i = lua_tointeger(L, idx);
        else
            k->f = lua_tonumber(L, idx);
        if (!k->isint && k->f == floor(k->f) && k->f >= -0x1p63 && k->f < 0x1p63) {
            k->isint = 1;
            k->i = (lua_Integer)k->f;
        }
        return k->isint || !isnan(k->f) ? 0 : -1;
    case LUA_TSTRING:
        k->rank = 1;
        k->s = lua_tolstring(L, idx, &k->len);
        return 0;
    case LUA_TBOOLEAN:
        k->rank = 2;
        k->i = lua_toboolean(L, idx);
        return 0;
    default:
        return -1;
    }
}

static int cmp_int_float(lua_Integer i, lua_Number f) {
    if (f >= 0x1p63)
        return -1;
    if (f < -0x1p63)
        return 1;
    lua_Number fl = floor(f);
    lua_Integer fi = (lua_Integer)fl;
    if (i != fi)
        return i < fi ? -1 : 1;
    return f == fl ? 0 : -1;
}

static int key_cmp(const struct tkey *a, const struct tkey *b) {
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    if (a->rank == 1) {
        int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
        if (c != 0)
            return c < 0 ? -1 : 1;
        return a->len == b->len ? 0 : (a->len < b->len ? -1 : 1);
    }
    if (a->rank == 2 || (a->isint && b->isint))
        return a->i == b->i ? 0 : (a->i < b->i ? -1 : 1);
    if (!a->isint && !b->isint)
        return a->f == b->f ? 0 : (a->f < b->f ? -1 : 1);
    return a->isint ? cmp_int_float(a->i, b->f) : -cmp_int_float(b->i, a->f);
}

static int key_qsort_cmp(const void *a, const void *b) {
    return key_cmp(a, b);
}

static int sb_bad_key(lua_State *L, const char *fn, int idx) {
    return sb_error(L, "%s: a key of type %s has no fixed order (use string or number keys)", fn,
                    luaL_typename(L, idx));
}

/* Pushes a sequence of the keys of the table at t, in the deterministic order. */
static void sorted_keys(lua_State *L, int t) {
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        n++;
    }
    sb_charge(L, n);
    struct tkey *ks = lua_newuserdatauv(L, (size_t)n * sizeof *ks + 1, 0);
    lua_createtable(L, (int)n, 0); /* scratch: keeps the key strings alive while ks points into them */
    int scratch = lua_gettop(L);
    lua_Integer i = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (key_read(L, -1, &ks[i]) < 0)
            sb_bad_key(L, "pairs", -1);
        ks[i].pos = i + 1;
        lua_pushvalue(L, -1);
        lua_rawseti(L, scratch, ++i);
    }
    qsort(ks, (size_t)n, sizeof *ks, key_qsort_cmp);
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, scratch, ks[i].pos);
        lua_rawseti(L, -2, i + 1);
    }
    lua_replace(L, -3); /* drop the userdata and the scratch table */
    lua_pop(L, 1);
}

/* Upvalues: the table, its sorted keys, the position reached. Keys cleared meanwhile are skipped. */
static int pairs_iter(lua_State *L) {
    lua_Integer pos = lua_tointeger(L, lua_upvalueindex(3));
    for (;;) {
        pos++;
        if (lua_rawgeti(L, lua_upvalueindex(2), pos) == LUA_TNIL)
            return 1;
        lua_pushvalue(L, -1);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) {
            lua_pushinteger(L, pos);
            lua_replace(L, lua_upvalueindex(3));
            return 2;
        }
        lua_pop(L, 2);
    }
}

static int sb_pairs(lua_State *L) {
    luaL_checkany(L, 1);
    if (luaL_getmetafield(L, 1, "__pairs") != LUA_TNIL) {
        lua_pushvalue(L, 1);
        lua_call(L, 1, 3);
        return 3;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_pushvalue(L, 1);
    sorted_keys(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, pairs_iter, 3);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* next(t, k): the smallest key after k, by a full scan (pairs is the fast way to iterate). */
static int sb_next(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    struct tkey after, best, cur;
    int has_after = !lua_isnil(L, 2), has_best = 0;
    if (has_after && key_read(L, 2, &after) < 0)
        return sb_bad_key(L, "next", 2);
    lua_pushnil(L); /* 3: the best key so far */
    long long n = 0;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        n++;
        if (key_read(L, -1, &cur) < 0)
            return sb_bad_key(L, "next", -1);
        if ((has_after && key_cmp(&cur, &after) <= 0) || (has_best && key_cmp(&cur, &best) >= 0))
            continue;
        lua_pushvalue(L, -1);
        lua_replace(L, 3);
        key_read(L, 3, &best); /* points at the copy in slot 3, which stays on the stack */
        has_best = 1;
    }
    sb_charge(L, n);
    if (!has_best) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 3);
    lua_rawget(L, 1);
    return 2;
}

/* ---- string and table wrappers ---- */

/* string.rep of empty pieces would loop n times in C without allocating (the hook never fires). */
static int sb_rep(lua_State *L) {
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n > 0 && l == 0 && lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    return sb_of(L)->orig_rep(L);
}

/* ---- pattern matching ----
 * Lua's matcher backtracks in C, where the hook never fires, so each call is charged its worst case
 * (lua/pattern.h) before it runs; one that could pass the budget kills the manifest there. */

/* A 1-based start position as Lua's string functions read it (negative counts from the end), made 0-based. */
static size_t start_offset(lua_State *L, int arg, size_t len) {
    lua_Integer pos = luaL_optinteger(L, arg, 1);
    if (pos > 0)
        return (size_t)pos - 1 > len ? len + 1 : (size_t)pos - 1;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 0;
    return len - (size_t)-pos;
}

/* init_arg: the argument holding the start position, 0 when the search starts at the beginning. */
static void charge_pattern(lua_State *L, int init_arg, enum pattern_use use, int plain, double extra) {
    struct sandbox *sb = sb_of(L);
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t first = init_arg ? start_offset(L, init_arg, ls) : 0;
    if (first > ls)
        return; /* nothing to search: Lua returns at once */
    double left = (double)(sb->budget - sb->spent);
    double cost =
        plain ? pattern_plain_cost(ls - first, lp) : pattern_cost(s + first, ls - first, p, lp, use, left);
    cost += extra;
    sb_charge(L, cost >= left ? LLONG_MAX : (long long)cost);
}

static int sb_find(lua_State *L) {
    charge_pattern(L, 3, PATTERN_ONCE, lua_toboolean(L, 4), 0);
    return sb_of(L)->orig_find(L);
}

static int sb_match(lua_State *L) {
    charge_pattern(L, 3, PATTERN_ONCE, 0, 0);
    return sb_of(L)->orig_match(L);
}

/* The whole iteration is charged here, so the iterator Lua returns needs no wrapper. */
static int sb_gmatch(lua_State *L) {
    charge_pattern(L, 3, PATTERN_GMATCH, 0, 0);
    return sb_of(L)->orig_gmatch(L);
}

/* A replacement string is read once per match (at most one per position), and its %0 .. %9 copy text. */
static int sb_gsub(lua_State *L) {
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    int t = lua_type(L, 3);
    double repl = t == LUA_TSTRING ? (double)lua_rawlen(L, 3) : t == LUA_TNUMBER ? NUMBER_TEXT_MAX : 0;
    charge_pattern(L, 0, PATTERN_GSUB, 0, 2 * ((double)ls + 1) * (repl + 1));
    return sb_of(L)->orig_gsub(L);
}

/* string.format: no %p (an address), and %s of a table or function uses the address-free tostring. */
static int sb_format(lua_State *L) {
    size_t len;
    const char *f = luaL_checklstring(L, 1, &len);
    int top = lua_gettop(L), arg = 1;
    for (size_t i = 0; i < len; i++) {
        if (f[i] != '%' || ++i >= len || f[i] == '%')
            continue;
        while (i < len && memchr("-+ #0123456789.", f[i], 15))
            i++;
        arg++;
        if (i < len && f[i] == 'p')
            return sb_error(L, "string.format: '%%p' is not available in manifests");
        if (i < len && f[i] == 's' && arg <= top && lua_type(L, arg) != LUA_TSTRING &&
            lua_type(L, arg) != LUA_TNUMBER) {
            sb_tolstring(L, arg, NULL);
            lua_replace(L, arg);
        }
    }
    return sb_of(L)->orig_format(L);
}

/* table.move copies element by element in C: charge the count first. */
static int sb_move(lua_State *L) {
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
    if (e >= f) {
        lua_Unsigned count = (lua_Unsigned)e - (lua_Unsigned)f;
        sb_charge(L, count >= (lua_Unsigned)LLONG_MAX ? LLONG_MAX : (long long)count + 1);
    }
    return sb_of(L)->orig_move(L);
}

/* table.insert and table.remove shift elements one by one in C, so the shift is charged first. They are
 * written here rather than wrapped so that one length (one __len call) serves both the charge and the work.
 */
static int sb_insert(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer end = (lua_Integer)((lua_Unsigned)luaL_len(L, 1) + 1u), pos = end;
    if (lua_gettop(L) == 3) {
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)end, 2, "position out of bounds");
        if (end > pos)
            sb_charge(L, (long long)((lua_Unsigned)end - (lua_Unsigned)pos));
        for (lua_Integer i = end; i > pos; i--) {
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
    } else if (lua_gettop(L) != 2) {
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

static int sb_remove(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer size = luaL_len(L, 1), pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
    if (pos < size)
        sb_charge(L, (long long)(size - pos));
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) {
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

/* 1 if the value at a sorts before the one at b (absolute indices); slot 2 holds the comparator or nil. */
static int sort_less(lua_State *L, int a, int b) {
    if (lua_isnil(L, 2))
        return lua_compare(L, a, b, LUA_OPLT);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, a);
    lua_pushvalue(L, b);
    lua_call(L, 2, 1);
    int r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
}

/* Merges src[lo, mid) and src[mid, hi) into dst, taking from the left on ties (a stable sort). */
static void sort_merge(lua_State *L, int src, int dst, lua_Integer lo, lua_Integer mid, lua_Integer hi) {
    lua_Integer i = lo, j = mid, k = lo;
    while (i < mid || j < hi) {
        int from_right = i >= mid;
        if (i < mid && j < hi) {
            lua_rawgeti(L, src, j);
            lua_rawgeti(L, src, i);
            int top = lua_gettop(L);
            from_right = sort_less(L, top - 1, top);
            lua_pop(L, 2);
        }
        lua_rawgeti(L, src, from_right ? j++ : i++);
        lua_rawseti(L, dst, k++);
    }
}

/* table.sort as a stable merge sort: Lua's quicksort picks pivots from the clock on some inputs, which can
 * reorder equal elements from one run to the next. */
static int sb_sort(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    if (n < 2)
        return 0;
    if (n >= INT_MAX / 2)
        return sb_error(L, "table.sort: array too big");
    long long passes = 0;
    for (lua_Integer w = 1; w < n; w *= 2)
        passes++;
    sb_charge(L, (long long)n * passes);
    lua_createtable(L, (int)n, 0);
    lua_createtable(L, (int)n, 0);
    int src = 3, dst = 4;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        lua_rawseti(L, src, i);
    }
    for (lua_Integer w = 1; w < n; w *= 2) {
        for (lua_Integer lo = 1; lo <= n; lo += 2 * w) {
            lua_Integer mid = lo + w > n + 1 ? n + 1 : lo + w, hi = lo + 2 * w > n + 1 ? n + 1 : lo + 2 * w;
            sort_merge(L, src, dst, lo, mid, hi);
        }
        int t = src;
        src = dst;
        dst = t;
    }
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, src, i);
        lua_seti(L, 1, i);
    }
    return 0;
}

/* ---- require ---- */

static int module_name_ok(const char *s, size_t len) {
    if (len == 0 || len > MODULE_NAME_MAX || s[0] == '.' || s[len - 1] == '.' || strstr(s, "..") ||
        strlen(s) != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.')
            return 0;
    return 1;
}

/* Pushes <module_dir>/<name with dots as slashes>.lua. */
static const char *module_path(lua_State *L, const char *dir, const char *name) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (dir[0]) {
        luaL_addstring(&b, dir);
        if (dir[strlen(dir) - 1] != '/')
            luaL_addchar(&b, '/');
    }
    for (const char *p = name; *p; p++)
        luaL_addchar(&b, *p == '.' ? '/' : *p);
    luaL_addstring(&b, ".lua");
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

/* Loads the module file as a function on the stack (errors are raised with the file's own position). */
static void module_load(lua_State *L, struct sandbox *sb, const char *name, const char *path) {
    const char *chunk = lua_pushfstring(L, "@%s", path);
    char *data;
    size_t n;
    if (fsio_read_file(path, sb->mem_cap, &data, &n) < 0) {
        if (errno == ENOENT)
            sb_error(L, "require: no module '%s' (no file %s)", name, path);
        sb_error(L, "require: cannot read module '%s': %s", name, err_msg());
    }
    sb_add_file(sb, path);
    int status = luaL_loadbufferx(L, data, n, chunk, "t"); /* protected: cannot jump past the free */
    free(data);
    if (status == LUA_ERRMEM) {
        sb_kill(sb, L, KILL_MEMORY);
        sb_raise_killed(L);
    }
    if (status != LUA_OK)
        lua_error(L);
}

/* Runs the loaded module (on top; slot 1 its name, slot 2 the loaded table) and caches its result. The entry
 * is false while it runs, so a module that requires itself is caught instead of recursing. */
static int module_run(lua_State *L, struct sandbox *sb, const char *name) {
    lua_pushboolean(L, 0);
    lua_setfield(L, 2, name);
    lua_pushvalue(L, 1);
    int status = lua_pcall(L, 1, 1, 0);
    if (status != LUA_OK) {
        lua_pushnil(L);
        lua_setfield(L, 2, name);
        if (status == LUA_ERRMEM)
            sb_kill(sb, L, KILL_MEMORY);
        return sb->killed ? sb_raise_killed(L) : lua_error(L);
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, 2, name);
    return 1;
}

static int sb_require(lua_State *L) {
    struct sandbox *sb = sb_of(L);
    size_t len;
    if (lua_type(L, 1) != LUA_TSTRING)
        return sb_error(L, "require: the module name must be a string, got %s", luaL_typename(L, 1));
    const char *name = lua_tolstring(L, 1, &len);
    if (!module_name_ok(name, len))
        return sb_error(L,
                        "require: invalid module name '%s' (letters, digits, '_' and '.'; no leading, "
                        "trailing or double dot)",
                        name);
    if (!sb->module_dir)
        return sb_error(L, "require: modules are not available here");
    lua_settop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_LOADED); /* 2 */
    int t = lua_getfield(L, 2, name);
    if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))
        return sb_error(L, "require: module '%s' requires itself (a loop of require calls)", name);
    if (t != LUA_TNIL)
        return 1;
    module_load(L, sb, name, module_path(L, sb->module_dir, name));
    return module_run(L, sb, name);
}

/* ---- building the state ---- */

static void copy_field(lua_State *L, int from, int to, const char *name) {
    lua_getfield(L, from, name);
    lua_setfield(L, to, name);
}

static lua_CFunction wrap(lua_State *L, int lib, const char *name, lua_CFunction with) {
    lua_getfield(L, lib, name);
    lua_CFunction orig = lua_tocfunction(L, -1);
    lua_pop(L, 1);
    lua_pushcfunction(L, with);
    lua_setfield(L, lib, name);
    return orig;
}

/* For functions that read a whole string argument in C without allocating (tonumber, utf8.len): one step
 * per byte, about what decoding a byte costs. The original function is upvalue 1. */
static int sb_scan_string(lua_State *L) {
    if (lua_type(L, 1) == LUA_TSTRING)
        sb_charge(L, (long long)lua_rawlen(L, 1));
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

static void wrap_scan(lua_State *L, int lib, const char *name) {
    lua_getfield(L, lib, name);
    lua_pushcclosure(L, sb_scan_string, 1);
    lua_setfield(L, lib, name);
}

/* Opens a library without making it global and stores it in env under name; leaves it on the stack. */
static int open_lib(lua_State *L, int env, const char *name, lua_CFunction open) {
    luaL_requiref(L, name, open, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, env, name);
    return lua_gettop(L);
}

static void setup_libs(lua_State *L, struct sandbox *sb, int env) {
    int lib = open_lib(L, env, "string", luaopen_string); /* the same table is the strings' __index */
    lua_pushnil(L);
    lua_setfield(L, lib, "dump");
    sb->orig_rep = wrap(L, lib, "rep", sb_rep);
    sb->orig_format = wrap(L, lib, "format", sb_format);
    sb->orig_find = wrap(L, lib, "find", sb_find);
    sb->orig_match = wrap(L, lib, "match", sb_match);
    sb->orig_gmatch = wrap(L, lib, "gmatch", sb_gmatch);
    sb->orig_gsub = wrap(L, lib, "gsub", sb_gsub);
    lib = open_lib(L, env, "table", luaopen_table);
    sb->orig_move = wrap(L, lib, "move", sb_move);
    lua_pushcfunction(L, sb_sort);
    lua_setfield(L, lib, "sort");
    lua_pushcfunction(L, sb_insert);
    lua_setfield(L, lib, "insert");
    lua_pushcfunction(L, sb_remove);
    lua_setfield(L, lib, "remove");
    lib = open_lib(L, env, "math", luaopen_math);
    lua_pushnil(L);
    lua_setfield(L, lib, "random");
    lua_pushnil(L);
    lua_setfield(L, lib, "randomseed");
    lib = open_lib(L, env, "utf8", luaopen_utf8);
    wrap_scan(L, lib, "len");
    wrap_scan(L, lib, "offset");
}

static void setup_registry(lua_State *L) {
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_IDS);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_LOADED);
    lua_pushliteral(L, "manifest stopped: a limit was exceeded");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_KILLED);
}

/* Runs protected: any allocation may fail under a small cap. The fresh environment table replaces the
 * state's globals, so every chunk (and load) gets it as _ENV. */
static int sb_setup(lua_State *L) {
    static const char *const keep[] = {"assert", "error",  "getmetatable", "ipairs", "rawequal",
                                       "rawget", "rawlen", "rawset",       "select", "tonumber",
                                       "type",   "warn",   "_VERSION"};
    static const luaL_Reg mine[] = {{"pcall", sb_pcall},
                                    {"xpcall", sb_xpcall},
                                    {"print", sb_print},
                                    {"tostring", sb_tostring},
                                    {"load", sb_load},
                                    {"collectgarbage", sb_collectgarbage},
                                    {"pairs", sb_pairs},
                                    {"next", sb_next},
                                    {"require", sb_require},
                                    {"setmetatable", sb_setmetatable},
                                    {NULL, NULL}};
    struct sandbox *sb = sb_of(L);
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    int base = lua_gettop(L);
    lua_newtable(L);
    int env = lua_gettop(L);
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        copy_field(L, base, env, keep[i]);
    lua_getfield(L, base, "setmetatable");
    sb->orig_setmetatable = lua_tocfunction(L, -1);
    lua_pop(L, 1);
    luaL_setfuncs(L, mine, 0);
    wrap_scan(L, env, "tonumber");
    lua_pushvalue(L, env);
    lua_setfield(L, env, LUA_GNAME);
    setup_libs(L, sb, env);
    setup_registry(L);
    lua_pushvalue(L, env);
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    return 0;
}

struct sandbox *sandbox_new(size_t memory, long long instructions, const char *module_dir) {
    struct sandbox *sb = xcalloc(1, sizeof *sb);
    sb->mem_cap = memory;
    sb->budget = instructions;
    sb->kill_file = sb->mem_file = -1;
    sb->module_dir = module_dir ? xstrdup(module_dir) : NULL;
    sb->L = lua_newstate(sb_alloc, sb);
    if (!sb->L) {
        err_set("sandbox: cannot create a Lua state within %zu bytes", memory);
        sandbox_free(sb);
        return NULL;
    }
    *(struct sandbox **)lua_getextraspace(sb->L) = sb;
    lua_pushcfunction(sb->L, sb_setup);
    if (lua_pcall(sb->L, 0, 0, 0) != LUA_OK) {
        err_set("sandbox: cannot set up the Lua state within %zu bytes", memory);
        sandbox_free(sb);
        return NULL;
    }
    lua_sethook(sb->L, sb_hook, LUA_MASKCOUNT, HOOK_EVERY);
    sb->ready = 1;
    return sb;
}

struct lua_State *sandbox_lua(struct sandbox *sb) {
    return sb->L;
}

void sandbox_charge(struct lua_State *L, long long steps, size_t bytes) {
    struct sandbox *sb = sb_of(L);
    if (!sb->killed && bytes > sb->mem_cap - sb->mem_used) {
        sb->mem_file = sb_where(sb, L, &sb->mem_line);
        sb_kill(sb, L, KILL_MEMORY);
    }
    if (sb->killed)
        sb_raise_killed(L);
    sb->mem_used += bytes;
    sb_charge(L, steps);
}

int sandbox_run_file(struct sandbox *sb, const char *path) {
    lua_State *L = sb->L;
    char *data;
    size_t n;
    if (fsio_read_file(path, sb->mem_cap, &data, &n) < 0)
        return errno == ENOENT ? err_set("%s: no such manifest file", path) : err_prefix("%s", path);
    sb_add_file(sb, path);
    size_t cap = strlen(path) + 2;
    char *chunk = xmalloc(cap);
    snprintf(chunk, cap, "@%s", path);
    lua_settop(L, 0);
    lua_pushcfunction(L, sb_msgh);
    int status = luaL_loadbufferx(L, data, n, chunk, "t");
    free(chunk);
    free(data);
    if (status == LUA_OK)
        status = lua_pcall(L, 0, 0, 1);
    int rc = status == LUA_OK && !sb->killed ? 0 : sb_report(sb, status, path);
    lua_settop(L, 0);
    return rc;
}

void sandbox_free(struct sandbox *sb) {
    if (!sb)
        return;
    sb->ready = 0;
    if (sb->L)
        lua_close(sb->L);
    for (size_t i = 0; i < sb->nfiles; i++)
        free(sb->files[i]);
    free(sb->files);
    free(sb->module_dir);
    free(sb);
}

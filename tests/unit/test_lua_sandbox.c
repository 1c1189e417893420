/* test_lua_sandbox: escapes and limits of the manifest sandbox; each must end in one clear line. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "lua/sandbox.h"
#include "util/err.h"

#define MEM (8u << 20)
#define BUDGET 2000000LL

static char dir[64];

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs(text, f);
    fclose(f);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Runs src as <dir>/<name>; returns the error line ("" on success) in msg. */
static int run(const char *name, const char *src, size_t mem, long long budget, char *msg, size_t cap) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, src);
    struct sandbox *sb = sandbox_new(mem, budget, dir);
    CHECK(sb != NULL);
    if (!sb)
        return -1;
    int rc = sandbox_run_file(sb, path);
    snprintf(msg, cap, "%s", rc ? err_msg() : "");
    sandbox_free(sb);
    return rc;
}

struct bad {
    const char *name, *src;
    const char *want; /* the message after "<path>:" */
    int exact;        /* 0: want is a substring (for lines that name the temp dir or vary) */
    size_t mem;
    long long budget;
};

static const struct bad bads[] = {
    {"t_io.lua", "local f = io.open('/etc/passwd')\n", "1: attempt to index a nil value (global 'io')", 1, 0,
     0},
    {"t_os.lua", "\nos.execute('true')\n", "2: attempt to index a nil value (global 'os')", 1, 0, 0},
    {"t_reqos.lua", "local os = require 'os'\n", "1: require: no module 'os' (no file ", 0, 0, 0},
    {"t_dofile.lua", "dofile('/etc/passwd')\n", "1: attempt to call a nil value (global 'dofile')", 1, 0, 0},
    {"t_binary.lua", "local f = assert(load('\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10'))\n",
     "1: attempt to load a binary chunk (mode is 't')", 1, 0, 0},
    {"t_dump.lua", "local b = string.dump(print)\n", "1: attempt to call a nil value (field 'dump')", 1, 0,
     0},
    {"t_debug.lua", "local i = debug.getinfo(1)\n", "1: attempt to index a nil value (global 'debug')", 1, 0,
     0},
    {"t_coro.lua", "coroutine.wrap(print)()\n", "1: attempt to index a nil value (global 'coroutine')", 1, 0,
     0},
    {"t_rep.lua", "local s = string.rep('x', 1e9)\n", "1: manifest exceeded its memory limit (8 MiB)", 1, 0,
     0},
    {"t_bomb.lua", "local s = 'x'\nfor i = 1, 40 do\n  s = s .. s\nend\n",
     "3: manifest exceeded its memory limit (8 MiB)", 1, 0, 0},
    {"t_repbomb.lua", "local s = 'xy'\nwhile true do s = string.rep(s, 2) end\n",
     "2: manifest exceeded its memory limit (8 MiB)", 1, 0, 0},
    {"t_forever.lua", "local n = 0\nwhile true do end\n",
     "2: manifest exceeded its instruction budget (2000000)", 1, 0, 0},
    {"t_pcallloop.lua", "while true do\n  pcall(function() while true do end end)\nend\n",
     "2: manifest exceeded its instruction budget (2000000)", 1, 0, 0},
    {"t_xpcall.lua",
     "xpcall(function() while true do end end, function(m) while true do end end)\nerror('escaped')\n",
     "1: manifest exceeded its instruction budget (2000000)", 1, 0, 0},
    {"t_pcallmem.lua", "while true do\n  pcall(string.rep, 'x', 1e9)\nend\n",
     "2: manifest exceeded its memory limit (8 MiB)", 1, 0, 0},
    {"t_grow.lua", "local t = {}\nlocal i = 0\nwhile true do\n  i = i + 1\n  t[i] = {i}\nend\n",
     "manifest exceeded its memory limit (8 MiB)", 0, 0, 100000000},
    {"t_move.lua", "table.move({}, 1, 1e15, 2)\n", "1: manifest exceeded its instruction budget (2000000)", 1,
     0, 0},
    {"t_random.lua", "local x = math.random(10)\n", "1: attempt to call a nil value (field 'random')", 1, 0,
     0},
    {"t_gcstop.lua", "collectgarbage('stop')\n",
     "1: collectgarbage: option 'stop' is not available in manifests (only \"count\")", 1, 0, 0},
    {"t_gc.lua", "setmetatable({}, {__gc = function() end})\n",
     "1: setmetatable: __gc metamethods are not available in manifests", 1, 0, 0},
    {"t_fmtp.lua", "print(string.format('%p', {}))\n", "1: string.format: '%p' is not available in manifests",
     1, 0, 0},
    {"t_boom.lua", "local x = 1\n\nerror('boom')\n", "3: boom", 1, 0, 0},
    {"t_errtable.lua", "error({})\n", "1: (error object is a table value)", 1, 0, 0},
    {"t_errlevel0.lua", "\nerror('no position', 0)\n", "2: no position", 1, 0, 0},
    {"t_syntax.lua", "local x = = 1\n", "1: unexpected symbol near '='", 1, 0, 0},
    {"t_multiline.lua", "error('one\\ntwo\\nthree')\n", "1: one two three", 1, 0, 0},
    {"t_loaded.lua", "local f = load('local a = nil; return a.b', 'chunk')\nf()\n",
     "2: [string \"chunk\"]:1: attempt to index a nil value (local 'a')", 1, 0, 0},
    {"t_fakefile.lua", "local f = load('error(\"x\")', '@/etc/passwd')\nf()\n", "2: /etc/passwd:1: x", 1, 0,
     0},
    {"t_tablekeys.lua", "for k in pairs({[{}] = 1}) do end\n",
     "1: pairs: a key of type table has no fixed order (use string or number keys)", 1, 0, 0},
    {"t_dotdot.lua", "require '../x'\n", "1: require: invalid module name '../x'", 0, 0, 0},
    {"t_modloop.lua", "require 'loopa'\n", "loopb.lua:1: require: module 'loopa' requires itself", 0, 0, 0},
    {"t_moderr.lua", "require 'broken'\n", "broken.lua:2: attempt to index a nil value (field 'x')", 0, 0, 0},
    /* pattern matching backtracks in C: each call is charged its worst case before it runs */
    {"t_patmatch.lua", "\nlocal m = string.match(('a'):rep(26), ('a*'):rep(26) .. 'b')\n",
     "2: manifest exceeded its instruction budget (2000000)", 1, 0, 0},
    {"t_patmatch200m.lua", "local m = string.match(('a'):rep(26), ('a*'):rep(26) .. 'b')\n",
     "1: manifest exceeded its instruction budget (200000000)", 1, 0, 200000000},
    {"t_patfind.lua", /* a 4 MiB needle in a 16 MiB haystack */
     "local hay = ('a'):rep(4096):rep(4096)\nlocal needle = ('a'):rep(4096):rep(1024) .. 'b'\n"
     "local i = hay:find(needle, 1, true)\n",
     "3: manifest exceeded its instruction budget (200000000)", 1, 64u << 20, 200000000},
    {"t_patfindnospecial.lua",
     "local hay = ('a'):rep(1024 * 1024)\nlocal needle = ('a'):rep(256 * 1024) .. 'b'\n"
     "local i = string.find(hay, needle)\n",
     "3: manifest exceeded its instruction budget (200000000)", 1, 0, 200000000},
    {"t_patgmatch.lua", "for m in ('a'):rep(26):gmatch(('a*'):rep(26) .. 'b') do end\n",
     "1: manifest exceeded its instruction budget (2000000)", 1, 0, 0},
    {"t_patgsub.lua", "local s = ('a'):rep(5000):gsub(('a-'):rep(10) .. 'b', '')\n",
     "1: manifest exceeded its instruction budget (2000000)", 1, 0, 0},
    {"t_patquadratic.lua", "local s = ('a'):rep(1e6)\nlocal i = s:find('a*b')\n",
     "2: manifest exceeded its instruction budget (2000000)", 1, 0, 0},
    {"t_patpcall.lua",
     "local ok = pcall(string.find, ('a'):rep(26), ('a*'):rep(26) .. 'b')\nerror('escaped')\n",
     "1: manifest exceeded its instruction budget (2000000)", 1, 0, 0},
    {"t_patloop.lua", "local s = ('x'):rep(1000)\nwhile true do\n  s:gsub('x', 'y')\nend\n",
     "3: manifest exceeded its instruction budget (2000000)", 1, 0, 0},
    /* copying into new strings happens in C: the bytes allocated are charged */
    {"t_concat.lua", "local s = ''\nwhile true do\n  s = s .. 'x'\nend\n",
     "3: manifest exceeded its instruction budget (2000000)", 1, 0, 0},
    {"t_upper.lua", "local s = ('x'):rep(4e6)\nwhile true do\n  local u = s:upper()\nend\n",
     "3: manifest exceeded its instruction budget (2000000)", 1, 16u << 20, 0},
    /* reading a whole string in C is charged like allocating it */
    {"t_utf8len.lua", "local s = ('x'):rep(4e6)\nwhile true do\n  local n = utf8.len(s)\nend\n",
     "3: manifest exceeded its instruction budget (2000000)", 1, 16u << 20, 0},
    {"t_tonumber.lua", "local s = ('1'):rep(4e6)\nwhile true do\n  local n = tonumber(s)\nend\n",
     "3: manifest exceeded its instruction budget (2000000)", 1, 16u << 20, 0},
    {"t_loadblank.lua", "local s = (' '):rep(4e6)\nwhile true do\n  local f = load(s)\nend\n",
     "3: manifest exceeded its instruction budget (2000000)", 1, 16u << 20, 0},
    /* table.insert and table.remove shift elements in C: the shift is charged */
    {"t_insert.lua", "local t = {}\nfor i = 1, 1e6 do\n  table.insert(t, 1, i)\nend\n",
     "3: manifest exceeded its instruction budget (2000000)", 1, 0, 0},
    {"t_remove.lua",
     "local t = setmetatable({}, {__len = function() return 1e15 end})\nlocal v = table.remove(t, 1)\n",
     "2: manifest exceeded its instruction budget (2000000)", 1, 0, 0},
};

static const char *good_src =
    "assert(string.dump == nil and ('').dump == nil)\n"
    "assert(math.random == nil and math.randomseed == nil)\n"
    "assert(io == nil and os == nil and debug == nil and package == nil and coroutine == nil)\n"
    "assert(dofile == nil and loadfile == nil and _G == _ENV)\n"
    "assert(string.rep('', 1e15) == '')\n"
    "local t1, t2 = {}, {}\n"
    "assert(tostring(t1):match('^table: %d+$') and tostring(t1) == tostring(t1) and tostring(t1) ~= "
    "tostring(t2))\n"
    "assert(string.format('%s', t1) == tostring(t1))\n"
    "local keys = {}\n"
    "for k in pairs({b = 1, a = 2, [3] = 0, [1] = 0, c = 3, [true] = 1, [2.5] = 0}) do keys[#keys + 1] = "
    "tostring(k) end\n"
    "assert(table.concat(keys, ',') == '1,2.5,3,a,b,c,true', table.concat(keys, ','))\n"
    "local k, v = next({z = 1, y = 2}); assert(k == 'y' and v == 2)\n"
    "assert(next({}) == nil and next({x = 1, y = 2}, 'x') == 'y' and next({x = 1}, 'x') == nil)\n"
    "local recs = {{k = 1, n = 'a'}, {k = 0, n = 'b'}, {k = 1, n = 'c'}, {k = 0, n = 'd'}, {k = 0, n = "
    "'e'}}\n"
    "table.sort(recs, function(a, b) return a.k < b.k end)\n"
    "local order = {} for i, r in ipairs(recs) do order[i] = r.n end\n"
    "assert(table.concat(order) == 'bdeac', table.concat(order))\n"
    "local nums = {5, 3, 9, 1, 7, 2, 8}; table.sort(nums)\n"
    "assert(table.concat(nums, ' ') == '1 2 3 5 7 8 9')\n"
    "local ok, err = pcall(error, 'caught'); assert(not ok and err == 'caught')\n"
    "assert(select('#', pcall(function() return 1, 2 end)) == 3)\n"
    "local ok2, r = xpcall(function() error('x') end, function(m) return 'handled' end)\n"
    "assert(not ok2 and r == 'handled')\n"
    "assert(load('return 1 + 1')() == 2 and load('return y', 'n', 't', {y = 5})() == 5)\n"
    "assert(select(2, load('\\27Lua')):find('binary'))\n"
    "assert(type(collectgarbage('count')) == 'number')\n"
    "assert(string.format('%s|%5.1f|%d', setmetatable({}, {__tostring = function() return 'T' end}), 1.5, 3) "
    "== 'T|  1.5|3')\n"
    "local m = require 'mod.sub'\n"
    "assert(m.v == 42 and require 'mod.sub' == m)\n"
    "local s = 0 for i = 1, 10000 do s = s + i end assert(s == 50005000)\n"
    /* ordinary pattern matching works, and is cheap enough to run in loops */
    "local kind, round = ('unlearn/npo/round12'):match('^unlearn/(%w+)/round(%d+)$')\n"
    "assert(kind == 'npo' and round == '12')\n"
    "assert(('a b  c'):gsub('%s+', '_') == 'a_b_c' and select(2, ('a b  c'):gsub('%s+', '_')) == 2)\n"
    "local parts = {} for w in ('x,y,,z'):gmatch('[^,]+') do parts[#parts + 1] = w end\n"
    "assert(table.concat(parts, '|') == 'x|y|z')\n"
    "assert(('hello world'):find('o w', 1, true) == 5 and ('a.b'):find('.', 1, true) == 2)\n"
    "assert(('hello'):find('l+') == 3 and select(2, ('hello'):find('l+')) == 4)\n"
    "assert(('f(a(b)c)d'):match('%b()') == '(a(b)c)')\n"
    "assert(('THE (quick) fox'):find('%f[%a]%a+', 5) == 6)\n"
    "assert(('abab'):match('(a)(b)%1%2') == 'a' and ('[x]'):match('[]x[]+') == '[x]')\n"
    "local k, v = ('key = some value'):match('^(.-)%s*=%s*(.*)$') assert(k == 'key' and v == 'some value')\n"
    "assert(('xxx'):gsub('x', '%0%0') == 'xxxxxx' and ('hello'):gsub('l', {l = 'L'}) == 'heLLo')\n"
    "assert(('abc'):gsub('%w', function(c) return c:upper() end) == 'ABC')\n"
    "assert(('abc'):find('b', -2) == 2 and ('abc'):find('', 10) == nil and ('abc'):match('()', 4) == 4)\n"
    "assert(('^a'):gmatch('^a')() == '^a' and ('aaa'):gsub('^a', 'b') == 'baa')\n"
    "local okp, errp = pcall(string.find, 'x', '[a') assert(not okp and errp:find('malformed pattern'))\n"
    "local hits = 0\n"
    "for i = 1, 1000 do\n"
    "  local name = 'unlearn/npo/round' .. i\n"
    "  if name:match('^unlearn/(%w+)/round(%d+)$') and name:find('npo', 1, true) then hits = hits + 1 end\n"
    "  name = name:gsub('/', '.')\n"
    "end\n"
    "assert(hits == 1000)\n"
    "assert(utf8.len('h\\u{E9}llo') == 5 and utf8.offset('h\\u{E9}llo', 3) == 4 and tonumber('0x10') == 16)\n"
    "assert(tonumber('z', 36) == 35 and tonumber(7) == 7 and tonumber('x') == nil)\n"
    /* table.insert and table.remove keep their meaning */
    "local t = {1, 2, 3} table.insert(t, 4) table.insert(t, 1, 0)\n"
    "assert(table.concat(t, ',') == '0,1,2,3,4')\n"
    "assert(table.remove(t, 1) == 0 and table.remove(t) == 4 and table.concat(t, ',') == '1,2,3')\n"
    "assert(table.remove({}) == nil and table.remove(t, #t + 1) == nil and #t == 3)\n"
    "assert(not pcall(table.insert, {}, 5, 1) and not pcall(table.remove, {1}, 5))\n"
    "assert(select(2, pcall(table.insert, {}, 1, 2, 3)):find(\"wrong number of arguments to 'insert'\"))\n";

static void test_good(void) {
    char msg[1024], sub[600];
    snprintf(sub, sizeof sub, "%s/mod", dir);
    mkdir(sub, 0755);
    snprintf(sub, sizeof sub, "%s/mod/sub.lua", dir);
    write_file(sub, "return { v = 42 }\n");
    CHECK(run("good.lua", good_src, MEM, BUDGET, msg, sizeof msg) == 0);
    CHECK_STR(msg, "");
}

static void test_bad(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/loopa.lua", dir);
    write_file(path, "return require 'loopb'\n");
    snprintf(path, sizeof path, "%s/loopb.lua", dir);
    write_file(path, "return require 'loopa'\n");
    snprintf(path, sizeof path, "%s/broken.lua", dir);
    write_file(path, "local t = {}\nreturn t.x.y\n");
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        const struct bad *b = &bads[i];
        char msg[1024], want[1024];
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = run(b->name, b->src, b->mem ? b->mem : MEM, b->budget ? b->budget : BUDGET, msg, sizeof msg);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        CHECK(rc == -1);
        if (getenv("VERBOSE"))
            fprintf(stderr, "%s (%.3fs)\n", msg, secs);
        CHECK(strchr(msg, '\n') == NULL);
        CHECK(secs < 3.0);
        if (secs >= 3.0)
            fprintf(stderr, "%s took %.1fs\n", b->name, secs);
        snprintf(want, sizeof want, "%s/%s:%s", dir, b->name, b->want);
        if (b->exact) {
            CHECK_STR(msg, want);
        } else {
            CHECK(strncmp(msg, dir, strlen(dir)) == 0);
            CHECK_HAS(msg, b->want);
        }
    }
}

/* Lua shortens chunk names over 60 bytes in its messages; ours must carry the whole path. */
static void test_long_path(void) {
    char sub[600], path[700], msg[1024], want[1024];
    snprintf(sub, sizeof sub, "%s/a-rather-long-directory-name-to-push-the-path-past-sixty-bytes", dir);
    mkdir(sub, 0755);
    snprintf(path, sizeof path, "%s/deep.lua", sub);
    write_file(path, "local x = 1\nerror('deep')\n");
    struct sandbox *sb = sandbox_new(MEM, BUDGET, sub);
    CHECK(sandbox_run_file(sb, path) == -1);
    snprintf(want, sizeof want, "%s:2: deep", path);
    CHECK_STR(err_msg(), want);
    sandbox_free(sb);
    write_file(path, "local x = = 1\n");
    sb = sandbox_new(MEM, BUDGET, sub);
    CHECK(sandbox_run_file(sb, path) == -1);
    snprintf(want, sizeof want, "%s:1: unexpected symbol near '='", path);
    snprintf(msg, sizeof msg, "%s", err_msg());
    CHECK_STR(msg, want);
    sandbox_free(sb);
}

static void test_setup(void) {
    char msg[1024], want[1024];
    CHECK(sandbox_new(1024, BUDGET, dir) == NULL);
    CHECK_HAS(err_msg(), "sandbox: cannot");
    struct sandbox *sb = sandbox_new(MEM, BUDGET, NULL);
    char path[600];
    snprintf(path, sizeof path, "%s/nomods.lua", dir);
    write_file(path, "require 'mod.sub'\n");
    CHECK(sandbox_run_file(sb, path) == -1);
    CHECK_HAS(err_msg(), ":1: require: modules are not available here");
    sandbox_free(sb);
    sb = sandbox_new(MEM, BUDGET, dir);
    snprintf(path, sizeof path, "%s/absent.lua", dir);
    CHECK(sandbox_run_file(sb, path) == -1);
    snprintf(want, sizeof want, "%s: no such manifest file", path);
    CHECK_STR(err_msg(), want);
    /* the same state runs a second file; globals persist in its environment */
    snprintf(path, sizeof path, "%s/one.lua", dir);
    write_file(path, "shared = 7\n");
    CHECK(sandbox_run_file(sb, path) == 0);
    snprintf(path, sizeof path, "%s/two.lua", dir);
    write_file(path, "assert(shared == 7)\n");
    CHECK(sandbox_run_file(sb, path) == 0);
    sandbox_free(sb);
    (void)msg;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/pulse-lua-sb-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_good();
    test_bad();
    test_long_path();
    test_setup();
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_done("test_lua_sandbox");
}

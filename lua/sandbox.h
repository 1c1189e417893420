/* sandbox: a Lua 5.4 state that cannot reach outside itself or run forever.
 *
 * Only base (without dofile, loadfile, collectgarbage's control options), string, table, math (without
 * random) and utf8 are open; `load` accepts text chunks only; `require` loads modules from the manifest's
 * directory and nothing else; no io, os, debug, package, coroutine. A custom allocator caps memory and a
 * count hook caps instructions; work done in C, where the hook does not fire (pattern matching, copying into
 * new strings, shifting table elements), is charged to the same budget. pcall/xpcall cannot swallow these
 * two errors. */
#ifndef PULSE_LUA_SANDBOX_H
#define PULSE_LUA_SANDBOX_H

#include <stddef.h>

struct lua_State;
struct sandbox;

struct sandbox *sandbox_new(size_t memory, long long instructions, const char *module_dir);
struct lua_State *sandbox_lua(struct sandbox *sb);
/* Charges what is spent outside Lua on the manifest's behalf (the dag it declares) as if Lua had spent it:
 * steps against the instruction budget, bytes against the memory limit (held until sandbox_free). Raises
 * the limit's error, so only C functions that Lua called may use it. */
void sandbox_charge(struct lua_State *L, long long steps, size_t bytes);
/* Loads and runs a text chunk read from path (chunk name "@<path>"). -1 with err_set("<file>:<line>: ...")
 * on a syntax error, a runtime error, or a broken limit. */
int sandbox_run_file(struct sandbox *sb, const char *path);
void sandbox_free(struct sandbox *sb);

#endif

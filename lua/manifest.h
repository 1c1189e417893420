/* manifest: runs a manifest file in the sandbox and turns what it declares into a dag.
 *
 * The language (docs/manifest.md): a manifest is Lua 5.4 with the pulse prelude in scope:
 *   local w = stage "world" { kind = "synth", seed = 1 }        -- declares a stage, returns a handle
 *   stage "base" { kind = "pretrain", data = w.out.corpus }    -- w.out.<output> is a reference (an edge)
 *   ref("world", "corpus")                                     -- the same by name, resolved at the end
 *   require "settings"                                         -- settings.lua next to the manifest
 * Every mistake becomes one error line starting "<file>:<line>: ". */
#ifndef PULSE_LUA_MANIFEST_H
#define PULSE_LUA_MANIFEST_H

#include <stddef.h>
#include "lua/dag.h"
#include "util/schema.h"

struct manifest_limits {
    size_t memory;          /* bytes the Lua state may allocate (default 256 MiB) */
    long long instructions; /* VM instructions (default 200 million) */
};

/* kinds: the registry, looked up by name. limits may be NULL for the defaults. On error returns -1 with
 * err_set(one line) and leaves *out empty. */
int manifest_load(const char *path, const struct kind_schema *const *kinds, size_t nkinds,
                  const struct manifest_limits *limits, struct dag *out);

#endif

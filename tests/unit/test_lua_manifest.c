/* test_lua_manifest: manifests become the right dag (stages, canonical params, inputs, order), and every
 * mistake becomes the exact one-line error at the right file and line. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "lua/dag.h"
#include "lua/manifest.h"
#include "util/err.h"
#include "util/json.h"

static const struct param_spec gen_params[] = {
    {"seed", PARAM_INT, "1", "seed"},
    {"bytes", PARAM_INT, NULL, "how many bytes"},
};
static const char *const gen_outputs[] = {"data"};
static const struct kind_schema kind_gen = {"gen", 1, gen_params, 2, gen_outputs, 1};

static const struct param_spec cat_params[] = {
    {"parts", PARAM_REFS, NULL, "what to concatenate"},
    {"label", PARAM_STR, "\"x\"", "a label"},
};
static const char *const cat_outputs[] = {"data", "log"};
static const struct kind_schema kind_cat = {"cat", 1, cat_params, 2, cat_outputs, 2};

static const struct param_spec opt_params[] = {
    {"lr", PARAM_NUM, "0.001", "learning rate"},
    {"flags", PARAM_STRS, "[]", "flags"},
    {"ws", PARAM_NUMS, "[]", "weights"},
    {"on", PARAM_BOOL, "false", "switch"},
    {"init", PARAM_REF, "null", "optional start"},
    {"steps", PARAM_INT, "2", "steps (int default)"},
    {"scale", PARAM_NUM, "3", "a float default written as an integer"},
};
static const char *const opt_outputs[] = {"model"};
static const struct kind_schema kind_opt = {"opt", 2, opt_params, 7, opt_outputs, 1};

static const struct param_spec file_params[] = {
    {"src", PARAM_PATH, NULL, "a file"},
};
static const char *const file_outputs[] = {"data"};
static const struct kind_schema kind_file = {"file", 1, file_params, 1, file_outputs, 1};

static const struct kind_schema *const kinds[] = {&kind_gen, &kind_cat, &kind_opt, &kind_file};
#define NKINDS 4

static char dir[64];

static void write_file(const char *name, const char *text) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
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

static int load(const char *name, const struct manifest_limits *lim, struct dag *d) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return manifest_load(path, kinds, NKINDS, lim, d);
}

static void check_params(const struct dag *d, const char *stage, const char *want) {
    long i = dag_find(d, stage);
    CHECK(i >= 0);
    if (i < 0)
        return;
    char *got = json_write(d->stages[i].params, JSON_CANONICAL, NULL);
    CHECK_STR(got, want);
    free(got);
}

static void check_input(const struct dag *d, const char *stage, size_t k, const char *param, size_t index,
                        const char *from, const char *output) {
    long i = dag_find(d, stage);
    CHECK(i >= 0 && k < d->stages[i].ninputs);
    if (i < 0 || k >= d->stages[i].ninputs)
        return;
    const struct dag_input *in = &d->stages[i].inputs[k];
    CHECK_STR(in->param, param);
    CHECK(in->index == index);
    CHECK_STR(d->stages[in->from].name, from);
    CHECK_STR(in->output, output);
}

static const char *good_src =
    "local cfg = require 'conf.settings'\n"
    "assert(require 'conf.settings' == cfg)\n"
    "local prev = stage 'gen0' { kind = 'gen', bytes = cfg.bytes }\n"
    "assert(prev.name == 'gen0' and tostring(prev.out.data) == 'ref(gen0, data)')\n"
    "for i = 1, 5 do\n"
    "  prev = stage('round/' .. i) {\n"
    "    kind = 'cat',\n"
    "    parts = { prev.out.data, ref('late', 'data') },\n"
    "    label = 'r' .. i,\n"
    "  }\n"
    "end\n"
    "stage 'late' { kind = 'gen', bytes = 7, seed = 3.0 }\n"
    "stage 'opt.a' { kind = 'opt', flags = { 'x', 'y' }, ws = { 1, 2.5 }, on = true, init = prev.out.log }\n"
    "stage('opt-b', { kind = 'opt', lr = 1 })\n"
    "for name, b in pairs({ zeta = 1, alpha = 2, mid = 3 }) do stage('p/' .. name) { kind = 'gen', bytes = b "
    "} "
    "end\n";

/* dag_select: a name, or a pattern whose '*' matches any run of characters ('/' included), alone or with
 * what the stages need. The stages: gen0 round/1..5 late opt.a opt-b p/alpha p/mid p/zeta. */
static void check_select(const struct dag *d) {
    static const struct {
        const char *name, *marked; /* one character per stage */
    } cases[] = {
        {"round/3", "...X........"}, {"round/*", ".XXXXX......"}, {"*", "XXXXXXXXXXXX"},
        {"**", "XXXXXXXXXXXX"},      {"opt*", ".......XX..."},    {"*/3", "...X........"},
        {"r*d/*1", ".X.........."},  {"*a*e*", "......X....."},   {"p/*a*", ".........X.X"},
        {"*a", ".......X.X.X"},      {"nope*", "............"},   {"round/", "............"},
        {"p/*/", "............"},    {"gen0*", "X..........."},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        unsigned char mark[12] = {0};
        size_t want = 0, hits = dag_select(d, cases[k].name, mark, 0);
        for (size_t i = 0; i < 12; i++) {
            want += cases[k].marked[i] == 'X';
            if (mark[i] != (cases[k].marked[i] == 'X'))
                fprintf(stderr, "dag_select '%s': stage %zu\n", cases[k].name, i);
            CHECK(mark[i] == (cases[k].marked[i] == 'X'));
        }
        CHECK(hits == want);
    }
    unsigned char mark[12] = {0};
    CHECK(dag_select(d, "round/2*", mark, 1) == 1); /* with what round/2 needs: round/1, gen0, late */
    CHECK(mark[0] && mark[1] && mark[2] && mark[6] && !mark[3] && !mark[7]);
}

static void test_good(void) {
    char sub[600];
    snprintf(sub, sizeof sub, "%s/conf", dir);
    mkdir(sub, 0755);
    write_file("conf/settings.lua", "local s = { bytes = 100 }\nreturn s\n");
    write_file("good.lua", good_src);
    struct dag d;
    int rc = load("good.lua", NULL, &d);
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err_msg());
        return;
    }
    static const char *const names[] = {"gen0", "round/1", "round/2", "round/3", "round/4", "round/5",
                                        "late", "opt.a",   "opt-b",   "p/alpha", "p/mid",   "p/zeta"};
    CHECK(d.n == 12);
    for (size_t i = 0; i < d.n && i < 12; i++)
        CHECK_STR(d.stages[i].name, names[i]);
    char path[600];
    snprintf(path, sizeof path, "%s/good.lua", dir);
    CHECK_STR(d.stages[0].file, path);
    CHECK(d.stages[0].line == 3 && d.stages[1].line == 6 && d.stages[6].line == 12);
    CHECK(d.stages[0].kind == &kind_gen && d.stages[1].kind == &kind_cat);
    check_params(&d, "gen0", "{\"bytes\":100,\"seed\":1}");
    check_params(&d, "late", "{\"bytes\":7,\"seed\":3}");
    check_params(&d, "round/1", "{\"label\":\"r1\"}");
    check_params(
        &d, "opt.a",
        "{\"flags\":[\"x\",\"y\"],\"lr\":0.001,\"on\":true,\"scale\":3.0,\"steps\":2,\"ws\":[1.0,2.5]}");
    check_params(&d, "opt-b", "{\"flags\":[],\"lr\":1.0,\"on\":false,\"scale\":3.0,\"steps\":2,\"ws\":[]}");
    CHECK(d.stages[0].ninputs == 0 && d.stages[8].ninputs == 0);
    CHECK(d.stages[1].ninputs == 2 && d.stages[3].ninputs == 2);
    check_input(&d, "round/1", 0, "parts", 0, "gen0", "data");
    check_input(&d, "round/1", 1, "parts", 1, "late", "data");
    check_input(&d, "round/3", 0, "parts", 0, "round/2", "data");
    check_input(&d, "round/3", 1, "parts", 1, "late", "data");
    check_input(&d, "opt.a", 0, "init", 0, "round/5", "log");
    static const size_t order[] = {0, 6, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11};
    CHECK(d.order != NULL);
    for (size_t i = 0; d.order && i < 12; i++)
        CHECK(d.order[i] == order[i]);
    unsigned char keep[12] = {0};
    dag_closure(&d, 2, keep); /* round/2 needs round/1, gen0 and late */
    CHECK(keep[0] && keep[1] && keep[2] && keep[6] && !keep[3] && !keep[7] && !keep[9]);
    check_select(&d);
    dag_free(&d);
    CHECK(d.n == 0 && d.stages == NULL);
}

struct bad {
    const char *name, *src;
    const char *want; /* the message after "<path>:"; "%s" stands for the temp dir */
};

static const struct bad bads[] = {
    {"syntax.lua", "stage 'a' { kind = 'gen', bytes = 1\n\n",
     "3: '}' expected (to close '{' at line 1) near <eof>"},
    {"kind.lua", "stage 'a' { kind = 'gne', bytes = 1 }\n",
     "1: unknown stage kind 'gne' (did you mean 'gen'?)"},
    {"kindfar.lua", "stage 'a' { kind = 'zzzzzz', bytes = 1 }\n", "1: unknown stage kind 'zzzzzz'"},
    {"nokind.lua", "\nstage 'a' { bytes = 1 }\n", "2: stage 'a' has no kind (add kind = \"...\")"},
    {"param.lua", "\nstage 'a' { kind = 'gen', bytse = 1 }\n",
     "2: stage 'a' (kind gen) has no parameter 'bytse' (did you mean 'bytes'?)"},
    {"positional.lua", "stage 'a' { kind = 'gen', bytes = 1, 5 }\n",
     "1: stage 'a': every parameter needs a name (name = value), found a key of type number"},
    {"intstr.lua", "stage 'a' { kind = 'gen', bytes = '10' }\n",
     "1: parameter 'bytes' of stage 'a' must be an integer, got string"},
    {"intfloat.lua", "stage 'a' { kind = 'gen', bytes = 2.5 }\n",
     "1: parameter 'bytes' of stage 'a' must be an integer, got 2.5"},
    {"inthuge.lua", "stage 'a' { kind = 'gen', bytes = 2^63 }\n",
     "1: parameter 'bytes' of stage 'a' must be an integer, got 9.2233720368547758e+18"},
    {"numinf.lua", "stage 'o' { kind = 'opt', lr = 1/0 }\n",
     "1: parameter 'lr' of stage 'o' must be a finite number, got inf"},
    {"strs.lua", "stage 'o' { kind = 'opt', flags = { 1 } }\n",
     "1: parameter 'flags' of stage 'o' must be a list of strings, element 1 is number"},
    {"strsnot.lua", "stage 'o' { kind = 'opt', flags = 'x' }\n",
     "1: parameter 'flags' of stage 'o' must be a list of strings, got string"},
    {"strskey.lua", "stage 'o' { kind = 'opt', flags = { 'a', b = 'c', a = 'd' } }\n",
     "1: parameter 'flags' of stage 'o' must be a list of strings (keys 1..n), it has key 'a'"},
    {"strszero.lua", "stage 'o' { kind = 'opt', flags = { [0] = 'a', 'b' } }\n",
     "1: parameter 'flags' of stage 'o' must be a list of strings (keys 1..n), it has key 0"},
    {"nums.lua", "stage 'o' { kind = 'opt', ws = { 1, '2' } }\n",
     "1: parameter 'ws' of stage 'o' must be a list of numbers, element 2 is string"},
    {"specmeta.lua", "stage 'g' (setmetatable({ kind = 'gen' }, { __index = { bytes = 1 } }))\n",
     "1: stage 'g': the parameter table must be a plain table (it is read without metamethods)"},
    {"specnot.lua", "stage 'g' 'gen'\n",
     "1: stage 'g': expected a table of parameters { kind = ... }, got string"},
    {"kindtype.lua", "stage 'g' { kind = 1 }\n", "1: the kind of stage 'g' must be a string, got number"},
    {"bool.lua", "stage 'o' { kind = 'opt', on = 1 }\n",
     "1: parameter 'on' of stage 'o' must be a boolean, got number"},
    {"refnum.lua", "stage 'o' { kind = 'opt', init = 5 }\n",
     "1: parameter 'init' of stage 'o' must be a stage output (h.out.name or ref(...)), got number"},
    {"refhandle.lua",
     "local g = stage 'g' { kind = 'gen', bytes = 1 }\nstage 'o' { kind = 'opt', init = g }\n",
     "2: parameter 'init' of stage 'o' must be a stage output (h.out.name or ref(...)), got a stage handle "
     "(use "
     "h.out.name)"},
    {"refforged.lua",
     "stage 'g' { kind = 'gen', bytes = 1 }\nstage 'c' { kind = 'cat', parts = { { stage = 'g', output = "
     "'data' "
     "} } }\n",
     "2: parameter 'parts' of stage 'c' must be a list of stage outputs, element 1 is table"},
    {"refshole.lua",
     "local g = stage 'g' { kind = 'gen', bytes = 1 }\nstage 'c' { kind = 'cat', parts = { g.out.data, nil, "
     "g.out.data } }\n",
     "2: parameter 'parts' of stage 'c' must be a list of stage outputs without holes, index 2 is missing"},
    {"required.lua", "stage 'a' { kind = 'gen' }\n",
     "1: stage 'a' (kind gen) is missing required parameter 'bytes'"},
    {"requiredrefs.lua", "stage 'c' { kind = 'cat' }\n",
     "1: stage 'c' (kind cat) is missing required parameter 'parts'"},
    {"dup.lua", "stage 'a' { kind = 'gen', bytes = 1 }\n\nstage 'a' { kind = 'gen', bytes = 2 }\n",
     "3: stage 'a' is already declared at %s/dup.lua:1"},
    {"output.lua",
     "local g = stage 'base' { kind = 'gen', bytes = 1 }\nstage 'c' { kind = 'cat', parts = { g.out.dat } "
     "}\n",
     "2: stage 'base' (kind gen) has no output 'dat'; outputs: data"},
    {"outputs2.lua", "local c = stage 'c' { kind = 'cat', parts = {} }\nlocal r = c.out.model\n",
     "2: stage 'c' (kind cat) has no output 'model'; outputs: data, log"},
    {"refstage.lua", "stage 'c' { kind = 'cat',\n  parts = { ref('nope', 'data') } }\n",
     "2: ref: no stage named 'nope'"},
    {"refclose.lua", "stage 'gen0' { kind = 'gen', bytes = 1 }\nlocal r = ref('gen1', 'data')\n",
     "2: ref: no stage named 'gen1' (did you mean 'gen0'?)"},
    {"refoutput.lua",
     "stage 'g' { kind = 'gen', bytes = 1 }\nstage 'c' { kind = 'cat', parts = { ref('g', 'log') } }\n",
     "2: ref: stage 'g' (kind gen) has no output 'log'; outputs: data"},
    {"cycle.lua",
     "stage 'g0' { kind = 'gen', bytes = 1 }\n"
     "stage 'a' { kind = 'cat', parts = { ref('g0', 'data'), ref('c', 'data') } }\n"
     "stage 'b' { kind = 'cat', parts = { ref('a', 'data') } }\n"
     "stage 'c' { kind = 'cat', parts = { ref('b', 'data') } }\n",
     "2: cycle: a -> b -> c -> a"},
    {"selfcycle.lua", "\nstage 'a' { kind = 'cat', parts = { ref('a', 'log') } }\n", "2: cycle: a -> a"},
    {"name.lua", "stage 'a//b' { kind = 'gen', bytes = 1 }\n", "1: stage name 'a//b' has an empty segment"},
    {"namedots.lua", "stage 'x/../y' { kind = 'gen', bytes = 1 }\n",
     "1: stage name 'x/../y' has a '..' segment"},
    {"namedot.lua", "stage './y' { kind = 'gen', bytes = 1 }\n", "1: stage name './y' has a '.' segment"},
    {"nameslash.lua", "stage 'a/' { kind = 'gen', bytes = 1 }\n",
     "1: stage name 'a/' starts or ends with '/'"},
    {"namechar.lua", "stage 'a b' { kind = 'gen', bytes = 1 }\n",
     "1: stage name 'a b' contains ' ' (allowed: letters, digits, '_', '.', '-', '/')"},
    {"nameempty.lua", "stage '' { kind = 'gen', bytes = 1 }\n", "1: stage name is empty"},
    {"namelong.lua", "stage(string.rep('n', 201)) { kind = 'gen', bytes = 1 }\n",
     "1: stage name 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...' is longer than 200 characters"},
    {"nametype.lua", "stage { kind = 'gen', bytes = 1 }\n",
     "1: stage: the name must be a string (stage \"name\" { ... }), got table"},
    {"reqdots.lua", "require '../x'\n",
     "1: require: invalid module name '../x' (letters, digits, '_' and '.'; no leading, trailing or double "
     "dot)"},
    {"reqmissing.lua", "\nrequire 'nothere'\n", "2: require: no module 'nothere' (no file %s/nothere.lua)"},
    {"boom.lua", "local x = 1\n\nerror('boom')\n", "3: boom"},
    {"outwrite.lua", "local g = stage 'g' { kind = 'gen', bytes = 1 }\ng.out.data = 1\n",
     "2: the outputs of stage 'g' are read-only"},
    {"forever.lua", "stage 'g' { kind = 'gen', bytes = 1 }\nwhile true do end\n",
     "2: manifest exceeded its instruction budget (1000000)"},
    /* strings that reach cache keys must be valid UTF-8 without NUL bytes */
    {"strutf8.lua", "stage 'c' { kind = 'cat', parts = {},\n  label = 'a\\xff' }\n",
     "1: parameter 'label' of stage 'c' is not valid UTF-8"},
    {"strnul.lua", "\nstage 'c' { kind = 'cat', parts = {}, label = 'a\\0b' }\n",
     "2: parameter 'label' of stage 'c' contains a NUL byte"},
    {"strsurrogate.lua", "stage 'c' { kind = 'cat', parts = {}, label = '\\u{D800}' }\n",
     "1: parameter 'label' of stage 'c' is not valid UTF-8"},
    {"stroverlong.lua", "stage 'c' { kind = 'cat', parts = {}, label = '\\xc0\\x80' }\n",
     "1: parameter 'label' of stage 'c' is not valid UTF-8"},
    {"strtoobig.lua", "stage 'c' { kind = 'cat', parts = {}, label = '\\u{110000}' }\n",
     "1: parameter 'label' of stage 'c' is not valid UTF-8"},
    {"strcut.lua", "stage 'c' { kind = 'cat', parts = {}, label = 'caf\\xc3' }\n",
     "1: parameter 'label' of stage 'c' is not valid UTF-8"},
    {"strsutf8.lua", "stage 'o' { kind = 'opt', flags = { 'ok', 'b\\xfe' } }\n",
     "1: element 2 of parameter 'flags' of stage 'o' is not valid UTF-8"},
    {"strsnul.lua", "stage 'o' { kind = 'opt', flags = { '\\0' } }\n",
     "1: element 1 of parameter 'flags' of stage 'o' contains a NUL byte"},
    {"pathutf8.lua", "stage 'f' { kind = 'file', src = 'data/\\x80.txt' }\n",
     "1: parameter 'src' of stage 'f' is not valid UTF-8"},
    {"pathnul.lua", "stage 'f' { kind = 'file', src = 'data.txt\\0.lua' }\n",
     "1: parameter 'src' of stage 'f' contains a NUL byte"},
    {"namenul.lua", "stage 'a\\0b' { kind = 'gen', bytes = 1 }\n",
     "1: stage name contains the byte 0x00 (allowed: letters, digits, '_', '.', '-', '/')"},
    {"nameutf8.lua", "stage 'caf\\xc3\\xa9' { kind = 'gen', bytes = 1 }\n",
     "1: stage name contains the byte 0xc3 (allowed: letters, digits, '_', '.', '-', '/')"},
    {"refnul.lua", "stage 'g' { kind = 'gen', bytes = 1 }\nlocal r = ref('g\\0x', 'data')\n",
     "2: ref: the stage name contains a NUL byte"},
    {"refoututf8.lua", "stage 'g' { kind = 'gen', bytes = 1 }\nlocal r = ref('g', 'da\\xfft')\n",
     "2: ref: the output name is not valid UTF-8"},
    {"refoutnul.lua", "stage 'g' { kind = 'gen', bytes = 1 }\nlocal r = ref('g', 'data\\0')\n",
     "2: ref: the output name contains a NUL byte"},
    {"outnul.lua", "local g = stage 'g' { kind = 'gen', bytes = 1 }\nlocal r = g.out['data\\0x']\n",
     "2: an output name of stage 'g' contains a NUL byte"},
    {"kindnul.lua", "stage 'a' { kind = 'gen\\0', bytes = 1 }\n",
     "1: the kind of stage 'a' contains a NUL byte"},
    {"keynul.lua", "stage 'a' { kind = 'gen', bytes = 1, ['bytes\\0x'] = 2 }\n",
     "1: stage 'a': a parameter name contains a NUL byte"},
    /* what declarations keep in C counts against the memory limit */
    {"bigparams.lua",
     "local big = {}\nfor i = 1, 20000 do big[i] = 'flag' .. i end\nfor i = 1, 1000 do\n"
     "  stage('s/' .. i) { kind = 'opt', flags = big }\nend\n",
     "4: manifest exceeded its memory limit (8 MiB)"},
    {"manyrefs.lua", "while true do\n  local r = ref('a', 'b')\nend\n",
     "2: manifest exceeded its memory limit (8 MiB)"},
    /* pattern matching is charged to the budget: a backtracking bomb fails at its line, at once */
    {"patbomb.lua", "local s = ('a'):rep(26)\nlocal m = s:match(('a*'):rep(26) .. 'b')\n",
     "2: manifest exceeded its instruction budget (1000000)"},
};

/* A module's error names the module's file. */
static void test_module_error(void) {
    write_file("errmod.lua", "local t = {}\nreturn t.x.y\n");
    write_file("usemod.lua", "stage 'g' { kind = 'gen', bytes = 1 }\nrequire 'errmod'\n");
    struct dag d;
    CHECK(load("usemod.lua", NULL, &d) == -1);
    char want[700];
    snprintf(want, sizeof want, "%s/errmod.lua:2: attempt to index a nil value (field 'x')", dir);
    CHECK_STR(err_msg(), want);
    CHECK(d.n == 0 && d.stages == NULL && d.order == NULL);
    write_file("badmod.lua", "stage 'm' { kind = 'gen' }\n");
    write_file("usebad.lua", "require 'badmod'\n");
    CHECK(load("usebad.lua", NULL, &d) == -1);
    snprintf(want, sizeof want, "%s/badmod.lua:1: stage 'm' (kind gen) is missing required parameter 'bytes'",
             dir);
    CHECK_STR(err_msg(), want);
}

static void test_bad(void) {
    struct manifest_limits lim = {8u << 20, 1000000};
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        const struct bad *b = &bads[i];
        write_file(b->name, b->src);
        struct dag d;
        int rc = load(b->name, &lim, &d);
        CHECK(rc == -1);
        CHECK(d.n == 0 && d.stages == NULL);
        char tail[700], want[1400];
        snprintf(tail, sizeof tail, b->want, dir);
        snprintf(want, sizeof want, "%s/%s:%s", dir, b->name, tail);
        CHECK_STR(err_msg(), want);
        if (rc == 0)
            dag_free(&d);
    }
}

/* -0.0 and 0.0 are one value, so they make one cache key; text beyond ASCII is fine when it is UTF-8. */
static void test_canonical(void) {
    write_file("zero.lua",
               "stage 'neg' { kind = 'opt', lr = -0.0, ws = { -0.0, 0.0, -1 } }\n"
               "stage 'pos' { kind = 'opt', lr = 0.0, ws = { 0.0, 0, -1 } }\n"
               "stage 'int' { kind = 'opt', lr = 0, ws = { 0, 0.0, -1.0 } }\n"
               "stage 'u' { kind = 'cat', parts = {}, label = 'caf\\u{E9} \\u{2192} \\u{1F600}' }\n"
               "stage 'f' { kind = 'file', src = 'd\\xc3\\xa9j\\xc3\\xa0/x.txt' }\n");
    struct dag d;
    int rc = load("zero.lua", NULL, &d);
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err_msg());
        return;
    }
    const char *want =
        "{\"flags\":[],\"lr\":0.0,\"on\":false,\"scale\":3.0,\"steps\":2,\"ws\":[0.0,0.0,-1.0]}";
    check_params(&d, "neg", want);
    check_params(&d, "pos", want);
    check_params(&d, "int", want);
    check_params(&d, "u", "{\"label\":\"caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x98\x80\"}");
    check_params(&d, "f", "{\"src\":\"d\xc3\xa9j\xc3\xa0/x.txt\"}");
    dag_free(&d);
}

/* Declaring stages is linear: 20000 of them (and refs by name to each) load at once. */
static void test_many_stages(void) {
    write_file("many.lua", "local prev\n"
                           "for i = 1, 20000 do\n"
                           "  prev = stage('s/' .. i) { kind = 'gen', bytes = i }\n"
                           "end\n"
                           "local parts = {}\n"
                           "for i = 1, 20000, 7 do parts[#parts + 1] = ref('s/' .. i, 'data') end\n"
                           "stage 'all' { kind = 'cat', parts = parts }\n");
    struct dag d;
    int rc = load("many.lua", NULL, &d);
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err_msg());
        return;
    }
    CHECK(d.n == 20001);
    CHECK(dag_find(&d, "s/1") == 0 && dag_find(&d, "s/12345") == 12344 && dag_find(&d, "all") == 20000);
    CHECK(dag_find(&d, "s/0") == -1 && dag_find(&d, "s/20001") == -1 && dag_find(&d, "") == -1);
    CHECK(d.stages[20000].ninputs == 2858);
    check_input(&d, "all", 1, "parts", 1, "s/8", "data");
    check_params(&d, "s/777", "{\"bytes\":777,\"seed\":1}");
    CHECK(d.order && d.order[0] == 0 && d.order[20000] == 20000);
    /* a dag assembled by hand has no index: dag_find still works, by scanning */
    struct dag bare = {d.stages, d.n, NULL, NULL};
    CHECK(dag_find(&bare, "s/19999") == 19998 && dag_find(&bare, "nope") == -1);
    dag_free(&d);
    write_file("manydup.lua", "for i = 1, 5000 do stage('s/' .. i) { kind = 'gen', bytes = i } end\n"
                              "stage 's/4321' { kind = 'gen', bytes = 1 }\n");
    CHECK(load("manydup.lua", NULL, &d) == -1);
    CHECK_HAS(err_msg(), "manydup.lua:2: stage 's/4321' is already declared at ");
    CHECK_HAS(err_msg(), "manydup.lua:1");
}

static void test_missing_file(void) {
    struct dag d;
    CHECK(load("absent.lua", NULL, &d) == -1);
    CHECK_HAS(err_msg(), "absent.lua: no such manifest file");
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/pulse-lua-mf-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_good();
    test_bad();
    test_module_error();
    test_canonical();
    test_many_stages();
    test_missing_file();
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_done("test_lua_manifest");
}

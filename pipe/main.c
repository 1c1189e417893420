/* main: pulse-pipe's entry point: global options and subcommand dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/blas_tune.h"
#include "pipe/pipe.h"
#include "util/err.h"

static const char usage[] =
    "usage: pulse-pipe [--store DIR] <command> [args]\n"
    "\n"
    "Runs PULSE unlearning experiments as a pipeline of cached, auditable stages.\n"
    "\n"
    "commands:\n"
    "  run MANIFEST      run every stage not already in the store\n"
    "  status MANIFEST   which stages are done and which would run, and why\n"
    "  show NAME         the record of a stage: parameters, inputs, outputs, metrics\n"
    "  cat NAME OUTPUT   an output's bytes on standard output\n"
    "  log               the store's audit history\n"
    "  verify            re-hash every object and check every record against the audit log\n"
    "  gc                list (or remove, with --yes) what no record references\n"
    "  audit NAME        re-execute a stage from its stored inputs and compare output hashes\n"
    "  export MANIFEST   write a manifest's results to a bundle file\n"
    "  import FILE       bring a bundle's results into the store\n"
    "  kinds             the stage kinds and their parameters\n"
    "\n"
    "The store is --store DIR, else $PULSE_STORE, else ./.pulse. 'pulse-pipe <command> --help' tells more.\n"
    "Exit codes: 0 ok, 1 a stage failed, 2 usage or manifest error, 3 store damage found.\n";

static const struct {
    const char *name;
    int (*fn)(const struct pipe_opts *, int, char **);
} commands[] = {
    {"run", cmd_run},       {"status", cmd_status}, {"show", cmd_show},   {"cat", cmd_cat},
    {"log", cmd_log},       {"verify", cmd_verify}, {"gc", cmd_gc},       {"audit", cmd_audit},
    {"export", cmd_export}, {"import", cmd_import}, {"kinds", cmd_kinds},
};

int main(int argc, char **argv) {
    blas_tune_reexec(argv);
    struct pipe_opts o = {.store = getenv("PULSE_STORE")};
    int i = 1, bad = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("pulse-pipe %s\n", PULSE_VERSION);
            return EXIT_OK;
        } else if ((v = opt_value(argc, argv, &i, "--store", &bad))) {
            o.store = v;
        } else {
            if (!bad)
                fprintf(stderr, "pulse-pipe: unknown option '%s' (see pulse-pipe --help)\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!o.store || !*o.store)
        o.store = ".pulse";
    if (i >= argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            return commands[c].fn(&o, argc - i, argv + i);
    fprintf(stderr, "pulse-pipe: unknown command '%s' (see pulse-pipe --help)\n", argv[i]);
    return EXIT_USAGE;
}

/* file: brings one file from the user's disk into the store. Its path is a PARAM_PATH, so the stage reruns
 * exactly when the file's content changes. */
#include <stdlib.h>

#include "stages/stage.h"
#include "util/err.h"
#include "util/fsio.h"

#define FILE_MAX_BYTES (1ULL << 36)

static int file_run(struct stage_ctx *c) {
    const char *path = stage_str(c, "path");
    char *data;
    size_t n;
    if (fsio_read_file(path, FILE_MAX_BYTES, &data, &n) != 0)
        return -1;
    int rc = stage_output(c, "data", data, n, stage_str(c, "type"));
    free(data);
    return rc;
}

static const struct param_spec file_params[] = {
    {"path", PARAM_PATH, NULL, "the file (relative paths start at the manifest's directory)"},
    {"type", PARAM_STR, "\"bytes\"", "the output's type, as records show it"},
};
static const char *const file_outputs[] = {"data"};

const struct stage_kind kind_file = {
    .schema = {"file", 1, file_params, 2, file_outputs, 1},
    .summary = "a file from disk, as an object (reruns when its content changes)",
    .run = file_run,
};

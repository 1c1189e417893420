/* concat: joins its inputs, in order, with an optional separator. A pipeline kind: fan-in for tests, and the
 * simplest way to assemble a file from other stages' outputs. */
#include <stdlib.h>
#include <string.h>

#include "stages/stage.h"
#include "util/buf.h"
#include "util/err.h"

static int concat_run(struct stage_ctx *c) {
    const char *sep = stage_str(c, "separator");
    size_t n = stage_input_count(c, "parts");
    struct buf out = {0};
    for (size_t i = 0; i < n; i++) {
        void *data;
        size_t len;
        if (stage_input_read(c, "parts", i, &data, &len) != 0) {
            buf_free(&out);
            return -1;
        }
        if (i)
            buf_puts(&out, sep);
        buf_append(&out, data, len);
        free(data);
    }
    int rc = stage_output(c, "data", out.data ? out.data : "", out.len, "bytes");
    stage_metric(c, "bytes", (double)out.len);
    buf_free(&out);
    return rc;
}

static const struct param_spec concat_params[] = {
    {"parts", PARAM_REFS, NULL, "the inputs, in order"},
    {"separator", PARAM_STR, "\"\"", "text put between two inputs"},
};
static const char *const concat_outputs[] = {"data"};

const struct stage_kind kind_concat = {
    .schema = {"concat", 1, concat_params, 2, concat_outputs, 1},
    .summary = "concatenate inputs in order",
    .run = concat_run,
};

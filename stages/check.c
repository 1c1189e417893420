/* check: fails unless its input has the expected object id. A pipeline kind: it pins a known artifact
 * (a download, a reference output) so that a manifest stops before using the wrong bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/stage.h"
#include "util/err.h"
#include "util/json.h"
#include "util/sha256.h"

static int check_run(struct stage_ctx *c) {
    const char *want = stage_str(c, "sha256");
    const char *got = stage_input_id(c, "data", 0);
    char full[HASH_ID_SIZE + 8];
    snprintf(full, sizeof full, "%s%s", strncmp(want, "sha256:", 7) ? "sha256:" : "", want);
    if (!hash_id_valid(full))
        return err_set("parameter 'sha256' is not a SHA-256 digest: '%s'", want);
    if (strcmp(full, got) != 0)
        return err_set("input is %s, expected %s", got, full);
    struct json *r = json_obj();
    json_set(r, "id", json_str(got));
    json_set(r, "ok", json_bool(1));
    size_t n;
    char *text = json_write(r, JSON_CANONICAL, &n);
    json_free(r);
    int rc = stage_output(c, "report", text, n, "json");
    free(text);
    return rc;
}

static const struct param_spec check_params[] = {
    {"data", PARAM_REF, NULL, "the output to check"},
    {"sha256", PARAM_STR, NULL, "its expected object id (with or without the sha256: prefix)"},
};
static const char *const check_outputs[] = {"report"};

const struct stage_kind kind_check = {
    .schema = {"check", 1, check_params, 2, check_outputs, 1},
    .summary = "fail unless an input has the expected SHA-256",
    .run = check_run,
};

/* fuzz_config: a Hugging Face config.json into the model's shapes (every size the engine allocates by comes
 * from here). Property: an accepted config written back by config_write parses to a config that writes the
 * same text. */
#include <string.h>

#include "engine/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct llava_config c, d;
    if (config_parse((const char *)data, size, "fuzz", &c) != 0)
        return 0;
    char *t1 = config_write(&c);
    FUZZ_CHECK(t1 && config_parse(t1, strlen(t1), "written", &d) == 0);
    char *t2 = config_write(&d);
    FUZZ_CHECK(t2 && strcmp(t1, t2) == 0);
    free(t1);
    free(t2);
    return 0;
}

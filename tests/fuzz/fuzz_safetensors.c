/* fuzz_safetensors: the safetensors reader (checkpoints, adapters, imported models come from anywhere).
 * Property: every tensor the parser accepts lies inside the file and converts to fp32 without reading
 * outside it (ASan's to say), and the tensors are sorted by name as st_find assumes. */
#include <string.h>

#include "engine/safetensors.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct st_file f;
    if (st_parse(data, size, "fuzz", &f) != 0)
        return 0;
    for (size_t i = 0; i < f.n; i++) {
        const struct st_tensor *t = &f.t[i];
        FUZZ_CHECK(fuzz_inside(data, size, t->data, t->nbytes));
        FUZZ_CHECK(i == 0 || strcmp(f.t[i - 1].name, t->name) < 0);
        FUZZ_CHECK(st_find(&f, t->name) == t);
        float *out = malloc(t->nelem ? t->nelem * sizeof *out : 1);
        st_to_f32(t, out);
        free(out);
    }
    st_close(&f);
    return 0;
}

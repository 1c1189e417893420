/* fuzz_gguf: the GGUF reader (tests read back what export writes; a user may hand it any file). Property:
 * every tensor it accepts lies inside the file and converts to fp32 without reading outside it, and each
 * name and key finds its own entry. */
#include "engine/gguf.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct gguf_file f;
    if (gguf_parse(data, size, "fuzz", &f) != 0)
        return 0;
    for (size_t i = 0; i < f.nt; i++) {
        const struct gguf_tensor *t = &f.t[i];
        FUZZ_CHECK(fuzz_inside(data, size, t->data, t->nbytes));
        FUZZ_CHECK(gguf_find(&f, t->name) == t);
        float *out = malloc(t->nelem ? t->nelem * sizeof *out : 1);
        gguf_tensor_f32(t, out);
        free(out);
    }
    for (size_t i = 0; i < f.nkv; i++)
        FUZZ_CHECK(gguf_get(&f, f.kv[i].key) == &f.kv[i].v);
    gguf_free(&f);
    return 0;
}

/* fuzz_peft: a PEFT adapter (adapter_config.json + adapter_model.safetensors, downloaded from anywhere) into
 * LoRA matrices. The first two bytes give the config's length, the rest is the config then the tensors.
 * Property: an adapter it accepts encodes back to files that decode and encode to the same bytes. */
#include <string.h>

#include "engine/lora.h"
#include "engine/peft.h"
#include "fuzz.h"

static void reencode(const struct lora *l, const struct peft_meta *meta, char **c, size_t *cn, void **t,
                     size_t *tn) {
    FUZZ_CHECK(peft_encode(l, meta, c, cn, t, tn) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    size_t nc = ((size_t)data[0] << 8 | data[1]) % (size - 1);
    const char *config = (const char *)data + 2;
    const uint8_t *tensors = data + 2 + nc;
    struct lora l, l2;
    struct peft_meta m, m2;
    if (peft_decode(config, nc, tensors, size - 2 - nc, "fuzz", NULL, NULL, &l, &m) != 0)
        return 0;
    char *c1, *c2;
    void *t1, *t2;
    size_t cn1, cn2, tn1, tn2;
    reencode(&l, &m, &c1, &cn1, &t1, &tn1);
    FUZZ_CHECK(peft_decode(c1, cn1, t1, tn1, "encoded", NULL, NULL, &l2, &m2) == 0);
    reencode(&l2, &m2, &c2, &cn2, &t2, &tn2);
    FUZZ_CHECK(cn1 == cn2 && memcmp(c1, c2, cn1) == 0 && tn1 == tn2 && memcmp(t1, t2, tn1) == 0);
    free(c1), free(c2), free(t1), free(t2);
    lora_free(&l), lora_free(&l2);
    peft_meta_free(&m), peft_meta_free(&m2);
    return 0;
}

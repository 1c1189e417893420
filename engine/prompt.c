/* prompt: tokenizing prompts and answers into a LLaVA model's ids and labels (engine/prompt.h). */
#include "engine/prompt.h"

#include <stdlib.h>
#include <string.h>

#include "engine/train.h"
#include "util/err.h"

static size_t count_image(const int32_t *ids, size_t n, int32_t image_token) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ids[i] == image_token;
    return k;
}

/* Appends the prompt's ids to out (bos first), expanding the one image token. */
static size_t put_prompt(int32_t *out, const int32_t *p, size_t np, int32_t bos, int32_t image_token,
                         size_t image_tokens) {
    size_t k = 0;
    out[k++] = bos;
    for (size_t i = 0; i < np; i++) {
        if (p[i] != image_token) {
            out[k++] = p[i];
            continue;
        }
        for (size_t j = 0; j < image_tokens; j++)
            out[k++] = image_token;
    }
    return k;
}

int prompt_encode(const struct tokenizer *t, int32_t image_token, size_t image_tokens, const char *prompt,
                  const char *answer, int has_image, const char *what, struct prompt_seq *out) {
    memset(out, 0, sizeof *out);
    if (t->bos < 0 || (answer && t->eos < 0))
        return err_set("%s: the tokenizer has no <s> or </s> token", what);
    int32_t *p = NULL, *a = NULL;
    size_t np = 0, na = 0;
    if (tokenizer_encode(t, prompt, 0, &p, &np) != 0 ||
        (answer && tokenizer_encode(t, answer, 0, &a, &na) != 0)) {
        free(p);
        return err_prefix("%s", what);
    }
    size_t nimg = count_image(p, np, image_token);
    if (nimg != (has_image ? 1u : 0u)) {
        free(p);
        free(a);
        return err_set("%s: the prompt holds <image> %zu times; it must hold it %s", what, nimg,
                       has_image ? "once (the example has an image)" : "never (the example has no image)");
    }
    size_t n = 1 + np + (has_image ? image_tokens - 1 : 0) + (answer ? na + 1 : 0);
    out->ids = malloc(n * sizeof *out->ids);
    out->labels = malloc(n * sizeof *out->labels);
    size_t k = put_prompt(out->ids, p, np, t->bos, image_token, image_tokens);
    out->prompt_len = k;
    for (size_t i = 0; i < k; i++)
        out->labels[i] = TRAIN_IGNORE;
    for (size_t i = 0; answer && i <= na; i++, k++)
        out->ids[k] = out->labels[k] = i < na ? a[i] : t->eos;
    out->n = k;
    out->image = has_image;
    free(p);
    free(a);
    return 0;
}

void prompt_seq_free(struct prompt_seq *s) {
    free(s->ids);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

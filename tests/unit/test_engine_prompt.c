/* test_engine_prompt: prompts and answers to a LLaVA model's ids and labels (engine/prompt.h): <s> first, the
 * one <image> expanded in place to the model's image tokens, the answer and </s> labelled and the prompt
 * TRAIN_IGNORE; every refusal (<image> twice, missing, unexpected; a tokenizer without <s> or </s>) is one
 * line naming the text, with nothing allocated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/prompt.h"
#include "engine/tokenizer.h"
#include "engine/train.h"
#include "util/err.h"

/* Ids: the specials 0-4 (the ones named in `specials`, "<unk> <s> </s> <pad> <image>" for all), then the
 * words 5.. in order. */
static const char *const words[] = {"USER", ":", "ASSISTANT", "What", "is", "this", "?", "Bob", "x", "."};
enum { USER = 5, COLON, ASSISTANT, WHAT, IS, THIS, QMARK, BOB, X, DOT, NWORDS = DOT - USER + 1 };
enum { UNK, BOS, EOS, PAD, IMG };

static struct tokenizer *make_tokenizer(int bos, int eos) {
    static const char *const special[] = {"<unk>", "<s>", "</s>", "<pad>", "<image>"};
    char text[4096];
    int k = snprintf(text, sizeof text, "{\"version\":\"1.0\",\"added_tokens\":[");
    for (int i = 0; i < 5; i++)
        if ((i != BOS || bos) && (i != EOS || eos))
            k += snprintf(text + k, sizeof text - (size_t)k,
                          "%s{\"id\":%d,\"content\":\"%s\",\"single_word\":false,\"lstrip\":false,"
                          "\"rstrip\":false,\"normalized\":false,\"special\":true}",
                          i ? "," : "", i, special[i]);
    k += snprintf(text + k, sizeof text - (size_t)k,
                  "],\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"post_processor\":null,"
                  "\"decoder\":null,\"truncation\":null,\"padding\":null,\"model\":{\"type\":\"WordLevel\","
                  "\"unk_token\":\"<unk>\",\"vocab\":{\"<unk>\":0");
    for (int i = 1; i < 5; i++)
        if ((i != BOS || bos) && (i != EOS || eos))
            k += snprintf(text + k, sizeof text - (size_t)k, ",\"%s\":%d", special[i], i);
    for (int i = 0; i < NWORDS; i++)
        k += snprintf(text + k, sizeof text - (size_t)k, ",\"%s\":%d", words[i], USER + i);
    snprintf(text + k, sizeof text - (size_t)k, "}}}");
    struct tokenizer *t = tokenizer_load(text, strlen(text));
    if (!t)
        fprintf(stderr, "tokenizer_load: %s\n", err_msg());
    return t;
}

static int same_ids(const int32_t *got, const int32_t *want, size_t n) {
    return memcmp(got, want, n * sizeof *got) == 0;
}

/* The image expanded where it stood, bos first, the answer and eos labelled. */
static void test_image_answer(const struct tokenizer *t) {
    struct prompt_seq s;
    CHECK(prompt_encode(t, IMG, 3, "USER: <image>\nWhat is this?\nASSISTANT:", "Bob is x.", 1, "ex1", &s) ==
          0);
    static const int32_t want[] = {BOS,   USER,      COLON, IMG, IMG, IMG, WHAT, IS, THIS,
                                   QMARK, ASSISTANT, COLON, BOB, IS,  X,   DOT,  EOS};
    size_t n = sizeof want / sizeof want[0];
    CHECK(s.n == n && s.prompt_len == 12 && s.image == 1);
    CHECK(s.n == n && same_ids(s.ids, want, n));
    for (size_t i = 0; i < s.n && s.n == n; i++)
        CHECK(s.labels[i] == (i < 12 ? TRAIN_IGNORE : want[i]));
    prompt_seq_free(&s);
    CHECK(s.ids == NULL && s.labels == NULL && s.n == 0);

    /* One image token per feature: 1 leaves the count as it is, 5 adds four. */
    CHECK(prompt_encode(t, IMG, 1, "<image> What?", NULL, 1, "ex2", &s) == 0);
    CHECK(s.n == 4 && s.ids[0] == BOS && s.ids[1] == IMG && s.ids[2] == WHAT && s.ids[3] == QMARK);
    prompt_seq_free(&s);
    CHECK(prompt_encode(t, IMG, 5, "What <image>", NULL, 1, "ex3", &s) == 0);
    CHECK(s.n == 7 && s.prompt_len == 7 && s.ids[1] == WHAT && s.ids[2] == IMG && s.ids[6] == IMG);
    prompt_seq_free(&s);
}

/* A question: the prompt alone, nothing labelled; text only: no image token at all. */
static void test_prompt_only(const struct tokenizer *t) {
    struct prompt_seq s;
    CHECK(prompt_encode(t, IMG, 4, "USER: What is this?\nASSISTANT:", NULL, 0, "q1", &s) == 0);
    static const int32_t want[] = {BOS, USER, COLON, WHAT, IS, THIS, QMARK, ASSISTANT, COLON};
    CHECK(s.n == 9 && s.prompt_len == 9 && s.image == 0 && same_ids(s.ids, want, 9));
    for (size_t i = 0; i < s.n; i++)
        CHECK(s.labels[i] == TRAIN_IGNORE);
    prompt_seq_free(&s);
    /* Unknown words are the tokenizer's business (<unk>), not an error. */
    CHECK(prompt_encode(t, IMG, 4, "Who?", "Nobody", 0, "q2", &s) == 0);
    CHECK(s.n == 5 && s.ids[1] == UNK && s.ids[2] == QMARK && s.labels[3] == UNK && s.labels[4] == EOS);
    prompt_seq_free(&s);
}

/* A refusal: -1, one line starting with the text's name, and nothing left allocated. */
static void refused(const struct tokenizer *t, const char *prompt, const char *answer, int has_image,
                    const char *msg) {
    struct prompt_seq s;
    memset(&s, 0x55, sizeof s);
    CHECK(prompt_encode(t, IMG, 3, prompt, answer, has_image, "item-7", &s) == -1);
    CHECK(strncmp(err_msg(), "item-7: ", 8) == 0);
    CHECK_HAS(err_msg(), msg);
    CHECK(strchr(err_msg(), '\n') == NULL);
    CHECK(s.ids == NULL && s.labels == NULL && s.n == 0);
}

static void test_errors(const struct tokenizer *t) {
    refused(t, "<image> What <image>?", "Bob", 1, "holds <image> 2 times; it must hold it once");
    refused(t, "What is this?", "Bob", 1, "holds <image> 0 times; it must hold it once");
    refused(t, "<image> What is this?", NULL, 0, "holds <image> 1 times; it must hold it never");
    /* the tokenizer's own line, with the text's name in front once */
    refused(t, "What \xff?", NULL, 0, "item-7: tokenizer: text is not valid UTF-8 (byte 5)");
    refused(t, "What?", "Bob \xc3", 0, "item-7: tokenizer: text is not valid UTF-8 (byte 4)");

    struct tokenizer *nobos = make_tokenizer(0, 1), *noeos = make_tokenizer(1, 0);
    CHECK(nobos && noeos);
    if (!nobos || !noeos)
        return;
    refused(nobos, "What?", NULL, 0, "the tokenizer has no <s>");
    refused(noeos, "What?", "Bob", 0, "no <s> or </s>");
    /* Without an answer, </s> is not needed. */
    struct prompt_seq s;
    CHECK(prompt_encode(noeos, IMG, 3, "What?", NULL, 0, "q", &s) == 0 && s.n == 3);
    prompt_seq_free(&s);
    tokenizer_free(nobos);
    tokenizer_free(noeos);
}

int main(void) {
    struct tokenizer *t = make_tokenizer(1, 1);
    CHECK(t != NULL);
    if (t) {
        CHECK(t->bos == BOS && t->eos == EOS && t->vocab_size == USER + NWORDS);
        test_image_answer(t);
        test_prompt_only(t);
        test_errors(t);
    }
    tokenizer_free(t);
    return check_done("test_engine_prompt");
}

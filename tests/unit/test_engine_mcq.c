/* test_engine_mcq: multiple-choice scoring (engine/mcq.h). On a small random LLaVA, mcq_score's batched,
 * padded answers equal an independent computation (each question forwarded alone, batch 1, no padding, the
 * argmax taken by hand), from pixels and from cached features, on 1 and 2 threads. Then the greedy letter
 * rule, with an lm_head set by hand so that a chosen token wins: "B" -> B, "Bob" -> B (the first character,
 * MLLMU-Bench's rule), "\u2581C" -> C, "x", "a", "E" and an id without a token -> unparsed; and the option
 * score, which ignores every token but the four letters.
 *
 * Likelihood scoring: the cloze texts (the statement filled, or the option alone without one), the sequences
 * and their labels; each option's score equal to the sum of log-probabilities of its answer tokens and </s>
 * from a single-sequence forward computed here (batch 1, pixels, log-softmax in double), for items of 2 to 4
 * options in batches that cut across items, from pixels and from features, the same bits on 1 and 2 threads;
 * the winner the argmax, the first of equal scores (an lm_head of zeros makes every token equally likely);
 * and the items' `statement` field read, written back and refused without exactly one "{}". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "imagetar.h"
#include "engine/config.h"
#include "engine/corpus.h"
#include "engine/dataset.h"
#include "engine/image.h"
#include "engine/llava.h"
#include "engine/llava_io.h"
#include "engine/mcq.h"
#include "engine/ops.h"
#include "engine/prompt.h"
#include "util/buf.h"
#include "util/err.h"

#define SIZE 16
#define VOCAB 40

/* ids 5.. in order; "\xe2\x96\x81" is SentencePiece's word mark. */
static const char *const words[] = {"USER",
                                    ":",
                                    "ASSISTANT",
                                    "What",
                                    "is",
                                    "this",
                                    "?",
                                    "A",
                                    "B",
                                    "C",
                                    "D",
                                    "Bob",
                                    "x",
                                    "a",
                                    "E",
                                    "Dog",
                                    "Which",
                                    "one",
                                    "\xe2\x96\x81"
                                    "C"};
#define NWORDS (sizeof words / sizeof words[0])

/* The vocabulary without the word `drop` (NULL: all of them). */
static struct tokenizer *make_tokenizer(const char *drop) {
    static const char *const special[] = {"<unk>", "<s>", "</s>", "<pad>", "<image>"};
    char text[4096];
    int k = snprintf(text, sizeof text, "{\"version\":\"1.0\",\"added_tokens\":[");
    for (int i = 0; i < 5; i++)
        k += snprintf(text + k, sizeof text - (size_t)k,
                      "%s{\"id\":%d,\"content\":\"%s\",\"single_word\":false,\"lstrip\":false,"
                      "\"rstrip\":false,\"normalized\":false,\"special\":true}",
                      i ? "," : "", i, special[i]);
    k += snprintf(text + k, sizeof text - (size_t)k,
                  "],\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"post_processor\":null,"
                  "\"decoder\":null,\"truncation\":null,\"padding\":null,\"model\":{\"type\":\"WordLevel\","
                  "\"unk_token\":\"<unk>\",\"vocab\":{");
    for (int i = 0; i < 5; i++)
        k += snprintf(text + k, sizeof text - (size_t)k, "%s\"%s\":%d", i ? "," : "", special[i], i);
    for (size_t i = 0; i < NWORDS; i++)
        if (!drop || strcmp(words[i], drop) != 0)
            k += snprintf(text + k, sizeof text - (size_t)k, ",\"%s\":%zu", words[i], 5 + i);
    snprintf(text + k, sizeof text - (size_t)k, "}}}");
    struct tokenizer *t = tokenizer_load(text, strlen(text));
    if (!t)
        fprintf(stderr, "tokenizer_load: %s\n", err_msg());
    return t;
}

static int make_config(struct llava_config *cfg) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"model_type\":\"llava\",\"image_token_index\":4,\"pad_token_id\":3,"
             "\"projector_hidden_act\":\"gelu\",\"vision_feature_layer\":-1,"
             "\"vision_feature_select_strategy\":\"default\",\"text_config\":{\"model_type\":\"llama\","
             "\"hidden_size\":32,\"intermediate_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
             "\"num_key_value_heads\":2,\"vocab_size\":%d,\"max_position_embeddings\":64,"
             "\"rms_norm_eps\":1e-05},\"vision_config\":{\"model_type\":\"clip_vision_model\","
             "\"hidden_size\":16,\"intermediate_size\":32,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
             "\"image_size\":%d,\"patch_size\":8,\"num_channels\":3,\"layer_norm_eps\":1e-05}}",
             VOCAB, SIZE);
    return config_parse(text, strlen(text), "config", cfg);
}

static uint8_t tar_pattern(int i, int k) {
    return (uint8_t)((i * (5 + 8 * k) + 40 * k) % 256);
}

static void *make_tar(size_t *n) {
    static const char *const ids[] = {"im1", "im2"};
    static const int side[] = {SIZE, SIZE};
    return imagetar_make(ids, side, side, 2, tar_pattern, n);
}

static struct {
    struct tokenizer *tok;
    struct llava_config cfg;
    void *tar;
    struct ds_images *im;
} w;

/* Five questions of four lengths, with and without an image: two batches of the model's 4 rows. */
static struct ds_item it_v[] = {
    {.id = "q0", .image = "im1", .prompt = "USER: <image>\nWhat is this?\nA\nB\nC\nD\nASSISTANT:"},
    {.id = "q1", .prompt = "USER: Which one?\nASSISTANT:"},
    {.id = "q2", .image = "im2", .prompt = "<image>\nWhich one is this? A B C D"},
    {.id = "q3", .prompt = "USER:\nWhat is Bob? A: x B: Dog C: a D: E\nASSISTANT:"},
    {.id = "q4", .image = "im1", .prompt = "<image> Bob?"},
};
static const struct ds_items items = {it_v, 5};

/* The letter of a token by MLLMU-Bench's rule, written apart from mcq.c: the first character after any
 * spaces and word marks, A-D, else -1. */
static int letter_of(int32_t id) {
    const char *s = tokenizer_token(w.tok, id);
    while (s && (*s == ' ' || strncmp(s, "\xe2\x96\x81", 3) == 0))
        s += *s == ' ' ? 1 : 3;
    return s && *s >= 'A' && *s <= 'D' ? *s - 'A' : -1;
}

/* Each question alone (batch 1, no padding, pixels), its answer read off the logits by hand; *margin: the
 * smallest gap between the winner and the runner-up, so that a near tie shows. */
static void by_hand(struct llava *m, const struct corpus *c, struct mcq_result *want, double *margin) {
    size_t V = VOCAB;
    int32_t mask[64];
    for (size_t i = 0; i < 64; i++)
        mask[i] = 1;
    *margin = INFINITY;
    int32_t letters[4] = {tokenizer_id(w.tok, "A"), tokenizer_id(w.tok, "B"), tokenizer_id(w.tok, "C"),
                          tokenizer_id(w.tok, "D")};
    for (size_t q = 0; q < c->n; q++) {
        const struct corpus_entry *e = &c->e[q];
        const float *px = e->image >= 0 ? c->pixels + (size_t)e->image * c->image_floats : NULL;
        CHECK(llava_forward(m, ops_cpu(1), e->seq.ids, mask, 1, e->seq.n, px, e->image >= 0) == 0);
        const float *l = m->a.logits + (e->seq.n - 1) * V;
        size_t best = 0, second = 1;
        for (size_t j = 1; j < V; j++)
            if (l[j] > l[best]) {
                second = best;
                best = j;
            } else if (j != best && l[j] > l[second])
                second = j;
        int opt = 0;
        for (int k = 1; k < 4; k++)
            opt = l[letters[k]] > l[letters[opt]] ? k : opt;
        for (int k = 0; k < 4; k++)
            if (k != opt && l[letters[opt]] - l[letters[k]] < *margin)
                *margin = l[letters[opt]] - l[letters[k]];
        if (l[best] - l[second] < *margin)
            *margin = l[best] - l[second];
        want[q].greedy = letter_of((int32_t)best);
        want[q].option = opt;
    }
}

static int same_results(const struct mcq_result *a, const struct mcq_result *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i].greedy != b[i].greedy || a[i].option != b[i].option)
            return 0;
    return 1;
}

static void test_against_alone(void) {
    struct corpus c;
    CHECK(corpus_from_items(&c, &items, w.im, w.tok, &w.cfg, NULL, NULL) == 0);
    CHECK(c.n == 5 && c.nimages == 2);
    struct llava m;
    /* std 1: logits far apart, so a last-bit difference between batched and single forwards cannot flip an
     * argmax (the margin is printed) */
    CHECK(llava_init_random(&m, &w.cfg, 11, 1.0f, 4, c.maxlen) == 0);
    struct mcq_result got[5], got2[5], feat[5], want[5];
    memset(got, 0x7f, sizeof got);
    CHECK(mcq_score(&m, ops_cpu(1), &c, w.tok, got) == 0);
    CHECK(mcq_score(&m, ops_cpu(2), &c, w.tok, got2) == 0);
    double margin;
    by_hand(&m, &c, want, &margin);
    CHECK(same_results(got, want, 5) && same_results(got2, want, 5));
    CHECK(margin > 1e-3);
    CHECK(corpus_features(&c, &m, ops_cpu(2)) == 0);
    CHECK(mcq_score(&m, ops_cpu(2), &c, w.tok, feat) == 0);
    CHECK(same_results(feat, want, 5));
    int parsed = 0;
    for (int q = 0; q < 5; q++) {
        parsed += want[q].greedy >= 0;
        printf("q%d: greedy %2d option %d\n", q, want[q].greedy, want[q].option);
    }
    printf("batched = alone for 5 questions, smallest margin %.4f, %d greedy letters\n", margin, parsed);
    llava_free(&m);
    corpus_free(&c);
}

/* ---- the letter rules, on a hand-set lm_head ---- */

/* The single question's result once lm_head's rows are scale[k] * h for the tokens named in tok[] (h: the
 * final norm's output at the last prompt position, which lm_head does not change) and 0 elsewhere: token k
 * scores scale[k] |h|^2. */
static struct mcq_result rigged(struct llava *m, const struct corpus *c, const float *h,
                                const char *const *tok, const float *scale, int n) {
    size_t C = (size_t)m->cfg.text.hidden;
    memset(m->p.lm_head, 0, VOCAB * C * sizeof(float));
    for (int k = 0; k < n; k++) {
        int32_t id = tok[k][0] == '#' ? atoi(tok[k] + 1) : tokenizer_id(w.tok, tok[k]);
        CHECK(id >= 0 && id < VOCAB);
        for (size_t j = 0; id >= 0 && j < C; j++)
            m->p.lm_head[(size_t)id * C + j] = scale[k] * h[j];
    }
    struct mcq_result r = {-9, -9, -9};
    CHECK(mcq_score(m, ops_cpu(1), c, w.tok, &r) == 0);
    return r;
}

static void test_letters(void) {
    struct corpus c;
    static struct ds_item one_v[] = {{.id = "q", .prompt = "USER: What is this?\nASSISTANT:"}};
    const struct ds_items one = {one_v, 1};
    CHECK(corpus_from_items(&c, &one, w.im, w.tok, &w.cfg, NULL, NULL) == 0 && c.n == 1);
    struct llava m;
    CHECK(llava_init_random(&m, &w.cfg, 5, 0.5f, 1, c.maxlen) == 0);
    int32_t mask[64];
    for (size_t i = 0; i < 64; i++)
        mask[i] = 1;
    size_t C = (size_t)w.cfg.text.hidden, n = c.e[0].seq.n;
    CHECK(llava_forward(&m, ops_cpu(1), c.e[0].seq.ids, mask, 1, n, NULL, 0) == 0);
    float *h = malloc(C * sizeof *h);
    memcpy(h, m.a.norm + (n - 1) * C, C * sizeof *h);

    static const struct {
        const char *tok;
        int greedy;
    } one_token[] = {{"B", 1},
                     {"Bob", 1},
                     {"\xe2\x96\x81"
                      "C",
                      2},
                     {"Dog", 3},
                     {"x", -1},
                     {"a", -1},
                     {"E", -1},
                     {"<s>", -1},
                     {"#38", -1}};
    static const float s1[] = {1.0f};
    for (size_t k = 0; k < sizeof one_token / sizeof one_token[0]; k++) {
        struct mcq_result r = rigged(&m, &c, h, &one_token[k].tok, s1, 1);
        CHECK(r.greedy == one_token[k].greedy);
        /* the option score sees only A-D: B when B itself won, else the first of four equal zeros */
        CHECK(r.option == (strcmp(one_token[k].tok, "B") == 0 ? 1 : 0));
    }
    /* "Bob" wins the vocabulary, C the options; A below zero leaves B first among the zeros */
    static const char *const t3[] = {"Bob", "C", "A"}, *const t2[] = {"x", "A"};
    static const float s3[] = {3.0f, 2.0f, -1.0f}, s2[] = {1.0f, -1.0f};
    struct mcq_result r = rigged(&m, &c, h, t3, s3, 3);
    CHECK(r.greedy == 1 && r.option == 2);
    r = rigged(&m, &c, h, t2, s2, 2);
    CHECK(r.greedy == -1 && r.option == 1);
    free(h);
    llava_free(&m);
    corpus_free(&c);
}

static void test_missing_letter(void) {
    struct tokenizer *noc = make_tokenizer("C");
    struct corpus c;
    static struct ds_item one_v[] = {{.id = "q", .prompt = "What?"}};
    const struct ds_items one = {one_v, 1};
    CHECK(noc && corpus_from_items(&c, &one, w.im, noc, &w.cfg, NULL, NULL) == 0);
    struct llava m;
    CHECK(llava_init_random(&m, &w.cfg, 5, 0.02f, 1, c.maxlen) == 0);
    struct mcq_result r;
    CHECK(mcq_score(&m, ops_cpu(1), &c, noc, &r) == -1);
    CHECK_STR(err_msg(), "mcq: the tokenizer has no token 'C'");
    llava_free(&m);
    corpus_free(&c);
    tokenizer_free(noc);
}

/* ---- likelihood ---- */

/* Items for likelihood scoring: with and without a statement, an image, 2 to 4 options. */
static struct ds_item lk_v[] = {
    {.id = "l0",
     .image = "im1",
     .question = "What is this?",
     .options = {"Bob", "Dog", "x", "a"},
     .noptions = 4,
     .statement = "this is {} one"},
    {.id = "l1", .question = "Which one?", .options = {"Dog", "Bob Dog"}, .noptions = 2},
    {.id = "l2",
     .image = "im2",
     .question = "Which one is this?",
     .options = {"E", "a", "x"},
     .noptions = 3,
     .statement = "{}"},
    {.id = "l3",
     .question = "What is Bob?",
     .options = {"a", "E", "Dog", "x"},
     .noptions = 4,
     .statement = "Bob is {}"},
};
static const struct ds_items lk_items = {lk_v, 4};

static void test_cloze_text(void) {
    char *p = mcq_cloze_prompt(&lk_v[0]), *q = mcq_cloze_prompt(&lk_v[1]);
    CHECK_STR(p, "USER: <image>\nWhat is this?\nASSISTANT:");
    CHECK_STR(q, "USER:\nWhich one?\nASSISTANT:");
    char *a = mcq_cloze_answer(&lk_v[0], 1), *b = mcq_cloze_answer(&lk_v[1], 1),
         *c = mcq_cloze_answer(&lk_v[2], 2);
    CHECK_STR(a, "this is Dog one");
    CHECK_STR(b, "Bob Dog"); /* no statement: the option text itself */
    CHECK_STR(c, "x");
    free(p), free(q), free(a), free(b), free(c);
}

/* The cloze corpus: an entry per option, item by item; each one's ids and labels as prompt_encode gives them
 * for the cloze prompt and the filled answer. */
static void test_cloze_corpus(struct mcq_cloze *z) {
    CHECK(mcq_cloze_build(z, &lk_items, w.im, w.tok, &w.cfg, NULL, NULL) == 0);
    CHECK(z->nitems == 4 && z->cp.n == 4 + 2 + 3 + 4 && z->cp.nimages == 2);
    CHECK(z->first[0] == 0 && z->first[1] == 4 && z->first[2] == 6 && z->first[3] == 9 && z->first[4] == 13);
    int bad = 0;
    for (size_t j = 0; j < z->nitems; j++)
        for (size_t e = z->first[j]; e < z->first[j + 1]; e++) {
            const struct ds_item *it = &lk_v[z->item[j]];
            char *prompt = mcq_cloze_prompt(it), *answer = mcq_cloze_answer(it, (int)(e - z->first[j]));
            struct prompt_seq want;
            CHECK(prompt_encode(w.tok, w.cfg.image_token_index, (size_t)w.cfg.patches, prompt, answer,
                                it->image != NULL, it->id, &want) == 0);
            const struct prompt_seq *got = &z->cp.e[e].seq;
            bad += got->n != want.n || got->prompt_len != want.prompt_len ||
                   memcmp(got->ids, want.ids, want.n * sizeof *want.ids) != 0 ||
                   memcmp(got->labels, want.labels, want.n * sizeof *want.labels) != 0 ||
                   (z->cp.e[e].image >= 0) != (it->image != NULL);
            prompt_seq_free(&want);
            free(prompt), free(answer);
        }
    CHECK(bad == 0);
    /* "Bob Dog" (item l1, no statement) is the option's own two words, then </s> */
    const struct prompt_seq *bd = &z->cp.e[5].seq;
    CHECK(bd->n == bd->prompt_len + 3 && bd->ids[bd->prompt_len] == tokenizer_id(w.tok, "Bob") &&
          bd->ids[bd->prompt_len + 1] == tokenizer_id(w.tok, "Dog") && bd->ids[bd->n - 1] == w.tok->eos);
}

/* Entry e alone: batch 1, no padding, pixels; the answer tokens' and </s>'s log-probabilities in double. */
static double alone(struct llava *m, const struct corpus *c, size_t e) {
    const struct prompt_seq *s = &c->e[e].seq;
    int32_t mask[64];
    for (size_t i = 0; i < 64; i++)
        mask[i] = 1;
    const float *px = c->e[e].image >= 0 ? c->pixels + (size_t)c->e[e].image * c->image_floats : NULL;
    CHECK(s->n <= 64 && llava_forward(m, ops_cpu(1), s->ids, mask, 1, s->n, px, px != NULL) == 0);
    double sum = 0;
    for (size_t j = s->prompt_len; j < s->n; j++) {
        const float *l = m->a.logits + (j - 1) * VOCAB;
        double mx = l[0], z = 0;
        for (size_t k = 1; k < VOCAB; k++)
            mx = l[k] > mx ? l[k] : mx;
        for (size_t k = 0; k < VOCAB; k++)
            z += exp((double)l[k] - mx);
        sum += (double)l[s->ids[j]] - mx - log(z);
    }
    return sum;
}

static void test_likelihood(void) {
    struct mcq_cloze z;
    test_cloze_text();
    test_cloze_corpus(&z);
    struct llava m;
    /* batches of 4 rows: the 13 options cut across items, and the last batch is short */
    CHECK(llava_init_random(&m, &w.cfg, 13, 1.0f, 4, z.cp.maxlen) == 0);
    float got[13], got2[13], feat[13];
    double want[13], worst = 0;
    struct mcq_result r[4], r2[4], rf[4];
    for (int j = 0; j < 4; j++)
        r[j] = r2[j] = rf[j] = (struct mcq_result){-9, -9, -9};
    CHECK(mcq_likelihood(&m, ops_cpu(1), &z, got, r) == 0);
    CHECK(mcq_likelihood(&m, ops_cpu(2), &z, got2, r2) == 0);
    CHECK(memcmp(got, got2, sizeof got) == 0); /* the same bits on any thread count */
    for (size_t e = 0; e < z.cp.n; e++) {
        want[e] = alone(&m, &z.cp, e);
        double d = fabs(got[e] - want[e]) / (1 + fabs(want[e]));
        worst = d > worst ? d : worst;
    }
    CHECK(worst < 1e-5);
    double margin = INFINITY;
    for (size_t j = 0; j < 4; j++) {
        size_t best = z.first[j];
        for (size_t e = best + 1; e < z.first[j + 1]; e++)
            best = want[e] > want[best] ? e : best;
        for (size_t e = z.first[j]; e < z.first[j + 1]; e++)
            if (e != best && want[best] - want[e] < margin)
                margin = want[best] - want[e];
        CHECK(r[j].likelihood == (int)(best - z.first[j]) && r2[j].likelihood == r[j].likelihood);
        CHECK(r[j].greedy == -9 && r[j].option == -9); /* only the likelihood is written */
        printf("l%zu: likelihood winner %d\n", j, r[j].likelihood);
    }
    CHECK(margin > 1e-3);
    CHECK(corpus_features(&z.cp, &m, ops_cpu(2)) == 0);
    CHECK(mcq_likelihood(&m, ops_cpu(2), &z, feat, rf) == 0);
    double fworst = 0;
    for (size_t e = 0; e < z.cp.n; e++) {
        double d = fabs(feat[e] - want[e]) / (1 + fabs(want[e]));
        fworst = d > fworst ? d : fworst;
    }
    CHECK(fworst < 1e-5);
    for (int j = 0; j < 4; j++)
        CHECK(rf[j].likelihood == r[j].likelihood);
    printf("likelihood: batched = alone within %.2g (features %.2g), smallest margin %.4f\n", worst, fworst,
           margin);

    /* lm_head zero: every logit 0, every token log(1/V): the fewest answer tokens win, the first of equals */
    memset(m.p.lm_head, 0, (size_t)VOCAB * (size_t)w.cfg.text.hidden * sizeof(float));
    CHECK(mcq_likelihood(&m, ops_cpu(1), &z, got, r) == 0);
    CHECK(got[0] == got[1] && got[1] == got[2] && got[2] == got[3] && r[0].likelihood == 0);
    CHECK(got[4] > got[5] && r[1].likelihood == 0); /* "Dog" is one token shorter than "Bob Dog" */
    CHECK(r[2].likelihood == 0 && r[3].likelihood == 0);
    CHECK(fabs(got[4] + 2 * log(VOCAB)) < 1e-4); /* "Dog" and </s> */
    llava_free(&m);
    mcq_cloze_free(&z);
}

/* The statement field: read, written back canonically, refused without exactly one "{}". */
static void test_statement_field(void) {
    static const char good[] =
        "{\"answer\":\"B\",\"category\":\"c\",\"id\":\"q\",\"image\":null,\"modality\":\"text\","
        "\"options\":[\"x\",\"y\"],\"person\":null,\"prompt\":\"p\",\"question\":\"q?\",\"set\":"
        "\"general\",\"split\":\"eval\",\"statement\":\"It is {}.\"}\n";
    struct ds_items it = {0};
    CHECK(ds_read_items(good, strlen(good), "items", &it) == 0 && it.n == 1);
    CHECK_STR(it.n ? it.v[0].statement : NULL, "It is {}.");
    struct buf out = {0};
    CHECK(it.n && ds_write_item(&out, &it.v[0]) == 0);
    CHECK(out.data && out.len == strlen(good) && memcmp(out.data, good, out.len) == 0);
    buf_free(&out);
    ds_items_free(&it);
    static const struct {
        const char *statement, *what;
    } bad[] = {{"It is.", "'It is.'"}, {"{} or {}", "'{} or {}'"}, {"{ }", "'{ }'"}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char text[1024], *at = strstr(good, "It is {}.");
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - good), good, bad[k].statement, at + 9);
        struct ds_items no = {0};
        CHECK(ds_read_items(text, strlen(text), "items", &no) == -1);
        CHECK_HAS(err_msg(), "items line 1: field 'statement' must hold \"{}\" exactly once");
        CHECK_HAS(err_msg(), bad[k].what);
        ds_items_free(&no);
    }
    /* an item without a statement is written without the field */
    static struct ds_item plain_v[] = {{.id = "q",
                                        .set = "general",
                                        .modality = "text",
                                        .category = "c",
                                        .question = "q?",
                                        .prompt = "p",
                                        .split = "eval",
                                        .options = {"x", "y"},
                                        .noptions = 2,
                                        .answer = 1}};
    CHECK(ds_write_item(&out, &plain_v[0]) == 0 && out.data && !strstr(out.data, "statement"));
    buf_free(&out);
}

int main(void) {
    size_t n = 0;
    w.tok = make_tokenizer(NULL);
    w.tar = make_tar(&n);
    CHECK(w.tok && w.tar && ds_images_open(w.tar, n, "images", &w.im) == 0);
    CHECK(make_config(&w.cfg) == 0);
    if (w.tok && w.im) {
        test_against_alone();
        test_letters();
        test_missing_letter();
        test_likelihood();
    }
    test_statement_field();
    ds_images_free(w.im);
    free(w.tar);
    tokenizer_free(w.tok);
    return check_done("test_engine_mcq");
}

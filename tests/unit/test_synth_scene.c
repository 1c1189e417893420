/* Tests PULSE-Synth's general suite: every answer follows from the scene (recomputed here from the objects,
 * and the objects checked against the drawn pixels), prompts have MMBench's shape, letters are balanced, the
 * split and the training examples (the cloze of likelihood scoring, answered by the statement) are as
 * documented, and the suite is the same bytes every time (parameter
 * ranges are the kind's to check: test_synth_kind). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/dataset.h"
#include "stages/synth.h"
#include "util/buf.h"

/* Exported by stages/synth_scene.c for this test. */
int scene_layout(uint64_t seed, size_t index, int *n, int shape[5], int colour[5], int large[5], float x[5],
                 float y[5]);

static const char *const SHAPES[] = {"circle", "square", "triangle", "diamond", "cross"};
static const char *const PLURALS[] = {"circles", "squares", "triangles", "diamonds", "crosses"};
static const char *const COLOURS[] = {"red", "green", "blue", "yellow", "purple", "orange", "white", "black"};

struct layout {
    int n, shape[5], colour[5], large[5];
    float x[5], y[5];
};

struct suite {
    char *items, *pretrain;
    void *tar;
    size_t ntar;
};

static int make_suite(uint64_t seed, int size, int eval, int train, struct suite *out) {
    struct synth_params p = {.seed = seed, .image_size = size, .general_eval = eval, .general_train = train};
    struct synth_world w = {0};
    memset(out, 0, sizeof *out);
    w.images = ds_tar_new();
    int rc = scene_suite(&p, &w);
    if (rc == 0)
        rc = ds_tar_finish(w.images, &out->tar, &out->ntar);
    else
        ds_tar_free(w.images);
    out->items = buf_take(&w.items);
    out->pretrain = buf_take(&w.pretrain);
    return rc;
}

static void suite_free(struct suite *s) {
    free(s->items);
    free(s->pretrain);
    free(s->tar);
}

/* Which object answers to "<colour> <shape>" (-1 if none or several). */
static int find(const struct layout *l, const char *desc) {
    int hit = -1;
    for (int j = 0; j < l->n; j++) {
        char buf[40];
        snprintf(buf, sizeof buf, "%s %s", COLOURS[l->colour[j]], SHAPES[l->shape[j]]);
        if (strcmp(buf, desc) == 0)
            hit = hit < 0 ? j : -2;
    }
    return hit < 0 ? -1 : hit;
}

static int index_of(const char *const *names, int n, const char *s, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && strncmp(names[i], s, len) == 0)
            return i;
    return -1;
}

/* The one object whose attribute (colour or shape) differs from all the others', or -1. */
static int odd_one(const struct layout *l, const int *attr) {
    int odd = -1;
    for (int j = 0; j < l->n; j++) {
        int same = 0;
        for (int k = 0; k < l->n; k++)
            same += k != j && attr[k] == attr[j];
        if (same == 0)
            odd = odd < 0 ? j : -2;
    }
    return odd < 0 ? -1 : odd;
}

/* The extreme object in a direction ("left", "right", "top", "bottom"). */
static int extreme(const struct layout *l, const char *dir) {
    int best = 0;
    for (int j = 1; j < l->n; j++) {
        float a = l->x[j], b = l->x[best];
        if (!strcmp(dir, "top") || !strcmp(dir, "bottom"))
            a = l->y[j], b = l->y[best];
        int more = !strcmp(dir, "left") || !strcmp(dir, "top") ? a < b : a > b;
        best = more ? j : best;
    }
    return best;
}

static void describe(const struct layout *l, int j, char *out) {
    if (j < 0)
        strcpy(out, "?");
    else
        sprintf(out, "%s %s", COLOURS[l->colour[j]], SHAPES[l->shape[j]]);
}

/* The answer text the scene implies for this question, into out ("?" when it cannot tell). */
static void expected(const struct layout *l, const char *q, char *out) {
    char a[40] = "", b[40] = "";
    int k = -1, count = 0;
    strcpy(out, "?");
    if (!strcmp(q, "What shape is the object?") && l->n == 1)
        strcpy(out, SHAPES[l->shape[0]]);
    else if (!strcmp(q, "What colour is the object?") && l->n == 1)
        strcpy(out, COLOURS[l->colour[0]]);
    else if (!strncmp(q, "What shape is the ", 18)) {
        int c = index_of(COLOURS, 8, q + 18, strcspn(q + 18, " "));
        for (int j = 0; j < l->n; j++)
            if (l->colour[j] == c)
                k = k < 0 ? j : -2, count++;
        if (count == 1)
            strcpy(out, SHAPES[l->shape[k]]);
    } else if (!strncmp(q, "What colour is the ", 19)) {
        int s = index_of(SHAPES, 5, q + 19, strcspn(q + 19, "?"));
        for (int j = 0; j < l->n; j++)
            if (l->shape[j] == s)
                k = j, count++;
        if (count == 1)
            strcpy(out, COLOURS[l->colour[k]]);
    } else if (!strcmp(q, "How many objects are there?"))
        sprintf(out, "%d", l->n);
    else if (!strncmp(q, "How many ", 9)) {
        int s = index_of(PLURALS, 5, q + 9, strcspn(q + 9, " "));
        for (int j = 0; j < l->n; j++)
            count += l->shape[j] == s;
        if (s >= 0)
            sprintf(out, "%d", count);
    } else if (!strcmp(q, "Which object is on the far left?"))
        describe(l, extreme(l, "left"), out);
    else if (!strcmp(q, "Which object is on the far right?"))
        describe(l, extreme(l, "right"), out);
    else if (!strcmp(q, "Which object is closest to the top?"))
        describe(l, extreme(l, "top"), out);
    else if (!strcmp(q, "Which object is closest to the bottom?"))
        describe(l, extreme(l, "bottom"), out);
    else if (!strncmp(q, "Which is larger, the ", 21) && strstr(q, " or the ")) {
        const char * or = strstr(q, " or the ");
        snprintf(a, sizeof a, "%.*s", (int)(or -(q + 21)), q + 21);
        snprintf(b, sizeof b, "%.*s", (int)strcspn(or +8, "?"), or +8);
        int i = find(l, a), j = find(l, b);
        if (i >= 0 && j >= 0 && l->large[i] != l->large[j])
            strcpy(out, l->large[i] ? a : b);
    } else if (!strcmp(q, "Which object is the largest?")) {
        for (int j = 0; j < l->n; j++)
            if (l->large[j])
                k = j, count++;
        if (count == 1)
            describe(l, k, out);
    } else if (!strcmp(q, "Which object has a different colour from the others?")) {
        k = odd_one(l, l->colour);
        if (k >= 0)
            strcpy(out, SHAPES[l->shape[k]]);
    } else if (!strcmp(q, "Which object has a different shape from the others?")) {
        k = odd_one(l, l->shape);
        if (k >= 0)
            strcpy(out, COLOURS[l->colour[k]]);
    }
}

static void check_prompt(const struct ds_item *it) {
    struct buf want = {0};
    buf_printf(&want,
               "<image>\n%s\nA. %s\nB. %s\nC. %s\nD. %s\nAnswer with the option's letter from the given "
               "choices directly.",
               it->question, it->options[0], it->options[1], it->options[2], it->options[3]);
    CHECK_STR(it->prompt, want.data);
    buf_free(&want);
}

/* Objects drawn: 4-connected regions of pixels that are not the background (the corner's colour). */
static int count_regions(const struct image *im) {
    int w = im->w, h = im->h, regions = 0;
    int *stack = malloc(sizeof(int) * (size_t)(w * h));
    unsigned char *seen = calloc((size_t)(w * h), 1);
    for (int s = 0; s < w * h; s++) {
        if (seen[s] || !memcmp(im->rgb + 3 * s, im->rgb, 3))
            continue;
        regions++;
        int top = 0;
        stack[top++] = s;
        seen[s] = 1;
        while (top) {
            int p = stack[--top], x = p % w, y = p / w;
            int nb[4] = {x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1,
                         y < h - 1 ? p + w : -1};
            for (int k = 0; k < 4; k++)
                if (nb[k] >= 0 && !seen[nb[k]] && memcmp(im->rgb + 3 * nb[k], im->rgb, 3)) {
                    seen[nb[k]] = 1;
                    stack[top++] = nb[k];
                }
        }
    }
    free(stack);
    free(seen);
    return regions;
}

#define SEED 11
#define EVAL 400
#define TRAIN 200

static void test_items(void) {
    struct suite s;
    CHECK(make_suite(SEED, 32, EVAL, TRAIN, &s) == 0);
    struct ds_items items = {0};
    CHECK(ds_read_items(s.items, strlen(s.items), "items", &items) == 0);
    CHECK(items.n == EVAL + TRAIN);
    int letters[4] = {0, 0, 0, 0}, wrong = 0, dup_options = 0, bad_fields = 0, ncat = 0;
    const char *cats[6] = {"shape", "colour", "count", "position", "size", "odd_one_out"};
    int per_cat[6] = {0};
    for (size_t i = 0; i < items.n; i++) {
        const struct ds_item *it = &items.v[i];
        char id[32], want[40];
        snprintf(id, sizeof id, "g%05zu", i);
        bad_fields += strcmp(it->id, id) || strcmp(it->set, "general") || it->person ||
                      strcmp(it->modality, "image") || !it->image || strcmp(it->image, id) ||
                      strcmp(it->split, i < EVAL ? "eval" : "train") || it->noptions != 4;
        check_prompt(it);
        for (int a = 0; a < 4; a++)
            for (int b = a + 1; b < 4; b++)
                dup_options += !strcmp(it->options[a], it->options[b]);
        if (i < EVAL)
            letters[it->answer]++;
        for (int c = 0; c < 6; c++)
            per_cat[c] += !strcmp(it->category, cats[c]);
        struct layout l;
        CHECK(scene_layout(SEED, i, &l.n, l.shape, l.colour, l.large, l.x, l.y) == 0);
        expected(&l, it->question, want);
        if (strcmp(want, it->options[it->answer]) != 0 && wrong++ < 5)
            fprintf(stderr, "%s: '%s' answered '%s', the scene says '%s'\n", it->id, it->question,
                    it->options[it->answer], want);
    }
    for (int c = 0; c < 6; c++)
        ncat += per_cat[c] > 0;
    printf("letters over %d eval items: A %d, B %d, C %d, D %d\n", EVAL, letters[0], letters[1], letters[2],
           letters[3]);
    CHECK(bad_fields == 0);
    CHECK(dup_options == 0);
    CHECK(wrong == 0);
    CHECK(ncat == 6 &&
          per_cat[0] + per_cat[1] + per_cat[2] + per_cat[3] + per_cat[4] + per_cat[5] == EVAL + TRAIN);
    for (int a = 0; a < 4; a++)
        CHECK(letters[a] >= EVAL * 9 / 40 && letters[a] <= EVAL * 11 / 40);

    struct ds_examples ex = {0};
    CHECK(ds_read_examples(s.pretrain, strlen(s.pretrain), "pretrain", &ex) == 0);
    CHECK(ex.n == TRAIN);
    int bad_ex = 0;
    for (size_t i = 0; i < ex.n && items.n == EVAL + TRAIN; i++) {
        const struct ds_item *it = &items.v[EVAL + i];
        char id[24];
        snprintf(id, sizeof id, "pt-%s", it->id);
        /* the cloze likelihood scoring reads (engine/mcq.c mcq_cloze_prompt and mcq_cloze_answer), written
         * out here so that a change there shows as a change of the world */
        struct buf prompt = {0}, answer = {0};
        const char *at = it->statement ? strstr(it->statement, "{}") : NULL;
        buf_printf(&prompt, "USER: <image>\n%s\nASSISTANT:", it->question);
        if (at)
            buf_printf(&answer, "%.*s%s%s", (int)(at - it->statement), it->statement, it->options[it->answer],
                       at + 2);
        int bad = !at || strcmp(ex.v[i].id, id) || strcmp(ex.v[i].image, it->id) ||
                  strcmp(ex.v[i].prompt, prompt.data) || strcmp(ex.v[i].answer, answer.data) ||
                  ex.v[i].person || strcmp(ex.v[i].source, "general");
        if (bad && bad_ex++ < 3)
            fprintf(stderr, "%s: prompt '%s' answer '%s'\n", ex.v[i].id, ex.v[i].prompt, ex.v[i].answer);
        buf_free(&prompt);
        buf_free(&answer);
    }
    CHECK(bad_ex == 0);
    ds_examples_free(&ex);
    ds_items_free(&items);
    suite_free(&s);
}

/* At 64 pixels every object is its own region of the picture, as many as the layout says. */
static void test_pixels(void) {
    struct suite s;
    int n = 150;
    CHECK(make_suite(SEED, 64, n, 0, &s) == 0);
    struct ds_images *im = NULL;
    CHECK(ds_images_open(s.tar, s.ntar, "images", &im) == 0);
    CHECK(im && ds_images_count(im) == (size_t)n);
    int mismatch = 0;
    for (int i = 0; im && i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "g%05d", i);
        struct image pic;
        struct layout l;
        CHECK(ds_images_decode(im, id, &pic) == 0);
        CHECK(scene_layout(SEED, (size_t)i, &l.n, l.shape, l.colour, l.large, l.x, l.y) == 0);
        mismatch += pic.w != 64 || count_regions(&pic) != l.n;
        image_free(&pic);
    }
    CHECK(mismatch == 0);
    ds_images_free(im);
    suite_free(&s);
}

static void test_determinism(void) {
    struct suite a, b, c;
    CHECK(make_suite(3, 32, 40, 20, &a) == 0);
    CHECK(make_suite(3, 32, 40, 20, &b) == 0);
    CHECK(make_suite(4, 32, 40, 20, &c) == 0);
    CHECK(!strcmp(a.items, b.items) && !strcmp(a.pretrain, b.pretrain));
    CHECK(a.ntar == b.ntar && !memcmp(a.tar, b.tar, a.ntar));
    CHECK(strcmp(a.items, c.items) != 0);
    suite_free(&a);
    suite_free(&b);
    suite_free(&c);
}

int main(void) {
    test_items();
    test_pixels();
    test_determinism();
    return check_done("test_synth_scene");
}

/* synth_scene: PULSE-Synth's general suite, the MMBench stand-in: procedurally drawn scenes of simple shapes
 * and four-option questions about them (shape, colour, count, position, size, odd one out). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mcq.h"
#include "stages/synth.h"
#include "util/err.h"

enum { SHAPE_CIRCLE, SHAPE_SQUARE, SHAPE_TRIANGLE, SHAPE_DIAMOND, SHAPE_CROSS, N_SHAPES };
enum { N_COLOURS = 8, N_SCENE_BGS = 4, MAX_OBJECTS = 5 };

static const char *const SHAPES[N_SHAPES] = {"circle", "square", "triangle", "diamond", "cross"};
static const char *const SHAPES_PLURAL[N_SHAPES] = {"circles", "squares", "triangles", "diamonds", "crosses"};
static const char *const COLOURS[N_COLOURS] = {"red",    "green",  "blue",  "yellow",
                                               "purple", "orange", "white", "black"};
static const uint8_t COLOUR_RGB[N_COLOURS][3] = {
    {220, 40, 40},  {40, 170, 60},  {40, 80, 220},   {240, 215, 40},
    {140, 60, 180}, {245, 140, 30}, {250, 250, 250}, {15, 15, 15},
};
/* Neutral backgrounds: no object colour is ever the background's. */
static const uint8_t SCENE_BG[N_SCENE_BGS][3] = {
    {128, 128, 128}, {100, 112, 128}, {150, 140, 118}, {84, 100, 90}};

#define R_SMALL 0.1f /* object radius, in fractions of the image side */
#define R_LARGE 0.165f
#define R_BOUND 1.2f  /* every shape lies within R_BOUND radii of its centre */
#define GAP 0.03f     /* at least this much space between two objects' bounding circles */
#define EXTREME 0.12f /* the object a position question asks about leads the next one by this much */
#define MAX_ATTEMPTS 1000
#define SS 4

struct obj {
    int shape, colour, large;
    float x, y; /* centre, in fractions of the image side, y down */
};

struct scene {
    int n, bg;
    struct obj o[MAX_OBJECTS];
};

struct question {
    const char *category;
    char text[128];
    /* the answer as a sentence, "{}" where the option goes (likelihood scoring); worded only with words the
     * world's text already has, so that the tokenizer, and every model trained on it, stay as they were */
    char statement[128];
    char opt[4][40]; /* opt[0] is the answer; the rest are distractors */
    int nopt;
};

static float radius(const struct obj *o) {
    return o->large ? R_LARGE : R_SMALL;
}

static void describe(const struct obj *o, char *out, size_t cap) {
    snprintf(out, cap, "%s %s", COLOURS[o->colour], SHAPES[o->shape]);
}

/* Adds an option unless it is already there or the list is full. */
static void add_opt(struct question *q, const char *s) {
    if (q->nopt >= 4)
        return;
    for (int i = 0; i < q->nopt; i++)
        if (strcmp(q->opt[i], s) == 0)
            return;
    snprintf(q->opt[q->nopt++], sizeof q->opt[0], "%s", s);
}

static void add_names(struct synth_draw *d, struct question *q, const char *const *names, int n) {
    int order[N_COLOURS];
    synth_permutation(d, order, n);
    for (int i = 0; i < n; i++)
        add_opt(q, names[order[i]]);
}

/* Pads with descriptions of objects that are not in the scene. */
static void add_absent(struct synth_draw *d, struct question *q, const struct scene *s) {
    while (q->nopt < 4) {
        struct obj o = {.shape = synth_below(d, N_SHAPES), .colour = synth_below(d, N_COLOURS)};
        int present = 0;
        for (int j = 0; j < s->n; j++)
            present |= s->o[j].shape == o.shape && s->o[j].colour == o.colour;
        char buf[40];
        describe(&o, buf, sizeof buf);
        if (!present)
            add_opt(q, buf);
    }
}

/* Objects j of the scene with (shape, colour) pairs all different; sizes random, at most two large ones when
 * the scene is crowded (so five objects always fit). */
static void distinct_objects(struct synth_draw *d, struct scene *s, int n) {
    s->n = n;
    for (int j = 0; j < n; j++) {
        int dup;
        do {
            s->o[j].shape = synth_below(d, N_SHAPES);
            s->o[j].colour = synth_below(d, N_COLOURS);
            dup = 0;
            for (int k = 0; k < j; k++)
                dup |= s->o[k].shape == s->o[j].shape && s->o[k].colour == s->o[j].colour;
        } while (dup);
    }
}

static void random_sizes(struct synth_draw *d, struct scene *s) {
    int nlarge = 0;
    for (int j = 0; j < s->n; j++) {
        s->o[j].large = synth_below(d, 2) && (s->n < 4 || nlarge < 2);
        nlarge += s->o[j].large;
    }
}

/* Non-overlapping random positions; -1 when this attempt did not find room. */
static int place(struct synth_draw *d, struct scene *s) {
    for (int j = 0; j < s->n; j++) {
        float rb = radius(&s->o[j]) * R_BOUND, lo = rb + GAP, span = 1.0f - 2 * lo;
        int ok = 0;
        for (int t = 0; t < 100 && !ok; t++) {
            s->o[j].x = lo + span * synth_uniform(d);
            s->o[j].y = lo + span * synth_uniform(d);
            ok = 1;
            for (int k = 0; k < j; k++) {
                float dx = s->o[j].x - s->o[k].x, dy = s->o[j].y - s->o[k].y;
                float need = rb + radius(&s->o[k]) * R_BOUND + GAP;
                ok &= dx * dx + dy * dy >= need * need;
            }
        }
        if (!ok)
            return -1;
    }
    return 0;
}

static int q_shape(struct synth_draw *d, struct scene *s, struct question *q) {
    int n = 1 + synth_below(d, 3), col[N_COLOURS];
    synth_permutation(d, col, N_COLOURS);
    s->n = n;
    for (int j = 0; j < n; j++)
        s->o[j] = (struct obj){.shape = synth_below(d, N_SHAPES), .colour = col[j]};
    random_sizes(d, s);
    q->category = "shape";
    if (n == 1) {
        snprintf(q->text, sizeof q->text, "What shape is the object?");
        snprintf(q->statement, sizeof q->statement, "The object is a {}.");
    } else {
        snprintf(q->text, sizeof q->text, "What shape is the %s object?", COLOURS[s->o[0].colour]);
        snprintf(q->statement, sizeof q->statement, "The %s object is a {}.", COLOURS[s->o[0].colour]);
    }
    for (int j = 0; j < n; j++)
        add_opt(q, SHAPES[s->o[j].shape]);
    add_names(d, q, SHAPES, N_SHAPES);
    return place(d, s);
}

static int q_colour(struct synth_draw *d, struct scene *s, struct question *q) {
    int n = 1 + synth_below(d, 3), shp[N_SHAPES];
    synth_permutation(d, shp, N_SHAPES);
    s->n = n;
    for (int j = 0; j < n; j++)
        s->o[j] = (struct obj){.shape = shp[j], .colour = synth_below(d, N_COLOURS)};
    random_sizes(d, s);
    q->category = "colour";
    if (n == 1) {
        snprintf(q->text, sizeof q->text, "What colour is the object?");
        snprintf(q->statement, sizeof q->statement, "The object is {}.");
    } else {
        snprintf(q->text, sizeof q->text, "What colour is the %s?", SHAPES[s->o[0].shape]);
        snprintf(q->statement, sizeof q->statement, "The %s is {}.", SHAPES[s->o[0].shape]);
    }
    for (int j = 0; j < n; j++)
        add_opt(q, COLOURS[s->o[j].colour]);
    add_names(d, q, COLOURS, N_COLOURS);
    return place(d, s);
}

/* Number options: the answer, its neighbours, then any of 1..6. */
static void count_options(struct synth_draw *d, struct question *q, int answer) {
    static const char *const NUM[] = {"0", "1", "2", "3", "4", "5", "6"};
    add_opt(q, NUM[answer]);
    if (answer > 1)
        add_opt(q, NUM[answer - 1]);
    if (answer < 6)
        add_opt(q, NUM[answer + 1]);
    add_names(d, q, NUM + 1, 6);
}

static int q_count(struct synth_draw *d, struct scene *s, struct question *q) {
    q->category = "count";
    if (synth_below(d, 3)) {
        s->n = 1 + synth_below(d, MAX_OBJECTS);
        for (int j = 0; j < s->n; j++)
            s->o[j] = (struct obj){.shape = synth_below(d, N_SHAPES), .colour = synth_below(d, N_COLOURS)};
        snprintf(q->text, sizeof q->text, "How many objects are there?");
        snprintf(q->statement, sizeof q->statement, "In all, there are {} objects.");
        count_options(d, q, s->n);
    } else {
        int t = synth_below(d, N_SHAPES), k = 1 + synth_below(d, 3), m = synth_below(d, 3);
        s->n = k + m;
        for (int j = 0; j < s->n; j++) {
            int shape = j < k ? t : (t + 1 + synth_below(d, N_SHAPES - 1)) % N_SHAPES;
            s->o[j] = (struct obj){.shape = shape, .colour = synth_below(d, N_COLOURS)};
        }
        snprintf(q->text, sizeof q->text, "How many %s are there?", SHAPES_PLURAL[t]);
        snprintf(q->statement, sizeof q->statement, "In all, there are {} %s.", SHAPES_PLURAL[t]);
        count_options(d, q, k);
    }
    random_sizes(d, s);
    return place(d, s);
}

/* The coordinate a position question ranks by: larger is "more" left/right/top/bottom. */
static float rank(const struct obj *o, int dir) {
    return dir == 0 ? -o->x : dir == 1 ? o->x : dir == 2 ? -o->y : o->y;
}

static int q_position(struct synth_draw *d, struct scene *s, struct question *q) {
    static const char *const TEXT[] = {
        "Which object is on the far left?", "Which object is on the far right?",
        "Which object is closest to the top?", "Which object is closest to the bottom?"};
    static const char *const STATEMENT[] = {"The {} is on the far left.", "The {} is on the far right.",
                                            "The {} is closest to the top.",
                                            "The {} is closest to the bottom."};
    int dir = synth_below(d, 4);
    distinct_objects(d, s, 2 + synth_below(d, 3));
    random_sizes(d, s);
    if (place(d, s) != 0)
        return -1;
    int best = 0;
    for (int j = 1; j < s->n; j++)
        best = rank(&s->o[j], dir) > rank(&s->o[best], dir) ? j : best;
    for (int j = 0; j < s->n; j++)
        if (j != best && rank(&s->o[best], dir) - rank(&s->o[j], dir) < EXTREME)
            return -1;
    q->category = "position";
    snprintf(q->text, sizeof q->text, "%s", TEXT[dir]);
    snprintf(q->statement, sizeof q->statement, "%s", STATEMENT[dir]);
    char buf[40];
    describe(&s->o[best], buf, sizeof buf);
    add_opt(q, buf);
    for (int j = 0; j < s->n; j++) {
        describe(&s->o[j], buf, sizeof buf);
        add_opt(q, buf);
    }
    add_absent(d, q, s);
    return 0;
}

/* "Which is larger, the X or the Y?": one of the two is large, the other small ("the same size" is only ever
 * a distractor: two shapes of one size class differ in area, so that answer would be a matter of opinion). */
static void size_pair(struct synth_draw *d, struct scene *s, struct question *q) {
    int x_larger = synth_below(d, 2);
    s->o[0].large = x_larger;
    s->o[1].large = !x_larger;
    char x[40], y[40];
    describe(&s->o[0], x, sizeof x);
    describe(&s->o[1], y, sizeof y);
    snprintf(q->text, sizeof q->text, "Which is larger, the %s or the %s?", x, y);
    snprintf(q->statement, sizeof q->statement, "The larger is the {}.");
    add_opt(q, x_larger ? x : y);
    add_opt(q, x);
    add_opt(q, y);
    add_opt(q, "they are the same size");
}

static int q_size(struct synth_draw *d, struct scene *s, struct question *q) {
    distinct_objects(d, s, 2 + synth_below(d, 3));
    q->category = "size";
    for (int j = 0; j < s->n; j++)
        s->o[j].large = 0;
    if (synth_below(d, 2)) {
        for (int j = 2, nlarge = 1; j < s->n; j++) /* one of the pair is large: at most one more */
            nlarge += s->o[j].large = synth_below(d, 2) && nlarge < 2;
        size_pair(d, s, q);
    } else {
        s->o[0].large = 1;
        snprintf(q->text, sizeof q->text, "Which object is the largest?");
        snprintf(q->statement, sizeof q->statement, "The largest object is the {}.");
        char buf[40];
        for (int j = 0; j < s->n; j++) {
            describe(&s->o[j], buf, sizeof buf);
            add_opt(q, buf);
        }
    }
    add_absent(d, q, s);
    return place(d, s);
}

/* All objects share a colour (or a shape) but one; the options name the objects by the other attribute, so
 * the question cannot be answered from the text. */
static int q_odd(struct synth_draw *d, struct scene *s, struct question *q) {
    int n = 3 + synth_below(d, 2), by_colour = synth_below(d, 2), perm[N_COLOURS];
    int base = synth_below(d, by_colour ? N_COLOURS : N_SHAPES);
    int odd = (base + 1 + synth_below(d, (by_colour ? N_COLOURS : N_SHAPES) - 1)) %
              (by_colour ? N_COLOURS : N_SHAPES);
    synth_permutation(d, perm, by_colour ? N_SHAPES : N_COLOURS);
    s->n = n;
    for (int j = 0; j < n; j++) {
        int attr = j == 0 ? odd : base;
        s->o[j] = by_colour ? (struct obj){.shape = perm[j], .colour = attr}
                            : (struct obj){.shape = attr, .colour = perm[j]};
    }
    random_sizes(d, s);
    q->category = "odd_one_out";
    snprintf(q->text, sizeof q->text, "Which object has a different %s from the others?",
             by_colour ? "colour" : "shape");
    /* the options name the objects by the other attribute: shapes ("the circle"), or colours ("the red
     * object") */
    snprintf(q->statement, sizeof q->statement, "%s",
             by_colour ? "The {} has a different colour from the others."
                       : "The {} object has a different shape from the others.");
    for (int j = 0; j < n; j++)
        add_opt(q, by_colour ? SHAPES[s->o[j].shape] : COLOURS[s->o[j].colour]);
    if (by_colour)
        add_names(d, q, SHAPES, N_SHAPES);
    else
        add_names(d, q, COLOURS, N_COLOURS);
    return place(d, s);
}

typedef int (*question_fn)(struct synth_draw *, struct scene *, struct question *);
static const question_fn QUESTIONS[] = {q_shape, q_colour, q_count, q_position, q_size, q_odd};
#define N_CATEGORIES (int)(sizeof QUESTIONS / sizeof QUESTIONS[0])

/* Scene and question of suite item `index`: the category is the item's first draw, then attempts (each with
 * its own counter range) until the objects fit. */
static int scene_make(uint64_t seed, size_t index, struct scene *s, struct question *q) {
    struct synth_draw d = {synth_key(seed, SYNTH_STREAM_SCENE, index), 0};
    int cat = synth_below(&d, N_CATEGORIES);
    for (uint64_t a = 1; a <= MAX_ATTEMPTS; a++) {
        memset(s, 0, sizeof *s);
        memset(q, 0, sizeof *q);
        d.n = a << 16;
        s->bg = synth_below(&d, N_SCENE_BGS);
        if (QUESTIONS[cat](&d, s, q) == 0)
            return 0;
    }
    return err_set("general suite: item %zu: no room for the objects after %d attempts", index, MAX_ATTEMPTS);
}

/* Exported for the tests (not part of synth.h): item `index`'s objects, to recompute answers from. */
int scene_layout(uint64_t seed, size_t index, int *n, int shape[5], int colour[5], int large[5], float x[5],
                 float y[5]) {
    struct scene s;
    struct question q;
    if (scene_make(seed, index, &s, &q) != 0)
        return -1;
    *n = s.n;
    for (int j = 0; j < s.n; j++) {
        shape[j] = s.o[j].shape;
        colour[j] = s.o[j].colour;
        large[j] = s.o[j].large;
        x[j] = s.o[j].x;
        y[j] = s.o[j].y;
    }
    return 0;
}

/* Inside-test in the object's own units (radius 1, y down). */
static int inside(int shape, float x, float y) {
    float ax = x < 0 ? -x : x, ay = y < 0 ? -y : y;
    switch (shape) {
    case SHAPE_CIRCLE:
        return x * x + y * y <= 1;
    case SHAPE_SQUARE:
        return ax <= 0.82f && ay <= 0.82f;
    case SHAPE_TRIANGLE:
        return y <= 0.7f && ax <= (y + 1) * 0.95f / 1.7f;
    case SHAPE_DIAMOND:
        return ax + ay <= 1.05f;
    default:
        return (ax <= 0.32f && ay <= 1) || (ay <= 0.32f && ax <= 1);
    }
}

/* The pixel columns and rows an object's bounding square may touch, a pixel to spare for rounding: pixels
 * outside every object's are plain background, and most pixels are. */
static void pixel_box(const struct obj *o, float side, int box[4]) {
    float b = radius(o) * R_BOUND;
    box[0] = (int)((o->x - b) * side) - 1;
    box[1] = (int)((o->x + b) * side) + 1;
    box[2] = (int)((o->y - b) * side) - 1;
    box[3] = (int)((o->y + b) * side) + 1;
}

/* Averages SS x SS samples of pixel (px, py) over the objects that may touch it. */
static void scene_pixel(const struct scene *s, float side, int box[][4], int px, int py, uint8_t *out) {
    int near[MAX_OBJECTS], nn = 0, acc[3] = {0, 0, 0};
    for (int j = 0; j < s->n; j++)
        if (px >= box[j][0] && px <= box[j][1] && py >= box[j][2] && py <= box[j][3])
            near[nn++] = j;
    for (int sub = 0; sub < SS * SS && nn; sub++) {
        float u = ((float)px + ((float)(sub % SS) + 0.5f) / SS) / side;
        float v = ((float)py + ((float)(sub / SS) + 0.5f) / SS) / side;
        const uint8_t *c = SCENE_BG[s->bg];
        for (int k = 0; k < nn; k++) {
            const struct obj *o = &s->o[near[k]];
            float r = radius(o), dx = u - o->x, dy = v - o->y, b = r * R_BOUND;
            if (dx > -b && dx < b && dy > -b && dy < b && inside(o->shape, dx / r, dy / r))
                c = COLOUR_RGB[o->colour];
        }
        for (int k = 0; k < 3; k++)
            acc[k] += c[k];
    }
    for (int k = 0; k < 3; k++)
        out[k] = nn ? (uint8_t)((acc[k] + SS * SS / 2) / (SS * SS)) : SCENE_BG[s->bg][k];
}

static void scene_draw(const struct scene *s, struct image *im) {
    float side = (float)(im->w < im->h ? im->w : im->h);
    int box[MAX_OBJECTS][4];
    for (int j = 0; j < s->n; j++)
        pixel_box(&s->o[j], side, box[j]);
    for (int py = 0; py < im->h; py++)
        for (int px = 0; px < im->w; px++)
            scene_pixel(s, side, box, px, py, im->rgb + 3 * ((size_t)py * (size_t)im->w + (size_t)px));
}

/* The answer goes to option `letter`; the distractors keep their drawn order around it. */
static void format_prompt(const struct question *q, int letter, char opts[4][40], struct buf *prompt) {
    for (int i = 0, k = 1; i < 4; i++)
        snprintf(opts[i], 40, "%s", i == letter ? q->opt[0] : q->opt[k++]);
    buf_printf(prompt, "<image>\n%s\n", q->text);
    for (int i = 0; i < 4; i++)
        buf_printf(prompt, "%c. %s\n", 'A' + i, opts[i]);
    buf_puts(prompt, "Answer with the option's letter from the given choices directly.");
}

/* A training scene's objects for the tower (docs/synth.md, "Tower labels"): shape, colour, large, and the
 * centre in fractions of the side (y down), at the 4 decimals the 16-bit grid of any image size needs. */
static void scene_label(struct buf *b, const char *id, const struct scene *s) {
    buf_printf(b, "{\"image\":\"%s\",\"objects\":[", id);
    for (int j = 0; j < s->n; j++)
        buf_printf(b, "%s[%d,%d,%d,%.4f,%.4f]", j ? "," : "", s->o[j].shape, s->o[j].colour, s->o[j].large,
                   (double)s->o[j].x, (double)s->o[j].y);
    buf_printf(b, "]}\n");
}

static int emit(const struct synth_params *p, struct synth_world *w, size_t index, int letter, int train,
                int labelled, struct image *im) {
    struct scene s;
    struct question q;
    if (scene_make(p->seed, index, &s, &q) != 0)
        return -1;
    char id[32], ex_id[40], name[40], opts[4][40];
    snprintf(id, sizeof id, "g%05zu", index);
    struct buf prompt = {0};
    format_prompt(&q, letter, opts, &prompt);
    struct ds_item it = {.id = id,
                         .set = "general",
                         .modality = "image",
                         .category = (char *)q.category,
                         .image = id,
                         .question = q.text,
                         .prompt = prompt.data,
                         .split = train ? "train" : "eval",
                         .noptions = 4,
                         .answer = letter,
                         .statement = q.statement};
    for (int i = 0; i < 4; i++)
        it.options[i] = opts[i];
    int rc = ds_write_item(&w->items, &it);
    if (rc == 0 && labelled)
        scene_label(&w->labels, id, &s);
    if (rc == 0 && train) {
        /* The pretraining example is the cloze likelihood scoring reads (engine/mcq.c builds both strings, so
         * they cannot drift apart): the question without its options, the statement with the answer filled
         * in. A letter would teach only the letter, which likelihood scoring never asks for. */
        char *cloze = mcq_cloze_prompt(&it), *sentence = mcq_cloze_answer(&it, letter);
        snprintf(ex_id, sizeof ex_id, "pt-%s", id);
        struct ds_example ex = {
            .id = ex_id, .image = id, .prompt = cloze, .answer = sentence, .source = "general"};
        rc = ds_write_example(&w->pretrain, &ex);
        free(cloze);
        free(sentence);
    }
    buf_free(&prompt);
    void *png = NULL;
    size_t n = 0;
    snprintf(name, sizeof name, "%s.png", id);
    scene_draw(&s, im);
    if (rc == 0)
        rc = image_png_encode(im, &png, &n) == 0 ? ds_tar_add(w->images, name, png, n) : -1;
    free(png);
    return rc;
}

/* The correct letters of `count` items, each letter right equally often (give or take one), from index
 * `stream` of SYNTH_STREAM_SCENE. */
static int *balanced_letters(uint64_t seed, uint64_t stream, int count) {
    int *v = xmalloc(sizeof(int) * (size_t)(count ? count : 1));
    struct synth_draw d = {synth_key(seed, SYNTH_STREAM_SCENE, stream), 0};
    synth_letters(&d, v, count);
    return v;
}

int scene_suite(const struct synth_params *p, struct synth_world *w) {
    /* indices SYNTH_MAX_GENERAL + 1 and + 2 of the scene stream: scenes use 0 .. SYNTH_MAX_GENERAL - 1 */
    int *eval = balanced_letters(p->seed, SYNTH_MAX_GENERAL + 1u, p->general_eval);
    int *train = balanced_letters(p->seed, SYNTH_MAX_GENERAL + 2u, p->general_train);
    struct image im;
    int rc = image_alloc(&im, p->image_size, p->image_size);
    size_t total = (size_t)p->general_eval + (size_t)p->general_train;
    for (size_t i = 0; rc == 0 && i < total; i++) {
        int is_train = i >= (size_t)p->general_eval;
        size_t t = i - (size_t)p->general_eval; /* the training scene's ordinal */
        int letter = is_train ? train[t] : eval[i];
        rc = emit(p, w, i, letter, is_train, is_train && t < (size_t)p->labelled_scenes, &im);
    }
    image_free(&im);
    free(eval);
    free(train);
    return rc;
}

/* test_stages_report: the report kind run as the runner runs it, on a temp store, over metrics objects
 * written here: table cells and which runs each view holds, the single-shot and "before" rows, "-" for a
 * missing set, the CSV's rows, the same bytes for the same inputs in any order, a well-formed SVG with a
 * curve per method per panel, a PNG with the curves where the layout puts them, the bitmap font's table, and
 * one clear line for each kind of malformed input. Metrics without `scoring` (evaluate version 1) and with
 * "letter" show greedy accuracy; a report of likelihood-scored metrics shows their likelihood accuracy in the
 * tables, the CSV's accuracy column, the JSON and the chart, and a report never mixes the two. */
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "engine/image.h"
#include "stages/registry.h"
#include "stages/report.h"
#include "stages/stage.h"
#include "store/object.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"

static char base[] = "/tmp/pulse-test-report-XXXXXX";
static struct store *st;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* A metrics object scored by `scoring` (NULL: no such field, as evaluate version 1 wrote): every set at
 * accuracy g, except `drop` (a set name or NULL). Letter: greedy g, option g / 2; likelihood: likelihood g,
 * greedy g / 4, option g / 2. `extra` is appended inside labels verbatim (",\"seed\":7" or ""). */
static char *metrics_scored(const char *scoring, const char *k, const char *m, const char *s, int round,
                            const char *t, double g, const char *drop, const char *extra) {
    struct buf b = {0};
    int lik = scoring && strcmp(scoring, "likelihood") == 0;
    buf_printf(&b,
               "{\"labels\":{\"knowledge\":\"%s\",\"method\":\"%s\",\"setting\":\"%s\",\"round\":%d,"
               "\"target\":\"%s\"%s},",
               k, m, s, round, t, extra);
    if (scoring)
        buf_printf(&b, "\"scoring\":\"%s\",", scoring);
    buf_puts(&b, "\"sets\":{");
    const char *sep = "";
    for (int c = 0; c < REPORT_NCOLS; c++) {
        if (drop && strcmp(drop, report_col_set[c]) == 0)
            continue;
        buf_printf(&b, "%s\"%s\":{\"items\":40,\"greedy\":%.17g,\"option\":%.17g,", sep, report_col_set[c],
                   lik ? g / 4 : g, g / 2);
        if (lik)
            buf_printf(&b, "\"likelihood\":%.17g,", g);
        buf_puts(&b, "\"unparsed\":1}");
        sep = ",";
    }
    buf_puts(&b, "}}");
    return buf_take(&b);
}

static char *metrics(const char *k, const char *m, const char *s, int round, const char *t, double g,
                     const char *drop, const char *extra) {
    return metrics_scored(NULL, k, m, s, round, t, g, drop, extra);
}

/* The inputs: texts (owned, freed here) put in the store, in order. */
struct inputs {
    char *text[32];
    size_t n;
};

static void add(struct inputs *in, char *text) {
    in->text[in->n++] = text;
}

static void inputs_free(struct inputs *in) {
    for (size_t k = 0; k < in->n; k++)
        free(in->text[k]);
    in->n = 0;
}

/* Runs the kind over the inputs (in the order `order` gives, NULL = as they are); returns its outputs, or
 * NULL with err_msg() saying why. */
static struct json *run_report(const struct inputs *in, const size_t *order, struct json **metrics_out) {
    struct json *params = json_obj(), *inputs = json_obj(), *ids = json_arr();
    json_set(params, "title", json_str("Test <report> & co"));
    for (size_t k = 0; k < in->n; k++) {
        const char *t = in->text[order ? order[k] : k];
        char id[HASH_ID_SIZE];
        CHECK(store_put(st, t, strlen(t), id) == 0);
        json_push(ids, json_str(id));
    }
    json_set(inputs, "metrics", ids);
    struct stage_ctx c = {.name = "report",
                          .kind = registry_find("report"),
                          .params = params,
                          .inputs = inputs,
                          .in = st,
                          .out = st,
                          .outputs = json_obj(),
                          .metrics = json_obj(),
                          .threads = 1,
                          .device = "cpu"};
    int rc = c.kind ? c.kind->run(&c) : -1;
    json_free(params);
    json_free(inputs);
    if (metrics_out)
        *metrics_out = c.metrics;
    else
        json_free(c.metrics);
    if (rc != 0) {
        json_free(c.outputs);
        return NULL;
    }
    return c.outputs;
}

/* An output's bytes (NUL-terminated), or NULL. */
static char *output(const struct json *outs, const char *name, size_t *n) {
    void *data = NULL;
    size_t len = 0;
    const char *id = json_get_str(json_get(outs, name), "id");
    if (!id || store_get(st, id, &data, &len) != 0)
        return NULL;
    if (n)
        *n = len;
    return data;
}

static size_t count(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The full protocol in miniature: both knowledge types, single and sequential runs, both targets. */
static void full_inputs(struct inputs *in) {
    add(in, metrics("finetuned", "none", "single", 0, "proj+llm", 0.9, "general", ""));
    add(in, metrics("finetuned", "ga", "single", 1, "proj+llm", 0.625, NULL, ",\"seed\":7"));
    add(in, metrics_scored("letter", "finetuned", "npo", "single", 1, "proj+llm", 0.7, NULL, ""));
    for (int r = 1; r <= 3; r++) {
        add(in, metrics("finetuned", "ga", "sequential", r, "proj+llm", 0.5, NULL, ""));
        add(in, metrics("finetuned", "npo", "sequential", r, "proj+llm", 0.25, NULL, ""));
    }
    add(in, metrics("pretrained", "none", "single", 0, "proj+llm", 0.8, NULL, ""));
    add(in, metrics("pretrained", "ga", "single", 1, "proj+llm", 0.1, NULL, ""));
    add(in, metrics("pretrained", "ga", "single", 1, "llm", 0.2, NULL, ""));
    add(in, metrics("pretrained", "npo", "single", 1, "proj+llm", 0.3, NULL, ""));
    add(in, metrics("pretrained", "npo", "single", 1, "llm", 0.4, NULL, ""));
    add(in, metrics("pretrained", "ga_klr", "single", 1, "proj+llm", 0.35, NULL, ""));
    add(in, metrics("pretrained", "my-method", "single", 1, "proj+llm", 0.45, NULL, ""));
}

/* The cells of a view's rows, joined: "finetuned/none/before;finetuned/ga/1;...". */
static char *view_cells(const struct json *doc, const char *view) {
    const struct json *rows = json_get(json_get(json_get(doc, "views"), view), "rows");
    struct buf b = {0};
    for (size_t i = 0; rows && i < rows->len; i++) {
        const struct json *cells = json_get(rows->items[i], "cells");
        for (size_t k = 0; cells && k < cells->len; k++)
            buf_printf(&b, "%s%s", k ? "/" : (i ? ";" : ""), cells->items[k]->s);
    }
    return buf_take(&b);
}

static void check_markdown(const char *md) {
    CHECK(md && strncmp(md, "# Test <report> & co\n", 21) == 0);
    CHECK_HAS(md, "\n\nGreedy accuracy in % (the first generated token must be the right letter");
    CHECK_HAS(md, "| knowledge | method | forget MM | forget text | retain MM | retain text | general |");
    CHECK_HAS(md, "| finetuned | none | 90.0 | 90.0 | 90.0 | 90.0 | - |\n");
    CHECK_HAS(md, "| finetuned | ga | 62.5 | 62.5 | 62.5 | 62.5 | 62.5 |\n");
    CHECK_HAS(md, "| finetuned | ga | single-shot | 62.5 |");
    CHECK_HAS(md, "| finetuned | none | before | 90.0 |");
    CHECK_HAS(md, "| finetuned | npo | 3 | 25.0 |");
    CHECK_HAS(md, "| method | target | forget MM | forget text | general |");
    CHECK_HAS(md, "| ga | llm | 20.0 | 20.0 | 20.0 |\n");
    CHECK_HAS(md, "`csv` and `json`");
    /* Sequential rounds (50.0 and 25.0) are not in the first table. */
    const char *t1 = md ? strstr(md, "## Knowledge type x method") : NULL,
               *t2 = md ? strstr(md, "## Sust") : NULL;
    CHECK(t1 && t2 && t1 < t2);
    if (t1 && t2) {
        char *first = strndup(t1, (size_t)(t2 - t1));
        CHECK(!strstr(first, "50.0") && !strstr(first, "25.0") && !strstr(first, "20.0") &&
              !strstr(first, "40.0"));
        CHECK(count(first, "\n| finetuned |") == 3 && count(first, "\n| pretrained |") == 5);
        free(first);
    }
}

static void check_views(const char *json) {
    struct json *doc = json ? json_parse(json, strlen(json)) : NULL;
    CHECK(doc != NULL);
    char *km = view_cells(doc, "knowledge_method"), *sus = view_cells(doc, "sustainability"),
         *abl = view_cells(doc, "ablation");
    CHECK_STR(km, "finetuned/none;finetuned/ga;finetuned/npo;pretrained/none;pretrained/ga;pretrained/ga_klr;"
                  "pretrained/npo;pretrained/my-method");
    CHECK_STR(sus,
              "finetuned/none/before;finetuned/ga/1;finetuned/ga/2;finetuned/ga/3;finetuned/ga/single-shot;"
              "finetuned/npo/1;finetuned/npo/2;finetuned/npo/3;finetuned/npo/single-shot");
    CHECK_STR(abl, "none/proj+llm;ga/proj+llm;ga/llm;npo/proj+llm;npo/llm");
    const struct json *row = json_get(json_get(json_get(doc, "views"), "knowledge_method"), "rows");
    row = row && row->len ? row->items[0] : NULL;
    const struct json *g = json_get(row, "greedy"), *o = json_get(row, "option"),
                      *a = json_get(row, "accuracy"), *l = json_get(row, "likelihood");
    CHECK(g && g->len == 5 && g->items[0]->n == 0.9 && g->items[4]->type == JSON_NULL);
    CHECK(o && o->len == 5 && o->items[0]->n == 0.45);
    CHECK(a && json_equal(a, g)); /* letter: the headline is greedy */
    CHECK(l && l->len == 5 && l->items[0]->type == JSON_NULL);
    CHECK_STR(json_get_str(doc, "scoring"), "letter");
    const struct json *entries = json_get(doc, "entries");
    CHECK(entries && entries->len == 16);
    CHECK_STR(json_get_str(doc, "title"), "Test <report> & co");
    free(km), free(sus), free(abl);
    json_free(doc);
}

static void check_csv(const char *csv) {
    static const char header[] = "knowledge,method,setting,round,target,scoring,set,items,accuracy,greedy,"
                                 "option,likelihood,unparsed,seed\n";
    CHECK(csv && strncmp(csv, header, strlen(header)) == 0);
    CHECK(count(csv, "\n") == 1 + 16 * 5 - 1); /* one set missing in one entry */
    CHECK_HAS(csv, "\nfinetuned,ga,single,1,proj+llm,letter,forget_mm,40,0.625,0.625,0.3125,,1,7\n");
    CHECK_HAS(csv, "\nfinetuned,none,single,0,proj+llm,letter,forget_mm,40,0.9,0.9,0.45,,1,\n");
    const char *first = csv ? strchr(csv, '\n') : NULL;
    CHECK(first && strncmp(first + 1, "finetuned,none,single,0,proj+llm,letter,forget_mm,", 50) == 0);
}

static void check_svg(const char *svg, size_t n) {
    CHECK(svg && strncmp(svg, "<svg ", 5) == 0);
    CHECK(svg && n > 8 && strcmp(svg + n - 7, "</svg>\n") == 0);
    CHECK(count(svg, "<svg") == 1 && count(svg, "</svg>") == 1);
    CHECK(count(svg, "<polyline ") == 2 * REPORT_NCOLS);
    CHECK(count(svg, "<polyline data-method=\"ga\"") == REPORT_NCOLS);
    CHECK(count(svg, "<polyline data-method=\"npo\"") == REPORT_NCOLS);
    CHECK(count(svg, "stroke-dasharray") >= 2 * REPORT_NCOLS);
    CHECK_HAS(svg, "Test &lt;report&gt; &amp; co");
    CHECK_HAS(svg, "y: greedy accuracy");
    CHECK(count(svg, "<text") == count(svg, "</text>"));
}

static int pixel_is(const struct image *im, double x, double y, const uint8_t rgb[3]) {
    int px = (int)(x + 0.5), py = (int)(y + 0.5);
    if (px < 0 || py < 0 || px >= im->w || py >= im->h)
        return 0;
    return memcmp(im->rgb + ((size_t)py * (size_t)im->w + (size_t)px) * 3, rgb, 3) == 0;
}

static void check_png(const void *png, size_t n) {
    struct image im = {0};
    CHECK(png && image_decode(png, n, "report png", &im) == 0);
    CHECK(im.w == REPORT_WIDTH && im.h == report_chart_height(1) && im.h == 300);
    uint8_t ga[3], npo[3], white[3] = {255, 255, 255};
    report_method_colour("ga", ga);
    report_method_colour("npo", npo);
    for (int panel = 0; im.rgb && panel < REPORT_NCOLS; panel++) {
        /* Halfway between rounds 1 and 2: ga flat at 50 %, npo at 25 %. */
        double x = (report_x(panel, 1, 3) + report_x(panel, 2, 3)) / 2;
        CHECK(pixel_is(&im, x, report_y(0, 0.5), ga));
        CHECK(pixel_is(&im, x, report_y(0, 0.25), npo));
        CHECK(pixel_is(&im, x, report_y(0, 0.4), white));
    }
    CHECK(im.rgb && pixel_is(&im, 2, 2, white));
    image_free(&im);
}

static void check_full(void) {
    struct inputs in = {0};
    full_inputs(&in);
    struct json *m = NULL, *outs = run_report(&in, NULL, &m);
    if (!outs)
        fprintf(stderr, "report: %s\n", err_msg());
    CHECK(outs && outs->len == 5);
    CHECK_STR(json_get_str(json_get(outs, "markdown"), "type"), "text");
    CHECK_STR(json_get_str(json_get(outs, "json"), "type"), "json");
    CHECK_STR(json_get_str(json_get(outs, "png"), "type"), "png");
    double entries = 0;
    CHECK(json_get_num(m, "entries", &entries) == 0 && entries == 16);
    size_t nsvg = 0, npng = 0;
    char *md = output(outs, "markdown", NULL), *csv = output(outs, "csv", NULL),
         *js = output(outs, "json", NULL), *svg = output(outs, "svg", &nsvg),
         *png = output(outs, "png", &npng);
    check_markdown(md);
    check_views(js);
    check_csv(csv);
    check_svg(svg, nsvg);
    check_png(png, npng);
    /* Same inputs in reverse order: the same bytes for every output. */
    size_t order[32];
    for (size_t k = 0; k < in.n; k++)
        order[k] = in.n - 1 - k;
    struct json *again = run_report(&in, order, NULL);
    CHECK(outs && again && json_equal(outs, again));
    free(md), free(csv), free(js), free(svg), free(png);
    json_free(outs), json_free(again), json_free(m);
    inputs_free(&in);
}

/* Only single runs: every view but the first empty or short, and a chart that says so. */
static void check_no_sequential(void) {
    struct inputs in = {0};
    add(&in, metrics("finetuned", "ga", "single", 1, "proj+llm", 0.5, NULL, ""));
    struct json *outs = run_report(&in, NULL, NULL);
    size_t nsvg = 0, npng = 0;
    char *md = output(outs, "markdown", NULL), *svg = output(outs, "svg", &nsvg),
         *png = output(outs, "png", &npng);
    CHECK_HAS(md, "## Sustainability\n\nNo sequential runs (target proj+llm).\n");
    CHECK_HAS(md, "## Ablation: update target\n\nNo pretrained-knowledge runs of none or ga.\n");
    CHECK(svg && strncmp(svg, "<svg ", 5) == 0 && strcmp(svg + nsvg - 7, "</svg>\n") == 0);
    CHECK_HAS(svg, ">no sequential runs</text>");
    CHECK(count(svg, "<polyline") == 0);
    struct image im = {0};
    CHECK(png && image_decode(png, npng, "png", &im) == 0 && im.w == REPORT_WIDTH && im.h == 300);
    image_free(&im);
    free(md), free(svg), free(png);
    json_free(outs);
    inputs_free(&in);
}

/* No inputs at all: every view says it is empty, the CSV is its header, the chart says there is nothing. */
static void check_empty(void) {
    struct inputs in = {0};
    struct json *m = NULL, *outs = run_report(&in, NULL, &m);
    double entries = -1;
    CHECK(outs && outs->len == 5 && json_get_num(m, "entries", &entries) == 0 && entries == 0);
    char *md = output(outs, "markdown", NULL), *csv = output(outs, "csv", NULL),
         *svg = output(outs, "svg", NULL);
    CHECK_HAS(md, "## Knowledge type x method\n\nNo single-shot runs");
    CHECK(md && count(md, "|") == 0);
    CHECK(csv && count(csv, "\n") == 1);
    CHECK_HAS(svg, ">no sequential runs</text>");
    free(md), free(csv), free(svg);
    json_free(outs), json_free(m);
}

/* Likelihood-scored metrics: the tables, the CSV's accuracy, the JSON's and the chart's values are the
 * likelihood accuracies (greedy is a quarter of them here, so a greedy number would show). */
static void check_likelihood(void) {
    struct inputs in = {0};
    add(&in, metrics_scored("likelihood", "finetuned", "none", "single", 0, "proj+llm", 0.8, "general", ""));
    add(&in, metrics_scored("likelihood", "finetuned", "ga", "single", 1, "proj+llm", 0.4, NULL, ""));
    for (int r = 1; r <= 3; r++)
        add(&in, metrics_scored("likelihood", "finetuned", "ga", "sequential", r, "proj+llm", 0.5, NULL, ""));
    struct json *outs = run_report(&in, NULL, NULL);
    if (!outs)
        fprintf(stderr, "report: %s\n", err_msg());
    size_t npng = 0;
    char *md = output(outs, "markdown", NULL), *csv = output(outs, "csv", NULL),
         *js = output(outs, "json", NULL), *svg = output(outs, "svg", NULL),
         *png = output(outs, "png", &npng);
    CHECK_HAS(md, "\n\nLikelihood accuracy in % (each option written into the answer sentence");
    CHECK_HAS(md, "| finetuned | none | 80.0 | 80.0 | 80.0 | 80.0 | - |\n");
    CHECK_HAS(md, "| finetuned | ga | 40.0 | 40.0 | 40.0 | 40.0 | 40.0 |\n");
    CHECK_HAS(md, "| finetuned | ga | 2 | 50.0 |");
    CHECK(md && !strstr(md, "20.0") && !strstr(md, "10.0") && !strstr(md, "12.5"));
    CHECK_HAS(md, "greedy-letter and option-letter scores");
    CHECK_HAS(csv, "\nfinetuned,none,single,0,proj+llm,likelihood,forget_mm,40,0.8,0.2,0.4,0.8,1\n");
    CHECK_HAS(csv, "\nfinetuned,ga,sequential,3,proj+llm,likelihood,general,40,0.5,0.125,0.25,0.5,1\n");
    struct json *doc = js ? json_parse(js, strlen(js)) : NULL;
    CHECK_STR(json_get_str(doc, "scoring"), "likelihood");
    const struct json *rows = json_get(json_get(json_get(doc, "views"), "knowledge_method"), "rows");
    const struct json *row = rows && rows->len ? rows->items[0] : NULL;
    const struct json *a = json_get(row, "accuracy"), *g = json_get(row, "greedy"),
                      *l = json_get(row, "likelihood");
    CHECK(a && a->len == 5 && a->items[0]->n == 0.8 && a->items[4]->type == JSON_NULL && json_equal(a, l));
    CHECK(g && g->len == 5 && g->items[0]->n == 0.2);
    CHECK_HAS(svg, "y: likelihood accuracy");
    struct image im = {0};
    CHECK(png && image_decode(png, npng, "png", &im) == 0);
    uint8_t ga[3];
    report_method_colour("ga", ga);
    for (int panel = 0; im.rgb && panel < REPORT_NCOLS; panel++) {
        double x = (report_x(panel, 1, 3) + report_x(panel, 2, 3)) / 2;
        CHECK(pixel_is(&im, x, report_y(0, 0.5), ga)); /* the likelihood, not greedy's 0.125 */
    }
    image_free(&im);
    json_free(doc);
    free(md), free(csv), free(js), free(svg), free(png);
    json_free(outs);
    inputs_free(&in);
}

/* One bad input among good ones: the kind fails with one line naming it. */
static void check_refused(const char *text, const char *what) {
    struct inputs in = {0};
    add(&in, metrics("finetuned", "none", "single", 0, "proj+llm", 0.9, NULL, ""));
    add(&in, strdup(text));
    struct json *outs = run_report(&in, NULL, NULL);
    CHECK(outs == NULL);
    CHECK_HAS(err_msg(), what);
    CHECK(!strchr(err_msg(), '\n'));
    json_free(outs);
    inputs_free(&in);
}

static void check_errors(void) {
    check_refused("{\"labels\":", "report: metrics 1: not JSON: json: ");
    check_refused("[1,2]", "report: metrics 1: not a JSON object");
    check_refused("{\"sets\":{}}", "report: metrics 1: 'labels' must be an object");
    check_refused(
        "{\"labels\":{\"knowledge\":\"pretrained\",\"method\":\"ga\",\"setting\":\"single\",\"round\":1,"
        "\"target\":\"llm\"}}",
        "report: metrics 1: 'sets' must be an object");
    static const struct {
        const char *from, *to, *what;
    } edits[] = {
        {"\"finetuned\"", "\"known\"", "'labels.knowledge' must be \"finetuned\" or \"pretrained\""},
        {"\"method\":\"ga\"", "\"method\":\"g a\"", "'labels.method' must be an id"},
        {"\"method\":\"ga\"", "\"method\":3", "'labels.method' must be an id"},
        {"\"single\"", "\"double\"", "'labels.setting' must be \"single\" or \"sequential\""},
        {"\"round\":1", "\"round\":1.5", "report: metrics 1: 'labels.round' must be an integer"},
        {"\"round\":1", "\"round\":\"1\"", "'labels.round' must be an integer"},
        {"\"round\":1", "\"round\":2", "'labels.round' must be 1 for setting single, got 2"},
        {"\"proj+llm\"", "\"all\"", "'labels.target' must be \"proj+llm\" or \"llm\""},
        {"\"seed\":7", "\"bad key\":7", "'labels' has a key that is not an id"},
        {"\"seed\":7", "\"seed\":\"7\"", "report: metrics 1: 'labels.seed' must be an integer"},
        {"\"seed\":7", "\"seed\":7.5", "'labels.seed' must be an integer"},
        {"\"items\":40", "\"items\":-1", "'sets.forget_mm.items' must be a non-negative integer"},
        {"\"greedy\":0.625", "\"greedy\":1.5", "'sets.forget_mm.greedy' must be a number between 0 and 1"},
        {"\"option\":0.3125", "\"option\":null", "'sets.forget_mm.option' must be a number between 0 and 1"},
        {"\"unparsed\":1", "\"unparsed\":\"x\"", "'sets.forget_mm.unparsed' must be a non-negative integer"},
        {"\"forget_mm\":{\"items\":40,\"greedy\":0.625,\"option\":0.3125,\"unparsed\":1}", "\"forget_mm\":7",
         "'sets.forget_mm' must be an object"},
    };
    char *good = metrics("finetuned", "ga", "single", 1, "proj+llm", 0.625, NULL, ",\"seed\":7");
    for (size_t k = 0; k < sizeof edits / sizeof edits[0]; k++) {
        char *at = strstr(good, edits[k].from), text[2048];
        CHECK(at != NULL);
        if (!at)
            continue;
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - good), good, edits[k].to,
                 at + strlen(edits[k].from));
        check_refused(text, edits[k].what);
    }
    free(good);
    char *none2 = metrics("finetuned", "none", "single", 2, "proj+llm", 0.5, NULL, "");
    check_refused(none2, "'labels.round' must be 0 for method none, got 2");
    free(none2);
    char *seq0 = metrics("finetuned", "ga", "sequential", 0, "proj+llm", 0.5, NULL, "");
    check_refused(seq0, "'labels.round' must be between 1 and 1000 for setting sequential, got 0");
    free(seq0);
    char *lik = metrics_scored("likelihood", "finetuned", "ga", "single", 1, "proj+llm", 0.5, NULL, "");
    static const struct {
        const char *from, *to, *what;
    } lik_edits[] = {
        {"\"scoring\":\"likelihood\"", "\"scoring\":\"letters\"",
         "report: metrics 1: 'scoring' must be \"letter\" or \"likelihood\""},
        {"\"scoring\":\"likelihood\"", "\"scoring\":null", "'scoring' must be \"letter\" or \"likelihood\""},
        {"\"likelihood\":0.5,", "",
         "report: metrics 1: 'sets.forget_mm.likelihood' must be a number between 0 and 1"},
        {"\"likelihood\":0.5,", "\"likelihood\":2,",
         "'sets.forget_mm.likelihood' must be a number between 0 and 1"},
    };
    for (size_t k = 0; k < sizeof lik_edits / sizeof lik_edits[0]; k++) {
        char *at = strstr(lik, lik_edits[k].from), text[2048];
        CHECK(at != NULL);
        if (!at)
            continue;
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - lik), lik, lik_edits[k].to,
                 at + strlen(lik_edits[k].from));
        check_refused(text, lik_edits[k].what);
    }
    /* a good likelihood input after a letter one: two scorings in one report */
    check_refused(lik,
                  "report: metrics 0 is scored by letter but metrics 1 by likelihood: a report shows one "
                  "scoring");
    free(lik);
}

/* Two inputs with the same five labels are refused, naming both, unless each has a seed of its own: one
 * without a seed (the other's does not help), or two with the same seed. */
static void check_duplicates(void) {
    static const struct {
        const char *first, *second, *what;
    } cases[] = {
        {"", ",\"seed\":2",
         "report: metrics 0 and 2 have the same labels (knowledge, method, setting, round, target) and no "
         "seed "
         "label to tell them apart"},
        {",\"seed\":2", ",\"seed\":2", "report: metrics 0 and 2 have the same labels and the same seed (2)"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct inputs in = {0};
        add(&in, metrics("finetuned", "ga", "single", 1, "proj+llm", 0.5, NULL, cases[k].first));
        add(&in, metrics("finetuned", "ga", "sequential", 1, "proj+llm", 0.5, NULL, cases[k].first));
        add(&in, metrics("finetuned", "ga", "single", 1, "proj+llm", 0.6, NULL, cases[k].second));
        struct json *outs = run_report(&in, NULL, NULL);
        CHECK(outs == NULL);
        CHECK_STR(err_msg(), cases[k].what);
        json_free(outs);
        inputs_free(&in);
    }
}

/* A sweep: inputs alike but for their seed are one row, the mean over the seeds ± the sample standard
 * deviation (only a seed that has the set counts), a seeds column, the same bytes in any order; the CSV keeps
 * one row per input, the JSON gives the means, spreads and seeds, and the chart draws bars. */
static void seeds_inputs(struct inputs *in) {
    const char *seed[] = {",\"seed\":1", ",\"seed\":2", ",\"seed\":3"};
    const double before[] = {0.8, 0.9, 1.0}, single[] = {0.5, 0.7}, round2[] = {0.2, 0.6, 0.4};
    for (int k = 0; k < 3; k++)
        add(in, metrics("finetuned", "none", "single", 0, "proj+llm", before[k], k == 2 ? "general" : NULL,
                        seed[k]));
    for (int k = 0; k < 2; k++)
        add(in, metrics("finetuned", "ga", "single", 1, "proj+llm", single[k], NULL, seed[k]));
    for (int k = 0; k < 3; k++) {
        add(in, metrics("finetuned", "ga", "sequential", 1, "proj+llm", 0.5, NULL, seed[k]));
        add(in, metrics("finetuned", "ga", "sequential", 2, "proj+llm", round2[k], NULL, seed[k]));
    }
    add(in, metrics("pretrained", "none", "single", 0, "proj+llm", 0.8, NULL, ""));
}

static void check_seeds_json(const char *js) {
    struct json *doc = js ? json_parse(js, strlen(js)) : NULL;
    const struct json *rows = json_get(json_get(json_get(doc, "views"), "knowledge_method"), "rows");
    CHECK(rows && rows->len == 3);
    const struct json *row = rows && rows->len == 3 ? rows->items[0] : NULL;
    const struct json *seeds = json_get(row, "seeds"), *a = json_get(row, "accuracy"),
                      *sd = json_get(row, "spread");
    CHECK(seeds && seeds->len == 3 && seeds->items[0]->i == 1 && seeds->items[2]->i == 3);
    CHECK(!json_get(json_get(row, "labels"), "seed") && json_get(json_get(row, "labels"), "method"));
    CHECK(a && a->len == 5 && fabs(a->items[0]->n - 0.9) < 1e-15 && fabs(a->items[4]->n - 0.85) < 1e-15);
    CHECK(sd && sd->len == 5 && fabs(sd->items[0]->n - 0.1) < 1e-15 &&
          fabs(sd->items[4]->n - 0.05 * sqrt(2)) < 1e-15);
    row = rows && rows->len == 3 ? rows->items[2] : NULL; /* pretrained: one run, no seed */
    seeds = json_get(row, "seeds"), sd = json_get(row, "spread");
    CHECK(seeds && seeds->len == 0 && sd && sd->len == 5 && sd->items[0]->type == JSON_NULL);
    json_free(doc);
}

static void check_seeds(void) {
    struct inputs in = {0};
    seeds_inputs(&in);
    struct json *outs = run_report(&in, NULL, NULL);
    if (!outs)
        fprintf(stderr, "report: %s\n", err_msg());
    size_t npng = 0;
    char *md = output(outs, "markdown", NULL), *csv = output(outs, "csv", NULL),
         *js = output(outs, "json", NULL), *svg = output(outs, "svg", NULL),
         *png = output(outs, "png", &npng);
    CHECK_HAS(md, "Runs that differ only in their seed are one row");
    CHECK_HAS(md,
              "| knowledge | method | forget MM | forget text | retain MM | retain text | general | seeds |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|\n");
    CHECK_HAS(
        md,
        "| finetuned | none | 90.0 ± 10.0 | 90.0 ± 10.0 | 90.0 ± 10.0 | 90.0 ± 10.0 | 85.0 ± 7.1 | 3 |\n");
    CHECK_HAS(
        md, "| finetuned | ga | 60.0 ± 14.1 | 60.0 ± 14.1 | 60.0 ± 14.1 | 60.0 ± 14.1 | 60.0 ± 14.1 | 2 |\n");
    CHECK_HAS(md, "| finetuned | ga | 1 | 50.0 ± 0.0 |");
    CHECK_HAS(md, "| finetuned | ga | 2 | 40.0 ± 20.0 |");
    CHECK_HAS(md, "| pretrained | none | 80.0 | 80.0 | 80.0 | 80.0 | 80.0 | 1 |\n");
    CHECK_HAS(md, "| none | proj+llm | 80.0 | 80.0 | 80.0 | 1 |\n");
    CHECK(csv && count(csv, "\nfinetuned,none,single,0,proj+llm,letter,forget_mm,") == 3);
    CHECK_HAS(csv, "\nfinetuned,ga,sequential,2,proj+llm,letter,forget_mm,40,0.6,0.6,0.3,,1,2\n");
    check_seeds_json(js);
    CHECK_HAS(svg, "mean over seeds, bars 1 sd");
    struct image im = {0};
    uint8_t ga[3], white[3] = {255, 255, 255};
    report_method_colour("ga", ga);
    CHECK(png && image_decode(png, npng, "png", &im) == 0);
    for (int panel = 0; im.rgb && panel < REPORT_NCOLS; panel++) {
        /* round 2: 40 ± 20: the bar reaches 59 but not 61, and nothing is drawn left of it at 59 */
        double x = report_x(panel, 2, 2);
        CHECK(pixel_is(&im, x, report_y(0, 0.59), ga) && !pixel_is(&im, x, report_y(0, 0.61), ga));
        CHECK(pixel_is(&im, x - 6, report_y(0, 0.59), white));
    }
    image_free(&im);
    size_t order[32];
    for (size_t k = 0; k < in.n; k++)
        order[k] = in.n - 1 - k; /* seeds come in backwards: the sums keep sorted order */
    struct json *again = run_report(&in, order, NULL);
    CHECK(outs && again && json_equal(outs, again));
    free(md), free(csv), free(js), free(svg), free(png);
    json_free(outs), json_free(again);
    inputs_free(&in);
}

/* Every glyph is seven rows of five '#' or '.', and the printable ones are not all blank. */
static void check_font(void) {
    int bad = 0, blank = 0;
    for (int ch = 32; ch <= 126; ch++) {
        int ink = 0;
        for (int row = 0; row < REPORT_FONT_H; row++) {
            int m = report_font_row(ch, row);
            bad += m < 0;
            ink |= m > 0 ? m : 0;
        }
        blank += ch != ' ' && !ink;
    }
    CHECK(bad == 0 && blank == 0);
    CHECK(report_font_row(31, 0) == -1 && report_font_row(127, 0) == -1);
    CHECK(report_font_row('T', 0) == 0x1f && report_font_row('T', 6) == 0x04);
    CHECK(report_font_width("ab") == 2 * REPORT_FONT_ADVANCE &&
          report_font_width("\xc3\xa9") == REPORT_FONT_ADVANCE);
}

int main(void) {
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/store", base);
    if (store_open(path, 1, &st) != 0) {
        fprintf(stderr, "store_open: %s\n", err_msg());
        return 1;
    }
    check_full();
    check_no_sequential();
    check_empty();
    check_likelihood();
    check_errors();
    check_duplicates();
    check_seeds();
    check_font();
    store_close(st);
    nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_done("test_stages_report");
}

/* test_engine_mmbench: MMBench TSVs as pandas writes them (a BOM, quoted fields holding tabs, newlines and
 * doubled quotes; the fixture text is what pandas 2 wrote for this table, images put in afterwards) become
 * the items and images of the data set format: LLaVA's prompts, options up to the first missing one, shared
 * images stored once, the split filter and limit; CRLF files read the same; every malformed file fails with
 * one line naming the line where its row starts. */
#include "check.h"
#include "engine/mmbench.h"
#include "util/err.h"

#include <stdint.h>

static const char *pandas_tsv =
    "\xef\xbb\xbfindex\tquestion\thint\tA\tB\tC\tD\tanswer\tcategory\timage\tsource\tl2-"
    "category\tcomment\tsplit\n"
    "10\t\"Which is \"\"round\"\"?\tPick one.\"\t\"Line one.\nLine two.\"\tball\tbox\t\"the "
    "\"\"cube\"\"\"\t\tA\t"
    "attribute_recognition\t@PNG@\ts\tfine\t\tdev\n"
    "11\tColour?\t\tred\tgreen\tNaN\tblue\tB\tcolour\t@PNG2@\ts\tfine\tnone\tdev\n"
    "12\tSame picture?\tNone\tyes\tno\t\t\tA\tcolour\t10\ts\tcoarse\t\tdev\n"
    "13\tTest only\t\tx\ty\t\t\tA\tc\t@PNG@\ts\tcoarse\t\ttest\n";

static const char *tail = "Answer with the option's letter from the given choices directly.";

static char *b64(const unsigned char *p, size_t n) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct buf b = {0};
    for (size_t i = 0; i < n; i += 3) {
        unsigned v =
            (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        buf_putc(&b, abc[v >> 18 & 63]);
        buf_putc(&b, abc[v >> 12 & 63]);
        buf_putc(&b, i + 1 < n ? abc[v >> 6 & 63] : '=');
        buf_putc(&b, i + 2 < n ? abc[v & 63] : '=');
    }
    return buf_take(&b);
}

/* A w x h PNG of one colour, as base64. */
static char *png_b64(int w, int h, uint8_t shade) {
    struct image im;
    void *png;
    size_t n;
    image_alloc(&im, w, h);
    memset(im.rgb, shade, (size_t)w * h * 3);
    image_png_encode(&im, &png, &n);
    char *s = b64(png, n);
    free(png);
    image_free(&im);
    return s;
}

/* text with every `from` replaced by `to`. */
static char *replace(const char *text, const char *from, const char *to) {
    struct buf b = {0};
    for (const char *at; (at = strstr(text, from)); text = at + strlen(from)) {
        buf_append(&b, text, (size_t)(at - text));
        buf_puts(&b, to);
    }
    buf_puts(&b, text);
    return buf_take(&b);
}

/* The fixture with its images in place. */
static char *fixture(void) {
    char *png = png_b64(6, 5, 200), *png2 = png_b64(3, 3, 20);
    char *a = replace(pandas_tsv, "@PNG2@", png2), *b = replace(a, "@PNG@", png);
    free(a);
    free(png);
    free(png2);
    return b;
}

struct result {
    struct mmbench_out out;
    struct ds_items items;
    struct ds_images *images;
    void *tar;
};

/* Runs the reader on a copy of text; 0 with the outputs read back, -1 with the reader's error. */
static int run_as(const char *text, const char *split, size_t limit, enum mmbench_template tmpl,
                  struct result *r) {
    memset(r, 0, sizeof *r);
    char *copy = xstrdup(text);
    r->out.images = ds_tar_new();
    int rc = mmbench_read(copy, strlen(copy), "t.tsv", split, limit, tmpl, &r->out);
    free(copy);
    size_t n = 0;
    if (ds_tar_finish(r->out.images, &r->tar, &n) != 0 || ds_images_open(r->tar, n, "tar", &r->images) != 0)
        return -2;
    if (rc == 0 &&
        ds_read_items(r->out.items.data ? r->out.items.data : "", r->out.items.len, "items", &r->items) != 0)
        return -2;
    return rc;
}

static int run(const char *text, const char *split, size_t limit, struct result *r) {
    return run_as(text, split, limit, MMB_PLAIN, r);
}

static void result_free(struct result *r) {
    buf_free(&r->out.items);
    ds_items_free(&r->items);
    ds_images_free(r->images);
    free(r->tar);
}

static void test_pandas_file(void) {
    char *text = fixture();
    struct result r;
    CHECK(run(text, "dev", 0, &r) == 0);
    CHECK(r.out.nitems == 3 && r.items.n == 3 && r.out.nimages == 2);
    if (r.items.n == 3) {
        const struct ds_item *a = &r.items.v[0], *b = &r.items.v[1], *c = &r.items.v[2];
        CHECK_STR(a->id, "mmb-10");
        CHECK_STR(a->question, "Which is \"round\"?\tPick one.");
        CHECK(a->noptions == 3 && a->answer == 0);
        CHECK_STR(a->options[2], "the \"cube\"");
        struct buf want = {0};
        buf_printf(&want,
                   "<image>\nLine one.\nLine two.\nWhich is \"round\"?\tPick one.\nA. ball\nB. box\nC. the "
                   "\"cube\"\n%s",
                   tail);
        CHECK_STR(a->prompt, want.data);
        buf_free(&want);
        CHECK_STR(a->category, "attribute_recognition");
        CHECK_STR(a->set, "general");
        CHECK(a->person == NULL);
        CHECK_STR(a->image, "mmb-10");
        /* "NaN" ends the options (LLaVA's is_none), so D is never read; the hint was empty. */
        CHECK(b->noptions == 2 && b->answer == 1);
        buf_printf(&want, "<image>\nColour?\nA. red\nB. green\n%s", tail);
        CHECK_STR(b->prompt, want.data);
        buf_free(&want);
        /* A bare index shares row 10's picture; the hint "None" is no hint. */
        CHECK_STR(c->image, "mmb-10");
        buf_printf(&want, "<image>\nSame picture?\nA. yes\nB. no\n%s", tail);
        CHECK_STR(c->prompt, want.data);
        buf_free(&want);
    }
    CHECK(ds_images_count(r.images) == 2);
    CHECK_STR(ds_images_id(r.images, 0), "mmb-10");
    CHECK_STR(ds_images_id(r.images, 1), "mmb-11");
    struct image im;
    CHECK(ds_images_decode(r.images, "mmb-10", &im) == 0 && im.w == 6 && im.h == 5 && im.rgb[0] == 200);
    image_free(&im);
    struct buf first = r.out.items;
    r.out.items = (struct buf){0};
    result_free(&r);

    /* Windows line ends (a quoted newline stays as it was) and no BOM: the same items. */
    char *all = replace(text + 3, "\n", "\r\n"), *crlf = replace(all, "one.\r\nLine", "one.\nLine");
    free(all);
    CHECK(run(crlf, "dev", 0, &r) == 0);
    CHECK(r.out.items.len == first.len && memcmp(r.out.items.data, first.data, first.len) == 0);
    result_free(&r);
    free(crlf);
    /* No trailing newline either. */
    text[strlen(text) - 1] = '\0';
    CHECK(run(text, "dev", 0, &r) == 0 && r.out.items.len == first.len);
    result_free(&r);
    buf_free(&first);

    CHECK(run(text, "test", 0, &r) == 0 && r.items.n == 1 && r.out.nimages == 1);
    CHECK(r.items.n == 1 && strcmp(r.items.v[0].id, "mmb-13") == 0);
    result_free(&r);
    /* limit keeps the first rows of the file: 12's picture is stored under 10 although 10 is not kept. */
    CHECK(run(text, "dev", 1, &r) == 0 && r.items.n == 1 && strcmp(r.items.v[0].id, "mmb-10") == 0);
    result_free(&r);
    CHECK(run(text, "tset", 0, &r) == -1);
    CHECK_STR(err_msg(), "t.tsv: no row has split 'tset'");
    result_free(&r);
    free(text);
}

/* The fixture with `from` replaced by `to` must fail with exactly `want`. */
static void refused(const char *from, const char *to, const char *want) {
    char *text = fixture(), *bad = replace(text, from, to);
    struct result r;
    CHECK(strcmp(text, bad) != 0);
    CHECK(run(bad, "dev", 0, &r) == -1);
    CHECK_STR(err_msg(), want);
    result_free(&r);
    free(bad);
    free(text);
}

static void test_refusals(void) {
    /* Row 11 starts on line 4: row 10's quoted hint holds a newline. */
    refused("\tB\tcolour\t", "\tE\tcolour\t", "t.tsv:4: bad answer letter 'E' (A to D)");
    refused("\tball\tbox\t", "\tball\tball\t", "t.tsv:2: options A and B are the same");
    refused("yes\tno", "no\tno", "t.tsv:5: options A and B are the same");
    refused("\"Line one.\nLine two.\"", "\"Line one.\nLine two.\" ",
            "t.tsv:3: text after the closing quote of a field");
    refused("\tnone\tdev\n12", "\t\"none\tdev\n12", "t.tsv:4: a quoted field never ends");
    refused("12\tSame picture?", "12\t\tSame picture?",
            "t.tsv:5: wrong number of fields (15, the header has 14)");
    refused("\tcomment\t", "\tanswer\t", "t.tsv:1: column 'answer' appears twice");
    refused("\tcategory\t", "\tgroup\t", "t.tsv:1: missing column 'category'");
    refused("13\tTest", "11\tTest", "t.tsv:6: index 11 repeats line 4");
    refused("\tcolour\t10\t", "\tcolour\t99\t", "t.tsv:5: image refers to index 99, which no row has");
    refused("Colour?\t\tred\tgreen", "Colour?\t\tred\tnan",
            "t.tsv:4: 1 option(s), at least 2 needed (A and B)");
    refused("Colour?", "nan", "t.tsv:4: empty question");

    struct result r;
    CHECK(run("index\tquestion\n10\t\"x", "dev", 0, &r) == -1);
    CHECK_STR(err_msg(), "t.tsv:1: missing column 'A'"); /* the header is checked before any row */
    result_free(&r);
    CHECK(run("", "dev", 0, &r) == -1);
    CHECK_STR(err_msg(), "t.tsv: empty file (no header row)");
    result_free(&r);
    CHECK(run("\xef\xbb\xbf\n\n", "dev", 0, &r) == -1);
    CHECK_STR(err_msg(), "t.tsv: empty file (no header row)");
    result_free(&r);

    char nul[] = "index\tq\0x\n";
    struct mmbench_out o = {.images = ds_tar_new()};
    CHECK(mmbench_read(nul, sizeof nul - 1, "nul.tsv", "dev", 0, MMB_PLAIN, &o) == -1);
    CHECK_STR(err_msg(), "nul.tsv: holds a NUL byte (not a TSV file)");
    ds_tar_free(o.images);
    buf_free(&o.items);
}

static void test_images(void) {
    char *text = fixture(), *png = png_b64(6, 5, 200);
    char *cut = xstrdup(png);
    cut[40] = '\0'; /* a multiple of 4: valid base64 of a truncated PNG */
    refused(png, "iVBO*Rw0KGgo", "t.tsv:2: image: bad base64 near character 5");
    refused(png, cut, "t.tsv:2: image of index 10: bad PNG: truncated file");
    refused(png, "R0lGODlhAQABAAAAACw=", "t.tsv:2: image of index 10: neither PNG nor JPEG data");
    refused("\tcolour\t10\t", "\tcolour\t\t", "t.tsv:5: empty image");
    free(cut);
    free(png);
    free(text);
}

/* vicuna_v1: LLaVA-1.5's conversation around the same prompt, byte for byte as its conversation.py builds it
 * (system, " ", "USER: " + message, " ", "ASSISTANT:"); unknown template names are refused. */
static void test_template(void) {
    char *text = fixture();
    struct result r;
    CHECK(run_as(text, "dev", 0, MMB_VICUNA_V1, &r) == 0 && r.items.n == 3);
    if (r.items.n == 3) {
        struct buf want = {0};
        buf_printf(
            &want,
            "A chat between a curious human and an artificial intelligence assistant. The assistant gives "
            "helpful, detailed, and polite answers to the human's questions. USER: <image>\nColour?\nA. "
            "red\nB. green\n%s ASSISTANT:",
            tail);
        CHECK_STR(r.items.v[1].prompt, want.data);
        buf_free(&want);
    }
    result_free(&r);
    free(text);
    enum mmbench_template t;
    CHECK(mmbench_template_parse("vicuna_v1", &t) == 0 && t == MMB_VICUNA_V1);
    CHECK(mmbench_template_parse("plain", &t) == 0 && t == MMB_PLAIN);
    CHECK(mmbench_template_parse("chatml", &t) == -1);
    CHECK_HAS(err_msg(), "template 'chatml' is not known (plain, vicuna_v1)");
}

int main(void) {
    test_pandas_file();
    test_template();
    test_refusals();
    test_images();
    return check_done("test_engine_mmbench");
}

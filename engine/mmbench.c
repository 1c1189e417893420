/* mmbench: MMBench TSV text -> items.jsonl lines and images.tar entries. The TSV is parsed in place (pandas'
 * quoting undone where it stands), rows are indexed by their `index` column for image references, and every
 * kept row goes through the data set format's own writer, so what is imported is what the readers accept. */
#include "engine/mmbench.h"
#include "util/base64.h"
#include "util/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* MMBench's bare-index image references are short digit strings; real base64 images never are. */
#define MMB_REF_MAX 18

/* ---- TSV as pandas writes it ---- */

struct tsv {
    char *p, *end;
    size_t line; /* physical line of p, from 1 */
    const char *what;
};

enum { TSV_TAB, TSV_EOL };

/* Moves past the delimiter at d ('\t', "\n", "\r\n" or the end of the text) and says which it was. */
static int tsv_after(struct tsv *t, char *d) {
    if (d < t->end && *d == '\t') {
        t->p = d + 1;
        return TSV_TAB;
    }
    if (d < t->end && *d == '\r')
        d++;
    if (d < t->end) {
        d++;
        t->line++;
    }
    t->p = d;
    return TSV_EOL;
}

static int tsv_is_delim(const struct tsv *t, const char *d) {
    return d == t->end || *d == '\t' || *d == '\n' || (*d == '\r' && d + 1 < t->end && d[1] == '\n');
}

/* A field that starts with '"': its text moves left over the quotes as "" becomes ". */
static int tsv_quoted(struct tsv *t, char **field, int *kind) {
    size_t start = t->line;
    char *w = t->p, *r = t->p + 1;
    *field = w;
    for (;;) {
        if (r == t->end)
            return err_set("%s:%zu: a quoted field never ends", t->what, start);
        if (*r == '"' && r + 1 < t->end && r[1] == '"') {
            *w++ = '"';
            r += 2;
        } else if (*r == '"') {
            r++;
            break;
        } else {
            t->line += *r == '\n';
            *w++ = *r++;
        }
    }
    if (!tsv_is_delim(t, r))
        return err_set("%s:%zu: text after the closing quote of a field", t->what, t->line);
    *kind = tsv_after(t, r);
    *w = '\0'; /* w is at least two bytes before r: the opening and closing quotes */
    return 0;
}

/* The next field, NUL-terminated where it stands; *kind says whether a tab or the end of the record follows.
 */
static int tsv_field(struct tsv *t, char **field, int *kind) {
    if (t->p < t->end && *t->p == '"')
        return tsv_quoted(t, field, kind);
    char *q = t->p;
    while (q < t->end && *q != '\t' && *q != '\n')
        q++;
    char *e = q < t->end && *q == '\n' && q > t->p && q[-1] == '\r' ? q - 1 : q;
    *field = t->p;
    *kind = tsv_after(t, e);
    *e = '\0'; /* at the end of the text this is text[n], already '\0' */
    return 0;
}

struct fields {
    char **v;
    size_t n, cap;
};

/* One record into f; returns 1 when there is none left, 0 with a record, -1 on error. Blank lines are skipped
 * (a trailing one, typically). */
static int tsv_record(struct tsv *t, struct fields *f, size_t *line) {
    while (t->p < t->end && (*t->p == '\n' || (*t->p == '\r' && t->p + 1 < t->end && t->p[1] == '\n')))
        tsv_after(t, t->p);
    if (t->p == t->end)
        return 1;
    *line = t->line;
    f->n = 0;
    for (int kind = TSV_TAB; kind == TSV_TAB;) {
        if (f->n == f->cap)
            f->v = xrealloc(f->v, (f->cap = f->cap ? 2 * f->cap : 32) * sizeof *f->v);
        if (tsv_field(t, &f->v[f->n++], &kind) != 0)
            return -1;
    }
    return 0;
}

/* ---- the table ---- */

enum { C_INDEX, C_QUESTION, C_HINT, C_A, C_B, C_C, C_D, C_ANSWER, C_CATEGORY, C_IMAGE, C_SPLIT, MMB_NCOLS };
static const char *const mmb_cols[MMB_NCOLS] = {"index", "question", "hint",     "A",     "B",    "C",
                                                "D",     "answer",   "category", "image", "split"};
static const char mmb_required[MMB_NCOLS] = {1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0};

struct mmb_row {
    size_t line;
    char **f; /* nfields pointers into the text */
};

struct mmb {
    const char *what;
    enum mmbench_template tmpl;
    size_t nfields;
    int col[MMB_NCOLS]; /* field number of each known column, -1 when absent */
    struct mmb_row *rows;
    size_t nrows, cap;
    size_t *by_index; /* row numbers sorted by index, for duplicates and image references */
    char *stored;     /* per row: its image is in the tar */
};

static const char *mmb_field(const struct mmb *m, size_t row, int col) {
    return m->col[col] < 0 ? "" : m->rows[row].f[m->col[col]];
}

static int mmb_header(struct mmb *m, const struct fields *f) {
    m->nfields = f->n;
    for (int c = 0; c < MMB_NCOLS; c++) {
        m->col[c] = -1;
        for (size_t i = 0; i < f->n; i++) {
            if (strcmp(f->v[i], mmb_cols[c]) != 0)
                continue;
            if (m->col[c] >= 0)
                return err_set("%s:1: column '%s' appears twice", m->what, mmb_cols[c]);
            m->col[c] = (int)i;
        }
        if (m->col[c] < 0 && mmb_required[c])
            return err_set("%s:1: missing column '%s'", m->what, mmb_cols[c]);
    }
    return 0;
}

static int mmb_add_row(struct mmb *m, const struct fields *f, size_t line) {
    if (f->n != m->nfields)
        return err_set("%s:%zu: wrong number of fields (%zu, the header has %zu)", m->what, line, f->n,
                       m->nfields);
    if (m->nrows == m->cap)
        m->rows = xrealloc(m->rows, (m->cap = m->cap ? 2 * m->cap : 256) * sizeof *m->rows);
    struct mmb_row *r = &m->rows[m->nrows++];
    r->line = line;
    r->f = xmalloc(f->n * sizeof *r->f);
    memcpy(r->f, f->v, f->n * sizeof *r->f);
    return 0;
}

static int mmb_parse(struct mmb *m, char *text, size_t n) {
    struct tsv t = {text, text + n, 1, m->what};
    if (n >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        t.p += 3; /* pandas' encoding="utf-8-sig" */
    struct fields f = {0};
    size_t line = 0;
    int rc, have_header = 0;
    while ((rc = tsv_record(&t, &f, &line)) == 0) {
        rc = have_header ? mmb_add_row(m, &f, line) : mmb_header(m, &f);
        if (rc != 0)
            break;
        have_header = 1;
    }
    free(f.v);
    if (rc < 0)
        return -1;
    return have_header ? 0 : err_set("%s: empty file (no header row)", m->what);
}

static int cmp_by_index(const void *a, const void *b, void *ctx) {
    const struct mmb *m = ctx;
    return strcmp(mmb_field(m, *(const size_t *)a, C_INDEX), mmb_field(m, *(const size_t *)b, C_INDEX));
}

static int mmb_index(struct mmb *m) {
    m->by_index = xcalloc(m->nrows ? m->nrows : 1, sizeof *m->by_index);
    for (size_t i = 0; i < m->nrows; i++) {
        char id[80];
        const char *ix = mmb_field(m, i, C_INDEX);
        snprintf(id, sizeof id, "mmb-%.70s", ix);
        if (strlen(ix) > 60 || !ds_id_valid(id))
            return err_set("%s:%zu: index '%.60s' cannot make an id (letters, digits, '_', '.', '-')",
                           m->what, m->rows[i].line, ix);
        m->by_index[i] = i;
    }
    qsort_r(m->by_index, m->nrows, sizeof *m->by_index, cmp_by_index, m);
    for (size_t k = 1; k < m->nrows; k++) {
        size_t a = m->by_index[k - 1], b = m->by_index[k];
        if (strcmp(mmb_field(m, a, C_INDEX), mmb_field(m, b, C_INDEX)) == 0)
            return err_set("%s:%zu: index %s repeats line %zu", m->what, m->rows[b > a ? b : a].line,
                           mmb_field(m, a, C_INDEX), m->rows[b > a ? a : b].line);
    }
    return 0;
}

static long mmb_find(const struct mmb *m, const char *index) {
    size_t lo = 0, hi = m->nrows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(mmb_field(m, m->by_index[mid], C_INDEX), index);
        if (c == 0)
            return (long)m->by_index[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---- rows into items ---- */

/* LLaVA's is_none: what pandas read back as a missing value, or the words for one. */
static int is_none(const char *s) {
    return !*s || strcasecmp(s, "nan") == 0 || strcasecmp(s, "none") == 0;
}

static int is_image_ref(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n <= MMB_REF_MAX && strspn(s, "0123456789") == n;
}

/* The row whose image field holds this row's picture: itself, or the row its bare index points at. */
static int mmb_image_owner(const struct mmb *m, size_t row, size_t *owner) {
    const char *img = mmb_field(m, row, C_IMAGE);
    *owner = row;
    if (!*img)
        return err_set("empty image");
    if (!is_image_ref(img))
        return 0;
    long o = mmb_find(m, img);
    if (o < 0)
        return err_set("image refers to index %s, which no row has", img);
    if (is_image_ref(mmb_field(m, (size_t)o, C_IMAGE)))
        return err_set("image refers to index %s, whose image is itself a reference", img);
    *owner = (size_t)o;
    return 0;
}

static int mmb_store_image(struct mmb *m, size_t owner, struct mmbench_out *o) {
    if (m->stored[owner])
        return 0;
    const char *b64 = mmb_field(m, owner, C_IMAGE);
    unsigned char *bytes = NULL;
    size_t n = 0;
    if (base64_decode(b64, strlen(b64), &bytes, &n) != 0)
        return err_prefix("%s:%zu: image", m->what, m->rows[owner].line);
    char id[80], what[64];
    snprintf(id, sizeof id, "mmb-%s", mmb_field(m, owner, C_INDEX));
    snprintf(what, sizeof what, "image of index %.40s", mmb_field(m, owner, C_INDEX));
    int rc = ds_tar_add_image(o->images, id, bytes, n, what);
    free(bytes);
    if (rc != 0)
        return err_prefix("%s:%zu", m->what, m->rows[owner].line);
    m->stored[owner] = 1;
    o->nimages++;
    return 0;
}

/* Options A..D until the first missing one (LLaVA's loop); the answer letter must name one of them. */
static int mmb_options(const struct mmb *m, size_t row, struct ds_item *it) {
    it->noptions = 0;
    for (int k = 0; k < 4 && !is_none(mmb_field(m, row, C_A + k)); k++)
        it->options[it->noptions++] = (char *)mmb_field(m, row, C_A + k);
    if (it->noptions < 2)
        return err_set("%d option(s), at least 2 needed (A and B)", it->noptions);
    for (int a = 0; a < it->noptions; a++)
        for (int b = a + 1; b < it->noptions; b++)
            if (strcmp(it->options[a], it->options[b]) == 0)
                return err_set("options %c and %c are the same", 'A' + a, 'A' + b);
    const char *ans = mmb_field(m, row, C_ANSWER);
    if (strlen(ans) != 1 || ans[0] < 'A' || ans[0] > 'D')
        return err_set("bad answer letter '%.20s' (A to D)", ans);
    it->answer = ans[0] - 'A';
    if (it->answer >= it->noptions)
        return err_set("answer %s is not among the %d options", ans, it->noptions);
    return 0;
}

/* LLaVA-1.5's vicuna_v1 conversation: the system line, then the roles, " " between turns. */
#define MMB_VICUNA_SYSTEM                                                                                    \
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, " \
    "detailed, and polite answers to the human's questions."

int mmbench_template_parse(const char *name, enum mmbench_template *out) {
    if (strcmp(name, "plain") == 0)
        *out = MMB_PLAIN;
    else if (strcmp(name, "vicuna_v1") == 0)
        *out = MMB_VICUNA_V1;
    else
        return err_set("template '%s' is not known (plain, vicuna_v1)", name);
    return 0;
}

/* LLaVA's MMBench prompt: "<image>\n{hint\n}{question}\nA. ..\n...\nAnswer with the option's letter ...",
 * in the conversation template when asked. */
static void mmb_prompt(const struct mmb *m, size_t row, const struct ds_item *it, struct buf *p) {
    if (m->tmpl == MMB_VICUNA_V1)
        buf_puts(p, MMB_VICUNA_SYSTEM " USER: ");
    buf_puts(p, "<image>\n");
    const char *hint = mmb_field(m, row, C_HINT);
    if (!is_none(hint))
        buf_printf(p, "%s\n", hint);
    buf_printf(p, "%s\n", it->question);
    for (int k = 0; k < it->noptions; k++)
        buf_printf(p, "%c. %s\n", 'A' + k, it->options[k]);
    buf_puts(p, "Answer with the option's letter from the given choices directly.");
    if (m->tmpl == MMB_VICUNA_V1)
        buf_puts(p, " ASSISTANT:");
}

/* The row's own fields: question, category, options and answer (errors without the line; the caller adds it).
 */
static int mmb_fill(const struct mmb *m, size_t row, struct ds_item *it) {
    it->question = (char *)mmb_field(m, row, C_QUESTION);
    it->category = (char *)mmb_field(m, row, C_CATEGORY);
    if (is_none(it->question))
        return err_set("empty question");
    if (!*it->category)
        return err_set("empty category");
    return mmb_options(m, row, it);
}

static int mmb_item(struct mmb *m, size_t row, struct mmbench_out *o) {
    struct ds_item it = {0};
    size_t owner;
    if (mmb_fill(m, row, &it) != 0 || mmb_image_owner(m, row, &owner) != 0)
        return err_prefix("%s:%zu", m->what, m->rows[row].line);
    if (mmb_store_image(m, owner, o) != 0)
        return -1; /* names the line that holds the image */
    char id[80], image_id[80];
    snprintf(id, sizeof id, "mmb-%s", mmb_field(m, row, C_INDEX));
    snprintf(image_id, sizeof image_id, "mmb-%s", mmb_field(m, owner, C_INDEX));
    struct buf prompt = {0};
    mmb_prompt(m, row, &it, &prompt);
    it.id = id;
    it.image = image_id;
    it.prompt = prompt.data;
    it.set = "general";
    it.modality = "image";
    it.split = "eval";
    int rc = ds_write_item(&o->items, &it);
    buf_free(&prompt);
    if (rc != 0)
        return err_prefix("%s:%zu", m->what, m->rows[row].line);
    o->nitems++;
    return 0;
}

/* The rows to import, in id order: those of the wanted split (when the file has a split column), the first
 * `limit` of them in file order. */
static int mmb_select(const struct mmb *m, const char *split, size_t limit, size_t **rows, size_t *n) {
    size_t *keep = xcalloc(m->nrows ? m->nrows : 1, sizeof *keep), k = 0;
    for (size_t i = 0; i < m->nrows && (limit == 0 || k < limit); i++)
        if (m->col[C_SPLIT] < 0 || strcmp(mmb_field(m, i, C_SPLIT), split) == 0)
            keep[k++] = i;
    if (k == 0 && m->col[C_SPLIT] >= 0 && m->nrows) {
        free(keep);
        return err_set("%s: no row has split '%s'", m->what, split);
    }
    qsort_r(keep, k, sizeof *keep, cmp_by_index, (void *)m);
    *rows = keep;
    *n = k;
    return 0;
}

static int mmb_items(struct mmb *m, const char *split, size_t limit, struct mmbench_out *o) {
    size_t *rows = NULL, n = 0;
    if (mmb_select(m, split, limit, &rows, &n) != 0)
        return -1;
    m->stored = xcalloc(m->nrows ? m->nrows : 1, 1);
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++)
        rc = mmb_item(m, rows[k], o);
    free(rows);
    return rc;
}

static void mmb_free(struct mmb *m) {
    for (size_t i = 0; i < m->nrows; i++)
        free(m->rows[i].f);
    free(m->rows);
    free(m->by_index);
    free(m->stored);
}

int mmbench_read(char *text, size_t n, const char *what, const char *split, size_t limit,
                 enum mmbench_template tmpl, struct mmbench_out *out) {
    if (memchr(text, '\0', n))
        return err_set("%s: holds a NUL byte (not a TSV file)", what);
    struct mmb m = {.what = what, .tmpl = tmpl};
    int rc =
        mmb_parse(&m, text, n) == 0 && mmb_index(&m) == 0 && mmb_items(&m, split, limit, out) == 0 ? 0 : -1;
    mmb_free(&m);
    return rc;
}

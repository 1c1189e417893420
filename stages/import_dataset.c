/* import_dataset: the "import-dataset" kind: a real benchmark from disk (a "pulse" directory, as made from
 * MLLMU-Bench by tools/mllmu_to_pulse.py, or an MMBench TSV) re-written in the data set format. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/dataset.h"
#include "engine/image.h"
#include "stages/stage.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"

#define IMPORT_MAX_FILE ((size_t)1 << 36)
/* MMBench's bare-index image references are short digit strings; real base64 images never are. */
#define MMB_REF_MAX 18

/* What every format fills: the five outputs (empty objects where a format has none of a kind). */
struct import_out {
    struct buf people, items, pretrain, finetune;
    struct ds_tar *images;
    size_t npeople, nitems, npretrain, nfinetune, nimages;
};

/* ---- images ---- */

static const char *image_ext(const void *data, size_t n) {
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const unsigned char *p = data;
    if (n >= 8 && memcmp(p, png, 8) == 0)
        return "png";
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return "jpg";
    return NULL;
}

/* Adds <id>.<ext> to the tar after checking that the bytes are a PNG or JPEG that decodes. */
static int add_image(struct import_out *o, const char *id, const void *data, size_t n, const char *what) {
    const char *ext = image_ext(data, n);
    if (!ext)
        return err_set("%s: neither PNG nor JPEG data", what);
    struct image im;
    if (image_decode(data, n, what, &im) != 0)
        return -1;
    image_free(&im);
    char name[96];
    snprintf(name, sizeof name, "%s.%s", id, ext);
    if (ds_tar_add(o->images, name, data, n) != 0)
        return err_prefix("%s", what);
    o->nimages++;
    return 0;
}

/* ---- strict base64 (RFC 4648, standard alphabet, padded, no whitespace) ---- */

static int b64_value(unsigned char ch) {
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* One 4-character group into up to 3 bytes; `last` allows '=' padding. Returns the byte count or -1. */
static int b64_group(const char *s, int last, unsigned char out[3]) {
    int pad = last ? (s[3] == '=') + (s[3] == '=' && s[2] == '=') : 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = i >= 4 - pad ? 0 : b64_value((unsigned char)s[i]);
        if (d < 0)
            return -1;
        v = v << 6 | (unsigned)d;
    }
    if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
        return -1; /* non-zero pad bits: a second spelling of the same bytes */
    out[0] = (unsigned char)(v >> 16);
    out[1] = (unsigned char)(v >> 8);
    out[2] = (unsigned char)v;
    return 3 - pad;
}

static int b64_decode(const char *s, size_t n, unsigned char **out, size_t *outn) {
    if (n == 0 || n % 4)
        return err_set("bad base64 (length %zu is not a positive multiple of 4)", n);
    unsigned char *p = xmalloc(n / 4 * 3);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int got = b64_group(s + i, i + 4 == n, p + k);
        if (got < 0) {
            free(p);
            return err_set("bad base64 near character %zu", i + 1);
        }
        k += (size_t)got;
    }
    *out = p;
    *outn = k;
    return 0;
}

/* ---- MMBench TSV ---- */

enum { C_INDEX, C_QUESTION, C_HINT, C_A, C_B, C_C, C_D, C_ANSWER, C_CATEGORY, C_IMAGE, C_SPLIT, MMB_NCOLS };
static const char *const mmb_cols[MMB_NCOLS] = {"index", "question", "hint",     "A",     "B",    "C",
                                                "D",     "answer",   "category", "image", "split"};
static const char mmb_required[MMB_NCOLS] = {1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0};

struct mmb_row {
    size_t line;
    char **f; /* nfields pointers into the file's text */
};

struct mmb {
    const char *path;
    char *text;
    size_t nfields;
    int col[MMB_NCOLS]; /* field number of each known column, -1 when absent */
    struct mmb_row *rows;
    size_t nrows;
    size_t *by_index; /* row numbers sorted by index, for duplicates and image references */
    char *stored;     /* per row: its image is in the tar */
};

static const char *mmb_field(const struct mmb *m, size_t row, int col) {
    return m->col[col] < 0 ? "" : m->rows[row].f[m->col[col]];
}

/* Counts the tab-separated fields of a line; with f, also cuts the line there and stores their starts. */
static size_t split_tabs(char *line, char **f) {
    size_t k = 0;
    for (char *p = line;; k++) {
        char *tab = strchr(p, '\t');
        if (f) {
            f[k] = p;
            if (tab)
                *tab = '\0';
        }
        if (!tab)
            return k + 1;
        p = tab + 1;
    }
}

static int mmb_header(struct mmb *m, char *line) {
    size_t n = split_tabs(line, NULL);
    char **f = xcalloc(n, sizeof *f);
    split_tabs(line, f);
    m->nfields = n;
    for (int c = 0; c < MMB_NCOLS; c++) {
        m->col[c] = -1;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(f[i], mmb_cols[c]) != 0)
                continue;
            if (m->col[c] >= 0) {
                free(f);
                return err_set("%s:1: column '%s' appears twice", m->path, mmb_cols[c]);
            }
            m->col[c] = (int)i;
        }
        if (m->col[c] < 0 && mmb_required[c]) {
            free(f);
            return err_set("%s:1: missing column '%s'", m->path, mmb_cols[c]);
        }
    }
    free(f);
    return 0;
}

/* The next line of the text in place (NUL-terminated, '\r' stripped), or NULL at the end. */
static char *next_line(char **pos) {
    char *s = *pos;
    if (!*s)
        return NULL;
    char *nl = strchr(s, '\n');
    *pos = nl ? nl + 1 : s + strlen(s);
    if (nl)
        *nl = '\0';
    size_t len = strlen(s);
    if (len && s[len - 1] == '\r')
        s[len - 1] = '\0';
    return s;
}

static int mmb_add_row(struct mmb *m, char *line, size_t lineno, size_t *cap) {
    size_t n = split_tabs(line, NULL);
    if (n != m->nfields)
        return err_set("%s:%zu: wrong number of fields (%zu, the header has %zu)", m->path, lineno, n,
                       m->nfields);
    if (m->nrows == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        m->rows = xrealloc(m->rows, *cap * sizeof *m->rows);
    }
    struct mmb_row *r = &m->rows[m->nrows++];
    r->line = lineno;
    r->f = xcalloc(n, sizeof *r->f);
    split_tabs(line, r->f);
    return 0;
}

static int mmb_parse(struct mmb *m) {
    char *pos = m->text, *line;
    size_t lineno = 0, cap = 0;
    int have_header = 0;
    while ((line = next_line(&pos))) {
        lineno++;
        if (!*line)
            continue; /* blank lines (a trailing one, typically) carry nothing */
        if (!have_header) {
            if (mmb_header(m, line) != 0)
                return -1;
            have_header = 1;
        } else if (mmb_add_row(m, line, lineno, &cap) != 0) {
            return -1;
        }
    }
    if (!have_header)
        return err_set("%s: empty file (no header row)", m->path);
    return 0;
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
                           m->path, m->rows[i].line, ix);
        m->by_index[i] = i;
    }
    qsort_r(m->by_index, m->nrows, sizeof *m->by_index, cmp_by_index, m);
    for (size_t k = 1; k < m->nrows; k++) {
        size_t a = m->by_index[k - 1], b = m->by_index[k];
        if (strcmp(mmb_field(m, a, C_INDEX), mmb_field(m, b, C_INDEX)) == 0)
            return err_set("%s:%zu: index %s repeats line %zu", m->path, m->rows[b > a ? b : a].line,
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

static int mmb_store_image(struct mmb *m, size_t owner, struct import_out *o) {
    if (m->stored[owner])
        return 0;
    const char *b64 = mmb_field(m, owner, C_IMAGE);
    unsigned char *bytes = NULL;
    size_t n = 0;
    char what[64];
    snprintf(what, sizeof what, "image of index %.40s", mmb_field(m, owner, C_INDEX));
    if (b64_decode(b64, strlen(b64), &bytes, &n) != 0)
        return err_prefix("%s:%zu: image", m->path, m->rows[owner].line);
    char id[80];
    snprintf(id, sizeof id, "mmb-%s", mmb_field(m, owner, C_INDEX));
    int rc = add_image(o, id, bytes, n, what);
    free(bytes);
    if (rc != 0)
        return err_prefix("%s:%zu", m->path, m->rows[owner].line);
    m->stored[owner] = 1;
    return 0;
}

static int present(const char *s) {
    return *s && strcmp(s, "nan") != 0;
}

/* Options A..D until the first empty (or "nan") one; the answer letter must name one of them. */
static int mmb_options(const struct mmb *m, size_t row, struct ds_item *it) {
    it->noptions = 0;
    for (int k = 0; k < 4 && present(mmb_field(m, row, C_A + k)); k++)
        it->options[it->noptions++] = (char *)mmb_field(m, row, C_A + k);
    if (it->noptions < 2)
        return err_set("%d option(s), at least 2 needed (A and B)", it->noptions);
    const char *ans = mmb_field(m, row, C_ANSWER);
    if (strlen(ans) != 1 || ans[0] < 'A' || ans[0] > 'D')
        return err_set("bad answer letter '%.20s' (A to D)", ans);
    it->answer = ans[0] - 'A';
    if (it->answer >= it->noptions)
        return err_set("answer %s is not among the %d options", ans, it->noptions);
    return 0;
}

/* LLaVA's MMBench prompt: "<image>\n{hint\n}{question}\nA. ..\n...\nAnswer with the option's letter ...". */
static void mmb_prompt(const struct mmb *m, size_t row, const struct ds_item *it, struct buf *p) {
    buf_puts(p, "<image>\n");
    const char *hint = mmb_field(m, row, C_HINT);
    if (present(hint))
        buf_printf(p, "%s\n", hint);
    buf_printf(p, "%s\n", it->question);
    for (int k = 0; k < it->noptions; k++)
        buf_printf(p, "%c. %s\n", 'A' + k, it->options[k]);
    buf_puts(p, "Answer with the option's letter from the given choices directly.");
}

/* The row's own fields: question, category, options and answer (errors without the line; the caller adds it).
 */
static int mmb_fill(const struct mmb *m, size_t row, struct ds_item *it) {
    it->question = (char *)mmb_field(m, row, C_QUESTION);
    it->category = (char *)mmb_field(m, row, C_CATEGORY);
    if (!present(it->question))
        return err_set("empty question");
    if (!*it->category)
        return err_set("empty category");
    return mmb_options(m, row, it);
}

static int mmb_item(struct mmb *m, size_t row, struct import_out *o) {
    struct ds_item it = {0};
    size_t owner;
    if (mmb_fill(m, row, &it) != 0 || mmb_image_owner(m, row, &owner) != 0)
        return err_prefix("%s:%zu", m->path, m->rows[row].line);
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
        return err_prefix("%s:%zu", m->path, m->rows[row].line);
    o->nitems++;
    return 0;
}

/* The rows to import, in id order: those of the wanted split (when the file has a split column), the first
 * `limit` of them in file order. */
static int mmb_select(const struct mmb *m, const char *split, int64_t limit, size_t **rows, size_t *n) {
    size_t *keep = xcalloc(m->nrows ? m->nrows : 1, sizeof *keep), k = 0;
    for (size_t i = 0; i < m->nrows && (limit == 0 || (int64_t)k < limit); i++)
        if (m->col[C_SPLIT] < 0 || strcmp(mmb_field(m, i, C_SPLIT), split) == 0)
            keep[k++] = i;
    if (k == 0 && m->col[C_SPLIT] >= 0 && m->nrows) {
        free(keep);
        return err_set("%s: no row has split '%s'", m->path, split);
    }
    qsort_r(keep, k, sizeof *keep, cmp_by_index, (void *)m);
    *rows = keep;
    *n = k;
    return 0;
}

static void mmb_free(struct mmb *m) {
    for (size_t i = 0; i < m->nrows; i++)
        free(m->rows[i].f);
    free(m->rows);
    free(m->by_index);
    free(m->stored);
    free(m->text);
}

static int mmb_items(struct mmb *m, const char *split, int64_t limit, struct import_out *o) {
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

static int import_mmbench(const char *path, const char *split, int64_t limit, struct import_out *o) {
    struct mmb m = {.path = path};
    size_t n;
    if (fsio_read_file(path, IMPORT_MAX_FILE, &m.text, &n) != 0)
        return -1;
    if (strlen(m.text) != n) {
        free(m.text);
        return err_set("%s: holds a NUL byte (not a TSV file)", path);
    }
    int rc = mmb_parse(&m) == 0 && mmb_index(&m) == 0 && mmb_items(&m, split, limit, o) == 0 ? 0 : -1;
    mmb_free(&m);
    return rc;
}

/* ---- pulse directory ---- */

struct pulse {
    const char *dir;
    char *people_path, *items_path, *pretrain_path, *finetune_path;
    struct ds_people people;
    struct ds_items items;
    struct ds_examples pretrain, finetune;
    void *tar; /* the images, canonical */
    size_t tar_n;
    struct ds_images *index;
};

static char *join(const char *dir, const char *name) {
    struct buf b = {0};
    buf_printf(&b, "%s/%s", dir, name);
    return buf_take(&b);
}

/* Reads dir/name when it exists; an absent file reads as empty. */
static int read_optional(const char *path, char **text, size_t *n) {
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        *text = xstrdup("");
        *n = 0;
        return 0;
    }
    return fsio_read_file(path, IMPORT_MAX_FILE, text, n);
}

static int pulse_read_records(struct pulse *p) {
    const char *paths[4] = {p->people_path, p->items_path, p->pretrain_path, p->finetune_path};
    char *t[4] = {0};
    size_t n[4];
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++)
        rc = read_optional(paths[i], &t[i], &n[i]);
    if (rc == 0)
        rc = ds_read_people(t[0], n[0], paths[0], &p->people);
    if (rc == 0)
        rc = ds_read_items(t[1], n[1], paths[1], &p->items);
    if (rc == 0)
        rc = ds_read_examples(t[2], n[2], paths[2], &p->pretrain);
    if (rc == 0)
        rc = ds_read_examples(t[3], n[3], paths[3], &p->finetune);
    for (int i = 0; i < 4; i++)
        free(t[i]);
    return rc;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The id in an images/ file name, "<id>.png" or "<id>.jpg"; -1 for any other name. */
static int image_name_id(const char *name, char id[80], const char **ext) {
    const char *dot = strrchr(name, '.');
    if (!dot || (strcmp(dot, ".png") && strcmp(dot, ".jpg")) || dot - name >= 80)
        return -1;
    memcpy(id, name, (size_t)(dot - name));
    id[dot - name] = '\0';
    *ext = dot + 1;
    return ds_id_valid(id) ? 0 : -1;
}

/* Adds one file of images/ after checking its name and that it holds what its extension says. */
static int pulse_dir_image(struct import_out *o, const char *dir, const char *name) {
    char id[80], *path = join(dir, name), *data = NULL;
    const char *want, *got;
    size_t n;
    int rc;
    if (image_name_id(name, id, &want) != 0)
        rc = err_set("%s: not an image name (<id>.png or <id>.jpg, ids of [A-Za-z0-9_.-])", path);
    else if (fsio_read_file(path, IMPORT_MAX_FILE, &data, &n) != 0)
        rc = -1;
    else if ((got = image_ext(data, n)) && strcmp(got, want) != 0)
        rc = err_set("%s: named .%s but holds %s data", path, want, strcmp(got, "png") ? "JPEG" : "PNG");
    else
        rc = add_image(o, id, data, n, path);
    free(data);
    free(path);
    return rc;
}

static int pulse_images_dir(struct import_out *o, const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return err_errno("%s", dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == cap)
            names = xrealloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names); /* so that the first bad file reported is always the same */
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = pulse_dir_image(o, dir, names[i]);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int pulse_images_tar(struct import_out *o, const char *path) {
    char *tar;
    size_t n;
    struct ds_images *im;
    if (fsio_read_file(path, IMPORT_MAX_FILE, &tar, &n) != 0)
        return -1;
    if (ds_images_open(tar, n, path, &im) != 0) {
        free(tar);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < ds_images_count(im) && rc == 0; i++) {
        const char *id = ds_images_id(im, i);
        const void *data;
        size_t len;
        char what[4200];
        snprintf(what, sizeof what, "%s: image '%s'", path, id);
        rc = ds_images_get(im, id, &data, &len) == 0 ? add_image(o, id, data, len, what) : -1;
    }
    ds_images_free(im);
    free(tar);
    return rc;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* images/ or images.tar (not both) into o->images, then that tar indexed for reference checks. */
static int pulse_images(struct pulse *p, struct import_out *o) {
    char *dir = join(p->dir, "images"), *tar = join(p->dir, "images.tar");
    int rc = 0;
    if (exists(dir) && exists(tar))
        rc = err_set("%s: has both images/ and images.tar (keep one)", p->dir);
    else if (exists(dir))
        rc = is_dir(dir) ? pulse_images_dir(o, dir) : err_set("%s: not a directory", dir);
    else if (exists(tar))
        rc = pulse_images_tar(o, tar);
    free(dir);
    free(tar);
    if (rc != 0)
        return -1;
    struct ds_tar *t = o->images;
    o->images = NULL;
    if (ds_tar_finish(t, &p->tar, &p->tar_n) != 0)
        return -1;
    return ds_images_open(p->tar, p->tar_n, "images", &p->index);
}

static int need_image(const struct pulse *p, const char *id, const char *what, const char *owner) {
    const void *d;
    size_t n;
    if (id && ds_images_get(p->index, id, &d, &n) != 0)
        return err_set("%s: %s refers to image '%s', which is not among the images", what, owner, id);
    return 0;
}

static int need_person(const struct pulse *p, const char *id, const char *what, const char *owner) {
    if (id && ds_find_person(&p->people, id) < 0)
        return err_set("%s: %s is about person '%s', who is not in people.jsonl", what, owner, id);
    return 0;
}

static int check_people(const struct pulse *p) {
    for (size_t i = 0; i < p->people.n; i++) {
        const struct ds_person *q = &p->people.v[i];
        char owner[100];
        snprintf(owner, sizeof owner, "person '%s'", q->id);
        for (size_t k = 0; k < q->nphotos; k++)
            if (need_image(p, q->photos[k], p->people_path, owner) != 0)
                return -1;
        for (size_t k = 0; k < q->ntest_photos; k++)
            if (need_image(p, q->test_photos[k], p->people_path, owner) != 0)
                return -1;
    }
    return 0;
}

static int check_items(const struct pulse *p) {
    for (size_t i = 0; i < p->items.n; i++) {
        const struct ds_item *it = &p->items.v[i];
        char owner[100];
        snprintf(owner, sizeof owner, "item '%s'", it->id);
        if (need_image(p, it->image, p->items_path, owner) != 0 ||
            need_person(p, it->person, p->items_path, owner) != 0)
            return -1;
    }
    return 0;
}

static int check_examples(const struct pulse *p, const struct ds_examples *ex, const char *what) {
    for (size_t i = 0; i < ex->n; i++) {
        char owner[100];
        snprintf(owner, sizeof owner, "example '%s'", ex->v[i].id);
        if (need_image(p, ex->v[i].image, what, owner) != 0 ||
            need_person(p, ex->v[i].person, what, owner) != 0)
            return -1;
    }
    return 0;
}

static int cmp_person(const void *a, const void *b) {
    return strcmp(((const struct ds_person *)a)->id, ((const struct ds_person *)b)->id);
}
static int cmp_item(const void *a, const void *b) {
    return strcmp(((const struct ds_item *)a)->id, ((const struct ds_item *)b)->id);
}
static int cmp_example(const void *a, const void *b) {
    return strcmp(((const struct ds_example *)a)->id, ((const struct ds_example *)b)->id);
}

static int write_examples(struct ds_examples *ex, struct buf *out, size_t *count) {
    qsort(ex->v, ex->n, sizeof *ex->v, cmp_example);
    for (size_t i = 0; i < ex->n; i++)
        if (ds_write_example(out, &ex->v[i]) != 0)
            return -1;
    *count = ex->n;
    return 0;
}

/* Canonical lines in id order; `limit` keeps the first items of that order. */
static int pulse_write(struct pulse *p, int64_t limit, struct import_out *o) {
    qsort(p->people.v, p->people.n, sizeof *p->people.v, cmp_person);
    qsort(p->items.v, p->items.n, sizeof *p->items.v, cmp_item);
    for (size_t i = 0; i < p->people.n; i++)
        if (ds_write_person(&o->people, &p->people.v[i]) != 0)
            return -1;
    o->npeople = p->people.n;
    size_t nitems = limit > 0 && (uint64_t)limit < p->items.n ? (size_t)limit : p->items.n;
    for (size_t i = 0; i < nitems; i++)
        if (ds_write_item(&o->items, &p->items.v[i]) != 0)
            return -1;
    o->nitems = nitems;
    if (write_examples(&p->pretrain, &o->pretrain, &o->npretrain) != 0 ||
        write_examples(&p->finetune, &o->finetune, &o->nfinetune) != 0)
        return -1;
    return 0;
}

static void pulse_free(struct pulse *p) {
    ds_people_free(&p->people);
    ds_items_free(&p->items);
    ds_examples_free(&p->pretrain);
    ds_examples_free(&p->finetune);
    ds_images_free(p->index);
    free(p->tar);
    free(p->people_path);
    free(p->items_path);
    free(p->pretrain_path);
    free(p->finetune_path);
}

static int import_pulse(const char *dir, int64_t limit, struct import_out *o, void **tar, size_t *tar_n) {
    struct pulse p = {.dir = dir};
    if (!is_dir(dir))
        return err_set("%s: not a directory (format 'pulse' reads a directory)", dir);
    p.people_path = join(dir, "people.jsonl");
    p.items_path = join(dir, "items.jsonl");
    p.pretrain_path = join(dir, "pretrain.jsonl");
    p.finetune_path = join(dir, "finetune.jsonl");
    int rc = pulse_read_records(&p) == 0 && pulse_images(&p, o) == 0 && check_people(&p) == 0 &&
                     check_items(&p) == 0 && check_examples(&p, &p.pretrain, p.pretrain_path) == 0 &&
                     check_examples(&p, &p.finetune, p.finetune_path) == 0 && pulse_write(&p, limit, o) == 0
                 ? 0
                 : -1;
    if (rc == 0) {
        *tar = p.tar;
        *tar_n = p.tar_n;
        p.tar = NULL;
    }
    pulse_free(&p);
    return rc;
}

/* ---- the kind ---- */

static int emit(struct stage_ctx *c, struct import_out *o, const void *tar, size_t tar_n) {
    struct buf *jsonl[4] = {&o->people, &o->items, &o->pretrain, &o->finetune};
    const char *names[4] = {"people", "items", "pretrain", "finetune"};
    const char *types[4] = {"people.jsonl", "items.jsonl", "examples.jsonl", "examples.jsonl"};
    size_t counts[4] = {o->npeople, o->nitems, o->npretrain, o->nfinetune};
    for (int i = 0; i < 4; i++)
        if (stage_output(c, names[i], jsonl[i]->data ? jsonl[i]->data : "", jsonl[i]->len, types[i]) != 0 ||
            stage_metric(c, names[i], (double)counts[i]) != 0)
            return -1;
    if (stage_output(c, "images", tar, tar_n, "images.tar") != 0)
        return -1;
    return stage_metric(c, "images", (double)o->nimages);
}

static void out_free(struct import_out *o) {
    buf_free(&o->people);
    buf_free(&o->items);
    buf_free(&o->pretrain);
    buf_free(&o->finetune);
    ds_tar_free(o->images);
}

static int import_run(struct stage_ctx *c) {
    const char *format = stage_str(c, "format"), *path = stage_str(c, "path");
    int64_t limit = stage_int(c, "limit");
    int mmbench = strcmp(format, "mmbench") == 0;
    if (!mmbench && strcmp(format, "pulse") != 0)
        return err_set("parameter 'format' must be \"pulse\" or \"mmbench\", got '%s'", format);
    if (limit < 0)
        return err_set("parameter 'limit' must be 0 (all) or more, got %lld", (long long)limit);
    struct import_out o = {.images = ds_tar_new()};
    void *tar = NULL;
    size_t tar_n = 0;
    int rc = mmbench ? import_mmbench(path, stage_str(c, "split"), limit, &o)
                     : import_pulse(path, limit, &o, &tar, &tar_n);
    if (rc == 0 && mmbench) {
        struct ds_tar *t = o.images;
        o.images = NULL;
        rc = ds_tar_finish(t, &tar, &tar_n);
    }
    if (rc == 0)
        rc = emit(c, &o, tar, tar_n);
    free(tar);
    out_free(&o);
    return rc;
}

static const struct param_spec import_params[] = {
    {"format", PARAM_STR, NULL,
     "\"pulse\" (a directory, as tools/mllmu_to_pulse.py writes) or \"mmbench\" (a TSV)"},
    {"path", PARAM_PATH, NULL,
     "the directory or file to import (relative paths start at the manifest's directory)"},
    {"split", PARAM_STR, "\"dev\"",
     "MMBench: the rows whose split column equals this (when the column exists)"},
    {"limit", PARAM_INT, "0",
     "at most this many items (MMBench: the first rows kept; pulse: the first ids); 0 = all"},
};
static const char *const import_outputs[] = {"people", "items", "pretrain", "finetune", "images"};

const struct stage_kind kind_import_dataset = {
    .schema = {"import-dataset", 1, import_params, 4, import_outputs, 5},
    .summary =
        "a data set from disk (a pulse directory from MLLMU-Bench, or an MMBench TSV), in the store's format",
    .run = import_run,
};

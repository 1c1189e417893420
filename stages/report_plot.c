/* report_plot: the report's sustainability chart, as SVG text and as a PNG.
 *
 * One drawing routine walks the chart and calls a painter (lines, polylines, markers, text); an SVG painter
 * prints elements and a raster painter sets pixels, so the two files show the same chart from the same
 * coordinates. Coordinates are printed with one decimal and rounded the same way every time, so the bytes are
 * a function of the chart alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/report.h"
#include "util/buf.h"
#include "util/err.h"

/* Layout in pixels: a title band, one row of five panels per knowledge type, a legend band. */
#define TOP 30
#define ROW_H 228
#define LEGEND_H 42
#define PANEL_W 198
#define PANEL_X 10   /* left edge of the first panel */
#define PLOT_DX 38   /* plot area's left edge within a panel: room for the y labels */
#define PLOT_W 150   /* plot area's width */
#define PLOT_DY 24   /* plot area's top within a row: room for the panel title */
#define PLOT_H 160   /* plot area's height: 100 % */
#define MARKER_R 2.5 /* marker radius */

static const uint8_t ink[3] = {0x33, 0x33, 0x33}, grid[3] = {0xdd, 0xdd, 0xdd}, grey[3] = {0x88, 0x88, 0x88};

int report_chart_height(size_t nrows) {
    return TOP + (int)(nrows ? nrows : 1) * ROW_H + LEGEND_H;
}

double report_x(int panel, int round, int nrounds) {
    return PANEL_X + panel * PANEL_W + PLOT_DX + (double)round * PLOT_W / (nrounds > 0 ? nrounds : 1);
}

double report_y(size_t row, double value) {
    return TOP + (double)row * ROW_H + PLOT_DY + PLOT_H - value * PLOT_H;
}

void report_method_colour(const char *method, uint8_t rgb[3]) {
    static const struct {
        const char *name;
        uint32_t rgb;
    } fixed[] = {{"ga", 0x1f77b4}, {"ga_klr", 0xff7f0e}, {"npo", 0x2ca02c}, {"none", 0x7f7f7f}};
    static const uint32_t palette[] = {0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x17becf, 0xbcbd22};
    uint32_t c = 0;
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
        if (strcmp(method, fixed[k].name) == 0)
            c = fixed[k].rgb;
    if (!c) {
        /* FNV-1a of the name: a method keeps its colour whatever other methods a report holds. */
        uint32_t h = 2166136261u;
        for (const char *s = method; *s; s++)
            h = (h ^ (unsigned char)*s) * 16777619u;
        c = palette[h % (sizeof palette / sizeof palette[0])];
    }
    rgb[0] = (uint8_t)(c >> 16), rgb[1] = (uint8_t)(c >> 8), rgb[2] = (uint8_t)c;
}

/* ---- the drawing, painter-independent ------------------------------------------------------------------ */

enum { ALIGN_LEFT, ALIGN_CENTER, ALIGN_RIGHT };

struct painter {
    void *arg;
    void (*line)(void *arg, double x0, double y0, double x1, double y1, const uint8_t rgb[3], int width,
                 int dashed);
    void (*poly)(void *arg, const double *xy, size_t n, const uint8_t rgb[3], const char *method);
    void (*marker)(void *arg, double x, double y, const uint8_t rgb[3]);
    /* (x, y): the anchor on the text's top edge; scale 1 is a 7-pixel-high line. */
    void (*text)(void *arg, double x, double y, int align, int scale, const char *s, const uint8_t rgb[3]);
};

/* Rounds between two x ticks: at most about ten ticks per panel. */
static int tick_step(int nrounds) {
    static const int steps[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++)
        if (nrounds / steps[k] <= 10)
            return steps[k];
    return nrounds;
}

static void draw_axes(const struct report_chart *c, size_t row, int panel, const struct painter *p) {
    double x0 = report_x(panel, 0, 1), x1 = report_x(panel, 1, 1), yb = report_y(row, 0);
    char label[32];
    for (int v = 0; v <= 100; v += 25) {
        double y = report_y(row, v / 100.0);
        p->line(p->arg, x0, y, x1, y, grid, 1, 0);
        snprintf(label, sizeof label, "%d", v);
        p->text(p->arg, x0 - 5, y - 3, ALIGN_RIGHT, 1, label, ink);
    }
    p->line(p->arg, x0, report_y(row, 1), x0, yb, ink, 1, 0);
    p->line(p->arg, x0, yb, x1, yb, ink, 1, 0);
    int step = tick_step(c->nrounds);
    for (int r = 0; r <= c->nrounds; r += step) {
        double x = report_x(panel, r, c->nrounds);
        p->line(p->arg, x, yb, x, yb + 3, ink, 1, 0);
        snprintf(label, sizeof label, "%d", r);
        p->text(p->arg, x, yb + 6, ALIGN_CENTER, 1, label, ink);
    }
    p->text(p->arg, (x0 + x1) / 2, yb + 18, ALIGN_CENTER, 1, "round", ink);
    char title[96];
    snprintf(title, sizeof title, "%s: %s (%%)", c->rows[row].knowledge, report_col_title[panel]);
    p->text(p->arg, (x0 + x1) / 2, report_y(row, 1) - 16, ALIGN_CENTER, 1, title, ink);
}

/* A curve's points in one panel; returns how many (rounds whose value is present). */
static size_t curve_points(const struct report_chart *c, const struct report_curve *cv, size_t row, int panel,
                           double *xy) {
    size_t n = 0;
    for (int r = 0; r <= c->nrounds; r++) {
        double v = cv->y[(size_t)r * REPORT_NCOLS + (size_t)panel];
        if (v < 0)
            continue;
        xy[2 * n] = report_x(panel, r, c->nrounds);
        xy[2 * n + 1] = report_y(row, v);
        n++;
    }
    return n;
}

/* A bar of one standard deviation either side of each point that has one (clipped to the axis), with caps. */
static void draw_bars(const struct report_chart *c, const struct report_curve *cv, size_t row, int panel,
                      const struct painter *p, const uint8_t rgb[3]) {
    for (int r = 0; r <= c->nrounds; r++) {
        double v = cv->y[(size_t)r * REPORT_NCOLS + (size_t)panel];
        double sd = cv->sd[(size_t)r * REPORT_NCOLS + (size_t)panel];
        if (v < 0 || sd <= 0)
            continue;
        double x = report_x(panel, r, c->nrounds), lo = report_y(row, fmax(v - sd, 0)),
               hi = report_y(row, fmin(v + sd, 1));
        p->line(p->arg, x, lo, x, hi, rgb, 1, 0);
        p->line(p->arg, x - 3, lo, x + 3, lo, rgb, 1, 0);
        p->line(p->arg, x - 3, hi, x + 3, hi, rgb, 1, 0);
    }
}

/* Dashed single-shot lines first, then the curves and their bars, then the markers on top of every line. */
static void draw_curves(const struct report_chart *c, size_t row, int panel, const struct painter *p,
                        double *xy) {
    const struct report_row *rw = &c->rows[row];
    uint8_t rgb[3];
    for (size_t k = 0; k < rw->ncurves; k++) {
        double v = rw->curves[k].single[panel];
        report_method_colour(rw->curves[k].method, rgb);
        if (v >= 0)
            p->line(p->arg, report_x(panel, 0, 1), report_y(row, v), report_x(panel, 1, 1), report_y(row, v),
                    rgb, 1, 1);
    }
    for (size_t k = 0; k < rw->ncurves; k++) {
        size_t n = curve_points(c, &rw->curves[k], row, panel, xy);
        report_method_colour(rw->curves[k].method, rgb);
        if (n)
            p->poly(p->arg, xy, n, rgb, rw->curves[k].method);
        draw_bars(c, &rw->curves[k], row, panel, p, rgb);
    }
    for (size_t k = 0; k < rw->ncurves; k++) {
        size_t n = curve_points(c, &rw->curves[k], row, panel, xy);
        report_method_colour(rw->curves[k].method, rgb);
        for (size_t i = 0; i < n; i++)
            p->marker(p->arg, xy[2 * i], xy[2 * i + 1], rgb);
    }
}

static int seen_before(const struct report_chart *c, size_t row, size_t k) {
    for (size_t r = 0; r <= row; r++)
        for (size_t j = 0; j < (r < row ? c->rows[r].ncurves : k); j++)
            if (strcmp(c->rows[r].curves[j].method, c->rows[row].curves[k].method) == 0)
                return 1;
    return 0;
}

static double legend_item(const struct painter *p, double x, double y, const char *name, const uint8_t rgb[3],
                          int dashed) {
    p->line(p->arg, x, y + 3, x + 20, y + 3, rgb, dashed ? 1 : 2, dashed);
    if (!dashed)
        p->marker(p->arg, x + 10, y + 3, rgb);
    p->text(p->arg, x + 26, y, ALIGN_LEFT, 1, name, ink);
    return x + 26 + report_font_width(name) + 24;
}

/* Every method once, in the order the rows first show them, then what the dashed lines mean. */
static void draw_legend(const struct report_chart *c, const struct painter *p) {
    double x = report_x(0, 0, 1), y = TOP + (double)c->nrows * ROW_H + 14;
    uint8_t rgb[3];
    for (size_t r = 0; r < c->nrows; r++)
        for (size_t k = 0; k < c->rows[r].ncurves; k++) {
            if (seen_before(c, r, k))
                continue;
            report_method_colour(c->rows[r].curves[k].method, rgb);
            x = legend_item(p, x, y, c->rows[r].curves[k].method, rgb, 0);
        }
    x = legend_item(p, x, y, "single-shot run", grey, 1);
    char note[128];
    snprintf(note, sizeof note, "round 0: before unlearning; y: %s accuracy%s",
             c->scoring ? c->scoring : "greedy", c->seeds ? ", mean over seeds, bars 1 sd" : "");
    p->text(p->arg, x, y, ALIGN_LEFT, 1, note, ink);
}

static void draw_chart(const struct report_chart *c, const struct painter *p) {
    p->text(p->arg, REPORT_WIDTH / 2.0, 8, ALIGN_CENTER, 2, c->title, ink);
    if (c->nrows == 0) {
        p->text(p->arg, REPORT_WIDTH / 2.0, report_chart_height(0) / 2.0 - 7, ALIGN_CENTER, 2,
                "no sequential runs", grey);
        return;
    }
    double *xy = xmalloc(sizeof *xy * 2 * ((size_t)c->nrounds + 1));
    for (size_t row = 0; row < c->nrows; row++)
        for (int panel = 0; panel < REPORT_NCOLS; panel++) {
            draw_axes(c, row, panel, p);
            draw_curves(c, row, panel, p, xy);
        }
    free(xy);
    draw_legend(c, p);
}

/* ---- SVG ----------------------------------------------------------------------------------------------- */

static void svg_escaped(struct buf *b, const char *s) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '&')
            buf_puts(b, "&amp;");
        else if (ch == '<')
            buf_puts(b, "&lt;");
        else if (ch == '>')
            buf_puts(b, "&gt;");
        else if (ch == '"')
            buf_puts(b, "&quot;");
        else
            buf_putc(b, ch < 0x20 ? ' ' : (char)ch); /* XML 1.0 has no control characters */
    }
}

static void svg_line(void *arg, double x0, double y0, double x1, double y1, const uint8_t rgb[3], int width,
                     int dashed) {
    buf_printf(arg, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#%02x%02x%02x\"", x0, y0,
               x1, y1, rgb[0], rgb[1], rgb[2]);
    buf_printf(arg, " stroke-width=\"%d\"%s/>\n", width, dashed ? " stroke-dasharray=\"4 3\"" : "");
}

static void svg_poly(void *arg, const double *xy, size_t n, const uint8_t rgb[3], const char *method) {
    struct buf *b = arg;
    buf_puts(b, "<polyline data-method=\"");
    svg_escaped(b, method);
    buf_printf(b, "\" fill=\"none\" stroke=\"#%02x%02x%02x\" stroke-width=\"2\" points=\"", rgb[0], rgb[1],
               rgb[2]);
    for (size_t i = 0; i < n; i++)
        buf_printf(b, "%s%.1f,%.1f", i ? " " : "", xy[2 * i], xy[2 * i + 1]);
    buf_puts(b, "\"/>\n");
}

static void svg_marker(void *arg, double x, double y, const uint8_t rgb[3]) {
    buf_printf(arg, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"#%02x%02x%02x\"/>\n", x, y, MARKER_R,
               rgb[0], rgb[1], rgb[2]);
}

static void svg_text(void *arg, double x, double y, int align, int scale, const char *s,
                     const uint8_t rgb[3]) {
    static const char *const anchor[] = {"start", "middle", "end"};
    buf_printf(arg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\" fill=\"#%02x%02x%02x\">",
               x, y + 7.0 * scale, anchor[align], 10 * scale, rgb[0], rgb[1], rgb[2]);
    svg_escaped(arg, s);
    buf_puts(arg, "</text>\n");
}

char *report_svg(const struct report_chart *c, size_t *n) {
    struct buf b = {0};
    int h = report_chart_height(c->nrows);
    buf_printf(&b,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"monospace\">\n",
               REPORT_WIDTH, h, REPORT_WIDTH, h);
    buf_printf(&b, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", REPORT_WIDTH, h);
    struct painter p = {&b, svg_line, svg_poly, svg_marker, svg_text};
    draw_chart(c, &p);
    buf_puts(&b, "</svg>\n");
    *n = b.len;
    return buf_take(&b);
}

/* ---- PNG ----------------------------------------------------------------------------------------------- */

static int px(double v) {
    return (int)floor(v + 0.5);
}

static void dot(struct image *im, int x, int y, const uint8_t rgb[3]) {
    if (x < 0 || y < 0 || x >= im->w || y >= im->h)
        return;
    uint8_t *q = im->rgb + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
    q[0] = rgb[0], q[1] = rgb[1], q[2] = rgb[2];
}

/* Bresenham's line; each step stamps a width x width square; dashed lines draw 4 steps of every 7. */
static void png_line(void *arg, double fx0, double fy0, double fx1, double fy1, const uint8_t rgb[3],
                     int width, int dashed) {
    int x0 = px(fx0), y0 = px(fy0), x1 = px(fx1), y1 = px(fy1);
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (int step = 0;; step++) {
        if (!dashed || step % 7 < 4)
            for (int j = 0; j < width; j++)
                for (int i = 0; i < width; i++)
                    dot(arg, x0 + i, y0 + j, rgb);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * e;
        if (e2 >= dy)
            e += dy, x0 += sx;
        if (e2 <= dx)
            e += dx, y0 += sy;
    }
}

static void png_poly(void *arg, const double *xy, size_t n, const uint8_t rgb[3], const char *method) {
    (void)method;
    for (size_t i = 0; i + 1 < n; i++)
        png_line(arg, xy[2 * i], xy[2 * i + 1], xy[2 * i + 2], xy[2 * i + 3], rgb, 2, 0);
}

static void png_marker(void *arg, double x, double y, const uint8_t rgb[3]) {
    int cx = px(x), cy = px(y), r = (int)MARKER_R + 1;
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            if (dx * dx + dy * dy <= (int)(MARKER_R * MARKER_R + 1))
                dot(arg, cx + dx, cy + dy, rgb);
}

static void png_text(void *arg, double x, double y, int align, int scale, const char *s,
                     const uint8_t rgb[3]) {
    int w = report_font_width(s) * scale - scale; /* no gap after the last glyph */
    int left = align == ALIGN_LEFT ? px(x) : align == ALIGN_CENTER ? px(x - w / 2.0) : px(x) - w;
    report_font_draw(arg, left, px(y), scale, s, rgb);
}

int report_png(const struct report_chart *c, void **png, size_t *n) {
    struct image im;
    if (image_alloc(&im, REPORT_WIDTH, report_chart_height(c->nrows)) != 0)
        return err_prefix("report: png");
    memset(im.rgb, 0xff, (size_t)im.w * (size_t)im.h * 3);
    struct painter p = {&im, png_line, png_poly, png_marker, png_text};
    draw_chart(c, &p);
    int rc = image_png_encode(&im, png, n);
    image_free(&im);
    return rc == 0 ? 0 : err_prefix("report: png");
}

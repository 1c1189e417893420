/* report: the interface between the files of the `report` stage kind (tables and plots of PULSE results).
 *
 *   report.c       the kind: metrics objects in, validated and sorted; the views; Markdown, CSV and JSON out
 *   report_plot.c  the sustainability chart as hand-written SVG and as a rasterized PNG, from one layout
 *   report_font.c  a 5 x 7 bitmap font for the PNG's labels
 *
 * The chart is plain data so the plot files know nothing of metrics objects; the layout functions are public
 * so that tests can find where a line must have been drawn. */
#ifndef PULSE_STAGES_REPORT_H
#define PULSE_STAGES_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include "engine/image.h"

/* The five columns of the tables and panels of the chart, in order: set names and their titles. */
#define REPORT_NCOLS 5
extern const char *const report_col_set[REPORT_NCOLS];
extern const char *const report_col_title[REPORT_NCOLS];

/* One method's sequential curve in one knowledge type. Values are accuracies in [0, 1] by the report's
 * scoring (greedy letter or likelihood), or -1 where the run or its set is absent; a run over several seeds
 * is their mean, with its sample standard deviation in sd (-1: fewer than two seeds). */
struct report_curve {
    const char *method;
    double *y;                   /* (nrounds + 1) x REPORT_NCOLS, round-major; round 0 is before unlearning */
    double *sd;                  /* the same shape */
    double single[REPORT_NCOLS]; /* the single-shot run's accuracy */
};

/* One row of panels: one knowledge type. */
struct report_row {
    const char *knowledge;
    struct report_curve *curves;
    size_t ncurves;
};

/* No rows means "no sequential runs". At most REPORT_MAX_ROWS rows. */
struct report_chart {
    const char *title;
    const char *scoring; /* what the y axis is: "greedy" or "likelihood" accuracy (NULL: greedy) */
    int seeds;           /* runs over seeds: points are means, with bars of one standard deviation */
    int nrounds;         /* x runs 0..nrounds */
    struct report_row *rows;
    size_t nrows;
};
#define REPORT_MAX_ROWS 2

/* report_plot.c. report_svg never fails (a malloc'd string, its length in *n); report_png gives -1 with
 * err_set only if the encoder fails. */
char *report_svg(const struct report_chart *c, size_t *n);
int report_png(const struct report_chart *c, void **png, size_t *n);
/* The fixed colour of a method: the three standard ones have their own, others one of a palette by name. */
void report_method_colour(const char *method, uint8_t rgb[3]);
/* Layout, in pixels (the SVG's user units): the chart's size, and where a point lies. */
#define REPORT_WIDTH 1000
int report_chart_height(size_t nrows);
double report_x(int panel, int round, int nrounds);
double report_y(size_t row, double value);

/* report_font.c. Glyphs are REPORT_FONT_W x REPORT_FONT_H; text advances REPORT_FONT_ADVANCE per character.
 * Bytes outside printable ASCII draw as '?', one per UTF-8 character. */
#define REPORT_FONT_W 5
#define REPORT_FONT_H 7
#define REPORT_FONT_ADVANCE 6
/* Row `row` (0 = top) of the glyph of ch as a 5-bit mask, leftmost pixel in bit 4; -1 if ch is not printable
 * ASCII or the glyph table is malformed (the tests check every glyph). */
int report_font_row(int ch, int row);
int report_font_width(const char *s);
/* Draws s with its top-left corner at (x, y), scaled by `scale` (1 or more); pixels outside im are skipped.
 */
void report_font_draw(struct image *im, int x, int y, int scale, const char *s, const uint8_t rgb[3]);

#endif

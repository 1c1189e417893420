/* mmbench: MMBench's published TSV (index, question, hint, A-D, answer, category, image as base64, ...) read
 * into the data set format of docs/datasets.md: one multiple-choice item per kept row, each picture once. */
#ifndef PULSE_ENGINE_MMBENCH_H
#define PULSE_ENGINE_MMBENCH_H

#include <stddef.h>
#include "engine/dataset.h"
#include "util/buf.h"

struct mmbench_out {
    struct buf items;      /* items.jsonl lines (canonical, in id order) are appended here */
    struct ds_tar *images; /* the caller's tar: receives "mmb-<index>.png" / ".jpg" */
    size_t nitems, nimages;
};

/* How each prompt is wrapped: as LLaVA builds MMBench's question (MMB_PLAIN: "<image>\n{hint\n}{question}\nA.
 * .. \nAnswer with the option's letter from the given choices directly."), or that inside LLaVA-1.5's
 * conversation template vicuna_v1, as its MMBench evaluation feeds the model (MMB_VICUNA_V1: the system line,
 * then " USER: " + the plain prompt + " ASSISTANT:"). */
enum mmbench_template { MMB_PLAIN, MMB_VICUNA_V1 };
/* "plain" or "vicuna_v1"; -1 with one line otherwise. */
int mmbench_template_parse(const char *name, enum mmbench_template *out);

/* Reads the TSV in text[0..n) as pandas writes it (to_csv with sep='\t'): a header row, fields separated by
 * tabs, a field holding a tab, newline or '"' quoted with '"' and its quotes doubled, an optional UTF-8 BOM.
 * text[n] must be '\0'; the text is cut and unquoted in place. Keeps the rows whose `split` column equals
 * split (every row when the file has no such column), the first `limit` of them in file order (0: all). Fails
 * with one line "<what>:<line>: <problem>" (the line where the row starts). */
int mmbench_read(char *text, size_t n, const char *what, const char *split, size_t limit,
                 enum mmbench_template tmpl, struct mmbench_out *out);

#endif

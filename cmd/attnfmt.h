/* attnfmt.h — the attention dumps of attn-translate: a text grid, JSON Lines, an SVG
 * heatmap, and Marian-style hard word alignments (docs/ATTENTION.md).
 *
 * Pure formatting: the functions read an attn_view that the caller filled (by hand or
 * with attn_view_init from an at_result) and never run the model. Output is
 * deterministic: the same view gives the same bytes. Text in the view may be any bytes:
 * invalid UTF-8 is written as U+FFFD, control characters are escaped (JSON) or replaced. */
#ifndef ATTNFMT_H
#define ATTNFMT_H

#include "attn_translate.h"

#include <stddef.h>
#include <stdio.h>

enum { ATTN_HEAD_MEAN = -1, ATTN_HEAD_ALL = -2 };

/* One translated line and the attention shown for it. Everything is borrowed. */
typedef struct attn_view {
    long line;                 /* 1-based input line number */
    const char *source;        /* the input line */
    const char *translation;   /* detokenized best hypothesis */
    float score;
    const char *const *src_tokens; int n_src;   /* pieces incl. final "</s>" */
    const char *const *tgt_tokens; int n_tgt;   /* generated pieces incl. "</s>" if it ended with eos */
    const float *weights;      /* (n_heads_shown, n_tgt, n_src); may be NULL when n_tgt == 0 */
    int n_heads_shown;         /* 1 for a single head or the mean; H for "all" */
    int layer;                 /* 0-based decoder layer */
    int head;                  /* ATTN_HEAD_MEAN (-1), ATTN_HEAD_ALL (-2), else the head */
} attn_view;

/* Builds the shown weights from the raw per-head attention `raw` (heads, rows, n_src)
 * of a hypothesis into the caller's `out`: head = ATTN_HEAD_MEAN -> the mean over heads
 * (rows, n_src); 0 <= head < heads -> that head (rows, n_src); ATTN_HEAD_ALL -> a copy
 * (heads, rows, n_src). The caller checks that head is in range. */
void attn_select(const float *raw, int heads, int rows, int n_src, int head, float *out);

/* Fills *v for hypothesis `hyp` of result `r` (translated with
 * at_options.attention_layer = layer): token texts from at_token_text, the target
 * followed by "</s>" when the hypothesis ended with eos, weights selected by `head`.
 * `source` is borrowed. v owns a weights buffer and two token arrays afterwards;
 * release them with attn_view_release. A result without attention (an empty line)
 * gives n_tgt = 0. Returns 0, or -1 with errno (EINVAL: bad hyp or head; ENOMEM). */
int attn_view_init(attn_view *v, const at_model *model, const at_result *r, int hyp, int layer,
                   int head, long line, const char *source);

/* Frees what attn_view_init allocated and zeroes *v. Accepts a zeroed view. */
void attn_view_release(attn_view *v);

/* Joins the views of the n pieces of a split line into *out, one view over the whole
 * line: the source and target tokens one after the other (each piece keeps its own
 * "</s>"), and a block-diagonal matrix (zeros outside each piece's block), so every
 * row still sums to 1 and token and word indices run over the whole line. Every
 * piece must show the same heads (n_heads_shown). out owns its arrays afterwards
 * (attn_view_release); line, source, translation, score, layer and head are left to
 * the caller. Returns 0, or -1 with errno (EINVAL: heads differ; ENOMEM). */
int attn_view_concat(attn_view *out, const attn_view *pieces, int n);

/* One piece of a split line, for the JSON record's "pieces". Token ranges are
 * [start, end) over the record's src_tokens and tgt_tokens. */
typedef struct attn_piece {
    const char *source, *translation;
    float score;
    int src_start, src_end, tgt_start, tgt_end;
} attn_piece;

/* What a JSON record may say besides the view. Everything is borrowed. */
typedef struct attn_extra {
    const char *error;          /* the line was not translated: "error", and "score" null */
    const attn_piece *pieces;   /* a split line: "pieces", one per sentence (n_pieces > 1) */
    int n_pieces;
} attn_extra;

/* Writes the text grid: a heading (line, layer, head, score, source, translation),
 * then one grid per shown head: a row per target token, a column per source token,
 * column headers written vertically, columns split into blocks that fit in `width`
 * terminal columns (<= 0: 100; at least 40). Cells are shaded blocks " ░▒▓█" when
 * unicode_blocks, else percentages ("." below 0.5%). Ends with an empty line.
 * Returns 0, or -1 on a write error. */
int attn_write_text(FILE *f, const attn_view *v, int width, int unicode_blocks);

/* Writes one JSON object on one '\n'-terminated line (the schema of docs/ATTENTION.md,
 * docs/attention.schema.json). Returns 0, or -1 on a write or allocation error. */
int attn_write_json(FILE *f, const attn_view *v);

/* attn_write_json with the optional "error" and "pieces" fields (extra may be NULL). */
int attn_write_json_extra(FILE *f, const attn_view *v, const attn_extra *extra);

/* Writes an SVG heatmap (token labels on both axes, a colour scale) to `path`,
 * replacing the file. Returns 0, or -1 with errno. */
int attn_write_svg(const char *path, const attn_view *v);

/* The same SVG to an open stream. Returns 0, or -1 on a write error. */
int attn_write_svg_file(FILE *f, const attn_view *v);

/* Hard word alignment "s-t s-t ..." (Marian order: by target word) from the mean over
 * the shown heads. Pieces group into words: a piece starting with U+2581 (or the first
 * piece, and a piece after "</s>") starts a new word; "</s>" belongs to no word. Each target word is aligned to
 * the source word with the largest weight summed over both words' pieces (ties: the
 * lower index). Writes at most cap bytes with the NUL into buf (buf may be NULL when
 * cap is 0); returns the length of the whole alignment like snprintf, or -1 when out of
 * memory. */
int attn_alignment(const attn_view *v, char *buf, size_t cap);

/* Name of a shown-head setting for headings: "mean", "all", or the head number in buf. */
const char *attn_head_name(int head, char *buf, size_t cap);

#endif /* ATTNFMT_H */

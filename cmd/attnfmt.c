/* attnfmt.c — attention dumps: text grid, JSON Lines, SVG heatmap, hard alignment.
 * See attnfmt.h for the contracts and docs/ATTENTION.md for the formats.
 *
 * Sections: UTF-8 helpers, views, alignment, text grid, JSON, SVG. */
#define _POSIX_C_SOURCE 200809L
#include "attnfmt.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define WORD_MARK "\xe2\x96\x81" /* U+2581, SentencePiece's word-start marker */
#define EOS_TEXT "</s>"

/* ---- UTF-8 helpers --------------------------------------------------------------- */

/* Decodes one code point from s (n >= 1 bytes left). Returns the bytes consumed; an
 * invalid, overlong, surrogate or truncated sequence gives U+FFFD and consumes 1 byte. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07, min = 0x10000;
    else goto bad;
    if (n < len) goto bad;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) goto bad;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) goto bad;
    *cp = v;
    return len;
bad:
    *cp = 0xFFFD;
    return 1;
}

/* Writes cp as UTF-8 into out (4 bytes room); returns the length. */
static int utf8_put(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A code point as shown in text and SVG: tab -> space, other C0/C1 controls, DEL and
 * the XML non-characters -> U+FFFD. */
static uint32_t shown_cp(uint32_t cp) {
    if (cp == '\t') return ' ';
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0xFFFE || cp == 0xFFFF) return 0xFFFD;
    return cp;
}

/* One terminal cell group: a base character plus its zero-width marks. */
typedef struct unit {
    char b[32];
    unsigned char len, width; /* bytes, display columns (1 or 2) */
} unit;

#define MAX_UNITS 64

/* Splits s into display units (at most MAX_UNITS; the rest is dropped). */
static int split_units(const char *s, unit *u) {
    int n = 0;
    size_t left = s ? strlen(s) : 0;
    const unsigned char *p = (const unsigned char *)s;
    while (left) {
        uint32_t cp;
        size_t k = utf8_next(p, left, &cp);
        p += k, left -= k;
        cp = shown_cp(cp);
        int w = utf8proc_charwidth((utf8proc_int32_t)cp);
        if (w <= 0 && n > 0 && u[n - 1].len + 4 < (int)sizeof u[0].b) {
            u[n - 1].len = (unsigned char)(u[n - 1].len + utf8_put(u[n - 1].b + u[n - 1].len, cp));
            continue;
        }
        if (w <= 0 && n > 0) continue; /* too many marks on one character */
        if (n == MAX_UNITS) break;
        u[n].len = (unsigned char)utf8_put(u[n].b, cp);
        u[n].width = (unsigned char)(w >= 2 ? 2 : 1);
        n++;
    }
    return n;
}

static int units_width(const unit *u, int n) {
    int w = 0;
    for (int i = 0; i < n; i++) w += u[i].width;
    return w;
}

/* ---- views ----------------------------------------------------------------------- */

void attn_select(const float *raw, int heads, int rows, int n_src, int head, float *out) {
    size_t per = (size_t)rows * (size_t)n_src;
    if (head == ATTN_HEAD_ALL) {
        memcpy(out, raw, (size_t)heads * per * sizeof *out);
    } else if (head >= 0) {
        memcpy(out, raw + (size_t)head * per, per * sizeof *out);
    } else {
        for (size_t i = 0; i < per; i++) {
            double s = 0;
            for (int h = 0; h < heads; h++) s += raw[(size_t)h * per + i];
            out[i] = (float)(s / heads);
        }
    }
}

int attn_view_init(attn_view *v, const at_model *model, const at_result *r, int hyp, int layer,
                   int head, long line, const char *source) {
    memset(v, 0, sizeof *v);
    if (!model || !r || hyp < 0 || hyp >= r->n_hyps || head < ATTN_HEAD_ALL ||
        (head >= 0 && r->attn_heads > 0 && head >= r->attn_heads)) {
        errno = EINVAL;
        return -1;
    }
    const at_hypothesis *h = &r->hyps[hyp];
    int heads = r->attn_heads, rows = h->attention ? h->attn_rows : 0, S = r->n_src;
    int shown = head == ATTN_HEAD_ALL ? heads : 1;
    const char **src = malloc((size_t)(S > 0 ? S : 1) * sizeof *src);
    const char **tgt = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *tgt);
    float *w = rows > 0 ? malloc((size_t)shown * rows * S * sizeof *w) : NULL;
    if (!src || !tgt || (rows > 0 && !w)) {
        free(src), free(tgt), free(w);
        errno = ENOMEM;
        return -1;
    }
    for (int i = 0; i < S; i++) {
        const char *t = at_token_text(model, r->src_ids[i]);
        src[i] = t ? t : "?";
    }
    int eos = at_model_config(model)->eos_id;
    for (int i = 0; i < rows; i++) {
        const char *t = at_token_text(model, i < h->n_ids ? h->ids[i] : eos);
        tgt[i] = t ? t : "?";
    }
    if (rows > 0) attn_select(h->attention, heads, rows, S, head, w);
    v->line = line;
    v->source = source;
    v->translation = h->text;
    v->score = h->score;
    v->src_tokens = src, v->n_src = S;
    v->tgt_tokens = tgt, v->n_tgt = rows;
    v->weights = w;
    v->n_heads_shown = shown;
    v->layer = layer;
    v->head = head;
    return 0;
}

int attn_view_concat(attn_view *out, const attn_view *pieces, int n) {
    memset(out, 0, sizeof *out);
    int S = 0, T = 0, H = n > 0 ? pieces[0].n_heads_shown : 1;
    for (int k = 0; k < n; k++) {
        if (pieces[k].n_heads_shown != H || pieces[k].n_src < 0 || pieces[k].n_tgt < 0 ||
            (pieces[k].n_tgt > 0 && !pieces[k].weights)) {
            errno = EINVAL;
            return -1;
        }
        S += pieces[k].n_src, T += pieces[k].n_tgt;
    }
    const char **src = malloc((size_t)(S > 0 ? S : 1) * sizeof *src);
    const char **tgt = malloc((size_t)(T > 0 ? T : 1) * sizeof *tgt);
    float *w = T > 0 ? calloc((size_t)H * T * S, sizeof *w) : NULL;
    if (!src || !tgt || (T > 0 && !w)) {
        free(src), free(tgt), free(w);
        errno = ENOMEM;
        return -1;
    }
    int s0 = 0, t0 = 0;
    for (int k = 0; k < n; k++) {
        const attn_view *p = &pieces[k];
        for (int j = 0; j < p->n_src; j++) src[s0 + j] = p->src_tokens[j];
        for (int i = 0; i < p->n_tgt; i++) tgt[t0 + i] = p->tgt_tokens[i];
        for (int h = 0; h < H; h++)
            for (int i = 0; i < p->n_tgt; i++)
                memcpy(w + ((size_t)h * T + t0 + i) * S + s0,
                       p->weights + ((size_t)h * p->n_tgt + i) * p->n_src,
                       (size_t)p->n_src * sizeof *w);
        s0 += p->n_src, t0 += p->n_tgt;
    }
    out->src_tokens = src, out->n_src = S;
    out->tgt_tokens = tgt, out->n_tgt = T;
    out->weights = w;
    out->n_heads_shown = H;
    return 0;
}

void attn_view_release(attn_view *v) {
    if (!v) return;
    free((void *)v->src_tokens);
    free((void *)v->tgt_tokens);
    free((void *)v->weights);
    memset(v, 0, sizeof *v);
}

const char *attn_head_name(int head, char *buf, size_t cap) {
    if (head == ATTN_HEAD_MEAN) return "mean";
    if (head == ATTN_HEAD_ALL) return "all";
    snprintf(buf, cap, "%d", head);
    return buf;
}

/* The mean over the shown heads, (n_tgt, n_src), in a new buffer (or the view's own
 * weights when one head is shown: *owned = 0). NULL when out of memory. */
static const float *mean_weights(const attn_view *v, int *owned) {
    *owned = 0;
    if (v->n_heads_shown <= 1) return v->weights;
    float *m = malloc((size_t)v->n_tgt * v->n_src * sizeof *m);
    if (!m) return NULL;
    attn_select(v->weights, v->n_heads_shown, v->n_tgt, v->n_src, ATTN_HEAD_MEAN, m);
    *owned = 1;
    return m;
}

/* ---- alignment ------------------------------------------------------------------- */

/* word[i] = word index of piece i (-1 for "</s>"); returns the number of words. */
static int group_words(const char *const *tok, int n, int *word) {
    int w = -1, after_eos = 0;
    for (int i = 0; i < n; i++) {
        const char *t = tok[i] ? tok[i] : "";
        if (!strcmp(t, EOS_TEXT)) {
            word[i] = -1;
            after_eos = 1;
            continue;
        }
        if (w < 0 || after_eos || !strncmp(t, WORD_MARK, 3)) w++;
        after_eos = 0;
        word[i] = w;
    }
    return w + 1;
}

int attn_alignment(const attn_view *v, char *buf, size_t cap) {
    if (cap) buf[0] = '\0';
    if (v->n_tgt <= 0 || v->n_src <= 0 || !v->weights) return 0;
    int owned;
    const float *a = mean_weights(v, &owned);
    int *sw = malloc((size_t)v->n_src * sizeof *sw), *tw = malloc((size_t)v->n_tgt * sizeof *tw);
    int ns = sw ? group_words(v->src_tokens, v->n_src, sw) : 0;
    int nt = tw ? group_words(v->tgt_tokens, v->n_tgt, tw) : 0;
    double *sum = malloc((size_t)(ns > 0 ? ns : 1) * sizeof *sum);
    int len = 0;
    if (!a || !sw || !tw || !sum) {
        len = -1;
        goto done;
    }
    for (int t = 0; ns > 0 && t < nt; t++) {
        for (int j = 0; j < ns; j++) sum[j] = 0;
        for (int p = 0; p < v->n_tgt; p++) {
            if (tw[p] != t) continue;
            for (int q = 0; q < v->n_src; q++)
                if (sw[q] >= 0) sum[sw[q]] += a[(size_t)p * v->n_src + q];
        }
        int best = 0;
        for (int j = 1; j < ns; j++)
            if (sum[j] > sum[best]) best = j;
        size_t off = (size_t)len < cap ? (size_t)len : cap;
        int k = snprintf(buf ? buf + off : NULL, cap - off, "%s%d-%d", t ? " " : "", best, t);
        len += k;
    }
done:
    if (owned) free((void *)a);
    free(sw), free(tw), free(sum);
    return len;
}

/* ---- text grid ------------------------------------------------------------------- */

#define MAX_HEADER 8   /* rows of a vertical column header */
#define MAX_LABEL 16   /* columns of a row label */

/* A growable line; trailing spaces are cut when it is written. */
typedef struct lbuf {
    char *s;
    size_t n, cap;
    int failed;
} lbuf;

static void lb_add(lbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
}

static void lb_spaces(lbuf *b, int n) {
    for (int i = 0; i < n; i++) lb_add(b, " ", 1);
}

static void lb_str(lbuf *b, const char *s) { lb_add(b, s, strlen(s)); }

static void lb_flush(lbuf *b, FILE *f) {
    while (b->n && b->s[b->n - 1] == ' ') b->n--;
    if (b->n) fwrite(b->s, 1, b->n, f);
    fputc('\n', f);
    b->n = 0;
}

/* Appends text with invalid bytes and controls replaced (see shown_cp). */
static void lb_text(lbuf *b, const char *s) {
    size_t left = s ? strlen(s) : 0;
    const unsigned char *p = (const unsigned char *)s;
    while (left) {
        uint32_t cp;
        size_t k = utf8_next(p, left, &cp);
        char e[4];
        lb_add(b, e, (size_t)utf8_put(e, shown_cp(cp)));
        p += k, left -= k;
    }
}

/* Appends a label cut to `width` columns (with "…" when cut), padded to `width`. */
static void lb_label(lbuf *b, const char *s, int width) {
    unit u[MAX_UNITS];
    int n = split_units(s, u), total = units_width(u, n), used = 0;
    int cut = total > width;
    for (int i = 0; i < n; i++) {
        if (used + u[i].width > width - (cut ? 1 : 0)) break;
        lb_add(b, u[i].b, u[i].len);
        used += u[i].width;
    }
    if (cut) lb_str(b, "\xe2\x80\xa6"), used++;
    lb_spaces(b, width - used);
}

static const char *const SHADES[5] = {"  ", "\xe2\x96\x91\xe2\x96\x91", "\xe2\x96\x92\xe2\x96\x92",
                                      "\xe2\x96\x93\xe2\x96\x93", "\xe2\x96\x88\xe2\x96\x88"};

/* Shade level of a weight: [0,.05) blank, [.05,.2) ░, [.2,.4) ▒, [.4,.7) ▓, [.7,1] █. */
static int shade_level(float w) {
    return w >= 0.7f ? 4 : w >= 0.4f ? 3 : w >= 0.2f ? 2 : w >= 0.05f ? 1 : 0;
}

static int digits(int x) {
    int d = 1;
    while (x >= 10) x /= 10, d++;
    return d;
}

/* One grid (one shown head) of weights w (n_tgt, n_src). */
static void text_grid(FILE *f, lbuf *b, const attn_view *v, const float *w, int width, int blocks) {
    int cw = blocks ? 2 : 4;
    int iw = digits(v->n_tgt > 0 ? v->n_tgt - 1 : 0); /* <= 10 */
    int lw = 5;
    for (int i = 0; i < v->n_tgt; i++) {
        unit u[MAX_UNITS];
        int n = split_units(v->tgt_tokens[i], u), tw = units_width(u, n);
        if (tw > lw) lw = tw;
    }
    if (lw > MAX_LABEL) lw = MAX_LABEL;
    int prefix = iw + 1 + lw + 1;
    int per = (width - prefix) / cw;
    if (per < 1) per = 1;
    int nb = (v->n_src + per - 1) / per;
    per = (v->n_src + nb - 1) / nb; /* balanced blocks */
    for (int blk = 0; blk < nb; blk++) {
        int j0 = blk * per, j1 = j0 + per < v->n_src ? j0 + per : v->n_src;
        if (nb > 1) {
            if (blk) fputc('\n', f);
            fprintf(f, "source tokens %d-%d of %d\n", j0, j1 - 1, v->n_src);
        }
        /* vertical headers, bottom-aligned */
        unit hu[MAX_UNITS];
        int hh = 1;
        for (int j = j0; j < j1; j++) {
            int n = split_units(v->src_tokens[j], hu);
            if (n > hh) hh = n;
        }
        if (hh > MAX_HEADER) hh = MAX_HEADER;
        for (int r = 0; r < hh; r++) {
            lb_spaces(b, prefix);
            for (int j = j0; j < j1; j++) {
                int n = split_units(v->src_tokens[j], hu);
                int shown = n > hh ? hh : n, k = r - (hh - shown);
                if (k < 0) {
                    lb_spaces(b, cw);
                } else if (n > hh && k == hh - 1) {
                    lb_spaces(b, cw - 1);
                    lb_str(b, "\xe2\x80\xa6");
                } else {
                    lb_spaces(b, cw - hu[k].width);
                    lb_add(b, hu[k].b, hu[k].len);
                }
            }
            lb_flush(b, f);
        }
        for (int i = 0; i < v->n_tgt; i++) {
            char num[32];
            lb_spaces(b, iw - digits(i));
            snprintf(num, sizeof num, "%d ", i);
            lb_str(b, num);
            lb_label(b, v->tgt_tokens[i], lw);
            lb_spaces(b, 1);
            for (int j = j0; j < j1; j++) {
                float x = w[(size_t)i * v->n_src + j];
                if (blocks) {
                    lb_str(b, SHADES[shade_level(x)]);
                } else {
                    double p = floor((double)x * 100 + 0.5);
                    int pi = !(p > 0) ? 0 : p > 100 ? 100 : (int)p;
                    if (pi == 0) snprintf(num, sizeof num, "%*s", cw, ".");
                    else snprintf(num, sizeof num, "%*d", cw, pi);
                    lb_str(b, num);
                }
            }
            lb_flush(b, f);
        }
        /* column index ruler: every index (numbers) or every 5th (blocks) */
        lb_spaces(b, prefix);
        for (int j = j0; j < j1;) {
            char num[16];
            if (!blocks) {
                snprintf(num, sizeof num, "%*d", cw, j);
                lb_str(b, num);
                j++;
            } else if (j % 5 == 0 || j == j0) {
                int k = snprintf(num, sizeof num, "%d", j), span = (k + cw - 1) / cw;
                lb_str(b, num);
                lb_spaces(b, span * cw - k);
                j += span;
            } else {
                lb_spaces(b, cw);
                j++;
            }
        }
        lb_flush(b, f);
    }
}

int attn_write_text(FILE *f, const attn_view *v, int width, int unicode_blocks) {
    if (width <= 0) width = 100;
    if (width < 40) width = 40;
    lbuf b = {0};
    char hb[16];
    fprintf(f, "line %ld | layer %d | head %s | score ", v->line, v->layer,
            attn_head_name(v->head, hb, sizeof hb));
    if (isfinite(v->score)) fprintf(f, "%.4f\n", v->score);
    else fputs("n/a\n", f);
    lb_str(&b, "source:      ");
    lb_text(&b, v->source);
    lb_flush(&b, f);
    lb_str(&b, "translation: ");
    lb_text(&b, v->translation);
    lb_flush(&b, f);
    if (v->n_tgt <= 0 || !v->weights) {
        fputs("(no attention: nothing was generated)\n", f);
    } else {
        for (int k = 0; k < v->n_heads_shown; k++) {
            if (v->n_heads_shown > 1) fprintf(f, "%shead %d of %d\n", k ? "\n" : "", k, v->n_heads_shown);
            text_grid(f, &b, v, v->weights + (size_t)k * v->n_tgt * v->n_src, width, unicode_blocks);
        }
    }
    fputc('\n', f);
    int failed = b.failed;
    free(b.s);
    return failed || ferror(f) ? -1 : 0;
}

/* ---- JSON ------------------------------------------------------------------------ */

/* Writes s as a JSON string: ", \ and controls escaped, invalid UTF-8 as \ufffd. */
static void json_string(FILE *f, const char *s) {
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    size_t left = strlen(s);
    const unsigned char *p = (const unsigned char *)s;
    while (left) {
        uint32_t cp;
        size_t k = utf8_next(p, left, &cp);
        if (cp == 0xFFFD && k == 1) fputs("\\ufffd", f); /* an invalid byte */
        else if (cp == '"') fputs("\\\"", f);
        else if (cp == '\\') fputs("\\\\", f);
        else if (cp == '\n') fputs("\\n", f);
        else if (cp == '\r') fputs("\\r", f);
        else if (cp == '\t') fputs("\\t", f);
        else if (cp == '\b') fputs("\\b", f);
        else if (cp == '\f') fputs("\\f", f);
        else if (cp < 0x20) fprintf(f, "\\u%04x", (unsigned)cp);
        else fwrite(p, 1, k, f);
        p += k, left -= k;
    }
    fputc('"', f);
}

/* x with `prec` significant digits (fixed: `prec` decimals); null if not finite. */
static void json_number(FILE *f, double x, int prec, int fixed) {
    if (isfinite(x)) fprintf(f, fixed ? "%.*f" : "%.*g", prec, x);
    else fputs("null", f);
}

static void json_tokens(FILE *f, const char *const *t, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (i) fputc(',', f);
        json_string(f, t[i]);
    }
    fputc(']', f);
}

static void json_matrix(FILE *f, const float *w, int rows, int cols) {
    fputc('[', f);
    for (int i = 0; i < rows; i++) {
        fputs(i ? ",[" : "[", f);
        for (int j = 0; j < cols; j++) {
            if (j) fputc(',', f);
            json_number(f, w[(size_t)i * cols + j], 6, 0);
        }
        fputc(']', f);
    }
    fputc(']', f);
}

int attn_write_json(FILE *f, const attn_view *v) { return attn_write_json_extra(f, v, NULL); }

int attn_write_json_extra(FILE *f, const attn_view *v, const attn_extra *extra) {
    int n_tgt = v->weights ? v->n_tgt : 0, owned = 0;
    const float *mean = n_tgt ? mean_weights(v, &owned) : NULL;
    int alen = attn_alignment(v, NULL, 0);
    char *align = alen >= 0 ? malloc((size_t)alen + 1) : NULL;
    if ((n_tgt && !mean) || !align) {
        if (owned) free((void *)mean);
        free(align);
        return -1;
    }
    attn_alignment(v, align, (size_t)alen + 1);
    fprintf(f, "{\"version\":1,\"line\":%ld,\"source\":", v->line);
    json_string(f, v->source);
    fputs(",\"translation\":", f);
    json_string(f, v->translation);
    fputs(",\"score\":", f);
    if (extra && extra->error) {
        fputs("null,\"error\":", f);
        json_string(f, extra->error);
    } else {
        json_number(f, v->score, 6, 1);
    }
    fprintf(f, ",\"layer\":%d,\"head\":", v->layer);
    if (v->head == ATTN_HEAD_MEAN) fputs("\"mean\"", f);
    else if (v->head == ATTN_HEAD_ALL) fputs("\"all\"", f);
    else fprintf(f, "%d", v->head);
    fputs(",\"src_tokens\":", f);
    json_tokens(f, v->src_tokens, v->n_src);
    fputs(",\"tgt_tokens\":", f);
    json_tokens(f, v->tgt_tokens, n_tgt);
    fputs(",\"attention\":", f);
    json_matrix(f, mean, n_tgt, v->n_src);
    if (v->head == ATTN_HEAD_ALL) {
        fputs(",\"heads\":[", f);
        for (int k = 0; n_tgt && k < v->n_heads_shown; k++) {
            if (k) fputc(',', f);
            json_matrix(f, v->weights + (size_t)k * n_tgt * v->n_src, n_tgt, v->n_src);
        }
        fputc(']', f);
    }
    fputs(",\"alignment\":", f);
    json_string(f, align);
    if (extra && extra->pieces && extra->n_pieces > 1) {
        fputs(",\"pieces\":[", f);
        for (int k = 0; k < extra->n_pieces; k++) {
            const attn_piece *p = &extra->pieces[k];
            fputs(k ? ",{\"source\":" : "{\"source\":", f);
            json_string(f, p->source);
            fputs(",\"translation\":", f);
            json_string(f, p->translation);
            fputs(",\"score\":", f);
            json_number(f, p->score, 6, 1);
            fprintf(f, ",\"src\":[%d,%d],\"tgt\":[%d,%d]}", p->src_start, p->src_end, p->tgt_start,
                    p->tgt_end);
        }
        fputc(']', f);
    }
    fputs("}\n", f);
    if (owned) free((void *)mean);
    free(align);
    return ferror(f) ? -1 : 0;
}

/* ---- SVG ------------------------------------------------------------------------- */

/* viridis at 0, 1/8, ..., 1 (matplotlib), interpolated linearly in sRGB */
static const unsigned char VIRIDIS[9][3] = {
    {68, 1, 84},    {72, 36, 117},  {59, 82, 139},  {44, 114, 142}, {33, 145, 140},
    {40, 174, 128}, {94, 201, 98},  {173, 220, 48}, {253, 231, 37}};

static void colour(double x, char out[8]) {
    if (!(x > 0)) x = 0;
    if (x > 1) x = 1;
    double p = x * 8;
    int i = (int)p;
    if (i > 7) i = 7;
    double t = p - i;
    int c[3];
    for (int k = 0; k < 3; k++)
        c[k] = (int)floor(VIRIDIS[i][k] + t * (VIRIDIS[i + 1][k] - VIRIDIS[i][k]) + 0.5);
    snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* Writes s as XML character data, cut to max_units display units (with "…"). */
static void xml_text(FILE *f, const char *s, int max_units) {
    size_t left = s ? strlen(s) : 0;
    const unsigned char *p = (const unsigned char *)s;
    int n = 0;
    while (left) {
        if (n == max_units) {
            fputs("\xe2\x80\xa6", f);
            break;
        }
        uint32_t cp;
        size_t k = utf8_next(p, left, &cp);
        p += k, left -= k, n++;
        cp = shown_cp(cp);
        if (cp == '&') fputs("&amp;", f);
        else if (cp == '<') fputs("&lt;", f);
        else if (cp == '>') fputs("&gt;", f);
        else if (cp == '"') fputs("&quot;", f);
        else {
            char e[4];
            fwrite(e, 1, (size_t)utf8_put(e, cp), f);
        }
    }
}

/* Estimated width in pixels of text at font size fs, cut to max_units code points
 * (plus the "…"), as xml_text writes it. */
static double text_px(const char *s, double fs, int max_units) {
    size_t left = s ? strlen(s) : 0;
    const unsigned char *p = (const unsigned char *)s;
    double w = 0;
    for (int n = 0; left; n++) {
        uint32_t cp;
        size_t k = utf8_next(p, left, &cp);
        p += k, left -= k;
        int cw = n == max_units ? 1 : utf8proc_charwidth((utf8proc_int32_t)shown_cp(cp));
        w += cw >= 2 ? fs : cw == 1 ? 0.62 * fs : 0;
        if (n == max_units) break;
    }
    return w;
}

#define LABEL_UNITS 24
#define TITLE_UNITS 110

int attn_write_svg_file(FILE *f, const attn_view *v) {
    int S = v->n_src, T = v->weights ? v->n_tgt : 0, P = T ? v->n_heads_shown : 1;
    int big = S > T ? S : T;
    double c = big > 0 ? floor(720.0 / big) : 28;
    if (c > 28) c = 28;
    if (c < 14) c = 14;
    double fs = c * 0.6 < 11 ? 11 : c * 0.6 > 14 ? 14 : c * 0.6;
    double margin = 12, line_h = fs + 7;
    double lab_top = 20, lab_left = 40;
    for (int j = 0; j < S; j++) {
        double w = text_px(v->src_tokens[j], fs, LABEL_UNITS) + 10;
        if (w > lab_top) lab_top = w;
    }
    for (int i = 0; i < T; i++) {
        double w = text_px(v->tgt_tokens[i], fs, LABEL_UNITS) + 10;
        if (w > lab_left) lab_left = w;
    }
    if (lab_left < 6 * fs) lab_left = 6 * fs; /* room for the axis names */
    double title_h = 3 * line_h + 8, panel_title = P > 1 ? line_h + 4 : 0;
    double grid_h = T * c, bar_h = grid_h > 160 ? grid_h : 160;
    double panel_h = panel_title + lab_top + grid_h + 16;
    double x0 = margin + lab_left, bar_x = x0 + S * c + 24;
    double width = bar_x + 16 + 50 + margin;
    double tw = 2 * margin + 13 * fs + text_px(v->translation, fs, TITLE_UNITS);
    double ts = 2 * margin + 8 * fs + text_px(v->source, fs, TITLE_UNITS);
    double th = 2 * margin + 34 * fs; /* the first line, at most */
    if (width < tw) width = tw;
    if (width < ts) width = ts;
    if (width < th) width = th;
    double height = margin + title_h + P * panel_h + margin;
    double bar_end = margin + title_h + panel_title + lab_top + bar_h + 16 + margin;
    if (T > 0 && height < bar_end) height = bar_end;
    if (T == 0) height = margin + title_h + 2 * line_h + margin;
    char hb[16], col[8];

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Noto Sans, Arial, sans-serif\" "
               "font-size=\"%.1f\">\n", width, height, width, height, fs);
    fprintf(f, "<title>attn-translate attention, line %ld</title>\n", v->line);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n");
    fprintf(f, "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
    for (int k = 0; k <= 8; k++) {
        colour(k / 8.0, col);
        fprintf(f, "<stop offset=\"%.3f\" stop-color=\"%s\"/>", k / 8.0, col);
    }
    fprintf(f, "</linearGradient></defs>\n");
    double y = margin + line_h - 4;
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">line %ld, decoder layer %d, head %s, "
               "score ", margin, y, v->line, v->layer, attn_head_name(v->head, hb, sizeof hb));
    if (isfinite(v->score)) fprintf(f, "%.4f", v->score);
    else fputs("n/a", f);
    fputs("</text>\n", f);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">source: ", margin, y + line_h);
    xml_text(f, v->source, TITLE_UNITS);
    fprintf(f, "</text>\n<text x=\"%.1f\" y=\"%.1f\">translation: ", margin, y + 2 * line_h);
    xml_text(f, v->translation, TITLE_UNITS);
    fputs("</text>\n", f);
    if (T == 0) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#666666\">no attention: nothing was generated</text>\n",
                margin, margin + title_h + line_h);
        fputs("</svg>\n", f);
        return ferror(f) ? -1 : 0;
    }
    double top = margin + title_h;
    double first_grid_y = 0;
    for (int k = 0; k < P; k++) {
        const float *w = v->weights + (size_t)k * T * S;
        double py = top + k * panel_h;
        if (P > 1)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">head %d</text>\n", margin,
                    py + line_h - 4, k);
        double y0 = py + panel_title + lab_top;
        if (k == 0) first_grid_y = y0;
        fprintf(f, "<g class=\"panel\" data-head=\"%d\">\n", P > 1 ? k : v->head);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#666666\">source \xe2\x86\x92</text>\n"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#666666\">target \xe2\x86\x93</text>\n",
                x0 - 6, y0 - 6 - line_h, x0 - 6, y0 - 6);
        for (int j = 0; j < S; j++) {
            fprintf(f, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" dy=\"0.35em\">", x0 + (j + 0.5) * c,
                    y0 - 5);
            xml_text(f, v->src_tokens[j], LABEL_UNITS);
            fputs("</text>\n", f);
        }
        for (int i = 0; i < T; i++) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" dy=\"0.35em\" text-anchor=\"end\">", x0 - 5,
                    y0 + (i + 0.5) * c);
            xml_text(f, v->tgt_tokens[i], LABEL_UNITS);
            fputs("</text>\n", f);
        }
        for (int i = 0; i < T; i++) {
            for (int j = 0; j < S; j++) {
                double x = w[(size_t)i * S + j];
                colour(x, col);
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                           "<title>%d ", x0 + j * c, y0 + i * c, c, c, col, i);
                xml_text(f, v->tgt_tokens[i], LABEL_UNITS);
                fprintf(f, " \xe2\x86\x90 %d ", j);
                xml_text(f, v->src_tokens[j], LABEL_UNITS);
                fprintf(f, ": %.4f</title></rect>\n", isfinite(x) ? x : 0.0);
                if (c >= 24) {
                    double p = floor(x * 100 + 0.5);
                    if (p >= 1)
                        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" dy=\"0.35em\" text-anchor=\"middle\" "
                                   "font-size=\"%.1f\" fill=\"%s\">%d</text>\n", x0 + (j + 0.5) * c,
                                y0 + (i + 0.5) * c, c * 0.42, x > 0.6 ? "#000000" : "#ffffff",
                                p > 100 ? 100 : (int)p);
                }
            }
        }
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                   "stroke=\"#808080\" stroke-width=\"1\"/>\n</g>\n", x0, y0, S * c, T * c);
    }
    /* colour scale beside the first panel */
    fprintf(f, "<g class=\"scale\">\n<text x=\"%.1f\" y=\"%.1f\" fill=\"#444444\">weight</text>\n",
            bar_x, first_grid_y - 0.6 * fs - 6);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"%.1f\" fill=\"url(#scale)\" "
               "stroke=\"#808080\" stroke-width=\"1\"/>\n", bar_x, first_grid_y, bar_h);
    for (int k = 0; k <= 4; k++) {
        double ty = first_grid_y + bar_h * (1 - k / 4.0);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444444\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" dy=\"0.35em\" fill=\"#444444\">%.2f</text>\n",
                bar_x + 16, ty, bar_x + 20, ty, bar_x + 23, ty, k / 4.0);
    }
    fputs("</g>\n</svg>\n", f);
    return ferror(f) ? -1 : 0;
}

int attn_write_svg(const char *path, const attn_view *v) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int rc = attn_write_svg_file(f, v);
    int e = errno;
    if (fclose(f) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc) {
        remove(path);
        errno = e ? e : EIO;
    }
    return rc;
}

/* attn-translate — English→French translation as a Unix filter.
 *
 *   echo "The cat sleeps." | attn-translate
 *   attn-translate -i in.en -o out.fr
 *   attn-translate -o outdir/ a.txt b.txt
 *
 * Output line i always answers input line i. Lines are read in chunks, sorted
 * by length into batches, translated by worker threads (one session each,
 * OpenBLAS single-threaded so cores are never oversubscribed), and written back
 * in input order. On a terminal (or with --unbuffered) each line is translated
 * and flushed as soon as it is read. */
#define _GNU_SOURCE
#include "attn_translate.h"
#include "attnfmt.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef AT_DATADIR
#define AT_DATADIR "/usr/local/share/attn-translate"
#endif
#define DEFAULT_MODEL "en-fr"

enum { EXIT_FATAL = 1, EXIT_USAGE = 2, EXIT_LINES_FAILED = 3, EXIT_INTERRUPTED = 130 };
enum on_error { ON_ERROR_COPY, ON_ERROR_SKIP, ON_ERROR_FAIL };
enum attn_format { ATTN_NONE, ATTN_TEXT, ATTN_JSON, ATTN_SVG };

extern void openblas_set_num_threads(int);

static const char *usage_text =
    "Usage: attn-translate [OPTIONS] [FILE...] < input.en > output.fr\n"
    "Translate English text to French, one line at a time; output line i answers input line i.\n"
    "\n"
    "Input and output:\n"
    "  -i, --input FILE         read FILE (repeatable; also positional FILEs; default stdin)\n"
    "  -o, --output PATH        write to PATH (a file), or into directory PATH/ when there are\n"
    "                           several inputs (same file names); default stdout\n"
    "      --unbuffered         translate and flush line by line (default on a terminal)\n"
    "      --progress, --no-progress  progress bar on stderr (default: when it is a terminal)\n"
    "  -q, --quiet              no warnings and no progress on stderr\n"
    "Model and decoding:\n"
    "  -m, --model DIR          model directory (default: the shipped en-fr model;\n"
    "                           also $ATTN_TRANSLATE_MODEL)\n"
    "  -b, --beam N             beam size; 1 = greedy (default: the model's, 4)\n"
    "  -n, --n-best K           print K hypotheses per line: 'LINE ||| TRANSLATION ||| SCORE'\n"
    "      --length-penalty A   rank by log-prob / length^A (default: the model's, 1.0)\n"
    "      --max-length F[+C]   output at most F x source tokens + C (default 2+10)\n"
    "      --max-input N        longest line in tokens before splitting (default: model max)\n"
    "      --max-line-bytes N   refuse lines longer than N bytes (default 100000)\n"
    "      --no-split-sentences do not split over-long lines into sentences\n"
    "      --on-error MODE      a line that cannot be translated: copy (default: print\n"
    "                           the source line), skip (print an empty line), fail (stop)\n"
    "Throughput:\n"
    "  -t, --threads N          worker threads (default: cores, up to 8; 1 on a terminal)\n"
    "      --dtype T            weights as f32 (default), f16 (half the memory) or int8\n"
    "                           (a quarter, fastest; quantized once at load)\n"
    "      --batch-size N       sentences per batch (default 32)\n"
    "      --max-batch-tokens N source tokens per batch (default 4096)\n"
    "Attention (docs/ATTENTION.md):\n"
    "      --show-attn          dump the cross-attention of each translation\n"
    "      --attn-format FMT    text (default on a terminal), json (JSON Lines), svg\n"
    "      --attn-layer L       decoder layer, 0-based (default: the last)\n"
    "      --attn-head H        head number, 'mean' (default) or 'all'\n"
    "      --attn-dir DIR       where svg pictures go (default .)\n"
    "      --align              append Marian-style word alignments: 'TEXT ||| 0-0 1-2'\n"
    "  -h, --help               this help\n"
    "  -V, --version            version\n"
    "\n"
    "Exit status: 0 all lines translated, 1 fatal error (model, I/O), 2 usage error,\n"
    "3 some lines could not be translated (see --on-error), 130 interrupted.\n";

/* ---- options ------------------------------------------------------------------- */

typedef struct cli {
    const char *model_dir;
    const char **inputs;
    int n_inputs;
    const char *output;
    int beam, n_best, threads, quiet, progress, unbuffered, split, align;
    int max_input, batch_size, max_batch_tokens, dtype;
    size_t max_line_bytes;
    float length_penalty, factor;
    int have_lp, extra;
    enum on_error on_error;
    enum attn_format attn;
    int attn_layer, attn_head;
    const char *attn_dir;
} cli;

static void die_usage(const char *msg, const char *arg) {
    fprintf(stderr, "attn-translate: %s%s%s\nTry 'attn-translate --help'.\n", msg,
            arg ? ": " : "", arg ? arg : "");
    exit(EXIT_USAGE);
}

static int parse_int(const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

static int parse_max_length(const char *s, float *factor, int *extra) {
    char *end;
    errno = 0;
    double f = strtod(s, &end);
    if (errno || end == s || !(f >= 0 && f <= 100)) return 0;
    *factor = (float)f;
    if (*end == '\0') return 1;
    if (*end != '+') return 0;
    return parse_int(end + 1, 0, 100000, extra);
}

static void parse_args(int argc, char **argv, cli *c) {
    enum {
        OPT_LP = 256, OPT_MAXLEN, OPT_MAXIN, OPT_ONERR, OPT_UNBUF, OPT_PROG, OPT_NOPROG,
        OPT_MAXBYTES, OPT_NOSPLIT, OPT_SPLIT, OPT_BATCH, OPT_BTOK, OPT_SHOW, OPT_AFMT, OPT_ALAYER,
        OPT_AHEAD, OPT_ADIR, OPT_ALIGN, OPT_DTYPE
    };
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"beam", required_argument, 0, 'b'},
        {"n-best", required_argument, 0, 'n'}, {"threads", required_argument, 0, 't'},
        {"input", required_argument, 0, 'i'}, {"output", required_argument, 0, 'o'},
        {"length-penalty", required_argument, 0, OPT_LP},
        {"max-length", required_argument, 0, OPT_MAXLEN},
        {"max-input", required_argument, 0, OPT_MAXIN},
        {"max-line-bytes", required_argument, 0, OPT_MAXBYTES},
        {"on-error", required_argument, 0, OPT_ONERR},
        {"unbuffered", no_argument, 0, OPT_UNBUF}, {"progress", no_argument, 0, OPT_PROG},
        {"no-progress", no_argument, 0, OPT_NOPROG},
        {"split-sentences", no_argument, 0, OPT_SPLIT},
        {"no-split-sentences", no_argument, 0, OPT_NOSPLIT},
        {"batch-size", required_argument, 0, OPT_BATCH},
        {"max-batch-tokens", required_argument, 0, OPT_BTOK},
        {"show-attn", no_argument, 0, OPT_SHOW}, {"attn-format", required_argument, 0, OPT_AFMT},
        {"attn-layer", required_argument, 0, OPT_ALAYER},
        {"attn-head", required_argument, 0, OPT_AHEAD}, {"attn-dir", required_argument, 0, OPT_ADIR},
        {"align", no_argument, 0, OPT_ALIGN}, {"dtype", required_argument, 0, OPT_DTYPE}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'}, {0, 0, 0, 0}};
    int opt, show = 0, fmt = ATTN_NONE, bytes;
    opterr = 0;
    c->inputs = calloc((size_t)argc + 1, sizeof *c->inputs);
    if (!c->inputs) exit(EXIT_FATAL);
    while ((opt = getopt_long(argc, argv, ":m:b:n:t:i:o:qhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': c->model_dir = optarg; break;
        case 'i': c->inputs[c->n_inputs++] = optarg; break;
        case 'o': c->output = optarg; break;
        case 'b': if (!parse_int(optarg, 1, 64, &c->beam)) die_usage("--beam takes 1..64", optarg); break;
        case 'n': if (!parse_int(optarg, 1, 64, &c->n_best)) die_usage("--n-best takes 1..64", optarg); break;
        case 't': if (!parse_int(optarg, 1, 256, &c->threads)) die_usage("--threads takes 1..256", optarg); break;
        case OPT_LP: {
            char *end;
            c->length_penalty = strtof(optarg, &end);
            if (end == optarg || *end || !(c->length_penalty >= -100 && c->length_penalty <= 100))
                die_usage("--length-penalty takes a number", optarg);
            c->have_lp = 1;
            break;
        }
        case OPT_MAXLEN:
            if (!parse_max_length(optarg, &c->factor, &c->extra))
                die_usage("--max-length takes FACTOR or FACTOR+CONSTANT, e.g. 2+10", optarg);
            break;
        case OPT_MAXIN: if (!parse_int(optarg, 2, 1 << 20, &c->max_input)) die_usage("--max-input takes an integer >= 2", optarg); break;
        case OPT_MAXBYTES:
            if (!parse_int(optarg, 1, INT_MAX, &bytes)) die_usage("--max-line-bytes takes a positive integer", optarg);
            c->max_line_bytes = (size_t)bytes;
            break;
        case OPT_ONERR:
            if (!strcmp(optarg, "copy")) c->on_error = ON_ERROR_COPY;
            else if (!strcmp(optarg, "skip")) c->on_error = ON_ERROR_SKIP;
            else if (!strcmp(optarg, "fail")) c->on_error = ON_ERROR_FAIL;
            else die_usage("--on-error takes copy, skip or fail", optarg);
            break;
        case OPT_DTYPE:
            if ((c->dtype = at_dtype_parse(optarg)) < 0) die_usage("--dtype takes f32, f16 or int8", optarg);
            break;
        case OPT_UNBUF: c->unbuffered = 1; break;
        case OPT_PROG: c->progress = 1; break;
        case OPT_NOPROG: c->progress = 0; break;
        case OPT_SPLIT: c->split = 1; break;
        case OPT_NOSPLIT: c->split = 0; break;
        case OPT_BATCH: if (!parse_int(optarg, 1, 1024, &c->batch_size)) die_usage("--batch-size takes 1..1024", optarg); break;
        case OPT_BTOK: if (!parse_int(optarg, 1, 1 << 24, &c->max_batch_tokens)) die_usage("--max-batch-tokens takes a positive integer", optarg); break;
        case OPT_SHOW: show = 1; break;
        case OPT_AFMT:
            if (!strcmp(optarg, "text")) fmt = ATTN_TEXT;
            else if (!strcmp(optarg, "json")) fmt = ATTN_JSON;
            else if (!strcmp(optarg, "svg") || !strcmp(optarg, "html")) fmt = ATTN_SVG;
            else die_usage("--attn-format takes text, json or svg", optarg);
            show = 1;
            break;
        case OPT_ALAYER: if (!parse_int(optarg, 0, 1023, &c->attn_layer)) die_usage("--attn-layer takes a layer number", optarg); break;
        case OPT_AHEAD:
            if (!strcmp(optarg, "mean")) c->attn_head = ATTN_HEAD_MEAN;
            else if (!strcmp(optarg, "all")) c->attn_head = ATTN_HEAD_ALL;
            else if (!parse_int(optarg, 0, 1023, &c->attn_head)) die_usage("--attn-head takes a head number, mean or all", optarg);
            break;
        case OPT_ADIR: c->attn_dir = optarg; break;
        case OPT_ALIGN: c->align = 1; break;
        case 'q': c->quiet = 1; c->progress = 0; break;
        case 'h': fputs(usage_text, stdout); exit(0);
        case 'V': printf("attn-translate %s\n", AT_VERSION_STRING); exit(0);
        case ':': die_usage("option needs a value", argv[optind - 1]); break;
        default: die_usage("unknown option", argv[optind - 1]);
        }
    }
    while (optind < argc) c->inputs[c->n_inputs++] = argv[optind++];
    if (show) c->attn = fmt != ATTN_NONE ? (enum attn_format)fmt : isatty(STDOUT_FILENO) ? ATTN_TEXT : ATTN_JSON;
    if (c->n_inputs > 1 && c->output) {
        struct stat st;
        size_t n = strlen(c->output);
        if (!(n && c->output[n - 1] == '/') && !(stat(c->output, &st) == 0 && S_ISDIR(st.st_mode)))
            die_usage("several inputs need -o DIR/ (a directory)", c->output);
    }
}

/* Finds the default model: $ATTN_TRANSLATE_MODEL, then models/en-fr next to the
 * binary (build tree), then the installed data directory. */
static const char *default_model(char *buf, size_t cap) {
    const char *env = getenv("ATTN_TRANSLATE_MODEL");
    if (env && *env) return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        const char *rel[] = {"models/" DEFAULT_MODEL, "../share/attn-translate/" DEFAULT_MODEL};
        for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
            snprintf(buf, cap, "%s/%s/model.json", exe, rel[i]);
            if (access(buf, R_OK) == 0) {
                snprintf(buf, cap, "%s/%s", exe, rel[i]);
                return buf;
            }
        }
    }
    snprintf(buf, cap, "%s/%s", AT_DATADIR, DEFAULT_MODEL);
    return buf;
}

/* ---- signals --------------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

/* ---- a chunk of lines ------------------------------------------------------------------ */

/* One unit of translation: a whole line, or one sentence of a split line. */
typedef struct unit {
    const char *text;
    size_t len;
    int line;   /* index in the chunk */
    int ntok;   /* source tokens (estimate for ordering and batch limits) */
} unit;

typedef struct chunk {
    char **lines;        /* owned, NUL-terminated, newline stripped */
    size_t *lens;
    int n, cap;
    long first_lineno;   /* 1-based number of lines[0] in its file */
    unit *units;
    int n_units, cap_units;
    int *order;          /* units sorted by length */
    char **out;          /* per unit: the output block (owned) */
    at_status *status;   /* per unit */
    char **errmsg;       /* per unit, when failed */
    /* batches: ranges of `order` */
    int *batch_start;
    int n_batches;
    atomic_int next_batch;
} chunk;

typedef struct ctx {
    const cli *c;
    const at_model *model;
    at_options opts;
    at_session **sessions;
    chunk *ck;
    atomic_long tokens_out;
} ctx;

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\v' && s[i] != '\f') return 0;
    return 1;
}

static int push_unit(chunk *ck, const char *text, size_t len, int line, int ntok) {
    if (ck->n_units == ck->cap_units) {
        int cap = ck->cap_units ? ck->cap_units * 2 : 256;
        unit *u = realloc(ck->units, (size_t)cap * sizeof *u);
        if (!u) return -1;
        ck->units = u, ck->cap_units = cap;
    }
    ck->units[ck->n_units++] = (unit){text, len, line, ntok};
    return 0;
}

static size_t token_count(const at_model *m, const char *text, size_t len) {
    size_t n = 0;
    at_status st = at_tokenize(m, text, len, NULL, 0, &n, NULL);
    return st == AT_OK || st == AT_ERR_TOO_LONG ? n + 1 : 0;
}

/* Splits an over-long line into sentences (after . ! ? … followed by a space), and
 * a sentence that is still too long into runs of words of at most limit-2 bytes
 * (a token covers at least one byte, so these always fit). */
static int split_line(ctx *x, chunk *ck, int li, int limit) {
    const char *s = ck->lines[li];
    size_t n = ck->lens[li], start = 0;
    while (start < n) {
        while (start < n && (s[start] == ' ' || s[start] == '\t')) start++;
        if (start >= n) break;
        size_t end = start;
        while (end < n) {
            char ch = s[end++];
            int stop = ch == '.' || ch == '!' || ch == '?';
            if (!stop && (unsigned char)ch == 0xE2 && end + 1 < n && (unsigned char)s[end] == 0x80 &&
                (unsigned char)s[end + 1] == 0xA6) /* … */
                end += 2, stop = 1;
            if (stop) {
                while (end < n && strchr("\"')]»", s[end])) end++;
                if (end >= n || s[end] == ' ' || s[end] == '\t') break;
            }
        }
        size_t ntok = token_count(x->model, s + start, end - start);
        if (ntok && ntok <= (size_t)limit) {
            if (push_unit(ck, s + start, end - start, li, (int)ntok)) return -1;
        } else { /* words, at most limit-2 bytes per piece */
            size_t p = start;
            while (p < end) {
                size_t q = p, last_space = 0;
                while (q < end && q - p < (size_t)limit - 2) {
                    if (s[q] == ' ') last_space = q;
                    q++;
                }
                if (q < end && last_space > p) q = last_space;
                while (q < end && q > p && ((unsigned char)s[q] & 0xC0) == 0x80) q--; /* UTF-8 */
                if (q == p) q = end < p + (size_t)limit - 2 ? end : p + (size_t)limit - 2;
                if (push_unit(ck, s + p, q - p, li, (int)token_count(x->model, s + p, q - p)))
                    return -1;
                p = q;
                while (p < end && s[p] == ' ') p++;
            }
        }
        start = end;
    }
    return 0;
}

static const unit *sort_units;
static int cmp_order(const void *a, const void *b) {
    const unit *x = &sort_units[*(const int *)a], *y = &sort_units[*(const int *)b];
    if (x->ntok != y->ntok) return x->ntok < y->ntok ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

/* Turns the chunk's lines into units, sorted by length, grouped into batches. */
static int plan_chunk(ctx *x, chunk *ck) {
    const cli *c = x->c;
    ck->n_units = 0;
    for (int i = 0; i < ck->n; i++) {
        const char *s = ck->lines[i];
        size_t n = ck->lens[i];
        if (is_blank(s, n)) continue; /* written back as it is */
        if (n > c->max_line_bytes) {
            if (push_unit(ck, s, n, i, -1)) return -1; /* refused below */
            continue;
        }
        size_t ntok = token_count(x->model, s, n);
        if (c->split && ntok > (size_t)x->opts.max_input_tokens) {
            if (split_line(x, ck, i, x->opts.max_input_tokens)) return -1;
        } else if (push_unit(ck, s, n, i, (int)ntok)) {
            return -1;
        }
    }
    int nu = ck->n_units;
    free(ck->order), free(ck->out), free(ck->status), free(ck->errmsg), free(ck->batch_start);
    ck->order = malloc((size_t)nu * sizeof *ck->order + 1);
    ck->out = calloc((size_t)nu + 1, sizeof *ck->out);
    ck->status = calloc((size_t)nu + 1, sizeof *ck->status);
    ck->errmsg = calloc((size_t)nu + 1, sizeof *ck->errmsg);
    ck->batch_start = malloc(((size_t)nu + 1) * sizeof *ck->batch_start);
    if (!ck->order || !ck->out || !ck->status || !ck->errmsg || !ck->batch_start) return -1;
    for (int i = 0; i < nu; i++) ck->order[i] = i;
    sort_units = ck->units;
    qsort(ck->order, (size_t)nu, sizeof *ck->order, cmp_order);
    ck->n_batches = 0;
    int tokens = 0, size = 0;
    for (int k = 0; k < nu; k++) {
        int t = ck->units[ck->order[k]].ntok > 0 ? ck->units[ck->order[k]].ntok : 1;
        if (size == 0 || size >= c->batch_size || tokens + t > c->max_batch_tokens) {
            ck->batch_start[ck->n_batches++] = k;
            tokens = 0, size = 0;
        }
        tokens += t, size++;
    }
    ck->batch_start[ck->n_batches] = nu;
    atomic_store(&ck->next_batch, 0);
    return 0;
}

/* ---- formatting one unit's output --------------------------------------------------- */

static char *format_unit(ctx *x, const unit *u, long lineno, const at_result *r) {
    const cli *c = x->c;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return NULL;
    attn_view v = {0};
    int want_view = c->attn != ATTN_NONE || c->align;
    if (want_view && r->n_hyps > 0 &&
        attn_view_init(&v, x->model, r, 0, x->opts.attention_layer, c->attn_head, lineno, u->text) != 0)
        memset(&v, 0, sizeof v);
    if (c->attn == ATTN_JSON) {
        attn_write_json(f, &v);
    } else if (c->n_best > 1) {
        for (int i = 0; i < r->n_hyps; i++)
            fprintf(f, "%ld ||| %s ||| %.6f\n", lineno - 1, r->hyps[i].text, r->hyps[i].score);
    } else {
        fputs(r->hyps[0].text, f);
        if (c->align) {
            int n = attn_alignment(&v, NULL, 0);
            char *al = n >= 0 ? malloc((size_t)n + 1) : NULL;
            if (al) attn_alignment(&v, al, (size_t)n + 1);
            fprintf(f, " ||| %s", al ? al : "");
            free(al);
        }
        fputc('\n', f);
    }
    if (c->attn == ATTN_TEXT) {
        struct winsize ws;
        const char *cols = getenv("COLUMNS");
        int width = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col
                    : cols && atoi(cols) > 0                                 ? atoi(cols)
                                                                             : 100;
        attn_write_text(f, &v, width, isatty(STDOUT_FILENO));
    } else if (c->attn == ATTN_SVG && v.n_tgt > 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/line-%06ld.svg", c->attn_dir ? c->attn_dir : ".", lineno);
        if (attn_write_svg(path, &v) != 0 && !c->quiet)
            fprintf(stderr, "attn-translate: %s: %s\n", path, strerror(errno));
    }
    attn_view_release(&v);
    fclose(f);
    return buf;
}

/* ---- workers ------------------------------------------------------------------------ */

typedef struct worker_arg {
    ctx *x;
    int id;
} worker_arg;

static void run_batches(ctx *x, int id) {
    chunk *ck = x->ck;
    at_session *s = x->sessions[id];
    const char *texts[1024];
    size_t lens[1024];
    at_result res[1024];
    at_status sts[1024];
    at_error *errs = malloc(1024 * sizeof *errs);
    if (!errs) return;
    for (;;) {
        int b = atomic_fetch_add(&ck->next_batch, 1);
        if (b >= ck->n_batches || interrupted) break;
        int k0 = ck->batch_start[b], k1 = ck->batch_start[b + 1], n = 0;
        int idx[1024];
        for (int k = k0; k < k1; k++) {
            const unit *u = &ck->units[ck->order[k]];
            if (u->ntok < 0) { /* longer than --max-line-bytes */
                ck->status[ck->order[k]] = AT_ERR_TOO_LONG;
                char msg[128];
                snprintf(msg, sizeof msg, "line is %zu bytes long; the limit is %zu (--max-line-bytes)",
                         u->len, x->c->max_line_bytes);
                ck->errmsg[ck->order[k]] = strdup(msg);
                continue;
            }
            idx[n] = ck->order[k], texts[n] = u->text, lens[n] = u->len, n++;
        }
        at_error err = {0};
        at_status st = at_translate_batch(s, n, texts, lens, &x->opts, res, sts, errs, &err);
        for (int i = 0; i < n; i++) {
            int ui = idx[i];
            if (st) sts[i] = st, errs[i] = err;
            ck->status[ui] = sts[i];
            if (sts[i]) {
                ck->errmsg[ui] = strdup(errs[i].message);
                continue;
            }
            const unit *u = &ck->units[ui];
            ck->out[ui] = format_unit(x, u, ck->first_lineno + u->line, &res[i]);
            atomic_fetch_add(&x->tokens_out, res[i].hyps[0].n_ids);
        }
    }
    free(errs);
}

static void *worker_main(void *p) {
    worker_arg *a = p;
    run_batches(a->x, a->id);
    return NULL;
}

static void translate_chunk(ctx *x, int threads) {
    int nt = threads < x->ck->n_batches ? threads : x->ck->n_batches;
    if (nt <= 1) {
        run_batches(x, 0);
        return;
    }
    pthread_t tid[256];
    worker_arg args[256];
    int started = 0;
    for (int i = 1; i < nt; i++) {
        args[i] = (worker_arg){x, i};
        if (pthread_create(&tid[i], NULL, worker_main, &args[i]) == 0) started = i;
        else break;
    }
    run_batches(x, 0);
    for (int i = 1; i <= started; i++) pthread_join(tid[i], NULL);
}

/* ---- writing --------------------------------------------------------------------------- */

typedef struct stats {
    long lines, failed;
    const at_model *model;
    struct timespec start;
} stats;

/* Writes the chunk's lines in order. Returns 0, or -1 to stop (--on-error fail). */
static int write_chunk(ctx *x, chunk *ck, FILE *out, const char *name, stats *st) {
    const cli *c = x->c;
    int u = 0;
    for (int i = 0; i < ck->n; i++) {
        long lineno = ck->first_lineno + i;
        st->lines++;
        if (u >= ck->n_units || ck->units[u].line != i) { /* a blank line: kept as is */
            if (c->attn == ATTN_JSON) {
                attn_view v = {.line = lineno, .source = ck->lines[i], .translation = ck->lines[i],
                               .layer = x->opts.attention_layer, .head = c->attn_head};
                attn_write_json(out, &v);
            } else if (c->n_best > 1) {
                fprintf(out, "%ld ||| %s ||| 0\n", lineno - 1, ck->lines[i]);
            } else { /* the line's own bytes, NULs included */
                fwrite(ck->lines[i], 1, ck->lens[i], out);
                fprintf(out, "%s\n", c->align ? " ||| " : "");
            }
            continue;
        }
        int first = u, bad = -1;
        while (u < ck->n_units && ck->units[u].line == i) {
            if (ck->status[u] && bad < 0) bad = u;
            u++;
        }
        if (bad >= 0) {
            st->failed++;
            if (!c->quiet || c->on_error == ON_ERROR_FAIL)
                fprintf(stderr, "attn-translate: %s:%ld: %s\n", name, lineno,
                        ck->errmsg[bad] ? ck->errmsg[bad] : at_status_str(ck->status[bad]));
            if (c->on_error == ON_ERROR_FAIL) return -1;
            const char *text = c->on_error == ON_ERROR_COPY ? ck->lines[i] : "";
            if (c->attn == ATTN_JSON) {
                attn_view v = {.line = lineno, .source = ck->lines[i], .translation = text,
                               .layer = x->opts.attention_layer, .head = c->attn_head};
                attn_write_json(out, &v);
            } else if (c->n_best > 1) {
                fprintf(out, "%ld ||| %s ||| 0\n", lineno - 1, text);
            } else { /* copy: the line's own bytes, NULs included */
                if (c->on_error == ON_ERROR_COPY) fwrite(ck->lines[i], 1, ck->lens[i], out);
                fprintf(out, "%s\n", c->align ? " ||| " : "");
            }
            continue;
        }
        if (u - first == 1) {
            fputs(ck->out[first] ? ck->out[first] : "\n", out);
        } else { /* a split line: join the sentences' translations with spaces */
            for (int k = first; k < u; k++) {
                const char *o = ck->out[k] ? ck->out[k] : "";
                size_t n = strcspn(o, "\n");
                fprintf(out, "%s%.*s", k > first ? " " : "", (int)n, o);
            }
            fputc('\n', out);
        }
    }
    return 0;
}

static void free_chunk_lines(chunk *ck) {
    for (int i = 0; i < ck->n; i++) free(ck->lines[i]);
    for (int i = 0; i < ck->n_units; i++) free(ck->out[i]), free(ck->errmsg[i]);
    ck->n = 0;
    ck->n_units = 0;
}

static void show_progress(const stats *st, long tokens, off_t done, off_t total, int final) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double secs = (double)(now.tv_sec - st->start.tv_sec) + (now.tv_nsec - st->start.tv_nsec) / 1e9;
    fprintf(stderr, "\r%ld lines, %.0f tokens/s", st->lines, secs > 0 ? (double)tokens / secs : 0.0);
    if (final) fprintf(stderr, " (%s)", at_model_compute(st->model));
    if (total > 0 && done > 0) {
        double frac = (double)done / (double)total;
        fprintf(stderr, ", %3.0f%%", 100 * frac);
        if (!final && frac > 0) fprintf(stderr, ", ETA %.0fs", secs / frac - secs);
    }
    fputs(final ? "\n" : "   ", stderr);
}

/* Translates one input stream into `out`. Returns 0, or -1 when it stopped early. */
static int translate_stream(ctx *x, FILE *in, const char *name, FILE *out, stats *st, int threads) {
    const cli *c = x->c;
    chunk ck = {0};
    x->ck = &ck;
    int interactive = c->unbuffered;
    int chunk_lines = interactive ? 1 : c->batch_size * threads * 4;
    if (chunk_lines > 16384) chunk_lines = 16384;
    struct stat sb;
    off_t total = fstat(fileno(in), &sb) == 0 && S_ISREG(sb.st_mode) ? sb.st_size : 0;
    ck.lines = malloc((size_t)chunk_lines * sizeof *ck.lines);
    ck.lens = malloc((size_t)chunk_lines * sizeof *ck.lens);
    if (!ck.lines || !ck.lens) return -1;
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = 0, eof = 0;
    while (!eof && !interrupted) {
        ck.first_lineno = lineno + 1;
        ck.n = 0;
        while (ck.n < chunk_lines) {
            ssize_t len = getline(&line, &cap, in);
            if (len < 0) {
                eof = 1;
                break;
            }
            lineno++;
            if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
            if (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
            char *copy = malloc((size_t)len + 1);
            if (!copy) {
                rc = -1;
                break;
            }
            memcpy(copy, line, (size_t)len + 1);
            ck.lines[ck.n] = copy, ck.lens[ck.n] = (size_t)len, ck.n++;
        }
        if (ck.n == 0 || rc) break;
        /* blank lines are not units: plan_chunk skips them via is_blank */
        if (plan_chunk(x, &ck) != 0) {
            fprintf(stderr, "attn-translate: out of memory\n");
            rc = -1;
            break;
        }
        translate_chunk(x, threads);
        if (interrupted) break;
        if (write_chunk(x, &ck, out, name, st) != 0) rc = -1;
        if (interactive) fflush(out);
        if (c->progress) show_progress(st, atomic_load(&x->tokens_out), total ? ftello(in) : 0, total, 0);
        free_chunk_lines(&ck);
        if (rc) break;
    }
    free_chunk_lines(&ck);
    if (ferror(in)) {
        fprintf(stderr, "attn-translate: %s: read error\n", name);
        rc = -1;
    }
    free(line);
    free(ck.lines), free(ck.lens), free(ck.units), free(ck.order), free(ck.out), free(ck.status);
    free(ck.errmsg), free(ck.batch_start);
    return rc;
}

/* ---- outputs: temporary file, renamed when complete ------------------------------------------ */

static char tmp_path[PATH_MAX + 32];

static void remove_tmp(void) {
    if (tmp_path[0]) unlink(tmp_path);
}

static FILE *open_output(const char *path) {
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp_path);
    if (fd < 0) {
        fprintf(stderr, "attn-translate: %s: %s\n", path, strerror(errno));
        tmp_path[0] = '\0';
        return NULL;
    }
    fchmod(fd, 0644);
    return fdopen(fd, "w");
}

static int close_output(FILE *f, const char *path, int keep) {
    int bad = fflush(f) != 0 || ferror(f);
    bad |= fclose(f) != 0;
    if (bad || !keep) {
        if (bad) fprintf(stderr, "attn-translate: %s: write error\n", path);
        remove_tmp();
        tmp_path[0] = '\0';
        return -1;
    }
    if (rename(tmp_path, path) != 0) {
        fprintf(stderr, "attn-translate: %s: %s\n", path, strerror(errno));
        remove_tmp();
        tmp_path[0] = '\0';
        return -1;
    }
    tmp_path[0] = '\0';
    return 0;
}

/* ---- main ------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    cli c = {.beam = -1, .n_best = 1, .threads = 0, .progress = -1, .split = 1, .max_input = -1,
             .batch_size = 32, .max_batch_tokens = 4096, .max_line_bytes = 100000, .factor = 2.0f,
             .extra = 10, .attn_layer = -1, .attn_head = ATTN_HEAD_MEAN};
    parse_args(argc, argv, &c);
    int interactive_in = c.n_inputs == 0 && isatty(STDIN_FILENO);
    if (interactive_in) c.unbuffered = 1;
    if (c.progress < 0) c.progress = !c.quiet && !c.unbuffered && isatty(STDERR_FILENO);
    if (c.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c.threads = c.unbuffered ? 1 : n < 1 ? 1 : n > 8 ? 8 : (int)n;
    }
    openblas_set_num_threads(1);

    char buf[PATH_MAX + 64];
    int searched = !c.model_dir;
    if (!c.model_dir) c.model_dir = default_model(buf, sizeof buf);
    at_error err = {0};
    at_model *model = NULL;
    at_status st = at_model_load_dtype(c.model_dir, (at_dtype)c.dtype, &model, &err);
    if (st != AT_OK) {
        fprintf(stderr, "attn-translate: cannot load model: %s\n", err.message);
        if (searched && st == AT_ERR_IO)
            fprintf(stderr, "attn-translate: no default model was found (looked for models/%s beside "
                            "the binary, then %s/%s); give one with -m DIR or $ATTN_TRANSLATE_MODEL\n",
                    DEFAULT_MODEL, AT_DATADIR, DEFAULT_MODEL);
        free(c.inputs);
        return EXIT_FATAL;
    }
    const at_config *cfg = at_model_config(model);
    ctx x = {.c = &c, .model = model, .opts = at_default_options(model)};
    int status = 0;
    if (c.beam > 0) x.opts.beam_size = c.beam;
    if (c.n_best > x.opts.beam_size) {
        fprintf(stderr, "attn-translate: --n-best %d exceeds the beam size %d\n", c.n_best,
                x.opts.beam_size);
        status = EXIT_USAGE;
        goto done;
    }
    x.opts.n_best = c.n_best;
    if (c.have_lp) x.opts.length_penalty = c.length_penalty;
    x.opts.max_length_factor = c.factor;
    x.opts.max_length_extra = c.extra;
    if (c.max_input > 0 && c.max_input < x.opts.max_input_tokens) x.opts.max_input_tokens = c.max_input;
    if (c.attn != ATTN_NONE || c.align) {
        int layer = c.attn_layer >= 0 ? c.attn_layer : cfg->decoder_layers - 1;
        if (layer >= cfg->decoder_layers) {
            fprintf(stderr, "attn-translate: --attn-layer %d: the model has %d decoder layers\n",
                    c.attn_layer, cfg->decoder_layers);
            status = EXIT_USAGE;
            goto done;
        }
        if (c.attn_head >= cfg->decoder_heads) {
            fprintf(stderr, "attn-translate: --attn-head %d: the model has %d heads\n", c.attn_head,
                    cfg->decoder_heads);
            status = EXIT_USAGE;
            goto done;
        }
        x.opts.attention_layer = layer;
        if (c.batch_size > 8) c.batch_size = 8; /* attention capture memory grows with the batch */
    }
    if (c.attn == ATTN_SVG && c.attn_dir && mkdir(c.attn_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "attn-translate: %s: %s\n", c.attn_dir, strerror(errno));
        status = EXIT_FATAL;
        goto done;
    }
    x.sessions = calloc((size_t)c.threads, sizeof *x.sessions);
    for (int i = 0; x.sessions && i < c.threads; i++)
        if (at_session_new(model, &x.sessions[i], &err) != AT_OK) {
            fprintf(stderr, "attn-translate: %s\n", err.message);
            status = EXIT_FATAL;
            goto done;
        }

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    stats stt = {.model = model};
    clock_gettime(CLOCK_MONOTONIC, &stt.start);
    if (c.n_inputs == 0) {
        FILE *out = stdout;
        int rc = 0;
        if (c.output && !(out = open_output(c.output))) {
            status = EXIT_FATAL;
            goto done;
        }
        rc = translate_stream(&x, stdin, "<stdin>", out, &stt, c.threads);
        if (c.output) rc |= close_output(out, c.output, !rc && !interrupted);
        if (rc) status = EXIT_FATAL;
    }
    for (int i = 0; i < c.n_inputs && !status && !interrupted; i++) {
        FILE *in = strcmp(c.inputs[i], "-") ? fopen(c.inputs[i], "r") : stdin;
        if (!in) {
            fprintf(stderr, "attn-translate: %s: %s\n", c.inputs[i], strerror(errno));
            status = EXIT_FATAL;
            break;
        }
        FILE *out = stdout;
        char path[PATH_MAX];
        if (c.output) {
            if (c.n_inputs > 1) {
                const char *base = strrchr(c.inputs[i], '/');
                snprintf(path, sizeof path, "%s%s%s", c.output,
                         c.output[strlen(c.output) - 1] == '/' ? "" : "/", base ? base + 1 : c.inputs[i]);
                mkdir(c.output, 0755);
            } else {
                snprintf(path, sizeof path, "%s", c.output);
            }
            if (!(out = open_output(path))) {
                status = EXIT_FATAL;
                break;
            }
        }
        int rc = translate_stream(&x, in, c.inputs[i], out, &stt, c.threads);
        if (in != stdin) fclose(in);
        if (c.output) rc |= close_output(out, path, !rc && !interrupted);
        if (rc) status = EXIT_FATAL;
    }
    if (c.progress) show_progress(&stt, atomic_load(&x.tokens_out), 0, 0, 1);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "attn-translate: error writing standard output: %s\n", strerror(errno));
        status = EXIT_FATAL;
    }
done:
    for (int i = 0; x.sessions && i < c.threads; i++) at_session_free(x.sessions[i]);
    free(x.sessions);
    free(c.inputs);
    at_model_free(model);
    if (interrupted) {
        remove_tmp();
        fprintf(stderr, "attn-translate: interrupted\n");
        return EXIT_INTERRUPTED;
    }
    if (!status && stt.failed) status = EXIT_LINES_FAILED;
    return status;
}

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
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
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
/* OpenBLAS's pthread build starts a server thread per core as it loads, and each spins
 * (sched_yield) for about a tenth of a second before it sleeps, taking a core from the
 * model load. Every BLAS call here runs on the calling thread, so they are stopped
 * first thing. Weak: OpenBLAS's serial and OpenMP builds have no such function. */
extern void blas_thread_shutdown_(void) __attribute__((weak));

static const char *usage_text =
    "Usage: attn-translate [OPTIONS] [FILE...] < input.en > output.fr\n"
    "Translate English text to French, one line at a time; output line i answers input line i.\n"
    "\n"
    "Input and output:\n"
    "  -i, --input FILE         read FILE (repeatable; also positional FILEs; default stdin)\n"
    "  -o, --output PATH        write to PATH (through symlinks; devices and FIFOs in place;\n"
    "                           a file keeps its mode; never an input); '-' is stdout;\n"
    "                           PATH/ or a directory: one file per input, same names\n"
    "      --unbuffered         translate and flush line by line (default on a terminal)\n"
    "      --progress, --no-progress  progress on stderr (default: on a terminal, for runs\n"
    "                           over a second), and the closing statistics\n"
    "      --verbose            the closing statistics (lines, tokens/s, kernels)\n"
    "  -q, --quiet              no warnings and no progress on stderr\n"
    "Model and decoding:\n"
    "  -m, --model DIR          model directory (default: the shipped en-fr model;\n"
    "                           also $ATTN_TRANSLATE_MODEL)\n"
    "  -b, --beam N             beam size; 1 = greedy (default: the model's, 4)\n"
    "  -n, --n-best K           print K hypotheses per line: 'LINE ||| TRANSLATION ||| SCORE'\n"
    "                           (Marian's format: LINE counts from 0; JSON and SVG from 1)\n"
    "      --length-penalty A   rank by log-prob / length^A, 0 <= A <= 100 (default: the\n"
    "                           model's, 1.0; 0 = raw log-prob, which favours short output)\n"
    "      --max-length F[+C]   output at most F x source tokens + C tokens, at least 1\n"
    "                           (default 2+10)\n"
    "      --max-input N        longest line in tokens before splitting (default: model max)\n"
    "      --max-line-bytes N   refuse lines longer than N bytes (default 100000)\n"
    "      --split-sentences    split over-long lines into sentences (the default)\n"
    "      --no-split-sentences refuse over-long lines instead\n"
    "      --on-error MODE      a line that cannot be translated: copy (default: print\n"
    "                           the source line), skip (print an empty line), fail (stop)\n"
    "      --keep-unknowns      print a character the vocabulary lacks as ' \u2047 ' (default:\n"
    "                           copy it from the source, where the attention points)\n"
    "Throughput:\n"
    "  -t, --threads N          threads: workers taking whole batches, or all on one batch\n"
    "                           when there is only one; also loading the model (default:\n"
    "                           cores, up to 8)\n"
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
    "                           (not with --n-best)\n"
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
    int beam, n_best, threads, quiet, progress, progress_explicit, unbuffered, split, align, verbose;
    int keep_unknowns;
    int load_threads; /* threads for loading the model: --threads N, else the cores (<= 8) */
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
        OPT_AHEAD, OPT_ADIR, OPT_ALIGN, OPT_DTYPE, OPT_VERBOSE, OPT_KEEPUNK
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
        {"verbose", no_argument, 0, OPT_VERBOSE}, {"keep-unknowns", no_argument, 0, OPT_KEEPUNK},
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
            if (end == optarg || *end || !(c->length_penalty >= 0 && c->length_penalty <= 100))
                die_usage("--length-penalty takes a number from 0 to 100 (0: no length normalisation)",
                          optarg);
            c->have_lp = 1;
            break;
        }
        case OPT_MAXLEN:
            if (!parse_max_length(optarg, &c->factor, &c->extra))
                die_usage("--max-length takes FACTOR or FACTOR+CONSTANT, e.g. 2+10", optarg);
            if (c->factor == 0 && c->extra == 0)
                die_usage("--max-length 0+0 allows no output token; the least is 0+1", optarg);
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
        case OPT_PROG: c->progress = c->progress_explicit = 1; break;
        case OPT_NOPROG: c->progress = c->progress_explicit = 0; break;
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
        case OPT_KEEPUNK: c->keep_unknowns = 1; break;
        case 'q': c->quiet = 1; c->progress = c->progress_explicit = 0; break;
        case OPT_VERBOSE: c->verbose = 1; break;
        case 'h': fputs(usage_text, stdout); exit(0);
        case 'V': printf("attn-translate %s\n", AT_VERSION_STRING); exit(0);
        case ':': die_usage("option needs a value", argv[optind - 1]); break;
        default: die_usage("unknown option", argv[optind - 1]);
        }
    }
    while (optind < argc) c->inputs[c->n_inputs++] = argv[optind++];
    if (show) c->attn = fmt != ATTN_NONE ? (enum attn_format)fmt : isatty(STDOUT_FILENO) ? ATTN_TEXT : ATTN_JSON;
    if (c->align && c->n_best > 1)
        die_usage("--align and --n-best cannot be combined (n-best records carry no alignment)", NULL);
    if (c->n_inputs == 0 && c->output && !strcmp(c->output, ""))
        die_usage("-o needs a path", NULL);
}

/* The places the default model is looked for when neither -m nor $ATTN_TRANSLATE_MODEL
 * is given, as absolute paths: models/en-fr beside the binary (a build tree),
 * ../share/attn-translate/en-fr relative to the binary (an installed tree), and the
 * data directory of the build's PREFIX. Returns how many it filled. */
#define PLACE_MAX (PATH_MAX + 64)
static int model_places(char places[3][PLACE_MAX], const char *what[3]) {
    int n = 0;
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(places[n], PLACE_MAX, "%s/models/%s", exe, DEFAULT_MODEL);
        what[n++] = "beside the binary";
        slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(places[n], PLACE_MAX, "%s/share/attn-translate/%s", slash == exe ? "" : exe, DEFAULT_MODEL);
        what[n++] = "../share/attn-translate relative to the binary";
    }
    snprintf(places[n], PLACE_MAX, "%s/%s", AT_DATADIR, DEFAULT_MODEL);
    what[n++] = "PREFIX/share/attn-translate";
    return n;
}

/* path as an absolute path (for messages), into buf. */
static const char *absolute(const char *path, char *buf, size_t cap) {
    char cwd[PATH_MAX];
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd)) return path;
    snprintf(buf, cap, "%s/%s", cwd, path);
    return buf;
}

/* Loads with --dtype, on as many threads as cores (or --threads N when given): the
 * weights are checked and converted, and vocab.json read, in parallel. */
static at_status load_dir(const cli *c, const char *dir, at_model **model, at_error *err) {
    at_load_options o = {(at_dtype)c->dtype, c->load_threads};
    return at_model_load_opts(dir, &o, model, err);
}

/* Loads -m DIR, else $ATTN_TRANSLATE_MODEL, else the first of model_places that has a
 * model.json. On failure prints one message that names every place it looked. */
static at_status load_model(const cli *c, at_model **model) {
    at_error err = {0};
    char abs[PATH_MAX + 64];
    if (c->model_dir) {
        at_status st = load_dir(c, c->model_dir, model, &err);
        if (st)
            fprintf(stderr, "attn-translate: cannot load the model given with -m, %s: %s\n",
                    absolute(c->model_dir, abs, sizeof abs), err.message);
        return st;
    }
    const char *env = getenv("ATTN_TRANSLATE_MODEL");
    if (env && *env) {
        at_status st = load_dir(c, env, model, &err);
        if (st)
            fprintf(stderr, "attn-translate: $ATTN_TRANSLATE_MODEL is set to %s, which cannot be "
                            "loaded: %s\n", absolute(env, abs, sizeof abs), err.message);
        return st;
    }
    char places[3][PLACE_MAX], probe[PLACE_MAX + 16];
    const char *what[3];
    int n = model_places(places, what);
    for (int i = 0; i < n; i++) {
        if (snprintf(probe, sizeof probe, "%.*s/model.json", PATH_MAX, places[i]) >= (int)sizeof probe ||
            access(probe, F_OK) != 0)
            continue;
        at_status st = load_dir(c, places[i], model, &err);
        if (st) fprintf(stderr, "attn-translate: cannot load the default model %s: %s\n", places[i], err.message);
        return st;
    }
    fprintf(stderr, "attn-translate: no model: -m was not given, $ATTN_TRANSLATE_MODEL is not set, "
                    "and there is no model.json in");
    for (int i = 0; i < n; i++)
        fprintf(stderr, "%s %s (%s)", i == 0 ? "" : i == n - 1 ? ", nor in" : ",", places[i], what[i]);
    fputs("; give a model with -m DIR (try -m tests/fixtures/tiny/A in the source tree)\n", stderr);
    return AT_ERR_IO;
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

/* One hypothesis of a unit, copied out of the session. */
typedef struct hyp_out {
    char *text;
    float score, logprob;
    int length; /* tokens the score is normalised by */
} hyp_out;

/* What a unit's translation left for the writer (owned). */
typedef struct unit_out {
    hyp_out *hyps;
    int n_hyps;
    attn_view view; /* the best hypothesis' attention, when it is shown or aligned */
} unit_out;

typedef struct chunk {
    char **lines;        /* owned, NUL-terminated, newline stripped */
    size_t *lens;
    int n, cap;
    long first_lineno;   /* 1-based number of lines[0] in its file */
    unit *units;
    int n_units, cap_units;
    int *order;          /* units sorted by length */
    unit_out *res;       /* per unit: its hypotheses and attention */
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
    int text_width, text_blocks; /* --attn-format text: columns, shaded blocks */
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
    free(ck->order), free(ck->res), free(ck->status), free(ck->errmsg), free(ck->batch_start);
    ck->order = malloc((size_t)nu * sizeof *ck->order + 1);
    ck->res = calloc((size_t)nu + 1, sizeof *ck->res);
    ck->status = calloc((size_t)nu + 1, sizeof *ck->status);
    ck->errmsg = calloc((size_t)nu + 1, sizeof *ck->errmsg);
    ck->batch_start = malloc(((size_t)nu + 1) * sizeof *ck->batch_start);
    if (!ck->order || !ck->res || !ck->status || !ck->errmsg || !ck->batch_start) return -1;
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

/* ---- a unit's result, kept for the writer ----------------------------------------------- */

static void unit_out_free(unit_out *o) {
    for (int k = 0; k < o->n_hyps; k++) free(o->hyps[k].text);
    free(o->hyps);
    attn_view_release(&o->view);
    memset(o, 0, sizeof *o);
}

/* Copies what the writer needs out of the session (its memory is reused by the next
 * batch). Returns 0, or -1 when out of memory. */
static int save_unit(ctx *x, const at_result *r, unit_out *o) {
    const cli *c = x->c;
    memset(o, 0, sizeof *o);
    o->hyps = calloc((size_t)(r->n_hyps > 0 ? r->n_hyps : 1), sizeof *o->hyps);
    if (!o->hyps) return -1;
    for (int k = 0; k < r->n_hyps; k++) {
        const at_hypothesis *h = &r->hyps[k];
        o->hyps[k] = (hyp_out){strdup(h->text), h->score, h->logprob, h->length};
        if (!o->hyps[k].text) return -1;
        o->n_hyps++;
    }
    if ((c->attn != ATTN_NONE || c->align) && r->n_hyps > 0 &&
        attn_view_init(&o->view, x->model, r, 0, x->opts.attention_layer, c->attn_head, 0, NULL) != 0)
        memset(&o->view, 0, sizeof o->view);
    return 0;
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
        /* longest batches first (batches are in order of length): the last ones taken
         * are short, so the workers finish the chunk close together */
        int b = ck->n_batches - 1 - atomic_fetch_add(&ck->next_batch, 1);
        if (b < 0 || interrupted) break;
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
            if (save_unit(x, &res[i], &ck->res[ui]) != 0) {
                unit_out_free(&ck->res[ui]);
                ck->status[ui] = AT_ERR_NOMEM;
                ck->errmsg[ui] = strdup("out of memory");
                continue;
            }
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

/* A chunk of several batches runs them on `threads` workers, one core each; a chunk of
 * one batch (a single line on a terminal, a short file) gives all the threads to the
 * first worker's session, which splits each matrix product among them. */
static void translate_chunk(ctx *x, int threads) {
    int nt = threads < x->ck->n_batches ? threads : x->ck->n_batches;
    at_session_set_threads(x->sessions[0], nt <= 1 ? threads : 1);
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
    int shown; /* a progress line is on the terminal */
} stats;

/* Writes one translated line in the output format: the translation (with its alignment),
 * its n-best records, or its JSON record; then its text grid or SVG picture. `v` holds
 * the line's attention (zeroed when there is none). */
static void emit_line(ctx *x, FILE *out, long lineno, const char *text, float score,
                      const hyp_out *hyps, int n_hyps, attn_view *v, const attn_extra *extra) {
    const cli *c = x->c;
    v->line = lineno;
    v->translation = text;
    v->score = score;
    v->layer = x->opts.attention_layer;
    v->head = c->attn_head;
    if (c->attn == ATTN_JSON) {
        attn_write_json_extra(out, v, extra);
    } else if (c->n_best > 1) { /* Marian: the line number counts from 0 */
        for (int k = 0; k < n_hyps; k++)
            fprintf(out, "%ld ||| %s ||| %.6f\n", lineno - 1, hyps[k].text, hyps[k].score);
    } else {
        fputs(text, out);
        if (c->align) {
            int n = attn_alignment(v, NULL, 0);
            char *al = n >= 0 ? malloc((size_t)n + 1) : NULL;
            if (al) attn_alignment(v, al, (size_t)n + 1);
            fprintf(out, " ||| %s", al ? al : "");
            free(al);
        }
        fputc('\n', out);
    }
    if (c->attn == ATTN_TEXT) {
        attn_write_text(out, v, x->text_width, x->text_blocks);
    } else if (c->attn == ATTN_SVG && v->n_tgt > 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/line-%06ld.svg", c->attn_dir ? c->attn_dir : ".", lineno);
        if (attn_write_svg(path, v) != 0 && !c->quiet)
            fprintf(stderr, "attn-translate: %s: %s\n", path, strerror(errno));
    }
}

/* Writes a line that was split into the units first..last-1 as one line: the pieces'
 * best translations joined with spaces, one n-best record (the join, scored as a
 * whole: the summed log-probabilities over the summed lengths^A), and one attention
 * view over the whole line (block-diagonal). */
static void emit_split_line(ctx *x, chunk *ck, int li, int first, int last, FILE *out, long lineno) {
    int np = last - first;
    size_t len = 0;
    double logprob = 0, length = 0;
    for (int k = first; k < last; k++) {
        const hyp_out *h = &ck->res[k].hyps[0];
        len += strlen(h->text) + 1;
        logprob += h->logprob, length += h->length;
    }
    float score = length > 0 ? (float)(logprob / pow(length, x->opts.length_penalty)) : 0.0f;
    char *text = malloc(len + 1);
    attn_view *views = malloc((size_t)np * sizeof *views);
    attn_piece *pieces = malloc((size_t)np * sizeof *pieces);
    char **sources = calloc((size_t)np, sizeof *sources);
    attn_view v = {0};
    if (!text || !views || !pieces || !sources) {
        fprintf(stderr, "attn-translate: out of memory\n");
        goto done;
    }
    size_t used = 0;
    int have_views = 1, s0 = 0, t0 = 0;
    for (int k = first; k < last; k++) {
        const unit_out *o = &ck->res[k];
        const unit *u = &ck->units[k];
        if (*o->hyps[0].text) /* an empty piece adds no space */
            used += (size_t)sprintf(text + used, "%s%s", used ? " " : "", o->hyps[0].text);
        views[k - first] = o->view;
        if (!o->view.src_tokens) have_views = 0;
        sources[k - first] = strndup(u->text, u->len);
        pieces[k - first] = (attn_piece){sources[k - first] ? sources[k - first] : "", o->hyps[0].text,
                                         o->hyps[0].score, s0, s0 + o->view.n_src, t0,
                                         t0 + o->view.n_tgt};
        s0 += o->view.n_src, t0 += o->view.n_tgt;
    }
    hyp_out joined = {text, score, (float)logprob, (int)length};
    if (have_views && (x->c->attn != ATTN_NONE || x->c->align) && attn_view_concat(&v, views, np) != 0)
        memset(&v, 0, sizeof v);
    v.source = ck->lines[li];
    attn_extra extra = {.pieces = have_views ? pieces : NULL, .n_pieces = np};
    emit_line(x, out, lineno, text, score, &joined, 1, &v, &extra);
done:
    attn_view_release(&v);
    for (int k = 0; sources && k < np; k++) free(sources[k]);
    free(text), free(views), free(pieces), free(sources);
}

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
        if (bad >= 0) { /* not translated: marked as such in every format */
            const char *why = ck->errmsg[bad] ? ck->errmsg[bad] : at_status_str(ck->status[bad]);
            st->failed++;
            if (!c->quiet || c->on_error == ON_ERROR_FAIL)
                fprintf(stderr, "attn-translate: %s:%ld: %s\n", name, lineno, why);
            if (c->on_error == ON_ERROR_FAIL) return -1;
            const char *text = c->on_error == ON_ERROR_COPY ? ck->lines[i] : "";
            if (c->attn == ATTN_JSON) {
                attn_view v = {.line = lineno, .source = ck->lines[i], .translation = text,
                               .layer = x->opts.attention_layer, .head = c->attn_head};
                attn_extra extra = {.error = why};
                attn_write_json_extra(out, &v, &extra);
            } else if (c->n_best > 1) { /* no probability: -inf, never a score that looks real */
                fprintf(out, "%ld ||| %s ||| -inf\n", lineno - 1, text);
            } else { /* copy: the line's own bytes, NULs included */
                if (c->on_error == ON_ERROR_COPY) fwrite(ck->lines[i], 1, ck->lens[i], out);
                fprintf(out, "%s\n", c->align ? " ||| " : "");
            }
            continue;
        }
        if (u - first == 1) {
            unit_out *o = &ck->res[first];
            attn_view v = o->view; /* borrowed: released with the unit */
            v.source = ck->lines[i];
            emit_line(x, out, lineno, o->hyps[0].text, o->hyps[0].score, o->hyps, o->n_hyps, &v, NULL);
        } else {
            emit_split_line(x, ck, i, first, u, out, lineno);
        }
    }
    return 0;
}

static void free_chunk_lines(chunk *ck) {
    for (int i = 0; i < ck->n; i++) free(ck->lines[i]);
    for (int i = 0; i < ck->n_units; i++) {
        unit_out_free(&ck->res[i]);
        free(ck->errmsg[i]);
        ck->errmsg[i] = NULL;
    }
    ck->n = 0;
    ck->n_units = 0;
}

static double elapsed(const stats *st) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - st->start.tv_sec) + (now.tv_nsec - st->start.tv_nsec) / 1e9;
}

/* The progress line (final: the closing statistics, with a newline). */
static void show_progress(stats *st, long tokens, off_t done, off_t total, int final) {
    double secs = elapsed(st);
    st->shown = !final;
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
        /* by default only once the run has lasted a second: a quick run prints nothing */
        if (c->progress && (c->progress_explicit || elapsed(st) >= 1.0))
            show_progress(st, atomic_load(&x->tokens_out), total ? ftello(in) : 0, total, 0);
        free_chunk_lines(&ck);
        if (rc) break;
    }
    free_chunk_lines(&ck);
    if (ferror(in)) {
        fprintf(stderr, "attn-translate: %s: read error\n", name);
        rc = -1;
    }
    free(line);
    free(ck.lines), free(ck.lens), free(ck.units), free(ck.order), free(ck.res), free(ck.status);
    free(ck.errmsg), free(ck.batch_start);
    return rc;
}

/* ---- outputs ------------------------------------------------------------------------------
 * -o writes to the path, never replaces it with something else:
 *   - "-" is standard output;
 *   - a symlink is followed (dangling ones too): the bytes go to its target;
 *   - a regular file (or a new one) is written under a temporary name beside the target
 *     and renamed onto it when complete; an existing file keeps its mode and, where
 *     allowed, its owner; a new one gets 0666 minus the umask;
 *   - anything else (a device, a FIFO, a socket) is opened and written in place. */

typedef struct output {
    const char *name;       /* as given, or DIR/BASENAME; for messages */
    const char *input;      /* the input it answers (NULL: standard input) */
    int to_stdout;          /* no -o, or -o - */
    char target[PATH_MAX];  /* name with symlinks followed */
    int exists, direct;     /* direct: not a regular file, written in place */
    struct stat st;         /* the target's, when it exists */
    int parent_ok;          /* the target's directory exists: pst is valid */
    struct stat pst;
} output;

static char tmp_path[PATH_MAX + 32];
static mode_t new_file_mode = 0644;

static void remove_tmp(void) {
    if (tmp_path[0]) unlink(tmp_path);
}

/* The directory part of path ("." when there is none) into buf. */
static void dir_of(const char *path, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(buf, cap, ".");
    else if (slash == path) snprintf(buf, cap, "/");
    else snprintf(buf, cap, "%.*s", (int)(slash - path), path);
}

/* Follows symlinks at the end of path, dangling ones too, into out. Returns 0, or -1
 * with errno (ELOOP, ENAMETOOLONG...). */
static int follow_links(const char *path, char *out, size_t cap) {
    char cur[PATH_MAX], link[PATH_MAX], dir[PATH_MAX];
    if (snprintf(cur, sizeof cur, "%s", path) >= (int)sizeof cur) return errno = ENAMETOOLONG, -1;
    for (int hops = 0; hops < 40; hops++) {
        struct stat ls;
        if (lstat(cur, &ls) != 0 || !S_ISLNK(ls.st_mode)) {
            if (snprintf(out, cap, "%s", cur) >= (int)cap) return errno = ENAMETOOLONG, -1;
            return 0;
        }
        ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0) return -1;
        link[n] = '\0';
        dir_of(cur, dir, sizeof dir);
        int w = link[0] == '/' ? snprintf(cur, sizeof cur, "%s", link)
                               : snprintf(cur, sizeof cur, "%s/%s", dir, link);
        if (w >= (int)sizeof cur) return errno = ENAMETOOLONG, -1;
    }
    errno = ELOOP;
    return -1;
}

static void resolve_output(output *o) {
    if (o->to_stdout) return;
    o->exists = stat(o->name, &o->st) == 0;
    o->direct = o->exists && !S_ISREG(o->st.st_mode);
    char *real = o->exists && !o->direct ? realpath(o->name, NULL) : NULL;
    if (o->direct) /* opened as named: /dev/stdout and /proc/self/fd/N included */
        snprintf(o->target, sizeof o->target, "%s", o->name);
    else if (real && strlen(real) < sizeof o->target) /* an existing file, through any links */
        snprintf(o->target, sizeof o->target, "%s", real);
    else if (follow_links(o->name, o->target, sizeof o->target) != 0) /* new, or a dangling link */
        snprintf(o->target, sizeof o->target, "%s", o->name);           /* open_output reports it */
    free(real);
    char dir[PATH_MAX];
    dir_of(o->target, dir, sizeof dir);
    o->parent_ok = stat(dir, &o->pst) == 0;
}

static const char *base_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Whether outputs a and b name the same file: the same device and inode when they
 * exist, else the same directory (device and inode) and the same name in it. */
static int same_output(const output *a, const output *b) {
    if (a->to_stdout || b->to_stdout || a->direct || b->direct) return 0;
    if (a->exists || b->exists)
        return a->exists && b->exists && a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino;
    if (a->parent_ok != b->parent_ok) return 0;
    if (a->parent_ok && (a->pst.st_dev != b->pst.st_dev || a->pst.st_ino != b->pst.st_ino)) return 0;
    if (!a->parent_ok && strcmp(a->target, b->target)) return 0;
    return !strcmp(base_of(a->target), base_of(b->target));
}

/* Refuses (exit 2, before anything is written) an output that is one of the inputs,
 * or two inputs that would be written to the same file. */
static void check_outputs(const output *outs, int n, const cli *c) {
    for (int j = 0; j < n; j++) {
        const output *o = &outs[j];
        if (o->to_stdout || o->direct || !o->exists) continue;
        for (int i = 0; i < (c->n_inputs ? c->n_inputs : 1); i++) {
            const char *in = c->n_inputs ? c->inputs[i] : "-";
            struct stat st;
            int ok = strcmp(in, "-") ? stat(in, &st) == 0 : fstat(STDIN_FILENO, &st) == 0;
            if (ok && S_ISREG(st.st_mode) && st.st_dev == o->st.st_dev && st.st_ino == o->st.st_ino) {
                fprintf(stderr, "attn-translate: the output %s is the input %s (the same file); "
                                "refusing to overwrite an input, nothing was written\n",
                        o->name, strcmp(in, "-") ? in : "<stdin>");
                exit(EXIT_USAGE);
            }
        }
    }
    for (int j = 0; j < n; j++)
        for (int k = 0; k < j; k++)
            if (same_output(&outs[k], &outs[j])) {
                fprintf(stderr, "attn-translate: the inputs %s and %s would both be written to %s; "
                                "refusing, nothing was written\n",
                        outs[k].input, outs[j].input, outs[j].name);
                exit(EXIT_USAGE);
            }
}

/* Works out where each input's translation goes (see "outputs" above): -o DIR/ (a
 * trailing slash, or an existing directory) writes DIR/BASENAME for any number of
 * inputs; -o FILE takes one input; no -o, or -o -, is standard output. */
static output *plan_outputs(const cli *c, int *n_out) {
    int n = c->n_inputs ? c->n_inputs : 1;
    output *outs = calloc((size_t)n, sizeof *outs);
    if (!outs) exit(EXIT_FATAL);
    const char *o = c->output;
    int to_stdout = !o || !strcmp(o, "-");
    struct stat st;
    size_t len = o ? strlen(o) : 0;
    int to_dir = !to_stdout && ((len && o[len - 1] == '/') || (stat(o, &st) == 0 && S_ISDIR(st.st_mode)));
    if (!to_stdout && !to_dir && c->n_inputs > 1) die_usage("several inputs need -o DIR/ (a directory)", o);
    for (int i = 0; i < n; i++) {
        output *p = &outs[i];
        p->input = c->n_inputs && strcmp(c->inputs[i], "-") ? c->inputs[i] : "<stdin>";
        p->to_stdout = to_stdout;
        if (to_stdout) {
            p->name = "<stdout>";
        } else if (to_dir) {
            if (!c->n_inputs || !strcmp(c->inputs[i], "-"))
                die_usage("-o DIR/ names each output after its input; standard input has no name", o);
            char *path = malloc(len + strlen(c->inputs[i]) + 2);
            if (!path) exit(EXIT_FATAL);
            sprintf(path, "%s%s%s", o, o[len - 1] == '/' ? "" : "/", base_of(c->inputs[i]));
            p->name = path;
        } else {
            p->name = o;
        }
        resolve_output(p);
    }
    check_outputs(outs, n, c);
    *n_out = n;
    return outs;
}

/* Creates the -o DIR/ directory when it does not exist yet (after the checks and the
 * model load, so a refused run creates nothing). Returns 0, or -1 after a message. */
static int prepare_output_dir(const cli *c, output *outs, int n) {
    if (!c->output || !n || outs[0].to_stdout || outs[0].name == c->output) return 0;
    if (mkdir(c->output, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "attn-translate: %s: %s\n", c->output, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) resolve_output(&outs[i]);
    return 0;
}

static void free_outputs(output *outs, int n, const cli *c) {
    for (int i = 0; outs && i < n; i++)
        if (outs[i].name != c->output && !outs[i].to_stdout) free((void *)outs[i].name);
    free(outs);
}

static FILE *open_output(output *o) {
    if (o->to_stdout) return stdout;
    if (o->direct) { /* a device, FIFO or socket: written in place */
        int fd = open(o->target, O_WRONLY | O_NOCTTY | O_CLOEXEC);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!f) {
            fprintf(stderr, "attn-translate: %s: %s\n", o->name, strerror(errno));
            if (fd >= 0) close(fd);
        }
        return f;
    }
    if (snprintf(tmp_path, sizeof tmp_path, "%s.tmp.XXXXXX", o->target) >= (int)sizeof tmp_path) {
        fprintf(stderr, "attn-translate: %s: %s\n", o->name, strerror(ENAMETOOLONG));
        tmp_path[0] = '\0';
        return NULL;
    }
    int fd = mkstemp(tmp_path);
    if (fd < 0) {
        fprintf(stderr, "attn-translate: %s: %s\n", o->name, strerror(errno));
        tmp_path[0] = '\0';
        return NULL;
    }
    if (o->exists) { /* keep the file's mode, and its owner where allowed */
        fchmod(fd, o->st.st_mode & 07777);
        if (fchown(fd, o->st.st_uid, o->st.st_gid) != 0 && fchown(fd, (uid_t)-1, o->st.st_gid) != 0) {
            /* not allowed: the file becomes ours, with its mode */
        }
        fchmod(fd, o->st.st_mode & 07777); /* chown may clear set-id bits */
    } else {
        fchmod(fd, new_file_mode);
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        fprintf(stderr, "attn-translate: %s: %s\n", o->name, strerror(errno));
        close(fd);
        remove_tmp();
        tmp_path[0] = '\0';
    }
    return f;
}

/* Closes the output; a complete file is renamed onto its target, an incomplete one
 * (keep = 0, or a write error) is removed. Returns 0, or -1 after a message. */
static int close_output(FILE *f, const output *o, int keep) {
    if (o->to_stdout) return 0; /* flushed and checked at the end */
    int bad = fflush(f) != 0 || ferror(f);
    bad |= fclose(f) != 0;
    if (o->direct) {
        if (bad) fprintf(stderr, "attn-translate: %s: write error\n", o->name);
        return bad ? -1 : 0;
    }
    if (bad || !keep) {
        if (bad) fprintf(stderr, "attn-translate: %s: write error\n", o->name);
        remove_tmp();
        tmp_path[0] = '\0';
        return -1;
    }
    if (rename(tmp_path, o->target) != 0) {
        fprintf(stderr, "attn-translate: %s: %s\n", o->name, strerror(errno));
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
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
    parse_args(argc, argv, &c);
    int interactive_in = c.n_inputs == 0 && isatty(STDIN_FILENO);
    if (interactive_in) c.unbuffered = 1;
    if (c.progress < 0) c.progress = !c.quiet && !c.unbuffered && isatty(STDERR_FILENO);
    {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        int cores = n < 1 ? 1 : n > 8 ? 8 : (int)n;
        c.load_threads = c.threads ? c.threads : cores;
        if (c.threads == 0) c.threads = cores;
    }

    mode_t mask = umask(0);
    umask(mask);
    new_file_mode = 0666 & ~mask;
    int n_outs = 0;
    output *outs = plan_outputs(&c, &n_outs); /* refuses clobbering an input: exit 2 */

    at_error err = {0};
    at_model *model = NULL;
    if (load_model(&c, &model) != AT_OK) {
        free_outputs(outs, n_outs, &c);
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
    /* scores are printed only in n-best lists and attention dumps; greedy without them
     * takes each step's argmax and skips the log-softmax over the vocabulary */
    x.opts.no_scores = c.attn == ATTN_NONE && c.n_best == 1;
    x.opts.replace_unknowns = !c.keep_unknowns;
    if (c.have_lp) x.opts.length_penalty = c.length_penalty;
    x.opts.max_length_factor = c.factor;
    x.opts.max_length_extra = c.extra;
    if (c.max_input > 0 && c.max_input < x.opts.max_input_tokens) x.opts.max_input_tokens = c.max_input;
    /* checked whether or not attention is shown */
    int layer = c.attn_layer >= 0 ? c.attn_layer : cfg->decoder_layers - 1;
    if (layer >= cfg->decoder_layers) {
        fprintf(stderr, "attn-translate: --attn-layer %d: the model has %d decoder layers (0-%d)\n",
                c.attn_layer, cfg->decoder_layers, cfg->decoder_layers - 1);
        status = EXIT_USAGE;
        goto done;
    }
    if (c.attn_head >= cfg->decoder_heads) {
        fprintf(stderr, "attn-translate: --attn-head %d: the model has %d heads (0-%d)\n", c.attn_head,
                cfg->decoder_heads, cfg->decoder_heads - 1);
        status = EXIT_USAGE;
        goto done;
    }
    if (c.attn != ATTN_NONE || c.align) {
        x.opts.attention_layer = layer;
        if (c.batch_size > 8) c.batch_size = 8; /* attention capture memory grows with the batch */
    }
    if (c.attn == ATTN_TEXT) {
        struct winsize ws;
        const char *cols = getenv("COLUMNS");
        x.text_width = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col
                       : cols && atoi(cols) > 0                                 ? atoi(cols)
                                                                                : 100;
        x.text_blocks = isatty(STDOUT_FILENO);
    }
    if (prepare_output_dir(&c, outs, n_outs) != 0) {
        status = EXIT_FATAL;
        goto done;
    }
    if (c.attn == ATTN_SVG && c.attn_dir && mkdir(c.attn_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "attn-translate: %s: %s\n", c.attn_dir, strerror(errno));
        status = EXIT_FATAL;
        goto done;
    }
    x.sessions = calloc((size_t)c.threads, sizeof *x.sessions);
    for (int i = 0; x.sessions && i < c.threads; i++)
        if (at_session_new_opts(model, &(at_session_options){i == 0 ? c.threads : 1},
                                &x.sessions[i], &err) != AT_OK) {
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
    for (int i = 0; i < n_outs && !status && !interrupted; i++) {
        const char *iname = c.n_inputs ? c.inputs[i] : "-";
        FILE *in = strcmp(iname, "-") ? fopen(iname, "r") : stdin;
        if (!in) {
            fprintf(stderr, "attn-translate: %s: %s\n", iname, strerror(errno));
            status = EXIT_FATAL;
            break;
        }
        FILE *out = open_output(&outs[i]);
        if (!out) {
            if (in != stdin) fclose(in);
            status = EXIT_FATAL;
            break;
        }
        int rc = translate_stream(&x, in, strcmp(iname, "-") ? iname : "<stdin>", out, &stt, c.threads);
        if (in != stdin) fclose(in);
        rc |= close_output(out, &outs[i], !rc && !interrupted);
        if (rc) status = EXIT_FATAL;
    }
    if (c.progress_explicit || c.verbose) show_progress(&stt, atomic_load(&x.tokens_out), 0, 0, 1);
    else if (stt.shown) fputs("\r\033[K", stderr); /* the statistics only when asked for */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "attn-translate: error writing standard output: %s\n", strerror(errno));
        status = EXIT_FATAL;
    }
done:
    for (int i = 0; x.sessions && i < c.threads; i++) at_session_free(x.sessions[i]);
    free(x.sessions);
    free_outputs(outs, n_outs, &c);
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

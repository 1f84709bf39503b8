/* attn-translate — English→French translation as a Unix filter.
 *
 *   echo "The cat sleeps." | attn-translate
 *
 * Reads UTF-8 lines from stdin, writes one translation per line to stdout:
 * output line i always answers input line i. */
#define _GNU_SOURCE
#include "attn_translate.h"

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef AT_DATADIR
#define AT_DATADIR "/usr/local/share/attn-translate"
#endif
#define DEFAULT_MODEL "en-fr"

enum { EXIT_USAGE = 2, EXIT_LINES_FAILED = 3 };
enum on_error { ON_ERROR_COPY, ON_ERROR_SKIP, ON_ERROR_FAIL };

extern void openblas_set_num_threads(int);

static const char *usage_text =
    "Usage: attn-translate [OPTIONS] < input.en > output.fr\n"
    "Translate English text to French, one line at a time.\n"
    "\n"
    "  -m, --model DIR          model directory (default: the shipped en-fr model;\n"
    "                           also $ATTN_TRANSLATE_MODEL)\n"
    "  -b, --beam N             beam size; 1 = greedy (default: the model's, 4)\n"
    "  -n, --n-best K           print K hypotheses per line as\n"
    "                           'LINE ||| TRANSLATION ||| SCORE' (K <= beam)\n"
    "      --length-penalty A   score = log-prob / length^A (default: the model's, 1.0)\n"
    "      --max-length F[+C]   output at most F x source tokens + C (default 2+10)\n"
    "      --max-input N        refuse lines longer than N tokens (default: model max)\n"
    "      --on-error MODE      a line that cannot be translated: copy (default: print\n"
    "                           the source line), skip (print an empty line), fail (stop)\n"
    "  -t, --threads N          BLAS threads (default 1)\n"
    "  -q, --quiet              no warnings on stderr\n"
    "  -h, --help               this help\n"
    "  -V, --version            version\n"
    "\n"
    "Exit status: 0 all lines translated, 1 fatal error (model, I/O), 2 usage error,\n"
    "3 some lines could not be translated (see --on-error).\n";

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

static int parse_int(const char *s, int lo, int hi, int *out) {
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

static void die_usage(const char *msg, const char *arg) {
    fprintf(stderr, "attn-translate: %s%s%s\nTry 'attn-translate --help'.\n", msg,
            arg ? ": " : "", arg ? arg : "");
    exit(EXIT_USAGE);
}

int main(int argc, char **argv) {
    const char *model_dir = NULL;
    int beam = -1, n_best = 1, threads = 1, quiet = 0, max_input = -1;
    float length_penalty = 0.0f, factor = 2.0f;
    int have_lp = 0, extra = 10;
    enum on_error on_error = ON_ERROR_COPY;
    enum { OPT_LP = 256, OPT_MAXLEN, OPT_MAXIN, OPT_ONERR };
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},      {"beam", required_argument, 0, 'b'},
        {"n-best", required_argument, 0, 'n'},     {"threads", required_argument, 0, 't'},
        {"length-penalty", required_argument, 0, OPT_LP},
        {"max-length", required_argument, 0, OPT_MAXLEN},
        {"max-input", required_argument, 0, OPT_MAXIN},
        {"on-error", required_argument, 0, OPT_ONERR},
        {"quiet", no_argument, 0, 'q'},            {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},          {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:b:n:t:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'b': if (!parse_int(optarg, 1, 64, &beam)) die_usage("--beam takes 1..64", optarg); break;
        case 'n': if (!parse_int(optarg, 1, 64, &n_best)) die_usage("--n-best takes 1..64", optarg); break;
        case 't': if (!parse_int(optarg, 1, 256, &threads)) die_usage("--threads takes 1..256", optarg); break;
        case OPT_LP: {
            char *end;
            length_penalty = strtof(optarg, &end);
            if (end == optarg || *end || !(length_penalty >= -100 && length_penalty <= 100))
                die_usage("--length-penalty takes a number", optarg);
            have_lp = 1;
            break;
        }
        case OPT_MAXLEN:
            if (!parse_max_length(optarg, &factor, &extra))
                die_usage("--max-length takes FACTOR or FACTOR+CONSTANT, e.g. 2+10", optarg);
            break;
        case OPT_MAXIN: if (!parse_int(optarg, 1, 1 << 20, &max_input)) die_usage("--max-input takes a positive integer", optarg); break;
        case OPT_ONERR:
            if (!strcmp(optarg, "copy")) on_error = ON_ERROR_COPY;
            else if (!strcmp(optarg, "skip")) on_error = ON_ERROR_SKIP;
            else if (!strcmp(optarg, "fail")) on_error = ON_ERROR_FAIL;
            else die_usage("--on-error takes copy, skip or fail", optarg);
            break;
        case 'q': quiet = 1; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case 'V': printf("attn-translate %s\n", AT_VERSION_STRING); return 0;
        case ':': die_usage("option needs a value", argv[optind - 1]); break;
        default: die_usage("unknown option", argv[optind - 1]);
        }
    }
    if (optind < argc) die_usage("unexpected argument", argv[optind]);

    openblas_set_num_threads(threads);
    char buf[PATH_MAX + 64];
    int searched = !model_dir;
    if (!model_dir) model_dir = default_model(buf, sizeof buf);
    at_error err = {0};
    at_model *model = NULL;
    at_status st = at_model_load(model_dir, &model, &err);
    if (st != AT_OK) {
        fprintf(stderr, "attn-translate: cannot load model: %s\n", err.message);
        if (searched && st == AT_ERR_IO)
            fprintf(stderr, "attn-translate: no default model was found (looked for models/%s beside "
                            "the binary, then %s/%s); give one with -m DIR or $ATTN_TRANSLATE_MODEL\n",
                    DEFAULT_MODEL, AT_DATADIR, DEFAULT_MODEL);
        return 1;
    }
    at_options opts = at_default_options(model);
    if (beam > 0) opts.beam_size = beam;
    if (n_best > opts.beam_size) {
        fprintf(stderr, "attn-translate: --n-best %d exceeds the beam size %d\n", n_best, opts.beam_size);
        at_model_free(model);
        return EXIT_USAGE;
    }
    opts.n_best = n_best;
    if (have_lp) opts.length_penalty = length_penalty;
    opts.max_length_factor = factor;
    opts.max_length_extra = extra;
    if (max_input > 0) opts.max_input_tokens = max_input < opts.max_input_tokens ? max_input : opts.max_input_tokens;

    at_session *session = NULL;
    if (at_session_new(model, &session, &err) != AT_OK) {
        fprintf(stderr, "attn-translate: %s\n", err.message);
        at_model_free(model);
        return 1;
    }
    int interactive = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, failed = 0;
    int status = 0;
    while ((len = getline(&line, &cap, stdin)) != -1) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
        at_result res;
        st = at_translate(session, line, (size_t)len, &opts, &res, &err);
        if (st != AT_OK) {
            failed++;
            if (!quiet || on_error == ON_ERROR_FAIL)
                fprintf(stderr, "attn-translate: line %ld: %s\n", lineno, err.message);
            if (on_error == ON_ERROR_FAIL) {
                status = 1;
                break;
            }
            if (n_best > 1)
                printf("%ld ||| %s ||| 0\n", lineno - 1, on_error == ON_ERROR_COPY ? line : "");
            else
                printf("%s\n", on_error == ON_ERROR_COPY ? line : "");
        } else if (n_best > 1) {
            for (int i = 0; i < res.n_hyps; i++)
                printf("%ld ||| %s ||| %.6f\n", lineno - 1, res.hyps[i].text, res.hyps[i].score);
        } else {
            printf("%s\n", res.hyps[0].text);
        }
        if (interactive) fflush(stdout);
    }
    if (ferror(stdin)) {
        fprintf(stderr, "attn-translate: error reading standard input\n");
        status = 1;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "attn-translate: error writing standard output: %s\n", strerror(errno));
        status = 1;
    }
    free(line);
    at_session_free(session);
    at_model_free(model);
    if (!status && failed) status = EXIT_LINES_FAILED;
    return status;
}

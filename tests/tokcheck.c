/* tokcheck.c — prints the SentencePiece segmentation of each input line, space-joined
 * exactly as `spm_encode --output_format=piece` does, so the two can be diffed.
 *
 *   tokcheck [--ids] [--normalize] [--builtin-norm] [--bench] VOCAB_JSON source|target < lines
 *
 *   --ids           print model ids instead of pieces (source/target SPM as chosen)
 *   --normalize     print the normalized text (what the segmenter sees)
 *   --builtin-norm  ignore the vocab's precompiled charsmaps (use the utf8proc rules)
 *   --bench         print nothing; report lines/s on stderr
 *
 * A line that is not valid UTF-8 prints "#ERROR <message>" (spm_encode would have
 * replaced the bad bytes instead). Exit status 0 unless the vocab fails to load.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "tokenizer.h"

typedef struct out_ctx {
    FILE *f;
    int n;
    int ids;
} out_ctx;

static void print_piece(void *ctx, const char *piece, size_t len, int32_t id) {
    out_ctx *c = ctx;
    if (!c->f) return;
    if (c->n++) fputc(' ', c->f);
    if (c->ids) fprintf(c->f, "%ld", (long)id);
    else fwrite(piece, 1, len, c->f);
}

static at_vocab *load(const char *path, int builtin, at_error *err) {
    char *text = NULL;
    size_t len = 0;
    if (at_read_file(path, (size_t)64 << 20, &text, &len, err)) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) {
        at_fail(err, AT_ERR_FORMAT, "%s: not valid JSON", path);
        return NULL;
    }
    if (builtin) {
        const char *side[2] = {"source", "target"};
        for (int i = 0; i < 2; i++) {
            cJSON *s = cJSON_GetObjectItemCaseSensitive(root, side[i]);
            cJSON *n = s ? cJSON_GetObjectItemCaseSensitive(s, "normalizer") : NULL;
            if (n) cJSON_DeleteItemFromObjectCaseSensitive(n, "precompiled_charsmap");
        }
    }
    at_vocab *v = NULL;
    at_status st = at_vocab_from_json(root, -1, &v, err);
    cJSON_Delete(root);
    return st == AT_OK ? v : NULL;
}

int main(int argc, char **argv) {
    int ids = 0, norm = 0, builtin = 0, bench = 0, a = 1;
    for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
        if (!strcmp(argv[a], "--ids")) ids = 1;
        else if (!strcmp(argv[a], "--normalize")) norm = 1;
        else if (!strcmp(argv[a], "--builtin-norm")) builtin = 1;
        else if (!strcmp(argv[a], "--bench")) bench = 1;
        else {
            fprintf(stderr, "tokcheck: unknown option %s\n", argv[a]);
            return 2;
        }
    }
    if (argc - a != 2 || (strcmp(argv[a + 1], "source") && strcmp(argv[a + 1], "target"))) {
        fprintf(stderr, "usage: tokcheck [--ids] [--normalize] [--builtin-norm] [--bench] "
                        "VOCAB_JSON source|target < lines\n");
        return 2;
    }
    int which = strcmp(argv[a + 1], "target") == 0;
    at_error err = {AT_OK, ""};
    at_vocab *v = load(argv[a], builtin, &err);
    if (!v) {
        fprintf(stderr, "tokcheck: %s\n", err.message);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lines = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n') len--;
        lines++;
        at_status st;
        if (norm) {
            char *o = NULL;
            size_t ol = 0;
            st = at_vocab_normalize(v, which, !builtin, line, len, &o, &ol, &err);
            if (st == AT_OK && !bench) fwrite(o, 1, ol, stdout);
            free(o);
        } else {
            out_ctx c = {bench ? NULL : stdout, 0, ids};
            st = at_vocab_encode_pieces(v, which, line, len, print_piece, &c, &err);
        }
        if (bench) continue;
        if (st != AT_OK) printf("#ERROR %s", err.message);
        putchar('\n');
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (bench) {
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        fprintf(stderr, "tokcheck: %ld lines in %.3f s = %.0f lines/s\n", lines, s,
                s > 0 ? (double)lines / s : 0.0);
    }
    free(line);
    at_vocab_free(v);
    return 0;
}

/* attn_svg_demo.c — translates one line with attention capture and writes its SVG
 * heatmap (cmd/attnfmt.c), for tests/test_attn_render.sh; independent of the CLI.
 *
 *   attn_svg_demo MODEL_DIR OUT.svg TEXT [BEAM] [HEAD]
 *
 * HEAD: mean (default), all, or a head number. The last decoder layer is shown. The
 * text grid and the JSON line are printed on stdout. Exit status 0 on success. */
#include "attn_translate.h"
#include "../cmd/attnfmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: attn_svg_demo MODEL_DIR OUT.svg TEXT [BEAM] [mean|all|HEAD]\n");
        return 2;
    }
    at_error err = {0};
    at_model *m = NULL;
    at_session *s = NULL;
    if (at_model_load(argv[1], &m, &err) || at_session_new(m, &s, &err)) {
        fprintf(stderr, "attn_svg_demo: %s\n", err.message);
        at_model_free(m);
        return 1;
    }
    at_options o = at_default_options(m);
    o.beam_size = argc > 4 ? atoi(argv[4]) : 1;
    o.n_best = 1;
    o.attention_layer = at_model_config(m)->decoder_layers - 1;
    int head = ATTN_HEAD_MEAN;
    if (argc > 5) head = !strcmp(argv[5], "all") ? ATTN_HEAD_ALL : !strcmp(argv[5], "mean") ? ATTN_HEAD_MEAN : atoi(argv[5]);
    at_result r;
    int rc = 1;
    attn_view v;
    if (at_translate(s, argv[3], strlen(argv[3]), &o, &r, &err)) {
        fprintf(stderr, "attn_svg_demo: %s\n", err.message);
    } else if (attn_view_init(&v, m, &r, 0, o.attention_layer, head, 1, argv[3])) {
        perror("attn_svg_demo: view");
    } else {
        if (attn_write_svg(argv[2], &v)) perror(argv[2]);
        else rc = 0;
        attn_write_text(stdout, &v, 100, 0);
        attn_write_json(stdout, &v);
        attn_view_release(&v);
    }
    at_session_free(s);
    at_model_free(m);
    return rc;
}

/* json.h — a small JSON reader for vocab.json: the whole document parsed into two
 * allocations (an array of nodes, a block of decoded strings), so a 59k-piece vocabulary
 * costs no per-value malloc and no per-value free. Private to lib/.
 *
 * It accepts exactly what cJSON_ParseWithLength (Debian 12's cJSON 1.7.15) accepts, with
 * the same values (tests/test_json.c and the vocab fuzz target compare them): a leading
 * UTF-8 BOM is skipped, bytes <= 0x20 count as whitespace, a number is what strtod takes
 * of the run of [0-9+-.eE] (exact decimals of up to 19 digits are converted without
 * strtod, to the same double), strings decode \b \f \n \r \t \" \\ \/ and \uXXXX with
 * surrogate pairs (a lone surrogate is an error; a non-hex \u is U+0000, as in cJSON),
 * nesting is limited to 1000 levels, and anything after the first value is ignored. Object members keep their order; duplicate names are kept and js_get returns
 * the first, as cJSON_GetObjectItemCaseSensitive does. */
#ifndef AT_JSON_H
#define AT_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { JS_NULL = 1, JS_FALSE, JS_TRUE, JS_NUMBER, JS_STRING, JS_ARRAY, JS_OBJECT } js_type;

typedef struct js_node { /* 24 bytes: a 59k-piece vocab.json has ~300k of them */
    uint32_t type;    /* js_type */
    uint32_t next;    /* index of the next sibling, 0 = none */
    uint32_t key;     /* member of an object: offset of its decoded name in strings */
    uint32_t str;     /* string: offset of its decoded, NUL-terminated bytes */
    union {
        struct {
            uint32_t child; /* array / object: index of the first child, 0 = none */
            uint32_t count; /* array / object: number of children; string: decoded bytes */
        };
        double num;   /* number (it has neither) */
    };
} js_node;

typedef struct js_doc {
    js_node *nodes;   /* nodes[0] is unused; the root is nodes[1] */
    size_t n_nodes, cap;
    char *strings;    /* every string and member name, each NUL-terminated */
} js_doc;

/* Parses text[0, len). Returns 0, -1 for invalid JSON (*err_at = the byte offset where
 * parsing stopped), -2 when out of memory. On success js_free releases the document. */
int js_parse(js_doc *doc, const char *text, size_t len, size_t *err_at);
void js_free(js_doc *doc);

static inline const js_node *js_root(const js_doc *d) { return &d->nodes[1]; }
/* The first child of an array or object; NULL for anything else, or when it is empty. */
static inline const js_node *js_child(const js_doc *d, const js_node *n) {
    return n && (n->type == JS_ARRAY || n->type == JS_OBJECT) && n->child ? &d->nodes[n->child]
                                                                         : NULL;
}
static inline const js_node *js_next(const js_doc *d, const js_node *n) {
    return n->next ? &d->nodes[n->next] : NULL;
}
static inline int js_is(const js_node *n, js_type t) { return n && n->type == (uint32_t)t; }
/* A string's bytes as a C string (cut at an embedded NUL, as cJSON's valuestring). */
static inline const char *js_str(const js_doc *d, const js_node *n) { return d->strings + n->str; }

/* The first member of object `obj` named `key` (exact bytes), or NULL (also when obj is
 * not an object). */
const js_node *js_get(const js_doc *d, const js_node *obj, const char *key);

#endif

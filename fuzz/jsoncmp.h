/* jsoncmp.h — lib/json.c's document against cJSON's tree of the same text: the same
 * shape, types, member names, strings and numbers (bit for bit). For the fuzz target
 * fuzz_vocab and tests/test_json.c. */
#ifndef AT_JSONCMP_H
#define AT_JSONCMP_H

#include "json.h"

#include <cjson/cJSON.h>
#include <string.h>

static int jsoncmp_same(const js_doc *d, const js_node *n, const cJSON *c, int member) {
    if (!n || !c) return !n && !c;
    static const int types[] = {0, cJSON_NULL, cJSON_False, cJSON_True, cJSON_Number,
                                cJSON_String, cJSON_Array, cJSON_Object};
    if (n->type > JS_OBJECT || (c->type & 0xFF) != types[n->type]) return 0;
    if (member && (!c->string || strcmp(c->string, d->strings + n->key))) return 0;
    if (n->type == JS_NUMBER && memcmp(&n->num, &c->valuedouble, sizeof n->num)) return 0;
    if (n->type == JS_STRING && (!c->valuestring || strcmp(c->valuestring, js_str(d, n))))
        return 0;
    if (n->type == JS_ARRAY || n->type == JS_OBJECT) {
        const js_node *x = js_child(d, n);
        const cJSON *y = c->child;
        uint32_t k = 0;
        for (; x && y; x = js_next(d, x), y = y->next, k++)
            if (!jsoncmp_same(d, x, y, n->type == JS_OBJECT)) return 0;
        if (x || y || k != n->count) return 0;
    }
    return 1;
}

/* 1 when json.c and cJSON agree on text[0, len): both refuse it, or both parse it to the
 * same document. */
static int jsoncmp_text(const char *text, size_t len) {
    js_doc d;
    size_t at;
    int rc = js_parse(&d, text, len, &at);
    cJSON *c = cJSON_ParseWithLength(text, len);
    int same = rc == -2 ? 1 : (rc == 0) == (c != NULL) && (rc || jsoncmp_same(&d, js_root(&d), c, 0));
    if (rc == 0) js_free(&d);
    cJSON_Delete(c);
    return same;
}

#endif

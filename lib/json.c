/* json.c — see json.h. A recursive-descent reader modelled on cJSON 1.7.15's
 * parse_value / parse_string / parse_number, writing into one node array and one string
 * block instead of a malloc'ed tree. */
#include "json.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>

#define JS_NESTING_LIMIT 1000

typedef struct reader {
    const unsigned char *s;
    size_t len, at;
    js_doc *d;
    size_t str_at; /* next free byte of d->strings */
    int depth;
    int oom;
    char dp;       /* the locale's decimal point, for strtod */
} reader;

static void skip_ws(reader *r) {
    while (r->at < r->len && r->s[r->at] <= 32) r->at++;
}

/* A new node (0 when out of memory or past the 2^32 limit). */
static uint32_t new_node(reader *r, js_type t) {
    js_doc *d = r->d;
    if (d->n_nodes == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 1024;
        if (cap > UINT32_MAX) {
            r->oom = 1;
            return 0;
        }
        js_node *nn = realloc(d->nodes, cap * sizeof *nn);
        if (!nn) {
            r->oom = 1;
            return 0;
        }
        d->nodes = nn;
        d->cap = cap;
    }
    uint32_t i = (uint32_t)d->n_nodes++;
    memset(&d->nodes[i], 0, sizeof d->nodes[i]);
    d->nodes[i].type = (uint32_t)t;
    return i;
}

/* cJSON's parse_hex4: four hex digits, and 0 when one is not (so "\u12G4" is U+0000). */
static unsigned hex4(const unsigned char *p) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], x;
        if (c >= '0' && c <= '9') x = c - '0';
        else if (c >= 'a' && c <= 'f') x = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') x = c - 'A' + 10;
        else return 0;
        v = v << 4 | x;
    }
    return v;
}

/* Parses the string at r->at (which is '"') into d->strings; returns its offset there,
 * or -1. Its decoded length goes to *n. */
static long parse_string(reader *r, uint32_t *n) {
    const unsigned char *s = r->s;
    size_t i = r->at + 1, end = i;
    if (r->at >= r->len || s[r->at] != '"') return -1;
    while (end < r->len && s[end] != '"') { /* the closing quote, escapes skipped */
        if (s[end] == '\\') {
            if (end + 1 >= r->len) return -1;
            end++;
        }
        end++;
    }
    if (end >= r->len) return -1;
    /* every string's decoded bytes plus its NUL fit in the source's bytes plus its quotes,
     * so the block of len + 1 bytes never overflows */
    char *out = r->d->strings + r->str_at, *o = out;
    while (i < end) {
        if (s[i] != '\\') {
            *o++ = (char)s[i++];
            continue;
        }
        if (end - i < 2) return -1;
        unsigned char c = s[i + 1];
        i += 2;
        switch (c) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case '"': case '\\': case '/': *o++ = (char)c; break;
        case 'u': {
            unsigned cp, lo;
            if (end - i < 4) return -1;
            cp = hex4(s + i);
            i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return -1; /* a lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {          /* a high one: its pair follows */
                if (end - i < 6 || s[i] != '\\' || s[i + 1] != 'u' ||
                    (lo = hex4(s + i + 2)) < 0xDC00 || lo > 0xDFFF)
                    return -1;
                i += 6;
                cp = 0x10000 + ((cp & 0x3FF) << 10 | (lo & 0x3FF));
            }
            if (cp < 0x80) {
                *o++ = (char)cp;
            } else if (cp < 0x800) {
                *o++ = (char)(0xC0 | cp >> 6);
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *o++ = (char)(0xE0 | cp >> 12);
                *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *o++ = (char)(0xF0 | cp >> 18);
                *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
                *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: return -1;
        }
    }
    *o++ = '\0';
    long at = (long)r->str_at;
    *n = (uint32_t)(o - out - 1);
    r->str_at += (size_t)(o - out);
    r->at = end + 1;
    return at;
}

/* The run b[0, n) when it is exactly -?D+(.D+)?([eE][+-]?D+)? with at most 19
 * significant digits: its value if that is exact by one IEEE operation (mantissa below
 * 2^53, power of ten at most 10^22: Clinger's fast path, correctly rounded like strtod).
 * Returns 0 when the run needs strtod. */
static int fast_number(const char *b, size_t n, double *out) {
    static const double p10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    int neg = 0, digits = 0, frac = 0, e = 0, eneg = 0, edigits = 0;
    uint64_t m = 0;
    if (i < n && b[i] == '-') neg = 1, i++;
    for (; i < n && b[i] >= '0' && b[i] <= '9'; i++, digits++) m = m * 10 + (uint64_t)(b[i] - '0');
    if (!digits || digits > 19) return 0;
    if (i < n && b[i] == '.') {
        i++;
        for (; i < n && b[i] >= '0' && b[i] <= '9'; i++, frac++, digits++) {
            if (digits >= 19) return 0;
            m = m * 10 + (uint64_t)(b[i] - '0');
        }
        if (!frac) return 0;
    }
    if (i < n && (b[i] == 'e' || b[i] == 'E')) {
        i++;
        if (i < n && (b[i] == '+' || b[i] == '-')) eneg = b[i] == '-', i++;
        for (; i < n && b[i] >= '0' && b[i] <= '9'; i++, edigits++)
            if ((e = e * 10 + (b[i] - '0')) > 400) return 0;
        if (!edigits) return 0;
    }
    if (i != n || m > (UINT64_C(1) << 53)) return 0;
    int p = (eneg ? -e : e) - frac;
    double v = (double)m;
    if (p < -22 || p > 22) return 0;
    v = p < 0 ? v / p10[-p] : v * p10[p];
    *out = neg ? -v : v;
    return 1;
}

/* cJSON's parse_number (Debian's 1.7.15): the whole run of [0-9+-.eE], '.' as the
 * locale's decimal point, strtod; the bytes strtod did not take are left for the caller. */
static int parse_number(reader *r, double *out) {
    const char *run = (const char *)r->s + r->at;
    size_t n = 0;
    for (; r->at + n < r->len; n++) {
        unsigned char c = r->s[r->at + n];
        if (!((c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'e' || c == 'E' || c == '.'))
            break;
    }
    if (fast_number(run, n, out)) { /* strtod would take the whole run, with this value */
        r->at += n;
        return 1;
    }
    char small[64], *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) {
        r->oom = 1;
        return 0;
    }
    for (size_t k = 0; k < n; k++) buf[k] = run[k] == '.' ? r->dp : run[k];
    buf[n] = '\0';
    char *after;
    double v = strtod(buf, &after);
    size_t used = (size_t)(after - buf);
    if (buf != small) free(buf);
    if (!used) return 0;
    *out = v;
    r->at += used;
    return 1;
}

static uint32_t parse_value(reader *r);

/* '[' or '{' at r->at: the children, linked in order. */
static uint32_t parse_container(reader *r, int object) {
    if (r->depth >= JS_NESTING_LIMIT) return 0;
    uint32_t self = new_node(r, object ? JS_OBJECT : JS_ARRAY);
    if (!self) return 0;
    r->depth++;
    r->at++;
    skip_ws(r);
    char close = object ? '}' : ']';
    if (r->at < r->len && r->s[r->at] == close) {
        r->at++;
        r->depth--;
        return self;
    }
    uint32_t last = 0, count = 0;
    for (;;) {
        skip_ws(r);
        long key = 0;
        uint32_t klen;
        if (object) {
            if ((key = parse_string(r, &klen)) < 0) return 0;
            skip_ws(r);
            if (r->at >= r->len || r->s[r->at] != ':') return 0;
            r->at++;
            skip_ws(r);
        }
        uint32_t v = parse_value(r);
        if (!v) return 0;
        if (object) r->d->nodes[v].key = (uint32_t)key;
        if (last) r->d->nodes[last].next = v;
        else r->d->nodes[self].child = v;
        last = v;
        count++;
        skip_ws(r);
        if (r->at < r->len && r->s[r->at] == ',') {
            r->at++;
            continue;
        }
        if (r->at < r->len && r->s[r->at] == close) break;
        return 0;
    }
    r->at++;
    r->d->nodes[self].count = count;
    r->depth--;
    return self;
}

static uint32_t parse_value(reader *r) {
    const unsigned char *s = r->s + r->at;
    size_t left = r->len - r->at;
    if (!left) return 0;
    if (left >= 4 && !memcmp(s, "null", 4)) {
        r->at += 4;
        return new_node(r, JS_NULL);
    }
    if (left >= 5 && !memcmp(s, "false", 5)) {
        r->at += 5;
        return new_node(r, JS_FALSE);
    }
    if (left >= 4 && !memcmp(s, "true", 4)) {
        r->at += 4;
        return new_node(r, JS_TRUE);
    }
    if (*s == '"') {
        uint32_t n, i;
        long at = parse_string(r, &n);
        if (at < 0 || !(i = new_node(r, JS_STRING))) return 0;
        r->d->nodes[i].str = (uint32_t)at;
        r->d->nodes[i].count = n;
        return i;
    }
    if (*s == '-' || (*s >= '0' && *s <= '9')) {
        double v;
        uint32_t i;
        if (!parse_number(r, &v) || !(i = new_node(r, JS_NUMBER))) return 0;
        r->d->nodes[i].num = v;
        return i;
    }
    if (*s == '[' || *s == '{') return parse_container(r, *s == '{');
    return 0;
}

int js_parse(js_doc *doc, const char *text, size_t len, size_t *err_at) {
    memset(doc, 0, sizeof *doc);
    if (len >= UINT32_MAX) return -1;
    reader r = {(const unsigned char *)text, len, 0, doc, 0, 0, 0, localeconv()->decimal_point[0]};
    doc->strings = malloc(len + 1);
    if (!doc->strings) return -2;
    doc->strings[0] = '\0';
    new_node(&r, JS_NULL); /* nodes[0]: index 0 means "none" */
    if (r.oom) goto fail;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) r.at = 3;
    skip_ws(&r);
    if (parse_value(&r) != 1) goto fail;
    return 0;
fail:
    if (err_at) *err_at = r.at;
    js_free(doc);
    return r.oom ? -2 : -1;
}

void js_free(js_doc *doc) {
    free(doc->nodes);
    free(doc->strings);
    memset(doc, 0, sizeof *doc);
}

const js_node *js_get(const js_doc *d, const js_node *obj, const char *key) {
    if (!js_is(obj, JS_OBJECT)) return NULL;
    for (const js_node *c = js_child(d, obj); c; c = js_next(d, c))
        if (!strcmp(d->strings + c->key, key)) return c;
    return NULL;
}

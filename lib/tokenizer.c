/* tokenizer.c — SentencePiece unigram tokenizer: vocab.json loading, normalization,
 * Viterbi segmentation and detokenization (docs/FORMAT.md, "vocab.json").
 *
 * The goal is byte-exact agreement with SentencePiece (spm_encode / spm_decode):
 *
 *   normalizer   Normalizer::Normalize of normalizer.cc. Each step takes the longest
 *                rule matching a prefix of the remaining input: user_defined pieces
 *                first (copied verbatim), then the character map. The map is either
 *                the model's own precompiled charsmap (optional normalizer field
 *                "precompiled_charsmap", base64 — exact by construction) or rules
 *                rebuilt from utf8proc the way normalizer/builder.cc BuildNFKCMap and
 *                BuildNmtNFKCMap build them (single code point -> NFKC; sequences of
 *                NFKD-singletons whose NFKD is the decomposition of one composed
 *                character -> that character; NMT whitespace and control rules).
 *   segmentation Model::EncodeOptimized of unigram_model.cc, including its mixed
 *                float/double arithmetic (which decides exact ties), the unknown
 *                character score min_score - 10, user_defined scores
 *                length * max_score - 0.1, and SentencePieceProcessor's merging of
 *                consecutive unknown pieces into one.
 */
#include "tokenizer.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "internal.h"
#include "json.h"

#include <cjson/cJSON.h>

/* ======================================================================== */
/* Types                                                                    */
/* ======================================================================== */

enum piece_type {
    PT_NORMAL = 1, PT_UNKNOWN = 2, PT_CONTROL = 3, PT_USER_DEFINED = 4,
    PT_UNUSED = 5, PT_BYTE = 6
};

enum norm_kind { NORM_IDENTITY, NORM_NFKC, NORM_NMT_NFKC };

/* The longest piece accepted, in bytes. The tries are built recursively, one level per
 * byte, so an unbounded piece would overflow the stack (a 100 KB piece did); SentencePiece's
 * trainer caps pieces at 512 characters, i.e. 2048 bytes. */
#define AT_MAX_PIECE_BYTES 2048

/* A static byte trie: children of a node are contiguous and sorted by label. */
typedef struct trie_node {
    uint32_t child;   /* index of the first child */
    uint16_t n_child; /* number of children (<= 256) */
    uint8_t label;    /* byte leading to this node */
    int32_t value;    /* piece index ending here, or -1 */
} trie_node;

typedef struct trie {
    trie_node *nodes;
    uint32_t n_nodes;
    uint32_t root_next[256]; /* child of the root per byte, 0 = none */
} trie;

typedef struct spm {
    int n_pieces;
    char **piece;       /* NUL-terminated, owned by `blob` */
    uint32_t *piece_len;
    float *score;
    uint8_t *type;
    int32_t *model_id;  /* piece -> model id (unk_id when not in tokens) */
    int unk_piece;      /* index of the `unknown` piece */
    float min_score, max_score; /* over normal pieces, initialised like spm */
    trie pieces;        /* normal, user_defined and unused pieces */
    trie user;          /* user_defined pieces (the normalizer's prefix matcher) */
    bool has_user;
    enum norm_kind norm;
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    /* Optional precompiled charsmap (darts-clone double array + strings). */
    uint32_t *cm_units;
    size_t cm_n_units;
    char *cm_strings;   /* NUL-separated replacement strings */
    size_t cm_strings_len;
    char *blob;         /* piece text storage */
} spm;

struct at_vocab {
    int size;
    char **tokens;      /* NUL-terminated, owned by `token_blob` */
    char *token_blob;
    uint32_t *token_len;
    struct strmap *token_map; /* token text -> id */
    int pad_id, eos_id, unk_id;
    spm sp[2];          /* 0 = source, 1 = target */
    bool shared_spm;    /* sp[1] is a copy of sp[0]'s pointers (a joint model) */
};

/* ======================================================================== */
/* Small helpers                                                            */
/* ======================================================================== */

typedef struct buf {
    char *p;
    size_t n, cap;
    bool oom;
} buf;

static void buf_reserve(buf *b, size_t extra) {
    if (b->oom || b->n + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void buf_put(buf *b, const void *data, size_t n) {
    buf_reserve(b, n);
    if (b->oom) return;
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

/* FNV-1a over a byte string. */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Open-addressing string -> int32 map used while loading. */
struct strmap {
    int32_t *slot; /* index into strs, -1 empty */
    size_t mask;
    char *const *strs;
    const uint32_t *lens;
};
typedef struct strmap strmap;

static bool strmap_init(strmap *m, size_t n, char *const *strs, const uint32_t *lens) {
    size_t cap = 16;
    while (cap < 2 * n + 1) cap *= 2;
    m->slot = malloc(cap * sizeof *m->slot);
    if (!m->slot) return false;
    for (size_t i = 0; i < cap; i++) m->slot[i] = -1;
    m->mask = cap - 1;
    m->strs = strs;
    m->lens = lens;
    return true;
}

/* Returns the existing index for the string, or inserts `idx` and returns -1. */
static int32_t strmap_insert(strmap *m, int32_t idx) {
    const char *s = m->strs[idx];
    uint32_t n = m->lens[idx];
    size_t h = (size_t)hash_bytes(s, n) & m->mask;
    while (m->slot[h] >= 0) {
        int32_t j = m->slot[h];
        if (m->lens[j] == n && memcmp(m->strs[j], s, n) == 0) return j;
        h = (h + 1) & m->mask;
    }
    m->slot[h] = idx;
    return -1;
}

static int32_t strmap_find(const strmap *m, const char *s, size_t n) {
    size_t h = (size_t)hash_bytes(s, n) & m->mask;
    while (m->slot[h] >= 0) {
        int32_t j = m->slot[h];
        if (m->lens[j] == n && memcmp(m->strs[j], s, n) == 0) return j;
        h = (h + 1) & m->mask;
    }
    return -1;
}

/* ======================================================================== */
/* UTF-8                                                                    */
/* ======================================================================== */

/* Decodes one strictly valid UTF-8 sequence at s[0..n) (n >= 1). Returns its length
 * and stores the code point, or returns 0 if invalid (overlong, surrogate,
 * > U+10FFFF, truncated, stray continuation byte). */
static size_t utf8_decode(const unsigned char *s, size_t n, int32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = (int32_t)c;
        return 1;
    }
    size_t len;
    int32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2; v = c & 0x1F; min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3; v = c & 0x0F; min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4; v = c & 0x07; min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* Returns the byte offset of the first invalid sequence, or `n` if all valid. */
static size_t utf8_check(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int32_t cp;
        size_t k = utf8_decode(u + i, n - i, &cp);
        if (!k) return i;
        i += k;
    }
    return n;
}

static size_t utf8_encode(int32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the UTF-8 character starting with byte c, as string_util::OneCharLen. */
static size_t one_char_len(unsigned char c) {
    static const unsigned char len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

/* ======================================================================== */
/* Trie                                                                     */
/* ======================================================================== */

typedef struct trie_build {
    trie *t;
    char *const *str;
    const uint32_t *len;
    const int32_t *order; /* piece indices sorted by bytes */
    uint32_t cap;
} trie_build;

static int cmp_bytes(const char *a, uint32_t na, const char *b, uint32_t nb) {
    int c = memcmp(a, b, na < nb ? na : nb);
    if (c) return c;
    return na < nb ? -1 : na > nb ? 1 : 0;
}

/* The first 8 bytes of a piece as a big-endian number, zero-padded: comparing keys
 * compares those bytes (a piece holds no NUL, so a shorter piece sorts first). */
static uint64_t prefix_key(const char *s, uint32_t n) {
    uint64_t k = 0;
    for (uint32_t i = 0; i < 8; i++) k = k << 8 | (i < n ? (unsigned char)s[i] : 0u);
    return k;
}

typedef struct sort_ctx {
    char *const *str;
    const uint32_t *len;
    const uint64_t *key; /* prefix_key of each piece */
} sort_ctx;

/* cmp_bytes of pieces a and b, mostly decided by their keys. */
static int cmp_pieces(const sort_ctx *c, int32_t a, int32_t b) {
    if (c->key[a] != c->key[b]) return c->key[a] < c->key[b] ? -1 : 1;
    if (c->len[a] <= 8 || c->len[b] <= 8) /* equal first bytes: the shorter first */
        return c->len[a] < c->len[b] ? -1 : c->len[a] > c->len[b];
    return cmp_bytes(c->str[a] + 8, c->len[a] - 8, c->str[b] + 8, c->len[b] - 8);
}

/* Stable merge sort of piece indices by piece bytes (no global qsort context, so
 * vocabs can be loaded from several threads at once). */
static void sort_pieces(int32_t *a, int32_t *tmp, size_t n, const sort_ctx *c) {
    if (n < 2) return;
    size_t h = n / 2;
    sort_pieces(a, tmp, h, c);
    sort_pieces(a + h, tmp, n - h, c);
    if (cmp_pieces(c, a[h - 1], a[h]) <= 0) return; /* already in order */
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        if (cmp_pieces(c, a[j], a[i]) < 0) tmp[k++] = a[j++];
        else tmp[k++] = a[i++];
    }
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

/* Fills the children of node `nd` from order[lo..hi), all of which share the first
 * `depth` bytes. Returns false on allocation failure. */
static bool trie_fill(trie_build *b, uint32_t nd, size_t lo, size_t hi, uint32_t depth) {
    if (lo < hi && b->len[b->order[lo]] == depth) {
        b->t->nodes[nd].value = b->order[lo];
        lo++;
    }
    /* count groups */
    uint32_t groups = 0;
    for (size_t i = lo; i < hi;) {
        unsigned char c = (unsigned char)b->str[b->order[i]][depth];
        size_t j = i + 1;
        while (j < hi && (unsigned char)b->str[b->order[j]][depth] == c) j++;
        groups++;
        i = j;
    }
    if (!groups) return true;
    uint32_t first = b->t->n_nodes;
    if (first + groups > b->cap) {
        uint32_t cap = b->cap * 2 + groups;
        trie_node *nn = realloc(b->t->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return false;
        b->t->nodes = nn;
        b->cap = cap;
    }
    b->t->n_nodes += groups;
    b->t->nodes[nd].child = first;
    b->t->nodes[nd].n_child = (uint16_t)groups;
    uint32_t k = first;
    for (size_t i = lo; i < hi; k++) {
        unsigned char c = (unsigned char)b->str[b->order[i]][depth];
        size_t j = i + 1;
        while (j < hi && (unsigned char)b->str[b->order[j]][depth] == c) j++;
        b->t->nodes[k] = (trie_node){0, 0, c, -1};
        if (!trie_fill(b, k, i, j, depth + 1)) return false;
        i = j;
    }
    return true;
}

/* Builds a trie over the pieces selected by keep[i]. */
static bool trie_build_from(trie *t, int n, char *const *str, const uint32_t *len,
                            const bool *keep) {
    memset(t, 0, sizeof *t);
    int32_t *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) return false;
    size_t m = 0;
    for (int i = 0; i < n; i++)
        if (keep[i]) order[m++] = i;
    int32_t *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
    uint64_t *key = malloc((size_t)(n ? n : 1) * sizeof *key);
    if (!tmp || !key) {
        free(order);
        free(tmp);
        free(key);
        return false;
    }
    for (size_t i = 0; i < m; i++) key[order[i]] = prefix_key(str[order[i]], len[order[i]]);
    sort_ctx sc = {str, len, key};
    sort_pieces(order, tmp, m, &sc);
    free(tmp);
    free(key);
    trie_build b = {t, str, len, order, 1024};
    t->nodes = malloc(b.cap * sizeof *t->nodes);
    if (!t->nodes) {
        free(order);
        return false;
    }
    t->nodes[0] = (trie_node){0, 0, 0, -1};
    t->n_nodes = 1;
    bool ok = trie_fill(&b, 0, 0, m, 0);
    free(order);
    if (!ok) return false;
    for (uint32_t k = 0; k < t->nodes[0].n_child; k++) {
        uint32_t c = t->nodes[0].child + k;
        t->root_next[t->nodes[c].label] = c;
    }
    return true;
}

static inline uint32_t trie_next(const trie *t, uint32_t nd, unsigned char c) {
    if (nd == 0) return t->root_next[c];
    const trie_node *p = &t->nodes[nd];
    uint32_t lo = p->child, hi = p->child + p->n_child;
    if (p->n_child <= 8) {
        for (uint32_t k = lo; k < hi; k++)
            if (t->nodes[k].label == c) return k;
        return 0;
    }
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (t->nodes[mid].label < c) lo = mid + 1;
        else hi = mid;
    }
    return (lo < p->child + p->n_child && t->nodes[lo].label == c) ? lo : 0;
}

/* Longest piece of trie `t` that is a prefix of s[0..n); returns its byte length or
 * 0. */
static size_t trie_longest(const trie *t, const char *s, size_t n) {
    uint32_t nd = 0;
    size_t best = 0;
    for (size_t i = 0; i < n; i++) {
        nd = trie_next(t, nd, (unsigned char)s[i]);
        if (!nd) break;
        if (t->nodes[nd].value >= 0) best = i + 1;
    }
    return best;
}

/* ======================================================================== */
/* Normalizer                                                               */
/* ======================================================================== */

/* darts-clone unit accessors */
static inline uint32_t dc_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static inline uint32_t dc_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
static inline uint32_t dc_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t dc_value(uint32_t u) { return u & ((1u << 31) - 1); }

/* Longest charsmap rule matching a prefix of s[0..n) (Darts commonPrefixSearch, as
 * Normalizer::NormalizePrefix). Returns the matched length (0 = none) and the
 * replacement. Every index is bounds-checked: the blob comes from a file. */
static size_t charsmap_match(const spm *sp, const char *s, size_t n, const char **rep) {
    const uint32_t *a = sp->cm_units;
    size_t na = sp->cm_n_units;
    size_t best = 0;
    uint32_t id = 0;
    uint32_t unit = a[0];
    id ^= dc_offset(unit);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        id ^= c;
        if (id >= na) break;
        unit = a[id];
        if (dc_label(unit) != c) break;
        id ^= dc_offset(unit);
        if (dc_has_leaf(unit)) {
            if (id >= na) break;
            uint32_t v = dc_value(a[id]);
            if (v < sp->cm_strings_len) {
                best = i + 1;
                *rep = sp->cm_strings + v;
            }
        }
    }
    return best;
}

/* NFKD of one code point: returns the number of code points (0 on error) written to
 * out[0..cap). */
static int nfkd_cp(int32_t cp, int32_t *out, int cap) {
    int bc = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(
        cp, out, cap, (utf8proc_option_t)(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT), &bc);
    if (n <= 0 || n > cap) return 0;
    return (int)n;
}

/* Code points whose compatibility mappings are newer than the Unicode 13 tables
 * SentencePiece's built-in nmt_nfkc/nfkc maps were compiled from (utf8proc 2.8 is
 * Unicode 15): SentencePiece leaves them alone, so the rebuilt rules must too.
 * Found by normalizing every code point with both (tests/tokenizer_dev_check.sh). */
static bool post_unicode13(int32_t cp) {
    return (cp >= 0xA7F2 && cp <= 0xA7F4) || (cp >= 0x10780 && cp <= 0x107BA) ||
           (cp >= 0x1E030 && cp <= 0x1E06D);
}

/* The single code point that cp's NFKD consists of, or -1 if it has several. */
static int32_t nfkd_single(int32_t cp) {
    if (cp < 0xA0 || post_unicode13(cp)) return cp; /* ASCII and C1: themselves */
    int32_t d[24];
    int n = nfkd_cp(cp, d, 24);
    return n == 1 ? d[0] : -1;
}

/* Single code point rule of the utf8proc-built map: writes the replacement's UTF-8
 * to out (at most 4 * 18 bytes) and returns its length, or -1 when cp maps to
 * itself. */
static int cp_rule(enum norm_kind kind, int32_t cp, char *out) {
    if (kind == NORM_NMT_NFKC) {
        switch (cp) {
        case 0x9: case 0xA: case 0xC: case 0xD: case 0x1680: case 0x200B:
        case 0x200C: case 0x200E: case 0x200F: case 0x2028: case 0x2029:
        case 0x2581: case 0xFEFF: case 0xFFFD:
            out[0] = ' ';
            return 1;
        case 0xFF5E: /* FULLWIDTH TILDE is left alone */
            return -1;
        default:
            break;
        }
        if ((cp >= 0x1 && cp <= 0x8) || cp == 0xB || (cp >= 0xE && cp <= 0x1F) ||
            cp == 0x7F || cp == 0x8F || cp == 0x9F)
            return 0; /* removed */
    }
    if (cp < 0xA0 || post_unicode13(cp)) return -1;
    /* NFKC of the single code point (noncharacters and unassigned map to
     * themselves, as ICU does). */
    int32_t d[40];
    int n = nfkd_cp(cp, d, 40);
    if (n <= 0) return -1;
    utf8proc_ssize_t m = utf8proc_normalize_utf32(
        d, n, (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (m <= 0) return -1;
    if (m == 1 && d[0] == cp) return -1;
    int len = 0;
    for (utf8proc_ssize_t i = 0; i < m; i++) len += (int)utf8_encode(d[i], out + len);
    return len;
}

/* Multi code point rule of the utf8proc-built map at s[0..n): a sequence of 2..4
 * code points, each of whose NFKD is a single code point, that together form the
 * NFKD of one composed character X is rewritten to X (builder.cc BuildNFKCMap,
 * ExpandUnnormalized). Returns the matched byte length (0 = none) and X. */
static size_t seq_rule(const char *s, size_t n, int32_t first_cp, size_t first_len,
                       int32_t *x) {
    enum { MAXK = 4 };
    int32_t d[MAXK];
    size_t end[MAXK];
    int k = 0;
    int32_t c0 = nfkd_single(first_cp);
    if (c0 < 0) return 0;
    d[k] = c0;
    end[k++] = first_len;
    size_t pos = first_len;
    while (k < MAXK && pos < n) {
        const unsigned char *u = (const unsigned char *)s + pos;
        if (u[0] < 0x80) break; /* ASCII never continues a composed sequence */
        int32_t cp;
        size_t l = utf8_decode(u, n - pos, &cp);
        if (!l) break;
        int32_t dc = nfkd_single(cp);
        if (dc < 0) break;
        d[k] = dc;
        pos += l;
        end[k++] = pos;
    }
    for (int len = k; len >= 2; len--) {
        int32_t c[MAXK + 1];
        memcpy(c, d, (size_t)len * sizeof *c);
        utf8proc_ssize_t m = utf8proc_normalize_utf32(
            c, len, (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        if (m != 1) continue;
        int32_t back[24];
        int nb = nfkd_cp(c[0], back, 24);
        if (nb != len || memcmp(back, d, (size_t)len * sizeof *d) != 0) continue;
        *x = c[0];
        return end[len - 1];
    }
    return 0;
}

/* One NormalizePrefix step at s[0..n) (n > 0, valid UTF-8): returns the consumed
 * length and points *rep and *rep_len at the replacement (possibly `tmp`). */
static size_t normalize_prefix(const spm *sp, bool use_cm, const char *s, size_t n,
                               const char **rep, size_t *rep_len, char *tmp) {
    if (sp->has_user) {
        size_t l = trie_longest(&sp->user, s, n);
        if (l) {
            *rep = s;
            *rep_len = l;
            return l;
        }
    }
    const unsigned char *u = (const unsigned char *)s;
    if (sp->norm == NORM_IDENTITY || (u[0] >= 0x20 && u[0] < 0x7F && (n == 1 || u[1] < 0x80))) {
        /* identity, or printable ASCII not followed by a possible combining mark:
         * no rule of either map applies */
        size_t l = one_char_len(u[0]);
        *rep = s;
        *rep_len = l;
        return l;
    }
    if (use_cm) {
        const char *r = NULL;
        size_t l = charsmap_match(sp, s, n, &r);
        if (l) {
            *rep = r;
            *rep_len = strlen(r);
            return l;
        }
        l = one_char_len(u[0]);
        *rep = s;
        *rep_len = l;
        return l;
    }
    int32_t cp;
    size_t l = utf8_decode(u, n, &cp);
    if (!l) l = 1, cp = 0xFFFD; /* unreachable: input was validated */
    int32_t x;
    size_t ml = seq_rule(s, n, cp, l, &x);
    if (ml) {
        *rep = tmp;
        *rep_len = utf8_encode(x, tmp);
        return ml;
    }
    int rl = cp_rule(sp->norm, cp, tmp);
    if (rl >= 0) {
        *rep = tmp;
        *rep_len = (size_t)rl;
        return l;
    }
    *rep = s;
    *rep_len = l;
    return l;
}

static const char kSpace[] = "\xe2\x96\x81"; /* U+2581 */

/* Normalizer::Normalize: writes the normalized text to `out`. */
static void normalize(const spm *sp, bool use_cm, const char *s, size_t n, buf *out) {
    char tmp[4 * 40];
    const char *rep;
    size_t rep_len;
    out->n = 0;
    if (!n) return;
    if (sp->remove_extra_whitespaces) {
        while (n) {
            size_t l = normalize_prefix(sp, use_cm, s, n, &rep, &rep_len, tmp);
            if (!(rep_len == 1 && rep[0] == ' ')) break;
            s += l;
            n -= l;
        }
    }
    if (!n) return;
    buf_reserve(out, n * 3 + 3);
    if (sp->add_dummy_prefix) {
        if (sp->escape_whitespaces) buf_put(out, kSpace, 3);
        else buf_put(out, " ", 1);
    }
    bool prev_space = sp->remove_extra_whitespaces;
    while (n) {
        size_t l = normalize_prefix(sp, use_cm, s, n, &rep, &rep_len, tmp);
        if (prev_space)
            while (rep_len && rep[0] == ' ') rep++, rep_len--;
        if (rep_len) {
            for (size_t i = 0; i < rep_len; i++) {
                if (sp->escape_whitespaces && rep[i] == ' ') buf_put(out, kSpace, 3);
                else buf_put(out, rep + i, 1);
            }
            prev_space = rep[rep_len - 1] == ' ';
        }
        s += l;
        n -= l;
        if (!sp->remove_extra_whitespaces) prev_space = false;
    }
    if (sp->remove_extra_whitespaces && !out->oom) {
        const char *sym = sp->escape_whitespaces ? kSpace : " ";
        size_t sl = sp->escape_whitespaces ? 3 : 1;
        while (out->n >= sl && memcmp(out->p + out->n - sl, sym, sl) == 0) out->n -= sl;
    }
}

/* ======================================================================== */
/* Unigram segmentation                                                     */
/* ======================================================================== */

typedef struct best_node {
    float score;       /* best path score ending here */
    int32_t starts_at; /* -1: unreached */
    int32_t piece;     /* piece index (unk_piece for unknown characters) */
} best_node;

/* Model::EncodeOptimized over normalized text t[0..n), then
 * SentencePieceProcessor's merge of consecutive unknowns. Calls fn per piece. */
static at_status viterbi(const at_vocab *v, const spm *sp, const char *t, size_t n,
                         at_piece_fn fn, void *ctx, at_error *err) {
    if (!n) return AT_OK;
    if (n > (size_t)INT32_MAX - 1)
        return at_fail(err, AT_ERR_TOO_LONG, "normalized input of %zu bytes is too long", n);
    best_node *best = malloc((n + 1) * sizeof *best);
    if (!best) return at_fail(err, AT_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i <= n; i++) best[i] = (best_node){0.0f, -1, -1};
    const float unk_score = sp->min_score - 10.0f; /* kUnkPenalty */
    const trie *tr = &sp->pieces;
    size_t start = 0;
    while (start < n) {
        const float here = best[start].score;
        bool has_single = false;
        size_t mblen = one_char_len((unsigned char)t[start]);
        if (mblen > n - start) mblen = n - start;
        uint32_t nd = 0;
        for (size_t k = start; k < n;) {
            nd = trie_next(tr, nd, (unsigned char)t[k]);
            if (!nd) break;
            k++;
            int32_t p = tr->nodes[nd].value;
            if (p < 0) continue;
            uint8_t ty = sp->type[p];
            if (ty == PT_UNUSED) continue;
            size_t length = k - start;
            /* the ternary's 0.1 makes the piece score a double (unigram_model.cc) */
            double score = ty == PT_USER_DEFINED
                               ? (double)((float)length * sp->max_score) - 0.1
                               : (double)sp->score[p];
            double cand = score + (double)here;
            best_node *tn = &best[k];
            if (tn->starts_at == -1 || cand > (double)tn->score) {
                tn->score = (float)cand;
                tn->starts_at = (int32_t)start;
                tn->piece = p;
            }
            if (!has_single && length == mblen) has_single = true;
        }
        if (!has_single) {
            best_node *tn = &best[start + mblen];
            float cand = unk_score + here;
            if (tn->starts_at == -1 || cand > tn->score) {
                tn->score = cand;
                tn->starts_at = (int32_t)start;
                tn->piece = sp->unk_piece;
            }
        }
        start += mblen;
    }
    /* Backtrack: collect the path, reversed in place via an index array. */
    size_t cnt = 0;
    for (size_t e = n; e > 0; e = (size_t)best[e].starts_at) cnt++;
    size_t *ends = malloc(cnt * sizeof *ends);
    if (!ends) {
        free(best);
        return at_fail(err, AT_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t k = cnt;
    for (size_t e = n; e > 0; e = (size_t)best[e].starts_at) ends[--k] = e;
    size_t i = 0;
    while (i < cnt) {
        size_t e = ends[i];
        size_t b = (size_t)best[e].starts_at;
        int32_t p = best[e].piece;
        int32_t id = sp->model_id[p];
        if (p == sp->unk_piece) {
            while (i + 1 < cnt && best[ends[i + 1]].piece == sp->unk_piece) e = ends[++i];
            /* Like transformers' MarianTokenizer (and Marian's own pipeline, which
             * looks up spm_encode's piece strings): the surface of an unknown run
             * keeps its id when `tokens` has it (e.g. a character known only to the
             * target SPM of a shared vocabulary). */
            int32_t m = strmap_find(v->token_map, t + b, e - b);
            id = m >= 0 ? m : v->unk_id;
        }
        fn(ctx, t + b, e - b, id);
        i++;
    }
    free(ends);
    free(best);
    return AT_OK;
}

static at_status encode_common(const at_vocab *v, int which, bool use_cm, const char *text,
                               size_t len, at_piece_fn fn, void *ctx, at_error *err) {
    if (!v || (!text && len) || !fn || which < 0 || which > 1)
        return at_fail(err, AT_ERR_ARG, "tokenizer: invalid argument");
    size_t bad = utf8_check(text, len);
    if (bad < len)
        return at_fail(err, AT_ERR_INPUT, "invalid UTF-8 at byte offset %zu (byte 0x%02x)",
                       bad, (unsigned)(unsigned char)text[bad]);
    const spm *sp = &v->sp[which];
    buf nb = {0};
    normalize(sp, use_cm && sp->cm_units, text, len, &nb);
    if (nb.oom) {
        free(nb.p);
        return at_fail(err, AT_ERR_NOMEM, "tokenizer: out of memory");
    }
    at_status st = viterbi(v, sp, nb.p, nb.n, fn, ctx, err);
    free(nb.p);
    return st;
}

typedef struct ids_ctx {
    int32_t *ids;
    size_t cap, n;
} ids_ctx;

static void collect_id(void *ctx, const char *piece, size_t piece_len, int32_t id) {
    (void)piece;
    (void)piece_len;
    ids_ctx *c = ctx;
    if (c->n < c->cap) c->ids[c->n] = id;
    c->n++;
}

at_status at_vocab_encode(const at_vocab *v, const char *text, size_t len, int32_t *ids,
                          size_t cap, size_t *n, at_error *err) {
    if (!n || (!ids && cap)) return at_fail(err, AT_ERR_ARG, "tokenizer: invalid argument");
    ids_ctx c = {ids, cap, 0};
    at_status st = encode_common(v, 0, true, text, len, collect_id, &c, err);
    if (st != AT_OK) return st;
    *n = c.n;
    if (c.n > cap)
        return at_fail(err, AT_ERR_TOO_LONG, "input has %zu tokens, room for %zu", c.n, cap);
    return AT_OK;
}

at_status at_vocab_encode_pieces(const at_vocab *v, int which, const char *text,
                                 size_t len, at_piece_fn fn, void *ctx, at_error *err) {
    return encode_common(v, which, true, text, len, fn, ctx, err);
}

at_status at_vocab_normalize(const at_vocab *v, int which, int use_charsmap,
                             const char *text, size_t len, char **out, size_t *out_len,
                             at_error *err) {
    if (!v || (!text && len) || !out || !out_len || which < 0 || which > 1)
        return at_fail(err, AT_ERR_ARG, "tokenizer: invalid argument");
    size_t bad = utf8_check(text, len);
    if (bad < len)
        return at_fail(err, AT_ERR_INPUT, "invalid UTF-8 at byte offset %zu", bad);
    const spm *sp = &v->sp[which];
    buf nb = {0};
    normalize(sp, use_charsmap && sp->cm_units, text, len, &nb);
    buf_put(&nb, "", 1);
    if (nb.oom) {
        free(nb.p);
        return at_fail(err, AT_ERR_NOMEM, "tokenizer: out of memory");
    }
    *out = nb.p;
    *out_len = nb.n - 1;
    return AT_OK;
}

/* ======================================================================== */
/* Decoding                                                                 */
/* ======================================================================== */

at_status at_vocab_decode(const at_vocab *v, const int32_t *ids, size_t n, char *out,
                          size_t cap, size_t *out_len, at_error *err) {
    return at_vocab_decode_subst(v, ids, n, NULL, out, cap, out_len, err);
}

at_status at_vocab_decode_subst(const at_vocab *v, const int32_t *ids, size_t n,
                                const char *const *subst, char *out, size_t cap,
                                size_t *out_len, at_error *err) {
    if (!v || (!ids && n) || (!out && cap) || !out_len)
        return at_fail(err, AT_ERR_ARG, "detokenizer: invalid argument");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= v->size)
            return at_fail(err, AT_ERR_ARG, "detokenizer: id %ld at position %zu is out of "
                           "range [0, %d)", (long)ids[i], i, v->size);
    static const char unk[] = " \xe2\x81\x87 "; /* " ⁇ " */
    size_t w = 0;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id == v->eos_id || id == v->pad_id) continue;
        const char *p;
        size_t pl;
        if (id == v->unk_id && !(subst && subst[i])) {
            p = unk;
            pl = sizeof unk - 1;
        } else {
            p = id == v->unk_id ? subst[i] : v->tokens[id];
            pl = strlen(p);
            if (first && pl >= 3 && memcmp(p, kSpace, 3) == 0) p += 3, pl -= 3;
        }
        if (pl) first = false;
        for (size_t j = 0; j < pl;) {
            if (pl - j >= 3 && memcmp(p + j, kSpace, 3) == 0) {
                if (w + 1 < cap) out[w] = ' ';
                w++;
                j += 3;
            } else {
                if (w + 1 < cap) out[w] = p[j];
                w++;
                j++;
            }
        }
    }
    *out_len = w;
    if (cap) out[w < cap ? w : cap - 1] = '\0';
    if (w >= cap)
        return at_fail(err, AT_ERR_TOO_LONG, "detokenized text needs %zu bytes, room for %zu",
                       w + 1, cap);
    return AT_OK;
}

/* ======================================================================== */
/* Loading                                                                  */
/* ======================================================================== */

int at_vocab_size(const at_vocab *v) { return v ? v->size : 0; }

void at_vocab_special(const at_vocab *v, int *pad, int *eos, int *unk) {
    if (pad) *pad = v->pad_id;
    if (eos) *eos = v->eos_id;
    if (unk) *unk = v->unk_id;
}

const char *at_vocab_token(const at_vocab *v, int32_t id) {
    if (!v || id < 0 || id >= v->size) return NULL;
    return v->tokens[id];
}

static void spm_free(spm *sp) {
    free(sp->piece);
    free(sp->piece_len);
    free(sp->score);
    free(sp->type);
    free(sp->model_id);
    free(sp->pieces.nodes);
    free(sp->user.nodes);
    free(sp->cm_units);
    free(sp->cm_strings);
    free(sp->blob);
    memset(sp, 0, sizeof *sp);
}

void at_vocab_free(at_vocab *v) {
    if (!v) return;
    free(v->tokens);
    free(v->token_blob);
    free(v->token_len);
    if (v->token_map) free(v->token_map->slot);
    free(v->token_map);
    if (!v->shared_spm) spm_free(&v->sp[1]);
    spm_free(&v->sp[0]);
    free(v);
}

/* Two JSON values alike: types, member names in order, strings (every byte), numbers
 * (every bit). */
static bool js_same(const js_doc *d, const js_node *a, const js_node *b) {
    if (!a || !b || a->type != b->type) return false;
    if (a->type == JS_NUMBER) return !memcmp(&a->num, &b->num, sizeof a->num);
    if (a->count != b->count) return false;
    if (a->type == JS_STRING) return !memcmp(js_str(d, a), js_str(d, b), a->count);
    if (a->type != JS_ARRAY && a->type != JS_OBJECT) return true;
    bool object = a->type == JS_OBJECT;
    for (a = js_child(d, a), b = js_child(d, b); a && b; a = js_next(d, a), b = js_next(d, b))
        if ((object && strcmp(d->strings + a->key, d->strings + b->key)) || !js_same(d, a, b))
            return false;
    return !a && !b;
}

static const js_node *get_field(const js_doc *d, const js_node *obj, const char *name) {
    return js_get(d, obj, name);
}

static at_status get_bool(const js_doc *d, const js_node *obj, const char *where, const char *name,
                          bool *out, at_error *err) {
    const js_node *it = get_field(d, obj, name);
    if (!it) return at_fail(err, AT_ERR_FORMAT, "%s.%s is missing", where, name);
    if (!js_is(it, JS_TRUE) && !js_is(it, JS_FALSE))
        return at_fail(err, AT_ERR_FORMAT, "%s.%s must be true or false", where, name);
    *out = js_is(it, JS_TRUE);
    return AT_OK;
}

static at_status get_int(const js_doc *d, const js_node *obj, const char *where, const char *name,
                         long lo, long hi, int *out, at_error *err) {
    const js_node *it = get_field(d, obj, name);
    if (!it) return at_fail(err, AT_ERR_FORMAT, "%s%s is missing", where, name);
    if (!js_is(it, JS_NUMBER) || it->num != floor(it->num))
        return at_fail(err, AT_ERR_FORMAT, "%s%s must be an integer", where, name);
    double x = it->num;
    if (x < (double)lo || x > (double)hi)
        return at_fail(err, AT_ERR_FORMAT, "%s%s = %.17g is out of range [%ld, %ld]", where,
                       name, x, lo, hi);
    *out = (int)x;
    return AT_OK;
}

static int b64val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes standard base64 (with padding). Returns a malloc'ed buffer or NULL. */
static unsigned char *b64_decode(const char *s, size_t n, size_t *out_len, bool *bad) {
    *bad = false;
    if (n % 4) {
        *bad = true;
        return NULL;
    }
    size_t pad = 0;
    if (n && s[n - 1] == '=') pad++;
    if (n > 1 && s[n - 2] == '=') pad++;
    size_t m = n / 4 * 3 - pad;
    unsigned char *o = malloc(m ? m : 1);
    if (!o) return NULL;
    size_t w = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)s[i + j];
            v[j] = (c == '=' && i + 4 == n && j >= 4 - (int)pad) ? 0 : b64val(c);
            if (v[j] < 0) {
                free(o);
                *bad = true;
                return NULL;
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        unsigned char b[3] = {(unsigned char)(x >> 16), (unsigned char)(x >> 8),
                              (unsigned char)x};
        for (int j = 0; j < 3 && w < m; j++) o[w++] = b[j];
    }
    *out_len = m;
    return o;
}

static at_status load_charsmap(spm *sp, const char *where, const char *b64, at_error *err) {
    bool bad;
    size_t n = 0;
    unsigned char *blob = b64_decode(b64, strlen(b64), &n, &bad);
    if (!blob) {
        if (bad)
            return at_fail(err, AT_ERR_FORMAT, "%s.normalizer.precompiled_charsmap is not "
                           "valid base64", where);
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    }
    at_status st = AT_OK;
    uint32_t tsize = n >= 4 ? (uint32_t)blob[0] | (uint32_t)blob[1] << 8 |
                                  (uint32_t)blob[2] << 16 | (uint32_t)blob[3] << 24
                            : 0;
    if (n < 4 || tsize == 0 || tsize % 4 || tsize > n - 4 || n - 4 - tsize == 0 ||
        blob[n - 1] != '\0' || utf8_check((const char *)blob + 4 + tsize, n - 4 - tsize) !=
                                   n - 4 - tsize) {
        st = at_fail(err, AT_ERR_FORMAT, "%s.normalizer.precompiled_charsmap is malformed",
                     where);
        goto done;
    }
    sp->cm_n_units = tsize / 4;
    sp->cm_units = malloc(tsize);
    sp->cm_strings_len = n - 4 - tsize;
    sp->cm_strings = malloc(sp->cm_strings_len);
    if (!sp->cm_units || !sp->cm_strings) {
        st = at_fail(err, AT_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < sp->cm_n_units; i++) {
        const unsigned char *q = blob + 4 + 4 * i;
        sp->cm_units[i] = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                          (uint32_t)q[3] << 24;
    }
    memcpy(sp->cm_strings, blob + 4 + tsize, sp->cm_strings_len);
done:
    free(blob);
    return st;
}

static const char *const kTypeNames[] = {NULL, "normal", "unknown", "control",
                                         "user_defined", "unused", "byte"};

static at_status load_spm(at_vocab *v, spm *sp, const js_doc *d, const js_node *obj,
                          const char *where, const strmap *tokmap, at_error *err) {
    if (!js_is(obj, JS_OBJECT))
        return at_fail(err, AT_ERR_FORMAT, "%s is missing or not an object", where);
    const js_node *ty = get_field(d, obj, "type");
    if (!ty) return at_fail(err, AT_ERR_FORMAT, "%s.type is missing", where);
    if (!js_is(ty, JS_STRING) || strcmp(js_str(d, ty), "unigram") != 0)
        return at_fail(err, AT_ERR_FORMAT, "%s.type must be \"unigram\"", where);

    const js_node *no = get_field(d, obj, "normalizer");
    if (!no) return at_fail(err, AT_ERR_FORMAT, "%s.normalizer is missing", where);
    if (!js_is(no, JS_OBJECT))
        return at_fail(err, AT_ERR_FORMAT, "%s.normalizer must be an object", where);
    char nwhere[64];
    snprintf(nwhere, sizeof nwhere, "%s.normalizer", where);
    const js_node *nm = get_field(d, no, "name");
    if (!nm) return at_fail(err, AT_ERR_FORMAT, "%s.name is missing", nwhere);
    if (!js_is(nm, JS_STRING))
        return at_fail(err, AT_ERR_FORMAT, "%s.name must be a string", nwhere);
    if (strcmp(js_str(d, nm), "nmt_nfkc") == 0) sp->norm = NORM_NMT_NFKC;
    else if (strcmp(js_str(d, nm), "nfkc") == 0) sp->norm = NORM_NFKC;
    else if (strcmp(js_str(d, nm), "identity") == 0) sp->norm = NORM_IDENTITY;
    else
        return at_fail(err, AT_ERR_FORMAT, "%s.name \"%.64s\" is not one of nmt_nfkc, "
                       "nfkc, identity", nwhere, js_str(d, nm));
    at_status st;
    if ((st = get_bool(d, no, nwhere, "add_dummy_prefix", &sp->add_dummy_prefix, err)) ||
        (st = get_bool(d, no, nwhere, "remove_extra_whitespaces", &sp->remove_extra_whitespaces,
                       err)) ||
        (st = get_bool(d, no, nwhere, "escape_whitespaces", &sp->escape_whitespaces, err)))
        return st;
    const js_node *cm = get_field(d, no, "precompiled_charsmap");
    if (cm) {
        if (!js_is(cm, JS_STRING))
            return at_fail(err, AT_ERR_FORMAT, "%s.precompiled_charsmap must be a base64 "
                           "string", nwhere);
        if (sp->norm == NORM_IDENTITY && js_str(d, cm)[0])
            return at_fail(err, AT_ERR_FORMAT, "%s: identity normalizer with a charsmap",
                           nwhere);
        if (js_str(d, cm)[0] && (st = load_charsmap(sp, where, js_str(d, cm), err)))
            return st;
    }

    const js_node *pa = get_field(d, obj, "pieces");
    if (!pa) return at_fail(err, AT_ERR_FORMAT, "%s.pieces is missing", where);
    if (!js_is(pa, JS_ARRAY))
        return at_fail(err, AT_ERR_FORMAT, "%s.pieces must be an array", where);
    int np = (int)pa->count;
    if (np <= 0 || np > (1 << 24))
        return at_fail(err, AT_ERR_FORMAT, "%s.pieces has %d entries", where, np);
    sp->n_pieces = np;
    size_t total = 0;
    int i = 0;
    for (const js_node *e = js_child(d, pa); e; e = js_next(d, e), i++) {
        const js_node *s = js_is(e, JS_ARRAY) && (int)e->count == 3 ? js_child(d, e) : NULL;
        if (!s || !js_is(s, JS_STRING) || !js_is(js_next(d, s), JS_NUMBER) ||
            !js_is(js_next(d, js_next(d, s)), JS_STRING))
            return at_fail(err, AT_ERR_FORMAT, "%s.pieces[%d] must be [piece, score, type]",
                           where, i);
        total += strlen(js_str(d, s)) + 1;
    }
    sp->piece = malloc((size_t)np * sizeof *sp->piece);
    sp->piece_len = malloc((size_t)np * sizeof *sp->piece_len);
    sp->score = malloc((size_t)np * sizeof *sp->score);
    sp->type = malloc((size_t)np);
    sp->model_id = malloc((size_t)np * sizeof *sp->model_id);
    sp->blob = malloc(total);
    bool *keep = malloc((size_t)np * sizeof *keep);
    bool *ukeep = malloc((size_t)np * sizeof *ukeep);
    strmap dup = {0};
    if (!sp->piece || !sp->piece_len || !sp->score || !sp->type || !sp->model_id ||
        !sp->blob || !keep || !ukeep || !strmap_init(&dup, (size_t)np, sp->piece,
                                                     sp->piece_len)) {
        st = at_fail(err, AT_ERR_NOMEM, "out of memory");
        goto done;
    }
    sp->unk_piece = -1;
    sp->min_score = FLT_MAX;
    sp->max_score = FLT_MIN; /* as in model_interface.cc: FLT_MIN, not -FLT_MAX */
    size_t off = 0;
    i = 0;
    for (const js_node *e = js_child(d, pa); e; e = js_next(d, e), i++) {
        const js_node *s = js_child(d, e), *sc = js_next(d, s), *tn = js_next(d, sc);
        size_t l = strlen(js_str(d, s));
        if (l == 0) {
            st = at_fail(err, AT_ERR_FORMAT, "%s.pieces[%d] is an empty piece", where, i);
            goto done;
        }
        if (l > AT_MAX_PIECE_BYTES) {
            st = at_fail(err, AT_ERR_FORMAT, "%s.pieces[%d] is %zu bytes long; the limit is %d",
                         where, i, l, AT_MAX_PIECE_BYTES);
            goto done;
        }
        if (utf8_check(js_str(d, s), l) != l) {
            st = at_fail(err, AT_ERR_FORMAT, "%s.pieces[%d] is not valid UTF-8", where, i);
            goto done;
        }
        memcpy(sp->blob + off, js_str(d, s), l + 1);
        sp->piece[i] = sp->blob + off;
        sp->piece_len[i] = (uint32_t)l;
        off += l + 1;
        float f = (float)sc->num;
        if (!isfinite(sc->num) || !isfinite(f)) {
            st = at_fail(err, AT_ERR_FORMAT, "%s.pieces[%d] (\"%.64s\") has a non-finite "
                         "score", where, i, js_str(d, s));
            goto done;
        }
        sp->score[i] = f;
        int t = 0;
        for (int k = 1; k <= 6; k++)
            if (strcmp(js_str(d, tn), kTypeNames[k]) == 0) t = k;
        if (!t) {
            st = at_fail(err, AT_ERR_FORMAT, "%s.pieces[%d] has unknown type \"%.32s\"", where,
                         i, js_str(d, tn));
            goto done;
        }
        sp->type[i] = (uint8_t)t;
        int32_t prev = strmap_insert(&dup, i);
        if (prev >= 0) {
            st = at_fail(err, AT_ERR_FORMAT, "%s.pieces[%d]: duplicate piece \"%.64s\" (also "
                         "pieces[%d])", where, i, js_str(d, s), (int)prev);
            goto done;
        }
        if (t == PT_UNKNOWN) {
            if (sp->unk_piece >= 0) {
                st = at_fail(err, AT_ERR_FORMAT, "%s.pieces[%d]: a second unknown piece "
                             "(first is pieces[%d])", where, i, sp->unk_piece);
                goto done;
            }
            sp->unk_piece = i;
        }
        if (t == PT_NORMAL) {
            if (f < sp->min_score) sp->min_score = f;
            if (f > sp->max_score) sp->max_score = f;
        }
        keep[i] = t == PT_NORMAL || t == PT_USER_DEFINED || t == PT_UNUSED;
        ukeep[i] = t == PT_USER_DEFINED;
        if (ukeep[i]) sp->has_user = true;
        int32_t mid = strmap_find(tokmap, js_str(d, s), l);
        sp->model_id[i] = mid >= 0 ? mid : v->unk_id;
    }
    if (sp->unk_piece < 0) {
        st = at_fail(err, AT_ERR_FORMAT, "%s.pieces has no piece of type \"unknown\"", where);
        goto done;
    }
    sp->model_id[sp->unk_piece] = v->unk_id;
    if (!trie_build_from(&sp->pieces, np, sp->piece, sp->piece_len, keep) ||
        (sp->has_user && !trie_build_from(&sp->user, np, sp->piece, sp->piece_len, ukeep))) {
        st = at_fail(err, AT_ERR_NOMEM, "out of memory");
        goto done;
    }
    st = AT_OK;
done:
    free(dup.slot);
    free(keep);
    free(ukeep);
    return st;
}

static at_status vocab_from_doc(const js_doc *d, int expected_vocab_size, at_vocab **out,
                                at_error *err) {
    const js_node *root = js_root(d);
    if (!js_is(root, JS_OBJECT))
        return at_fail(err, AT_ERR_FORMAT, "vocab: top level is not a JSON object");
    const js_node *fmt = get_field(d, root, "format");
    if (!fmt) return at_fail(err, AT_ERR_FORMAT, "vocab: format is missing");
    if (!js_is(fmt, JS_STRING) || strcmp(js_str(d, fmt), "attn-translate-vocab") != 0)
        return at_fail(err, AT_ERR_FORMAT, "vocab: format must be \"attn-translate-vocab\"");
    int version;
    at_status st = get_int(d, root, "vocab: ", "version", 1, 1, &version, err);
    if (st) return st;
    const js_node *tk = get_field(d, root, "tokens");
    if (!tk) return at_fail(err, AT_ERR_FORMAT, "vocab: tokens is missing");
    if (!js_is(tk, JS_ARRAY))
        return at_fail(err, AT_ERR_FORMAT, "vocab: tokens must be an array");
    int nt = (int)tk->count;
    if (nt <= 0) return at_fail(err, AT_ERR_FORMAT, "vocab: tokens is empty");
    if (expected_vocab_size >= 0 && nt != expected_vocab_size)
        return at_fail(err, AT_ERR_FORMAT, "vocab: tokens has %d entries, the model's "
                       "vocab_size is %d", nt, expected_vocab_size);

    at_vocab *v = calloc(1, sizeof *v);
    if (!v) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    v->size = nt;
    v->token_map = calloc(1, sizeof *v->token_map);
    if (!v->token_map) {
        free(v);
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    }
    uint32_t *lens = NULL;
    strmap *tokmap = v->token_map;
    size_t total = 0;
    int i = 0;
    for (const js_node *e = js_child(d, tk); e; e = js_next(d, e), i++) {
        if (!js_is(e, JS_STRING)) {
            st = at_fail(err, AT_ERR_FORMAT, "vocab: tokens[%d] is not a string", i);
            goto fail;
        }
        total += strlen(js_str(d, e)) + 1;
    }
    v->tokens = malloc((size_t)nt * sizeof *v->tokens);
    v->token_blob = malloc(total);
    lens = v->token_len = malloc((size_t)nt * sizeof *lens);
    if (!v->tokens || !v->token_blob || !lens ||
        !strmap_init(tokmap, (size_t)nt, v->tokens, lens)) {
        st = at_fail(err, AT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t off = 0;
    i = 0;
    for (const js_node *e = js_child(d, tk); e; e = js_next(d, e), i++) {
        size_t l = strlen(js_str(d, e));
        if (utf8_check(js_str(d, e), l) != l) {
            st = at_fail(err, AT_ERR_FORMAT, "vocab: tokens[%d] is not valid UTF-8", i);
            goto fail;
        }
        memcpy(v->token_blob + off, js_str(d, e), l + 1);
        v->tokens[i] = v->token_blob + off;
        lens[i] = (uint32_t)l;
        off += l + 1;
        int32_t prev = strmap_insert(tokmap, i);
        if (prev >= 0) {
            st = at_fail(err, AT_ERR_FORMAT, "vocab: tokens[%d]: duplicate token \"%.64s\" "
                         "(also tokens[%d])", i, js_str(d, e), (int)prev);
            goto fail;
        }
    }
    if ((st = get_int(d, root, "vocab: ", "pad_id", 0, nt - 1, &v->pad_id, err)) ||
        (st = get_int(d, root, "vocab: ", "eos_id", 0, nt - 1, &v->eos_id, err)) ||
        (st = get_int(d, root, "vocab: ", "unk_id", 0, nt - 1, &v->unk_id, err)))
        goto fail;
    const js_node *src = get_field(d, root, "source"), *tgt = get_field(d, root, "target");
    if ((st = load_spm(v, &v->sp[0], d, src, "vocab: source", tokmap, err))) goto fail;
    if (tgt && js_same(d, src, tgt)) { /* one SentencePiece model for both sides: built once */
        v->sp[1] = v->sp[0];
        v->shared_spm = true;
    } else if ((st = load_spm(v, &v->sp[1], d, tgt, "vocab: target", tokmap, err))) {
        goto fail;
    }
    *out = v;
    return AT_OK;
fail:
    at_vocab_free(v);
    return st;
}

/* The document parsed, then checked. Not JSON: AT_ERR_FORMAT, *not_json = 1 and
 * *err_at where parsing stopped (the caller words the message). */
static at_status vocab_parse(const char *text, size_t len, int expected_vocab_size,
                             at_vocab **out, int *not_json, size_t *err_at, at_error *err,
                             char **own) {
    js_doc d;
    int rc = js_parse(&d, text, len, err_at);
    if (own) { /* the document holds its own copy of every string: the text goes now */
        free(*own);
        *own = NULL;
    }
    *not_json = rc == -1;
    if (rc == -2) return at_fail(err, AT_ERR_NOMEM, "out of memory");
    if (rc) return AT_ERR_FORMAT;
    at_status st = vocab_from_doc(&d, expected_vocab_size, out, err);
    js_free(&d);
    return st;
}

at_status at_vocab_parse(const char *text, size_t len, int expected_vocab_size, at_vocab **out,
                         at_error *err) {
    if (!out || (!text && len)) return at_fail(err, AT_ERR_ARG, "vocab: invalid argument");
    *out = NULL;
    size_t at = 0;
    int not_json;
    at_status st =
        vocab_parse(text ? text : "", len, expected_vocab_size, out, &not_json, &at, err, NULL);
    if (not_json) return at_fail(err, AT_ERR_FORMAT, "vocab: not valid JSON (near byte %zu)", at);
    return st;
}

at_status at_vocab_from_json(const cJSON *root, int expected_vocab_size, at_vocab **out,
                             at_error *err) {
    if (!out) return at_fail(err, AT_ERR_ARG, "vocab: out is NULL");
    *out = NULL;
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    if (!text) return root ? at_fail(err, AT_ERR_NOMEM, "out of memory")
                           : at_fail(err, AT_ERR_FORMAT, "vocab: top level is not a JSON object");
    at_status st = at_vocab_parse(text, strlen(text), expected_vocab_size, out, err);
    cJSON_free(text);
    return st;
}

at_status at_vocab_load(const char *path, int expected_vocab_size, at_vocab **out,
                        at_error *err) {
    if (!path || !out) return at_fail(err, AT_ERR_ARG, "vocab: invalid argument");
    *out = NULL;
    char *text = NULL;
    size_t len = 0, at = 0;
    at_status st = at_read_file(path, (size_t)64 << 20, &text, &len, err);
    if (st) return st;
    at_error e2 = {AT_OK, ""};
    int not_json;
    st = vocab_parse(text, len, expected_vocab_size, out, &not_json, &at, &e2, &text);
    free(text);
    if (not_json) return at_fail(err, AT_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", path, at);
    if (st) return at_fail(err, st, "%s: %s", path, e2.message);
    return AT_OK;
}

/* test_json.c — lib/json.c (the vocab.json reader) against cJSON on tricky documents and
 * on the real vocabularies: both refuse a text, or both read it to the same document
 * (types, member names and order, strings, numbers bit for bit); and json.c's own
 * contract (node counts, the first of duplicate names, error offsets). */
#define _GNU_SOURCE
#include "../fuzz/jsoncmp.h"
#include "check.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void agree(const char *what, const char *text, size_t len) {
    CHECK(jsoncmp_text(text, len), "json.c and cJSON disagree on %s: %.80s", what, text);
}

static void agree_s(const char *text) { agree(text, text, strlen(text)); }

int main(void) {
    static const char *docs[] = {
        /* numbers: the fast path, strtod, and cJSON's leniency */
        "0", "-0", "1", "-1", "7.25", "0.1", "-3.2145678", "1e5", "1E5", "1e+5", "1e-5", "2.5e-7",
        "-9.183480262756348", "-10.123456789012345", "9007199254740992", "9007199254740993",
        "9007199254740993.0", "18446744073709551615", "123456789012345678901234567890",
        "1e22", "1e23", "4e22", "1.5e-22", "1e-23", "1.7976931348623157e308", "1e309", "-1e309",
        "4.9e-324", "2.2250738585072014e-308", "1e-400", "0.30000000000000004",
        "3.4028234663852886e38", "1.401298464324817e-45", "01", "007", "-007.5", "1.", "1.e5",
        "1.5.3", "1e", "1e+", "1-2", "--1", "-", "+1", ".5", "1x", "[1,2.5,-0,1e3]",
        "[1111111111111111111111111111111111111111111111111111111111111111111111]",
        "[1234567890123456789]", "[12345678901234567890]", "[0.000000000000000000001]",
        "[100000000000000000000000]", "[1e400000]",
        /* literals, arrays, objects */
        "null", "true", "false", "nul", "tru", "[]", "{}", "[ ]", "{ }", "[1,]", "[,1]", "[1 2]",
        "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "{\"a\":1,\"a\":2}", "{\"\":0}",
        "[[[[[[[[[[]]]]]]]]]]", "[{\"x\":[true,false,null]},{\"y\":{}}]",
        /* strings */
        "\"\"", "\"abc\"", "\"a\\\"b\"", "\"\\\\\"", "\"\\/\"", "\"\\b\\f\\n\\r\\t\"", "\"\\x\"",
        "\"\\u0041\\u00e9\\u20ac\"", "\"\\uD83D\\uDE00\"", "\"\\ud83d\\ude00\"", "\"\\uD83D\"",
        "\"\\uDE00\"", "\"\\uD83Dx\"", "\"\\uD83D\\u0041\"", "\"\\u12\"", "\"\\u12G4\"",
        "\"\\u0000abc\"", "\"a\\u0000\"", "\"unterminated", "\"ends in backslash\\",
        "\"caf\xc3\xa9 \xe6\x9d\xb1\"", "\"\xff\xfe bytes\"", "\"tab\there\"",
        /* whitespace, BOM, trailing text */
        "  [1]  ", "\x01\x02[1]", "\xEF\xBB\xBF[1]", "\xEF\xBB[1]", "[1] trailing", "[1]]",
        "{\"a\":1}{", "", " ", "\xEF\xBB\xBF",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) agree_s(docs[i]);
    /* embedded NUL bytes, explicit lengths, cut documents */
    agree("NUL in a string", "[\"a\0b\"]", 7);
    agree("NUL after the value", "[1]\0garbage", 11);
    agree("cut number", "[12345", 3);
    agree("cut string", "\"abcdef\"", 4);
    agree("length 0", "[1]", 0);
    /* nesting: 1000 levels are read, 1001 are not (cJSON's limit) */
    for (int depth = 999; depth <= 1001; depth++) {
        char *b = malloc(2 * (size_t)depth + 1);
        memset(b, '[', (size_t)depth);
        memset(b + depth, ']', (size_t)depth);
        b[2 * depth] = 0;
        agree(depth == 1001 ? "1001 levels" : "deep nesting", b, 2 * (size_t)depth);
        js_doc d;
        size_t at;
        int rc = js_parse(&d, b, 2 * (size_t)depth, &at);
        CHECK((rc == 0) == (depth <= 1000), "depth %d: rc %d", depth, rc);
        if (!rc) js_free(&d);
        free(b);
    }
    /* the contract */
    {
        js_doc d;
        size_t at = 0;
        const char *t = "{\"k\": [1, \"two\", {\"k\": 3}], \"k\": 4, \"s\": \"x\\u00e9\"}";
        CHECK(js_parse(&d, t, strlen(t), &at) == 0, "parse the contract document");
        const js_node *r = js_root(&d), *k = js_get(&d, r, "k"), *s = js_get(&d, r, "s");
        CHECK(js_is(r, JS_OBJECT) && r->count == 3, "root: an object of 3 members");
        CHECK(js_is(k, JS_ARRAY) && k->count == 3, "js_get: the first of two 'k'");
        CHECK(js_is(s, JS_STRING) && !strcmp(js_str(&d, s), "x\xc3\xa9") && s->count == 3,
              "a decoded string and its length");
        CHECK(js_get(&d, k, "k") == NULL && js_get(&d, r, "missing") == NULL,
              "js_get on an array, and a missing name");
        js_free(&d);
        CHECK(js_parse(&d, "[1, 2, x]", 9, &at) == -1 && at == 7, "error offset %zu", at);
    }
    /* the real vocabularies (and cut copies of one) */
    static const char *files[] = {"tests/fixtures/tiny/A/vocab.json", "tests/fixtures/tiny/B/vocab.json",
                                  "models/en-fr/vocab.json", "tests/fixtures/marian-hf/hf/vocab.json",
                                  "tests/fixtures/marian-hf/hf/config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *text = NULL;
        size_t len = 0;
        at_error err;
        CHECK(at_read_file(files[i], (size_t)64 << 20, &text, &len, &err) == AT_OK, "%s", err.message);
        if (!text) continue;
        agree(files[i], text, len);
        if (i == 0)
            for (size_t cut = 1; cut < 4096 && cut < len; cut = cut * 3 + 1) agree("a cut vocabulary", text, len - cut);
        free(text);
    }
    return check_report("test_json");
}

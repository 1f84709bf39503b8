/* test_model.c — the loader accepts the tiny fixture models and rejects every
 * kind of corruption with a specific message, never crashing. */
#define _GNU_SOURCE
#include "attn_translate.h"
#include "check.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *SRC = "tests/fixtures/tiny/A";
static char tmpdir[256];

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    int ok = in && out;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out) ok = fclose(out) == 0 && ok;
    return ok;
}

/* Fresh copy of the fixture model in tmpdir. */
static void reset(void) {
    const char *files[] = {"model.json", "model.bin", "vocab.json"};
    char a[512], b[512];
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "%s/%s", SRC, files[i]);
        snprintf(b, sizeof b, "%s/%s", tmpdir, files[i]);
        if (!copy_file(a, b)) {
            fprintf(stderr, "cannot copy %s\n", a);
            exit(1);
        }
    }
}

static cJSON *read_json(const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "rb");
    if (!f) exit(1);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) exit(1);
    buf[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) exit(1);
    return j;
}

static void write_text(const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    if (!f) exit(1);
    fputs(text, f);
    fclose(f);
}

static void write_json(const char *name, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    write_text(name, s);
    free(s);
    cJSON_Delete(j);
}

static cJSON *tensor(cJSON *root, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "tensors"), name);
}

static void patch_bin(long offset, const void *bytes, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/model.bin", tmpdir);
    FILE *f = fopen(p, "r+b");
    if (!f) exit(1);
    fseek(f, offset, SEEK_SET);
    fwrite(bytes, 1, n, f);
    fclose(f);
}

/* Loads tmpdir as `dtype` and checks the status and that the message contains `want`. */
static void expect_as(const char *what, at_dtype dtype, at_status code, const char *want) {
    at_model *m = NULL;
    at_error err = {0};
    at_status st = at_model_load_dtype(tmpdir, dtype, &m, &err);
    CHECK(st == code, "%s: status %d (%s), expected %d; message: %s", what, st, at_status_str(st),
          code, err.message);
    if (st != AT_OK) {
        CHECK(m == NULL, "%s: model pointer set on failure", what);
        CHECK(strstr(err.message, want) != NULL, "%s: message \"%s\" lacks \"%s\"", what,
              err.message, want);
    }
    at_model_free(m);
    reset();
}

static void expect(const char *what, at_status code, const char *want) {
    expect_as(what, AT_DTYPE_AUTO, code, want);
}

/* Patches one f32 value into tensor `name` at element `at` (tmpdir's model is f32). */
static void patch_weight(const char *name, long at, float v) {
    cJSON *j = read_json("model.json");
    double off = cJSON_GetObjectItem(tensor(j, name), "offset")->valuedouble;
    cJSON_Delete(j);
    patch_bin((long)off + 4 * at, &v, 4);
}

static void set_num(cJSON *obj, const char *key, double v) {
    cJSON_ReplaceItemInObjectCaseSensitive(obj, key, cJSON_CreateNumber(v));
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/at-test-model-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    reset();
    cJSON *j;

    expect("valid model", AT_OK, "");

    /* the directory itself */
    {
        at_model *m = NULL;
        at_error err = {0};
        CHECK(at_model_load("/nonexistent/model", &m, &err) == AT_ERR_IO && m == NULL,
              "missing dir: %s", err.message);
        CHECK(strstr(err.message, "/nonexistent/model") != NULL, "missing dir names it: %s",
              err.message);
        CHECK(at_model_load("tests/check.h", &m, &err) == AT_ERR_IO, "file as dir: %s", err.message);
        CHECK(at_model_load(NULL, &m, &err) == AT_ERR_ARG, "NULL dir");
    }

    /* model.bin */
    {
        char p[512];
        snprintf(p, sizeof p, "%s/model.bin", tmpdir);
        struct stat st;
        stat(p, &st);
        if (truncate(p, st.st_size - 100) != 0) return 1;
        expect("truncated weights", AT_ERR_FORMAT, "truncated");
        if (truncate(p, 0) != 0) return 1;
        expect("empty weights", AT_ERR_FORMAT, "truncated");
        patch_bin(0, "XXXX", 4);
        expect("bad magic", AT_ERR_FORMAT, "bad magic");
        uint32_t v2 = 2;
        patch_bin(8, &v2, 4);
        expect("weights version", AT_ERR_FORMAT, "weights version 2");
        snprintf(p, sizeof p, "%s/model.bin", tmpdir);
        unlink(p);
        expect("missing weights", AT_ERR_IO, "model.bin");
        /* a NaN inside the first tensor's data */
        j = read_json("model.json");
        double off = cJSON_GetObjectItem(tensor(j, "final_logits_bias"), "offset")->valuedouble;
        cJSON_Delete(j);
        float nan = 0.0f / 0.0f;
        patch_bin((long)off + 8, &nan, 4);
        expect("NaN weight", AT_ERR_FORMAT, "non-finite");
    }

    /* --dtype: every dtype loads; conversion checks every weight too */
    {
        static const char *names[] = {"auto", "f32", "f16", "int8"};
        for (int dt = AT_DTYPE_AUTO; dt <= AT_DTYPE_INT8; dt++) {
            char what[64];
            snprintf(what, sizeof what, "valid model as %s", names[dt]);
            expect_as(what, (at_dtype)dt, AT_OK, "");
            CHECK(at_dtype_parse(names[dt]) == dt, "at_dtype_parse(%s)", names[dt]);
            /* a NaN inside a linear layer's weights, an inf in the (tied) embeddings */
            patch_weight("decoder.layers.1.fc2.weight", 37, 0.0f / 0.0f);
            snprintf(what, sizeof what, "NaN in fc2 as %s", names[dt]);
            expect_as(what, (at_dtype)dt, AT_ERR_FORMAT, "decoder.layers.1.fc2.weight");
            patch_weight("shared.weight", 400 * 32 + 5, 1.0f / 0.0f);
            snprintf(what, sizeof what, "inf in the embeddings as %s", names[dt]);
            expect_as(what, (at_dtype)dt, AT_ERR_FORMAT, "non-finite");
        }
        CHECK(at_dtype_parse("f64") == -1 && at_dtype_parse(NULL) == -1, "at_dtype_parse refuses");
        patch_weight("encoder.layers.0.fc1.weight", 3, 1e6f);
        expect_as("f16 overflow", AT_DTYPE_F16, AT_ERR_FORMAT, "overflows f16");
        patch_weight("encoder.layers.0.fc1.weight", 3, 1e6f);
        expect_as("1e6 is fine for int8", AT_DTYPE_INT8, AT_OK, "");
        at_model *m = NULL;
        at_error err = {0};
        CHECK(at_model_load_dtype(tmpdir, (at_dtype)7, &m, &err) == AT_ERR_ARG && m == NULL,
              "unknown dtype: %s", err.message);
        /* scales for a weight that is not i8 */
        j = read_json("model.json");
        cJSON *sc = cJSON_Duplicate(tensor(j, "encoder.layers.0.fc1.bias"), 1);
        cJSON_AddItemToObject(cJSON_GetObjectItem(j, "tensors"), "encoder.layers.0.fc1.weight.scale", sc);
        write_json("model.json", j);
        expect("scales of an f32 weight", AT_ERR_FORMAT, "is not i8");
    }

    /* i8 weights (tests/fixtures/tiny/A8: A with its linear layers stored as i8) */
    SRC = "tests/fixtures/tiny/A8";
    reset();
    {
        at_model *m = NULL;
        at_error err = {0};
        CHECK(at_model_load(tmpdir, &m, &err) == AT_OK && strstr(at_model_compute(m), "int8"),
              "A8 loads and computes in int8: %s", m ? at_model_compute(m) : err.message);
        at_model_free(m);
        expect_as("A8 as f32", AT_DTYPE_F32, AT_OK, "");
        expect_as("A8 as f16", AT_DTYPE_F16, AT_OK, "");
        signed char bad = -128;
        j = read_json("model.json");
        double off = cJSON_GetObjectItem(tensor(j, "decoder.layers.0.fc1.weight"), "offset")->valuedouble;
        cJSON_Delete(j);
        patch_bin((long)off + 11, &bad, 1);
        expect("i8 -128", AT_ERR_FORMAT, "-127..127");
        patch_weight("decoder.layers.0.fc1.weight.scale", 2, -1.0f);
        expect("negative scale", AT_ERR_FORMAT, "finite and >= 0");
        patch_weight("decoder.layers.0.fc1.weight.scale", 2, 0.0f / 0.0f);
        expect_as("NaN scale", AT_DTYPE_F32, AT_ERR_FORMAT, "finite and >= 0");
        j = read_json("model.json");
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(j, "tensors"), "encoder.layers.1.self_attn.k_proj.weight.scale");
        write_json("model.json", j);
        expect("missing scales", AT_ERR_FORMAT, "the scales of i8 tensor 'encoder.layers.1.self_attn.k_proj.weight'");
        j = read_json("model.json");
        cJSON_ReplaceItemInObjectCaseSensitive(tensor(j, "decoder.layers.0.fc1.weight.scale"), "dtype",
                                               cJSON_CreateString("f16"));
        write_json("model.json", j);
        expect("f16 scales", AT_ERR_FORMAT, "must be f32");
        j = read_json("model.json");
        cJSON_ReplaceItemInObjectCaseSensitive(tensor(j, "shared.weight"), "dtype", cJSON_CreateString("i8"));
        write_json("model.json", j);
        expect("i8 embeddings", AT_ERR_FORMAT, "only for the weights of linear layers");
    }
    /* format version 2: packed16 tensors (tests/fixtures/tiny/AP: A rewritten by
     * scripts/pack_model.py; A's d_model is 32 and its vocabulary 500 = 31 * 16 + 4, so
     * the packed tied embedding ends with 12 padding rows) */
    SRC = "tests/fixtures/tiny/AP";
    reset();
    {
        static const char *names[] = {"auto", "f32", "f16", "int8"};
        static const char *isas[] = {"avx2", "scalar"};
        for (int i = 0; i < 2; i++) {
            setenv("ATTN_TRANSLATE_ISA", isas[i], 1); /* packed in place, or unpacked */
            for (int dt = AT_DTYPE_AUTO; dt <= AT_DTYPE_INT8; dt++) {
                char what[96];
                snprintf(what, sizeof what, "packed model as %s (%s)", names[dt], isas[i]);
                expect_as(what, (at_dtype)dt, AT_OK, "");
                patch_weight("decoder.layers.1.fc2.weight", 37, 0.0f / 0.0f);
                snprintf(what, sizeof what, "NaN in packed fc2 as %s (%s)", names[dt], isas[i]);
                expect_as(what, (at_dtype)dt, AT_ERR_FORMAT,
                          "tensor 'decoder.layers.1.fc2.weight' holds a non-finite value");
                patch_weight("shared.weight", 200 * 32 + 5, 1.0f / 0.0f);
                snprintf(what, sizeof what, "inf in the packed embeddings as %s (%s)", names[dt], isas[i]);
                expect_as(what, (at_dtype)dt, AT_ERR_FORMAT, "'shared.weight' holds a non-finite");
                patch_weight("shared.weight", 31 * 32 * 16 + 3 * 16 + 9, 1.0f); /* row 505 */
                snprintf(what, sizeof what, "padding of the packed embeddings as %s (%s)", names[dt], isas[i]);
                expect_as(what, (at_dtype)dt, AT_ERR_FORMAT, "'shared.weight' (packed16) has a nonzero padding byte");
            }
        }
        unsetenv("ATTN_TRANSLATE_ISA");
        patch_weight("encoder.layers.0.fc1.weight", 3, 1e6f);
        expect_as("packed f16 overflow", AT_DTYPE_F16, AT_ERR_FORMAT, "overflows f16");
        j = read_json("model.json");
        cJSON_ReplaceItemInObjectCaseSensitive(tensor(j, "final_logits_bias"), "layout",
                                               cJSON_CreateString("packed16"));
        write_json("model.json", j);
        expect("packed bias", AT_ERR_FORMAT, "'final_logits_bias' cannot be packed16");
        j = read_json("model.json");
        cJSON_ReplaceItemInObjectCaseSensitive(tensor(j, "encoder.layers.0.fc1.weight"), "layout",
                                               cJSON_CreateString("packed32"));
        write_json("model.json", j);
        expect("unknown layout", AT_ERR_FORMAT, "unknown layout");
        j = read_json("model.json");
        cJSON_ReplaceItemInObjectCaseSensitive(tensor(j, "shared.weight"), "layout",
                                               cJSON_CreateString("rows")); /* nbytes is padded */
        write_json("model.json", j);
        expect("packed size as rows", AT_ERR_FORMAT, "has nbytes");
        j = read_json("model.json");
        set_num(j, "version", 1);
        write_json("model.json", j);
        expect("layout in version 1", AT_ERR_FORMAT, "needs format version 2");
        j = read_json("model.json");
        cJSON_AddItemToObject(cJSON_GetObjectItem(j, "tensors"), "lm_head.weight",
                              cJSON_Duplicate(tensor(j, "shared.weight"), 1));
        write_json("model.json", j);
        expect("f32 lm_head in a tied model", AT_ERR_FORMAT, "must be i8 in a model with tied embeddings");
    }
    /* several loading threads: the same model, and the first error in layer order */
    for (int pk = 0; pk < 2; pk++) {
        SRC = pk ? "tests/fixtures/tiny/AP" : "tests/fixtures/tiny/A";
        reset();
        for (int dt = AT_DTYPE_AUTO; dt <= AT_DTYPE_INT8; dt++)
            for (int th = 1; th <= 5; th += 2) {
                at_load_options o = {(at_dtype)dt, th};
                at_model *m = NULL;
                at_error err = {0};
                CHECK(at_model_load_opts(tmpdir, &o, &m, &err) == AT_OK, "%s, dtype %d, %d threads: %s",
                      SRC, dt, th, err.message);
                at_model_free(m);
                patch_weight("decoder.layers.1.fc2.weight", 37, 0.0f / 0.0f);
                patch_weight("encoder.layers.1.self_attn.v_proj.weight", 5, 1.0f / 0.0f);
                patch_weight("encoder.layers.0.fc1.weight", 9, 0.0f / 0.0f);
                m = NULL;
                CHECK(at_model_load_opts(tmpdir, &o, &m, &err) == AT_ERR_FORMAT && !m &&
                          strstr(err.message, "tensor 'encoder.layers.0.fc1.weight' holds a non-finite"),
                      "%s, dtype %d, %d threads: the first bad layer: %s", SRC, dt, th, err.message);
                reset();
                write_text("vocab.json", "{");
                CHECK(at_model_load_opts(tmpdir, &o, &m, &err) == AT_ERR_FORMAT && !m &&
                          strstr(err.message, "vocab.json: not valid JSON"),
                      "%s, %d threads: a bad vocab.json: %s", SRC, th, err.message);
                patch_weight("decoder.layers.1.fc2.weight", 37, 0.0f / 0.0f);
                CHECK(at_model_load_opts(tmpdir, &o, &m, &err) == AT_ERR_FORMAT && !m &&
                          strstr(err.message, "decoder.layers.1.fc2.weight"),
                      "%s, %d threads: weights before vocab.json: %s", SRC, th, err.message);
                reset();
            }
    }
    {
        at_model *m = NULL;
        at_error err = {0};
        CHECK(at_model_load_opts(tmpdir, NULL, &m, &err) == AT_ERR_ARG && !m, "NULL options");
    }
    SRC = "tests/fixtures/tiny/A";
    reset();
    j = read_json("model.json"); /* version 1: no tied lm_head */
    cJSON_AddItemToObject(cJSON_GetObjectItem(j, "tensors"), "lm_head.weight",
                          cJSON_Duplicate(tensor(j, "shared.weight"), 1));
    write_json("model.json", j);
    expect("lm_head in a tied version-1 model", AT_ERR_FORMAT, "unknown tensor 'lm_head.weight'");

    /* packed i8 (A8P: A8 packed, with the int8 form of its tied output projection) */
    SRC = "tests/fixtures/tiny/A8P";
    reset();
    {
        static const char *names[] = {"auto", "f32", "f16", "int8"};
        at_model *m = NULL;
        at_error err = {0};
        CHECK(at_model_load(tmpdir, &m, &err) == AT_OK && strstr(at_model_compute(m), "int8"),
              "A8P loads and computes in int8: %s", m ? at_model_compute(m) : err.message);
        at_model_free(m);
        j = read_json("model.json");
        double fc1 = cJSON_GetObjectItem(tensor(j, "decoder.layers.0.fc1.weight"), "offset")->valuedouble;
        double lm = cJSON_GetObjectItem(tensor(j, "lm_head.weight"), "offset")->valuedouble;
        cJSON_Delete(j);
        signed char bad = -128, one = 1;
        for (int dt = AT_DTYPE_AUTO; dt <= AT_DTYPE_INT8; dt++) {
            char what[96];
            snprintf(what, sizeof what, "A8P as %s", names[dt]);
            expect_as(what, (at_dtype)dt, AT_OK, "");
            patch_bin((long)fc1 + 11, &bad, 1);
            snprintf(what, sizeof what, "packed i8 -128 as %s", names[dt]);
            expect_as(what, (at_dtype)dt, AT_ERR_FORMAT, "holds -128");
            /* block 31 of the [500, 32] i8 lm_head (in4 = 32): byte 0 of row 500 (padding),
             * then -128 in row 497; checked even when f32 / f16 compute does not use it */
            patch_bin((long)lm + 31 * 16 * 32 + 2 * 64 + 4 * 4, &one, 1);
            snprintf(what, sizeof what, "padding of the tied i8 lm_head as %s", names[dt]);
            expect_as(what, (at_dtype)dt, AT_ERR_FORMAT, "'lm_head.weight' (packed16) has a nonzero padding byte");
            patch_bin((long)lm + 31 * 16 * 32 + 64 + 1 * 4 + 2, &bad, 1);
            snprintf(what, sizeof what, "-128 in the tied i8 lm_head as %s", names[dt]);
            expect_as(what, (at_dtype)dt, AT_ERR_FORMAT, "tensor 'lm_head.weight' holds -128 at element 15910");
        }
        patch_weight("lm_head.weight.scale", 7, -2.0f);
        expect_as("negative scale of the tied lm_head", AT_DTYPE_F32, AT_ERR_FORMAT, "finite and >= 0");
        j = read_json("model.json");
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(j, "tensors"), "lm_head.weight.scale");
        write_json("model.json", j);
        expect("missing scales of the tied lm_head", AT_ERR_FORMAT, "the scales of i8 tensor 'lm_head.weight'");
        j = read_json("model.json");
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(j, "tensors"), "lm_head.weight");
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(j, "tensors"), "lm_head.weight.scale");
        write_json("model.json", j);
        expect("no stored lm_head: quantized at load", AT_OK, "");
    }
    SRC = "tests/fixtures/tiny/A";
    reset();

    /* model.json */
    write_text("model.json", "{\"format\": \"attn-translate\", \"version\": 1,");
    expect("bad JSON", AT_ERR_FORMAT, "invalid JSON");
    write_text("model.json", "[1, 2, 3]");
    expect("not an object", AT_ERR_FORMAT, "not a JSON object");
    write_text("model.json", "");
    expect("empty header", AT_ERR_FORMAT, "invalid JSON");

    j = read_json("model.json");
    cJSON_ReplaceItemInObjectCaseSensitive(j, "format", cJSON_CreateString("gguf"));
    write_json("model.json", j);
    expect("wrong format", AT_ERR_FORMAT, "not an attn-translate model header");

    j = read_json("model.json");
    set_num(j, "version", 3);
    write_json("model.json", j);
    expect("future version", AT_ERR_FORMAT, "version 3 is not supported");

    j = read_json("model.json");
    set_num(j, "version", 2); /* model.bin's preamble still says 1 */
    write_json("model.json", j);
    expect("header and preamble versions differ", AT_ERR_FORMAT, "weights version 1, but model.json says version 2");

    j = read_json("model.json");
    cJSON_ReplaceItemInObjectCaseSensitive(j, "architecture", cJSON_CreateString("llama"));
    write_json("model.json", j);
    expect("architecture", AT_ERR_FORMAT, "architecture");

    j = read_json("model.json");
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItem(j, "config"), "d_model");
    write_json("model.json", j);
    expect("missing config field", AT_ERR_FORMAT, "config.d_model is missing");

    j = read_json("model.json");
    set_num(cJSON_GetObjectItem(j, "config"), "encoder_attention_heads", 7);
    write_json("model.json", j);
    expect("heads do not divide", AT_ERR_FORMAT, "not divisible");

    j = read_json("model.json");
    set_num(cJSON_GetObjectItem(j, "config"), "eos_token_id", 1e9);
    write_json("model.json", j);
    expect("eos out of range", AT_ERR_FORMAT, "config.eos_token_id");

    j = read_json("model.json");
    set_num(cJSON_GetObjectItem(j, "config"), "d_model", 2.5);
    write_json("model.json", j);
    expect("fractional", AT_ERR_FORMAT, "config.d_model must be an integer");

    j = read_json("model.json");
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItem(j, "config"), "activation_function",
                                           cJSON_CreateString("tanh"));
    write_json("model.json", j);
    expect("activation", AT_ERR_FORMAT, "activation_function");

    j = read_json("model.json");
    cJSON *fc1 = tensor(j, "decoder.layers.0.fc1.weight");
    cJSON *shape = cJSON_GetObjectItem(fc1, "shape");
    int rows = cJSON_GetArrayItem(shape, 0)->valueint, cols = cJSON_GetArrayItem(shape, 1)->valueint;
    cJSON_ReplaceItemInArray(shape, 0, cJSON_CreateNumber(rows + 1));
    write_json("model.json", j);
    {
        char want[128];
        snprintf(want, sizeof want,
                 "tensor 'decoder.layers.0.fc1.weight' has shape [%d,%d], expected [%d,%d]",
                 rows + 1, cols, rows, cols);
        expect("wrong shape", AT_ERR_FORMAT, want);
    }

    j = read_json("model.json");
    cJSON_ReplaceItemInObjectCaseSensitive(tensor(j, "decoder.layers.0.fc1.weight"), "shape",
                                           cJSON_CreateString("big"));
    write_json("model.json", j);
    expect("shape not an array", AT_ERR_FORMAT, "not an array");

    j = read_json("model.json");
    cJSON *w = cJSON_GetObjectItem(j, "weights");
    set_num(tensor(j, "final_logits_bias"), "offset",
            cJSON_GetObjectItem(w, "bytes")->valuedouble);
    write_json("model.json", j);
    expect("offset past the end", AT_ERR_FORMAT, "past the end");

    j = read_json("model.json");
    set_num(tensor(j, "final_logits_bias"), "offset", 1e18);
    write_json("model.json", j);
    expect("huge offset", AT_ERR_FORMAT, "final_logits_bias");

    j = read_json("model.json");
    cJSON *fb = tensor(j, "final_logits_bias");
    set_num(fb, "offset", cJSON_GetObjectItem(fb, "offset")->valuedouble + 4);
    write_json("model.json", j);
    expect("misaligned", AT_ERR_FORMAT, "multiple of 64");

    j = read_json("model.json");
    cJSON *a = tensor(j, "encoder.layers.0.fc1.bias"), *b = tensor(j, "encoder.layers.0.fc2.bias");
    set_num(b, "offset", cJSON_GetObjectItem(a, "offset")->valuedouble);
    write_json("model.json", j);
    expect("overlap", AT_ERR_FORMAT, "overlap");

    j = read_json("model.json");
    fb = tensor(j, "final_logits_bias");
    set_num(fb, "nbytes", cJSON_GetObjectItem(fb, "nbytes")->valuedouble - 4);
    write_json("model.json", j);
    expect("nbytes", AT_ERR_FORMAT, "has nbytes");

    j = read_json("model.json");
    cJSON_ReplaceItemInObjectCaseSensitive(tensor(j, "final_logits_bias"), "dtype",
                                           cJSON_CreateString("q4"));
    write_json("model.json", j);
    expect("dtype", AT_ERR_FORMAT, "dtype \"q4\"");

    j = read_json("model.json");
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItem(j, "tensors"),
                                            "encoder.layers.1.final_layer_norm.bias");
    write_json("model.json", j);
    expect("missing tensor", AT_ERR_FORMAT,
           "tensor 'encoder.layers.1.final_layer_norm.bias' is missing");

    j = read_json("model.json");
    cJSON_AddItemToObject(cJSON_GetObjectItem(j, "tensors"), "encoder.layers.9.fc1.weight",
                          cJSON_Duplicate(tensor(j, "final_logits_bias"), 1));
    write_json("model.json", j);
    expect("unknown tensor", AT_ERR_FORMAT, "unknown tensor 'encoder.layers.9.fc1.weight'");

    j = read_json("model.json");
    cJSON_AddItemToObject(cJSON_GetObjectItem(j, "tensors"), "final_logits_bias",
                          cJSON_Duplicate(tensor(j, "final_logits_bias"), 1));
    write_json("model.json", j);
    expect("duplicate tensor", AT_ERR_FORMAT, "appears twice");

    j = read_json("model.json");
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItem(j, "weights"), "file",
                                           cJSON_CreateString("../../etc/passwd"));
    write_json("model.json", j);
    expect("weights path", AT_ERR_FORMAT, "plain file name");

    j = read_json("model.json");
    set_num(cJSON_GetObjectItem(j, "config"), "vocab_size",
            cJSON_GetObjectItem(cJSON_GetObjectItem(j, "config"), "vocab_size")->valuedouble + 1);
    write_json("model.json", j);
    expect("vocab size vs shapes", AT_ERR_FORMAT, "shape");

    /* vocab.json */
    write_text("vocab.json", "{\"format\": \"attn-translate-vocab\", ");
    expect("vocab bad JSON", AT_ERR_FORMAT, "vocab.json");
    j = read_json("vocab.json");
    cJSON_DeleteItemFromArray(cJSON_GetObjectItem(j, "tokens"), 3);
    write_json("vocab.json", j);
    expect("vocab size", AT_ERR_FORMAT, "vocab.json");

    return check_report("test_model");
}

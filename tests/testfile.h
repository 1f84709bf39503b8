/* testfile.h — reading fixture files in the C tests. */
#ifndef AT_TESTFILE_H
#define AT_TESTFILE_H
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

/* The whole file, NUL-terminated (caller frees), its length in *len if len is not
 * NULL; NULL if it cannot be read. */
static inline char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

/* The file parsed as JSON (caller frees with cJSON_Delete), or NULL. */
static inline cJSON *load_json(const char *path) {
    char *s = read_file(path, NULL);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    return j;
}
#endif

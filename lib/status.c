/* status.c — result codes, error messages and small file helpers. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *at_status_str(at_status code) {
    switch (code) {
    case AT_OK: return "ok";
    case AT_ERR_IO: return "I/O error";
    case AT_ERR_FORMAT: return "malformed model file";
    case AT_ERR_NOMEM: return "out of memory";
    case AT_ERR_ARG: return "invalid argument";
    case AT_ERR_INPUT: return "invalid input";
    case AT_ERR_TOO_LONG: return "input too long";
    }
    return "unknown status";
}

at_status at_fail(at_error *err, at_status code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

at_status at_read_file(const char *path, size_t max_bytes, char **out, size_t *len,
                       at_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return at_fail(err, AT_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > max_bytes + 1) ncap = max_bytes + 1;
            if (ncap <= n) {
                free(buf);
                fclose(f);
                return at_fail(err, AT_ERR_FORMAT, "%s: larger than %zu bytes", path,
                               max_bytes);
            }
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return at_fail(err, AT_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return at_fail(err, AT_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return AT_OK;
}

/* internal.h — declarations shared inside lib/, not installed. */
#ifndef AT_INTERNAL_H
#define AT_INTERNAL_H

#include "attn_translate.h"

#if defined(__GNUC__)
#define AT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define AT_PRINTF(a, b)
#endif

/* Fills `err` (may be NULL) with `code` and a formatted message; returns `code`. */
at_status at_fail(at_error *err, at_status code, const char *fmt, ...) AT_PRINTF(3, 4);

/* Reads a whole file into a NUL-terminated heap buffer (caller frees).
 * Refuses files larger than `max_bytes`. */
at_status at_read_file(const char *path, size_t max_bytes, char **out, size_t *len,
                       at_error *err);

/* IEEE half → float, exact; float → half, round to nearest even, overflow to ±inf
 * (model.c). */
float at_half_to_float(uint16_t h);
uint16_t at_float_to_half(float f);

#endif

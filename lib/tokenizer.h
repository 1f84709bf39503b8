/* tokenizer.h — SentencePiece unigram tokenizer and vocab.json loader (private).
 *
 * Reproduces SentencePiece's encoder (normalizer + Viterbi segmentation of
 * unigram_model.cc, EncodeOptimized) from the vocab.json document described in
 * docs/FORMAT.md. An at_vocab is immutable after loading and safe to share between
 * threads: every encode/decode call allocates its own scratch memory.
 */
#ifndef AT_TOKENIZER_H
#define AT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "attn_translate.h"

typedef struct at_vocab at_vocab;

/* Parses a vocab.json document text[0, len) (json.h: what cJSON accepts, without a
 * malloc per value) and validates everything: format/version, a tokens array of
 * expected_vocab_size strings (pass -1 to skip the size check), special ids in range,
 * piece types, normalizer name, finite scores, no duplicate pieces within one SPM. On
 * success *out owns a new vocab (release with at_vocab_free). Errors are
 * AT_ERR_FORMAT (message names the field) or AT_ERR_NOMEM. */
at_status at_vocab_parse(const char *text, size_t len, int expected_vocab_size, at_vocab **out,
                         at_error *err);

/* The same for a document already parsed by cJSON (borrowed, not kept): printed, then
 * parsed by at_vocab_parse. For tests that edit documents. */
at_status at_vocab_from_json(const cJSON *root, int expected_vocab_size, at_vocab **out,
                             at_error *err);

/* Reads and parses the vocab.json file at `path` (at most 64 MiB); errors name the
 * file. */
at_status at_vocab_load(const char *path, int expected_vocab_size, at_vocab **out,
                        at_error *err);

/* Releases the vocab. Accepts NULL. */
void at_vocab_free(at_vocab *v);

/* Number of model ids (length of `tokens`). */
int at_vocab_size(const at_vocab *v);

/* The special ids; each output pointer may be NULL. */
void at_vocab_special(const at_vocab *v, int *pad, int *eos, int *unk);

/* Borrowed token text of model id `id`, valid while the vocab lives; NULL if out of
 * range. */
const char *at_vocab_token(const at_vocab *v, int32_t id);

/* Encodes `len` bytes of UTF-8 `text` with the `source` SPM: normalize, Viterbi
 * segmentation, pieces -> model ids via `tokens` (missing -> unk_id; runs of unknown
 * characters become one unk, as in SentencePiece). No eos is appended. Writes up to
 * `cap` ids to `ids` (caller-owned; may be NULL when cap is 0) and the full count to
 * *n. AT_ERR_TOO_LONG if cap was too small (ids then holds the first cap ids);
 * AT_ERR_INPUT on invalid UTF-8 (the message gives the byte offset). */
at_status at_vocab_encode(const at_vocab *v, const char *text, size_t len, int32_t *ids,
                          size_t cap, size_t *n, at_error *err);

/* Called once per piece, in order: `piece` (not NUL-terminated, borrowed for the
 * call) is the normalized piece text as `spm_encode --output_format=piece` prints it,
 * `id` its model id. */
typedef void (*at_piece_fn)(void *ctx, const char *piece, size_t piece_len, int32_t id);

/* Same segmentation as at_vocab_encode with the SPM selected by `which` (0 = source,
 * 1 = target), reporting each piece through `fn`. */
at_status at_vocab_encode_pieces(const at_vocab *v, int which, const char *text,
                                 size_t len, at_piece_fn fn, void *ctx, at_error *err);

/* Detokenizes `n` model ids per FORMAT.md: eos and pad are skipped, unk renders as
 * " \u2047 " (like spm_decode), U+2581 becomes a space and the leading space of the
 * first piece is removed. Writes a NUL-terminated string of at most `cap` bytes
 * (including the NUL) to `out` (caller-owned; may be NULL when cap is 0); *out_len
 * gets the full length without the NUL. AT_ERR_TOO_LONG if it did not fit (out then
 * holds a truncated, NUL-terminated prefix when cap > 0); AT_ERR_ARG for an id out
 * of range. */
at_status at_vocab_decode(const at_vocab *v, const int32_t *ids, size_t n, char *out,
                          size_t cap, size_t *out_len, at_error *err);

/* at_vocab_decode, where subst[i] (when subst and subst[i] are not NULL, and ids[i] is
 * unk_id) is written in place of " \u2047 " as if it were that position's piece text
 * (NUL-terminated, U+2581 becoming a space): the source text of an unknown piece,
 * copied through. subst and its strings are borrowed. */
at_status at_vocab_decode_subst(const at_vocab *v, const int32_t *ids, size_t n,
                                const char *const *subst, char *out, size_t cap,
                                size_t *out_len, at_error *err);

/* Debug/test helper: writes the normalized form of `text` (what the segmenter sees,
 * U+2581 for spaces) using SPM `which`, into a malloc'ed NUL-terminated buffer
 * (*out, caller frees) of length *out_len. `use_charsmap` 0 forces the built-in
 * (utf8proc) rules even when the vocab carries a precompiled charsmap. */
at_status at_vocab_normalize(const at_vocab *v, int which, int use_charsmap,
                             const char *text, size_t len, char **out, size_t *out_len,
                             at_error *err);

#endif

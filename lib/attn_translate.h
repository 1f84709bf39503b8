/*
 * attn_translate.h — the public API of libattn-translate, an English→French
 * Transformer (Marian / OPUS-MT architecture) inference engine.
 *
 * Objects:
 *   at_model    immutable weights, config and tokenizer, loaded from a model
 *               directory (docs/FORMAT.md). Thread-safe to share read-only.
 *   at_session  per-thread mutable state: activations, KV caches, beams and the
 *               last result. One session translates one line at a time.
 *
 * Conventions:
 *   - Every function that can fail returns an at_status; on failure it fills the
 *     optional at_error (message names the problem) and leaves outputs untouched.
 *   - The library never prints and never exits.
 *   - Ownership is stated on each function. Pointers inside an at_result belong to
 *     the session and stay valid until the next at_translate() on that session or
 *     at_session_free().
 */
#ifndef ATTN_TRANSLATE_H
#define ATTN_TRANSLATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AT_VERSION_STRING "0.1.0"

/* Result codes. at_status_str() turns one into a constant string. */
typedef enum at_status {
    AT_OK = 0,
    AT_ERR_IO = 1,          /* a file could not be opened, read or mapped */
    AT_ERR_FORMAT = 2,      /* a model or vocab file is malformed or inconsistent */
    AT_ERR_NOMEM = 3,       /* an allocation failed */
    AT_ERR_ARG = 4,         /* an argument is out of range */
    AT_ERR_INPUT = 5,       /* the input text is not valid UTF-8 */
    AT_ERR_TOO_LONG = 6     /* the input is longer than the model accepts */
} at_status;

/* A status plus a human-readable message. Functions taking `at_error *err`
 * accept NULL. The message is NUL-terminated and owned by the struct. */
typedef struct at_error {
    at_status code;
    char message[512];
} at_error;

/* Returns a static string describing `code`; never NULL. */
const char *at_status_str(at_status code);

/* ---- model ------------------------------------------------------------ */

typedef struct at_model at_model;

/* Hyper-parameters as read from model.json (docs/FORMAT.md). */
typedef struct at_config {
    int vocab_size, d_model;
    int encoder_layers, decoder_layers;
    int encoder_heads, decoder_heads;
    int encoder_ffn_dim, decoder_ffn_dim;
    int max_positions;
    int scale_embedding, shared_embeddings, tied_lm_head;
    int pad_id, eos_id, unk_id, decoder_start_id;
    float layer_norm_eps;
    char activation[16];     /* "swish", "relu" or "gelu" */
    /* generation defaults */
    int num_beams, max_length;
    float length_penalty;
} at_config;

/* Loads the model directory `dir`. On success *out owns the model; release it
 * with at_model_free(). The weights file is memory-mapped read-only. */
at_status at_model_load(const char *dir, at_model **out, at_error *err);

/* How the weights of the linear layers are held and multiplied. */
typedef enum at_dtype {
    AT_DTYPE_AUTO = 0, /* = AT_DTYPE_F32 */
    AT_DTYPE_F32,      /* float32 (f16 files widened): the reference arithmetic */
    AT_DTYPE_F16,      /* IEEE half weights, float32 arithmetic: half the memory */
    AT_DTYPE_INT8      /* int8 weights with a scale per output row, activations
                          quantized per row at run time, exact int32 sums: a quarter */
} at_dtype;

/* at_model_load() with a choice of weight dtype. Embeddings, layer norms and biases
 * stay float32. f16 files used as f16 are read in place; every other conversion
 * happens once, here. Gives AT_ERR_ARG for an unknown dtype and AT_ERR_FORMAT for a
 * weight that f16 cannot hold. Ownership as for at_model_load(). */
at_status at_model_load_dtype(const char *dir, at_dtype dtype, at_model **out, at_error *err);

/* How to load: at_model_load_opts(). */
typedef struct at_load_options {
    at_dtype dtype; /* as for at_model_load_dtype() */
    int threads;    /* threads that check and convert the weights and read vocab.json
                       meanwhile (<= 1: the calling thread only); all are joined before
                       the call returns, and the model does not depend on their number */
} at_load_options;

/* at_model_load_dtype() with options; at_model_load_dtype() is this with threads 1. */
at_status at_model_load_opts(const char *dir, const at_load_options *opts, at_model **out,
                             at_error *err);

/* Parses "f32", "f16", "int8" (or "auto"); returns -1 for anything else. */
int at_dtype_parse(const char *name);

/* Describes how `model` computes, e.g. "int8, avx512-vnni kernels". Static or
 * model-owned string, valid while the model lives. */
const char *at_model_compute(const at_model *model);

/* Releases everything the model owns. Accepts NULL. All sessions created from
 * the model must be freed first. */
void at_model_free(at_model *model);

/* Borrowed pointer to the model's config, valid while the model lives. */
const at_config *at_model_config(const at_model *model);

/* ---- tokenizer ---------------------------------------------------------- */

/* Tokenizes `len` bytes of UTF-8 `text` with the model's source SentencePiece model
 * into model ids (no eos appended). Writes at most `cap` ids to `ids` and the full
 * count to *n_ids; returns AT_ERR_TOO_LONG if cap was too small (ids then holds the
 * first cap ids). Invalid UTF-8 gives AT_ERR_INPUT. Caller owns `ids`. */
at_status at_tokenize(const at_model *model, const char *text, size_t len,
                      int32_t *ids, size_t cap, size_t *n_ids, at_error *err);

/* Detokenizes `n` model ids into `out` (NUL-terminated, at most `cap` bytes with
 * the NUL). *out_len gets the length without the NUL that the full text needs;
 * returns AT_ERR_TOO_LONG if it did not fit. Caller owns `out`. */
at_status at_detokenize(const at_model *model, const int32_t *ids, size_t n,
                        char *out, size_t cap, size_t *out_len, at_error *err);

/* Borrowed piece text of model id `id` (NULL if out of range). */
const char *at_token_text(const at_model *model, int32_t id);

/* ---- translation ---------------------------------------------------------- */

/* Decoding options; start from at_default_options(). */
typedef struct at_options {
    int beam_size;            /* 1 = greedy; >= 1 */
    int n_best;               /* hypotheses returned, 1..beam_size */
    float length_penalty;     /* score = sum(log p) / length^length_penalty */
    float max_length_factor;  /* max target tokens = factor * source tokens + extra, */
    int max_length_extra;     /*   capped by the model's max_length and positions */
    int max_input_tokens;     /* longer inputs give AT_ERR_TOO_LONG; <= max positions */
    int attention_layer;      /* -1: no attention capture (default); otherwise the decoder
                                 layer (0-based) whose cross-attention is returned */
    int no_scores;            /* 1 with beam_size 1: each step takes the argmax of the
                                 logits without normalizing them (the same tokens, one
                                 pass over the vocabulary instead of three), and the
                                 hypothesis's score and logprob are NaN (an empty line's
                                 stay 0: it needs no model). 0 (default): scored.
                                 Ignored when beam_size > 1. */
    int replace_unknowns;     /* 1: a generated unknown token (unk_id) is written, in the
                                 hypothesis' text, as the source text of the unknown source
                                 piece that the last decoder layer's cross-attention, summed
                                 over heads, weighs most at that step (a character the
                                 vocabulary lacks, such as "£" or "ã", is copied through, as
                                 CTranslate2's replace_unknowns does). Only unknown source
                                 pieces are candidates: without one, " \u2047 " stays. The
                                 ids, scores and attention are unchanged. 0 (default): the
                                 unknown token is written " \u2047 ", as spm_decode does. */
} at_options;

/* Defaults from the model's generation config (beam, capped at 64; length penalty) and
 * factor 2.0, extra 10, max input = max positions. Returned by value. */
at_options at_default_options(const at_model *model);

typedef struct at_hypothesis {
    const int32_t *ids;   /* generated ids, eos excluded */
    int n_ids;
    const char *text;     /* detokenized translation */
    float score;          /* length-normalised log-probability used for ranking */
    float logprob;        /* sum of token log-probabilities, eos included */
    /* Cross-attention of options.attention_layer, NULL when not captured:
     * (attn_heads, attn_rows, n_src) row-major; row r is the distribution over
     * source positions when target token r was produced (r = n_ids is the eos
     * row when the hypothesis ended with eos). Each row sums to 1. */
    const float *attention;
    int attn_rows;
    int length;           /* tokens the score is normalised by: n_ids, plus 1 when it
                             ended with eos (score = logprob / length^length_penalty) */
} at_hypothesis;

typedef struct at_result {
    const int32_t *src_ids;   /* source ids including the final eos */
    int n_src;
    const at_hypothesis *hyps; /* best first */
    int n_hyps;
    int attn_heads;           /* heads in each hypothesis' attention (0 if none) */
} at_result;

typedef struct at_session at_session;

/* Creates a session for `model` (borrowed: it must outlive the session). Buffers
 * grow at the start of a translation when a longer input arrives, never during
 * decoding. Release with at_session_free(). */
at_status at_session_new(const at_model *model, at_session **out, at_error *err);

/* How a session computes: at_session_new_opts(). */
typedef struct at_session_options {
    int threads; /* threads one translation may use: the calling thread plus threads - 1
                    helpers that the session starts and keeps, asleep when idle, until
                    at_session_free(); <= 1: the calling thread alone. The helpers split
                    the matrix products by output columns, so results do not depend on
                    the number. Where a helper cannot be started, the session computes
                    on the calling thread (at_session_set_threads() then returns 1). */
} at_session_options;

#define AT_SESSION_THREADS_MAX 256

/* at_session_new() with options (NULL: the defaults, one thread). AT_ERR_ARG for more
 * than AT_SESSION_THREADS_MAX threads. Ownership as for at_session_new(). */
at_status at_session_new_opts(const at_model *model, const at_session_options *opts,
                              at_session **out, at_error *err);

/* Sets how many of its threads the session's next translations use, clamped to
 * [1, the threads it has], and returns that number. For a caller that runs several
 * sessions at once, one per core, and one session alone at other times. */
int at_session_set_threads(at_session *session, int threads);

/* Releases the session, its helper threads and the last result. Accepts NULL. */
void at_session_free(at_session *session);

/* Translates one line (`len` bytes of UTF-8, no newline handling: callers split
 * lines). An empty or whitespace-only line yields one empty hypothesis. `opts`
 * may be NULL for the defaults. *result borrows session memory (see above).
 * AT_OK always comes with at least one hypothesis; AT_ERR_INPUT (invalid UTF-8),
 * AT_ERR_TOO_LONG, or AT_ERR_FORMAT when the model computes non-finite scores for
 * this line (weights whose products overflow float). */
at_status at_translate(at_session *session, const char *text, size_t len,
                       const at_options *opts, at_result *result, at_error *err);

/* Translates n lines together: their tokens are stacked so every matrix product
 * covers the whole batch, and a finished line leaves the batch. Line i's result
 * goes to results[i] and its own status to statuses[i] (AT_ERR_INPUT,
 * AT_ERR_TOO_LONG... with the message in errors[i] when `errors` is not NULL); the
 * return value is AT_OK unless the whole batch failed (bad options, memory).
 * Results borrow session memory until the next call, as with at_translate().
 * Output is the same as translating each line alone, up to float rounding in the
 * matrix products (which can only matter at exact ties). */
at_status at_translate_batch(at_session *session, int n, const char *const *texts,
                             const size_t *lens, const at_options *opts, at_result *results,
                             at_status *statuses, at_error *errors, at_error *err);

#ifdef __cplusplus
}
#endif
#endif /* ATTN_TRANSLATE_H */

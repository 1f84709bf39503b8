/* gemm.h — the products of linear layers, for each weight dtype. Private to lib/.
 *
 * f32   with AVX2: weights repacked once at load ([out/16][in][16], below) and
 *       multiplied by an FMA kernel that broadcasts activations, 6 rows x 16 outputs
 *       per tile, so no call pays OpenBLAS's per-call packing; without AVX2 OpenBLAS
 *       sgemm / sgemv on the weights as loaded.
 * f16   the same packed kernel on half weights widened by F16C as they are loaded
 *       (half the memory traffic); without AVX2, 256 weight rows at a time widened
 *       into scratch for sgemm.
 * int8  weights quantized per output row (w ≈ q · scale, |q| ≤ 127), activations
 *       quantized per input row the same way at run time, products accumulated
 *       exactly in int32, then y = acc · (scale_x · scale_w) + b. Because the integer
 *       part is exact, every kernel (AVX-512 VNNI, AVX2, scalar) gives bit-identical
 *       output, and a row's output does not depend on the other rows of the batch.
 *
 * int8 packed layout: the (out, in) matrix is padded to out16 = out rounded up to
 * 16 and in4 = in rounded up to 4 (with zeros) and stored as
 *     [out16 / 16][in4 / 4][16 output rows][4 consecutive inputs]
 * so one 64-byte load holds 4 inputs of 16 outputs — the operand of one VNNI
 * vpdpbusd against 4 broadcast activation bytes. */
#ifndef AT_GEMM_H
#define AT_GEMM_H

#include "model.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { GEMM_SCALAR = 0, GEMM_AVX2 = 1, GEMM_AVX512 = 2 } gemm_isa;

/* The best kernels this CPU runs, lowered by the environment variable
 * ATTN_TRANSLATE_ISA=scalar|avx2|avx512 (for tests and comparisons). */
gemm_isa gemm_detect_isa(void);
const char *gemm_isa_name(gemm_isa isa);

static inline int gemm_pad16(int n) { return (n + 15) & ~15; }
static inline int gemm_pad4(int n) { return (n + 3) & ~3; }

/* Bytes of the packed int8 form of an (out, in) matrix. */
size_t gemm_q8_bytes(int out, int in);

/* Quantizes W (out, in) row by row into `q` (gemm_q8_bytes), scale and qsum
 * (gemm_pad16(out) each; padding rows get scale 0), with the kernels of `isa` (the
 * bytes do not depend on it). Caller owns all buffers. Returns 0, or -1 when out of
 * memory for a 16-row scratch block. */
int gemm_q8_pack(gemm_isa isa, const float *W, int out, int in, int8_t *q, float *scale,
                 int32_t *qsum);

/* One 16-row block of gemm_q8_pack: rows W[0, nr) (nr <= 16) quantized into the packed
 * block `blk` (16 * pad4(in) bytes), scale[0, 16) and qsum[0, 16) (padding rows: scale 0,
 * q 0). `rows` is scratch of 16 * pad4(in) bytes. The bytes do not depend on `isa`. */
void gemm_q8_pack_block(gemm_isa isa, const float *W, int nr, int in, int8_t *blk, float *scale,
                        int32_t *qsum, int8_t *rows);

/* The same block quantized from the packed16 f32 layout P ([in][16], padding lanes 0):
 * the same bytes, scales and sums as gemm_q8_pack_block on the 16 rows. */
void gemm_q8_pack_block_packed(gemm_isa isa, const float *P, int in, int8_t *blk, float *scale,
                               int32_t *qsum);

/* Packs int8 weights already quantized, as an i8 model file stores them (row-major,
 * |w| <= 127, with per-row scales), one block: rows W[0, nr), scales wscale[0, nr). */
void gemm_q8_pack_rows_block(const int8_t *W, const float *wscale, int nr, int in, int8_t *blk,
                             float *scale, int32_t *qsum);

/* Checks one packed int8 block read from a file (rows [0, nr) real, the rest padding):
 * no byte is -128 and every padding byte (rows past nr, inputs past in) is 0. Sets
 * qsum[0, 16). Returns -1, or the offset in the block of the first bad byte. */
long gemm_q8_check_block(gemm_isa isa, const int8_t *blk, int nr, int in, int32_t *qsum);

/* Index of the first NaN or infinity in p[0, n) (f32 or IEEE half bits), or n. */
size_t gemm_first_nonfinite(gemm_isa isa, const float *p, size_t n);
size_t gemm_first_nonfinite_half(gemm_isa isa, const uint16_t *h, size_t n);

/* IEEE half to float, exactly (F16C where the CPU has it). */
void gemm_widen(gemm_isa isa, const uint16_t *h, size_t n, float *out);

/* Rounds n finite floats to IEEE half (nearest even; F16C where the CPU has it, the
 * same bits as at_float_to_half). Returns the index of the first value that
 * overflowed to infinity, or n. */
size_t gemm_to_half(gemm_isa isa, const float *f, size_t n, uint16_t *h);

/* Packed f32 / f16 weights for the AVX2 kernels: (out, in) padded to out16 rows and
 * stored as [out16 / 16][in][16], so each step over k reads 16 consecutive outputs'
 * weights. Elements of the packed form; the packers zero the padding. */
size_t gemm_packed_elems(int out, int in);
void gemm_pack_f32(const float *W, int out, int in, float *p);
void gemm_pack_f16(const uint16_t *H, int out, int in, uint16_t *p);

/* Scratch for one product: quantized activations and widened f16 blocks.
 * Owned by the session; sized by gemm_scratch_size(). */
typedef struct gemm_scratch {
    int8_t *xq;    /* (rows, pad4(in_max)) */
    float *xs;     /* (rows) */
    float *wide;   /* (GEMM_WIDE_ROWS, in_max) */
    struct at_pool *pool; /* the session's helper threads (NULL: none); borrowed */
    int threads;          /* threads a product may use, pool's included (<= 1: the caller) */
    double split_ns;      /* split products estimated to take this long or more (below) */
} gemm_scratch;

#define GEMM_WIDE_ROWS 256

/* Sizes of the three scratch arrays for `rows` rows of at most `in_max` inputs. */
void gemm_scratch_size(int rows, int in_max, size_t *xq_bytes, size_t *xs_floats,
                       size_t *wide_floats);

/* A product is split by output columns over ws->pool when its estimated time on one
 * core, weight bytes at 100 GB/s plus multiply-adds at 50 per ns (f32, f16) or 200
 * (int8), is at least ws->split_ns: sessions use GEMM_SPLIT_NS, below which handing
 * half to a helper (about a microsecond of cache-line traffic) costs more than it saves,
 * or the environment variable ATTN_TRANSLATE_SPLIT_NS (tests set 0: split everything). */
#ifndef GEMM_SPLIT_NS
#define GEMM_SPLIT_NS 4000.0
#endif

/* y[M, L->out] = x[M, L->in] · Wᵀ + b with the model's weight dtype and kernels. With
 * the packed or int8 kernels, a product worth it (GEMM_SPLIT_NS) is split by output
 * blocks over ws->pool; y is the same bit for bit with or without it. */
void gemm_linear(const at_model *m, const at_lin *L, const float *x, int M, float *y,
                 const gemm_scratch *ws);

/* The int8 product on its own, for tests: kernels of `isa` on x quantized per row. */
void gemm_q8_linear(gemm_isa isa, const at_lin *L, const float *x, int M, float *y,
                    const gemm_scratch *ws);

#endif

/* nn.h — numeric kernels: layer norm, activations, softmax.
 * All matrices are row-major float32. Private to lib/. */
#ifndef AT_NN_H
#define AT_NN_H

#include "model.h"

/* x[M,d] = LayerNorm(x + r) with weight/bias; r may be NULL. */
void nn_add_layernorm(float *x, const float *r, int M, int d, const at_ln *ln, float eps, int isa);

/* Σ a[i]·b[i] over n floats; y[i] += a·x[i]. */
float nn_dot(const float *a, const float *b, int n, int isa);
void nn_axpy(float *y, float a, const float *x, int n, int isa);

/* One head of attention for one query, S >= 1 keys of n floats: key and value t are
 * K + off[t] and V + off[t] (off NULL: t * stride). p[t] = softmax_t(q·key_t) (S floats,
 * kept for the caller), out[n] = Σ_t p[t] value_t. */
void nn_attend(const float *q, const float *K, const float *V, const size_t *off, size_t stride,
               int S, int n, float *p, float *out, int isa);

/* nn_attend for H heads of n floats at once, with the same results bit for bit: head h
 * is q + h·n over keys K + off[t] + h·n and values V + off[t] + h·n (off NULL: t · stride
 * for off[t]); p gets H rows of S floats, out H·n floats. Each key row is read whole (all
 * heads) in one pass, not once per head. */
void nn_attend_heads(const float *q, const float *K, const float *V, const size_t *off,
                     size_t stride, int S, int n, int H, float *p, float *out, int isa);

/* The first index in [i, n) with x[index] > thr (NaN never is), or n. */
int nn_next_above(const float *x, int i, int n, float thr, int isa);

/* The first index of the largest of n >= 1 values, or -1 when one of them is NaN or the
 * largest is not finite (the cases where the log-sum-exp is not finite either). */
int nn_argmax(const float *x, int n, int isa);

/* In-place activation over n values. */
void nn_activate(float *x, size_t n, at_activation act, int isa);

/* In-place softmax over n values; returns nothing, rows sum to 1. */
void nn_softmax(float *x, int n, int isa);

/* log-sum-exp of n values in double precision (values may be -inf, not all). */
double nn_logsumexp(const float *x, int n, int isa);

/* e^x through the kernels of `isa` (gemm_isa), for tests. */
float nn_exp_test(float x, int isa);

#endif

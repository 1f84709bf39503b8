/* nn.c — numeric kernels besides the matrix products (gemm.c): straight loops the
 * compiler vectorises. */
#include "nn.h"

#include <math.h>
#include <string.h>

void nn_add_layernorm(float *x, const float *r, int M, int d, const at_ln *ln, float eps) {
    for (int i = 0; i < M; i++) {
        float *row = x + (size_t)i * d;
        if (r) {
            const float *rr = r + (size_t)i * d;
            for (int j = 0; j < d; j++) row[j] += rr[j];
        }
        float mean = 0.0f;
        for (int j = 0; j < d; j++) mean += row[j];
        mean /= (float)d;
        float var = 0.0f;
        for (int j = 0; j < d; j++) {
            float c = row[j] - mean;
            var += c * c;
        }
        var /= (float)d;
        float inv = 1.0f / sqrtf(var + eps);
        for (int j = 0; j < d; j++) row[j] = (row[j] - mean) * inv * ln->weight[j] + ln->bias[j];
    }
}

void nn_activate(float *x, size_t n, at_activation act) {
    switch (act) {
    case AT_ACT_SWISH:
        for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    case AT_ACT_RELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case AT_ACT_GELU:
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
    }
}

void nn_softmax(float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

double nn_logsumexp(const float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    /* float exponentials (vectorised), summed in 8 float lanes, then in double */
    float lane[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) lane[k] += expf(x[i + k] - mx);
    double sum = 0.0;
    for (int k = 0; k < 8; k++) sum += lane[k];
    for (; i < n; i++) sum += expf(x[i] - mx);
    return (double)mx + log(sum);
}

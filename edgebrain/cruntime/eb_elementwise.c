/* eb_elementwise.c: input quantization, copy, saturating add, Scale, Threshold, Delay, output
 * (edgebrain/kernels/elementwise.py and kernels/engine.py's input and output rows). */
#include "eb_fixed.h"
#include "eb_kernels.h"

/* q = sat(floor(x·inv + 0.5), lo, hi), x·inv + 0.5 in float32 (no fused multiply-add: build with
 * -ffp-contract=off). floor and the comparisons are exact, as Numba's (float64) are: beyond
 * ±2^62 the value is out of any int32 range anyway. Returns how many values were clamped. */
int64_t eb_input(const float *x, int32_t *y, int64_t n, float inv, int64_t lo, int64_t hi) {
    int64_t k, nsat = 0;
    for (k = 0; k < n; k++) {
        float t = x[k] * inv + 0.5f;
        int64_t q;
        if (t >= 0x1p62f) {
            q = hi + 1;  /* +inf too */
        } else if (t <= -0x1p62f) {
            q = lo - 1;  /* -inf too */
        } else {
            q = (int64_t)t;          /* truncates toward zero */
            if ((float)q > t) q--;   /* exact: a non-integer t is below 2^23 */
        }
        if (q < lo || q > hi) {
            nsat++;
            q = q < lo ? lo : hi;
        }
        y[k] = (int32_t)q;
    }
    return nsat;
}

void eb_copy(const int32_t *x, int32_t *y, int64_t n) {
    int64_t k;
    for (k = 0; k < n; k++) y[k] = x[k];
}

/* one more edge into a node's summed input: sat32 after each addition */
void eb_add_sat(const int32_t *x, int32_t *y, int64_t n) {
    int64_t k;
    for (k = 0; k < n; k++) y[k] = eb_sat32((int64_t)y[k] + x[k]);
}

void eb_scale(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *y, int64_t n) {
    int64_t k;
    for (k = 0; k < n; k++) y[k] = eb_mulshift_sat32(x[k], m[k], s[k]);
}

void eb_threshold(const int32_t *x, const int32_t *th, int32_t *y, int64_t n) {
    int64_t k;
    for (k = 0; k < n; k++) y[k] = x[k] > th[k] ? 1 : 0;
}

/* the ring holds depth = ring_len / n rows; row (clock mod depth) receives x, and y[k] is the
 * value written steps[k] steps ago (0 before the first write). The loader checked
 * 0 <= steps[k] < depth. */
void eb_delay(const int32_t *x, int32_t *y, int32_t *ring, int64_t ring_len, const int32_t *steps, int64_t n,
              int64_t clock) {
    int64_t k, depth = ring_len / n, row = clock % depth;
    for (k = 0; k < n; k++) ring[row * n + k] = x[k];
    for (k = 0; k < n; k++) {
        int64_t d = steps[k];
        y[k] = d > clock ? 0 : ring[((clock - d) % depth) * n + k];
    }
}

/* dequantization: float32(q) · scale, one float32 multiply */
void eb_output(const int32_t *x, float *y, int64_t n, float scale) {
    int64_t k;
    for (k = 0; k < n; k++) y[k] = (float)x[k] * scale;
}

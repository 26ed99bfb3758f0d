/* eb_dense.c: Dense (Affine, Linear), edgebrain/kernels/dense.py's dense_int.
 *
 * acc[c] = b[c] + Σ_j x[j]·W[j, c] over the nonzero inputs (an exact sum, so skipping zeros and
 * the order of terms change nothing), then y[c] = requant(acc[c]). The weights are stored
 * transposed, (n_in, n_out): one input's contribution is one contiguous row.
 *
 * A row the builder proved narrow (|acc| < 2^31 for every allowed input: the row's wide flag is
 * 0) accumulates in 32 bits, in the output row itself, as Numba's int32 accumulator does (twice
 * the vector lanes of int64); the additions wrap as unsigned ints, so nothing is undefined even
 * for a blob that breaks the proof, and the result is Numba's. A wide row uses the int64 scratch. */
#include "eb_fixed.h"
#include "eb_kernels.h"

static void accumulate64(const int32_t *x, const void *w, int wbits, int64_t *acc, int64_t n_in, int64_t n_out) {
    int64_t j, c;
    for (j = 0; j < n_in; j++) {
        const int64_t xj = x[j];
        if (xj == 0) continue;  /* event-driven: a spike train is mostly zeros */
        if (wbits == 8) {
            const int8_t *row = (const int8_t *)w + j * n_out;
            for (c = 0; c < n_out; c++) acc[c] = eb_addw(acc[c], xj * row[c]);
        } else {
            const int16_t *row = (const int16_t *)w + j * n_out;
            for (c = 0; c < n_out; c++) acc[c] = eb_addw(acc[c], xj * row[c]);
        }
    }
}

/* acc (the output row, as uint32: the same object's unsigned type) += x·W, modulo 2^32 */
static void accumulate32(const int32_t *x, const void *w, int wbits, uint32_t *acc, int64_t n_in, int64_t n_out) {
    int64_t j, c;
    for (j = 0; j < n_in; j++) {
        const uint32_t xj = (uint32_t)x[j];
        if (xj == 0) continue;
        if (wbits == 8) {
            const int8_t *row = (const int8_t *)w + j * n_out;
            if (xj == 1) /* a spike adds the weights */
                for (c = 0; c < n_out; c++) acc[c] += (uint32_t)(int32_t)row[c];
            else
                for (c = 0; c < n_out; c++) acc[c] += xj * (uint32_t)(int32_t)row[c];
        } else {
            const int16_t *row = (const int16_t *)w + j * n_out;
            if (xj == 1)
                for (c = 0; c < n_out; c++) acc[c] += (uint32_t)(int32_t)row[c];
            else
                for (c = 0; c < n_out; c++) acc[c] += xj * (uint32_t)(int32_t)row[c];
        }
    }
}

void eb_dense(const int32_t *x, const void *w, int wbits, const int32_t *b, const int32_t *m, const int32_t *s,
              int32_t *y, int64_t *acc, int64_t rows, int64_t n_in, int64_t n_out, int identity, int wide) {
    int64_t q, c;
    for (q = 0; q < rows; q++) {
        const int32_t *xq = x + q * n_in;
        int32_t *yq = y + q * n_out;
        if (wide) {
            for (c = 0; c < n_out; c++) acc[c] = b ? b[c] : 0;
            accumulate64(xq, w, wbits, acc, n_in, n_out);
            for (c = 0; c < n_out; c++) yq[c] = eb_requant(acc[c], m[c], s[c], identity);
        } else {
            uint32_t *a = (uint32_t *)yq;
            for (c = 0; c < n_out; c++) a[c] = b ? (uint32_t)b[c] : 0u;
            accumulate32(xq, w, wbits, a, n_in, n_out);
            for (c = 0; c < n_out; c++) yq[c] = eb_requant(eb_wrap32(a[c]), m[c], s[c], identity);
        }
    }
}

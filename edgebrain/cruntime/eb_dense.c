/* eb_dense.c: Dense (Affine, Linear), edgebrain/kernels/dense.py's dense_int.
 *
 * acc[c] = b[c] + Σ_j x[j]·W[j, c] over the nonzero inputs (an exact sum, so skipping zeros and
 * the order of terms change nothing), then y[c] = requant(acc[c]). The weights are stored
 * transposed, (n_in, n_out): one input's contribution is one contiguous row. As Numba, the nonzero
 * inputs are listed first without branches, then their rows added.
 *
 * A row the builder proved narrow (|acc| < 2^31 for every allowed input: the row's wide flag is
 * 0) accumulates in 32 bits, in the output row itself, as Numba's int32 accumulator does (twice
 * the vector lanes of int64); the additions wrap as unsigned ints, so nothing is undefined even
 * for a blob that breaks the proof, and the result is Numba's. A wide row uses the int64 scratch. */
#include "eb_fixed.h"
#include "eb_kernels.h"

/* inputs listed at once (a bound on the stack: flash and RAM matter on a microcontroller) */
#define EB_LIST 64

/* acc[c] += x[j]·w[j, c] for the listed inputs j, two rows per pass over acc (half the loads and
 * stores of acc; spikes, x = 1, add the weights), acc uint32: a narrow row's output row itself, as
 * the same object's unsigned type (the sum wraps modulo 2^32, exactly Numba's int32 accumulator).
 * The weights are in the blob, the accumulators in the caller's buffers: they never alias (the
 * input and output rows, both in act, are not promised apart: a hand-made blob may overlap them). */
#define EB_ROWS32(T)                                                                                \
    do {                                                                                            \
        const T *restrict wt = (const T *)w;                                                        \
        for (k = 0; k + 1 < nnz; k += 2) {                                                          \
            const uint32_t xa = (uint32_t)x[idx[k]], xb = (uint32_t)x[idx[k + 1]];                  \
            const T *restrict ra = wt + idx[k] * n_out, *restrict rb = wt + idx[k + 1] * n_out;     \
            if (xa == 1 && xb == 1)                                                                 \
                for (c = 0; c < n_out; c++) acc[c] += (uint32_t)(ra[c] + rb[c]);                    \
            else                                                                                    \
                for (c = 0; c < n_out; c++) acc[c] += xa * (uint32_t)ra[c] + xb * (uint32_t)rb[c];  \
        }                                                                                           \
        if (k < nnz)                                                                                \
            for (c = 0; c < n_out; c++) acc[c] += (uint32_t)x[idx[k]] * (uint32_t)wt[idx[k] * n_out + c]; \
    } while (0)

static void rows32(const int32_t *x, const int32_t *idx, int64_t nnz, const void *w, int wbits, uint32_t *acc,
                   int64_t n_out) {
    int64_t k, c;
    if (wbits == 8)
        EB_ROWS32(int8_t);
    else
        EB_ROWS32(int16_t);
}

/* a wide row (rare: the builder could not prove int32 enough) keeps to the plain loop */
static void rows64(const int32_t *x, const int32_t *idx, int64_t nnz, const void *w, int wbits, int64_t *acc,
                   int64_t n_out) {
    int64_t k, c;
    for (k = 0; k < nnz; k++) {
        const int64_t xj = x[idx[k]], r = idx[k] * n_out;
        for (c = 0; c < n_out; c++)
            acc[c] = eb_addw(acc[c], xj * (wbits == 8 ? ((const int8_t *)w)[r + c] : ((const int16_t *)w)[r + c]));
    }
}

void eb_dense(const int32_t *x, const void *w, int wbits, const int32_t *b, const int32_t *m, const int32_t *s,
              int32_t *y, int64_t *acc, int64_t rows, int64_t n_in, int64_t n_out, int identity, int wide) {
    const int64_t wsize = wbits / 8;
    int32_t idx[EB_LIST];
    int64_t q, c, j0, nnz;
    for (q = 0; q < rows; q++) {
        const int32_t *xq = x + q * n_in;
        int32_t *yq = y + q * n_out;
        uint32_t *a = (uint32_t *)yq;
        if (wide)
            for (c = 0; c < n_out; c++) acc[c] = b ? b[c] : 0;
        else
            for (c = 0; c < n_out; c++) a[c] = b ? (uint32_t)b[c] : 0u;
        for (j0 = 0; j0 < n_in; j0 += EB_LIST) {
            const void *wj = (const char *)w + j0 * n_out * wsize;
            nnz = eb_list_nonzero(xq + j0, n_in - j0 < EB_LIST ? n_in - j0 : EB_LIST, idx);
            if (wide)
                rows64(xq + j0, idx, nnz, wj, wbits, acc, n_out);
            else
                rows32(xq + j0, idx, nnz, wj, wbits, a, n_out);
        }
        if (wide)
            for (c = 0; c < n_out; c++) yq[c] = eb_requant(acc[c], m[c], s[c], identity);
        else
            for (c = 0; c < n_out; c++) yq[c] = eb_requant_narrow(eb_i32(a[c]), m[c], s[c], identity);
    }
}

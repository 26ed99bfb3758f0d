/* eb_dense.c: Dense (Affine, Linear), edgebrain/kernels/dense.py's dense_int (dense_int4 for 4-bit
 * weights, sparse_int for a sparse row: sparse_rows below).
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

/* 4-bit weights (kernels/compact.py): byte h of an input's row holds the weights of outputs 2h (low
 * nibble) and 2h + 1 (high nibble), two's complement; a row is (n_out + 1) / 2 bytes */
static int32_t lo4(uint32_t v) { return (int32_t)((v & 15u) ^ 8u) - 8; }        /* (one sbfx on Arm) */
static int32_t hi4(uint32_t v) { return (int32_t)(((v >> 4) & 15u) ^ 8u) - 8; }

/* as EB_ROWS32, two input rows per pass over acc */
static void rows32_int4(const int32_t *x, const int32_t *idx, int64_t nnz, const uint8_t *w, uint32_t *acc,
                        int64_t n_out) {
    const int64_t nb = (n_out + 1) / 2, half = n_out / 2;
    int64_t k, h;
    for (k = 0; k + 1 < nnz; k += 2) {
        const uint32_t xa = (uint32_t)x[idx[k]], xb = (uint32_t)x[idx[k + 1]];
        const uint8_t *restrict ra = w + idx[k] * nb, *restrict rb = w + idx[k + 1] * nb;
        if (xa == 1 && xb == 1)
            for (h = 0; h < half; h++) {
                acc[2 * h] += (uint32_t)(lo4(ra[h]) + lo4(rb[h]));
                acc[2 * h + 1] += (uint32_t)(hi4(ra[h]) + hi4(rb[h]));
            }
        else
            for (h = 0; h < half; h++) {
                acc[2 * h] += xa * (uint32_t)lo4(ra[h]) + xb * (uint32_t)lo4(rb[h]);
                acc[2 * h + 1] += xa * (uint32_t)hi4(ra[h]) + xb * (uint32_t)hi4(rb[h]);
            }
        if (n_out & 1) acc[n_out - 1] += xa * (uint32_t)lo4(ra[half]) + xb * (uint32_t)lo4(rb[half]);
    }
    if (k < nnz) {
        const uint32_t xj = (uint32_t)x[idx[k]];
        const uint8_t *restrict row = w + idx[k] * nb;
        for (h = 0; h < half; h++) {
            acc[2 * h] += xj * (uint32_t)lo4(row[h]);
            acc[2 * h + 1] += xj * (uint32_t)hi4(row[h]);
        }
        if (n_out & 1) acc[n_out - 1] += xj * (uint32_t)lo4(row[half]);
    }
}

static void rows64_int4(const int32_t *x, const int32_t *idx, int64_t nnz, const uint8_t *w, int64_t *acc,
                        int64_t n_out) {
    const int64_t nb = (n_out + 1) / 2;
    int64_t k, c;
    for (k = 0; k < nnz; k++) {
        const int64_t xj = x[idx[k]];
        const uint8_t *row = w + idx[k] * nb;
        for (c = 0; c < n_out; c++)
            acc[c] = eb_addw(acc[c], xj * ((c & 1) ? hi4(row[c >> 1]) : lo4(row[c >> 1])));
    }
}

/* ------------------------------------------------------------------ sparse rows
 * A dense synapse whose weights are stored as the CSR of (n_in, n_out) (kernels/compact.py,
 * edgebrain/kernels/dense.py's sparse_int): for each nonzero x[j], acc[cols[e]] += x[j]·w[e] over
 * its stored entries e = ptr[j] .. ptr[j+1] - 1. Each output adds its terms in increasing j, and an
 * integer sum is exact: the dense result, zero weights skipped. eb_model_load has checked that ptr
 * starts at 0, never decreases and ends at nnz, and that every index is below n_out. */

/* the weight of entry e: int8, int16, or 4-bit (entry e in byte e >> 1, the low nibble for even e) */
static int32_t sparse_w(const void *w, int wbits, uint32_t e) {
    if (wbits == 4) {
        const uint8_t v = ((const uint8_t *)w)[e >> 1];
        return (e & 1u) ? hi4(v) : lo4(v);
    }
    return wbits == 8 ? ((const int8_t *)w)[e] : ((const int16_t *)w)[e];
}

/* the k-th entry of an array of uint8, uint16 or uint32 (bytes: 1, 2, 4; aligned, as eb_model_load checked) */
static uint32_t sparse_u(const void *a, int bytes, uint32_t k) {
    if (bytes == 1) return ((const uint8_t *)a)[k];
    return bytes == 2 ? ((const uint16_t *)a)[k] : ((const uint32_t *)a)[k];
}

/* the listed inputs j0 + idx[k] of a sparse row: into a (narrow: uint32, wrapping) or acc (wide) */
static void sparse_rows(const int32_t *xq, int64_t j0, const int32_t *idx, int64_t nnz, const void *w, int wbits,
                        const eb_csr *csr, uint32_t *a, int64_t *acc, int wide) {
    const uint8_t *c8 = (const uint8_t *)csr->cols;
    int64_t k;
    uint32_t e, e1;
    for (k = 0; k < nnz; k++) {
        const uint32_t j = (uint32_t)(j0 + idx[k]);
        const int32_t xj = xq[j];
        e = sparse_u(csr->ptr, csr->ptr_bytes, j);
        e1 = sparse_u(csr->ptr, csr->ptr_bytes, j + 1);
        if (wide) {
            for (; e < e1; e++) {
                const uint32_t ce = sparse_u(csr->cols, csr->idx_bytes, e);
                acc[ce] = eb_addw(acc[ce], (int64_t)xj * sparse_w(w, wbits, e));
            }
        } else if (wbits == 8 && csr->idx_bytes == 1) { /* the common case: int8 weights, up to 256 outputs */
            const int8_t *w8 = (const int8_t *)w;
            for (; e < e1; e++) a[c8[e]] += (uint32_t)xj * (uint32_t)w8[e];
        } else if (wbits == 4 && csr->idx_bytes == 1) { /* 4-bit: an odd first entry, then byte pairs */
            const uint8_t *w4 = (const uint8_t *)w;
            if ((e & 1u) && e < e1) {
                a[c8[e]] += (uint32_t)xj * (uint32_t)hi4(w4[e >> 1]);
                e++;
            }
            for (; e + 1 < e1; e += 2) {
                a[c8[e]] += (uint32_t)xj * (uint32_t)lo4(w4[e >> 1]);
                a[c8[e + 1]] += (uint32_t)xj * (uint32_t)hi4(w4[e >> 1]);
            }
            if (e < e1) a[c8[e]] += (uint32_t)xj * (uint32_t)lo4(w4[e >> 1]);
        } else {
            for (; e < e1; e++)
                a[sparse_u(csr->cols, csr->idx_bytes, e)] += (uint32_t)xj * (uint32_t)sparse_w(w, wbits, e);
        }
    }
}

/* ------------------------------------------------------------------ the row */

void eb_dense(const int32_t *x, const void *w, int wbits, const eb_csr *csr, const int32_t *b, const int32_t *m,
              const int32_t *s, int32_t *y, int64_t *acc, int64_t rows, int64_t n_in, int64_t n_out, int identity,
              int wide) {
    /* bytes of one input's row of dense weights */
    const int64_t stride = wbits == 4 ? (n_out + 1) / 2 : n_out * (wbits / 8);
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
            const void *wj = (const char *)w + j0 * stride;
            nnz = eb_list_nonzero(xq + j0, n_in - j0 < EB_LIST ? n_in - j0 : EB_LIST, idx);
            if (csr)
                sparse_rows(xq, j0, idx, nnz, w, wbits, csr, a, acc, wide);
            else if (wbits == 4 && wide)
                rows64_int4(xq + j0, idx, nnz, (const uint8_t *)wj, acc, n_out);
            else if (wbits == 4)
                rows32_int4(xq + j0, idx, nnz, (const uint8_t *)wj, a, n_out);
            else if (wide)
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

/* eb_kernels.h: the integer kernels the interpreter calls, one family per file
 * (eb_dense.c, eb_conv.c, eb_elementwise.c, eb_neuron.c). Internal to the runtime.
 * Each follows docs/fixed-point.md and its Numba twin in edgebrain/kernels/. */
#ifndef EB_KERNELS_H
#define EB_KERNELS_H

#include <stdint.h>

/* idx[0:n] = the indices j < len of the nonzero x[j], increasing; returns n. Without a branch per
 * input (random spikes would mispredict it): idx[n] is written for every j, so idx needs len entries. */
static inline int64_t eb_list_nonzero(const int32_t *x, int64_t len, int32_t *idx) {
    int64_t j, n = 0;
    for (j = 0; j < len; j++) {
        idx[n] = (int32_t)j;
        n += x[j] != 0;
    }
    return n;
}

/* eb_elementwise.c */
int64_t eb_input(const float *x, int32_t *y, int64_t n, float inv, int64_t lo, int64_t hi);
void eb_copy(const int32_t *x, int32_t *y, int64_t n);
void eb_add_sat(const int32_t *x, int32_t *y, int64_t n);
void eb_scale(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *y, int64_t n);
void eb_threshold(const int32_t *x, const int32_t *th, int32_t *y, int64_t n);
void eb_delay(const int32_t *x, int32_t *y, int32_t *ring, int64_t ring_len, const int32_t *steps, int64_t n,
              int64_t clock);
void eb_output(const int32_t *x, float *y, int64_t n, float scale);

/* a sparse row's CSR of (n_in, n_out): n_in + 1 row pointers (uint16 or uint32: ptr_bytes) and nnz output
 * indices (uint8 or uint16: idx_bytes), checked by eb_model_load */
typedef struct {
    const void *ptr, *cols;
    int ptr_bytes, idx_bytes;
} eb_csr;

/* eb_dense.c: y = requant(b + x·W) for `rows` input rows; w (n_in, n_out) int8 or int16 (wbits 8, 16),
 * or 4-bit (wbits 4: (n_out + 1) / 2 bytes per input row, two weights per byte); with csr, w holds
 * the CSR's nnz weights (int8, int16 or 4-bit two per byte) */
void eb_dense(const int32_t *x, const void *w, int wbits, const eb_csr *csr, const int32_t *b, const int32_t *m,
              const int32_t *s, int32_t *y, int64_t *acc, int64_t rows, int64_t n_in, int64_t n_out, int identity,
              int wide);

/* eb_conv.c: dims = the row's CONV block (c, h, w, co, kh, kw, sh, sw, pt, pl, dh, dw, groups, ho, wo);
 * w in the kernels' scatter layout (C/groups, kh, kw reversed, Co) */
void eb_conv(const int32_t *x, const void *w, int wbits, const int32_t *b, const int32_t *m, const int32_t *s,
             int32_t *y, int64_t *acc, const int64_t *dims, int identity, int wide);
/* dims = the row's POOL block (c, h, w, kh, kw, sh, sw, ph, pw, ho, wo) */
void eb_pool(const int32_t *x, int32_t *y, const int64_t *dims, int64_t m, int64_t s);

/* eb_neuron.c: per-neuron parameters of one OP_NEURON row */
typedef struct {
    const int32_t *alpha, *gsyn_m, *gsyn_s, *beta, *gmem_m, *gmem_s, *bias, *thr, *v_reset;
    int64_t flags, max_spikes, dq, lo, hi;
} eb_neuron_params;

/* one step of a population of n neurons; v, i: int16 (state_bits 16) or int32 state (i used by
 * current-based kinds); out holds the previous step's output on entry. Returns the clamps. */
int64_t eb_neuron(const int32_t *x, void *v, void *i, int state_bits, int32_t *out, int64_t n,
                  const eb_neuron_params *p);

#endif /* EB_KERNELS_H */

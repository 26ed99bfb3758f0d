/* eb_runtime.h: the edgebrain C runtime, integer mode.
 *
 * One interpreter for every model: the model is data, a blob (edgebrain/blob.py) holding the
 * instruction rows and flat parameter buffers that edgebrain.program lowers a model to. It
 * computes what edgebrain's Numba integer path computes, bit for bit (docs/fixed-point.md).
 *
 * No heap: the caller provides every buffer, sized from the loaded model:
 *
 *     static eb_model model;  static eb_session sess;
 *     eb_model_load(&model, blob, blob_len, &err);            // checks, keeps pointers into blob
 *     state   = eb_state_bytes(&model) bytes (int16 or int32 neuron state)
 *     act     = eb_act_bytes(&model) bytes (int32 node outputs, delay rings)
 *     scratch = eb_scratch_bytes(&model) bytes (int64: saturation counters, accumulators)
 *     eb_session_init(&sess, &model, state, ..., act, ..., scratch, ...);
 *     eb_step(&sess, x, y);                                   // x: n_in float32, y: n_out float32
 *
 * The blob must stay in memory (flash is fine), 8-byte aligned. */
#ifndef EB_RUNTIME_H
#define EB_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "eb_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* a loaded model: pointers into the blob and its sizes (read-only after eb_model_load) */
typedef struct {
    const int64_t *prog;   /* n_rows x EB_ROW_WIDTH */
    const int32_t *ipar;
    const float *fpar;
    const void *wbuf;      /* int8_t or int16_t (weight_bits) */
    uint32_t n_rows, state_bits, weight_bits;
    uint32_t state_size, act_size, acc_size, n_in, n_out;
    uint32_t ipar_n, fpar_n, wbuf_n, n_outputs;
    float input_scale;
    uint32_t format_version; /* EB_FORMAT_VERSION_MIN .. EB_FORMAT_VERSION: 2 when a row is sparse or 4-bit */
} eb_model;

/* where a blob was refused: the header field's byte offset, or the row and its column */
typedef struct {
    eb_status code;
    uint32_t offset;  /* byte offset of the header field (EB_ERR_HEADER and friends) */
    int32_t row;      /* instruction row (EB_ERR_ROW), else -1 */
    int32_t column;   /* its column (EB_ERR_ROW), else -1 */
} eb_error;

/* running state: the caller's buffers and the step clock */
typedef struct {
    const eb_model *model;
    void *state;        /* state_size int16 or int32 */
    int32_t *act;       /* act_size */
    int64_t *sat;       /* n_rows saturation counters (the start of the scratch) */
    int64_t *acc;       /* acc_size accumulators (the rest of the scratch) */
    int64_t clock;      /* steps taken since the last reset */
} eb_session;

/* check a blob (version, checksum, sizes, every row's offsets) and fill *m; err may be NULL */
eb_status eb_model_load(eb_model *m, const void *blob, size_t len, eb_error *err);

size_t eb_state_bytes(const eb_model *m);
size_t eb_act_bytes(const eb_model *m);
size_t eb_scratch_bytes(const eb_model *m);

/* bind buffers (each at least the size above; act and scratch 8-byte aligned; none overlapping
 * another or the blob: the kernels are compiled on that promise) and reset */
eb_status eb_session_init(eb_session *s, const eb_model *m, void *state, size_t state_bytes, int32_t *act,
                          size_t act_bytes, int64_t *scratch, size_t scratch_bytes);

/* back to the initial state: zero state, activations, counters and clock */
void eb_session_reset(eb_session *s);

/* one step: x (n_in float32) quantized, every row run, y (n_out float32) written.
 * EB_ERR_NONFINITE (nothing changed) when x holds NaN or infinity. */
eb_status eb_step(eb_session *s, const float *x, float *y);

/* steps steps: xs (steps x n_in), ys (steps x n_out); *done = steps taken (stops at a bad input) */
eb_status eb_run(eb_session *s, const float *xs, uint32_t steps, float *ys, uint32_t *done);

/* sizeof the structs, for bindings that allocate them (ctypes) */
size_t eb_sizeof_model(void);
size_t eb_sizeof_session(void);
int64_t eb_session_clock(const eb_session *s);

#ifdef __cplusplus
}
#endif

#endif /* EB_RUNTIME_H */

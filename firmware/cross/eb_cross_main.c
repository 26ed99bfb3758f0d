/* eb_cross_main.c: the smallest firmware that uses the C runtime: load the exported blob, bind
 * statically sized buffers (model.h), run one step. Built by `make -C firmware cross` for each
 * target so that the linker keeps the whole runtime, and measured with <cross>-size.
 *
 * With -DEB_CROSS_BASELINE the same program keeps the blob and the buffers but never calls the
 * runtime: the difference between the two builds is the runtime's own cost (its code, the
 * compiler's helpers it pulls in, its statics), which tools/firmware/measure.py records. */
#include <stdint.h>

#include "eb_runtime.h"
#include "model.h"

static int32_t state[MODEL_STATE_WORDS];
static int32_t act[MODEL_ACT_WORDS];
static int64_t scratch[MODEL_SCRATCH_WORDS];
static float x[MODEL_N_IN];
static float y[MODEL_N_OUT];
volatile uint32_t eb_cross_sink; /* what the program computed, so that nothing is optimised away */

#ifdef EB_CROSS_BASELINE
int main(void) { /* writes and reads every buffer, so that none is optimised away */
    uint32_t i = eb_cross_sink;
    state[i % MODEL_STATE_WORDS] = (int32_t)i;
    act[i % MODEL_ACT_WORDS] = (int32_t)i;
    scratch[i % MODEL_SCRATCH_WORDS] = (int64_t)i;
    x[i % MODEL_N_IN] = 1.0f; /* no float arithmetic: soft-float helpers belong to the runtime's share */
    y[i % MODEL_N_OUT] = 1.0f;
    i = eb_cross_sink;
    eb_cross_sink = model_blob[i % MODEL_BLOB_LEN] + (uint32_t)state[i % MODEL_STATE_WORDS] +
                    (uint32_t)act[i % MODEL_ACT_WORDS] + (uint32_t)scratch[i % MODEL_SCRATCH_WORDS] +
                    ((const uint8_t *)x)[i % sizeof x] + ((const uint8_t *)y)[i % sizeof y] +
                    (uint32_t)model_blob_len;
    return 0;
}
#else
static eb_model model;
static eb_session sess;

int main(void) {
    eb_error err;
    uint32_t k;
    if (eb_model_load(&model, model_blob, model_blob_len, &err) != EB_OK) return (int)err.code;
    if (eb_session_init(&sess, &model, state, sizeof state, act, sizeof act, scratch, sizeof scratch) != EB_OK)
        return 100;
    for (k = 0; k < MODEL_N_IN; k++) x[k] = (float)(eb_cross_sink + k) * 0.25f;
    if (eb_step(&sess, x, y) != EB_OK) return 101;
    for (k = 0; k < MODEL_N_OUT; k++) eb_cross_sink += (uint32_t)y[k];
    return 0;
}
#endif

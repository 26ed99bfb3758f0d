/* fuzz_blob.c: the blob loader eb_model_load on arbitrary bytes (a board loads untrusted blobs over
 * the link), and every model it accepts stepped in exactly sized heap buffers (ASan sees any access
 * outside them, UBSan any undefined arithmetic in the kernels on accepted parameters).
 *
 * Byte 0 is a control byte, the rest the blob: bit 0 gives the blob a valid CRC-32 (so mutations get
 * past the checksum to the header and row checks), bit 1 sets its total_size to its length; bits
 * 2-3: steps to run (0-3), bits 4-7 pick the inputs (zeros, the blob's own bytes as float32, or
 * large and tiny finite values). Invariants: an accepted model's sections lie inside the blob; a
 * refused one says why (a status, and a row for EB_ERR_ROW); a step of an accepted model returns
 * EB_OK on finite input and EB_ERR_NONFINITE on NaN or infinity. */
#include <math.h>

#include "fuzz_common.h"

#define MAX_BUFFER (1u << 20) /* bytes of state, activations or scratch a harness run allocates */

static void run(const eb_model *m, const uint8_t *blob, size_t len, unsigned steps, unsigned inputs) {
    const size_t sb = eb_state_bytes(m), ab = eb_act_bytes(m), cb = eb_scratch_bytes(m);
    void *state;
    int32_t *act;
    int64_t *scratch;
    float *x, *y;
    eb_session s;
    unsigned t;
    uint32_t k;
    if (sb > MAX_BUFFER || ab > MAX_BUFFER || cb > MAX_BUFFER || m->n_in > MAX_BUFFER / 4 || m->n_out > MAX_BUFFER / 4)
        return;
    if (fz_step_cost(m) > FUZZ_MAX_STEP_COST) return;
    /* exact sizes (at least one byte: malloc(0) may return NULL) */
    state = malloc(sb ? sb : 1);
    act = (int32_t *)malloc(ab ? ab : 1);
    scratch = (int64_t *)malloc(cb ? cb : 1);
    x = (float *)malloc(m->n_in ? 4u * m->n_in : 1);
    y = (float *)malloc(m->n_out ? 4u * m->n_out : 1);
    FUZZ_CHECK(state && act && scratch && x && y);
    FUZZ_CHECK(eb_session_init(&s, m, state, sb, act, ab, scratch, cb) == EB_OK);
    for (t = 0; t < steps; t++) {
        int finite = 1;
        eb_status st;
        for (k = 0; k < m->n_in; k++) {
            float v = 0.0f;
            switch ((inputs + t) % 4u) {
            case 0: v = 0.0f; break;
            case 1: {
                uint32_t u = len >= 4 ? fz_rd32(blob + (4u * (k + t) % (len - 3))) : 0u;
                memcpy(&v, &u, sizeof v);
                break;
            }
            case 2: v = (k + t) % 2 ? 3.0e38f : -3.0e38f; break;
            default: v = (k + t) % 3 ? 1.0e-38f : -0.75f; break;
            }
            if (isnan(v) || isinf(v)) finite = 0;
            x[k] = v;
        }
        memset(y, 0, m->n_out ? 4u * m->n_out : 1);
        st = eb_step(&s, x, y);
        FUZZ_CHECK(st == (finite ? EB_OK : EB_ERR_NONFINITE));
        FUZZ_CHECK(eb_session_clock(&s) >= 0);
    }
    eb_session_reset(&s);
    free(y);
    free(x);
    free(scratch);
    free(act);
    free(state);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *blob;
    size_t len;
    eb_model m;
    eb_error err;
    eb_status st;
    unsigned ctl;
    if (size < 1) return 0;
    ctl = data[0];
    len = size - 1;
    blob = (uint8_t *)malloc(len ? len : 1); /* malloc is 16-byte aligned: the blob's 8 */
    FUZZ_CHECK(blob != NULL);
    memcpy(blob, data + 1, len);
    if ((ctl & 2) && len >= EB_HEADER_SIZE) fz_wr32(blob + EB_H_TOTAL_SIZE, (uint32_t)len);
    if ((ctl & 1) && len >= EB_HEADER_SIZE) {
        const uint32_t total = fz_rd32(blob + EB_H_TOTAL_SIZE);
        if (total >= EB_HEADER_SIZE && total <= len) fz_wr32(blob + EB_H_CRC32, fz_blob_crc(blob, total));
    }
    memset(&err, 0xA5, sizeof err);
    st = eb_model_load(&m, blob, len, &err);
    FUZZ_CHECK(err.code == st);
    if (st == EB_ERR_ROW) FUZZ_CHECK(err.row >= 0 && err.column >= 0 && err.column < EB_ROW_WIDTH);
    if (st == EB_OK) {
        const uint8_t *lo = blob, *hi = blob + fz_rd32(blob + EB_H_TOTAL_SIZE);
        FUZZ_CHECK(hi <= blob + len);
        FUZZ_CHECK((const uint8_t *)m.prog >= lo && (const uint8_t *)(m.prog + (size_t)m.n_rows * EB_ROW_WIDTH) <= hi);
        FUZZ_CHECK((const uint8_t *)m.ipar >= lo && (const uint8_t *)(m.ipar + m.ipar_n) <= hi);
        FUZZ_CHECK((const uint8_t *)m.fpar >= lo && (const uint8_t *)(m.fpar + m.fpar_n) <= hi);
        FUZZ_CHECK((const uint8_t *)m.wbuf >= lo && (const uint8_t *)m.wbuf + (size_t)m.wbuf_n * (m.weight_bits / 8) <= hi);
        run(&m, blob, len, (ctl >> 2) & 3u, ctl >> 4);
    } else {
        FUZZ_CHECK(st > EB_OK && st < EB_ERR_NONFINITE);
    }
    free(blob);
    return 0;
}

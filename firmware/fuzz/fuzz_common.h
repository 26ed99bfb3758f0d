/* fuzz_common.h: what the libFuzzer harnesses of firmware/fuzz share: an invariant check that
 * aborts (a finding), the blob's CRC-32 written independently of eb_runtime.c (so a harness can
 * give a mutated blob a valid checksum and reach the row checks behind it), and a bound on the
 * work one step of a loaded model takes (a harness only steps models below it, so that a valid but
 * enormous convolution is not reported as a timeout). */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eb_proto.h"
#include "eb_runtime.h"

#define FUZZ_CHECK(c)                                                                            \
    do {                                                                                         \
        if (!(c)) {                                                                              \
            fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);     \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

/* work units one step may take in a harness; larger models are loaded (and checked) but not run */
#define FUZZ_MAX_STEP_COST 200000u

static uint32_t fz_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void fz_wr32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* zlib's CRC-32 (reflected polynomial 0xEDB88320), a byte at a time from a table built from the
 * definition */
static uint32_t fz_crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    static uint32_t table[256];
    if (!table[1]) {
        uint32_t b, c;
        int k;
        for (b = 0; b < 256; b++) {
            for (c = b, k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
            table[b] = c;
        }
    }
    while (n--) crc = (crc >> 8) ^ table[(crc ^ *p++) & 0xFFu];
    return crc;
}

/* the blob's CRC-32 with its crc32 field read as zero (edgebrain/blob.py); len >= EB_HEADER_SIZE */
static uint32_t fz_blob_crc(const uint8_t *b, size_t len) {
    static const uint8_t zero[4] = {0, 0, 0, 0};
    uint32_t crc = 0xFFFFFFFFu;
    crc = fz_crc32_update(crc, b, EB_H_CRC32);
    crc = fz_crc32_update(crc, zero, 4);
    crc = fz_crc32_update(crc, b + EB_H_CRC32 + 4, len - EB_H_CRC32 - 4);
    return ~crc;
}

static uint64_t fz_mul(uint64_t a, uint64_t b) {
    const uint64_t big = (uint64_t)1 << 62;
    if (a == 0 || b == 0) return 0;
    return a > big / b ? big : a * b;
}

static uint64_t fz_pos(int64_t v) { return v > 0 ? (uint64_t)v : 0u; }

/* an upper estimate of one step's inner-loop iterations for a model eb_model_load accepted */
static uint64_t fz_step_cost(const eb_model *m) {
    uint64_t cost = (uint64_t)m->n_rows + m->n_in + m->n_out, k;
    for (k = 0; k < m->n_rows; k++) {
        const int64_t *p = m->prog + k * EB_ROW_WIDTH;
        uint64_t c = fz_pos(p[EB_COL_IN_N]) + fz_pos(p[EB_COL_OUT_N]);
        switch (p[EB_COL_OP]) {
        case EB_OP_DENSE:
            c += fz_mul(fz_mul(fz_pos(p[EB_DENSE_ROWS]) + 1, fz_pos(p[EB_DENSE_N_IN]) + 1),
                        fz_pos(p[EB_DENSE_N_OUT]) + 1);
            break;
        case EB_OP_SPARSE: /* per input row: the nonzero scan, every stored weight, the outputs */
            c += fz_mul(fz_pos(p[EB_SPARSE_ROWS]) + 1,
                        fz_pos(p[EB_SPARSE_N_IN]) + fz_pos(p[EB_SPARSE_NNZ]) + fz_pos(p[EB_SPARSE_N_OUT]) + 1);
            break;
        case EB_OP_CONV: {
            const int64_t *d = p + EB_CONV_C; /* c h w co | kh kw sh sw | pt pl | dh dw | groups | ho wo */
            c += fz_mul(fz_mul(fz_mul(fz_pos(d[3]), fz_pos(d[13])), fz_pos(d[14])),
                        fz_mul(fz_mul(fz_pos(d[0]), fz_pos(d[4])), fz_pos(d[5])));
            break;
        }
        case EB_OP_POOL: {
            const int64_t *d = p + EB_POOL_C; /* c h w | kh kw sh sw | ph pw | ho wo */
            c += fz_mul(fz_mul(fz_mul(fz_pos(d[0]), fz_pos(d[9])), fz_pos(d[10])), fz_mul(fz_pos(d[3]), fz_pos(d[4])));
            break;
        }
        case EB_OP_NEURON:
            c += fz_mul(fz_pos(p[EB_COL_OUT_N]), fz_pos(p[EB_NEURON_MAX_SPIKES]) + 1);
            break;
        case EB_OP_DELAY: c += fz_pos(p[EB_DELAY_RING_LEN]); break;
        default: break;
        }
        cost += c;
        if (cost > ((uint64_t)1 << 40)) return cost;
    }
    return cost;
}

#endif /* FUZZ_COMMON_H */

/* eb_runtime.c: loading a blob (every check before the first step) and the interpreter loop,
 * the twin of edgebrain/kernels/engine.py's _exec_int: one row at a time, dispatched on its
 * opcode to the kernels of eb_kernels.h. */
#include <string.h>

#include "eb_fixed.h"
#include "eb_kernels.h"
#include "eb_runtime.h"

/* ------------------------------------------------------------------ reading the header */

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float rdf32(const uint8_t *p) {
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int little_endian(void) {
    const uint16_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* CRC-32 of zlib (reflected polynomial 0xEDB88320), four bits at a time: a 64-byte table */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n) {
    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
    }
    return crc;
}

/* the blob's CRC-32 with its crc32 field read as zero */
static uint32_t blob_crc(const uint8_t *b, size_t total) {
    static const uint8_t zero[4] = {0, 0, 0, 0};
    uint32_t crc = 0xFFFFFFFFu;
    crc = crc_update(crc, b, EB_H_CRC32);
    crc = crc_update(crc, zero, 4);
    crc = crc_update(crc, b + EB_H_CRC32 + 4, total - EB_H_CRC32 - 4);
    return ~crc;
}

static eb_status fail(eb_error *err, eb_status code, uint32_t offset, int32_t row, int32_t column) {
    if (err) {
        err->code = code;
        err->offset = offset;
        err->row = row;
        err->column = column;
    }
    return code;
}

/* a section of n elements of `size` bytes at the byte offset in header field `field` */
static int section_ok(const uint8_t *b, uint32_t field, uint64_t n, uint64_t size, uint32_t total) {
    uint64_t off = rd32(b + field);
    return off % EB_ALIGN == 0 && off >= EB_HEADER_SIZE && off <= total && n * size <= total - off;
}

/* ------------------------------------------------------------------ checking the rows */

#define BIG ((int64_t)1 << 40) /* beyond any buffer a u32 size can describe */
#define SMALL ((int64_t)1 << 16) /* kernel sizes, strides, dilations, paddings */

/* a·b for sizes: -1 when either is negative, BIG when the product would exceed it */
static int64_t cm(int64_t a, int64_t b) {
    if (a < 0 || b < 0) return -1;
    if (a == 0 || b == 0) return 0;
    return a > BIG / b ? BIG : a * b;
}

/* [off, off + n) lies inside a buffer of `size` elements */
static int inside(int64_t off, int64_t n, int64_t size) {
    return off >= 0 && n >= 0 && off <= size && n <= size - off;
}

static int between(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; }

static int finite(float v);

/* the k-th little-endian unsigned integer of w (1, 2 or 4) bytes from p (aligned to w: checked) */
static uint32_t rdw(const uint8_t *p, int64_t w, uint32_t k) {
    if (w == 1) return p[k];
    return w == 2 ? ((const uint16_t *)(const void *)p)[k] : ((const uint32_t *)(const void *)p)[k];
}

/* a sparse row (format version 2; kernels/compact.py): its parts inside their buffers, then its CSR:
 * row pointers from 0, never decreasing, ending at nnz; output indices below n_out, increasing within
 * a row. -1 when valid, else the column at fault (the pointers': ptr_off, the indices': idx_off). */
static int32_t check_sparse(const eb_model *m, const int64_t *p) {
    const int64_t rows = p[EB_SPARSE_ROWS], n_in = p[EB_SPARSE_N_IN], n_out = p[EB_SPARSE_N_OUT];
    const int64_t nnz = p[EB_SPARSE_NNZ], pw = p[EB_SPARSE_PTR_BYTES], cw = p[EB_SPARSE_IDX_BYTES];
    const int64_t int4 = p[EB_SPARSE_INT4], I = m->ipar_n;
    const uint8_t *pb, *cb;
    uint32_t j, e, v, c, prev = 0;
    if (m->format_version < 2) return EB_COL_OP;
    if (rows < 0 || cm(rows, n_in) > p[EB_COL_IN_N] || cm(rows, n_out) > p[EB_COL_OUT_N]) return EB_SPARSE_ROWS;
    if (n_in < 0) return EB_SPARSE_N_IN;
    if (n_out < 0 || n_out > (int64_t)m->acc_size || n_out > 65536) return EB_SPARSE_N_OUT;
    if (nnz < 0 || nnz > cm(n_in, n_out)) return EB_SPARSE_NNZ;
    if (int4 != 0 && (int4 != 1 || m->weight_bits != 8)) return EB_SPARSE_INT4;
    if (!inside(p[EB_SPARSE_W_OFF], int4 ? (nnz + 1) / 2 : nnz, m->wbuf_n)) return EB_SPARSE_W_OFF;
    if (!(pw == 4 || (pw == 2 && nnz <= 0xFFFF))) return EB_SPARSE_PTR_BYTES;
    if (!(cw == 2 || (cw == 1 && n_out <= 256))) return EB_SPARSE_IDX_BYTES;
    /* the parts are raw bytes from int32 element ptr_off / idx_off of ipar (so 4-byte aligned); inside
     * ipar (< 2^30 elements), n_in + 1 and nnz fit 32 bits */
    if (!inside(p[EB_SPARSE_PTR_OFF], (cm(pw, n_in + 1) + 3) / 4, I)) return EB_SPARSE_PTR_OFF;
    if (!inside(p[EB_SPARSE_IDX_OFF], (cm(cw, nnz) + 3) / 4, I)) return EB_SPARSE_IDX_OFF;
    if (p[EB_SPARSE_B_OFF] != -1 && !inside(p[EB_SPARSE_B_OFF], n_out, I)) return EB_SPARSE_B_OFF;
    if (!inside(p[EB_SPARSE_RQ_M_OFF], n_out, I)) return EB_SPARSE_RQ_M_OFF;
    if (!inside(p[EB_SPARSE_RQ_S_OFF], n_out, I)) return EB_SPARSE_RQ_S_OFF;
    pb = (const uint8_t *)(m->ipar + p[EB_SPARSE_PTR_OFF]);
    cb = (const uint8_t *)(m->ipar + p[EB_SPARSE_IDX_OFF]);
    for (j = 0; j <= (uint32_t)n_in; j++) { /* the pointers first, then the indices (as blob.py checks them) */
        v = rdw(pb, pw, j);
        if ((j == 0 && v != 0) || v < prev || v > (uint64_t)nnz) return EB_SPARSE_PTR_OFF;
        prev = v;
    }
    if (prev != (uint64_t)nnz) return EB_SPARSE_PTR_OFF;
    for (j = 0; j < (uint32_t)n_in; j++)
        for (e = rdw(pb, pw, j); e < rdw(pb, pw, j + 1); e++) {
            c = rdw(cb, cw, e);
            if (c >= (uint64_t)n_out || (e > rdw(pb, pw, j) && c <= rdw(cb, cw, e - 1))) return EB_SPARSE_IDX_OFF;
        }
    return -1;
}

/* -1 when row p is valid for model m, else the column at fault */
static int32_t check_row(const eb_model *m, const int64_t *p) {
    const int64_t op = p[EB_COL_OP], i0 = p[EB_COL_IN_OFF], ni = p[EB_COL_IN_N];
    const int64_t o0 = p[EB_COL_OUT_OFF], no = p[EB_COL_OUT_N];
    const int64_t A = m->act_size, I = m->ipar_n, F = m->fpar_n, W = m->wbuf_n;
    if (op < EB_OP_INPUT || op > EB_OP_MAX) return EB_COL_OP;
    if (op == EB_OP_INPUT ? !inside(i0, ni, m->n_in) : !inside(i0, ni, A)) return EB_COL_IN_OFF;
    if (op != EB_OP_OUTPUT && !inside(o0, no, A)) return EB_COL_OUT_OFF;
    switch (op) {
    case EB_OP_INPUT:
        if (ni != no) return EB_COL_IN_N;
        if (!inside(p[EB_INPUT_INV_SCALE_OFF], 1, F)) return EB_INPUT_INV_SCALE_OFF;
        /* a NaN or infinite scale would make eb_input convert NaN to an integer (undefined) */
        if (!finite(m->fpar[p[EB_INPUT_INV_SCALE_OFF]])) return EB_INPUT_INV_SCALE_OFF;
        if (!between(p[EB_INPUT_LO], EB_INT32_MIN, p[EB_INPUT_HI])) return EB_INPUT_LO;
        if (!between(p[EB_INPUT_HI], p[EB_INPUT_LO], EB_INT32_MAX)) return EB_INPUT_HI;
        return -1;
    case EB_OP_COPY:
    case EB_OP_ADD:
    case EB_OP_SCALE:
    case EB_OP_THRESHOLD:
        if (ni != no) return EB_COL_IN_N;
        if (op == EB_OP_SCALE && !inside(p[EB_SCALE_SCALE_OFF], no, I)) return EB_SCALE_SCALE_OFF;
        if (op == EB_OP_SCALE && !inside(p[EB_SCALE_SHIFT_OFF], no, I)) return EB_SCALE_SHIFT_OFF;
        if (op == EB_OP_THRESHOLD && !inside(p[EB_THRESHOLD_TH_OFF], no, I)) return EB_THRESHOLD_TH_OFF;
        return -1;
    case EB_OP_DENSE: {
        const int64_t rows = p[EB_DENSE_ROWS], n_in = p[EB_DENSE_N_IN], n_out = p[EB_DENSE_N_OUT];
        const int64_t int4 = p[EB_DENSE_INT4];
        if (rows < 0 || cm(rows, n_in) > ni || cm(rows, n_out) > no) return EB_DENSE_ROWS;
        if (n_in < 0) return EB_DENSE_N_IN;
        if (n_out < 0 || n_out > (int64_t)m->acc_size) return EB_DENSE_N_OUT;
        /* 4-bit weights: format version 2, in an int8 wbuf, (n_out + 1) / 2 bytes per input row */
        if (int4 != 0 && (int4 != 1 || m->format_version < 2 || m->weight_bits != 8)) return EB_DENSE_INT4;
        if (!inside(p[EB_DENSE_W_OFF], cm(n_in, int4 ? (n_out + 1) / 2 : n_out), W)) return EB_DENSE_W_OFF;
        if (p[EB_DENSE_B_OFF] != -1 && !inside(p[EB_DENSE_B_OFF], n_out, I)) return EB_DENSE_B_OFF;
        if (!inside(p[EB_DENSE_RQ_M_OFF], n_out, I)) return EB_DENSE_RQ_M_OFF;
        if (!inside(p[EB_DENSE_RQ_S_OFF], n_out, I)) return EB_DENSE_RQ_S_OFF;
        return -1;
    }
    case EB_OP_SPARSE: return check_sparse(m, p);
    case EB_OP_CONV: {
        const int64_t *d = p + EB_CONV_C;
        const int64_t c = d[0], co = d[3], kh = d[4], kw = d[5], groups = d[12];
        int k;
        for (k = 0; k < 15; k++) {
            /* c h w co | kh kw sh sw | pt pl | dh dw | groups | ho wo */
            const int small = k >= 4 && k <= 11;
            const int64_t lo = (k == 8 || k == 9 || k >= 13) ? 0 : 1;
            if (!between(d[k], lo, small ? SMALL : A)) return EB_CONV_C + k;
        }
        if (c % groups || co % groups) return EB_CONV_GROUPS;
        if (cm(cm(c, d[1]), d[2]) != ni) return EB_CONV_C;
        if (cm(cm(co, d[13]), d[14]) != no || no > (int64_t)m->acc_size) return EB_CONV_CO;
        if (!inside(p[EB_CONV_W_OFF], cm(cm(co, c / groups), cm(kh, kw)), W)) return EB_CONV_W_OFF;
        if (!inside(p[EB_CONV_B_OFF], co, I)) return EB_CONV_B_OFF;
        if (!inside(p[EB_CONV_RQ_M_OFF], co, I)) return EB_CONV_RQ_M_OFF;
        if (!inside(p[EB_CONV_RQ_S_OFF], co, I)) return EB_CONV_RQ_S_OFF;
        return -1;
    }
    case EB_OP_POOL: {
        const int64_t *d = p + EB_POOL_C;
        int k;
        for (k = 0; k < 11; k++) {
            /* c h w | kh kw sh sw | ph pw | ho wo */
            const int small = k >= 3 && k <= 8;
            const int64_t lo = (k == 7 || k == 8 || k >= 9) ? 0 : 1;
            if (!between(d[k], lo, small ? SMALL : A)) return EB_POOL_C + k;
        }
        if (cm(cm(d[0], d[1]), d[2]) != ni) return EB_POOL_C;
        if (cm(cm(d[0], d[9]), d[10]) != no) return EB_POOL_HO;
        if (!between(p[EB_POOL_M], EB_INT32_MIN, EB_INT32_MAX)) return EB_POOL_M;
        return -1;
    }
    case EB_OP_NEURON: {
        const int64_t f = p[EB_NEURON_FLAGS];
        const int64_t half = m->state_bits == 16 ? 32768 : ((int64_t)1 << 31);
        int k;
        if (ni != no) return EB_COL_IN_N;
        if (f < 0 || (f & ~(int64_t)EB_NF_ALL)) return EB_NEURON_FLAGS;
        if (!inside(p[EB_NEURON_STATE_OFF], cm(no, (f & EB_NF_CUBA) ? 2 : 1), m->state_size))
            return EB_NEURON_STATE_OFF;
        if ((f & EB_NF_MULTISPIKE) && p[EB_NEURON_MAX_SPIKES] < 1) return EB_NEURON_MAX_SPIKES;
        for (k = EB_NEURON_ALPHA_OFF; k <= EB_NEURON_GMEM_S_OFF; k++)
            if (!inside(p[k], no, I)) return k;
        if (!between(p[EB_NEURON_LO], -half, p[EB_NEURON_HI])) return EB_NEURON_LO;
        if (!between(p[EB_NEURON_HI], p[EB_NEURON_LO], half - 1)) return EB_NEURON_HI;
        return -1;
    }
    case EB_OP_DELAY: {
        const int64_t len = p[EB_DELAY_RING_LEN];
        int64_t k;
        if (ni != no || ni < 1) return EB_COL_IN_N;
        if (len < ni || len % ni) return EB_DELAY_RING_LEN;
        if (!inside(p[EB_DELAY_RING_OFF], len, A)) return EB_DELAY_RING_OFF;
        if (!inside(p[EB_DELAY_STEPS_OFF], no, I)) return EB_DELAY_STEPS_OFF;
        for (k = 0; k < no; k++)
            if (!between(m->ipar[p[EB_DELAY_STEPS_OFF] + k], 0, len / ni - 1)) return EB_DELAY_STEPS_OFF;
        return -1;
    }
    default: /* EB_OP_OUTPUT */
        if (!inside(p[EB_OUTPUT_COLUMN], ni, m->n_out)) return EB_OUTPUT_COLUMN;
        if (!inside(p[EB_OUTPUT_SCALE_OFF], 1, F)) return EB_OUTPUT_SCALE_OFF;
        return -1;
    }
}

/* ------------------------------------------------------------------ loading */

eb_status eb_model_load(eb_model *m, const void *blob, size_t len, eb_error *err) {
    const uint8_t *b = (const uint8_t *)blob;
    char version[16] = {0};
    uint32_t total, ndim, k, n_in = 1;
    if (!m || !blob) return fail(err, EB_ERR_ARG, 0, -1, -1);
    if (!little_endian()) return fail(err, EB_ERR_ENDIAN, 0, -1, -1);
    if ((uintptr_t)blob % EB_ALIGN) return fail(err, EB_ERR_ALIGN, 0, -1, -1);
    if (len < EB_HEADER_SIZE) return fail(err, EB_ERR_TRUNCATED, EB_H_TOTAL_SIZE, -1, -1);
    if (memcmp(b + EB_H_MAGIC, EB_MAGIC, 4) != 0) return fail(err, EB_ERR_MAGIC, EB_H_MAGIC, -1, -1);
    if (rd32(b + EB_H_FORMAT_VERSION) < EB_FORMAT_VERSION_MIN || rd32(b + EB_H_FORMAT_VERSION) > EB_FORMAT_VERSION)
        return fail(err, EB_ERR_FORMAT_VERSION, EB_H_FORMAT_VERSION, -1, -1);
    memcpy(version, EB_EDGEBRAIN_VERSION, sizeof EB_EDGEBRAIN_VERSION - 1);
    if (memcmp(b + EB_H_EDGEBRAIN_VERSION, version, sizeof version) != 0)
        return fail(err, EB_ERR_EDGEBRAIN_VERSION, EB_H_EDGEBRAIN_VERSION, -1, -1);
    if (rd32(b + EB_H_HEADER_SIZE) != EB_HEADER_SIZE) return fail(err, EB_ERR_HEADER, EB_H_HEADER_SIZE, -1, -1);
    total = rd32(b + EB_H_TOTAL_SIZE);
    if (total > len) return fail(err, EB_ERR_TRUNCATED, EB_H_TOTAL_SIZE, -1, -1);
    if (total < EB_HEADER_SIZE) return fail(err, EB_ERR_HEADER, EB_H_TOTAL_SIZE, -1, -1);
    if (blob_crc(b, total) != rd32(b + EB_H_CRC32)) return fail(err, EB_ERR_CHECKSUM, EB_H_CRC32, -1, -1);

    memset(m, 0, sizeof *m);
    m->n_rows = rd32(b + EB_H_N_ROWS);
    m->state_bits = rd32(b + EB_H_STATE_BITS);
    m->weight_bits = rd32(b + EB_H_WEIGHT_BITS);
    m->state_size = rd32(b + EB_H_STATE_SIZE);
    m->act_size = rd32(b + EB_H_ACT_SIZE);
    m->acc_size = rd32(b + EB_H_ACC_SIZE);
    m->n_in = rd32(b + EB_H_N_IN);
    m->n_out = rd32(b + EB_H_N_OUT);
    m->ipar_n = rd32(b + EB_H_IPAR_N);
    m->fpar_n = rd32(b + EB_H_FPAR_N);
    m->wbuf_n = rd32(b + EB_H_WBUF_N);
    m->n_outputs = rd32(b + EB_H_N_OUTPUTS);
    m->input_scale = rdf32(b + EB_H_INPUT_SCALE);
    m->format_version = rd32(b + EB_H_FORMAT_VERSION);
    if (rd32(b + EB_H_ROW_WIDTH) != EB_ROW_WIDTH) return fail(err, EB_ERR_HEADER, EB_H_ROW_WIDTH, -1, -1);
    if (m->state_bits != 16 && m->state_bits != 32) return fail(err, EB_ERR_HEADER, EB_H_STATE_BITS, -1, -1);
    if (m->weight_bits != 8 && m->weight_bits != 16) return fail(err, EB_ERR_HEADER, EB_H_WEIGHT_BITS, -1, -1);
    ndim = rd32(b + EB_H_INPUT_NDIM);
    if (ndim > EB_MAX_DIMS) return fail(err, EB_ERR_HEADER, EB_H_INPUT_NDIM, -1, -1);
    for (k = 0; k < ndim; k++) {
        uint64_t d = rd32(b + EB_H_INPUT_SHAPE + 4 * k);
        n_in = (uint64_t)n_in * d > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)(n_in * d);
    }
    if (n_in != m->n_in) return fail(err, EB_ERR_HEADER, EB_H_INPUT_SHAPE, -1, -1);
    if (!section_ok(b, EB_H_PROG_OFF, (uint64_t)m->n_rows * EB_ROW_WIDTH, 8, total))
        return fail(err, EB_ERR_HEADER, EB_H_PROG_OFF, -1, -1);
    if (!section_ok(b, EB_H_IPAR_OFF, m->ipar_n, 4, total)) return fail(err, EB_ERR_HEADER, EB_H_IPAR_OFF, -1, -1);
    if (!section_ok(b, EB_H_FPAR_OFF, m->fpar_n, 4, total)) return fail(err, EB_ERR_HEADER, EB_H_FPAR_OFF, -1, -1);
    if (!section_ok(b, EB_H_WBUF_OFF, m->wbuf_n, m->weight_bits / 8, total))
        return fail(err, EB_ERR_HEADER, EB_H_WBUF_OFF, -1, -1);
    if (!section_ok(b, EB_H_OUTPUTS_OFF, m->n_outputs, EB_OUTPUT_SIZE, total))
        return fail(err, EB_ERR_HEADER, EB_H_OUTPUTS_OFF, -1, -1);
    /* aligned sections of an aligned blob: the casts below are to properly aligned memory */
    m->prog = (const int64_t *)(const void *)(b + rd32(b + EB_H_PROG_OFF));
    m->ipar = (const int32_t *)(const void *)(b + rd32(b + EB_H_IPAR_OFF));
    m->fpar = (const float *)(const void *)(b + rd32(b + EB_H_FPAR_OFF));
    m->wbuf = (const void *)(b + rd32(b + EB_H_WBUF_OFF));
    for (k = 0; k < m->n_rows; k++) {
        int32_t col = check_row(m, m->prog + (size_t)k * EB_ROW_WIDTH);
        if (col >= 0) return fail(err, EB_ERR_ROW, 0, (int32_t)k, col);
    }
    return fail(err, EB_OK, 0, -1, -1);
}

size_t eb_state_bytes(const eb_model *m) { return (size_t)m->state_size * (m->state_bits / 8); }
size_t eb_act_bytes(const eb_model *m) { return (size_t)m->act_size * sizeof(int32_t); }
size_t eb_scratch_bytes(const eb_model *m) { return ((size_t)m->n_rows + m->acc_size) * sizeof(int64_t); }
size_t eb_sizeof_model(void) { return sizeof(eb_model); }
size_t eb_sizeof_session(void) { return sizeof(eb_session); }
int64_t eb_session_clock(const eb_session *s) { return s->clock; }

eb_status eb_session_init(eb_session *s, const eb_model *m, void *state, size_t state_bytes, int32_t *act,
                          size_t act_bytes, int64_t *scratch, size_t scratch_bytes) {
    if (!s || !m || !state || !act || !scratch) return EB_ERR_ARG;
    if (state_bytes < eb_state_bytes(m) || act_bytes < eb_act_bytes(m) || scratch_bytes < eb_scratch_bytes(m))
        return EB_ERR_ARG;
    s->model = m;
    s->state = state;
    s->act = act;
    s->sat = scratch;
    s->acc = scratch + m->n_rows;
    eb_session_reset(s);
    return EB_OK;
}

void eb_session_reset(eb_session *s) {
    const eb_model *m = s->model;
    memset(s->state, 0, eb_state_bytes(m));
    memset(s->act, 0, eb_act_bytes(m));
    memset(s->sat, 0, (size_t)m->n_rows * sizeof(int64_t));
    s->clock = 0;
}

/* ------------------------------------------------------------------ running */

static int finite(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x7F800000u) != 0x7F800000u;
}

static void *state_at(const eb_session *s, int64_t off) {
    return (char *)s->state + off * (int64_t)(s->model->state_bits / 8);
}

/* one row: kernels/engine.py's _exec_int, branch for branch */
static void exec_row(eb_session *s, int64_t r, const float *x, float *y) {
    const eb_model *m = s->model;
    const int64_t *p = m->prog + r * EB_ROW_WIDTH;
    const int64_t ni = p[EB_COL_IN_N], no = p[EB_COL_OUT_N];
    /* an input row's in_off indexes x, an output row's out_off nothing: neither is an offset into
     * act there (eb_model_load does not bound them by act_size), so no pointer is formed from them */
    const int32_t *in = p[EB_COL_OP] == EB_OP_INPUT ? NULL : s->act + p[EB_COL_IN_OFF];
    int32_t *out = p[EB_COL_OP] == EB_OP_OUTPUT ? NULL : s->act + p[EB_COL_OUT_OFF];
    const int32_t *ip = m->ipar;
    const int wb = (int)m->weight_bits;
    switch (p[EB_COL_OP]) {
    case EB_OP_INPUT:
        s->sat[r] += eb_input(x + p[EB_COL_IN_OFF], out, ni, m->fpar[p[EB_INPUT_INV_SCALE_OFF]], p[EB_INPUT_LO],
                              p[EB_INPUT_HI]);
        break;
    case EB_OP_COPY: eb_copy(in, out, no); break;
    case EB_OP_ADD: eb_add_sat(in, out, no); break;
    case EB_OP_DENSE: {
        const void *w = (const int8_t *)m->wbuf + p[EB_DENSE_W_OFF] * (wb / 8);
        const int32_t *b = p[EB_DENSE_B_OFF] >= 0 ? ip + p[EB_DENSE_B_OFF] : NULL;
        eb_dense(in, w, p[EB_DENSE_INT4] ? 4 : wb, NULL, b, ip + p[EB_DENSE_RQ_M_OFF], ip + p[EB_DENSE_RQ_S_OFF], out,
                 s->acc, p[EB_DENSE_ROWS], p[EB_DENSE_N_IN], p[EB_DENSE_N_OUT], p[EB_DENSE_IDENTITY] != 0,
                 p[EB_DENSE_WIDE] != 0);
        break;
    }
    case EB_OP_SPARSE: {
        const void *w = (const int8_t *)m->wbuf + p[EB_SPARSE_W_OFF] * (wb / 8);
        const int32_t *b = p[EB_SPARSE_B_OFF] >= 0 ? ip + p[EB_SPARSE_B_OFF] : NULL;
        eb_csr csr;
        csr.ptr = ip + p[EB_SPARSE_PTR_OFF];
        csr.cols = ip + p[EB_SPARSE_IDX_OFF];
        csr.ptr_bytes = (int)p[EB_SPARSE_PTR_BYTES];
        csr.idx_bytes = (int)p[EB_SPARSE_IDX_BYTES];
        eb_dense(in, w, p[EB_SPARSE_INT4] ? 4 : wb, &csr, b, ip + p[EB_SPARSE_RQ_M_OFF], ip + p[EB_SPARSE_RQ_S_OFF],
                 out, s->acc, p[EB_SPARSE_ROWS], p[EB_SPARSE_N_IN], p[EB_SPARSE_N_OUT], p[EB_SPARSE_IDENTITY] != 0,
                 p[EB_SPARSE_WIDE] != 0);
        break;
    }
    case EB_OP_CONV: {
        const void *w = (const int8_t *)m->wbuf + p[EB_CONV_W_OFF] * (wb / 8);
        eb_conv(in, w, wb, ip + p[EB_CONV_B_OFF], ip + p[EB_CONV_RQ_M_OFF], ip + p[EB_CONV_RQ_S_OFF], out, s->acc,
                p + EB_CONV_C, p[EB_CONV_IDENTITY] != 0, p[EB_CONV_WIDE] != 0);
        break;
    }
    case EB_OP_POOL: eb_pool(in, out, p + EB_POOL_C, p[EB_POOL_M], p[EB_POOL_S]); break;
    case EB_OP_SCALE: eb_scale(in, ip + p[EB_SCALE_SCALE_OFF], ip + p[EB_SCALE_SHIFT_OFF], out, no); break;
    case EB_OP_THRESHOLD: eb_threshold(in, ip + p[EB_THRESHOLD_TH_OFF], out, no); break;
    case EB_OP_NEURON: {
        eb_neuron_params q;
        const int64_t s0 = p[EB_NEURON_STATE_OFF];
        q.alpha = ip + p[EB_NEURON_ALPHA_OFF];
        q.gsyn_m = ip + p[EB_NEURON_G_SYN_OFF];
        q.gsyn_s = ip + p[EB_NEURON_GSYN_S_OFF];
        q.beta = ip + p[EB_NEURON_BETA_OFF];
        q.gmem_m = ip + p[EB_NEURON_G_MEM_OFF];
        q.gmem_s = ip + p[EB_NEURON_GMEM_S_OFF];
        q.bias = ip + p[EB_NEURON_BIAS_OFF];
        q.thr = ip + p[EB_NEURON_THR_OFF];
        q.v_reset = ip + p[EB_NEURON_V_RESET_OFF];
        q.flags = p[EB_NEURON_FLAGS];
        q.max_spikes = p[EB_NEURON_MAX_SPIKES];
        q.dq = p[EB_NEURON_DQ];
        q.lo = p[EB_NEURON_LO];
        q.hi = p[EB_NEURON_HI];
        s->sat[r] += eb_neuron(in, state_at(s, s0), state_at(s, s0 + no), (int)m->state_bits, out, no, &q);
        break;
    }
    case EB_OP_DELAY:
        eb_delay(in, out, s->act + p[EB_DELAY_RING_OFF], p[EB_DELAY_RING_LEN], ip + p[EB_DELAY_STEPS_OFF], no,
                 s->clock);
        break;
    case EB_OP_OUTPUT: eb_output(in, y + p[EB_OUTPUT_COLUMN], ni, m->fpar[p[EB_OUTPUT_SCALE_OFF]]); break;
    default: break; /* refused by eb_model_load */
    }
}

eb_status eb_step(eb_session *s, const float *x, float *y) {
    const eb_model *m = s->model;
    uint32_t k;
    int64_t r;
    for (k = 0; k < m->n_in; k++)
        if (!finite(x[k])) return EB_ERR_NONFINITE;
    for (r = 0; r < (int64_t)m->n_rows; r++) exec_row(s, r, x, y);
    s->clock++;
    return EB_OK;
}

eb_status eb_run(eb_session *s, const float *xs, uint32_t steps, float *ys, uint32_t *done) {
    const eb_model *m = s->model;
    uint32_t t;
    eb_status st = EB_OK;
    for (t = 0; t < steps; t++) {
        st = eb_step(s, xs + (size_t)t * m->n_in, ys + (size_t)t * m->n_out);
        if (st != EB_OK) break;
    }
    if (done) *done = t;
    return st;
}

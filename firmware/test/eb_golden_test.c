/* eb_golden_test.c: runs the C runtime on golden vectors (tools/firmware/golden.py writes them
 * from the Numba integer session) and checks every output, the final state, activations and
 * saturation counters bit for bit; then feeds each blob damaged (a flipped byte, truncated,
 * another format version, another edgebrain version, a NaN input) and checks the status codes.
 * A host program: it may use stdio and malloc; the runtime itself uses neither.
 *
 *     eb_golden_test FILE.ebgv...      exit 0 when every check passes */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eb_runtime.h"

static int failures;

#define CHECK(cond, ...)                                        \
    do {                                                        \
        if (!(cond)) {                                          \
            failures++;                                         \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                       \
            fprintf(stderr, "\n");                              \
        }                                                       \
    } while (0)

static uint32_t u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t pad8(size_t n) { return n + (8 - n % 8) % 8; }

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (uint8_t *)malloc((size_t)n + 8);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* the blob's status after `edit` changed a copy of it (8-byte aligned: malloc's) */
static eb_status load_edited(const uint8_t *blob, size_t len, size_t keep, size_t at, uint8_t xor_byte) {
    uint8_t *copy = (uint8_t *)malloc(len + 8);
    eb_model m;
    eb_error err;
    eb_status st;
    memcpy(copy, blob, len);
    if (at < len) copy[at] ^= xor_byte;
    st = eb_model_load(&m, copy, keep, &err);
    free(copy);
    return st;
}

static void bad_inputs(const char *name, const uint8_t *blob, size_t len) {
    eb_status st;
    st = load_edited(blob, len, len, len - 1, 0x40);
    CHECK(st == EB_ERR_CHECKSUM, "%s: a flipped last byte gave status %d, expected EB_ERR_CHECKSUM", name, st);
    st = load_edited(blob, len, len, EB_HEADER_SIZE + 3, 0x01);
    CHECK(st == EB_ERR_CHECKSUM, "%s: a flipped row byte gave status %d, expected EB_ERR_CHECKSUM", name, st);
    st = load_edited(blob, len, len - 8, len, 0);
    CHECK(st == EB_ERR_TRUNCATED, "%s: 8 bytes short gave status %d, expected EB_ERR_TRUNCATED", name, st);
    st = load_edited(blob, len, EB_HEADER_SIZE - 1, len, 0);
    CHECK(st == EB_ERR_TRUNCATED, "%s: a cut header gave status %d, expected EB_ERR_TRUNCATED", name, st);
    st = load_edited(blob, len, len, EB_H_FORMAT_VERSION, 0x02);
    CHECK(st == EB_ERR_FORMAT_VERSION, "%s: another format version gave status %d", name, st);
    st = load_edited(blob, len, len, EB_H_EDGEBRAIN_VERSION, 0x08);
    CHECK(st == EB_ERR_EDGEBRAIN_VERSION, "%s: another edgebrain version gave status %d", name, st);
    st = load_edited(blob, len, len, EB_H_MAGIC, 0x20);
    CHECK(st == EB_ERR_MAGIC, "%s: a bad magic gave status %d", name, st);
}

static int run_case(const char *path) {
    size_t len, off;
    uint8_t *file = read_file(path, &len);
    uint32_t steps, n_in, n_out, n_rows, state_bytes, act_n, blob_len, name_len, t;
    const uint8_t *blob, *xs, *ys, *state, *act, *sat;
    char name[128] = {0};
    eb_model model;
    eb_session sess;
    eb_error err;
    eb_status st;
    void *st_buf;
    int32_t *act_buf;
    int64_t *scratch;
    float *out, nan_in;
    int before = failures;
    if (!file || len < 40 || memcmp(file, "EBGV", 4) != 0 || u32(file + 4) != 1) {
        fprintf(stderr, "FAIL %s: not a golden vector file (version 1)\n", path);
        free(file);
        return 1;
    }
    steps = u32(file + 8), n_in = u32(file + 12), n_out = u32(file + 16), n_rows = u32(file + 20);
    state_bytes = u32(file + 24), act_n = u32(file + 28), blob_len = u32(file + 32), name_len = u32(file + 36);
    memcpy(name, file + 40, name_len < sizeof name - 1 ? name_len : sizeof name - 1);
    off = 40 + pad8(name_len);
    blob = file + off; /* malloc'd file + a multiple of 8: aligned */
    off += pad8(blob_len);
    xs = file + off, off += (size_t)steps * n_in * 4;
    ys = file + off, off += (size_t)steps * n_out * 4;
    state = file + off, off += state_bytes;
    act = file + off, off += (size_t)act_n * 4;
    sat = file + off, off += (size_t)n_rows * 8;
    if (off != len) {
        fprintf(stderr, "FAIL %s: %zu bytes, its header describes %zu\n", path, len, off);
        free(file);
        return 1;
    }
    st = eb_model_load(&model, blob, blob_len, &err);
    CHECK(st == EB_OK, "%s: load status %d (offset %u, row %d, column %d)", name, st, err.offset, err.row, err.column);
    if (st != EB_OK) {
        free(file);
        return 1;
    }
    CHECK(model.n_in == n_in && model.n_out == n_out && model.n_rows == n_rows, "%s: sizes differ", name);
    CHECK(eb_state_bytes(&model) >= state_bytes && model.act_size == act_n, "%s: buffer sizes differ", name);
    st_buf = calloc(1, eb_state_bytes(&model) + 8);
    act_buf = (int32_t *)calloc(1, eb_act_bytes(&model) + 8);
    scratch = (int64_t *)calloc(1, eb_scratch_bytes(&model) + 8);
    out = (float *)calloc((size_t)n_out + 1, sizeof(float));
    st = eb_session_init(&sess, &model, st_buf, eb_state_bytes(&model), act_buf, eb_act_bytes(&model), scratch,
                         eb_scratch_bytes(&model));
    CHECK(st == EB_OK, "%s: session init status %d", name, st);
    for (t = 0; t < steps && st == EB_OK; t++) {
        st = eb_step(&sess, (const float *)(const void *)(xs + (size_t)t * n_in * 4), out);
        CHECK(st == EB_OK, "%s: step %u status %d", name, t, st);
        if (memcmp(out, ys + (size_t)t * n_out * 4, (size_t)n_out * 4) != 0) {
            CHECK(0, "%s: outputs differ from Numba's at step %u", name, t);
            break;
        }
    }
    CHECK(memcmp(st_buf, state, state_bytes) == 0, "%s: final state differs from Numba's", name);
    CHECK(memcmp(act_buf, act, (size_t)act_n * 4) == 0, "%s: final activations differ from Numba's", name);
    CHECK(memcmp(sess.sat, sat, (size_t)n_rows * 8) == 0, "%s: saturation counters differ from Numba's", name);
    /* a NaN input is refused and changes nothing */
    if (n_in > 0) {
        float *x = (float *)malloc((size_t)n_in * 4);
        uint8_t *snap = (uint8_t *)malloc(eb_state_bytes(&model) + 1);
        int64_t clock = sess.clock;
        memcpy(x, xs, (size_t)n_in * 4);
        memcpy(snap, st_buf, eb_state_bytes(&model));
        nan_in = 0.0f;
        x[n_in - 1] = nan_in / nan_in;
        st = eb_step(&sess, x, out);
        CHECK(st == EB_ERR_NONFINITE, "%s: a NaN input gave status %d", name, st);
        CHECK(sess.clock == clock && memcmp(snap, st_buf, eb_state_bytes(&model)) == 0, "%s: NaN changed state", name);
        free(x);
        free(snap);
    }
    eb_session_reset(&sess);
    CHECK(sess.clock == 0 && sess.sat[0] == 0, "%s: reset", name);
    bad_inputs(name, blob, blob_len);
    printf("%s %s: %u steps, %u rows\n", failures == before ? "ok  " : "FAIL", name, steps, n_rows);
    free(st_buf);
    free(act_buf);
    free(scratch);
    free(out);
    free(file);
    return failures != before;
}

int main(int argc, char **argv) {
    int k, bad = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE.ebgv...\n", argv[0]);
        return 2;
    }
    for (k = 1; k < argc; k++) bad += run_case(argv[k]);
    printf("%d golden vectors, %d failed\n", argc - 1, bad);
    return bad != 0;
}

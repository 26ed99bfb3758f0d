/* Reference C loop for tools/bench/kernels.py: the integer work of an edgebrain chain
 *
 *     Input (float32 -> int) -> [Dense (int8 weights) -> LIF/LI (int16 or int32 state)]*
 *
 * done exactly as docs/fixed-point.md says, with the parameters that edgebrain's quantizer
 * produced (dumped by kernels.py into a binary file), so that the script can check that
 * this loop and edgebrain's int session compute bit-identical spikes, and time both.
 *
 * Build:  cc -O3 -march=native -ffp-contract=off [-DSTATE_BITS=16] ref_loop.c -o ref_loop -lm
 * Run:    ref_loop PARAMS.bin OUT.bin REPEATS
 *
 * It runs the whole sequence once untimed, writing every layer's output of every step
 * (spikes, or the membrane of non-spiking layers) to OUT.bin as int32 (T, sum n_out), then
 * REPEATS timed runs of T steps from a zero state, timed with clock_gettime on both
 * CLOCK_MONOTONIC (wall) and CLOCK_PROCESS_CPUTIME_ID (CPU time: robust when other
 * processes share the cores), and prints one JSON line: median / min ns per step for each,
 * and the saturation count of one run. OUT.bin may be "-" to skip the record file (a
 * warm-up run is done instead).
 *
 * Parameter file (little-endian):
 *   char[8] "EBREF1\0\0"; int32 n_layers, T, n_in, state_bits; float32 inv_scale; int32 in_lo, in_hi
 *   per layer: int32 n_in, n_out, has_bias, identity, wide
 *              int8  wt[n_in * n_out]          (wt[j*n_out + c] = W[c, j])
 *              int32 b[n_out] (if has_bias), rq_m[n_out], rq_s[n_out]
 *              int32 spiking, subtract, threshold_ge, shift_decay, gmem_identity, dq, lo, hi
 *              int32 beta_m[n_out], gmem_m[n_out], gmem_s[n_out], bias[n_out], thr[n_out], v_reset[n_out]
 *   float32 xs[T * n_in]
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef STATE_BITS
#define STATE_BITS 16
#endif
#if STATE_BITS == 16
typedef int16_t state_t;
#else
typedef int32_t state_t;
#endif

#define INT32_LO (-2147483647LL - 1)
#define INT32_HI 2147483647LL

typedef struct {
    int n_in, n_out, has_bias, identity, wide;
    int8_t *wt;
    int32_t *b, *rq_m, *rq_s;
    int spiking, subtract, ge, shift, gmem_id, dq, lo, hi;
    int32_t *beta_m, *gmem_m, *gmem_s, *bias, *thr, *v_reset;
    /* run-time buffers */
    int32_t *acc32;
    int64_t *acc64;
    int32_t *y;   /* dense output (int32) */
    state_t *v;   /* membrane */
    int32_t *out; /* neuron output: spikes or membrane */
} layer_t;

static void *xalloc(size_t n) {
    size_t sz = (n + 63) / 64 * 64;
    if (sz == 0) sz = 64;
    void *p = aligned_alloc(64, sz);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    memset(p, 0, sz);
    return p;
}

static FILE *fin;
static void rd(void *dst, size_t size, size_t n) {
    if (fread(dst, size, n, fin) != n) { fprintf(stderr, "short read in parameter file\n"); exit(2); }
}
static int32_t rd_i32(void) { int32_t v; rd(&v, 4, 1); return v; }
static int32_t *rd_arr32(int n) { int32_t *p = xalloc((size_t)n * 4); rd(p, 4, n); return p; }

/* docs/fixed-point.md primitives; everything exact in int64 */
static inline int64_t rsr(int64_t p, int64_t s) { return s <= 0 ? p : (p + (1LL << (s - 1))) >> s; }
static inline int64_t sat(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* The loops below read every parameter through local restrict pointers and constants, so
 * that the compiler can keep them in registers and vectorize (a load through L inside a
 * loop could alias the stores). */

static void dense32(const layer_t *L, const int32_t *restrict x) {
    const int n_in = L->n_in, n_out = L->n_out;
    int32_t *restrict acc = L->acc32;
    const int8_t *restrict wt = L->wt;
    const int32_t *restrict b = L->b;
    if (b) for (int c = 0; c < n_out; c++) acc[c] = b[c];
    else for (int c = 0; c < n_out; c++) acc[c] = 0;
    for (int j = 0; j < n_in; j++) {          /* increasing j; zero inputs skipped */
        const int32_t xj = x[j];
        if (xj == 0) continue;
        const int8_t *restrict row = wt + (size_t)j * n_out;
        if (xj == 1) for (int c = 0; c < n_out; c++) acc[c] += row[c];
        else for (int c = 0; c < n_out; c++) acc[c] += xj * (int32_t)row[c];
    }
    int32_t *restrict y = L->y;
    const int32_t *restrict m = L->rq_m, *restrict s = L->rq_s;
    if (L->identity) for (int c = 0; c < n_out; c++) y[c] = acc[c];
    else for (int c = 0; c < n_out; c++) y[c] = (int32_t)sat(rsr((int64_t)acc[c] * m[c], s[c]), INT32_LO, INT32_HI);
}

static void dense64(const layer_t *L, const int32_t *restrict x) {
    const int n_in = L->n_in, n_out = L->n_out;
    int64_t *restrict acc = L->acc64;
    const int8_t *restrict wt = L->wt;
    const int32_t *restrict b = L->b, *restrict m = L->rq_m, *restrict sh = L->rq_s;
    if (b) for (int c = 0; c < n_out; c++) acc[c] = b[c];
    else for (int c = 0; c < n_out; c++) acc[c] = 0;
    for (int j = 0; j < n_in; j++) {
        const int64_t xj = x[j];
        if (xj == 0) continue;
        const int8_t *restrict row = wt + (size_t)j * n_out;
        for (int c = 0; c < n_out; c++) acc[c] += xj * (int64_t)row[c];
    }
    int32_t *restrict y = L->y;
    if (L->identity) for (int c = 0; c < n_out; c++) y[c] = (int32_t)sat(acc[c], INT32_LO, INT32_HI);
    else for (int c = 0; c < n_out; c++) {  /* acc·m may exceed int64: exact in 128 bits */
        __int128 p = (__int128)acc[c] * m[c];
        const int s = sh[c];
        if (s > 0) p = (p + ((__int128)1 << (s - 1))) >> s;
        y[c] = p < INT32_LO ? (int32_t)INT32_LO : (p > INT32_HI ? (int32_t)INT32_HI : (int32_t)p);
    }
}

/* LIF / LI (not current-based, reset not delayed, single spike); returns the saturations.
 * SHIFT, GMEM_ID, SPIKING and SUBTRACT are constants at each call site below, so every
 * combination gets its own branch-free loop. */
static inline __attribute__((always_inline)) int64_t
neuron_loop(const layer_t *L, const int SHIFT, const int GMEM_ID, const int SPIKING, const int SUBTRACT) {
    const int n = L->n_out;
    const int64_t lo = L->lo, hi = L->hi, dq = L->dq, gei = L->ge ? 1 : 0; /* v >= th <=> v > th - 1 */
    const int32_t *restrict x = L->y, *restrict beta = L->beta_m, *restrict gm = L->gmem_m,
                  *restrict gs = L->gmem_s, *restrict bias = L->bias, *restrict thr = L->thr,
                  *restrict vres = L->v_reset;
    state_t *restrict v = L->v;
    int32_t *restrict out = L->out;
    int64_t nsat = 0;
    for (int k = 0; k < n; k++) {
        const int64_t xk = x[k];
        const int64_t vk0 = v[k];
        const int64_t vdec = SHIFT ? vk0 - rsr(vk0, beta[k]) : rsr(vk0 * beta[k], dq);
        const int64_t drive = GMEM_ID ? xk : rsr(xk * gm[k], gs[k]);
        const int64_t acc = vdec + drive + bias[k];
        nsat += (acc < lo) | (acc > hi);
        const int64_t vs = sat(acc, lo, hi);
        if (!SPIKING) { v[k] = (state_t)vs; out[k] = (int32_t)vs; continue; }
        const int64_t th = thr[k];
        const int fire = vs > th - gei;
        int64_t vr;
        if (SUBTRACT) {
            const int64_t r = vs - th;
            nsat += fire & ((r < lo) | (r > hi)); /* a clamp after the reset counts too */
            vr = sat(r, lo, hi);
        } else {
            vr = vres[k];
        }
        v[k] = (state_t)(fire ? vr : vs);
        out[k] = fire;
    }
    return nsat;
}

static int64_t neuron(const layer_t *L) {
    const int code = (L->shift ? 8 : 0) | (L->gmem_id ? 4 : 0) | (L->spiking ? 2 : 0) | (L->subtract ? 1 : 0);
    switch (code) {
#define CASE(c) case c: return neuron_loop(L, (c) & 8, (c) & 4, (c) & 2, (c) & 1);
        CASE(0) CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7)
        CASE(8) CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14) CASE(15)
#undef CASE
    }
    return 0;
}

typedef struct {
    int n_layers, T, n_in;
    float inv;
    int in_lo, in_hi;
    layer_t *L;
    float *xs;
    int32_t *xq;
} net_t;

static int64_t step(net_t *N, const float *restrict x) {
    int64_t nsat = 0;
    int32_t *restrict xq = N->xq;
    const float inv = N->inv;
    const float flo = (float)N->in_lo, fhi = (float)N->in_hi;
    for (int k = 0; k < N->n_in; k++) {   /* float32, no FMA (-ffp-contract=off) */
        const float q = floorf(x[k] * inv + 0.5f);  /* clamped before the conversion to int */
        nsat += (q < flo) | (q > fhi);
        xq[k] = q < flo ? N->in_lo : (q > fhi ? N->in_hi : (int32_t)q);
    }
    const int32_t *in = xq;
    for (int l = 0; l < N->n_layers; l++) {
        layer_t *L = &N->L[l];
        if (L->wide) dense64(L, in); else dense32(L, in);
        nsat += neuron(L);
        in = L->out;
    }
    return nsat;
}

static void reset(net_t *N) {
    for (int l = 0; l < N->n_layers; l++) {
        memset(N->L[l].v, 0, sizeof(state_t) * N->L[l].n_out);
        memset(N->L[l].out, 0, sizeof(int32_t) * N->L[l].n_out);
    }
}

static double now_ns(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s PARAMS.bin OUT.bin REPEATS\n", argv[0]); return 2; }
    fin = fopen(argv[1], "rb");
    if (!fin) { perror(argv[1]); return 2; }
    char magic[8];
    rd(magic, 1, 8);
    if (memcmp(magic, "EBREF1\0\0", 8)) { fprintf(stderr, "not a parameter file\n"); return 2; }
    net_t N;
    N.n_layers = rd_i32(); N.T = rd_i32(); N.n_in = rd_i32();
    int state_bits = rd_i32();
    if (state_bits != STATE_BITS) {
        fprintf(stderr, "parameters are for %d-bit state; this build has STATE_BITS=%d\n", state_bits, STATE_BITS);
        return 2;
    }
    rd(&N.inv, 4, 1);
    N.in_lo = rd_i32(); N.in_hi = rd_i32();
    N.L = calloc(N.n_layers, sizeof(layer_t));
    int total = 0, max_out = 1;
    for (int l = 0; l < N.n_layers; l++) {
        layer_t *L = &N.L[l];
        L->n_in = rd_i32(); L->n_out = rd_i32(); L->has_bias = rd_i32(); L->identity = rd_i32(); L->wide = rd_i32();
        L->wt = xalloc((size_t)L->n_in * L->n_out);
        rd(L->wt, 1, (size_t)L->n_in * L->n_out);
        L->b = L->has_bias ? rd_arr32(L->n_out) : NULL;  /* NULL: no bias */
        L->rq_m = rd_arr32(L->n_out); L->rq_s = rd_arr32(L->n_out);
        L->spiking = rd_i32(); L->subtract = rd_i32(); L->ge = rd_i32(); L->shift = rd_i32(); L->gmem_id = rd_i32();
        L->dq = rd_i32(); L->lo = rd_i32(); L->hi = rd_i32();
        L->beta_m = rd_arr32(L->n_out); L->gmem_m = rd_arr32(L->n_out); L->gmem_s = rd_arr32(L->n_out);
        L->bias = rd_arr32(L->n_out); L->thr = rd_arr32(L->n_out); L->v_reset = rd_arr32(L->n_out);
        L->acc32 = xalloc(4 * (size_t)L->n_out); L->acc64 = xalloc(8 * (size_t)L->n_out);
        L->y = xalloc(4 * (size_t)L->n_out); L->v = xalloc(sizeof(state_t) * L->n_out);
        L->out = xalloc(4 * (size_t)L->n_out);
        total += L->n_out;
        if (L->n_out > max_out) max_out = L->n_out;
    }
    N.xs = xalloc(4 * (size_t)N.T * N.n_in);
    rd(N.xs, 4, (size_t)N.T * N.n_in);
    fclose(fin);
    N.xq = xalloc(4 * (size_t)N.n_in);
    const int T = N.T, n_last = N.L[N.n_layers - 1].n_out;

    /* 1. untimed pass: every layer's output of every step, for the bit-exactness check */
    int32_t *rec = xalloc(4 * (size_t)T * total);
    reset(&N);
    int64_t nsat = 0;
    for (int t = 0; t < T; t++) {
        nsat += step(&N, N.xs + (size_t)t * N.n_in);
        int col = 0;
        for (int l = 0; l < N.n_layers; l++) {
            memcpy(rec + (size_t)t * total + col, N.L[l].out, 4 * (size_t)N.L[l].n_out);
            col += N.L[l].n_out;
        }
    }
    if (strcmp(argv[2], "-")) {
        FILE *fo = fopen(argv[2], "wb");
        if (!fo) { perror(argv[2]); return 2; }
        fwrite(rec, 4, (size_t)T * total, fo);
        fclose(fo);
    }

    /* 2. timed runs: T steps each from a zero state; the model output of every step is
     *    kept (as edgebrain's run keeps its outputs) */
    int repeats = atoi(argv[3]);
    if (repeats < 1) repeats = 1;
    int32_t *outs = xalloc(4 * (size_t)T * n_last);
    double *ns = calloc(repeats, sizeof(double)), *cpu = calloc(repeats, sizeof(double));
    int64_t check = 0;
    for (int r = 0; r < repeats; r++) {
        reset(&N);
        double c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), t0 = now_ns(CLOCK_MONOTONIC);
        for (int t = 0; t < T; t++) {
            check += step(&N, N.xs + (size_t)t * N.n_in);
            memcpy(outs + (size_t)t * n_last, N.L[N.n_layers - 1].out, 4 * (size_t)n_last);
        }
        double t1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
        ns[r] = (t1 - t0) / T;
        cpu[r] = (c1 - c0) / T;
        for (size_t i = 0; i < (size_t)T * n_last; i += 97) check += outs[i];
    }
    qsort(ns, repeats, sizeof(double), cmp_d);
    qsort(cpu, repeats, sizeof(double), cmp_d);
    const int h = repeats / 2;
    double med = repeats % 2 ? ns[h] : 0.5 * (ns[h - 1] + ns[h]);
    double cmed = repeats % 2 ? cpu[h] : 0.5 * (cpu[h - 1] + cpu[h]);
    printf("{\"median_ns_per_step\": %.3f, \"min_ns_per_step\": %.3f, \"cpu_median_ns_per_step\": %.3f, "
           "\"cpu_min_ns_per_step\": %.3f, \"repeats\": %d, \"T\": %d, \"saturations\": %lld, \"checksum\": %lld}\n",
           med, ns[0], cmed, cpu[0], repeats, T, (long long)nsat, (long long)check);
    return 0;
}

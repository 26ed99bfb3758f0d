/* Reference C loop for tools/bench/conv.py: the integer work of an edgebrain convolutional chain
 *
 *     Input (float32 -> int) -> a sequence of Conv2d / SumPool2d / Dense / neuron (LIF, LI) layers
 *
 * done exactly as docs/fixed-point.md says, with the parameters that edgebrain's quantizer chose
 * (dumped by conv.py), so that the script can check that this loop and edgebrain's int session
 * produce bit-identical outputs, and time both. It is the C a careful programmer would write for
 * the same arithmetic: event-driven convolution (only nonzero inputs add their weights), weights
 * in (C/groups, kh, kw, Co) order and channel-last accumulators, so that one input pixel and one
 * kernel row add one contiguous run of weights to one contiguous run of accumulators; 32-bit
 * accumulators where edgebrain's builder proved them exact, else 64-bit.
 *
 * Build:  cc -std=c99 -O3 -march=native -ffp-contract=off [-DSTATE_BITS=16] ref_conv.c -o ref_conv -lm
 * Run:    ref_conv PARAMS.bin OUT.bin REPEATS
 *
 * It runs the whole sequence once untimed, writing every neuron layer's output of every step to
 * OUT.bin as int32 (T, sum n), then REPEATS timed runs of T steps from a zero state, timed on
 * CLOCK_MONOTONIC and CLOCK_PROCESS_CPUTIME_ID, and prints one JSON line (median / min ns per
 * step, saturation count of one run). OUT.bin may be "-" (no record file).
 *
 * Parameter file (little-endian):
 *   char[8] "EBCNN1\0\0"; int32 n_layers, T, n_in, state_bits; float32 inv_scale; int32 in_lo, in_hi
 *   per layer: int32 kind, then
 *     1 conv:   int32 C, H, W, Co, kh, kw, sh, sw, pt, pl, dh, dw, groups, Ho, Wo, identity, wide
 *               int8 w[Co][C/groups][kh][kw]; int32 b[Co], rq_m[Co], rq_s[Co]
 *     2 pool:   int32 C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, m, s
 *     3 dense:  int32 n_in, n_out, has_bias, identity, wide; int8 w[n_out][n_in];
 *               int32 b[n_out] (if has_bias), rq_m[n_out], rq_s[n_out]
 *     4 neuron: int32 n, spiking, subtract, threshold_ge, reset_delay, shift_decay, gmem_identity, dq, lo, hi
 *               int32 beta_m[n], gmem_m[n], gmem_s[n], bias[n], thr[n], v_reset[n]
 *   float32 xs[T * n_in]
 * Each layer reads the previous layer's output (the first reads the quantized input).
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

enum { CONV = 1, POOL = 2, DENSE = 3, NEURON = 4 };

typedef struct {
    int kind, n_in, n_out;
    /* conv / pool geometry */
    int C, H, W, Co, kh, kw, sh, sw, pt, pl, dh, dw, groups, Ho, Wo;
    int identity, wide, has_bias;
    int64_t pm, ps;                /* pool (m, s) */
    int8_t *w;                     /* conv: (C/groups, kh, kw, Co) with kx reversed; dense: (n_in, n_out) */
    int32_t *b, *rq_m, *rq_s;
    int spiking, subtract, ge, delayed, shift, gmem_id, dq, lo, hi;
    int32_t *beta_m, *gmem_m, *gmem_s, *bias, *thr, *v_reset;
    int32_t *acc32;
    int64_t *acc64;
    int32_t *idx;
    state_t *v;
    int32_t *out;
} layer_t;

static void *xalloc(size_t n) {
    size_t sz = (n + 63) / 64 * 64;
    if (sz == 0) sz = 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, sz)) { fprintf(stderr, "out of memory\n"); exit(2); }
    memset(p, 0, sz);
    return p;
}

static FILE *fin;
static void rd(void *dst, size_t size, size_t n) {
    if (fread(dst, size, n, fin) != n) { fprintf(stderr, "short read in parameter file\n"); exit(2); }
}
static int32_t rd_i32(void) { int32_t v; rd(&v, 4, 1); return v; }
static int32_t *rd_arr32(int n) { int32_t *p = xalloc((size_t)n * 4); rd(p, 4, n); return p; }

static inline int64_t rsr(int64_t p, int64_t s) { return s <= 0 ? p : (p + (1LL << (s - 1))) >> s; }
static inline int64_t sat(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* sat32(rsr(a·m, s)) exactly for any int64 a (a·m may exceed int64) */
static inline int32_t requant(int64_t a, int64_t m, int64_t s) {
    __int128 p = (__int128)a * m;
    if (s > 0) p = (p + ((__int128)1 << (s - 1))) >> s;
    return p < INT32_LO ? (int32_t)INT32_LO : (p > INT32_HI ? (int32_t)INT32_HI : (int32_t)p);
}

/* ------------------------------------------------------------------ convolution */

#define CONV_SCATTER(ACC_T, NAME)                                                                   \
static void NAME(const layer_t *L, const int32_t *restrict x) {                                     \
    const int C = L->C, H = L->H, W = L->W, Co = L->Co, kh = L->kh, kw = L->kw, G = L->groups;      \
    const int sh = L->sh, sw = L->sw, pt = L->pt, pl = L->pl, dh = L->dh, dw = L->dw;               \
    const int Ho = L->Ho, Wo = L->Wo, cin_g = C / G, cout_g = Co / G;                               \
    const int unit = sh == 1 && sw == 1 && dh == 1 && dw == 1;                                      \
    ACC_T *restrict acc = (ACC_T *)(sizeof(ACC_T) == 4 ? (void *)L->acc32 : (void *)L->acc64);     \
    const int8_t *restrict w = L->w;                                                                \
    int32_t *restrict idx = L->idx;                                                                 \
    memset(acc, 0, sizeof(ACC_T) * (size_t)Co * Ho * Wo);                                           \
    for (int c = 0; c < C; c++)                                                                     \
    for (int iy = 0; iy < H; iy++) {                                                                \
    const int32_t *restrict xr = x + ((size_t)c * H + iy) * W;                                      \
    int n = 0;                                                                                      \
    for (int ix = 0; ix < W; ix++) { idx[n] = ix; n += xr[ix] != 0; }  /* branch-free row list */   \
    const int g = c / cin_g, ci = c - g * cin_g, co0 = g * cout_g;                                  \
    for (int q = 0; q < n; q++) {                                                                   \
        const int ix = idx[q];                                                                      \
        const ACC_T v = xr[ix];                                                                     \
        if (unit) {                                                                                 \
            const int ky0 = iy + pt - Ho + 1 > 0 ? iy + pt - Ho + 1 : 0;                            \
            const int ky1 = iy + pt + 1 < kh ? iy + pt + 1 : kh;                                    \
            const int j0 = kw - 1 - ix - pl > 0 ? kw - 1 - ix - pl : 0;                             \
            const int j1 = Wo + kw - 1 - ix - pl < kw ? Wo + kw - 1 - ix - pl : kw;                 \
            if (j1 <= j0) continue;                                                                 \
            const int ox0 = ix + pl - kw + 1 + j0;                                                  \
            for (int ky = ky0; ky < ky1; ky++) {                                                    \
                const int oy = iy + pt - ky;                                                        \
                ACC_T *restrict a = acc + ((size_t)oy * Wo + ox0) * Co + co0;                       \
                const int8_t *restrict wr = w + ((size_t)(ci * kh + ky) * kw + j0) * Co + co0;      \
                if (G == 1) {                                                                       \
                    const int len = (j1 - j0) * Co;                                                 \
                    if (v == 1) for (int t = 0; t < len; t++) a[t] += wr[t];                        \
                    else for (int t = 0; t < len; t++) a[t] += v * wr[t];                           \
                } else {                                                                            \
                    for (int jj = 0; jj < j1 - j0; jj++)                                            \
                        for (int t = 0; t < cout_g; t++) a[jj * Co + t] += v * wr[jj * Co + t];     \
                }                                                                                   \
            }                                                                                       \
            continue;                                                                               \
        }                                                                                           \
        for (int ky = 0; ky < kh; ky++) {                                                           \
            const int ty = iy + pt - ky * dh;                                                       \
            if (ty < 0 || ty % sh) continue;                                                        \
            const int oy = ty / sh;                                                                 \
            if (oy >= Ho) continue;                                                                 \
            for (int kx = 0; kx < kw; kx++) {                                                       \
                const int tx = ix + pl - kx * dw;                                                   \
                if (tx < 0 || tx % sw) continue;                                                    \
                const int ox = tx / sw;                                                             \
                if (ox >= Wo) continue;                                                             \
                ACC_T *restrict a = acc + ((size_t)oy * Wo + ox) * Co + co0;                        \
                const int8_t *restrict wr = w + ((size_t)(ci * kh + ky) * kw + kw - 1 - kx) * Co + co0; \
                for (int t = 0; t < cout_g; t++) a[t] += v * wr[t];                                 \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
    }                                                                                               \
}
CONV_SCATTER(int32_t, conv_scatter32)
CONV_SCATTER(int64_t, conv_scatter64)

static void conv(const layer_t *L, const int32_t *restrict x) {
    const int Co = L->Co, hw = L->Ho * L->Wo;
    int32_t *restrict y = L->out;
    const int32_t *restrict b = L->b, *restrict m = L->rq_m, *restrict s = L->rq_s;
    if (!L->wide) {
        conv_scatter32(L, x);
        const int32_t *restrict acc = L->acc32;
        /* channel-last accumulators -> channel-first output, four channels per pass over acc;
         * |acc + b| < 2^31 (the builder's proof), so the product fits in int64 */
        if (L->identity) {
            for (int co = 0; co < Co; co++)
                for (int k = 0; k < hw; k++) y[(size_t)co * hw + k] = acc[(size_t)k * Co + co] + b[co];
        } else {
            int co = 0;
            for (; co + 4 <= Co; co += 4) {
                int32_t *restrict y0 = y + (size_t)co * hw, *restrict y1 = y0 + hw, *restrict y2 = y1 + hw,
                        *restrict y3 = y2 + hw;
                const int64_t b0 = b[co], b1 = b[co + 1], b2 = b[co + 2], b3 = b[co + 3];
                const int64_t m0 = m[co], m1 = m[co + 1], m2 = m[co + 2], m3 = m[co + 3];
                const int64_t s0 = s[co], s1 = s[co + 1], s2 = s[co + 2], s3 = s[co + 3];
                for (int k = 0; k < hw; k++) {
                    const int32_t *restrict r = acc + (size_t)k * Co + co;
                    y0[k] = (int32_t)sat(rsr((r[0] + b0) * m0, s0), INT32_LO, INT32_HI);
                    y1[k] = (int32_t)sat(rsr((r[1] + b1) * m1, s1), INT32_LO, INT32_HI);
                    y2[k] = (int32_t)sat(rsr((r[2] + b2) * m2, s2), INT32_LO, INT32_HI);
                    y3[k] = (int32_t)sat(rsr((r[3] + b3) * m3, s3), INT32_LO, INT32_HI);
                }
            }
            for (; co < Co; co++)
                for (int k = 0; k < hw; k++)
                    y[(size_t)co * hw + k] = (int32_t)sat(rsr((acc[(size_t)k * Co + co] + (int64_t)b[co]) * m[co], s[co]),
                                                          INT32_LO, INT32_HI);
        }
    } else {
        conv_scatter64(L, x);
        const int64_t *restrict acc = L->acc64;
        for (int co = 0; co < Co; co++) {
            int32_t *restrict yc = y + (size_t)co * hw;
            for (int k = 0; k < hw; k++) {
                const int64_t a = acc[(size_t)k * Co + co] + b[co];
                yc[k] = L->identity ? (int32_t)sat(a, INT32_LO, INT32_HI) : requant(a, m[co], s[co]);
            }
        }
    }
}

/* ------------------------------------------------------------------ pooling */

static void pool(const layer_t *L, const int32_t *restrict x) {
    const int C = L->C, H = L->H, W = L->W, kh = L->kh, kw = L->kw, sh = L->sh, sw = L->sw;
    const int ph = L->pt, pw = L->pl, Ho = L->Ho, Wo = L->Wo;
    const int64_t m = L->pm, s = L->ps;
    const int ident = m == 1 && s == 0;
    int32_t *restrict y = L->out;
    const int inside = ph == 0 && pw == 0 && (Ho - 1) * sh + kh <= H && (Wo - 1) * sw + kw <= W;
    if (inside && kh == 2 && kw == 2 && sh == 2 && sw == 2) {  /* the usual 2x2 / stride 2 */
        for (int c = 0; c < C; c++)
            for (int oy = 0; oy < Ho; oy++) {
                const int32_t *restrict r0 = x + ((size_t)c * H + 2 * oy) * W, *restrict r1 = r0 + W;
                int32_t *restrict yr = y + ((size_t)c * Ho + oy) * Wo;
                for (int ox = 0; ox < Wo; ox++) {
                    const int64_t a = (int64_t)r0[2 * ox] + r0[2 * ox + 1] + r1[2 * ox] + r1[2 * ox + 1];
                    yr[ox] = ident ? (int32_t)sat(a, INT32_LO, INT32_HI) : requant(a, m, s);
                }
            }
        return;
    }
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                int64_t a = 0;
                if (inside) {
                    const int32_t *restrict r = x + ((size_t)c * H + oy * sh) * W + ox * sw;
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) a += r[ky * W + kx];
                } else {
                    for (int ky = 0; ky < kh; ky++) {
                        const int iy = oy * sh - ph + ky;
                        if (iy < 0 || iy >= H) continue;
                        for (int kx = 0; kx < kw; kx++) {
                            const int ix = ox * sw - pw + kx;
                            if (ix >= 0 && ix < W) a += x[((size_t)c * H + iy) * W + ix];
                        }
                    }
                }
                y[((size_t)c * Ho + oy) * Wo + ox] = ident ? (int32_t)sat(a, INT32_LO, INT32_HI) : requant(a, m, s);
            }
}

/* ------------------------------------------------------------------ dense (event-driven) */

static void dense(const layer_t *L, const int32_t *restrict x) {
    const int n_in = L->n_in, n_out = L->n_out;
    const int8_t *restrict wt = L->w;
    const int32_t *restrict b = L->b, *restrict m = L->rq_m, *restrict s = L->rq_s;
    int32_t *restrict y = L->out;
    if (!L->wide) {
        int32_t *restrict acc = L->acc32;
        for (int c = 0; c < n_out; c++) acc[c] = b ? b[c] : 0;
        for (int j = 0; j < n_in; j++) {
            const int32_t xj = x[j];
            if (xj == 0) continue;
            const int8_t *restrict row = wt + (size_t)j * n_out;
            for (int c = 0; c < n_out; c++) acc[c] += xj * row[c];
        }
        for (int c = 0; c < n_out; c++)
            y[c] = L->identity ? acc[c] : (int32_t)sat(rsr((int64_t)acc[c] * m[c], s[c]), INT32_LO, INT32_HI);
    } else {
        int64_t *restrict acc = L->acc64;
        for (int c = 0; c < n_out; c++) acc[c] = b ? b[c] : 0;
        for (int j = 0; j < n_in; j++) {
            const int64_t xj = x[j];
            if (xj == 0) continue;
            const int8_t *restrict row = wt + (size_t)j * n_out;
            for (int c = 0; c < n_out; c++) acc[c] += xj * row[c];
        }
        for (int c = 0; c < n_out; c++)
            y[c] = L->identity ? (int32_t)sat(acc[c], INT32_LO, INT32_HI) : requant(acc[c], m[c], s[c]);
    }
}

/* ------------------------------------------------------------------ neurons (LIF / LI; no current, one spike) */

/* SHIFT, GMEM_ID, SPIKING, SUBTRACT and DELAYED are constants at each call site below, so every
 * combination gets its own branch-free loop (the compiler vectorizes them). */
static inline __attribute__((always_inline)) int64_t
neuron_loop(const layer_t *L, const int32_t *restrict x, const int SHIFT, const int GMEM_ID, const int SPIKING,
            const int SUBTRACT, const int DELAYED) {
    const int n = L->n_out;
    const int64_t lo = L->lo, hi = L->hi, dq = L->dq, gei = L->ge ? 1 : 0;  /* v >= th <=> v > th - 1 */
    const int32_t *restrict beta = L->beta_m, *restrict gm = L->gmem_m, *restrict gs = L->gmem_s,
                  *restrict bias = L->bias, *restrict thr = L->thr, *restrict vres = L->v_reset;
    state_t *restrict v = L->v;
    int32_t *restrict out = L->out;
    int64_t nsat = 0;
    for (int k = 0; k < n; k++) {
        const int64_t vk0 = v[k], xk = x[k];
        const int64_t vdec = SHIFT ? vk0 - rsr(vk0, beta[k]) : rsr(vk0 * beta[k], dq);
        int64_t acc = vdec + (GMEM_ID ? xk : rsr(xk * gm[k], gs[k])) + bias[k];
        if (!SPIKING) {
            nsat += (acc < lo) | (acc > hi);
            const int64_t vs = sat(acc, lo, hi);
            v[k] = (state_t)vs;
            out[k] = (int32_t)vs;
            continue;
        }
        const int64_t th = thr[k];
        if (DELAYED) acc -= (int64_t)out[k] * th;  /* the previous step's spike, reset one step late */
        nsat += (acc < lo) | (acc > hi);
        const int64_t vs = sat(acc, lo, hi);
        const int fire = vs > th - gei;
        int64_t vr = vs;
        if (!DELAYED) {
            if (SUBTRACT) {
                const int64_t r = vs - th;
                nsat += fire & ((r < lo) | (r > hi));
                vr = sat(r, lo, hi);
            } else {
                vr = vres[k];
            }
        }
        v[k] = (state_t)(fire ? vr : vs);
        out[k] = fire;
    }
    return nsat;
}

static int64_t neuron(const layer_t *L, const int32_t *restrict x) {
    const int dl = L->spiking && L->delayed;
    const int code = (L->shift ? 16 : 0) | (L->gmem_id ? 8 : 0) | (L->spiking ? 4 : 0) | (L->subtract ? 2 : 0) | (dl ? 1 : 0);
    switch (code) {
#define CASE(c) case c: return neuron_loop(L, x, (c) & 16, (c) & 8, (c) & 4, (c) & 2, (c) & 1);
        CASE(0) CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7)
        CASE(8) CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14) CASE(15)
        CASE(16) CASE(17) CASE(18) CASE(19) CASE(20) CASE(21) CASE(22) CASE(23)
        CASE(24) CASE(25) CASE(26) CASE(27) CASE(28) CASE(29) CASE(30) CASE(31)
#undef CASE
    }
    return 0;
}

/* ------------------------------------------------------------------ the chain */

#ifdef PROFILE  /* -DPROFILE: CPU time per layer, printed to stderr (adds two clock reads per layer) */
static double prof_ns[64];
#endif

typedef struct {
    int n_layers, T, n_in, in_lo, in_hi;
    float inv;
    layer_t *L;
    float *xs;
    int32_t *xq;
} net_t;

static int64_t step(net_t *N, const float *restrict x) {
    int64_t nsat = 0;
    int32_t *restrict xq = N->xq;
    const float inv = N->inv, flo = (float)N->in_lo, fhi = (float)N->in_hi;
    for (int k = 0; k < N->n_in; k++) {   /* float32, no FMA (-ffp-contract=off) */
        const float q = floorf(x[k] * inv + 0.5f);
        nsat += (q < flo) | (q > fhi);
        xq[k] = q < flo ? N->in_lo : (q > fhi ? N->in_hi : (int32_t)q);
    }
    const int32_t *in = xq;
    for (int l = 0; l < N->n_layers; l++) {
        layer_t *L = &N->L[l];
#ifdef PROFILE
        struct timespec p0, p1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &p0);
#endif
        switch (L->kind) {
        case CONV: conv(L, in); break;
        case POOL: pool(L, in); break;
        case DENSE: dense(L, in); break;
        case NEURON: nsat += neuron(L, in); break;
        }
#ifdef PROFILE
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &p1);
        prof_ns[l] += (p1.tv_sec - p0.tv_sec) * 1e9 + (p1.tv_nsec - p0.tv_nsec);
#endif
        in = L->out;
    }
    return nsat;
}

static void reset(net_t *N) {
    for (int l = 0; l < N->n_layers; l++) {
        layer_t *L = &N->L[l];
        if (L->kind == NEURON) {
            memset(L->v, 0, sizeof(state_t) * L->n_out);
            memset(L->out, 0, 4 * (size_t)L->n_out);
        }
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

static void read_layer(layer_t *L) {
    L->kind = rd_i32();
    if (L->kind == CONV) {
        L->C = rd_i32(); L->H = rd_i32(); L->W = rd_i32(); L->Co = rd_i32(); L->kh = rd_i32(); L->kw = rd_i32();
        L->sh = rd_i32(); L->sw = rd_i32(); L->pt = rd_i32(); L->pl = rd_i32(); L->dh = rd_i32(); L->dw = rd_i32();
        L->groups = rd_i32(); L->Ho = rd_i32(); L->Wo = rd_i32(); L->identity = rd_i32(); L->wide = rd_i32();
        const int cin_g = L->C / L->groups, Co = L->Co, kh = L->kh, kw = L->kw;
        const size_t nw = (size_t)Co * cin_g * kh * kw;
        int8_t *w = xalloc(nw);
        rd(w, 1, nw);
        L->w = xalloc(nw);  /* (co, ci, ky, kx) -> (ci, ky, kw-1-kx, co) */
        for (int co = 0; co < Co; co++)
            for (int ci = 0; ci < cin_g; ci++)
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++)
                        L->w[(((size_t)ci * kh + ky) * kw + (kw - 1 - kx)) * Co + co] =
                            w[(((size_t)co * cin_g + ci) * kh + ky) * kw + kx];
        free(w);
        L->b = rd_arr32(Co); L->rq_m = rd_arr32(Co); L->rq_s = rd_arr32(Co);
        L->n_in = L->C * L->H * L->W;
        L->n_out = Co * L->Ho * L->Wo;
        L->acc32 = xalloc(4 * (size_t)L->n_out); L->acc64 = xalloc(8 * (size_t)L->n_out);
        L->idx = xalloc(4 * (size_t)L->W);
    } else if (L->kind == POOL) {
        L->C = rd_i32(); L->H = rd_i32(); L->W = rd_i32(); L->kh = rd_i32(); L->kw = rd_i32();
        L->sh = rd_i32(); L->sw = rd_i32(); L->pt = rd_i32(); L->pl = rd_i32(); L->Ho = rd_i32(); L->Wo = rd_i32();
        L->pm = rd_i32(); L->ps = rd_i32();
        L->n_in = L->C * L->H * L->W;
        L->n_out = L->C * L->Ho * L->Wo;
    } else if (L->kind == DENSE) {
        L->n_in = rd_i32(); L->n_out = rd_i32(); L->has_bias = rd_i32(); L->identity = rd_i32(); L->wide = rd_i32();
        const int n_in = L->n_in, n_out = L->n_out;
        int8_t *w = xalloc((size_t)n_in * n_out);
        rd(w, 1, (size_t)n_in * n_out);
        L->w = xalloc((size_t)n_in * n_out);  /* transposed: one input's weights contiguous */
        for (int c = 0; c < n_out; c++)
            for (int j = 0; j < n_in; j++) L->w[(size_t)j * n_out + c] = w[(size_t)c * n_in + j];
        free(w);
        L->b = L->has_bias ? rd_arr32(n_out) : NULL;
        L->rq_m = rd_arr32(n_out); L->rq_s = rd_arr32(n_out);
        L->acc32 = xalloc(4 * (size_t)n_out); L->acc64 = xalloc(8 * (size_t)n_out);
    } else if (L->kind == NEURON) {
        L->n_out = L->n_in = rd_i32();
        L->spiking = rd_i32(); L->subtract = rd_i32(); L->ge = rd_i32(); L->delayed = rd_i32();
        L->shift = rd_i32(); L->gmem_id = rd_i32(); L->dq = rd_i32(); L->lo = rd_i32(); L->hi = rd_i32();
        const int n = L->n_out;
        L->beta_m = rd_arr32(n); L->gmem_m = rd_arr32(n); L->gmem_s = rd_arr32(n);
        L->bias = rd_arr32(n); L->thr = rd_arr32(n); L->v_reset = rd_arr32(n);
        L->v = xalloc(sizeof(state_t) * (size_t)n);
    } else {
        fprintf(stderr, "unknown layer kind %d\n", L->kind);
        exit(2);
    }
    L->out = xalloc(4 * (size_t)L->n_out);
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s PARAMS.bin OUT.bin REPEATS\n", argv[0]); return 2; }
    fin = fopen(argv[1], "rb");
    if (!fin) { perror(argv[1]); return 2; }
    char magic[8];
    rd(magic, 1, 8);
    if (memcmp(magic, "EBCNN1\0\0", 8)) { fprintf(stderr, "not a parameter file\n"); return 2; }
    net_t N;
    N.n_layers = rd_i32(); N.T = rd_i32(); N.n_in = rd_i32();
    const int state_bits = rd_i32();
    if (state_bits != STATE_BITS) {
        fprintf(stderr, "parameters are for %d-bit state; this build has STATE_BITS=%d\n", state_bits, STATE_BITS);
        return 2;
    }
    rd(&N.inv, 4, 1);
    N.in_lo = rd_i32(); N.in_hi = rd_i32();
    N.L = calloc(N.n_layers, sizeof(layer_t));
    int total = 0;
    for (int l = 0; l < N.n_layers; l++) {
        read_layer(&N.L[l]);
        if (N.L[l].kind == NEURON) total += N.L[l].n_out;
    }
    N.xs = xalloc(4 * (size_t)N.T * N.n_in);
    rd(N.xs, 4, (size_t)N.T * N.n_in);
    fclose(fin);
    N.xq = xalloc(4 * (size_t)N.n_in);
    const int T = N.T;
    const layer_t *last = &N.L[N.n_layers - 1];

    /* 1. untimed pass: every neuron layer's output of every step */
    int32_t *rec = xalloc(4 * (size_t)T * total);
    reset(&N);
    int64_t nsat = 0;
    for (int t = 0; t < T; t++) {
        nsat += step(&N, N.xs + (size_t)t * N.n_in);
        int col = 0;
        for (int l = 0; l < N.n_layers; l++)
            if (N.L[l].kind == NEURON) {
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

    /* 2. timed runs of T steps from a zero state; the last layer's output of every step is kept */
    int repeats = atoi(argv[3]);
    if (repeats < 1) repeats = 1;
    int32_t *outs = xalloc(4 * (size_t)T * last->n_out);
    double *ns = calloc(repeats, sizeof(double)), *cpu = calloc(repeats, sizeof(double));
    int64_t check = 0;
    for (int r = 0; r < repeats; r++) {
        reset(&N);
        double c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), t0 = now_ns(CLOCK_MONOTONIC);
        for (int t = 0; t < T; t++) {
            check += step(&N, N.xs + (size_t)t * N.n_in);
            memcpy(outs + (size_t)t * last->n_out, last->out, 4 * (size_t)last->n_out);
        }
        double t1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
        ns[r] = (t1 - t0) / T;
        cpu[r] = (c1 - c0) / T;
        for (size_t i = 0; i < (size_t)T * last->n_out; i += 97) check += outs[i];
    }
#ifdef PROFILE
    for (int l = 0; l < N.n_layers && l < 64; l++)
        fprintf(stderr, "layer %d kind %d: %.2f us/step\n", l, N.L[l].kind, prof_ns[l] / 1e3 / ((double)T * (repeats + 1)));
#endif
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

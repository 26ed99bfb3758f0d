/* eb_conv.c: Conv1d / Conv2d (edgebrain/kernels/conv.py's conv2d_int) and sum / average
 * pooling (kernels/pool.py's pool2d_int). PyTorch semantics: zero padding, stride, dilation,
 * groups; Conv1d runs with h = 1. Buffers are flat and channel-first. */
#include <stddef.h>

#include "eb_fixed.h"
#include "eb_kernels.h"

/* acc[0 : n] += v · w[w0 : w0+n], w int8 or int16, acc uint32 (a narrow row: the sum wraps modulo
 * 2^32, exact when the builder's proof holds). A spike, v = 1, adds the weights. The weights (in
 * the blob) and the accumulators (the caller's buffers) never alias. */
#define EB_AXPY32(T)                                                                        \
    do {                                                                                    \
        const T *restrict ws = (const T *)w + w0;                                           \
        if (v == 1)                                                                         \
            for (t = 0; t < n; t++) acc[t] += (uint32_t)ws[t];                              \
        else                                                                                \
            for (t = 0; t < n; t++) acc[t] += v * (uint32_t)ws[t];                          \
    } while (0)

static void axpy32(uint32_t *restrict acc, const void *w, int wbits, int64_t w0, int64_t n, uint32_t v) {
    int64_t t;
    if (wbits == 8)
        EB_AXPY32(int8_t);
    else
        EB_AXPY32(int16_t);
}

/* the same in int64 (a wide row: rare, so the plain loop) */
static void axpy64(int64_t *restrict acc, const void *w, int wbits, int64_t w0, int64_t n, int64_t v) {
    int64_t t;
    for (t = 0; t < n; t++)
        acc[t] = eb_addw(acc[t], v * (wbits == 8 ? ((const int8_t *)w)[w0 + t] : ((const int16_t *)w)[w0 + t]));
}

/* the accumulators: int64 (wide) or uint32 (narrow), both channel-last (ho, wo, co) */
typedef struct {
    int64_t *a64;
    uint32_t *a32;
    const void *w;
    int wbits;
} eb_acc;

static void axpy(const eb_acc *a, int64_t a0, int64_t w0, int64_t n, int32_t v) {
    if (a->a64)
        axpy64(a->a64 + a0, a->w, a->wbits, w0, n, v);
    else
        axpy32(a->a32 + a0, a->w, a->wbits, w0, n, (uint32_t)v);
}

/* inputs listed at once by eb_list_nonzero: a bound on the stack used (flash and RAM matter) */
#define EB_LIST 64

/* acc += the contributions of every nonzero input, scattered as the Numba kernel does (an exact
 * sum: any order of terms gives the same integers). Row by row, the nonzero columns are listed
 * first without branches (a branch per input mispredicts on random spikes). The weights' layout
 * is (C/groups, kh, kw, co) with the kernel columns reversed: w[co, ci, ky, kx] is at
 * ((ci·kh + ky)·kw + kw-1-kx)·co_total + co. */
static void scatter(const int32_t *x, const eb_acc *acc, const int64_t *d) {
    const int64_t C = d[0], H = d[1], W = d[2], Co = d[3], kh = d[4], kw = d[5], sh = d[6], sw = d[7];
    const int64_t pt = d[8], pl = d[9], dh = d[10], dw = d[11], groups = d[12], Ho = d[13], Wo = d[14];
    const int64_t cin_g = C / groups, cout_g = Co / groups;
    const int unit = sh == 1 && sw == 1 && dh == 1 && dw == 1; /* stride 1, no dilation: runs */
    int32_t idx[EB_LIST];
    int64_t c, iy, ix, ky, kx, x0, q, nnz;
    for (c = 0; c < C; c++) {
        const int64_t g = c / cin_g, ci = c - g * cin_g, co0 = g * cout_g;
        for (iy = 0; iy < H; iy++) {
            /* (stride 1) output row oy = iy + pt - ky must lie in [0, Ho) */
            const int64_t ky0 = iy + pt - Ho + 1 > 0 ? iy + pt - Ho + 1 : 0;
            const int64_t ky1 = iy + pt + 1 < kh ? iy + pt + 1 : kh;
            const int32_t *xr = x + (c * H + iy) * W;
            for (x0 = 0; x0 < W; x0 += EB_LIST) {
                nnz = eb_list_nonzero(xr + x0, W - x0 < EB_LIST ? W - x0 : EB_LIST, idx);
                for (q = 0; q < nnz; q++) {
                    const int32_t v = xr[x0 + idx[q]];
                    ix = x0 + idx[q];
                    if (unit) {
                        /* reversed kernel column j (kx = kw-1-j) reaches output column
                         * ix + pl - kw + 1 + j, in [0, Wo): the columns j0..j1 of a kernel row are
                         * one run of outputs and one of weights */
                        const int64_t j0 = kw - 1 - ix - pl > 0 ? kw - 1 - ix - pl : 0;
                        const int64_t j1 = Wo + kw - 1 - ix - pl < kw ? Wo + kw - 1 - ix - pl : kw;
                        int64_t j;
                        for (ky = ky0; ky < ky1 && j0 < j1; ky++) {
                            const int64_t a0 = ((iy + pt - ky) * Wo + ix + pl - kw + 1 + j0) * Co + co0;
                            const int64_t w0 = ((ci * kh + ky) * kw + j0) * Co + co0;
                            if (groups == 1)
                                axpy(acc, a0, w0, (j1 - j0) * Co, v);
                            else
                                for (j = 0; j < j1 - j0; j++) axpy(acc, a0 + j * Co, w0 + j * Co, cout_g, v);
                        }
                        continue;
                    }
                    for (ky = 0; ky < kh; ky++) {
                        const int64_t ty = iy + pt - ky * dh;
                        int64_t oy;
                        if (ty < 0 || ty % sh) continue;
                        oy = ty / sh;
                        if (oy >= Ho) continue;
                        for (kx = 0; kx < kw; kx++) {
                            const int64_t tx = ix + pl - kx * dw;
                            int64_t ox;
                            if (tx < 0 || tx % sw) continue;
                            ox = tx / sw;
                            if (ox >= Wo) continue;
                            axpy(acc, (oy * Wo + ox) * Co + co0, ((ci * kh + ky) * kw + kw - 1 - kx) * Co + co0,
                                 cout_g, v);
                        }
                    }
                }
            }
        }
    }
}

/* A wide row sums in the int64 scratch. A narrow row (the builder proved |b + any partial sum| <
 * 2^31) sums in 32 bits as Numba's int32 accumulator does, in y itself (as uint32, the same
 * object's unsigned type), and is then requantised channel-first into the int64 scratch and
 * copied back. As Numba, the bias joins after the sum. */
void eb_conv(const int32_t *x, const void *w, int wbits, const int32_t *b, const int32_t *m, const int32_t *s,
             int32_t *y, int64_t *acc, const int64_t *dims, int identity, int wide) {
    const int64_t Co = dims[3], hw = dims[13] * dims[14];
    eb_acc a;
    int64_t k, co;
    a.w = w;
    a.wbits = wbits;
    a.a64 = wide ? acc : NULL;
    a.a32 = wide ? NULL : (uint32_t *)y;
    if (wide)
        for (k = 0; k < hw * Co; k++) acc[k] = 0;
    else
        for (k = 0; k < hw * Co; k++) a.a32[k] = 0;
    scatter(x, &a, dims);
    for (co = 0; co < Co; co++) {
        const int64_t bc = b[co], mc = m[co], sc = s[co];
        int64_t *yc = acc + co * hw;
        if (wide) {
            for (k = 0; k < hw; k++) y[co * hw + k] = eb_requant(eb_addw(acc[k * Co + co], bc), mc, sc, identity);
        } else {
            for (k = 0; k < hw; k++) yc[k] = eb_requant_narrow(eb_i32(a.a32[k * Co + co]) + bc, mc, sc, identity);
        }
    }
    if (!wide)
        for (k = 0; k < hw * Co; k++) y[k] = (int32_t)acc[k];
}

/* y = sat32(rsr(Σ_window x · m, s)); padding contributes zeros */
void eb_pool(const int32_t *x, int32_t *y, const int64_t *d, int64_t m, int64_t s) {
    const int64_t C = d[0], H = d[1], W = d[2], kh = d[3], kw = d[4], sh = d[5], sw = d[6];
    const int64_t ph = d[7], pw = d[8], Ho = d[9], Wo = d[10];
    const int identity = m == 1 && s == 0;
    int64_t c, oy, ox, ky, kx;
    if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && 2 * Ho <= H && 2 * Wo <= W) {
        /* the usual 2x2 window, stride 2, inside the input: no bounds to test */
        for (c = 0; c < C; c++) {
            for (oy = 0; oy < Ho; oy++) {
                const int32_t *r0 = x + (c * H + 2 * oy) * W, *r1 = r0 + W;
                int32_t *yr = y + (c * Ho + oy) * Wo;
                for (ox = 0; ox < Wo; ox++) {
                    const int64_t a = (int64_t)r0[2 * ox] + r0[2 * ox + 1] + r1[2 * ox] + r1[2 * ox + 1];
                    yr[ox] = identity ? eb_sat32(a) : eb_mulshift_sat32(a, m, s);
                }
            }
        }
        return;
    }
    for (c = 0; c < C; c++) {
        for (oy = 0; oy < Ho; oy++) {
            for (ox = 0; ox < Wo; ox++) {
                int64_t a = 0;
                for (ky = 0; ky < kh; ky++) {
                    const int64_t iy = oy * sh - ph + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (kx = 0; kx < kw; kx++) {
                        const int64_t ix = ox * sw - pw + kx;
                        if (ix >= 0 && ix < W) a += x[(c * H + iy) * W + ix];
                    }
                }
                y[(c * Ho + oy) * Wo + ox] = identity ? eb_sat32(a) : eb_mulshift_sat32(a, m, s);
            }
        }
    }
}
